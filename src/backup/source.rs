//! Reading sources: metadata into tree entries, extended attributes, sparse
//! extents, and file contents streamed through the chunker in batches that
//! are hashed and compressed on all cores. Sources are never mmapped (a
//! concurrent truncation must give a warning, not SIGBUS).

use super::saver::BlobSaver;
use crate::blob::BlobKind;
use crate::chunker::Chunker;
use crate::error::Error;
use crate::id::BlobId;
use crate::snapshot::tree::{self, Entry, EntryKind, Extent, ExtentReader, Xattr};
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{
    AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};

/// A failure while storing one source: the source's fault (a warning) or
/// the repository's (fatal).
#[derive(Debug)]
pub enum SourceError {
    /// Reading the source failed: warn and go on.
    Source(io::Error),
    /// Writing the repository failed: stop.
    Repo(Error),
}

impl From<io::Error> for SourceError {
    fn from(e: io::Error) -> Self {
        SourceError::Source(e)
    }
}
impl From<Error> for SourceError {
    fn from(e: Error) -> Self {
        SourceError::Repo(e)
    }
}

/// The entry kind of a file type.
pub fn kind_of(md: &Metadata) -> EntryKind {
    let ft = md.file_type();
    if ft.is_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else if ft.is_char_device() {
        EntryKind::CharDev
    } else if ft.is_block_device() {
        EntryKind::BlockDev
    } else {
        EntryKind::Socket
    }
}

/// A tree entry with the metadata of `md` and no content yet.
pub fn entry_from_meta(name: Vec<u8>, md: &Metadata) -> Entry {
    let kind = kind_of(md);
    Entry {
        name,
        kind: kind as u8,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_sec: md.mtime(),
        mtime_nsec: md.mtime_nsec() as u32,
        ctime_sec: md.ctime(),
        ctime_nsec: md.ctime_nsec() as u32,
        inode: md.ino(),
        device: md.dev(),
        nlink: md.nlink(),
        size: if kind == EntryKind::File {
            md.size()
        } else {
            0
        },
        rdev: md.rdev(),
        content: Vec::new(),
        extents: Vec::new(),
        target: Vec::new(),
        subtree: None,
        xattrs: Vec::new(),
        inline: Vec::new(),
    }
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
/// File systems without xattr support give an empty list.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for n in names {
        if let Some(value) = xattr::get(path, &n)? {
            out.push(Xattr {
                name: n.as_bytes().to_vec(),
                value,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Data regions of a file that has holes; `None` if it is dense.
pub fn data_extents(f: &File, md: &Metadata) -> io::Result<Option<Vec<Extent>>> {
    use rustix::fs::{SeekFrom, seek};
    let size = md.size();
    if size == 0 || md.blocks() * 512 >= size {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(f, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break, // no data after pos
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = seek(f, SeekFrom::Hole(start))?.min(size);
        out.push(Extent {
            offset: start,
            len: end - start,
        });
        pos = end;
    }
    if out.len() == 1 && out[0].offset == 0 && out[0].len == size {
        return Ok(None);
    }
    Ok(Some(out))
}

/// Bytes of chunks that may wait for hashing and compression at once, per
/// stream: bounds memory while the reading thread runs ahead.
const IN_FLIGHT_BYTES: usize = 4 << 20;

/// Chunk `src`, saving every chunk as a data blob. Chunks of a large stream
/// are hashed and compressed as rayon tasks while this thread reads and
/// chunks on; when `IN_FLIGHT_BYTES` are queued it helps with the queue
/// instead of reading. Returns the chunk ids in order and the bytes read.
pub fn save_stream<R: Read>(
    src: R,
    size_hint: u64,
    chunker: &Chunker,
    saver: &BlobSaver,
    progress: &AtomicU64,
) -> Result<(Vec<BlobId>, u64), SourceError> {
    if size_hint <= chunker.max_size() as u64 {
        // Small file: at most a chunk or two, no task overhead.
        let mut ids = Vec::new();
        let total = chunker.stream(src, size_hint, |chunk: &[u8]| -> Result<(), SourceError> {
            progress.fetch_add(chunk.len() as u64, Relaxed);
            ids.push(saver.save(BlobKind::Data, chunk)?);
            Ok(())
        })?;
        return Ok((ids, total));
    }
    let in_flight = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<BlobId, Error>)>> = Mutex::new(Vec::new());
    let mut count = 0usize;
    let total = rayon::in_place_scope(|scope| {
        chunker.stream(src, size_hint, |chunk: &[u8]| -> Result<(), SourceError> {
            progress.fetch_add(chunk.len() as u64, Relaxed);
            while in_flight.load(Acquire) >= IN_FLIGHT_BYTES {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::yield_now();
                }
            }
            let data = chunk.to_vec();
            let (i, n) = (count, data.len());
            count += 1;
            in_flight.fetch_add(n, AcqRel);
            let (results, in_flight) = (&results, &in_flight);
            scope.spawn(move |_| {
                let r = saver.save(BlobKind::Data, &data);
                drop(data);
                if let Ok(mut v) = results.lock() {
                    v.push((i, r));
                }
                in_flight.fetch_sub(n, AcqRel);
            });
            Ok(())
        })
    })?;
    let mut results = results
        .into_inner()
        .map_err(|_| Error::Internal("chunk results lost to a panic".into()))?;
    if results.len() != count {
        return Err(Error::Internal("chunk results lost to a panic".into()).into());
    }
    results.sort_unstable_by_key(|(i, _)| *i);
    let ids = results
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Result<Vec<BlobId>, Error>>()?;
    Ok((ids, total))
}

/// Open a source file for reading without updating its atime where allowed.
pub fn open_source(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let noatime = rustix::fs::OFlags::NOATIME.bits() as i32;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(noatime)
        .open(path)
    {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path),
        r => r,
    }
}

/// Read a small file into `entry.inline` (format-spec/objects.md "Inline
/// files"): one read, no chunks, no blob. A file that grew past
/// [`tree::INLINE_LIMIT`] while being read gives `None`: chunk it instead.
/// Returns bytes read and whether the file changed while it was read.
pub fn save_small(
    path: &Path,
    md: &Metadata,
    entry: &mut Entry,
    progress: &AtomicU64,
) -> Result<Option<(u64, bool)>, SourceError> {
    let f = open_source(path)?;
    let mut buf = Vec::with_capacity(md.size() as usize);
    (&f).take(tree::INLINE_LIMIT as u64 + 1)
        .read_to_end(&mut buf)?;
    if buf.len() > tree::INLINE_LIMIT {
        return Ok(None);
    }
    let after = f.metadata()?;
    let read = buf.len() as u64;
    progress.fetch_add(read, Relaxed);
    let changed = read != md.size()
        || !after.is_file()
        || after.ino() != md.ino()
        || after.size() != md.size()
        || after.mtime() != md.mtime()
        || after.mtime_nsec() != md.mtime_nsec();
    entry.size = read;
    entry.content.clear();
    entry.extents.clear();
    entry.inline = buf;
    Ok(Some((read, changed)))
}

/// Store a regular file's content into `entry`. Returns bytes read and
/// whether the file changed while it was read.
pub fn save_file(
    path: &Path,
    md: &Metadata,
    entry: &mut Entry,
    chunker: &Chunker,
    saver: &BlobSaver,
    progress: &AtomicU64,
) -> Result<(u64, bool), SourceError> {
    let f = open_source(path)?;
    let extents = data_extents(&f, md)?;
    let (content, read) = match &extents {
        Some(ex) => save_stream(
            ExtentReader::new(&f, ex),
            md.size(),
            chunker,
            saver,
            progress,
        )?,
        None => save_stream(&f, md.size(), chunker, saver, progress)?,
    };
    // Compare with the lstat taken before opening: a different inode, size
    // or mtime means the file changed (or was replaced) while we read it.
    let after = f.metadata()?;
    let expected: u64 = match &extents {
        Some(ex) => ex.iter().map(|e| e.len).sum(),
        None => md.size(),
    };
    let changed = read != expected
        || !after.is_file()
        || after.ino() != md.ino()
        || after.size() != md.size()
        || after.mtime() != md.mtime()
        || after.mtime_nsec() != md.mtime_nsec();
    entry.content = content;
    entry.extents = extents.unwrap_or_default();
    if changed {
        entry.size = keep_what_was_read(&mut entry.extents, read);
    }
    Ok((read, changed))
}

/// The size to record for a file that changed while it was read, trimming
/// its `extents` (empty: dense) to the `read` bytes: the file ends where
/// the data read ends. Holes between the extents were holes when they were
/// sought; a hole after the last one may have been the end of the file at
/// that moment (SEEK_HOLE reports EOF as a hole) while the file was being
/// truncated and grown again, so recording the stat size there would
/// restore zeros that were never in the file. A changed sparse file loses
/// its trailing hole; it is reported as changed.
fn keep_what_was_read(extents: &mut Vec<Extent>, read: u64) -> u64 {
    if extents.is_empty() {
        return read;
    }
    let mut left = read;
    extents.retain_mut(|e| {
        let keep = left > 0;
        e.len = e.len.min(left);
        left -= e.len;
        keep
    });
    extents.last().map(|e| e.offset + e.len).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(offset: u64, len: u64) -> Extent {
        Extent { offset, len }
    }

    #[test]
    fn a_changed_file_ends_where_its_data_read_ends() {
        // stat said 3 MiB; SEEK_HOLE found EOF at 1.5 MiB (the file was
        // being truncated); 1.5 MiB read: never 1.5 MiB of invented zeros
        let mut e = vec![ext(0, 3 << 19)];
        assert_eq!(keep_what_was_read(&mut e, 3 << 19), 3 << 19);
        assert_eq!(e, vec![ext(0, 3 << 19)]);
        // a real hole between two data regions stays; the read stopped
        // inside the second region, and the third is dropped
        let mut e = vec![ext(0, 100), ext(1000, 100), ext(5000, 10)];
        assert_eq!(keep_what_was_read(&mut e, 150), 1050);
        assert_eq!(e, vec![ext(0, 100), ext(1000, 50)]);
        // dense: what was read
        assert_eq!(keep_what_was_read(&mut Vec::new(), 77), 77);
        // nothing read
        let mut e = vec![ext(4096, 10)];
        assert_eq!(keep_what_was_read(&mut e, 0), 0);
        assert!(e.is_empty());
    }
}
