//! `index.sqlite` (format-spec/index.md): blob id -> pack locations. A cache:
//! `Index::reconcile` (repo/reconcile.rs) brings it up to date with the packs
//! in the repository and the gc state; an index that is missing, damaged or
//! of another schema version is never served but rebuilt from the packs
//! (repo/rebuild.rs, via `Repo::index`). This module is the SQLite side
//! alone. A blob may be stored in several packs; reads prefer a live pack,
//! dedup uses live packs only (format-spec/gc.md "Index").

use crate::blob::{BlobKind, Compression};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::pack::reader::BlobLocation;
use crate::pack::writer::SealedPack;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Schema version (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packs (
  id         INTEGER PRIMARY KEY,
  name       BLOB NOT NULL UNIQUE,
  kind       INTEGER NOT NULL,
  size       INTEGER NOT NULL,
  blob_count INTEGER NOT NULL,
  condemned  INTEGER,
  missing    INTEGER NOT NULL DEFAULT 0,
  writer     BLOB,
  trusted    INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS blobs (
  id          BLOB NOT NULL,
  pack        INTEGER NOT NULL REFERENCES packs(id),
  offset      INTEGER NOT NULL,
  stored_len  INTEGER NOT NULL,
  raw_len     INTEGER NOT NULL,
  kind        INTEGER NOT NULL,
  compression INTEGER NOT NULL,
  PRIMARY KEY (id, pack)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS packs_excluded ON packs(id)
  WHERE condemned IS NOT NULL OR missing != 0 OR trusted = 0;
";

/// The packs dedup must not use, found without reading every pack row
/// ([`Index::refresh_condemned`] on every open; format-spec/index.md). Its
/// `WHERE` is the query's, so SQLite uses it. Made on open when missing
/// (an index of an earlier release).
const EXCLUDED_INDEX: &str = "CREATE INDEX IF NOT EXISTS packs_excluded ON packs(id)
  WHERE condemned IS NOT NULL OR missing != 0 OR trusted = 0;";

/// One row of `packs`.
#[derive(Clone, Debug)]
pub struct PackRow {
    /// Local row id (never stored elsewhere).
    pub rowid: i64,
    /// The pack.
    pub id: PackId,
    /// Data or tree pack.
    pub kind: BlobKind,
    /// File length.
    pub size: u64,
    /// Trailer entries.
    pub blob_count: u64,
    /// Condemned since (Unix ns), `None` if live.
    pub condemned: Option<i64>,
    /// The file is gone without a record of gc deleting it.
    pub missing: bool,
    /// The write-only key that wrote it (format 3), if one did.
    pub writer: Option<crate::id::KeyId>,
    /// Whether dedup may use it (write-only.md "Attribution and
    /// poisoning"): written by a full key, or verified by one.
    pub trusted: bool,
}

/// One row of `blobs`, with the pack's row id.
#[derive(Clone, Copy, Debug)]
pub struct BlobRow {
    /// The blob.
    pub id: BlobId,
    /// `packs.id` of its pack.
    pub pack: i64,
    /// Plaintext offset in the pack.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// Raw length.
    pub raw_len: u32,
    /// Kind.
    pub kind: BlobKind,
    /// Compression.
    pub compression: Compression,
}

/// One blob as [`Index::for_each_blob`] reports it.
#[derive(Clone, Copy, Debug)]
pub struct BlobInfo {
    /// The blob.
    pub id: BlobId,
    /// Stored length.
    pub stored_len: u32,
    /// Raw length.
    pub raw_len: u32,
    /// Its pack (a live one if any).
    pub pack: PackId,
    /// How it is stored.
    pub compression: Compression,
}

/// A connection to the index.
#[derive(Debug)]
pub struct Index {
    conn: Connection,
    /// Row ids of condemned and missing packs (not for dedup), as of the
    /// last [`Index::refresh_condemned`].
    condemned: HashSet<i64>,
}

fn bad(what: &str, id: &BlobId) -> Error {
    Error::corrupt("index.sqlite", format!("{what} of blob {}", id.short()))
}

impl Index {
    /// Open the index at `path`, which must be a healthy database of this
    /// schema; anything else is an error (callers that can rebuild use
    /// [`Index::open_checked`], as `Repo::index` does).
    pub fn open(path: &Path) -> Result<Index> {
        Index::open_checked(path)?.map_err(|why| {
            Error::corrupt("index.sqlite", format!("{why}; run `strata rebuild-index`"))
        })
    }

    /// Create a new, empty index at `path` (`init`, and a rebuild's temp
    /// file); an existing file is opened as by [`Index::open`].
    pub fn create(path: &Path) -> Result<Index> {
        if !path.exists() {
            // 0600, whatever the umask: beside a local repository the index
            // is in the storage's reach, and it names blob sizes
            // (threat-model.md "index.sqlite"). SQLite gives its -wal and
            // -shm files the database file's mode.
            {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| Error::Io {
                        path: path.to_path_buf(),
                        source: e,
                    })?;
            }
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Index::open(path)
    }

    /// Open the index at `path`; `Ok(Err(why))` when it must not be served
    /// and is to be rebuilt from the packs (format-spec/index.md): the file
    /// is missing or empty, is not a SQLite database or is damaged, or has
    /// another schema version or other tables.
    pub fn open_checked(path: &Path) -> Result<std::result::Result<Index, String>> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Err("is missing".into()));
            }
            Ok(m) if m.len() == 0 => return Ok(Err("is empty".into())),
            _ => {}
        }
        let conn = Connection::open(path)?;
        let setup = || -> rusqlite::Result<i64> {
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            // The bundled SQLite has STAT4, which re-prepares a statement
            // for every new value bound to an indexed column (a full parse
            // per lookup); the index's plans never depend on the values.
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_query_value(None, "user_version", |r| r.get(0))
        };
        let version = match setup() {
            Ok(v) => v,
            Err(e) if is_damage(&e) => return Ok(Err(format!("is damaged ({e})"))),
            Err(e) => return Err(e.into()),
        };
        if version == 2 {
            // schema 3 adds who wrote each pack (format 3, write-only.md);
            // rows of schema 2 were all indexed before any write-only key
            let migrate = "BEGIN IMMEDIATE;
                ALTER TABLE packs ADD COLUMN writer BLOB;
                ALTER TABLE packs ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1;
                PRAGMA user_version = 3;
                COMMIT;";
            match conn.execute_batch(migrate) {
                Ok(()) => {}
                Err(e) if is_damage(&e) => return Ok(Err(format!("is damaged ({e})"))),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Ok(Err(format!("cannot be upgraded to schema 3 ({e})")));
                }
            }
            return Index::open_checked(path);
        }
        if version != SCHEMA_VERSION {
            return Ok(Err(format!(
                "has schema version {version}, this strata uses {SCHEMA_VERSION}"
            )));
        }
        // Both tables with every column: a statement over them prepares.
        for q in [
            "SELECT id, name, kind, size, blob_count, condemned, missing, writer, trusted FROM packs LIMIT 1",
            "SELECT id, pack, offset, stored_len, raw_len, kind, compression FROM blobs LIMIT 1",
        ] {
            let r = conn
                .prepare(q)
                .and_then(|mut st| st.query([])?.next().map(|_| ()));
            match r {
                Ok(()) => {}
                Err(e) if is_damage(&e) => return Ok(Err(format!("is damaged ({e})"))),
                Err(e @ rusqlite::Error::SqliteFailure(..)) => {
                    return Ok(Err(format!("does not have the expected tables ({e})")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let has_excluded = conn
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'packs_excluded'")
            .and_then(|mut st| st.exists([]));
        match has_excluded {
            Ok(true) => {}
            // best effort: without it the packs are scanned
            Ok(false) => {
                let _ = conn.execute_batch(EXCLUDED_INDEX);
            }
            Err(e) if is_damage(&e) => return Ok(Err(format!("is damaged ({e})"))),
            Err(e) => return Err(e.into()),
        }
        let mut idx = Index {
            conn,
            condemned: HashSet::new(),
        };
        match idx.refresh_condemned() {
            Ok(()) => Ok(Ok(idx)),
            Err(Error::Index(e)) if is_damage(&e) => Ok(Err(format!("is damaged ({e})"))),
            Err(e) => Err(e),
        }
    }

    /// Make a freshly built index durable and self-contained before it is
    /// renamed into place (no `-wal` file beside it; rebuild.rs).
    pub(crate) fn seal(self) -> Result<()> {
        self.conn.pragma_update(None, "journal_mode", "DELETE")?;
        drop(self.conn);
        Ok(())
    }

    /// Fill a new index without an fsync per pack: the file is fsynced
    /// once, before it replaces `index.sqlite` (rebuild.rs).
    pub(crate) fn unsynced(&self) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "OFF")?;
        Ok(())
    }

    /// The underlying connection (gc attaches its mark database to it).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Reload which packs are condemned, missing or not trusted (dedup
    /// ignores them).
    pub fn refresh_condemned(&mut self) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT id FROM packs WHERE condemned IS NOT NULL OR missing != 0 OR trusted = 0",
        )?;
        self.condemned = st
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(())
    }

    /// Record a sealed pack and its blobs in one transaction. Call only after
    /// the pack is durable under its final name (INV-2).
    pub fn add_pack(&mut self, p: &SealedPack) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO packs(name, kind, size, blob_count, writer, trusted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                &p.id.0[..],
                p.kind as i64,
                p.size as i64,
                p.entries.len() as i64,
                p.writer.as_ref().map(|k| k.as_str().to_string()),
                i64::from(p.trusted)
            ],
        )?;
        let rowid: i64 = tx.query_row(
            "SELECT id FROM packs WHERE name = ?1",
            params![&p.id.0[..]],
            |r| r.get(0),
        )?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO blobs(id, pack, offset, stored_len, raw_len, kind, compression)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in &p.entries {
                st.execute(params![
                    &e.id.0[..],
                    rowid,
                    e.offset as i64,
                    e.stored_len as i64,
                    e.raw_len as i64,
                    e.kind as i64,
                    e.compression as i64
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Start a read transaction that lasts until this connection is dropped.
    /// Lookups then see one consistent state and skip SQLite's per-statement
    /// lock round trips (two `fcntl` calls each). Rows committed later by
    /// other connections are not seen: callers must tolerate that (dedup
    /// does: a blob stored twice costs space; a pack deleted meanwhile was
    /// condemned for a grace period first, format-spec/gc.md).
    pub fn begin_read_snapshot(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        // any read starts the snapshot (not a count: that reads every row)
        self.conn
            .query_row("SELECT 1 FROM packs LIMIT 1", [], |_| Ok(()))
            .optional()?;
        self.refresh_condemned()
    }

    /// End the read transaction of [`Index::begin_read_snapshot`] (to
    /// write, or to see what was committed since).
    pub fn end_read_snapshot(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Is `id` stored in a live (not condemned, not missing) pack? Dedup
    /// asks this.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT pack FROM blobs WHERE id = ?1")?;
        let mut rows = st.query(params![&id.0[..]])?;
        while let Some(r) = rows.next()? {
            if !self.condemned.contains(&r.get::<_, i64>(0)?) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Where `id` is stored, with its kind: a live pack if there is one,
    /// else a condemned one, else a missing one (whose read then reports
    /// the missing pack).
    pub fn lookup(&self, id: &BlobId) -> Result<Option<(BlobLocation, BlobKind)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT p.name, b.offset, b.stored_len, b.raw_len, b.compression, b.kind
             FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1
             ORDER BY p.missing, p.trusted DESC, (p.condemned IS NOT NULL), p.id DESC LIMIT 1",
        )?;
        let row = st
            .query_row(params![&id.0[..]], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .optional()?;
        let Some((name, offset, stored, raw, comp, kind)) = row else {
            return Ok(None);
        };
        let pack: [u8; 32] = name.try_into().map_err(|_| bad("pack name", id))?;
        let loc = BlobLocation {
            pack: PackId(pack),
            offset: u64::try_from(offset).map_err(|_| bad("offset", id))?,
            stored_len: u32::try_from(stored).map_err(|_| bad("stored length", id))?,
            raw_len: u32::try_from(raw).map_err(|_| bad("raw length", id))?,
            compression: decode_compression(comp).ok_or_else(|| bad("compression", id))?,
        };
        let kind = decode_kind(kind).ok_or_else(|| bad("kind", id))?;
        Ok(Some((loc, kind)))
    }

    /// Call `f` with every blob (id, lengths, pack, compression), in one
    /// scan, each blob once (its live copy if any), for whole-repository
    /// statistics: far cheaper than a lookup per blob.
    pub fn for_each_blob(&self, f: &mut dyn FnMut(&BlobInfo)) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT b.id, b.stored_len, b.raw_len, p.name, b.compression,
                    p.condemned IS NOT NULL OR p.missing != 0
             FROM blobs b JOIN packs p ON p.id = b.pack ORDER BY b.id",
        )?;
        let mut rows = st.query([])?;
        // Rows come grouped by id; emit one per id, preferring a live pack.
        let mut pending: Option<(BlobInfo, bool)> = None;
        while let Some(r) = rows.next()? {
            let (id, pack): (Vec<u8>, Vec<u8>) = (r.get(0)?, r.get(3)?);
            let (Ok(id), Ok(pack)) = (<[u8; 32]>::try_from(id), <[u8; 32]>::try_from(pack)) else {
                continue;
            };
            let info = BlobInfo {
                id: BlobId(id),
                stored_len: r.get::<_, i64>(1)? as u32,
                raw_len: r.get::<_, i64>(2)? as u32,
                pack: PackId(pack),
                compression: decode_compression(r.get(4)?).unwrap_or(Compression::None),
            };
            let condemned: bool = r.get(5)?;
            match &mut pending {
                Some(p) if p.0.id == info.id => {
                    if p.1 && !condemned {
                        *p = (info, condemned);
                    }
                }
                _ => {
                    if let Some((prev, _)) = pending.replace((info, condemned)) {
                        f(&prev);
                    }
                }
            }
        }
        if let Some((prev, _)) = pending {
            f(&prev);
        }
        Ok(())
    }

    /// How many packs are neither condemned nor missing (`status` counts
    /// them without reading every row).
    pub fn live_pack_count(&self) -> Result<usize> {
        // every row counted by the b-tree, less the few excluded ones,
        // found through `packs_excluded`
        let all: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM packs", [], |r| r.get(0))?;
        let dead: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM packs
             WHERE (condemned IS NOT NULL OR missing != 0 OR trusted = 0)
               AND (condemned IS NOT NULL OR missing != 0)",
            [],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(all - dead).unwrap_or(0))
    }

    /// Every pack row.
    pub fn packs(&self) -> Result<Vec<PackRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, kind, size, blob_count, condemned, missing, writer, trusted FROM packs")?;
        let mut out = Vec::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let name: Vec<u8> = r.get(1)?;
            let Ok(name) = <[u8; 32]>::try_from(name) else {
                return Err(Error::corrupt("index.sqlite", "pack name is not 32 bytes"));
            };
            let kind = decode_kind(r.get(2)?)
                .ok_or_else(|| Error::corrupt("index.sqlite", "pack kind"))?;
            out.push(PackRow {
                rowid: r.get(0)?,
                id: PackId(name),
                kind,
                size: r.get::<_, i64>(3)?.max(0) as u64,
                blob_count: r.get::<_, i64>(4)?.max(0) as u64,
                condemned: r.get(5)?,
                missing: r.get::<_, i64>(6)? != 0,
                writer: r
                    .get::<_, Option<String>>(7)?
                    .and_then(|s| crate::id::KeyId::from_file_name(&s)),
                trusted: r.get::<_, i64>(8)? != 0,
            });
        }
        Ok(out)
    }

    /// Does the index list pack `id`?
    pub fn has_pack(&self, id: &PackId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM packs WHERE name = ?1")?;
        Ok(st.exists(params![&id.0[..]])?)
    }

    /// All pack ids in the index.
    pub fn pack_ids(&self) -> Result<HashSet<PackId>> {
        Ok(self.packs()?.into_iter().map(|p| p.id).collect())
    }

    /// The blobs of the pack with row id `pack`, in offset order.
    pub fn blobs_of(&self, pack: i64) -> Result<Vec<BlobRow>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, offset, stored_len, raw_len, kind, compression FROM blobs
             WHERE pack = ?1 ORDER BY offset",
        )?;
        let mut out = Vec::new();
        let mut rows = st.query(params![pack])?;
        while let Some(r) = rows.next()? {
            out.push(blob_row(r, pack)?);
        }
        Ok(out)
    }

    /// Mark packs verified by a full key (`check --read-data`, trust
    /// records): dedup may use them from now on.
    pub fn set_trusted(&mut self, packs: &[PackId]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE packs SET trusted = 1 WHERE name = ?1")?;
            for p in packs {
                st.execute(params![&p.0[..]])?;
            }
        }
        tx.commit()?;
        self.refresh_condemned()
    }

    /// Drop packs (and their blob rows) from the index, in one transaction
    /// (GC-3: before the pack files are deleted).
    pub fn remove_packs(&mut self, packs: &[PackId]) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS gone(id INTEGER PRIMARY KEY); DELETE FROM gone;",
        )?;
        {
            let mut ins =
                tx.prepare("INSERT OR IGNORE INTO gone(id) SELECT id FROM packs WHERE name = ?1")?;
            for p in packs {
                ins.execute(params![&p.0[..]])?;
            }
        }
        tx.execute_batch(
            "DELETE FROM blobs WHERE pack IN (SELECT id FROM gone);
             DELETE FROM packs WHERE id IN (SELECT id FROM gone);
             DELETE FROM gone;",
        )?;
        tx.commit()?;
        self.refresh_condemned()
    }

    /// Make `packs.condemned` equal `condemned` (pack -> since), in one
    /// transaction.
    pub fn set_condemned(
        &mut self,
        condemned: &std::collections::BTreeMap<PackId, i64>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE packs SET condemned = NULL WHERE condemned IS NOT NULL",
            [],
        )?;
        {
            let mut st = tx.prepare("UPDATE packs SET condemned = ?2 WHERE name = ?1")?;
            for (p, since) in condemned {
                st.execute(params![&p.0[..], since])?;
            }
        }
        tx.commit()?;
        self.refresh_condemned()
    }

    /// Set which packs are missing (their files gone without a gc record).
    pub fn set_missing(&mut self, missing: &[PackId]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute("UPDATE packs SET missing = 0 WHERE missing != 0", [])?;
        {
            let mut st = tx.prepare("UPDATE packs SET missing = 1 WHERE name = ?1")?;
            for p in missing {
                st.execute(params![&p.0[..]])?;
            }
        }
        tx.commit()?;
        self.refresh_condemned()
    }

    /// Row id of every pack by pack id.
    pub fn pack_rowids(&self) -> Result<HashMap<PackId, i64>> {
        Ok(self.packs()?.into_iter().map(|p| (p.id, p.rowid)).collect())
    }
}

/// SQLite's verdict that a file is not a database or is damaged.
fn is_damage(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(C::NotADatabase | C::DatabaseCorrupt)
    )
}

/// Decode a `blobs` row selected as (id, offset, stored_len, raw_len, kind, compression).
pub fn blob_row(r: &rusqlite::Row<'_>, pack: i64) -> Result<BlobRow> {
    let id: Vec<u8> = r.get(0)?;
    let id = BlobId(
        <[u8; 32]>::try_from(id)
            .map_err(|_| Error::corrupt("index.sqlite", "blob id is not 32 bytes"))?,
    );
    Ok(BlobRow {
        id,
        pack,
        offset: u64::try_from(r.get::<_, i64>(1)?).map_err(|_| bad("offset", &id))?,
        stored_len: u32::try_from(r.get::<_, i64>(2)?).map_err(|_| bad("stored length", &id))?,
        raw_len: u32::try_from(r.get::<_, i64>(3)?).map_err(|_| bad("raw length", &id))?,
        kind: decode_kind(r.get(4)?).ok_or_else(|| bad("kind", &id))?,
        compression: decode_compression(r.get(5)?).ok_or_else(|| bad("compression", &id))?,
    })
}

fn decode_kind(v: i64) -> Option<BlobKind> {
    u8::try_from(v).ok().and_then(BlobKind::from_u8)
}

fn decode_compression(v: i64) -> Option<Compression> {
    u8::try_from(v).ok().and_then(Compression::from_u8)
}
