//! `strata check` (format-spec/check.md): is the repository whole, and
//! where is it not. In order:
//!
//! 1. the config, the key files and their info files, every snapshot
//!    manifest, the dictionaries and the gc state files decode;
//! 2. the index is reconciled with one listing of `packs/`: every indexed
//!    pack exists with the size the index records, and every pack's
//!    trailer verifies and agrees with the index rows;
//! 3. every tree reachable from a snapshot (and from a snapshot forgotten
//!    within gc's grace period, gc.md) is read from its pack, never from
//!    the local cache, and decodes; every blob it references is in the
//!    index (gc's mark, `mark_all`); packs holding no referenced blob are
//!    listed, not errors;
//! 4. with `--read-data…`, the chosen packs are read whole on every core
//!    (data.rs): each pack's BLAKE3 against its name, each blob against
//!    its id;
//! 5. only if blobs are damaged or missing: a second walk names the
//!    snapshots and paths that use them (usage.rs).
//!
//! Every problem names its object, and a damaged pack every blob it makes
//! unreadable. What was verified when is kept on this machine (state.rs).

mod data;
pub mod select;
pub mod state;
pub(crate) mod usage;

use super::mark::{self, MarkProgress};
use super::plan;
use super::repair::damaged;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{Index, PackRow};
use crate::read::BlobReader;
use crate::repo::Repo;
use rayon::prelude::*;
pub use select::{Order, Subset};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use usage::Use;

/// Validated options of `strata check`.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Read pack data, and which packs; `None` checks structure only.
    pub read_data: Option<Subset>,
    /// How a percentage or size picks packs.
    pub order: Order,
    /// With read-data: leave out packs verified within this long.
    pub max_age: Option<Duration>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            read_data: None,
            order: Order::Random,
            max_age: None,
        }
    }
}

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Trees read by the structure walk.
    pub mark: MarkProgress,
    /// Pack bytes read by read-data.
    pub bytes: Arc<AtomicU64>,
    /// Pack bytes read-data will read.
    pub total_bytes: AtomicU64,
}

/// A damaged or missing blob.
#[derive(Clone, Debug, Serialize)]
pub struct BadBlob {
    /// The blob id (hex).
    pub id: String,
    /// What is wrong.
    pub detail: String,
}

/// One problem: an object that is damaged or missing.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// What: `config`, `keys/…`, `snapshots/…`, `dicts/…`, `gc/…`,
    /// `pack <id>`, `tree <id>`, `index`.
    pub object: String,
    /// The pack concerned (hex), if any.
    pub pack: Option<String>,
    /// What is wrong, one line.
    pub message: String,
    /// The blobs it makes unreadable or that are missing.
    pub blobs: Vec<BadBlob>,
    /// Snapshots and paths using those blobs (at most 100).
    pub used_by: Vec<Use>,
}

/// What read-data did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReadData {
    /// Packs the subset chose.
    pub packs_selected: u64,
    /// Packs left out because they were verified within `--max-age`.
    pub packs_recent: u64,
    /// Packs read.
    pub packs_read: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time of the reading.
    pub seconds: f64,
    /// Bytes read per second, in MB (10^6).
    pub mb_per_s: f64,
    /// The packs read (hex).
    pub packs: Vec<String>,
}

/// The result of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees read.
    pub trees: u64,
    /// Distinct blobs referenced.
    pub blobs: u64,
    /// Pack files.
    pub packs: u64,
    /// Problems found; empty means clean.
    pub problems: Vec<Problem>,
    /// Packs holding no blob any snapshot references (not errors: gc
    /// removes them).
    pub unreferenced_packs: Vec<String>,
    /// Notes that are not problems (state file unreadable...).
    pub warnings: Vec<String>,
    /// Snapshots this machine saw that are gone without a removal from
    /// here (repo/seen.rs): a warning, not a problem.
    pub vanished_snapshots: Vec<String>,
    /// With `--read-data…`.
    pub read_data: Option<ReadData>,
    /// Wall time.
    pub seconds: f64,
}

/// Problems gathered per pack, per blob, and otherwise.
#[derive(Default)]
struct Found {
    packs: BTreeMap<PackId, (Vec<String>, BTreeMap<BlobId, String>)>,
    /// Blobs a snapshot needs that no pack holds.
    missing: BTreeSet<BlobId>,
    other: Vec<Problem>,
    /// Blobs found unreadable, for the record of damaged blobs.
    record: Vec<damaged::Found>,
    /// Reachable blobs whose only copies were recorded damaged, by pack
    /// (`None`: gone): problems if a live snapshot uses them (a backup
    /// never reuses them from a parent, so a forgotten root does not
    /// count), unless read-data finds the pack intact now.
    recorded: BTreeMap<Option<PackId>, Vec<(BlobId, String)>>,
}

impl Found {
    fn pack(&mut self, p: &PackId, msg: impl Into<String>) {
        let msg = msg.into();
        let msgs = &mut self.packs.entry(*p).or_default().0;
        if !msgs.contains(&msg) {
            msgs.push(msg);
        }
    }
    fn blob(&mut self, p: &PackId, b: &BlobId, why: impl Into<String>) {
        self.packs
            .entry(*p)
            .or_default()
            .1
            .entry(*b)
            .or_insert_with(|| why.into());
    }
    fn other(&mut self, object: impl Into<String>, e: impl std::fmt::Display) {
        self.other.push(Problem {
            object: object.into(),
            pack: None,
            message: e.to_string(),
            blobs: Vec::new(),
            used_by: Vec::new(),
        });
    }
    fn damaged(&self) -> HashSet<BlobId> {
        let mut out: HashSet<BlobId> = self.missing.iter().copied().collect();
        for (_, blobs) in self.packs.values() {
            out.extend(blobs.keys().copied());
        }
        out
    }
}

/// Run a check of `repo`.
pub fn run(repo: &Repo, opts: &CheckOptions, progress: &Progress) -> Result<CheckReport> {
    let started = Instant::now();
    let now = crate::repo::now_ns() / 1_000_000_000;
    let state_path = state::path(&repo.config().repo_id);
    if opts.max_age.is_some() && opts.read_data.is_some() && state_path.is_none() {
        return Err(Error::Invalid(
            "--max-age needs the local cache directory, where verification times are kept \
             (STRATA_CACHE_DIR is empty)"
                .into(),
        ));
    }
    let mut report = CheckReport::default();
    let mut found = Found::default();

    // 1. Files that must decode.
    files(repo, &mut found)?;
    let (snapshots, bad) = crate::snapshot::list(repo)?;
    for e in bad {
        found.other("snapshot", e);
    }
    report.snapshots = snapshots.len() as u64;
    // Kept in the record, so every check warns until `snapshots` has.
    let vanished = crate::snapshot::vanished(repo)?;
    report.vanished_snapshots = vanished.iter().map(|i| i.to_hex()).collect();
    report
        .warnings
        .extend(crate::repo::seen::warning(&vanished));
    let dicts = crate::dict::load(repo)?;
    for e in &dicts.unreadable {
        found.other("dictionary", e);
    }

    // 2. Index, listing, sizes, trailers.
    let mut index = repo.index()?;
    let rec = index.reconcile(repo)?;
    let rec_complete = rec.warnings.is_empty();
    for e in &rec.state.unreadable {
        found.other("gc state", e);
    }
    let listed = rec.listed;
    report.packs = listed.len() as u64;
    // Rows of blobs recorded damaged leave the index (again, after a rebuild).
    let mut recorded = match damaged::Damaged::load(repo) {
        Ok(d) => d,
        Err(e) => {
            report.warnings.push(e.to_string());
            damaged::Damaged::default()
        }
    };
    // With read-data, a recorded pack whose bytes hash to its name again
    // (restored from a copy, a bad read) is cleared first, so that its
    // rows are back before the trees are walked (check.md "Damaged blobs").
    if opts.read_data.is_some() && !recorded.is_empty() {
        let mut again: Vec<PackId> = recorded
            .entries()
            .filter_map(|(_, p, _)| p.copied())
            .filter(|p| listed.contains_key(p))
            .collect();
        again.sort();
        again.dedup();
        let intact: Vec<PackId> = again
            .into_par_iter()
            .filter(|p| {
                let size = listed.get(p).copied().unwrap_or(0);
                data::verify_pack(repo, p, size, &[], Arc::new(AtomicU64::new(0))).is_clean()
            })
            .collect();
        if !intact.is_empty() {
            damaged::forget_packs(repo, &intact)?;
            index.remove_packs(&intact)?;
            index.reconcile(repo)?;
            recorded = damaged::Damaged::load(repo)?;
        }
    }
    recorded.apply(&index)?;
    let mut dropped: HashSet<(BlobId, PackId)> = HashSet::new();
    // blob -> (its pack if that still exists, why)
    let mut recorded_in: HashMap<BlobId, Vec<(Option<PackId>, String)>> = HashMap::new();
    for (b, p, e) in recorded.entries() {
        let p = p.filter(|p| listed.contains_key(*p)).copied();
        if let Some(p) = p {
            dropped.insert((*b, p));
        }
        recorded_in
            .entry(*b)
            .or_default()
            .push((p, format!("recorded damaged: {}", e.detail)));
    }
    let dropped_ids: HashSet<BlobId> = recorded.entries().map(|(b, _, _)| *b).collect();
    let packs: HashMap<i64, PackRow> = index.packs()?.into_iter().map(|p| (p.rowid, p)).collect();
    for p in packs.values() {
        let size = listed.get(&p.id);
        if p.missing {
            found.pack(
                &p.id,
                "missing: the index lists it, but there is no such file (and gc did not delete it)",
            );
        } else if let Some(&s) = size.filter(|s| **s != p.size) {
            found.pack(
                &p.id,
                format!(
                    "{s} bytes on storage, {} in the index: truncated or damaged",
                    p.size
                ),
            );
        } else {
            continue;
        }
        for b in index.blobs_of(p.rowid)? {
            found.blob(&p.id, &b.id, "in this pack");
            if p.missing {
                found
                    .record
                    .push((b.id, Some(p.id), "its pack is missing".into()));
            }
        }
    }
    trailers(repo, &index, &packs, &listed, &dropped, &mut found)?;
    let compressed_2: i64 = index.conn().query_row(
        "SELECT count(*) FROM blobs WHERE compression = 2",
        [],
        |r| r.get(0),
    )?;
    if compressed_2 > 0 && dicts.is_empty() {
        found.other(
            "dicts/",
            format!(
                "{compressed_2} blobs are compressed with a dictionary, and dicts/ holds none \
                 that reads"
            ),
        );
    }

    // 3. Every reachable tree, every referenced blob.
    let mut roots: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
    let grace = crate::repo::gcstate::grace_from_env()?;
    let due_before =
        crate::repo::now_ns().saturating_sub(i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX));
    for (tree, since) in rec.state.forgotten.values() {
        if *since > due_before {
            roots.extend(tree);
        }
    }
    roots.sort();
    roots.dedup();
    let reader = BlobReader::new(repo)?.without_cache();
    let marked = mark::mark_all(&reader, &roots, &progress.mark)?;
    report.trees = marked.trees;
    for (tree, e) in &marked.unreadable {
        pinpoint(&reader, tree, e, &mut found)?;
    }
    index.conn().execute(
        "ATTACH DATABASE ?1 AS m",
        [marked.path().to_string_lossy().as_ref()],
    )?;
    let mut used: HashSet<i64> = HashSet::new();
    let reach = plan::for_each_reachable(index.conn(), &mut |id, rows| {
        report.blobs += 1;
        match plan::choose(rows, &packs) {
            Some((row, _)) => {
                used.insert(row.pack);
            }
            None if rows.is_empty() => match recorded_in.get(&id) {
                Some(copies) => {
                    for (p, why) in copies {
                        found
                            .recorded
                            .entry(*p)
                            .or_default()
                            .push((id, why.clone()));
                    }
                }
                None => {
                    found.missing.insert(id);
                    // only when every listed pack was indexed (a pack
                    // skipped as unreadable may hold it) and no recorded
                    // entry dropped its rows in this run
                    if rec_complete && !dropped_ids.contains(&id) {
                        found.record.push((id, None, "in no pack".into()));
                    }
                }
            },
            None => {
                for r in rows {
                    if let Some(p) = packs.get(&r.pack) {
                        found.blob(&p.id, &id, "in this pack");
                    }
                }
            }
        }
        Ok(())
    });
    index.conn().execute_batch("DETACH DATABASE m")?;
    reach?;
    // A recorded tree that does not read (pinpoint) counts as recorded.
    let recorded_missing: Vec<BlobId> = found
        .missing
        .iter()
        .filter(|b| recorded_in.contains_key(b))
        .copied()
        .collect();
    for b in recorded_missing {
        found.missing.remove(&b);
        found
            .recorded
            .entry(None)
            .or_default()
            .push((b, "recorded damaged; its pack is gone".into()));
    }
    drop(marked);
    let mut unreferenced: Vec<PackId> = packs
        .values()
        .filter(|p| !used.contains(&p.rowid) && p.condemned.is_none() && !p.missing)
        .map(|p| p.id)
        .collect();
    unreferenced.sort();
    report.unreferenced_packs = unreferenced.iter().map(|p| p.to_hex()).collect();

    // 4. Read data.
    let mut ok_packs = Vec::new();
    let mut bad_packs = Vec::new();
    let (mut st, st_warning) = match &state_path {
        Some(p) => state::CheckState::load(p),
        None => (state::CheckState::default(), None),
    };
    report.warnings.extend(st_warning);
    if let Some(subset) = opts.read_data {
        let mut all: Vec<(PackId, u64)> = listed.iter().map(|(p, s)| (*p, *s)).collect();
        all.sort();
        let verified = st.verified_map();
        let fresh_after = opts
            .max_age
            .map(|a| now.saturating_sub(i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
        let todo = select::select(&all, subset, opts.order, &verified, fresh_after, &seed()?);
        let recent = match fresh_after {
            Some(after) => all
                .iter()
                .filter(|(p, _)| verified.get(p).is_some_and(|t| *t > after))
                .count(),
            None => 0,
        };
        let rowids: HashMap<PackId, i64> = packs.values().map(|p| (p.id, p.rowid)).collect();
        let rd = read_data(repo, index, &rowids, &todo, progress, &mut found)?;
        for (p, clean) in rd.1 {
            if clean {
                ok_packs.push(p);
            } else {
                bad_packs.push(p);
            }
        }
        report.read_data = Some(ReadData {
            packs_selected: todo.len() as u64,
            packs_recent: recent as u64,
            ..rd.0
        });
    }

    // A pack recorded damaged that read-data found intact (its hash is
    // its name: every byte as written) was damaged in passing (restored
    // from a copy, a bad read): its entries go and its rows come back.
    let intact: Vec<PackId> = ok_packs
        .iter()
        .filter(|p| recorded.entries().any(|(_, q, _)| q == Some(*p)))
        .copied()
        .collect();
    found
        .recorded
        .retain(|p, _| p.is_none_or(|p| !intact.contains(&p)));
    // Nothing in a pack found intact is damaged: a tree that did not read
    // because its rows were dropped for such a pack is not recorded again.
    let verified_ok: HashSet<PackId> = ok_packs.iter().copied().collect();
    found
        .record
        .retain(|(_, p, _)| p.is_none_or(|p| !verified_ok.contains(&p)));
    let recorded = if intact.is_empty() {
        recorded
    } else {
        damaged::forget_packs(repo, &intact)?;
        let mut index = repo.index()?;
        index.remove_packs(&intact)?;
        index.reconcile(repo)?;
        damaged::Damaged::load(repo)?
    };

    // The record of damaged blobs, for the next backup and `repair`.
    if !found.record.is_empty() || !recorded.is_empty() {
        let index = repo.index()?;
        if let Err(e) = damaged::record(repo, &index, &found.record, &|p| listed.contains_key(p)) {
            report
                .warnings
                .push(format!("damaged blobs not recorded: {e}"));
        }
    }

    // 5. Who uses what is damaged.
    let mut damaged = found.damaged();
    damaged.extend(found.recorded.values().flatten().map(|(b, _)| *b));
    let uses = if damaged.is_empty() {
        BTreeMap::new()
    } else {
        usage::find(&reader, &snapshots, &damaged)
    };
    for (p, blobs) in std::mem::take(&mut found.recorded) {
        for (b, why) in blobs.into_iter().filter(|(b, _)| uses.contains_key(b)) {
            match &p {
                Some(p) => found.blob(p, &b, why),
                None => {
                    found.missing.insert(b);
                }
            }
        }
    }
    report.problems = problems(found, &uses);
    report.seconds = started.elapsed().as_secs_f64();

    if let Some(p) = &state_path {
        let last = state::LastCheck {
            time_unix: now,
            read_data: opts.read_data.is_some(),
            errors: report.problems.len() as u64,
            first_error: report.problems.first().map(describe),
            packs: report.packs,
            packs_read: report.read_data.as_ref().map_or(0, |r| r.packs_read),
            seconds: report.seconds,
        };
        st.record(&|id| listed.contains_key(id), &ok_packs, &bad_packs, last);
        if let Err(e) = st.save(p) {
            report
                .warnings
                .push(format!("verification times not recorded: {e}"));
        }
    }
    Ok(report)
}

/// A problem as one line: object, message, blob count.
pub fn describe(p: &Problem) -> String {
    let mut s = format!("{}: {}", p.object, p.message);
    if !p.blobs.is_empty() {
        s.push_str(&format!(" ({} blobs)", p.blobs.len()));
    }
    s
}

/// Step 1: the config, the keys and their info files.
fn files(repo: &Repo, found: &mut Found) -> Result<()> {
    let limit = crate::object::MAX_OBJECT + crate::object::HEADER_LEN;
    let config = repo.read("config").and_then(|b| match repo.crypto() {
        Some(c) => {
            let plain = c.decrypt(&b, "config", limit)?;
            crate::repo::config::Config::from_bytes(&plain, "config", Some(c))
        }
        None => crate::repo::config::Config::from_bytes(&b, "config", None),
    });
    if let Err(e) = config {
        found.other("config", e);
    }
    let Some(crypto) = repo.crypto() else {
        return Ok(());
    };
    let store = repo.store();
    for id in crate::crypto::keys::key_ids(&**store)? {
        let object = format!("keys/{id}");
        match store.get(&object) {
            Ok(b) => {
                if let Err(e) = crate::crypto::agefile::is_scrypt(&b) {
                    found.other(&object, e.into_error(&object));
                }
            }
            Err(e) => found.other(&object, e),
        }
        if let Err(e) = crate::crypto::keys::info(&**store, crypto, &id) {
            found.other(format!("keys/{id}.info"), e);
        }
    }
    Ok(())
}

/// Packs whose trailers are read per batch (in parallel).
const TRAILER_BATCH: usize = 64;

/// Step 2: every listed pack's trailer verifies and agrees with the index.
fn trailers(
    repo: &Repo,
    index: &Index,
    packs: &HashMap<i64, PackRow>,
    listed: &HashMap<PackId, u64>,
    dropped: &HashSet<(BlobId, PackId)>,
    found: &mut Found,
) -> Result<()> {
    let rowid: HashMap<PackId, i64> = packs.values().map(|p| (p.id, p.rowid)).collect();
    let mut all: Vec<PackId> = listed.keys().copied().collect();
    all.sort();
    for batch in all.chunks(TRAILER_BATCH) {
        let read: Vec<Result<Vec<crate::pack::PackEntry>>> = batch
            .par_iter()
            .map(|id| {
                let f = repo.open_pack(id)?;
                Ok(crate::pack::reader::read_trailer(&f, &format!("pack {}", id.short()))?.1)
            })
            .collect();
        for (id, r) in batch.iter().zip(read) {
            let rows = match rowid.get(id) {
                Some(r) => index.blobs_of(*r)?,
                None => Vec::new(),
            };
            match r {
                // deleted by a concurrent gc between listing and reading
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    found.pack(id, short(&e));
                    for b in &rows {
                        found.blob(id, &b.id, "unreadable once the index is rebuilt");
                    }
                }
                Ok(mut entries) => {
                    // rows of recorded damaged blobs were dropped on purpose
                    entries.retain(|e| !dropped.contains(&(e.id, *id)));
                    let same = entries.len() == rows.len()
                        && entries.iter().zip(&rows).all(|(e, r)| {
                            e.id == r.id
                                && e.offset == r.offset
                                && e.stored_len == r.stored_len
                                && e.raw_len == r.raw_len
                                && e.kind == r.kind
                                && e.compression == r.compression
                        });
                    if !same {
                        found.pack(
                            id,
                            format!(
                                "the index does not agree with the pack's trailer ({} entries, \
                                 {} index rows): run `strata rebuild-index`",
                                entries.len(),
                                rows.len()
                            ),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Step 3: an unreadable tree, attributed to the blob that fails (the
/// tree, or one of its parts) and its pack. A tree the index does not
/// know is reported as missing by the reachable pass.
fn pinpoint(reader: &BlobReader, tree: &BlobId, e: &Error, found: &mut Found) -> Result<()> {
    let mut record = |id: &BlobId, e: &Error| -> Result<()> {
        match reader.locate(id)? {
            Some(loc) => {
                found.blob(&loc.pack, id, short(e));
                if !e.is_transport_failure() {
                    found.record.push((*id, Some(loc.pack), short(e)));
                }
            }
            None => {
                found.missing.insert(*id);
            }
        }
        Ok(())
    };
    let top = reader
        .read_kind(tree, Some(crate::blob::BlobKind::Tree))
        .and_then(|b| crate::snapshot::tree::Tree::decode(&b, tree));
    match top {
        Err(e) => record(tree, &e),
        Ok(t) => {
            let mut any = false;
            for p in &t.parts {
                if let Err(pe) = reader.part(p) {
                    record(p, &pe)?;
                    any = true;
                }
            }
            if !any {
                record(tree, e)?;
            }
            Ok(())
        }
    }
}

/// Step 4: read `todo` on every core; returns the figures and, per pack
/// read, whether it was clean.
fn read_data(
    repo: &Repo,
    index: Index,
    rowids: &HashMap<PackId, i64>,
    todo: &[(PackId, u64)],
    progress: &Progress,
    found: &mut Found,
) -> Result<(ReadData, Vec<(PackId, bool)>)> {
    progress
        .total_bytes
        .store(todo.iter().map(|(_, s)| s).sum(), Relaxed);
    let index = Mutex::new(index);
    let t0 = Instant::now();
    let results: Vec<(PackId, data::PackOutcome)> = todo
        .par_iter()
        .map(|(id, size)| -> Result<(PackId, data::PackOutcome)> {
            let rows = match rowids.get(id) {
                Some(r) => index
                    .lock()
                    .map_err(|_| Error::Invalid("index lock poisoned".into()))?
                    .blobs_of(*r)?,
                None => Vec::new(),
            };
            let out = data::verify_pack(repo, id, *size, &rows, progress.bytes.clone());
            Ok((*id, out))
        })
        .collect::<Result<_>>()?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut rd = ReadData {
        seconds,
        ..ReadData::default()
    };
    let mut clean = Vec::with_capacity(results.len());
    for (id, out) in results {
        rd.packs_read += 1;
        rd.packs.push(id.to_hex());
        rd.bytes += out.bytes;
        clean.push((id, out.is_clean()));
        for p in out.problems {
            found.pack(&id, p);
        }
        for (b, why) in out.bad_blobs {
            found.record.push((b, Some(id), why.clone()));
            found.blob(&id, &b, why);
        }
        for (b, why) in out.unread {
            found.blob(&id, &b, why);
        }
    }
    rd.mb_per_s = if seconds > 0.0 {
        rd.bytes as f64 / 1e6 / seconds
    } else {
        0.0
    };
    Ok((rd, clean))
}

/// The problems in order: files, packs, missing blobs; each with its uses.
fn problems(found: Found, uses: &BTreeMap<BlobId, Vec<Use>>) -> Vec<Problem> {
    let used_by = |blobs: &mut dyn Iterator<Item = &BlobId>| -> Vec<Use> {
        let mut v: BTreeSet<Use> = BTreeSet::new();
        for b in blobs {
            v.extend(uses.get(b).into_iter().flatten().cloned());
        }
        v.into_iter().take(100).collect()
    };
    let mut out = found.other;
    for (pack, (mut msgs, blobs)) in found.packs {
        if msgs.is_empty() {
            msgs.push(format!("{} damaged blobs", blobs.len()));
        }
        out.push(Problem {
            object: format!("pack {}", pack.to_hex()),
            pack: Some(pack.to_hex()),
            message: msgs.join("; "),
            used_by: used_by(&mut blobs.keys()),
            blobs: blobs
                .into_iter()
                .map(|(id, detail)| BadBlob {
                    id: id.to_hex(),
                    detail,
                })
                .collect(),
        });
    }
    if !found.missing.is_empty() {
        out.push(Problem {
            object: "index".into(),
            pack: None,
            message: format!(
                "{} blobs that snapshots need are in no pack",
                found.missing.len()
            ),
            used_by: used_by(&mut found.missing.iter()),
            blobs: found
                .missing
                .iter()
                .map(|id| BadBlob {
                    id: id.to_hex(),
                    detail: "in no pack".into(),
                })
                .collect(),
        });
    }
    out
}

/// A random seed for the random subsets.
fn seed() -> Result<[u8; 32]> {
    crate::repo::fsutil::random_bytes()
}

/// An error without the object prefix the caller already names.
pub(crate) fn short(e: &Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail.clone(),
        e => e.to_string(),
    }
}
