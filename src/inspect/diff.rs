//! Differences between two trees. Identical subtrees (same id) are skipped
//! without being read.

use super::walk;
use crate::error::Result;
use crate::id::BlobId;
use crate::read::BlobReader;
use crate::read::Listing;
use crate::snapshot::tree::{Entry, EntryKind};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What changed at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Change {
    /// Only in the second tree (`+`).
    Added,
    /// Only in the first tree (`-`).
    Removed,
    /// A file's content changed (`M`).
    Modified,
    /// The kind changed, e.g. file -> symlink (`T`).
    TypeChanged,
    /// Same content, other metadata: mode, owner, mtime, xattrs (`m`). A
    /// changed symlink target is `M`.
    Metadata,
}

impl Change {
    /// The one-letter marker.
    pub fn marker(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::TypeChanged => 'T',
            Change::Metadata => 'm',
        }
    }
}

/// Called with each change: (change, path, old entry, new entry).
pub type OnChange<'a> = dyn FnMut(Change, &Path, Option<&Entry>, Option<&Entry>) -> Result<()> + 'a;

/// Metadata that counts for `m` (ctime, inode and device do not: they change
/// on any copy and are kept only for change detection). A directory's mtime
/// does not count either: it changes whenever its contents do.
fn same_metadata(a: &Entry, b: &Entry) -> bool {
    let times =
        a.kind() == EntryKind::Dir || (a.mtime_sec, a.mtime_nsec) == (b.mtime_sec, b.mtime_nsec);
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.xattrs == b.xattrs
        && a.rdev == b.rdev
        && times
}

/// Report every change from tree `a` to tree `b` through `f(change, path,
/// old, new)`, in path order.
pub fn diff(
    reader: &BlobReader,
    a: &BlobId,
    b: &BlobId,
    prefix: &Path,
    f: &mut OnChange<'_>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ta, tb) = (reader.listing(a)?, reader.listing(b)?);
    diff_listings(reader, &ta, &tb, prefix, f)
}

/// The (old, new) pair for an entry that exists on one side only.
fn one_side(change: Change, e: &Entry) -> (Option<&Entry>, Option<&Entry>) {
    if change == Change::Added {
        (None, Some(e))
    } else {
        (Some(e), None)
    }
}

/// Report `e` at `path` and, for a directory, everything below it, all as
/// `change` (Added or Removed).
fn all_below(
    reader: &BlobReader,
    e: &Entry,
    path: &Path,
    change: Change,
    f: &mut OnChange<'_>,
) -> Result<()> {
    let (old, new) = one_side(change, e);
    f(change, path, old, new)?;
    below(reader, e, path, change, f)
}

/// Report everything below directory `e` (not `e` itself) as `change`.
fn below(
    reader: &BlobReader,
    e: &Entry,
    path: &Path,
    change: Change,
    f: &mut OnChange<'_>,
) -> Result<()> {
    if let (EntryKind::Dir, Some(id)) = (e.kind(), e.subtree) {
        walk(reader, &reader.meta_tree(&id)?, path, &mut |p, x| {
            let (old, new) = one_side(change, x);
            f(change, p, old, new)?;
            Ok(true)
        })?;
    }
    Ok(())
}

fn diff_listings(
    reader: &BlobReader,
    ta: &Listing,
    tb: &Listing,
    prefix: &Path,
    f: &mut OnChange<'_>,
) -> Result<()> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let (mut i, mut j) = (0, 0);
    loop {
        let (ea, eb) = (ta.entries.get(i), tb.entries.get(j));
        let order = match (ea, eb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (None, None) => return Ok(()),
        };
        let (x, y) = match order {
            Less => (ea, None),
            Greater => (None, eb),
            Equal => (ea, eb),
        };
        let name = x.or(y).map(|e| e.name.as_slice()).unwrap_or_default();
        let path = prefix.join(std::ffi::OsStr::from_bytes(name));
        match (x, y) {
            (Some(x), None) => all_below(reader, x, &path, Change::Removed, f)?,
            (None, Some(y)) => all_below(reader, y, &path, Change::Added, f)?,
            (Some(x), Some(y)) if x.kind != y.kind => {
                f(Change::TypeChanged, &path, Some(x), Some(y))?;
                // below the old directory is gone, below the new one is new
                below(reader, x, &path, Change::Removed, f)?;
                below(reader, y, &path, Change::Added, f)?;
            }
            (Some(x), Some(y)) if x.kind() == EntryKind::Dir => {
                if !same_metadata(x, y) {
                    f(Change::Metadata, &path, Some(x), Some(y))?;
                }
                if let (Some(a), Some(b)) = (x.subtree, y.subtree) {
                    diff(reader, &a, &b, &path, f)?;
                }
            }
            (Some(x), Some(y)) => {
                // inline contents are compared by their digests
                let digest = |l: &Listing, k: usize| l.inline_digest.get(k).copied().flatten();
                if x.content != y.content
                    || digest(ta, i) != digest(tb, j)
                    || x.extents != y.extents
                    || x.size != y.size
                    || x.target != y.target
                {
                    f(Change::Modified, &path, Some(x), Some(y))?;
                } else if !same_metadata(x, y) {
                    f(Change::Metadata, &path, Some(x), Some(y))?;
                }
            }
            (None, None) => {}
        }
        if x.is_some() {
            i += 1;
        }
        if y.is_some() {
            j += 1;
        }
    }
}

/// What `diff` counts: changes per kind, and the bytes of regular files
/// added and removed (a modified file counts on both sides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// `+`
    pub added: u64,
    /// `-`
    pub removed: u64,
    /// `M`
    pub modified: u64,
    /// `T`
    pub type_changed: u64,
    /// `m`
    pub metadata: u64,
    /// Bytes of the regular files on the new side of `+`, `M` and `T`.
    pub added_bytes: u64,
    /// Bytes of the regular files on the old side of `-`, `M` and `T`.
    pub removed_bytes: u64,
}

impl Totals {
    /// Count one change, as [`diff`] reports it.
    pub fn count(&mut self, c: Change, old: Option<&Entry>, new: Option<&Entry>) {
        let file_size = |e: Option<&Entry>| {
            e.filter(|e| e.kind() == EntryKind::File)
                .map_or(0, |e| e.size)
        };
        match c {
            Change::Added => {
                self.added += 1;
                self.added_bytes += file_size(new);
            }
            Change::Removed => {
                self.removed += 1;
                self.removed_bytes += file_size(old);
            }
            Change::Modified | Change::TypeChanged => {
                if c == Change::Modified {
                    self.modified += 1;
                } else {
                    self.type_changed += 1;
                }
                self.added_bytes += file_size(new);
                self.removed_bytes += file_size(old);
            }
            Change::Metadata => self.metadata += 1,
        }
    }
}
