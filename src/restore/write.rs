//! Writing restored files: creating them without following symlinks, the
//! per-file state shared by the threads that write a file's blobs, writes
//! through sparse extents, special files, and the `--verify` re-read.

use crate::blob::BlobKind;
use crate::error::{Error, IoContext, Result};
use crate::repo::Repo;
use crate::snapshot::tree::{Entry, Extent, ExtentReader};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::AcqRel};
use std::sync::{Arc, Mutex};

pub const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// A file of a batch whose data comes from blobs: created by the first
/// write that reaches it (others wait for that), written by any thread, and
/// finished (metadata, rename into place) by the last write.
pub struct FileState {
    slot: Mutex<Slot>,
    remaining: AtomicUsize,
}

enum Slot {
    New,
    Open(Arc<File>),
    Failed,
    Done,
}

impl FileState {
    /// A file that `writes` blob writes complete.
    pub fn new(writes: usize) -> Self {
        FileState {
            slot: Mutex::new(Slot::New),
            remaining: AtomicUsize::new(writes),
        }
    }

    /// The open file, created at `path` by the first caller.
    pub fn file(&self, path: &Path, e: &Entry) -> Result<Arc<File>> {
        let mut slot = self
            .slot
            .lock()
            .map_err(|_| Error::Internal("restore file state poisoned".into()))?;
        match &*slot {
            Slot::Open(f) => Ok(f.clone()),
            Slot::New => match create_file(path, e) {
                Ok(f) => {
                    let f = Arc::new(f);
                    *slot = Slot::Open(f.clone());
                    Ok(f)
                }
                Err(err) => {
                    *slot = Slot::Failed;
                    Err(err).at(path)
                }
            },
            Slot::Failed | Slot::Done => Err(Error::Invalid(format!(
                "{}: cannot be written (see the first error)",
                path.display()
            ))),
        }
    }

    /// One write done: `true` if it was the last, and the caller finishes
    /// the file (the state lets go of it).
    pub fn wrote(&self) -> bool {
        let last = self.remaining.fetch_sub(1, AcqRel) == 1;
        if last {
            if let Ok(mut slot) = self.slot.lock() {
                *slot = Slot::Done;
            }
        }
        last
    }

    /// Created (or tried) but not finished: to be removed after an error.
    pub fn partial(&self) -> bool {
        self.slot
            .lock()
            .map(|s| matches!(*s, Slot::Open(_) | Slot::Failed))
            .unwrap_or(true)
    }
}

/// Create (truncate) a file for writing, never through a symlink; sparse
/// files get their final size now so that holes stay holes. Over an existing
/// tree `path` is a temp name that is renamed over the old file when done,
/// so an existing file is replaced, never written into (it may be a hard
/// link to a file outside the target, or carry stale xattrs).
pub fn create_file(path: &Path, e: &Entry) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    if (!e.extents.is_empty() || e.content.is_empty()) && !e.is_inline() && e.size > 0 {
        f.set_len(e.size)?;
    }
    Ok(f)
}

pub fn mknod(path: &Path, ft: rustix::fs::FileType, e: &Entry, dev: u64) -> std::io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        rustix::fs::Mode::from_raw_mode(e.mode),
        dev,
    )?;
    Ok(())
}

/// Write `data` at `off` of the file's data stream, mapped through sparse extents.
pub fn write_stream_at(f: &File, extents: &[Extent], off: u64, data: &[u8]) -> std::io::Result<()> {
    if extents.is_empty() {
        return f.write_all_at(data, off);
    }
    let (mut stream_pos, mut rest, mut off) = (0u64, data, off);
    for e in extents {
        if rest.is_empty() {
            break;
        }
        if off < stream_pos + e.len {
            let within = off - stream_pos;
            let n = rest.len().min((e.len - within) as usize);
            f.write_all_at(&rest[..n], e.offset + within)?;
            rest = &rest[n..];
            off += n as u64;
        }
        stream_pos += e.len;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(std::io::Error::other("data beyond the file's extents"))
    }
}

/// Re-read a restored file and compare each chunk's hash with its id (an
/// inline file: its bytes).
pub fn verify_file(repo: &Repo, path: &Path, e: &Entry, lens: &[u32]) -> Result<bool> {
    let f = File::open(path).at(path)?;
    if f.metadata().at(path)?.len() != e.size {
        return Ok(false);
    }
    if e.is_inline() {
        let mut got = Vec::with_capacity(e.inline.len());
        (&f).read_to_end(&mut got).at(path)?;
        return Ok(got == e.inline);
    }
    let mut stream: Box<dyn Read> = if e.extents.is_empty() {
        Box::new(&f)
    } else {
        Box::new(ExtentReader::new(&f, &e.extents))
    };
    let mut buf = Vec::new();
    for (id, &len) in e.content.iter().zip(lens) {
        buf.resize(len as usize, 0);
        stream.read_exact(&mut buf).at(path)?;
        if repo.blob_id(BlobKind::Data, &buf) != *id {
            return Ok(false);
        }
    }
    Ok(true)
}
