//! The status database (issue 27; format-spec/repository.md "Status rows
//! (local)"): what `strata status` needs of each snapshot of each source
//! (its time, retention group and run, root tree, summary and logical size)
//! and, per source, the distinct blobs its snapshots reference, counted, with
//! their summed raw and stored bytes, in one SQLite file of the local cache.
//!
//! When the snapshots listed differ from the last call's, only the
//! manifests added since are read and only their trees not counted before
//! for that source are walked; the rows of snapshots gone are dropped and
//! only the trees no other row of the source has are read again, to take
//! their blobs' references away (refs.rs). Retention is decided from each
//! retention group's runs (its snapshots per local date, or hour with an
//! hourly rule: `retention::kept_by_runs`), kept as rows come and go: no
//! manifest is decoded, and a call costs the same at 10 000 snapshots as
//! at 100. All of it is one transaction: a killed status leaves the last
//! one. The file is a cache: rebuilt from nothing when it does not open or
//! a query fails, and when what the figures depend on besides the listing
//! (`flat::rest`: signers, sources, policy, time zone) changes.

use super::listing::Names;
use super::{flat, refs};
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::maint::forget::{self, ForgetOptions};
use crate::policy::Config;
use crate::policy::config::PRE_RESTORE_TAG;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::reconcile::DirStamps;
use crate::snapshot::retention::{self, Item};
use crate::snapshot::{Filter, Snapshot};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// From this many new manifests on, they are read through the manifest
/// cache (one listing with sizes and times) rather than one by one.
const THROUGH_CACHE: usize = 64;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS listing(part INTEGER PRIMARY KEY, hash BLOB NOT NULL,
    ids BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snaps(
    source TEXT NOT NULL, id BLOB NOT NULL, time_ns INTEGER NOT NULL, time TEXT NOT NULL,
    grp BLOB NOT NULL, tree BLOB NOT NULL,
    bytes_added INTEGER NOT NULL, bytes_read INTEGER NOT NULL, logical INTEGER,
    run INTEGER NOT NULL, PRIMARY KEY(source, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS snaps_by_time ON snaps(source, time_ns, id);
CREATE INDEX IF NOT EXISTS snaps_by_group ON snaps(source, grp, time_ns DESC, id);
CREATE INDEX IF NOT EXISTS snaps_by_id ON snaps(id);
CREATE INDEX IF NOT EXISTS snaps_uncounted ON snaps(source, tree) WHERE logical IS NULL;
CREATE INDEX IF NOT EXISTS snaps_by_run ON snaps(source, grp, run);
CREATE TABLE IF NOT EXISTS counts(source TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs(source TEXT NOT NULL, grp BLOB NOT NULL, run INTEGER NOT NULL,
    newest_ns INTEGER NOT NULL, oldest_ns INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY(source, grp, run)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs(source TEXT NOT NULL, blob BLOB NOT NULL, n INTEGER NOT NULL,
    t INTEGER NOT NULL, logical INTEGER NOT NULL, raw INTEGER NOT NULL, stored INTEGER NOT NULL,
    data INTEGER NOT NULL, PRIMARY KEY(source, blob)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals(source TEXT PRIMARY KEY, logical INTEGER NOT NULL,
    raw INTEGER NOT NULL, stored INTEGER NOT NULL, data_raw INTEGER NOT NULL,
    inline_bytes INTEGER NOT NULL) WITHOUT ROWID;
";

/// What one update reads.
pub(super) struct Update<'a> {
    pub repo: &'a Repo,
    pub cfg: &'a Config,
    /// The snapshots listed.
    pub names: &'a Names,
    /// `flat::rest`.
    pub rest: &'a [u8; 32],
    pub now: i64,
    pub tz: &'a jiff::tz::TimeZone,
    pub events: &'a Arc<dyn crate::events::Events>,
}

/// Each source's section, in the config's order, and whether every
/// manifest listed could be read (else the sections have warnings and
/// are not saved as the report).
pub(super) fn sections<'a>(db: Db<'a>, u: &Update<'a>) -> Result<(Vec<flat::Section>, bool)> {
    let Db { file, conn, reader } = db;
    match update(&mut conn?, u, reader) {
        // the cache file is damaged: count from nothing
        Err(Error::Index(_)) if file.is_some() => {
            if let Some(f) = &file {
                remove(f);
            }
            update(&mut open(file.as_deref())?, u, None)
        }
        r => r,
    }
}

/// The status database of a repository, opened before the listing it is
/// updated with is known (status opens it while the names are listed).
pub(super) struct Db<'a> {
    file: Option<PathBuf>,
    conn: Result<Connection>,
    /// A blob reader made ahead (see [`Db::prepare_reader`]).
    reader: Option<BlobReader<'a>>,
}

impl<'a> Db<'a> {
    pub(super) fn open(repo: &Repo) -> Db<'a> {
        let file = file(repo);
        let conn = open(file.as_deref());
        Db {
            file,
            conn,
            reader: None,
        }
    }

    /// Make the blob reader that new rows' trees and forgotten rows' trees
    /// are read with (an index connection and its read snapshot) now,
    /// while the names are still being listed, rather than when first
    /// needed. One that fails is made again then, and its error
    /// reported.
    pub(super) fn prepare_reader(&mut self, repo: &'a Repo) {
        self.reader = BlobReader::new(repo).ok();
    }
}

/// The database file of `repo` (`None`: no cache directory).
fn file(repo: &Repo) -> Option<PathBuf> {
    super::cache_file(repo, "rows4.sqlite")
}

fn remove(f: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = f.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// The database in `file` (created 0600 in a 0700 directory), removed and
/// made again when it does not open; in memory without a cache directory.
fn open(file: Option<&Path>) -> Result<Connection> {
    let attempt = |f: &Path| -> Result<Connection> {
        if !crate::cache::private_dir(f) {
            return Err(Error::Internal(format!("cannot create {}", f.display())));
        }
        let c = Connection::open(f)?;
        c.busy_timeout(std::time::Duration::from_secs(30))?;
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
        c.execute_batch(SCHEMA)?;
        Ok(c)
    };
    if let Some(f) = file {
        if !f.exists() {
            remove_old_files(f);
        }
        if let Ok(c) = attempt(f) {
            return Ok(c);
        }
        remove(f);
        if let Ok(c) = attempt(f) {
            return Ok(c);
        }
    }
    let c = Connection::open_in_memory()?;
    c.execute_batch(SCHEMA)?;
    Ok(c)
}

/// The sizes files of earlier builds (`figures1-*`, `union1-*`) and an
/// earlier rows file, beside `f`: no longer read.
fn remove_old_files(f: &Path) {
    let Some(dir) = f.parent() else { return };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("figures1-") || name.starts_with("union1-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    for old in ["rows1.sqlite", "rows2.sqlite", "rows3.sqlite"] {
        remove(&dir.join(old));
    }
}

fn meta(tx: &Connection, k: &str) -> Result<Option<Vec<u8>>> {
    Ok(tx
        .query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
        .optional()?)
}

fn set_meta(tx: &Connection, k: &str, v: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)",
        params![k, v],
    )?;
    Ok(())
}

/// Forget every source's counted blobs: they are counted again from the
/// trees of the rows.
fn recount_all(tx: &Connection) -> Result<()> {
    tx.execute_batch("DELETE FROM refs; DELETE FROM totals; UPDATE snaps SET logical = NULL;")?;
    Ok(())
}

/// Forget source `name`'s counted blobs: they are counted again from the
/// trees of its rows.
fn recount(tx: &Connection, name: &str) -> Result<()> {
    for q in [
        "DELETE FROM refs WHERE source = ?1",
        "DELETE FROM totals WHERE source = ?1",
        "UPDATE snaps SET logical = NULL WHERE source = ?1",
    ] {
        tx.prepare_cached(q)?.execute([name])?;
    }
    Ok(())
}

fn to_i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The readers of one update: first without reconciling the index (the
/// blobs of snapshots made with this cache are in it); once a blob is not
/// found, after indexing the packs added to the fan-out directories whose
/// stamps changed (`Index::add_new_packs`, stamps kept in `meta`); then
/// after a full reconcile with the packs.
struct Readers<'a> {
    repo: &'a Repo,
    reader: Option<BlobReader<'a>>,
    /// Stages done: 0 none, 1 new packs added, 2 reconciled.
    stage: u8,
    /// The fan-out directories' stamps as last saved.
    packdirs: DirStamps,
    /// Stamps to save.
    save: Option<DirStamps>,
}

impl<'a> Readers<'a> {
    fn get(&mut self) -> Result<&BlobReader<'a>> {
        if self.reader.is_none() {
            self.reader = Some(BlobReader::new(self.repo)?);
        }
        self.reader
            .as_ref()
            .ok_or_else(|| Error::Internal("status reader".into()))
    }

    /// Bring the index closer to the packs (the next stage); `false` when
    /// every stage was done.
    fn refresh(&mut self) -> Result<bool> {
        if self.stage == 0 {
            self.stage = 1;
            let packdirs = std::mem::take(&mut self.packdirs);
            if let Some(keep) = self.get()?.add_new_packs(&packdirs, super::SETTLED)? {
                self.save = Some(keep);
                return Ok(true);
            }
        }
        if self.stage == 1 {
            self.stage = 2;
            self.reader = Some(BlobReader::reporting(self.repo)?);
            return Ok(true);
        }
        Ok(false)
    }
}

fn update<'a>(
    conn: &mut Connection,
    u: &Update<'a>,
    reader: Option<BlobReader<'a>>,
) -> Result<(Vec<flat::Section>, bool)> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if meta(&tx, "rest")?.as_deref() != Some(&u.rest[..]) {
        tx.execute_batch(
            "DELETE FROM snaps; DELETE FROM counts; DELETE FROM runs; DELETE FROM meta;
             DELETE FROM listing;",
        )?;
        recount_all(&tx)?;
        set_meta(&tx, "rest", u.rest)?;
    }
    let (parts, had) = changed_parts(&tx, u.names)?;
    let listed: Vec<SnapshotId> = parts
        .iter()
        .flat_map(|&p| part_of(&u.names.ids, p))
        .copied()
        .collect();
    let (new, gone) = diff(&had, &listed);
    let packdirs: Option<DirStamps> = meta(&tx, "packdirs")?
        .and_then(|b| bincode::decode_from_slice(&b, bincode::config::standard()).ok())
        .map(|(m, _)| m);
    let first = packdirs.is_none();
    let mut readers = Readers {
        repo: u.repo,
        reader,
        stage: 0,
        packdirs: packdirs.unwrap_or_default(),
        save: None,
    };
    if first && !new.is_empty() {
        // no stamps yet: list every fan-out directory once, so that a
        // snapshot made with another cache later lists only its own
        readers.refresh()?;
    }
    let uncounted = drop_gone(&tx, &gone)?;
    uncount(&mut tx, &mut readers, &uncounted)?;
    let (loaded, bad) = load(u.repo, &new)?;
    for e in &bad {
        u.events
            .warning(&format!("skipping unreadable snapshot: {e}"));
    }
    // the listing saved: what was, less what is gone, and what reads
    let mut accounted: Vec<SnapshotId> = had
        .into_iter()
        .filter(|id| gone.binary_search(id).is_err())
        .collect();
    let mut unreadable = crate::snapshot::first_error(bad).map(|e| e.to_string());
    for (id, s) in &loaded {
        // all of a snapshot's rows or none (a savepoint)
        let sp = tx.savepoint()?;
        match add_rows(&sp, &mut readers, u, id, s) {
            Ok(()) => {
                sp.commit()?;
                accounted.push(*id);
            }
            Err(e) if e.is_transport_failure() || matches!(e, Error::Index(_)) => return Err(e),
            Err(e) => {
                u.events
                    .warning(&format!("skipping unreadable snapshot: {e}"));
                unreadable.get_or_insert(e.to_string());
            }
        }
    }
    accounted.sort_unstable();
    save_parts(&tx, &parts, &accounted)?;
    let mut out = Vec::with_capacity(u.cfg.sources.len());
    for s in &u.cfg.sources {
        out.push(section(
            &mut tx,
            &mut readers,
            u,
            &s.name,
            unreadable.as_deref(),
        )?);
    }
    if let Some(keep) = &readers.save {
        if let Ok(b) = bincode::encode_to_vec(keep, bincode::config::standard()) {
            set_meta(&tx, "packdirs", &b)?;
        }
    }
    drop(readers);
    tx.commit()?;
    Ok((out, unreadable.is_none()))
}

/// The ids of `ids` (sorted) whose first byte is `part`.
fn part_of(ids: &[SnapshotId], part: u8) -> &[SnapshotId] {
    let start = ids.partition_point(|id| id.0[0] < part);
    let end = ids.partition_point(|id| id.0[0] <= part);
    &ids[start..end]
}

/// What a part of the listing is compared by: 16 bytes of its digest
/// (`listing::Names::parts`, BLAKE3 of its ids).
fn part_hash(digest: &[u8; 32]) -> &[u8] {
    &digest[..16]
}

/// The parts (first bytes) of the listing `names` that differ from those
/// accounted for, and the ids accounted for in them: a new snapshot reads
/// and writes one part, not the whole listing.
fn changed_parts(tx: &Connection, names: &Names) -> Result<(Vec<u8>, Vec<SnapshotId>)> {
    let mut saved: HashMap<u8, Vec<u8>> = HashMap::new();
    {
        let mut st = tx.prepare_cached("SELECT part, hash FROM listing")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if let Ok(p) = u8::try_from(r.get::<_, i64>(0)?) {
                saved.insert(p, r.get(1)?);
            }
        }
    }
    let (mut parts, mut had) = (Vec::new(), Vec::new());
    let mut st = tx.prepare_cached("SELECT ids FROM listing WHERE part = ?1")?;
    for (p, digest) in (0..=u8::MAX).zip(&names.parts) {
        let same = match saved.get(&p) {
            Some(h) => h[..] == *part_hash(digest),
            None => part_of(&names.ids, p).is_empty(),
        };
        if same {
            continue;
        }
        parts.push(p);
        if saved.contains_key(&p) {
            let raw: Vec<u8> = st.query_row([i64::from(p)], |r| r.get(0))?;
            had.extend(
                raw.chunks_exact(32)
                    .filter_map(|c| <[u8; 32]>::try_from(c).ok().map(SnapshotId)),
            );
        }
    }
    // a part holds ids of its first byte only: `had` is sorted
    Ok((parts, had))
}

/// Save `accounted` (sorted) as the listing's `parts`.
fn save_parts(tx: &Connection, parts: &[u8], accounted: &[SnapshotId]) -> Result<()> {
    for &p in parts {
        let ids = part_of(accounted, p);
        if ids.is_empty() {
            tx.prepare_cached("DELETE FROM listing WHERE part = ?1")?
                .execute([i64::from(p)])?;
            continue;
        }
        let raw: Vec<u8> = ids.iter().flat_map(|id| id.0).collect();
        let digest = *blake3::hash(&raw).as_bytes();
        tx.prepare_cached("INSERT OR REPLACE INTO listing(part, hash, ids) VALUES (?1, ?2, ?3)")?
            .execute(params![i64::from(p), part_hash(&digest), raw])?;
    }
    Ok(())
}

/// The ids in `now` not in `had`, and those in `had` not in `now` (both
/// sorted).
fn diff(had: &[SnapshotId], now: &[SnapshotId]) -> (Vec<SnapshotId>, Vec<SnapshotId>) {
    let (mut new, mut gone) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (had.iter().peekable(), now.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x == y => {
                a.next();
                b.next();
            }
            (Some(x), Some(y)) if x < y => {
                gone.push(**x);
                a.next();
            }
            (_, Some(y)) => {
                new.push(**y);
                b.next();
            }
            (Some(x), None) => {
                gone.push(**x);
                a.next();
            }
            (None, None) => break,
        }
    }
    (new, gone)
}

/// The manifests `ids` that are still there, and the errors of those that
/// do not read.
fn load(repo: &Repo, ids: &[SnapshotId]) -> Result<(crate::snapshot::Listed, Vec<Error>)> {
    if ids.len() >= THROUGH_CACHE {
        let want: BTreeSet<&SnapshotId> = ids.iter().collect();
        let listed = crate::snapshot::stamps(repo)?
            .into_iter()
            .filter(|(id, _)| want.contains(id))
            .collect();
        return crate::snapshot::list_cached_from(repo, listed);
    }
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for id in ids {
        match Snapshot::load(repo, id) {
            Ok(s) => out.push((*id, s)),
            Err(e) if e.is_not_found() => {}
            Err(e) if e.is_transport_failure() => return Err(e),
            Err(e) => bad.push(e),
        }
    }
    Ok((out, bad))
}

/// Is `s` one of source `name`'s snapshots?
fn member(s: &Snapshot, name: &str) -> bool {
    s.tags.iter().any(|t| t == name) && !s.tags.iter().any(|t| t == PRE_RESTORE_TAG)
}

/// What retention groups and filters source `name`'s snapshots by.
fn forget_options(cfg: &Config, name: &str) -> ForgetOptions {
    ForgetOptions {
        policy: cfg.retention.clone(),
        filter: Filter {
            tags: vec![name.to_string()],
            skip_tags: vec![PRE_RESTORE_TAG.to_string()],
            ..Default::default()
        },
        group_by: Default::default(),
        allow_empty: true,
    }
}

/// A counted row gone: its source, root tree and logical bytes.
type Counted = (String, Vec<u8>, u64);

/// A row deleted: source, root tree, logical bytes (`None`: not counted),
/// retention group, run.
type GoneRow = (String, Vec<u8>, Option<i64>, Vec<u8>, i64);

/// Drop the rows of the snapshots `gone` (forgotten); those that were
/// counted, for [`uncount`]. Each row's source count goes down and its
/// run is made again from the rows left in it.
fn drop_gone(tx: &Connection, gone: &[SnapshotId]) -> Result<Vec<Counted>> {
    let mut counted = Vec::new();
    for id in gone {
        let rows: Vec<GoneRow> = tx
            .prepare_cached(
                "DELETE FROM snaps WHERE id = ?1 RETURNING source, tree, logical, grp, run",
            )?
            .query_map([&id.0[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (source, tree, logical, grp, run) in rows {
            tx.prepare_cached("UPDATE counts SET n = n - 1 WHERE source = ?1")?
                .execute([&source])?;
            if !grp.is_empty() {
                rebuild_run(tx, &source, &grp, run)?;
            }
            if let Some(l) = logical {
                counted.push((source, tree, to_u(l)));
            }
        }
    }
    Ok(counted)
}

/// Run `run` of a source's retention group made again from its rows (after
/// one is gone); none when none is left.
fn rebuild_run(tx: &Connection, source: &str, grp: &[u8], run: i64) -> Result<()> {
    tx.prepare_cached("DELETE FROM runs WHERE source = ?1 AND grp = ?2 AND run = ?3")?
        .execute(params![source, grp, run])?;
    tx.prepare_cached(
        "INSERT INTO runs(source, grp, run, newest_ns, oldest_ns, n)
         SELECT source, grp, run, MAX(time_ns), MIN(time_ns), COUNT(*)
         FROM snaps INDEXED BY snaps_by_run WHERE source = ?1 AND grp = ?2 AND run = ?3
         GROUP BY source, grp, run",
    )?
    .execute(params![source, grp, run])?;
    Ok(())
}

/// Take the counted rows `gone` out of their sources' blobs and totals:
/// each root loses a reference, and the trees only it had are read again
/// (refs.rs). A source where that fails (a tree no longer reads, the
/// counts disagree) is counted again from its rows by [`sizes`].
fn uncount(tx: &mut Transaction<'_>, readers: &mut Readers<'_>, gone: &[Counted]) -> Result<()> {
    let mut by_source: BTreeMap<&str, Vec<(&[u8], u64)>> = BTreeMap::new();
    for (source, tree, logical) in gone {
        by_source.entry(source).or_default().push((tree, *logical));
    }
    for (name, rows) in by_source {
        let sp = tx.savepoint()?;
        let done = (|| -> Result<()> {
            let mut c = refs::Counter::new(&sp, readers.get()?, name)?;
            for (tree, logical) in rows {
                c.drop_tree(&root_id(tree)?, 0)?;
                c.totals.logical =
                    c.totals.logical.checked_sub(logical).ok_or_else(|| {
                        Error::Internal("status: logical bytes below zero".into())
                    })?;
            }
            c.finish()
        })();
        match done {
            Ok(()) => sp.commit()?,
            Err(e) if e.is_transport_failure() || matches!(e, Error::Index(_)) => return Err(e),
            Err(_) => {
                drop(sp);
                recount(tx, name)?;
            }
        }
    }
    Ok(())
}

/// A root tree's id from its row.
fn root_id(tree: &[u8]) -> Result<BlobId> {
    <[u8; 32]>::try_from(tree)
        .map(BlobId)
        .map_err(|_| Error::Internal("status row: bad tree id".into()))
}

/// A row for each source `s` belongs to, and it in its retention group's
/// run (`retention::run_key`).
fn add_rows(
    tx: &Connection,
    readers: &mut Readers<'_>,
    u: &Update<'_>,
    id: &SnapshotId,
    s: &Snapshot,
) -> Result<()> {
    let cfg = u.cfg;
    let run = retention::run_key(&cfg.retention, s.time_unix_ns, u.tz);
    for src in cfg.sources.iter().filter(|src| member(s, &src.name)) {
        // `None`: retention's filter leaves it out (it is still counted)
        let grp = match forget::group_of(readers.get()?, s, &forget_options(cfg, &src.name))? {
            Some(k) => blake3::hash(format!("{k:?}").as_bytes()).as_bytes()[..16].to_vec(),
            None => Vec::new(),
        };
        let added = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO snaps(source, id, time_ns, time, grp, tree,
                 bytes_added, bytes_read, logical, run)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9)",
            )?
            .execute(params![
                src.name,
                &id.0[..],
                s.time_unix_ns,
                s.time_string(),
                grp,
                &s.tree.0[..],
                to_i(s.summary.bytes_added),
                to_i(s.summary.bytes_read),
                run,
            ])?;
        if added == 1 {
            tx.prepare_cached(
                "INSERT INTO counts(source, n) VALUES (?1, 1)
                 ON CONFLICT(source) DO UPDATE SET n = n + 1",
            )?
            .execute([&src.name])?;
        }
        if added == 1 && !grp.is_empty() {
            tx.prepare_cached(
                "INSERT INTO runs(source, grp, run, newest_ns, oldest_ns, n)
                 VALUES (?1, ?2, ?3, ?4, ?4, 1)
                 ON CONFLICT(source, grp, run) DO UPDATE SET
                   newest_ns = max(newest_ns, excluded.newest_ns),
                   oldest_ns = min(oldest_ns, excluded.oldest_ns), n = n + 1",
            )?
            .execute(params![src.name, grp, run, s.time_unix_ns])?;
        }
    }
    Ok(())
}

/// Source `name`'s section from its rows.
fn section(
    tx: &mut Transaction<'_>,
    readers: &mut Readers<'_>,
    u: &Update<'_>,
    name: &str,
    unreadable: Option<&str>,
) -> Result<flat::Section> {
    let count: i64 = tx
        .prepare_cached("SELECT n FROM counts WHERE source = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let latest = tx
        .query_row(
            "SELECT id, time, time_ns, bytes_added, bytes_read FROM snaps WHERE source = ?1
             ORDER BY time_ns DESC, id DESC LIMIT 1",
            [name],
            |r| {
                Ok(flat::Latest {
                    id: crate::id::to_hex(&r.get::<_, Vec<u8>>(0)?),
                    time: r.get(1)?,
                    time_unix_ns: r.get(2)?,
                    bytes_added: to_u(r.get(3)?),
                    bytes_read: to_u(r.get(4)?),
                })
            },
        )
        .optional()?;
    let mut warnings = Vec::new();
    let kept = if u.cfg.retention.is_empty() || count == 0 {
        Vec::new()
    } else if let Some(e) = unreadable {
        warnings.push(format!("retention: {e}"));
        Vec::new()
    } else {
        kept(tx, u, name)?
    };
    let sizes = if count == 0 {
        Some((0, 0, 0, None))
    } else {
        match sizes(tx, readers, name) {
            Ok(s) => Some(s),
            Err(Error::Index(e)) => return Err(Error::Index(e)),
            Err(e) => {
                warnings.push(format!("sizes: {e}"));
                None
            }
        }
    };
    Ok(flat::Section {
        snapshots: to_u(count),
        newest_ns: latest.as_ref().map_or(i64::MIN, |l| l.time_unix_ns),
        latest,
        kept,
        sizes,
        warnings,
    })
}

/// What each retention rule that is on keeps of source `name`'s
/// snapshots now (`super::rules` order), as `forget` would decide
/// (`forget::plan_listed`: the same groups, order and policy): from each
/// group's runs (`retention::kept_by_runs`, a few per day of snapshots),
/// with a range count for `--keep-within`; every row is walked only when a
/// snapshot is dated after `now` or runs overlap (clocks turned back).
fn kept(tx: &Connection, u: &Update<'_>, name: &str) -> Result<Vec<u64>> {
    let rules: Vec<retention::Rule> = super::rules(&u.cfg.retention)
        .into_iter()
        .map(|(r, _, _)| r)
        .collect();
    let newest: Option<i64> = tx
        .prepare_cached("SELECT MAX(newest_ns) FROM runs WHERE source = ?1")?
        .query_row([name], |r| r.get(0))?;
    if newest.is_some_and(|t| t > u.now) {
        return kept_walk(tx, u, name, &rules);
    }
    let mut groups: BTreeMap<Vec<u8>, Vec<retention::Run>> = BTreeMap::new();
    {
        let mut st = tx.prepare_cached(
            "SELECT grp, newest_ns, oldest_ns, n FROM runs WHERE source = ?1
             ORDER BY grp, newest_ns DESC",
        )?;
        let mut rows = st.query([name])?;
        while let Some(r) = rows.next()? {
            groups.entry(r.get(0)?).or_default().push(retention::Run {
                newest_ns: r.get(1)?,
                oldest_ns: r.get(2)?,
                count: to_u(r.get(3)?),
            });
        }
    }
    let mut within = tx.prepare_cached(
        "SELECT COUNT(*) FROM snaps WHERE source = ?1 AND grp = ?2 AND time_ns > ?3",
    )?;
    let mut kept = vec![0u64; rules.len()];
    for (grp, runs) in &groups {
        let count_after = |after: Option<i128>| -> Result<u64> {
            let after = match after {
                None => i64::MIN,
                Some(a) => match i64::try_from(a) {
                    Ok(a) => a,
                    Err(_) if a < 0 => i64::MIN,
                    Err(_) => return Ok(0),
                },
            };
            let n: i64 = within.query_row(params![name, grp, after], |r| r.get(0))?;
            Ok(to_u(n))
        };
        let by_runs = retention::kept_by_runs(runs, &u.cfg.retention, u.tz, &rules, count_after)?;
        let Some(counts) = by_runs else {
            return kept_walk(tx, u, name, &rules);
        };
        for (k, n) in counts.into_iter().enumerate() {
            kept[k] += n;
        }
    }
    Ok(kept)
}

/// [`kept`] by `retention::kept` over every row of every group.
fn kept_walk(
    tx: &Connection,
    u: &Update<'_>,
    name: &str,
    rules: &[retention::Rule],
) -> Result<Vec<u64>> {
    // per group, each time; tags give reasons no rule counted here has
    let mut groups: BTreeMap<[u8; 16], Vec<i64>> = BTreeMap::new();
    // each group newest first, ties by id: `forget::newer_first`
    let mut st = tx.prepare_cached(
        "SELECT grp, time_ns FROM snaps WHERE source = ?1 ORDER BY grp, time_ns DESC, id",
    )?;
    let mut rows = st.query([name])?;
    let bad = || Error::Internal("status row: bad group".into());
    while let Some(r) = rows.next()? {
        let grp = r.get_ref(0)?.as_blob().map_err(|_| bad())?;
        if grp.is_empty() {
            continue;
        }
        let grp = <[u8; 16]>::try_from(grp).map_err(|_| bad())?;
        groups.entry(grp).or_default().push(r.get(1)?);
    }
    let mut kept = vec![0u64; rules.len()];
    for members in groups.values() {
        let items: Vec<Item<'_>> = members
            .iter()
            .map(|&t| Item {
                time_unix_ns: t,
                tags: &[],
            })
            .collect();
        let counts = retention::kept(&items, &u.cfg.retention, u.now, u.tz, rules);
        for (k, n) in counts.into_iter().enumerate() {
            kept[k] += n;
        }
    }
    Ok(kept)
}

/// Source `name`'s logical, raw and stored bytes and dedup ratio: the
/// roots of its rows not counted yet are walked first (a savepoint: a
/// failed walk leaves nothing half counted), once more after reconciling
/// the index with the packs if a blob was not found.
fn sizes(
    tx: &mut Transaction<'_>,
    readers: &mut Readers<'_>,
    name: &str,
) -> Result<(u64, u64, u64, Option<f64>)> {
    // each root not counted yet, with the ids of its rows
    let mut roots: Roots = BTreeMap::new();
    {
        let mut st =
            // the partial index: the planner, without statistics, would
            // read every row of the source by the primary key
            tx.prepare_cached(
                "SELECT tree, id FROM snaps INDEXED BY snaps_uncounted
                 WHERE source = ?1 AND logical IS NULL",
            )?;
        let mut rows = st.query([name])?;
        while let Some(r) = rows.next()? {
            roots.entry(r.get(0)?).or_default().push(r.get(1)?);
        }
    }
    if !roots.is_empty() {
        loop {
            let sp = tx.savepoint()?;
            match count_roots(&sp, readers.get()?, name, &roots) {
                Ok(()) => {
                    sp.commit()?;
                    break;
                }
                Err(e @ Error::Index(_)) => return Err(e),
                Err(e) => {
                    drop(sp);
                    if !readers.refresh()? {
                        return Err(e);
                    }
                }
            }
        }
    }
    let t = refs::Totals::load(tx, name)?;
    let content = t.data_raw + t.inline;
    let logical = t.logical;
    Ok((
        logical,
        t.raw,
        t.stored,
        (content > 0)
            .then(|| logical as f64 / content as f64)
            .filter(|r| *r > 0.0),
    ))
}

/// Root trees (bytes) not counted yet, each with the ids of its rows.
type Roots = BTreeMap<Vec<u8>, Vec<Vec<u8>>>;

/// Count the root trees `roots` for source `name`, one reference per row
/// (refs.rs): their logical bytes go to their rows and the totals.
fn count_roots(tx: &Connection, reader: &BlobReader, name: &str, roots: &Roots) -> Result<()> {
    let mut c = refs::Counter::new(tx, reader, name)?;
    let mut logicals = Vec::with_capacity(roots.len());
    for (r, ids) in roots {
        let root = root_id(r)?;
        let mut logical = 0;
        for _ in ids {
            logical = c.add_tree(&root, 0)?;
        }
        // each snapshot of the tree counts its logical bytes
        c.totals.logical += logical * ids.len() as u64;
        logicals.push(logical);
    }
    c.finish()?;
    let mut st =
        tx.prepare_cached("UPDATE snaps SET logical = ?1 WHERE source = ?2 AND id = ?3")?;
    for (ids, logical) in roots.values().zip(logicals) {
        for id in ids {
            st.execute(params![to_i(logical), name, id])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn diff_finds_added_and_gone_ids() {
        let id = |b: u8| SnapshotId([b; 32]);
        let (new, gone) = diff(&[id(1), id(3), id(5)], &[id(2), id(3), id(6), id(7)]);
        assert_eq!(new, vec![id(2), id(6), id(7)]);
        assert_eq!(gone, vec![id(1), id(5)]);
        assert_eq!(diff(&[], &[id(1)]), (vec![id(1)], vec![]));
        assert_eq!(diff(&[id(1)], &[]), (vec![], vec![id(1)]));
    }
}
