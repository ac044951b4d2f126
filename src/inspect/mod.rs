//! Looking inside snapshots without restoring them: locate a path, walk a
//! tree, stream a file, diff two trees, count unique blobs. Everything here
//! reads tree blobs only (they sit in their own packs), except `cat`, which
//! reads the data blobs of the one file asked for.

pub mod diff;
pub mod find;
pub mod latest;
pub mod raw;
pub mod stats;

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::read::BlobReader;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A path inside a snapshot: the root, or one entry.
#[derive(Debug)]
pub struct Located {
    /// Path from the snapshot root, starting with `/`.
    pub path: PathBuf,
    /// The entry; `None` for the root.
    pub entry: Option<Entry>,
}

impl Located {
    /// Is it a directory (or the root)?
    pub fn is_dir(&self) -> bool {
        self.entry
            .as_ref()
            .is_none_or(|e| e.kind() == EntryKind::Dir)
    }

    /// Its listing (names and metadata), if it is a directory.
    pub fn listing(&self, reader: &BlobReader, snap: &Snapshot) -> Result<Option<Tree>> {
        match &self.entry {
            None => Ok(Some(reader.meta_tree(&snap.tree)?)),
            Some(e) if e.kind() == EntryKind::Dir => match e.subtree {
                Some(id) => Ok(Some(reader.meta_tree(&id)?)),
                None => Ok(Some(Tree::default())),
            },
            Some(_) => Ok(None),
        }
    }
}

/// Find the stored path that argument `arg` names (components separated
/// by `/`; empty or `/` = the root): the bytes as given, or else the bytes
/// their backslash escapes stand for, as `ls` and `find` print them
/// (`paths::spellings`). The entry found carries its inline contents, if
/// any (read from the packs).
pub fn locate(reader: &BlobReader, snap: &Snapshot, arg: &[u8]) -> Result<Located> {
    // The error names the last spelling: the decoded one, which prints as
    // the user typed it.
    let mut last = String::new();
    for spelling in crate::paths::spellings(arg) {
        match locate_exact(reader, snap, &spelling)? {
            Ok(found) => return Ok(found),
            Err(msg) => last = msg,
        }
    }
    Err(Error::NotFound(last))
}

/// [`locate`] for one spelling: `Ok(Err(message))` when it names nothing.
pub(crate) fn locate_exact(
    reader: &BlobReader,
    snap: &Snapshot,
    path: &[u8],
) -> Result<std::result::Result<Located, String>> {
    let comps = crate::paths::components(path)?;
    let shown = |i: usize| {
        let mut p = Vec::new();
        for c in &comps[..=i] {
            p.push(b'/');
            p.extend_from_slice(c);
        }
        crate::paths::escape(&p)
    };
    let mut dir = snap.tree;
    let mut tree = reader.listing(&dir)?;
    let mut found = Located {
        path: PathBuf::from("/"),
        entry: None,
    };
    for (i, c) in comps.iter().enumerate() {
        let pos = tree.position(c);
        let Some(e) = pos.map(|k| tree.entries[k].clone()) else {
            return Ok(Err(format!(
                "{}: no such file or directory in the snapshot",
                shown(i)
            )));
        };
        found.path.push(std::ffi::OsStr::from_bytes(c));
        if i + 1 < comps.len() {
            if e.kind() != EntryKind::Dir {
                return Ok(Err(format!("{}: not a directory", shown(i))));
            }
            dir = e.subtree.unwrap_or(BlobId([0; 32]));
            tree = match e.subtree {
                Some(id) => reader.listing(&id)?,
                None => crate::read::Listing::default(),
            };
        }
        let e = match pos {
            // the listing left the contents out: take the entry from the tree
            Some(k) if i + 1 == comps.len() && tree.elided(k) => {
                reader.tree(&dir)?.get(c).cloned().unwrap_or(e)
            }
            _ => e,
        };
        found.entry = Some(e);
    }
    Ok(Ok(found))
}

/// Walk `tree` in pre-order (a directory before its contents), calling `f`
/// with each entry's path below `prefix`. `f` returns whether to descend
/// into a directory.
pub fn walk(
    reader: &BlobReader,
    tree: &Tree,
    prefix: &Path,
    f: &mut dyn FnMut(&Path, &Entry) -> Result<bool>,
) -> Result<()> {
    walk_at(reader, tree, prefix, f, 0)
}

/// [`walk`] of a tree `depth` directories down (at most
/// [`crate::snapshot::tree::MAX_DEPTH`]).
fn walk_at(
    reader: &BlobReader,
    tree: &Tree,
    prefix: &Path,
    f: &mut dyn FnMut(&Path, &Entry) -> Result<bool>,
    depth: usize,
) -> Result<()> {
    for e in &tree.entries {
        let path = prefix.join(std::ffi::OsStr::from_bytes(&e.name));
        let descend = f(&path, e)?;
        if descend && e.kind() == EntryKind::Dir {
            if let Some(id) = e.subtree {
                crate::snapshot::tree::check_depth(depth, &format!("tree {}", id.short()))?;
                walk_at(reader, &reader.meta_tree(&id)?, &path, f, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Write a regular file's exact bytes to `out`, one chunk at a time (memory
/// stays constant whatever the size); holes of sparse files as zeros.
pub fn cat(reader: &BlobReader, e: &Entry, out: &mut dyn Write) -> Result<()> {
    let stdout = Path::new("<stdout>");
    let put = |out: &mut dyn Write, b: &[u8]| -> Result<()> {
        use crate::error::IoContext;
        out.write_all(b).at(stdout)
    };
    if e.is_inline() {
        put(out, &e.inline)?;
        use crate::error::IoContext;
        return out.flush().at(stdout);
    }
    let zeros = |out: &mut dyn Write, mut n: u64| -> Result<()> {
        let z = [0u8; 64 << 10];
        while n > 0 {
            let k = n.min(z.len() as u64) as usize;
            put(out, &z[..k])?;
            n -= k as u64;
        }
        Ok(())
    };
    // (file offset, length) of each data region, in order.
    let regions: Vec<(u64, u64)> = if e.extents.is_empty() {
        vec![(0, u64::MAX)]
    } else {
        e.extents.iter().map(|x| (x.offset, x.len)).collect()
    };
    let (mut region, mut left, mut pos) = (0usize, regions[0].1, 0u64);
    if regions[0].0 > 0 {
        zeros(out, regions[0].0)?;
        pos = regions[0].0;
    }
    for id in &e.content {
        let data = reader.read(id)?;
        let mut rest = data.as_slice();
        while !rest.is_empty() {
            if left == 0 {
                region += 1;
                let Some(&(off, len)) = regions.get(region) else {
                    return Err(Error::corrupt(
                        format!("file {}", e.name_lossy()),
                        "data beyond its extents",
                    ));
                };
                zeros(out, off.saturating_sub(pos))?;
                pos = off;
                left = len;
            }
            let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            put(out, &rest[..n])?;
            rest = &rest[n..];
            left -= n as u64;
            pos += n as u64;
        }
    }
    if pos < e.size {
        zeros(out, e.size - pos)?;
    }
    use crate::error::IoContext;
    out.flush().at(stdout)
}

/// Tree ids already walked, to skip identical subtrees (a Merkle tree: same
/// id, same contents).
pub type Seen = std::collections::HashSet<BlobId>;
