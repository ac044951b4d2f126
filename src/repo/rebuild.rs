//! Rebuilding `index.sqlite` from the pack trailers alone
//! (format-spec/index.md "Rebuild from packs"): a new database is filled
//! under a temp name in the work directory's `tmp/`, fsynced, and renamed
//! over `index.sqlite`, so a reader finds the old index or the complete new
//! one, never a half one. `strata rebuild-index` runs it under the
//! exclusive lock; `Repo::index` runs it when the index is missing,
//! damaged or of another schema. Rebuilds of one work directory are
//! serialised by an `flock` on the directory, and a waiting one that finds
//! the index healthy afterwards does nothing.

use crate::backend::fsutil;
use crate::error::{Error, IoContext, Result};
use crate::index::Index;
use crate::repo::Repo;
use std::fs;
use std::path::{Path, PathBuf};

/// What a rebuild did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Rebuilt {
    /// Packs indexed from their trailers.
    pub packs: usize,
    /// Blob rows written.
    pub blobs: u64,
    /// Packs whose trailer did not verify (skipped), and unreadable gc
    /// state files.
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
}

/// Rebuild the index of `repo`. With `only_if_damaged`, a rebuild that
/// finds the index healthy once it holds the rebuild lock (another process
/// rebuilt it meanwhile) returns `None`.
pub fn rebuild(repo: &Repo, only_if_damaged: bool) -> Result<Option<Rebuilt>> {
    let started = std::time::Instant::now();
    let dir = repo.index_dir();
    let _guard = lock_dir(dir)?;
    let path = repo.index_path();
    if only_if_damaged && matches!(Index::open_checked(&path), Ok(Ok(_))) {
        return Ok(None);
    }
    let tmp = temp_name(dir)?;
    let built = build(repo, &tmp);
    let mut out = match built {
        Ok(b) => b,
        Err(e) => {
            remove_db(&tmp);
            return Err(e);
        }
    };
    // The old database's WAL must not be paired with the new file: fold
    // it into the old file if that still opens, then drop it. A crash
    // from here to the rename leaves the old index, rebuilt on next open
    // if it is damaged, else reconciled.
    if let Ok(c) = rusqlite::Connection::open(&path) {
        let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    for suffix in ["-wal", "-shm"] {
        let p = with_suffix(&path, suffix);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                remove_db(&tmp);
                return Err(e).at(&p);
            }
        }
    }
    if let Err(e) = fs::rename(&tmp, &path) {
        remove_db(&tmp);
        return Err(e).at(&path);
    }
    fsutil::sync_dir(dir)?;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(Some(out))
}

/// A new temp name for an index in `dir` (the index's own directory, so
/// that the rename stays on one file system); temp files of killed
/// rebuilds older than a day are removed first.
fn temp_name(dir: &Path) -> Result<PathBuf> {
    if let Ok(rd) = fs::read_dir(dir) {
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
        for e in rd.flatten() {
            let stale = e.file_name().to_string_lossy().starts_with("index-tmp-")
                && e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t <= day_ago);
            if stale {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    let r: [u8; 12] = crate::sys::random_bytes()?;
    Ok(dir.join(format!("index-tmp-{}.sqlite", crate::id::to_hex(&r))))
}

/// Move the index that an earlier version kept in a local repository's
/// directory (`old`) to its place in the cache (`new`), if `new` does not
/// exist yet (index.md "Where the index lives"): a healthy one is copied
/// with `VACUUM INTO` under a temp name, fsynced and renamed; then the
/// old files are removed, so that the repository no longer shows stored
/// lengths (threat-model.md). A damaged one is only removed (the next
/// step rebuilds). Serialised with rebuilds by the directory's `flock`.
pub fn adopt_legacy(old: &Path, new: &Path, events: &dyn crate::events::Events) -> Result<()> {
    if new.exists() || !old.exists() {
        return Ok(());
    }
    let dir = new
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{}: no parent directory", new.display())))?;
    let _guard = lock_dir(dir)?;
    if new.exists() {
        return Ok(());
    }
    if let Ok(Ok(idx)) = Index::open_checked(old) {
        let tmp = temp_name(dir)?;
        let copied = idx
            .conn()
            .execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()])
            .map_err(Error::from)
            .and_then(|_| fs::File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp))
            .and_then(|()| fs::rename(&tmp, new).at(new))
            .and_then(|()| fsutil::sync_dir(dir));
        drop(idx);
        if let Err(e) = copied {
            remove_db(&tmp);
            return Err(e);
        }
        events.notice(&format!(
            "moved index.sqlite out of the repository into the cache: {}",
            new.display()
        ));
    }
    remove_db(old);
    Ok(())
}

/// Fill a new index at `tmp` from the packs and make it durable.
fn build(repo: &Repo, tmp: &Path) -> Result<Rebuilt> {
    let mut idx = Index::create(tmp)?;
    idx.unsynced()?;
    let rec = idx.reconcile(repo)?;
    let blobs: i64 = idx
        .conn()
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))?;
    idx.seal()?;
    fs::File::open(tmp).and_then(|f| f.sync_all()).at(tmp)?;
    Ok(Rebuilt {
        packs: rec.added,
        blobs: blobs.max(0) as u64,
        warnings: rec.warnings,
        seconds: 0.0,
    })
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Remove a database file and its journal files (best effort).
fn remove_db(p: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(with_suffix(p, suffix));
    }
}

/// An exclusive `flock` on the work directory, held until dropped.
fn lock_dir(dir: &Path) -> Result<fs::File> {
    let f = fs::File::open(dir).at(dir)?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(|e| Error::Io {
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(f)
}
