//! gc's mark phase (format-spec/gc.md step 4): every tree and data blob
//! reachable from the roots, recorded in a temporary SQLite database on
//! local disk (outside the repository) so that memory stays flat whatever
//! the repository's size. Each distinct tree is read once: a tree id is
//! queued only when it is first inserted, so 100 near-identical snapshots
//! cost about as much as one. Trees are read and decoded on all cores in
//! batches; the ids are inserted in sorted batches (B-tree locality).
//! gc stops at the first unreadable tree ([`mark`]); `check` goes on and
//! lists them all ([`mark_all`]).

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::read::BlobReader;
use crate::snapshot::tree::EntryKind;
use rayon::prelude::*;
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Trees read per batch (in parallel).
const TREE_BATCH: usize = 256;
/// Data blob ids buffered before a sorted insert.
const ID_BATCH: usize = 1 << 16;
/// Trees decoded in parallel at a time, per core (their ids are held
/// until inserted).
const DECODE_AHEAD: usize = 4;

/// The reachable set, in a temporary database deleted on drop.
#[derive(Debug)]
pub struct Marked {
    path: PathBuf,
    /// Distinct tree blobs reached (directories and their parts).
    pub trees: u64,
    /// Data blob references seen (not distinct).
    pub data_refs: u64,
    /// Trees that could not be read ([`mark_all`] only), with the error;
    /// what lies below them is not marked.
    pub unreadable: Vec<(BlobId, Error)>,
}

impl Marked {
    /// The database file, to `ATTACH` to the index connection.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Marked {
    fn drop(&mut self) {
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct MarkProgress {
    /// Trees read.
    pub trees: AtomicU64,
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("{}: {e}", path.display()))
}

/// Remove mark databases of gc runs that were killed
/// (`strata-gc-<24 hex>.sqlite*` in the temp directory, untouched for an
/// hour). A database still in use by a
/// long run on another repository survives: its process keeps the open
/// file, and SQLite needs no journal for it.
pub fn clean_stale(dir: &Path) {
    let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name
            .strip_prefix("strata-gc-")
            .and_then(|r| r.split_once(".sqlite"))
            .is_some_and(|(hex, _)| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        let stale = ours
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Create the mark database in the system's temp directory.
fn create(dir: &Path) -> Result<(Connection, PathBuf)> {
    let r: [u8; 12] = crate::sys::random_bytes()?;
    let path = dir.join(format!("strata-gc-{}.sqlite", crate::id::to_hex(&r)));
    let conn = Connection::open(&path).map_err(sqlite_err(&path))?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         PRAGMA cache_size = -32768;
         CREATE TABLE reach (id BLOB PRIMARY KEY) WITHOUT ROWID;
         CREATE TABLE pending (id BLOB NOT NULL);",
    )
    .map_err(sqlite_err(&path))?;
    Ok((conn, path))
}

/// Mark everything reachable from `roots` (root tree ids). A tree that
/// cannot be read stops the mark with an error naming it: gc must not
/// decide anything on a partial view.
pub fn mark(reader: &BlobReader, roots: &[BlobId], progress: &MarkProgress) -> Result<Marked> {
    mark_with(reader, roots, progress, false)
}

/// [`mark`] that goes on past unreadable trees, recording each in
/// [`Marked::unreadable`] (`check`: report every problem, not the first).
pub fn mark_all(reader: &BlobReader, roots: &[BlobId], progress: &MarkProgress) -> Result<Marked> {
    mark_with(reader, roots, progress, true)
}

fn mark_with(
    reader: &BlobReader,
    roots: &[BlobId],
    progress: &MarkProgress,
    keep_going: bool,
) -> Result<Marked> {
    clean_stale(&std::env::temp_dir());
    let (mut conn, path) = create(&std::env::temp_dir())?;
    let mut marked = Marked {
        path,
        trees: 0,
        data_refs: 0,
        unreadable: Vec::new(),
    };
    let err = |e: rusqlite::Error| Error::Invalid(format!("gc mark database: {e}"));
    {
        let tx = conn.transaction().map_err(err)?;
        for r in roots {
            if insert_new(&tx, r).map_err(err)? {
                tx.execute("INSERT INTO pending(id) VALUES (?1)", params![&r.0[..]])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
    }
    let mut ids: Vec<BlobId> = Vec::with_capacity(ID_BATCH);
    loop {
        let batch = pop_pending(&conn).map_err(err)?;
        if batch.is_empty() {
            break;
        }
        let tx = conn.transaction().map_err(err)?;
        // Decoded a few trees per core at a time, not the whole batch: a
        // tree of big files holds thousands of chunk ids, and holding every
        // id of 256 trees at once grew memory with the repository
        // (benches/GC_RESULTS.md). At most DECODE_AHEAD trees' ids plus
        // ID_BATCH buffered ids are in memory.
        let ahead = DECODE_AHEAD * rayon::current_num_threads().max(1);
        for group in batch.chunks(ahead) {
            let results: Vec<Result<Children>> =
                group.par_iter().map(|id| children(reader, id)).collect();
            let mut read = Vec::with_capacity(results.len());
            for (id, r) in group.iter().zip(results) {
                match r {
                    Ok(c) => read.push(c),
                    Err(e) if keep_going => marked.unreadable.push((*id, e)),
                    Err(e) => {
                        return Err(Error::Invalid(format!(
                            "gc stopped: tree {} cannot be read ({e}); nothing was changed \
                             (run `strata check`)",
                            id.short()
                        )));
                    }
                }
            }
            for (parts, subtrees, content) in read {
                marked.trees += 1;
                progress.trees.fetch_add(1, Relaxed);
                for p in &parts {
                    // A part belongs to one index tree; counted, never queued.
                    if insert_new(&tx, p).map_err(err)? {
                        marked.trees += 1;
                    }
                }
                for s in &subtrees {
                    if insert_new(&tx, s).map_err(err)? {
                        tx.execute("INSERT INTO pending(id) VALUES (?1)", params![&s.0[..]])
                            .map_err(err)?;
                    }
                }
                marked.data_refs += content.len() as u64;
                ids.extend(content);
                if ids.len() >= ID_BATCH {
                    flush(&tx, &mut ids).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
    }
    let tx = conn.transaction().map_err(err)?;
    flush(&tx, &mut ids).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(marked)
}

/// Insert `id` into the reachable set; true if it was not there yet.
fn insert_new(tx: &rusqlite::Transaction<'_>, id: &BlobId) -> rusqlite::Result<bool> {
    let mut st = tx.prepare_cached("INSERT OR IGNORE INTO reach(id) VALUES (?1)")?;
    Ok(st.execute(params![&id.0[..]])? == 1)
}

/// Insert buffered data blob ids, sorted for locality.
fn flush(tx: &rusqlite::Transaction<'_>, ids: &mut Vec<BlobId>) -> rusqlite::Result<()> {
    ids.sort_unstable();
    ids.dedup();
    let mut st = tx.prepare_cached("INSERT OR IGNORE INTO reach(id) VALUES (?1)")?;
    for id in ids.iter() {
        st.execute(params![&id.0[..]])?;
    }
    ids.clear();
    Ok(())
}

/// Take up to [`TREE_BATCH`] queued tree ids.
fn pop_pending(conn: &Connection) -> rusqlite::Result<Vec<BlobId>> {
    let mut st = conn.prepare_cached("SELECT rowid, id FROM pending ORDER BY rowid LIMIT ?1")?;
    let rows: Vec<(i64, Vec<u8>)> = st
        .query_map(params![TREE_BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some((last, _)) = rows.last() {
        conn.execute("DELETE FROM pending WHERE rowid <= ?1", params![last])?;
    }
    Ok(rows
        .into_iter()
        .filter_map(|(_, id)| <[u8; 32]>::try_from(id).ok().map(BlobId))
        .collect())
}

/// What a tree points at: (parts, subdirectory trees, chunk ids).
type Children = (Vec<BlobId>, Vec<BlobId>, Vec<BlobId>);

/// A tree's parts, subdirectory trees and chunk ids.
fn children(reader: &BlobReader, id: &BlobId) -> Result<Children> {
    let listing = reader.listing(id)?;
    let parts = listing.part_ids().collect();
    let mut subtrees = Vec::new();
    let mut content = Vec::new();
    for e in listing.entries {
        if e.kind() == EntryKind::Dir {
            subtrees.extend(e.subtree);
        }
        content.extend(e.content);
    }
    Ok((parts, subtrees, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pop_in_order_and_the_file_is_removed() {
        let (conn, path) = create(&std::env::temp_dir()).unwrap();
        for i in 0..600u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            conn.execute("INSERT INTO pending(id) VALUES (?1)", params![&id[..]])
                .unwrap();
        }
        let a = pop_pending(&conn).unwrap();
        let b = pop_pending(&conn).unwrap();
        let c = pop_pending(&conn).unwrap();
        assert_eq!((a.len(), b.len(), c.len()), (256, 256, 88));
        assert_eq!(a[0].0[3], 0);
        assert!(pop_pending(&conn).unwrap().is_empty());
        drop(conn);
        let m = Marked {
            path: path.clone(),
            trees: 0,
            data_refs: 0,
            unreadable: Vec::new(),
        };
        drop(m);
        assert!(!path.exists());
    }
}
