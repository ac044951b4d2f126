//! `index.sqlite` (format-spec/index.md): blob id -> pack location. A cache:
//! `reconcile` indexes packs that are on disk but not yet in the index, and a
//! schema-version mismatch rebuilds it from the packs.

use crate::blob::{BlobKind, Compression};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::pack::reader::{self, BlobLocation};
use crate::pack::writer::SealedPack;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;

/// Schema version (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS packs (
  id         INTEGER PRIMARY KEY,
  name       BLOB NOT NULL UNIQUE,
  kind       INTEGER NOT NULL,
  size       INTEGER NOT NULL,
  blob_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS blobs (
  id          BLOB PRIMARY KEY,
  pack        INTEGER NOT NULL REFERENCES packs(id),
  offset      INTEGER NOT NULL,
  stored_len  INTEGER NOT NULL,
  raw_len     INTEGER NOT NULL,
  kind        INTEGER NOT NULL,
  compression INTEGER NOT NULL
) WITHOUT ROWID;
";

/// A connection to the index.
#[derive(Debug)]
pub struct Index {
    conn: Connection,
}

impl Index {
    /// Open (creating if needed) the index at `path`. A database with another
    /// schema version is emptied, to be refilled by [`Index::reconcile`].
    pub fn open(path: &Path) -> Result<Index> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if v != SCHEMA_VERSION {
            conn.execute_batch(
                "BEGIN IMMEDIATE; DROP TABLE IF EXISTS blobs; DROP TABLE IF EXISTS packs;",
            )?;
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            conn.execute_batch("COMMIT")?;
        }
        Ok(Index { conn })
    }

    /// Record a sealed pack and its blobs in one transaction. Call only after
    /// the pack is durable under its final name (INV-2).
    pub fn add_pack(&mut self, p: &SealedPack) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO packs(name, kind, size, blob_count) VALUES (?1, ?2, ?3, ?4)",
            params![
                &p.id.0[..],
                p.kind as i64,
                p.size as i64,
                p.entries.len() as i64
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
    /// does: a blob stored twice costs space, never correctness).
    pub fn begin_read_snapshot(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        self.conn
            .query_row("SELECT count(*) FROM packs", [], |_| Ok(()))?;
        Ok(())
    }

    /// Is `id` in the index?
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM blobs WHERE id = ?1")?;
        Ok(st.exists(params![&id.0[..]])?)
    }

    /// Where `id` is stored, with its kind.
    pub fn lookup(&self, id: &BlobId) -> Result<Option<(BlobLocation, BlobKind)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT p.name, b.offset, b.stored_len, b.raw_len, b.compression, b.kind
             FROM blobs b JOIN packs p ON p.id = b.pack WHERE b.id = ?1",
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
        let bad =
            |what: &str| Error::corrupt("index.sqlite", format!("{what} of blob {}", id.short()));
        let pack: [u8; 32] = name.try_into().map_err(|_| bad("pack name"))?;
        let loc = BlobLocation {
            pack: PackId(pack),
            offset: u64::try_from(offset).map_err(|_| bad("offset"))?,
            stored_len: u32::try_from(stored).map_err(|_| bad("stored length"))?,
            raw_len: u32::try_from(raw).map_err(|_| bad("raw length"))?,
            compression: u8::try_from(comp)
                .ok()
                .and_then(Compression::from_u8)
                .ok_or_else(|| bad("compression"))?,
        };
        let kind = u8::try_from(kind)
            .ok()
            .and_then(BlobKind::from_u8)
            .ok_or_else(|| bad("kind"))?;
        Ok(Some((loc, kind)))
    }

    /// Call `f` with every blob's id, stored and raw length and pack, in one
    /// scan (for whole-repository statistics; far cheaper than a lookup per
    /// blob).
    pub fn for_each_blob(&self, f: &mut dyn FnMut(BlobId, u32, u32, PackId)) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT b.id, b.stored_len, b.raw_len, p.name FROM blobs b JOIN packs p ON p.id = b.pack",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (id, stored, raw, pack): (Vec<u8>, i64, i64, Vec<u8>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            if let (Ok(id), Ok(pack)) = (<[u8; 32]>::try_from(id), <[u8; 32]>::try_from(pack)) {
                f(BlobId(id), stored as u32, raw as u32, PackId(pack));
            }
        }
        Ok(())
    }

    /// All pack ids in the index.
    pub fn pack_ids(&self) -> Result<HashSet<PackId>> {
        let mut st = self.conn.prepare("SELECT name FROM packs")?;
        let mut out = HashSet::new();
        for name in st.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
            if let Ok(a) = <[u8; 32]>::try_from(name?) {
                out.insert(PackId(a));
            }
        }
        Ok(out)
    }

    /// Index every pack under `packs/` that the index does not list yet
    /// (format-spec/index.md "Rebuild from packs"). A pack whose trailer does
    /// not verify is reported in the returned warnings and skipped.
    pub fn reconcile(&mut self, repo: &crate::Repo) -> Result<(usize, Vec<String>)> {
        let known = self.pack_ids()?;
        let mut added = 0;
        let mut warnings = Vec::new();
        let packs = repo.root().join("packs");
        for path in list_pack_files(&packs)? {
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(PackId::from_hex)
            else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            let object = format!("pack {id}");
            let read = repo
                .open_pack(&id)
                .and_then(|f| reader::read_trailer(&f, &object))
                .and_then(|(_, entries)| {
                    let size = std::fs::metadata(&path)
                        .map_err(|e| crate::Error::Io {
                            path: path.clone(),
                            source: e,
                        })?
                        .len();
                    Ok((size, entries))
                });
            match read {
                Ok((size, entries)) => {
                    let kind = entries.first().map(|e| e.kind).unwrap_or(BlobKind::Data);
                    self.add_pack(&SealedPack {
                        id,
                        kind,
                        size,
                        entries,
                    })?;
                    added += 1;
                }
                Err(e) => warnings.push(e.to_string()),
            }
        }
        Ok((added, warnings))
    }
}

/// Every file `packs/xx/<name>`.
pub fn list_pack_files(packs: &Path) -> Result<Vec<std::path::PathBuf>> {
    use crate::error::IoContext;
    let mut out = Vec::new();
    for d in std::fs::read_dir(packs).at(packs)? {
        let d = d.at(packs)?;
        if !d.file_type().at(&d.path())?.is_dir() {
            continue;
        }
        let dp = d.path();
        for f in std::fs::read_dir(&dp).at(&dp)? {
            out.push(f.at(&dp)?.path());
        }
    }
    out.sort();
    Ok(out)
}
