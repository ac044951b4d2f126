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
    /// The kind, if the byte is valid (checked by [`Tree::decode`]).
    pub fn kind(&self) -> EntryKind {
        EntryKind::from_u8(self.kind).unwrap_or(EntryKind::Socket)
    }
    /// Name for display.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A directory listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Tree {
    /// Entries, sorted by name, unique.
    pub entries: Vec<Entry>,
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
        let mut prev: Option<&[u8]> = None;
        for e in &t.entries {
            if !valid_name(&e.name) {
                return Err(Error::corrupt(
                    &object,
                    format!("unsafe entry name {:?}", e.name_lossy()),
                ));
            }
            let kind = EntryKind::from_u8(e.kind)
                .ok_or_else(|| Error::corrupt(&object, format!("unknown entry kind {}", e.kind)))?;
            if kind == EntryKind::Dir && e.subtree.is_none() {
                return Err(Error::corrupt(
                    &object,
                    format!("directory {:?} without a tree", e.name_lossy()),
                ));
            }
            if prev.is_some_and(|p| p >= e.name.as_slice()) {
                return Err(Error::corrupt(&object, "entries not sorted or not unique"));
            }
            prev = Some(&e.name);
        }
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
