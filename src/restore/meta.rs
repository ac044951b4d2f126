//! Applying metadata to restored nodes: owner (as root), xattrs, mode and
//! times. Nothing here follows a symlink.

use crate::snapshot::tree::{Entry, EntryKind};
use rustix::fs::{AtFlags, CWD, Mode, Timespec, Timestamps};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Apply a regular file's metadata through its open descriptor (owner
/// before mode: chown clears set-id bits); returns warnings.
pub fn apply_fd(f: &std::fs::File, path: &Path, e: &Entry, as_root: bool) -> Vec<String> {
    use xattr::FileExt;
    let mut warn = Vec::new();
    if as_root {
        let r = rustix::fs::fchown(
            f,
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
        );
        if let Err(err) = r {
            warn.push(format!("{}: cannot set owner: {err}", path.display()));
        }
    }
    // xattrs before the mode: a read-only mode would forbid setting
    // user.* xattrs to a non-root owner.
    for x in &e.xattrs {
        let name = OsStr::from_bytes(&x.name);
        if let Err(err) = f.set_xattr(name, &x.value) {
            warn.push(format!(
                "{}: cannot set xattr {}: {err}",
                path.display(),
                String::from_utf8_lossy(&x.name)
            ));
        }
    }
    if let Err(err) = rustix::fs::fchmod(f, Mode::from_raw_mode(e.mode)) {
        warn.push(format!("{}: cannot set mode: {err}", path.display()));
    }
    let t = Timespec {
        tv_sec: e.mtime_sec,
        tv_nsec: i64::from(e.mtime_nsec) as _,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    if let Err(err) = rustix::fs::futimens(f, &times) {
        warn.push(format!("{}: cannot set times: {err}", path.display()));
    }
    warn
}

/// Apply `e`'s metadata to `path`; returns warnings.
pub fn apply(path: &Path, e: &Entry, as_root: bool) -> Vec<String> {
    let mut warn = Vec::new();
    let kind = e.kind();
    if as_root {
        let r = rustix::fs::chownat(
            CWD,
            path,
            Some(rustix::fs::Uid::from_raw(e.uid)),
            Some(rustix::fs::Gid::from_raw(e.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        if let Err(err) = r {
            warn.push(format!("{}: cannot set owner: {err}", path.display()));
        }
    }
    // xattrs before the mode: a read-only mode would forbid setting
    // user.* xattrs to a non-root owner.
    for x in &e.xattrs {
        let name = OsStr::from_bytes(&x.name);
        if let Err(err) = xattr::set(path, name, &x.value) {
            warn.push(format!(
                "{}: cannot set xattr {}: {err}",
                path.display(),
                String::from_utf8_lossy(&x.name)
            ));
        }
    }
    if kind != EntryKind::Symlink {
        if let Err(err) = rustix::fs::chmod(path, Mode::from_raw_mode(e.mode)) {
            warn.push(format!("{}: cannot set mode: {err}", path.display()));
        }
    }
    let t = Timespec {
        tv_sec: e.mtime_sec,
        tv_nsec: i64::from(e.mtime_nsec) as _,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    if let Err(err) = rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW) {
        warn.push(format!("{}: cannot set times: {err}", path.display()));
    }
    warn
}
