//! Differences between two trees. Identical subtrees (same id) are skipped
//! without being read.

use super::walk;
use crate::error::Result;
use crate::id::BlobId;
use crate::read::BlobReader;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
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
    let (ta, tb) = (reader.tree(a)?, reader.tree(b)?);
    diff_listings(reader, &ta, &tb, prefix, f)
}

fn all_below(
    reader: &BlobReader,
    e: &Entry,
    path: &Path,
    change: Change,
    f: &mut OnChange<'_>,
) -> Result<()> {
    let (old, new) = if change == Change::Added {
        (None, Some(e))
    } else {
        (Some(e), None)
    };
    f(change, path, old, new)?;
    if e.kind() == EntryKind::Dir {
        if let Some(id) = e.subtree {
            walk(reader, &reader.tree(&id)?, path, &mut |p, x| {
                let (old, new) = if change == Change::Added {
                    (None, Some(x))
                } else {
                    (Some(x), None)
                };
                f(change, p, old, new)?;
                Ok(true)
            })?;
        }
    }
    Ok(())
}

fn diff_listings(
    reader: &BlobReader,
    ta: &Tree,
    tb: &Tree,
    prefix: &Path,
    f: &mut OnChange<'_>,
) -> Result<()> {
    let (mut i, mut j) = (0, 0);
    while i < ta.entries.len() || j < tb.entries.len() {
        let (ea, eb) = (ta.entries.get(i), tb.entries.get(j));
        let order = match (ea, eb) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match (order, ea, eb) {
            (std::cmp::Ordering::Less, Some(x), _) => {
                all_below(
                    reader,
                    x,
                    &prefix.join(std::ffi::OsStr::from_bytes(&x.name)),
                    Change::Removed,
                    f,
                )?;
                i += 1;
            }
            (std::cmp::Ordering::Greater, _, Some(y)) => {
                all_below(
                    reader,
                    y,
                    &prefix.join(std::ffi::OsStr::from_bytes(&y.name)),
                    Change::Added,
                    f,
                )?;
                j += 1;
            }
            (_, Some(x), Some(y)) => {
                let path = prefix.join(std::ffi::OsStr::from_bytes(&x.name));
                if x.kind != y.kind {
                    f(Change::TypeChanged, &path, Some(x), Some(y))?;
                    // what was below the old directory is gone, what is below the new one is new
                    if x.kind() == EntryKind::Dir {
                        all_below_children(reader, x, &path, Change::Removed, f)?;
                    }
                    if y.kind() == EntryKind::Dir {
                        all_below_children(reader, y, &path, Change::Added, f)?;
                    }
                } else if x.kind() == EntryKind::Dir {
                    if !same_metadata(x, y) {
                        f(Change::Metadata, &path, Some(x), Some(y))?;
                    }
                    if let (Some(a), Some(b)) = (x.subtree, y.subtree) {
                        diff(reader, &a, &b, &path, f)?;
                    }
                } else if x.content != y.content
                    || x.extents != y.extents
                    || x.size != y.size
                    || x.target != y.target
                {
                    f(Change::Modified, &path, Some(x), Some(y))?;
                } else if !same_metadata(x, y) {
                    f(Change::Metadata, &path, Some(x), Some(y))?;
                }
                i += 1;
                j += 1;
            }
            _ => break,
        }
    }
    Ok(())
}

fn all_below_children(
    reader: &BlobReader,
    dir: &Entry,
    path: &Path,
    change: Change,
    f: &mut OnChange<'_>,
) -> Result<()> {
    if let Some(id) = dir.subtree {
        for e in &reader.tree(&id)?.entries {
            all_below(
                reader,
                e,
                &path.join(std::ffi::OsStr::from_bytes(&e.name)),
                change,
                f,
            )?;
        }
    }
    Ok(())
}
