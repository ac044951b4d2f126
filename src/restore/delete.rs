//! `restore --delete`: remove what a restored directory of the target holds
//! beside the snapshot's entries. It never leaves the target: directories
//! are opened component by component with O_NOFOLLOW from the target down,
//! everything below is removed relative to an open directory
//! (`unlinkat`), and a symlink is removed as a link, never followed.

use crate::snapshot::tree::Tree;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// Directory `rel` below `target`, opened without following any symlink
/// below the target (the target itself may be one: the user's choice);
/// `None` if there is no directory there.
pub fn open_dir(target: &Path, rel: &Path) -> Option<OwnedFd> {
    let flags = DIR_FLAGS.difference(OFlags::NOFOLLOW);
    let mut fd = rustix::fs::openat(rustix::fs::CWD, target, flags, Mode::empty()).ok()?;
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return None; // names are checked when trees are decoded
        };
        fd = rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()).ok()?;
    }
    Some(fd)
}

/// Removes (or with `dry_run`, lists) paths and counts them.
#[derive(Debug, Default)]
pub struct Deleter {
    /// Count and list, remove nothing.
    pub dry_run: bool,
    /// Root needs no write bit to remove from a directory; others add u+wx
    /// to a read-only directory before emptying it.
    pub as_root: bool,
    /// Paths removed (a directory and everything in it count each).
    pub count: u64,
    /// With `dry_run`: the paths that would be removed.
    pub paths: Vec<String>,
}

impl Deleter {
    /// Remove the entries of directory `dir` (at `path`) that `keep` has
    /// no entry for.
    pub fn extras(&mut self, dir: &OwnedFd, path: &Path, keep: &Tree) -> std::io::Result<()> {
        for name in names(dir)? {
            let b = name.as_bytes();
            let kept = keep
                .entries
                .binary_search_by(|e| e.name.as_slice().cmp(b))
                .is_ok();
            if !kept {
                self.remove(dir, &name, &path.join(&name))?;
            }
        }
        Ok(())
    }

    /// Remove entry `name` of directory `parent` (at `path`) and, if it is
    /// a directory, everything in it.
    pub fn remove(&mut self, parent: &OwnedFd, name: &OsStr, path: &Path) -> std::io::Result<()> {
        let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            let sub = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?;
            if !self.dry_run && !self.as_root && st.st_mode & 0o300 != 0o300 {
                let mode = Mode::from_raw_mode((st.st_mode | 0o300) & 0o7777);
                rustix::fs::fchmod(&sub, mode)?;
            }
            for n in names(&sub)? {
                self.remove(&sub, &n, &path.join(&n))?;
            }
            if !self.dry_run {
                rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?;
            }
        } else if !self.dry_run {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
        }
        self.count += 1;
        if self.dry_run {
            self.paths.push(path.display().to_string());
        }
        Ok(())
    }
}

/// The names in an open directory (without `.` and `..`), read before
/// anything in it is removed.
fn names(dir: &OwnedFd) -> std::io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let b = ent.file_name().to_bytes();
        if b != b"." && b != b".." {
            out.push(OsString::from_vec(b.to_vec()));
        }
    }
    out.sort();
    Ok(out)
}
