//! Directory trees (format-spec/objects.md "Tree body"): one blob per
//! directory (or per part of a large one), so unchanged directories dedup to
//! the same id. Format 2 trees (a `0xFF 0x02` prefix) carry the contents of
//! small files inline; format 1 trees (no prefix) are still read.

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
    /// A small file's contents, stored in the tree (format 2); empty when
    /// the file's data is in `content` or the file is empty.
    pub inline: Vec<u8>,
}

/// An entry of a format-1 tree: [`Entry`] without `inline`.
#[derive(Decode)]
struct EntryV1 {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_sec: i64,
    mtime_nsec: u32,
    ctime_sec: i64,
    ctime_nsec: u32,
    inode: u64,
    device: u64,
    nlink: u64,
    size: u64,
    rdev: u64,
    content: Vec<BlobId>,
    extents: Vec<Extent>,
    target: Vec<u8>,
    subtree: Option<BlobId>,
    xattrs: Vec<Xattr>,
}

/// A format-1 tree.
#[derive(Decode)]
struct TreeV1 {
    entries: Vec<EntryV1>,
    parts: Vec<BlobId>,
}

impl From<EntryV1> for Entry {
    fn from(e: EntryV1) -> Entry {
        Entry {
            name: e.name,
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime_sec: e.mtime_sec,
            mtime_nsec: e.mtime_nsec,
            ctime_sec: e.ctime_sec,
            ctime_nsec: e.ctime_nsec,
            inode: e.inode,
            device: e.device,
            nlink: e.nlink,
            size: e.size,
            rdev: e.rdev,
            content: e.content,
            extents: e.extents,
            target: e.target,
            subtree: e.subtree,
            xattrs: e.xattrs,
            inline: Vec::new(),
        }
    }
}

/// The first two bytes of a format-2 tree blob. `0xFF` is no valid first
/// byte of a format-1 tree (a bincode varint never starts with it).
pub const TREE2_PREFIX: [u8; 2] = [0xFF, 0x02];

/// Largest inline content a reader accepts (writers inline far less:
/// [`INLINE_MAX`]).
pub const INLINE_LIMIT: usize = 64 << 10;

/// Deepest directory nesting a walk over trees follows (format-spec/objects.md
/// "Tree body"): a crafted snapshot can nest directories without end, and
/// the recursive walks (ls -r, find, stats, diff, restore) stop there with
/// an error instead of overflowing their stack, and a backup skips deeper
/// directories with a warning, so that what it saves can be restored.
pub const MAX_DEPTH: usize = 1024;

/// Fail if a directory at `depth` (the root's entries are at 0) is
/// deeper than [`MAX_DEPTH`]; `path` names it.
pub fn check_depth(depth: usize, path: &dyn std::fmt::Display) -> Result<()> {
    if depth < MAX_DEPTH {
        return Ok(());
    }
    Err(Error::corrupt(
        format!("{path}"),
        format!("directories nested deeper than {MAX_DEPTH} levels"),
    ))
}

/// Files up to this size are stored inline by writers (format-spec/objects.md
/// "Inline files"; chosen by measurement, README "Small files").
pub const INLINE_MAX: u64 = 4 << 10;

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
            inline: Vec::new(),
        }
    }

    /// Is the file's data stored inline (in the tree)?
    pub fn is_inline(&self) -> bool {
        !self.inline.is_empty()
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
        if e.is_inline() {
            let ok = kind == EntryKind::File
                && e.content.is_empty()
                && e.extents.is_empty()
                && e.inline.len() <= INLINE_LIMIT
                && e.size == e.inline.len() as u64;
            if !ok {
                return Err(Error::corrupt(
                    object,
                    format!("bad inline data of {:?}", e.name_lossy()),
                ));
            }
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
/// ... or whose entries take more than this many bytes (about).
pub const SPLIT_ABOVE_BYTES: usize = 32 << 10;
/// The average size of a part (about, in encoded bytes).
pub const PART_TARGET_BYTES: u64 = 16 << 10;
/// A part ends at this size (about) in any case ...
pub const PART_MAX_BYTES: usize = 64 << 10;
/// ... or at this many entries.
pub const PART_MAX: usize = 4096;

/// About how many bytes `e` takes in an encoded tree: what parts are sized
/// by (only writers use it, so it need not be exact). Inline contents count
/// by the file's size, so an entry whose contents were left out of a
/// listing (read.rs `Listing`) sizes the same.
pub fn approx_len(e: &Entry) -> usize {
    let data = if e.content.is_empty() && e.extents.is_empty() {
        (e.size as usize).min(INLINE_LIMIT)
    } else {
        0
    };
    48 + e.name.len()
        + data
        + 32 * e.content.len()
        + 16 * e.extents.len()
        + e.target.len()
        + e.xattrs
            .iter()
            .map(|x| 2 + x.name.len() + x.value.len())
            .sum::<usize>()
}

/// Split a large listing into parts at content-defined boundaries: a part
/// ends after entry `e` when `u32_le(H(e.name)[0..4]) / 2^32 <
/// approx_len(e) / PART_TARGET_BYTES`, i.e. each entry is a boundary with a
/// probability proportional to its size, so parts average
/// [`PART_TARGET_BYTES`]; a part also ends at [`PART_MAX_BYTES`] or
/// [`PART_MAX`] entries. Whether an entry is a boundary depends on that entry
/// alone (not on what precedes it), so adding, removing or changing an entry
/// rewrites only the part it falls in (and its neighbour when it is a
/// boundary). `name_hash` is the repository's id function (keyed in
/// encrypted repositories). Returns `[start, end)` ranges covering
/// `entries`; one range if the listing is small (format-spec/objects.md
/// "Parts").
pub fn part_ranges(entries: &[Entry], name_hash: impl Fn(&[u8]) -> BlobId) -> Vec<(usize, usize)> {
    let total: usize = entries.iter().map(approx_len).sum();
    if !splits(entries.len(), total) {
        return vec![(0, entries.len())];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let len = first_part(&entries[start..], &name_hash).unwrap_or(entries.len() - start);
        out.push((start, start + len));
        start += len;
    }
    out
}

/// Is a listing of `count` entries taking `bytes` (by [`approx_len`])
/// stored in parts? Both only grow as entries are added, so once true for
/// the entries so far it stays true (backup/treestream.rs relies on it).
pub fn splits(count: usize, bytes: usize) -> bool {
    count > SPLIT_ABOVE || bytes > SPLIT_ABOVE_BYTES
}

/// The length of the first part of `entries` (a part starts at
/// `entries[0]`) under the rule of [`part_ranges`], or `None` if no part
/// ends within them: the part goes on past their end (or ends there, if
/// nothing follows).
pub fn first_part(entries: &[Entry], name_hash: impl Fn(&[u8]) -> BlobId) -> Option<usize> {
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = approx_len(e);
        bytes += len;
        let h = name_hash(&e.name).0;
        let draw = u64::from(u32::from_le_bytes([h[0], h[1], h[2], h[3]]));
        let cut = draw * PART_TARGET_BYTES < (len as u64) << 32;
        if cut || bytes >= PART_MAX_BYTES || i + 1 >= PART_MAX {
            return Some(i + 1);
        }
    }
    None
}

/// Is `name` one safe path component?
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    /// Encode for storage as a tree blob: format 2 (`0xFF 0x02`, then the
    /// bincode body).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = TREE2_PREFIX.to_vec();
        out.extend(object::encode_body(self)?);
        Ok(out)
    }

    /// Decode and check a tree blob of format 1 or 2: valid kinds, safe
    /// names, sorted and unique, inline data only in small files.
    pub fn decode(bytes: &[u8], id: &BlobId) -> Result<Tree> {
        let object = format!("tree {}", id.short());
        let t: Tree = match bytes {
            [0xFF, 0x02, body @ ..] => object::decode_body(body, &object)?,
            [0xFF, v, ..] => {
                return Err(Error::corrupt(
                    &object,
                    format!("unsupported tree format {v}"),
                ));
            }
            _ => {
                let v1: TreeV1 = object::decode_body(bytes, &object)?;
                Tree {
                    entries: v1.entries.into_iter().map(Entry::from).collect(),
                    parts: v1.parts,
                }
            }
        };
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
        // ... unless their inline contents are large
        let big: Vec<Entry> = (0..20)
            .map(|i| Entry {
                inline: vec![b'x'; 4000],
                size: 4000,
                ..entry(format!("{i:05}"))
            })
            .collect();
        assert!(part_ranges(&big, BlobId::of).len() > 1);
    }

    #[test]
    fn format_1_trees_still_decode_and_format_2_round_trips() {
        // a format-1 tree: one entry, encoded without the inline field
        let e = entry("a".into());
        let mut v1 = vec![1u8]; // entries: 1
        v1.extend(object::encode_body(&(&e.name, e.kind, e.mode, e.uid, e.gid)).unwrap());
        v1.extend(
            object::encode_body(&(e.mtime_sec, e.mtime_nsec, e.ctime_sec, e.ctime_nsec)).unwrap(),
        );
        v1.extend(object::encode_body(&(e.inode, e.device, e.nlink, e.size, e.rdev)).unwrap());
        v1.extend([0u8, 0, 0, 0, 0, 0]); // content, extents, target, subtree, xattrs, parts
        let t = Tree::decode(&v1, &BlobId::of(&v1)).unwrap();
        assert_eq!(t.entries, vec![e.clone()]);
        let t2 = Tree {
            entries: vec![Entry {
                inline: b"hello".to_vec(),
                size: 5,
                ..e
            }],
            parts: Vec::new(),
        };
        let b = t2.encode().unwrap();
        assert_eq!(&b[..2], &TREE2_PREFIX);
        assert_eq!(Tree::decode(&b, &BlobId::of(&b)).unwrap(), t2);
        // inline data that disagrees with the size, or a future format
        let mut bad = t2.clone();
        bad.entries[0].size = 6;
        let b = bad.encode().unwrap();
        assert!(Tree::decode(&b, &BlobId::of(&b)).is_err());
        let mut b = t2.encode().unwrap();
        b[1] = 3;
        assert!(Tree::decode(&b, &BlobId::of(&b)).is_err());
        // inline data beside chunks, in a directory, or over the limit
        for bad in [
            Entry {
                content: vec![BlobId([1; 32])],
                ..t2.entries[0].clone()
            },
            Entry {
                kind: EntryKind::Dir as u8,
                subtree: Some(BlobId([2; 32])),
                ..t2.entries[0].clone()
            },
            Entry {
                inline: vec![0; INLINE_LIMIT + 1],
                size: INLINE_LIMIT as u64 + 1,
                ..t2.entries[0].clone()
            },
        ] {
            let t = Tree {
                entries: vec![bad],
                parts: Vec::new(),
            };
            let b = t.encode().unwrap();
            assert!(
                Tree::decode(&b, &BlobId::of(&b)).is_err(),
                "{:?}",
                t.entries[0].kind
            );
        }
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
            assert!((1..=PART_MAX).contains(&(b - a)));
        }
        // ~60-byte entries: 16 KiB parts average ~270 entries
        let avg = v.len() / r.len();
        assert!((150..=450).contains(&avg), "average part size {avg}");
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
