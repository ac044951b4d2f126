//! The one I/O seam of a repository (format-spec/backend.md): the
//! [`Backend`] trait through which every repository file is read, written,
//! listed and deleted, its error type, and [`open`], which turns a `--repo`
//! value into a backend. Implementations: [`LocalBackend`] (a directory,
//! INV-1/INV-5 kept by [`fsutil`]), [`ObjectStoreBackend`] (`s3://`,
//! `gs://`, `az://`, `file://`, `memory://`) and the test wrapper
//! [`FaultBackend`].
//!
//! `Repo` reaches every repository file through here (`Repo::store`); only
//! its local work directory (index, temp files) is plain `std::fs`.

pub mod error;
pub mod fault;
pub mod fsutil;
pub mod key;
pub mod local;
pub mod lock;
pub mod object;
#[cfg(feature = "cloud")]
pub mod pit;
#[cfg(feature = "cloud")]
pub mod signed;

pub use error::{BResult, BackendError, Op};
pub use fault::{Fault, FaultBackend};
pub use key::{check_key, check_prefix};
pub use local::LocalBackend;
pub use lock::{LockMode, ObjectLock, Retention};
pub use object::ObjectStoreBackend;
#[cfg(feature = "cloud")]
pub use pit::PointInTime;

use bytes::Bytes;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One object found by [`Backend::list`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    /// Its key, e.g. `packs/ab/ab12…`.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, as the storage tells it (a file's mtime,
    /// an object's Last-Modified); `None` where it does not.
    pub modified: Option<std::time::SystemTime>,
}

/// An object opened for ranged reads ([`Backend::open_ranged`]): a local
/// file opened once and read by positioned reads, or a key of an object
/// store read by one ranged GET per call. The object's size is taken when
/// it is opened; repository objects read this way (packs) are immutable.
pub trait RangedRead: Send + Sync + std::fmt::Debug {
    /// The object's size in bytes, as it was opened.
    fn size(&self) -> u64;

    /// Fill `buf` with the bytes at `offset`. Reaching past the end is
    /// [`BackendError::OutOfRange`], never a short read.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> BResult<()>;

    /// Bytes `range` of the object, with [`RangedRead::read_at`]'s rules
    /// (an empty range inside the object is empty).
    fn read(&self, range: Range<u64>) -> BResult<Bytes> {
        let len = range.end.saturating_sub(range.start);
        let mut v = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.read_at(&mut v, range.start)?;
        Ok(Bytes::from(v))
    }
}

/// The storage of one repository. Keys are repository-relative paths
/// (`config`, `keys/<id>`, `packs/ab/<id>`; rules in [`key`]); every method
/// refuses an invalid key with [`BackendError::InvalidKey`] before any I/O.
///
/// Methods are synchronous and may be called from many threads at once.
/// Each one states when its effect is durable and whether it may overwrite;
/// format-spec/backend.md says what that means per implementation and which
/// invariant of repository.md / invariants.md it upholds.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The backend's URL or directory, as errors name it.
    fn name(&self) -> &str;

    /// The whole object. `NotFound` if absent. Reads see every write that
    /// returned before the read began (read-after-write, also on S3).
    fn get(&self, key: &str) -> BResult<Bytes>;

    /// [`Backend::get`], into `buf` (cleared) where the backend can: a
    /// caller that reads many large objects reuses its buffers (sync,
    /// issue 27) instead of leaving freed ones in each thread's malloc
    /// arena. By default `buf` is dropped and `get` called.
    fn get_into(&self, key: &str, buf: Vec<u8>) -> BResult<Bytes> {
        drop(buf);
        self.get(key)
    }

    /// Bytes `range` of the object (one ranged GET on object stores).
    /// `range.end` past the object's size is [`BackendError::OutOfRange`],
    /// never a short read; an empty range inside the object is empty.
    fn get_range(&self, key: &str, range: Range<u64>) -> BResult<Bytes>;

    /// The object's size in bytes (a HEAD). `NotFound` if absent.
    fn size(&self, key: &str) -> BResult<u64>;

    /// Open `key` for many ranged reads (packs): `NotFound` if absent. A
    /// local backend opens the file once and reads it by `pread`; an
    /// object store answers each read with one ranged GET, as
    /// [`Backend::get_range`] does. Where the reads go is the backend's
    /// business: no caller builds a path to a repository file.
    fn open_ranged(&self, key: &str) -> BResult<Box<dyn RangedRead>>;

    /// How many reads a caller should keep in flight at once: `None` for a
    /// local directory, where a read is a system call (read on the CPU's
    /// thread pool; a stat per object is cheaper than a listing); for a
    /// remote store, where each call is a round trip, the number worth
    /// overlapping (and one listing beats a HEAD per object, and reads
    /// should read ahead).
    fn remote_reads(&self) -> Option<usize> {
        None
    }

    /// Create `key` with `bytes`, **create-only**: if the key exists,
    /// [`BackendError::AlreadyExists`] and the existing object is unchanged
    /// (INV-5). Atomic: readers see no object or all of it. Durable when it
    /// returns Ok (local: file and directory entries fsynced, INV-1; object
    /// store: the PUT was acknowledged).
    fn put_new(&self, key: &str, bytes: &[u8]) -> BResult<()>;

    /// [`Backend::put_new`] of bytes the caller hands over: an object
    /// store sends them without a copy (sync holds one copy of each file in
    /// flight, not two).
    fn put_new_bytes(&self, key: &str, bytes: Bytes) -> BResult<()> {
        self.put_new(key, &bytes)
    }

    /// [`Backend::put_new`] of the complete local file `path`, which is
    /// consumed: on Ok it no longer exists under `path` (also on
    /// `AlreadyExists`); on any other error it is left for the caller. The
    /// bytes are never held in memory twice (local: a hard link when `path`
    /// is in [`Backend::scratch_dir`], else one streamed copy; object store:
    /// one PUT of the file read once). For packs.
    fn put_new_file(&self, key: &str, path: &Path) -> BResult<()>;

    /// Write `key`, **replacing** any object of that name, atomically:
    /// readers see the old or the new object, never a mix. Durable when it
    /// returns Ok, like `put_new`. Only for files that may be replaced
    /// (repository.md): lock files (refresh) and the config upgrade.
    fn put_replace(&self, key: &str, bytes: &[u8]) -> BResult<()>;

    /// Call `f` for every object under `prefix`, a key prefix that ends at a
    /// `/` boundary: `""` (everything), `packs`, `packs/ab`. Objects are
    /// delivered as they are listed (in pages on object stores), in no
    /// particular order; `f` may call back into the backend. A missing
    /// prefix lists nothing. A listing is a snapshot of no single instant:
    /// objects created or deleted meanwhile may or may not appear.
    fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()>;

    /// Call `f` with the key of every object under `prefix` (the key lent,
    /// not given: the local backend builds each in one buffer), as
    /// [`Backend::list`] but without what the storage says of each: the
    /// local backend then stats no file (a directory read alone), which is
    /// what `status` lists the snapshots with on every call.
    fn list_keys(&self, prefix: &str, f: &mut dyn FnMut(&str)) -> BResult<()> {
        self.list(prefix, &mut |l| f(&l.key))
    }

    /// A stamp of the objects directly under `prefix` that changes
    /// whenever one is added, removed or replaced there, read without
    /// listing them, with the time it last changed; `None` where the
    /// storage has none (object stores) or `prefix` is missing. Local: the
    /// directory's device, inode, modification and change times (one stat).
    /// Only for a prefix whose objects sit directly in it (`snapshots`):
    /// objects in a subdirectory do not change it.
    fn listing_stamp(&self, prefix: &str) -> BResult<Option<(Vec<u8>, std::time::SystemTime)>> {
        check_prefix(prefix)?;
        Ok(None)
    }

    /// Remove `key`. `NotFound` if absent (on object stores, by a HEAD just
    /// before the DELETE: two racing deletes may both succeed). Durable when
    /// it returns Ok (local: directory fsynced).
    fn delete(&self, key: &str) -> BResult<()>;

    /// A local directory in which a file meant for
    /// [`Backend::put_new_file`] is best created (local backend: its
    /// `tmp/`, so publishing is a link, not a copy). `None`: anywhere.
    fn scratch_dir(&self) -> Option<PathBuf> {
        None
    }

    /// The Object Lock retention of `key`'s current version (a HEAD);
    /// `None` when it has none or the store has no Object Lock.
    fn retention(&self, key: &str) -> BResult<Option<Retention>> {
        check_key(key)?;
        Ok(None)
    }

    /// Retain `key`'s current version until `until` (unix seconds) in
    /// `mode` (S3 PutObjectRetention: extending is always allowed,
    /// shortening a compliance retention never). `Refused` where the store
    /// has no Object Lock.
    fn set_retention(&self, key: &str, mode: LockMode, until: i64) -> BResult<()> {
        let _ = (mode, until);
        Err(BackendError::Refused {
            backend: self.name().to_string(),
            key: key.to_string(),
            why: "this storage has no Object Lock (s3:// only)".into(),
        })
    }

    /// The Object Lock every new object is written with, if any.
    fn object_lock(&self) -> Option<ObjectLock> {
        None
    }

    /// Every object under `prefix` (see [`Backend::list`]), sorted by key.
    fn list_all(&self, prefix: &str) -> BResult<Vec<Listed>> {
        let mut v = Vec::new();
        self.list(prefix, &mut |l| v.push(l))?;
        v.sort();
        Ok(v)
    }

    /// Whether `key` exists (a HEAD).
    fn exists(&self, key: &str) -> BResult<bool> {
        match self.size(key) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

macro_rules! forward_backend {
    ($t:ty) => {
        impl<B: Backend + ?Sized> Backend for $t {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn get(&self, key: &str) -> BResult<Bytes> {
                (**self).get(key)
            }
            fn get_into(&self, key: &str, buf: Vec<u8>) -> BResult<Bytes> {
                (**self).get_into(key, buf)
            }
            fn get_range(&self, key: &str, range: Range<u64>) -> BResult<Bytes> {
                (**self).get_range(key, range)
            }
            fn size(&self, key: &str) -> BResult<u64> {
                (**self).size(key)
            }
            fn open_ranged(&self, key: &str) -> BResult<Box<dyn RangedRead>> {
                (**self).open_ranged(key)
            }
            fn remote_reads(&self) -> Option<usize> {
                (**self).remote_reads()
            }
            fn put_new(&self, key: &str, bytes: &[u8]) -> BResult<()> {
                (**self).put_new(key, bytes)
            }
            fn put_new_bytes(&self, key: &str, bytes: Bytes) -> BResult<()> {
                (**self).put_new_bytes(key, bytes)
            }
            fn put_new_file(&self, key: &str, path: &Path) -> BResult<()> {
                (**self).put_new_file(key, path)
            }
            fn put_replace(&self, key: &str, bytes: &[u8]) -> BResult<()> {
                (**self).put_replace(key, bytes)
            }
            fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()> {
                (**self).list(prefix, f)
            }
            fn list_keys(&self, prefix: &str, f: &mut dyn FnMut(&str)) -> BResult<()> {
                (**self).list_keys(prefix, f)
            }
            fn listing_stamp(
                &self,
                prefix: &str,
            ) -> BResult<Option<(Vec<u8>, std::time::SystemTime)>> {
                (**self).listing_stamp(prefix)
            }
            fn delete(&self, key: &str) -> BResult<()> {
                (**self).delete(key)
            }
            fn scratch_dir(&self) -> Option<PathBuf> {
                (**self).scratch_dir()
            }
            fn retention(&self, key: &str) -> BResult<Option<Retention>> {
                (**self).retention(key)
            }
            fn set_retention(&self, key: &str, mode: LockMode, until: i64) -> BResult<()> {
                (**self).set_retention(key, mode, until)
            }
            fn object_lock(&self) -> Option<ObjectLock> {
                (**self).object_lock()
            }
        }
    };
}
forward_backend!(Box<B>);
forward_backend!(std::sync::Arc<B>);
forward_backend!(&B);

/// `--point-in-time` (unix seconds), once set for the process.
static POINT_IN_TIME: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// `--point-in-time`: from now on, [`open`] opens every repository as a
/// read-only [`PointInTime`] view of its object versions at `at` (unix
/// seconds). Set once, by the front end, before anything is opened; the
/// destination of `sync` is opened with [`open_locked`], never as a view.
pub fn set_point_in_time(at: i64) {
    let _ = POINT_IN_TIME.set(at);
}

/// The `--point-in-time` of this process, if any.
pub fn point_in_time() -> Option<i64> {
    POINT_IN_TIME.get().copied()
}

/// [`open`], as the repository's object versions stood at `at`: a
/// read-only view; `s3://` only (a versioned bucket).
pub fn open_at(repo: &str, at: i64) -> BResult<Box<dyn Backend>> {
    #[cfg(feature = "cloud")]
    if repo.starts_with("s3://") {
        let b = ObjectStoreBackend::open(repo, crate::sys::vars())?;
        return Ok(Box::new(PointInTime::open(b, at)?));
    }
    let _ = at;
    Err(BackendError::InvalidUrl {
        url: repo.into(),
        reason: "--point-in-time reads object versions: it needs an s3:// repository on a                  versioned bucket"
            .into(),
    })
}

/// A destination to write to (`sync`), never a point-in-time view; with
/// `lock`, every object is written with that Object Lock retention
/// (`s3://` only).
pub fn open_locked(repo: &str, lock: Option<ObjectLock>) -> BResult<Box<dyn Backend>> {
    let Some(lock) = lock else {
        return open_with_env(repo, crate::sys::vars());
    };
    if !repo.starts_with("s3://") {
        return Err(BackendError::InvalidUrl {
            url: repo.into(),
            reason: "an Object Lock needs an s3:// destination on a bucket with Object Lock                      enabled"
                .into(),
        });
    }
    Ok(Box::new(
        ObjectStoreBackend::open(repo, crate::sys::vars())?.with_object_lock(lock)?,
    ))
}

/// Open the backend a `--repo` value names: a URL with a scheme
/// (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
/// `file:///abs/path`, `memory://`) is an [`ObjectStoreBackend`]; anything
/// else is a local directory ([`LocalBackend`]). Cloud credentials and
/// endpoints come from the process environment only (`AWS_*`, `GOOGLE_*`,
/// `AZURE_*`; [`open_with_env`]). Nothing is read or created yet, except
/// under `--point-in-time` ([`set_point_in_time`]): then the view of the
/// object versions at that time, listed once.
pub fn open(repo: &str) -> BResult<Box<dyn Backend>> {
    match point_in_time() {
        Some(at) => open_at(repo, at),
        None => open_with_env(repo, crate::sys::vars()),
    }
}

/// [`open`] with `env` in place of the process environment (tests pass the
/// settings of their own S3 server this way; the code path is the same).
pub fn open_with_env(
    repo: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> BResult<Box<dyn Backend>> {
    if repo.is_empty() {
        return Err(BackendError::InvalidUrl {
            url: repo.into(),
            reason: "empty repository path".into(),
        });
    }
    match repo.split_once("://") {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Ok(Box::new(ObjectStoreBackend::open(repo, env)?))
        }
        _ => Ok(Box::new(LocalBackend::new(repo))),
    }
}
