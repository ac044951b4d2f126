//! A local cache of directory listings (`read::Listing`: names and
//! metadata, never the contents of inline files; a parted directory is
//! cached joined, as one file), so that listing, `find`, `diff`, gc's mark
//! and the parent trees of a backup do not read packs again. Each file is
//! the BLAKE3 of the rest, then the zstd-compressed listing.
//! It lives in the user's private cache directory: `$STRATA_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`, one subdirectory per
//! repository id, directories 0700 and files 0600. A file that does not
//! check is ignored and replaced, and every failure to use the cache is
//! silent: it is only an optimisation (format-spec/repository.md).

use crate::id::BlobId;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

/// The user's strata cache directory: `$STRATA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`; `None` if
/// `STRATA_CACHE_DIR` is empty (caching disabled) or no home is known.
pub fn base_dir() -> Option<PathBuf> {
    match std::env::var_os("STRATA_CACHE_DIR") {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(d) if !d.is_empty() => Some(PathBuf::from(d).join("strata")),
            _ => Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/strata")),
        },
    }
}

/// Write `bytes` to `dest` privately (dirs 0700, file 0600) under a temp
/// name, not fsynced (`fsutil::Atomic::cache`); best effort.
pub fn write_private(dest: &std::path::Path, bytes: &[u8]) -> bool {
    let Some(dir) = dest.parent() else {
        return false;
    };
    if fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .is_err()
    {
        return false;
    }
    crate::backend::fsutil::write_atomic(dest, bytes, crate::backend::fsutil::Atomic::cache())
        .is_ok()
}

/// Run `f` holding an advisory lock on the file `lock` (its directory
/// created 0700, the file 0600), so that read-modify-write updates of a
/// local record by two processes never lose one; `None` (and `f` not run)
/// if the lock cannot be had.
pub fn locked<T>(lock: &std::path::Path, f: impl FnOnce() -> T) -> Option<T> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(lock.parent()?)
        .ok()?;
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock)
        .ok()?;
    // an exclusive flock, released when `file` is closed
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).ok()?;
    let out = f();
    drop(file);
    Some(out)
}

/// The tree cache of one repository.
#[derive(Debug)]
pub struct TreeCache {
    dir: PathBuf,
}

impl TreeCache {
    /// The cache for repository `repo_id`, or `None` if no cache directory
    /// can be found (or `STRATA_CACHE_DIR` is empty).
    pub fn for_repo(repo_id: &crate::id::RepoId) -> Option<Self> {
        Some(TreeCache {
            // `trees2`: listings without inline contents, compressed;
            // the uncompressed format-1 files in `trees/` are never read.
            dir: base_dir()?.join(repo_id.to_hex()).join("trees2"),
        })
    }

    fn path(&self, id: &BlobId) -> PathBuf {
        let h = id.to_hex();
        self.dir.join(&h[..2]).join(h)
    }

    /// The cached bytes for tree `id`, if present and intact.
    pub fn get(&self, id: &BlobId) -> Option<Vec<u8>> {
        let b = fs::read(self.path(id)).ok()?;
        if b.len() < 32 || blake3::hash(&b[32..]).as_bytes() != &b[..32] {
            return None;
        }
        zstd::bulk::decompress(&b[32..], crate::object::MAX_OBJECT).ok()
    }

    /// Remember tree `id` (best effort, written under a temp name).
    pub fn put(&self, id: &BlobId, bytes: &[u8]) {
        let Ok(z) = zstd::bulk::compress(bytes, 1) else {
            return;
        };
        let mut b = Vec::with_capacity(32 + z.len());
        b.extend_from_slice(blake3::hash(&z).as_bytes());
        b.extend_from_slice(&z);
        write_private(&self.path(id), &b);
    }
}
