//! A local cache of directory listings (`read::Listing`: names and
//! metadata, never the contents of inline files; a parted directory is
//! cached joined, as one file), so that listing, `find`, `diff`, gc's mark
//! and the parent trees of a backup do not read packs again. Each file is
//! the BLAKE3 of the rest, then the zstd-compressed listing. Beside it,
//! [`ManifestCache`]: the checked bodies of snapshot manifests (immutable,
//! named by their id), so that `status` does not decrypt every manifest
//! on every call.
//! It lives in the user's private cache directory: `$STRATA_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`, one subdirectory per
//! repository id, directories 0700 and files 0600. A file that does not
//! check is ignored and replaced, and every failure to use the cache is
//! silent: it is only an optimisation (format-spec/repository.md).

use crate::id::{BlobId, SnapshotId};
use std::collections::BTreeMap;
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

/// Create the directory of `file` (and its parents) 0700 if missing.
pub(crate) fn private_dir(file: &std::path::Path) -> bool {
    file.parent().is_some_and(|dir| {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .is_ok()
    })
}

/// Write `bytes` to `dest` privately (dirs 0700, file 0600) under a temp
/// name, not fsynced (`fsutil::Atomic::cache`); best effort.
pub fn write_private(dest: &std::path::Path, bytes: &[u8]) -> bool {
    if !private_dir(dest) {
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

/// A manifest body as checked once: its envelope version and plaintext body.
pub type ManifestBody = (u8, Vec<u8>);

/// What the storage said of a manifest file when it was checked: its size
/// and modification time (Unix ns, -1 when the storage gives none). A
/// cached body is used only while the listing says the same, so a file
/// replaced or rewritten since (a damaged or planted manifest) is read and
/// checked again.
pub type ManifestStamp = (u64, i64);

/// The manifest cache of one repository: one file,
/// `<repository id hex>/manifests1` (format-spec/repository.md "Local
/// cache"), `BLAKE3(z)` then `z` = zstd of the entries, each `id` (32
/// bytes), envelope `version` (1 byte), body length (u32 LE), body. A file
/// that does not check is ignored (and replaced by the next save).
#[derive(Debug)]
pub struct ManifestCache {
    file: PathBuf,
}

/// Largest manifest cache read (64 MiB: some 200,000 manifests).
const MAX_MANIFEST_CACHE: usize = 64 << 20;

impl ManifestCache {
    /// The cache for repository `repo_id`, or `None` without a cache
    /// directory.
    pub fn for_repo(repo_id: &crate::id::RepoId) -> Option<Self> {
        Some(ManifestCache {
            file: base_dir()?.join(repo_id.to_hex()).join("manifests2"),
        })
    }

    /// The cached bodies with their stamps (empty if there is no intact
    /// file).
    pub fn load(&self) -> BTreeMap<SnapshotId, (ManifestStamp, ManifestBody)> {
        self.try_load().unwrap_or_default()
    }

    fn try_load(&self) -> Option<BTreeMap<SnapshotId, (ManifestStamp, ManifestBody)>> {
        let raw = read_sealed(&self.file, MAX_MANIFEST_CACHE)?;
        let mut out = BTreeMap::new();
        let mut rest = raw.as_slice();
        while !rest.is_empty() {
            let (head, tail) = rest.split_at_checked(53)?;
            let id: [u8; 32] = head[..32].try_into().ok()?;
            let size = u64::from_le_bytes(head[33..41].try_into().ok()?);
            let mtime = i64::from_le_bytes(head[41..49].try_into().ok()?);
            let len = u32::from_le_bytes(head[49..53].try_into().ok()?) as usize;
            let (body, tail) = tail.split_at_checked(len)?;
            out.insert(SnapshotId(id), ((size, mtime), (head[32], body.to_vec())));
            rest = tail;
        }
        Some(out)
    }

    /// Replace the cache with `entries` (best effort: temp name, fsync,
    /// rename, 0600).
    pub fn save(&self, entries: &BTreeMap<SnapshotId, (ManifestStamp, ManifestBody)>) {
        let mut raw = Vec::new();
        for (id, ((size, mtime), (version, body))) in entries {
            let Ok(len) = u32::try_from(body.len()) else {
                return;
            };
            raw.extend_from_slice(&id.0);
            raw.push(*version);
            raw.extend_from_slice(&size.to_le_bytes());
            raw.extend_from_slice(&mtime.to_le_bytes());
            raw.extend_from_slice(&len.to_le_bytes());
            raw.extend_from_slice(body);
        }
        write_sealed(&self.file, &raw);
    }
}

/// The contents of a sealed cache file (`BLAKE3(z)`, then `z` = zstd of
/// the contents, at most `max` bytes); `None` if it is missing or does not
/// check.
pub fn read_sealed(file: &std::path::Path, max: usize) -> Option<Vec<u8>> {
    let b = fs::read(file).ok()?;
    if b.len() < 32 || blake3::hash(&b[32..]).as_bytes() != &b[..32] {
        return None;
    }
    zstd::bulk::decompress(&b[32..], max).ok()
}

/// Write `raw` as a sealed cache file (see [`read_sealed`]), best effort:
/// its directory created 0700, the file 0600 under a temp name, fsynced,
/// renamed (INV-1).
pub fn write_sealed(file: &std::path::Path, raw: &[u8]) -> bool {
    let Ok(z) = zstd::bulk::compress(raw, 1) else {
        return false;
    };
    let mut b = Vec::with_capacity(32 + z.len());
    b.extend_from_slice(blake3::hash(&z).as_bytes());
    b.extend_from_slice(&z);
    if !private_dir(file) {
        return false;
    }
    let how = crate::backend::fsutil::Atomic::local(0o600);
    crate::backend::fsutil::write_atomic(file, &b, how).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Saved entries load back as they were; a file that does not check
    /// (a flipped byte, a truncation) loads as empty, never as wrong bodies.
    #[test]
    fn manifest_cache_round_trips_and_ignores_a_damaged_file() {
        let d = tempfile::tempdir().unwrap();
        let c = ManifestCache {
            file: d.path().join("r").join("manifests2"),
        };
        assert!(c.load().is_empty());
        let mut m = BTreeMap::new();
        m.insert(
            SnapshotId([1; 32]),
            ((9, 1_700_000_000), (2u8, b"body one".to_vec())),
        );
        m.insert(SnapshotId([2; 32]), ((0, -1), (1u8, Vec::new())));
        c.save(&m);
        assert_eq!(c.load(), m);
        let mut b = fs::read(&c.file).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(&c.file, &b).unwrap();
        assert!(c.load().is_empty());
        c.save(&m);
        let b = fs::read(&c.file).unwrap();
        fs::write(&c.file, &b[..b.len() - 3]).unwrap();
        assert!(c.load().is_empty());
    }
}
