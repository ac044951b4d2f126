//! [`LocalBackend`]: a repository in a local directory, key `a/b` = file
//! `ROOT/a/b`. Writes keep today's guarantees through [`fsutil`]: staged
//! in `ROOT/tmp/`, fsynced, published by hard link (create-only, INV-5) or
//! rename (replace), new directories and the destination directory fsynced
//! (INV-1). format-spec/backend.md "Local directory".

use super::fsutil::{self, Published};
use super::{BResult, Backend, BackendError, Listed, RangedRead, check_key, check_prefix};
use bytes::Bytes;
use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

mod readdir;

/// The directories of a local repository, created by
/// [`LocalBackend::create_layout`].
const LAYOUT: [&str; 6] = ["packs", "snapshots", "keys", "locks", "tmp", "gc"];

/// A repository directory. The directory need not exist yet: the first
/// write creates it and every directory on the way, durably.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    tmp: PathBuf,
    name: String,
}

impl LocalBackend {
    /// The backend of directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        let root = root.into();
        LocalBackend {
            tmp: root.join("tmp"),
            name: root.display().to_string(),
            root,
        }
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the directory may become a new repository: it must not
    /// exist or be an empty directory (INV-6: an existing repository is
    /// never touched). See [`LocalBackend::create_layout`].
    pub fn check_new(&self) -> crate::Result<()> {
        use crate::error::{Error, IoContext};
        let path = &self.root;
        if path.join("config").exists() {
            return Err(Error::Invalid(format!(
                "{}: a repository already exists here",
                path.display()
            )));
        }
        if path.exists() {
            if !path.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: exists and is not a directory",
                    path.display()
                )));
            }
            if fs::read_dir(path).at(path)?.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{}: directory is not empty",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Create the directories of a new repository (format-spec/repository.md:
    /// `packs/`, `snapshots/`, `keys/`, `locks/`, `tmp/`, `gc/`), each
    /// fsynced in its parent (INV-1). Opening needs none of them: a missing
    /// one is created by the first write under it.
    pub fn create_layout(&self) -> crate::Result<()> {
        for d in LAYOUT {
            fsutil::create_dir_durable(&self.root.join(d))?;
        }
        Ok(())
    }

    fn path(&self, key: &str) -> BResult<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn io(&self, key: &str, source: io::Error) -> BackendError {
        if source.kind() == ErrorKind::NotFound {
            return BackendError::NotFound {
                backend: self.name.clone(),
                key: key.to_string(),
            };
        }
        BackendError::Io {
            backend: self.name.clone(),
            key: key.to_string(),
            source,
        }
    }

    /// An error of the fsutil helpers (which name a path) as a seam error.
    fn fs_err(&self, key: &str, e: crate::Error) -> BackendError {
        match e {
            crate::Error::Io { path, source } => BackendError::Io {
                backend: self.name.clone(),
                key: if path == self.root.join(key) {
                    key.to_string()
                } else {
                    format!("{key} (at {})", path.display())
                },
                source,
            },
            other => BackendError::Io {
                backend: self.name.clone(),
                key: key.to_string(),
                source: io::Error::other(other.to_string()),
            },
        }
    }

    fn ensure_tmp(&self, key: &str) -> BResult<()> {
        fsutil::create_dir_durable(&self.tmp)
            .map(|_| ())
            .map_err(|e| self.fs_err(key, e))
    }

    fn published(&self, key: &str, p: Published) -> BResult<()> {
        match p {
            Published::Created => Ok(()),
            Published::Existed => Err(BackendError::AlreadyExists {
                backend: self.name.clone(),
                key: key.to_string(),
            }),
        }
    }

    fn is_in_tmp(&self, path: &Path) -> bool {
        match (
            path.parent().map(fs::canonicalize),
            fs::canonicalize(&self.tmp),
        ) {
            (Some(Ok(a)), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &str) -> BResult<Bytes> {
        let p = self.path(key)?;
        fs::read(&p).map(Bytes::from).map_err(|e| self.io(key, e))
    }

    fn get_into(&self, key: &str, mut buf: Vec<u8>) -> BResult<Bytes> {
        use std::io::Read;
        let p = self.path(key)?;
        buf.clear();
        File::open(&p)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| self.io(key, e))?;
        Ok(Bytes::from(buf))
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> BResult<Bytes> {
        let p = self.path(key)?;
        let f = File::open(&p).map_err(|e| self.io(key, e))?;
        let size = f.metadata().map_err(|e| self.io(key, e))?.len();
        if range.start > range.end || range.end > size {
            return Err(BackendError::OutOfRange {
                backend: self.name.clone(),
                key: key.to_string(),
                range,
                size,
            });
        }
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| self.io(key, io::Error::other("range does not fit in memory")))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, range.start)
            .map_err(|e| self.io(key, e))?;
        Ok(Bytes::from(buf))
    }

    fn open_ranged(&self, key: &str) -> BResult<Box<dyn RangedRead>> {
        let p = self.path(key)?;
        let file = File::open(&p).map_err(|e| self.io(key, e))?;
        let size = file.metadata().map_err(|e| self.io(key, e))?.len();
        Ok(Box::new(LocalRanged {
            file,
            size,
            backend: self.name.clone(),
            key: key.to_string(),
        }))
    }

    fn size(&self, key: &str) -> BResult<u64> {
        let p = self.path(key)?;
        let m = fs::metadata(&p).map_err(|e| self.io(key, e))?;
        if !m.is_file() {
            // object stores have no directories: `packs` is not an object
            return Err(self.io(key, ErrorKind::NotFound.into()));
        }
        Ok(m.len())
    }

    /// `tmp/<random>.tmp`, fsync, `link(2)` to the final name (else
    /// `renameat2(RENAME_NOREPLACE)`), fsync of the directory and of every
    /// directory created (INV-1, INV-5).
    fn put_new(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        let dest = self.path(key)?;
        self.ensure_tmp(key)?;
        let p = fsutil::write_new(&self.tmp, &dest, bytes).map_err(|e| self.fs_err(key, e))?;
        self.published(key, p)
    }

    /// A file in `tmp/` ([`Backend::scratch_dir`]) is fsynced and linked
    /// under the final name, no copy; any other file is first copied into
    /// `tmp/` (streamed), then published the same way.
    fn put_new_file(&self, key: &str, path: &Path) -> BResult<()> {
        let dest = self.path(key)?;
        self.ensure_tmp(key)?;
        let local = |e: io::Error| BackendError::Io {
            backend: self.name.clone(),
            key: format!("{key} (from {})", path.display()),
            source: e,
        };
        let p = if self.is_in_tmp(path) {
            let f = File::open(path).map_err(local)?;
            fsutil::commit_new(f, path, &dest).map_err(|e| self.fs_err(key, e))?
        } else {
            let mut src = File::open(path).map_err(local)?;
            let (mut f, tmp) =
                fsutil::create_temp(&self.tmp, ".pack").map_err(|e| self.fs_err(key, e))?;
            let r = io::copy(&mut src, &mut f)
                .map_err(|e| self.io(key, e))
                .and_then(|_| fsutil::commit_new(f, &tmp, &dest).map_err(|e| self.fs_err(key, e)));
            if r.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            let p = r?;
            fs::remove_file(path).map_err(local)?;
            p
        };
        self.published(key, p)
    }

    /// `tmp/<random>.tmp`, fsync, `rename(2)` over the final name, fsync of
    /// the directory (INV-1).
    fn put_replace(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        let dest = self.path(key)?;
        self.ensure_tmp(key)?;
        fsutil::write_atomic(&dest, bytes, fsutil::Atomic::in_repo(&self.tmp))
            .map_err(|e| self.fs_err(key, e))
    }

    /// A directory walk; `tmp/` and names that are not valid keys are
    /// skipped, and so is anything that is not a regular file.
    fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()> {
        self.walk(prefix, true, &mut |key, st| {
            if let Some((size, modified)) = st {
                f(Listed {
                    key: key.to_string(),
                    size,
                    modified,
                });
            }
        })
    }

    fn listing_stamp(&self, prefix: &str) -> BResult<Option<(Vec<u8>, std::time::SystemTime)>> {
        check_prefix(prefix)?;
        let m = match fs::metadata(self.root.join(prefix)) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(prefix, e)),
        };
        // the change time: a modification time set back (touch -d) still
        // moves it forward
        let changed = u64::try_from(m.ctime())
            .ok()
            .zip(u32::try_from(m.ctime_nsec()).ok())
            .and_then(|(secs, ns)| {
                std::time::SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, ns))
            });
        let Some(changed) = changed else {
            return Ok(None);
        };
        let mut stamp = Vec::with_capacity(48);
        for v in [m.dev(), m.ino()] {
            stamp.extend(v.to_le_bytes());
        }
        for v in [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()] {
            stamp.extend(v.to_le_bytes());
        }
        Ok(Some((stamp, changed)))
    }

    /// [`Backend::list`] without a stat per file.
    fn list_keys(&self, prefix: &str, f: &mut dyn FnMut(&str)) -> BResult<()> {
        self.walk(prefix, false, &mut |key, _| f(key))
    }

    /// `unlink(2)`, then fsync of the directory.
    fn delete(&self, key: &str) -> BResult<()> {
        let p = self.path(key)?;
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return Err(self.io(key, ErrorKind::NotFound.into()));
        }
        fs::remove_file(&p).map_err(|e| self.io(key, e))?;
        if let Some(dir) = p.parent() {
            fsutil::sync_dir(dir).map_err(|e| self.fs_err(key, e))?;
        }
        Ok(())
    }

    /// `tmp/`, created (durably) if missing; `None` if it cannot be.
    fn scratch_dir(&self) -> Option<PathBuf> {
        fsutil::create_dir_durable(&self.tmp).ok()?;
        Some(self.tmp.clone())
    }
}

/// A local file opened for ranged reads: positioned reads on one open
/// file, shared by every thread.
#[derive(Debug)]
struct LocalRanged {
    file: File,
    size: u64,
    backend: String,
    key: String,
}

impl RangedRead for LocalRanged {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> BResult<()> {
        let end = offset.saturating_add(buf.len() as u64);
        let out_of_range = || BackendError::OutOfRange {
            backend: self.backend.clone(),
            key: self.key.clone(),
            range: offset..end,
            size: self.size,
        };
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Err(out_of_range()),
            Err(source) => Err(BackendError::Io {
                backend: self.backend.clone(),
                key: self.key.clone(),
                source,
            }),
        }
    }
}

impl LocalBackend {
    /// The regular files under `prefix` (see [`Backend::list`]), each with
    /// its metadata when `stat` (a file gone meanwhile is then skipped).
    fn walk(
        &self,
        prefix: &str,
        stat: bool,
        f: &mut dyn FnMut(&str, Option<readdir::Stat>),
    ) -> BResult<()> {
        check_prefix(prefix)?;
        let mut stack = vec![prefix.to_string()];
        // each key is built in one buffer: no allocation per file
        let mut key = String::new();
        while let Some(dir_key) = stack.pop() {
            let dir = self.root.join(&dir_key);
            let r = readdir::read(&dir, stat, &mut |name, kind, st| {
                // dir_key is a key (the prefix, checked, or a listed one)
                if !super::key::is_child_key(&dir_key, name) {
                    return Ok(());
                }
                key.clear();
                if !dir_key.is_empty() {
                    key.push_str(&dir_key);
                    key.push('/');
                }
                key.push_str(name);
                match kind {
                    readdir::Kind::Dir => stack.push(key.clone()),
                    readdir::Kind::File => f(&key, st),
                    readdir::Kind::Other => {}
                }
                Ok(())
            });
            match r {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
                Err(e) => return Err(self.io(&dir_key, e)),
            }
        }
        Ok(())
    }
}
