//! Directory trees (format-spec/objects.md "Tree body"): one blob per
//! directory, so unchanged directories dedup to the same id.

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::object;
use bincode::{Decode, Encode};

/// What a tree entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// Regular file.
    File = 0,
    /// Directory.
    Dir = 1,
    /// Symbolic link.
    Symlink = 2,
    /// Named pipe.
    Fifo = 3,
    /// Character device.
    CharDev = 4,
    /// Block device.
    BlockDev = 5,
    /// Unix socket (recorded, restored as nothing).
    Socket = 6,
}

impl EntryKind {
    /// Decode the kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => EntryKind::File,
            1 => EntryKind::Dir,
            2 => EntryKind::Symlink,
            3 => EntryKind::Fifo,
            4 => EntryKind::CharDev,
            5 => EntryKind::BlockDev,
            6 => EntryKind::Socket,
            _ => return None,
        })
    }
}

/// A data region of a sparse file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Extent {
    /// Offset in the file.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// Reads the data regions of a sparse file back to back: the file's data
/// stream, as chunked at backup and checked by `restore --verify`. Stops
/// early (EOF) if the file is shorter than its extents say.
pub struct ExtentReader<'f> {
    file: &'f std::fs::File,
    extents: &'f [Extent],
    idx: usize,
    done: u64,
}

impl<'f> ExtentReader<'f> {
    /// Read `extents` of `file` in order.
    pub fn new(file: &'f std::fs::File, extents: &'f [Extent]) -> Self {
        ExtentReader {
            file,
            extents,
            idx: 0,
            done: 0,
        }
    }
}

impl std::io::Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        while let Some(e) = self.extents.get(self.idx) {
            if self.done >= e.len {
                self.idx += 1;
                self.done = 0;
                continue;
            }
            let want = buf.len().min((e.len - self.done) as usize);
            let n = self.file.read_at(&mut buf[..want], e.offset + self.done)?;
            if n == 0 {
                self.idx = self.extents.len();
                return Ok(0);
            }
            self.done += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// An extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Xattr {
    /// Name bytes.
    pub name: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Entry {
    /// One path component.
    pub name: Vec<u8>,
    /// [`EntryKind`] as a byte.
    pub kind: u8,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Change time, seconds (change detection only).
    pub ctime_sec: i64,
    /// Change time, nanoseconds.
    pub ctime_nsec: u32,
    /// Inode number.
    pub inode: u64,
    /// Device number of the file system.
    pub device: u64,
    /// Link count.
    pub nlink: u64,
    /// Logical size of a file.
    pub size: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Chunk ids of a file's data, in order.
    pub content: Vec<BlobId>,
    /// Data regions of a sparse file; empty = dense.
    pub extents: Vec<Extent>,
    /// Symlink target.
    pub target: Vec<u8>,
    /// Tree id of a directory.
    pub subtree: Option<BlobId>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<Xattr>,
}

impl Entry {
    /// An entry of `kind` named `name`, every other field zero or empty.
    pub fn new(name: Vec<u8>, kind: EntryKind) -> Self {
        Entry {
            name,
            kind: kind as u8,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime_sec: 0,
            mtime_nsec: 0,
            ctime_sec: 0,
            ctime_nsec: 0,
            inode: 0,
            device: 0,
            nlink: 1,
            size: 0,
            rdev: 0,
            content: Vec::new(),
            extents: Vec::new(),
            target: Vec::new(),
            subtree: None,
            xattrs: Vec::new(),
        }
    }

    /// The kind, if the byte is valid (checked by [`Tree::decode`]).
    pub fn kind(&self) -> EntryKind {
        EntryKind::from_u8(self.kind).unwrap_or(EntryKind::Socket)
    }
    /// Name for display.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A directory listing, or the index of a large directory's parts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Tree {
    /// Entries, sorted by name, unique. Empty when `parts` is not.
    pub entries: Vec<Entry>,
    /// A large directory: tree blobs (each with entries and no parts) whose
    /// entries, concatenated in order, are the listing (objects.md "Parts").
    pub parts: Vec<BlobId>,
}

/// Check a listing: valid kinds, safe names, sorted and unique.
pub fn check_entries(entries: &[Entry], object: &str) -> Result<()> {
    let mut prev: Option<&[u8]> = None;
    for e in entries {
        if !valid_name(&e.name) {
            return Err(Error::corrupt(
                object,
                format!("unsafe entry name {:?}", e.name_lossy()),
            ));
        }
        let kind = EntryKind::from_u8(e.kind)
            .ok_or_else(|| Error::corrupt(object, format!("unknown entry kind {}", e.kind)))?;
        if kind == EntryKind::Dir && e.subtree.is_none() {
            return Err(Error::corrupt(
                object,
                format!("directory {:?} without a tree", e.name_lossy()),
            ));
        }
        if prev.is_some_and(|p| p >= e.name.as_slice()) {
            return Err(Error::corrupt(object, "entries not sorted or not unique"));
        }
        prev = Some(&e.name);
    }
    Ok(())
}

/// Directories with more entries than this are stored in parts.
pub const SPLIT_ABOVE: usize = 128;
/// A part ends after an entry whose name hash is 0 modulo this (when the
/// part has at least `PART_MIN` entries), so on average parts hold this many.
pub const PART_AVG: u32 = 16;
/// Fewest entries in a part (but the last).
pub const PART_MIN: usize = 4;
/// Most entries in a part.
pub const PART_MAX: usize = 256;

/// Split a large listing into parts at content-defined boundaries: a part
/// ends after an entry whose name hashes to 0 modulo [`PART_AVG`]. A
/// boundary depends only on names, so adding, removing or changing entries
/// rewrites only the parts they fall in. `name_hash` is the repository's
/// id function (keyed in encrypted repositories). Returns `[start, end)`
/// ranges covering `entries`; one range if the listing is small.
pub fn part_ranges(entries: &[Entry], name_hash: impl Fn(&[u8]) -> BlobId) -> Vec<(usize, usize)> {
    if entries.len() <= SPLIT_ABOVE {
        return vec![(0, entries.len())];
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = i + 1 - start;
        let h = name_hash(&e.name).0;
        let cut = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % PART_AVG == 0;
        if (cut && len >= PART_MIN) || len >= PART_MAX {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < entries.len() {
        out.push((start, entries.len()));
    }
    out
}

/// Is `name` one safe path component?
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    /// Encode for storage as a tree blob.
    pub fn encode(&self) -> Result<Vec<u8>> {
        object::encode_body(self)
    }

    /// Decode and check a tree blob: valid kinds, safe names, sorted and unique.
    pub fn decode(bytes: &[u8], id: &BlobId) -> Result<Tree> {
        let object = format!("tree {}", id.short());
        let t: Tree = object::decode_body(bytes, &object)?;
        if !t.parts.is_empty() && !t.entries.is_empty() {
            return Err(Error::corrupt(&object, "tree has both entries and parts"));
        }
        check_entries(&t.entries, &object)?;
        Ok(t)
    }

    /// Find an entry by name.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: String) -> Entry {
        Entry::new(name.into_bytes(), EntryKind::File)
    }

    fn parts_of(entries: &[Entry]) -> Vec<Vec<Vec<u8>>> {
        part_ranges(entries, BlobId::of)
            .into_iter()
            .map(|(a, b)| entries[a..b].iter().map(|e| e.name.clone()).collect())
            .collect()
    }

    #[test]
    fn small_listings_are_one_part() {
        let v: Vec<Entry> = (0..SPLIT_ABOVE).map(|i| entry(format!("{i:05}"))).collect();
        assert_eq!(part_ranges(&v, BlobId::of), vec![(0, SPLIT_ABOVE)]);
    }

    #[test]
    fn parts_cover_everything_within_bounds_and_resist_edits() {
        let v: Vec<Entry> = (0..5000).map(|i| entry(format!("{i:07}.json"))).collect();
        let r = part_ranges(&v, BlobId::of);
        assert_eq!(r.first().map(|x| x.0), Some(0));
        assert_eq!(r.last().map(|x| x.1), Some(v.len()));
        for w in r.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        for &(a, b) in &r[..r.len() - 1] {
            assert!((PART_MIN..=PART_MAX).contains(&(b - a)));
        }
        let avg = v.len() / r.len();
        assert!((8..=32).contains(&avg), "average part size {avg}");
        // Deleting one entry changes at most two parts (its own, and a
        // neighbour when the deleted entry was a boundary).
        let before = parts_of(&v);
        let mut w = v.clone();
        w.remove(2500);
        let after = parts_of(&w);
        let changed = after.iter().filter(|p| !before.contains(p)).count();
        assert!(changed <= 2, "{changed} parts changed");
    }
}
