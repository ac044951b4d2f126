//! Applying metadata to restored nodes: owner (as root), xattrs, mode and
//! times, in that order (chown clears set-id bits; a read-only mode would
//! forbid setting `user.*` xattrs to a non-root owner). Nothing here follows
//! a symlink.

use crate::snapshot::tree::{Entry, EntryKind};
use rustix::fs::{AtFlags, CWD, Gid, Mode, Timespec, Timestamps, Uid};
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What to apply metadata to: an open regular file, or a path (directories,
/// symlinks, special files).
#[derive(Clone, Copy)]
enum On<'a> {
    Fd(&'a File),
    Path(&'a Path),
}

/// Apply a regular file's metadata through its open descriptor; returns warnings.
pub fn apply_fd(f: &File, path: &Path, e: &Entry, as_root: bool) -> Vec<String> {
    apply_on(On::Fd(f), path, e, as_root)
}

/// Apply `e`'s metadata to `path` without following it; returns warnings.
pub fn apply(path: &Path, e: &Entry, as_root: bool) -> Vec<String> {
    apply_on(On::Path(path), path, e, as_root)
}

fn apply_on(on: On<'_>, path: &Path, e: &Entry, as_root: bool) -> Vec<String> {
    use xattr::FileExt;
    let mut warn = Vec::new();
    let mut check = |what: &dyn Fn() -> String, r: std::io::Result<()>| {
        if let Err(err) = r {
            warn.push(format!("{}: cannot set {}: {err}", path.display(), what()));
        }
    };
    if as_root {
        let (uid, gid) = (Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)));
        let r = match on {
            On::Fd(f) => rustix::fs::fchown(f, uid, gid),
            On::Path(p) => rustix::fs::chownat(CWD, p, uid, gid, AtFlags::SYMLINK_NOFOLLOW),
        };
        check(&|| "owner".into(), r.map_err(Into::into));
    }
    for x in &e.xattrs {
        let name = OsStr::from_bytes(&x.name);
        let r = match on {
            On::Fd(f) => f.set_xattr(name, &x.value),
            On::Path(p) => xattr::set(p, name, &x.value),
        };
        check(&|| format!("xattr {}", String::from_utf8_lossy(&x.name)), r);
    }
    if e.kind() != EntryKind::Symlink {
        let mode = Mode::from_raw_mode(e.mode);
        let r = match on {
            On::Fd(f) => rustix::fs::fchmod(f, mode),
            On::Path(p) => rustix::fs::chmod(p, mode),
        };
        check(&|| "mode".into(), r.map_err(Into::into));
    }
    let t = Timespec {
        tv_sec: e.mtime_sec,
        tv_nsec: i64::from(e.mtime_nsec) as _,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    let r = match on {
        On::Fd(f) => rustix::fs::futimens(f, &times),
        On::Path(p) => rustix::fs::utimensat(CWD, p, &times, AtFlags::SYMLINK_NOFOLLOW),
    };
    check(&|| "times".into(), r.map_err(Into::into));
    warn
}
