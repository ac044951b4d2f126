//! A read-only FUSE view of the repository (`strata mount`):
//!
//! ```text
//! MOUNT/snapshots/<time>_<id8>/...   every snapshot's tree
//! MOUNT/latest -> snapshots/<newest>
//! MOUNT/tags/<tag>/<time>_<id8>  -> ../../snapshots/...
//! MOUNT/hosts/<host>/<time>_<id8> -> ../../snapshots/...
//! ```
//!
//! Inodes are handed out as paths are looked up. A `read` at offset N
//! fetches only the chunks covering it (a small cache keeps recently decoded
//! chunks for sequential reads).

use crate::error::Result;
use crate::id::{BlobId, SnapshotId};
use crate::pack::reader::BlobLocation;
use crate::read::BlobReader;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(3600);
const CHUNK_CACHE: usize = 16;
/// Chunks decoded ahead of a sequential reader.
const READ_AHEAD: usize = 4;

#[derive(Clone, Debug)]
enum Node {
    Root,
    Snapshots,
    Groups(bool), // true = tags, false = hosts
    Group(bool, String),
    Link(Vec<u8>),
    SnapRoot(usize),
    Entry(Box<Entry>),
}

/// A file opened for reading: where each chunk sits in its data stream.
struct FileMap {
    size: u64,
    /// (file offset, length, data-stream offset) of each data region.
    regions: Vec<(u64, u64, u64)>,
    /// (stream offset, length, id, location) of each chunk.
    chunks: Vec<(u64, u64, BlobId, BlobLocation)>,
    /// An inline file's bytes (then there are no chunks).
    inline: Vec<u8>,
}

struct State {
    nodes: Vec<Node>,
    names: HashMap<(u64, Vec<u8>), u64>,
}

/// Decoded chunks: a small cache plus the ones being decoded, so a reader
/// waits for a read-ahead in flight instead of decoding the chunk twice.
#[derive(Default)]
struct Chunks {
    cache: Vec<(BlobId, Arc<Vec<u8>>)>,
    inflight: HashSet<BlobId>,
}

struct ChunkCache {
    reader: BlobReader<'static>,
    state: Mutex<Chunks>,
    ready: Condvar,
}

impl ChunkCache {
    fn insert(&self, id: BlobId, data: Option<Arc<Vec<u8>>>) {
        if let Ok(mut st) = self.state.lock() {
            st.inflight.remove(&id);
            if let Some(d) = data {
                if st.cache.len() >= CHUNK_CACHE {
                    st.cache.remove(0);
                }
                st.cache.push((id, d));
            }
        }
        self.ready.notify_all();
    }

    /// A chunk's bytes: from the cache, from a read-ahead in flight, or decoded now.
    fn get(&self, id: &BlobId, loc: &BlobLocation) -> Result<Arc<Vec<u8>>> {
        {
            let mut st = self
                .state
                .lock()
                .map_err(|_| crate::Error::Internal("chunk cache poisoned".into()))?;
            loop {
                if let Some((_, d)) = st.cache.iter().find(|(i, _)| i == id) {
                    return Ok(d.clone());
                }
                if !st.inflight.contains(id) {
                    st.inflight.insert(*id);
                    break;
                }
                st = self
                    .ready
                    .wait(st)
                    .map_err(|_| crate::Error::Internal("chunk cache poisoned".into()))?;
            }
        }
        match self.reader.read_located(id, loc) {
            Ok(d) => {
                let d = Arc::new(d);
                self.insert(*id, Some(d.clone()));
                Ok(d)
            }
            Err(e) => {
                self.insert(*id, None);
                Err(e)
            }
        }
    }

    /// Decode `chunks` in the background unless cached or in flight.
    fn read_ahead(self: &Arc<Self>, chunks: &[(u64, u64, BlobId, BlobLocation)]) {
        for &(_, _, id, loc) in chunks {
            let start = match self.state.lock() {
                Ok(mut st) => {
                    let fresh =
                        !st.inflight.contains(&id) && !st.cache.iter().any(|(i, _)| *i == id);
                    if fresh {
                        st.inflight.insert(id);
                    }
                    fresh
                }
                Err(_) => false,
            };
            if start {
                let me = self.clone();
                rayon::spawn(move || {
                    let d = me.reader.read_located(&id, &loc).ok().map(Arc::new);
                    me.insert(id, d);
                });
            }
        }
    }
}

/// The mounted filesystem.
pub struct MountFs {
    chunks: Arc<ChunkCache>,
    snaps: Vec<(SnapshotId, Snapshot, String)>,
    state: Mutex<State>,
    trees: Mutex<HashMap<BlobId, Arc<Tree>>>,
    files: Mutex<HashMap<u64, Arc<FileMap>>>,
    next_fh: AtomicU64,
    uid: u32,
    gid: u32,
}

fn time_of(sec: i64, nsec: u32) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::new(sec.unsigned_abs(), 0) + Duration::from_nanos(u64::from(nsec))
    }
}

fn file_type(k: EntryKind) -> FileType {
    match k {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDev => FileType::CharDevice,
        EntryKind::BlockDev => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

impl MountFs {
    /// An error of a request: reported (the kernel only gets EIO).
    fn eio(&self, e: &crate::Error) -> Errno {
        self.chunks
            .reader
            .repo()
            .events()
            .notice(&format!("mount: {e}"));
        Errno::EIO
    }

    /// A filesystem over `snaps` (oldest first).
    pub fn new(reader: BlobReader<'static>, snaps: Vec<(SnapshotId, Snapshot)>) -> Self {
        let snaps = snaps
            .into_iter()
            .map(|(id, s)| {
                let name = format!("{}_{}", s.time_string(), id.short());
                (id, s, name)
            })
            .collect();
        MountFs {
            chunks: Arc::new(ChunkCache {
                reader,
                state: Mutex::new(Chunks::default()),
                ready: Condvar::new(),
            }),
            snaps,
            state: Mutex::new(State {
                nodes: vec![Node::Root],
                names: HashMap::new(),
            }),
            trees: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
        }
    }

    fn node(&self, ino: INodeNo) -> Option<Node> {
        let st = self.state.lock().ok()?;
        st.nodes
            .get(usize::try_from(u64::from(ino)).ok()?.checked_sub(1)?)
            .cloned()
    }

    fn intern(&self, parent: u64, name: &[u8], make: impl FnOnce() -> Node) -> Option<u64> {
        let mut st = self.state.lock().ok()?;
        if let Some(&ino) = st.names.get(&(parent, name.to_vec())) {
            return Some(ino);
        }
        st.nodes.push(make());
        let ino = st.nodes.len() as u64;
        st.names.insert((parent, name.to_vec()), ino);
        Some(ino)
    }

    fn tree(&self, id: &BlobId) -> Result<Arc<Tree>> {
        if let Some(t) = self.trees.lock().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(t);
        }
        let t = Arc::new(self.chunks.reader.tree(id)?);
        if let Ok(mut m) = self.trees.lock() {
            m.insert(*id, t.clone());
        }
        Ok(t)
    }

    fn newest_time(&self) -> SystemTime {
        self.snaps
            .last()
            .map(|(_, s, _)| time_of(s.time_unix_ns.div_euclid(1_000_000_000), 0))
            .unwrap_or(UNIX_EPOCH)
    }

    /// The children of a directory node: (name, node) in name order.
    fn children(&self, node: &Node) -> Result<Vec<(Vec<u8>, Node)>> {
        let link = |n: &str| Node::Link(format!("../../snapshots/{n}").into_bytes());
        let groups = |tags: bool| -> BTreeMap<String, ()> {
            let mut m = BTreeMap::new();
            for (_, s, _) in &self.snaps {
                if tags {
                    for t in &s.tags {
                        m.insert(t.clone(), ());
                    }
                } else {
                    m.insert(s.host.clone(), ());
                }
            }
            m
        };
        Ok(match node {
            Node::Root => {
                let mut v = vec![(b"hosts".to_vec(), Node::Groups(false))];
                if let Some((_, _, n)) = self.snaps.last() {
                    v.push((
                        b"latest".to_vec(),
                        Node::Link(format!("snapshots/{n}").into_bytes()),
                    ));
                }
                v.push((b"snapshots".to_vec(), Node::Snapshots));
                v.push((b"tags".to_vec(), Node::Groups(true)));
                v
            }
            Node::Snapshots => self
                .snaps
                .iter()
                .enumerate()
                .map(|(i, (_, _, n))| (n.clone().into_bytes(), Node::SnapRoot(i)))
                .collect(),
            Node::Groups(tags) => groups(*tags)
                .into_keys()
                .filter(|g| crate::snapshot::tree::valid_name(g.as_bytes()))
                .map(|g| (g.clone().into_bytes(), Node::Group(*tags, g)))
                .collect(),
            Node::Group(tags, g) => self
                .snaps
                .iter()
                .filter(|(_, s, _)| {
                    if *tags {
                        s.tags.contains(g)
                    } else {
                        &s.host == g
                    }
                })
                .map(|(_, _, n)| (n.clone().into_bytes(), link(n)))
                .collect(),
            Node::SnapRoot(i) => {
                let t = self.tree(&self.snaps[*i].1.tree)?;
                t.entries
                    .iter()
                    .map(|e| (e.name.clone(), Node::Entry(Box::new(e.clone()))))
                    .collect()
            }
            Node::Entry(e) if e.kind() == EntryKind::Dir => match e.subtree {
                Some(id) => {
                    let t = self.tree(&id)?;
                    t.entries
                        .iter()
                        .map(|e| (e.name.clone(), Node::Entry(Box::new(e.clone()))))
                        .collect()
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        })
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let t = self.newest_time();
        let mut a = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        };
        match node {
            Node::Link(target) => {
                a.kind = FileType::Symlink;
                a.perm = 0o777;
                a.nlink = 1;
                a.size = target.len() as u64;
            }
            Node::SnapRoot(i) => {
                let s = &self.snaps[*i].1;
                let st = time_of(s.time_unix_ns.div_euclid(1_000_000_000), 0);
                (a.atime, a.mtime, a.ctime, a.crtime) = (st, st, st, st);
            }
            Node::Entry(e) => {
                let m = time_of(e.mtime_sec, e.mtime_nsec);
                (a.atime, a.mtime, a.ctime, a.crtime) = (m, m, m, m);
                a.kind = file_type(e.kind());
                a.perm = (e.mode & 0o7777) as u16;
                a.uid = e.uid;
                a.gid = e.gid;
                a.nlink = if e.kind() == EntryKind::Dir { 2 } else { 1 };
                a.size = match e.kind() {
                    EntryKind::Symlink => e.target.len() as u64,
                    _ => e.size,
                };
                a.blocks = a.size.div_ceil(512);
                a.rdev = e.rdev as u32;
            }
            _ => {}
        }
        a
    }

    fn file_map(&self, e: &Entry) -> Result<FileMap> {
        let mut chunks = Vec::with_capacity(e.content.len());
        let mut off = 0u64;
        for id in &e.content {
            let loc = self
                .chunks
                .reader
                .locate(id)?
                .ok_or_else(|| crate::Error::MissingBlob {
                    blob: id.to_hex(),
                    file: e.name_lossy(),
                })?;
            chunks.push((off, u64::from(loc.raw_len), *id, loc));
            off += u64::from(loc.raw_len);
        }
        let regions = if e.extents.is_empty() {
            vec![(0, e.size, 0)]
        } else {
            let mut s = 0;
            e.extents
                .iter()
                .map(|x| {
                    let r = (x.offset, x.len, s);
                    s += x.len;
                    r
                })
                .collect()
        };
        Ok(FileMap {
            size: e.size,
            regions,
            chunks,
            inline: e.inline.clone(),
        })
    }

    /// Bytes [off, off+size) of a file; holes read as zeros.
    fn read_file(&self, fm: &FileMap, off: u64, size: u32) -> Result<Vec<u8>> {
        let end = (off + u64::from(size)).min(fm.size);
        if off >= end {
            return Ok(Vec::new());
        }
        if !fm.inline.is_empty() {
            let (a, b) = (off as usize, (end as usize).min(fm.inline.len()));
            return Ok(fm.inline.get(a..b).unwrap_or_default().to_vec());
        }
        let mut out = vec![0u8; (end - off) as usize];
        for &(roff, rlen, soff) in &fm.regions {
            let (a, b) = (off.max(roff), end.min(roff + rlen));
            if a >= b {
                continue;
            }
            // stream range [sa, sb) goes to out[a - off ..]
            let (sa, sb) = (soff + (a - roff), soff + (b - roff));
            let first = fm.chunks.partition_point(|c| c.0 + c.1 <= sa);
            let last = fm.chunks.partition_point(|c| c.0 < sb);
            // decode the next chunks while this request is served
            let ahead =
                &fm.chunks[last.min(fm.chunks.len())..(last + READ_AHEAD).min(fm.chunks.len())];
            self.chunks.read_ahead(ahead);
            for &(coff, clen, id, loc) in &fm.chunks[first..] {
                if coff >= sb {
                    break;
                }
                let data = self.chunks.get(&id, &loc)?;
                let (ca, cb) = (sa.max(coff), sb.min(coff + clen));
                let dst = (a + (ca - sa) - off) as usize;
                let src = (ca - coff) as usize;
                let n = (cb - ca) as usize;
                if src + n > data.len() || dst + n > out.len() {
                    return Err(crate::Error::corrupt(
                        format!("blob {}", id.short()),
                        "shorter than indexed",
                    ));
                }
                out[dst..dst + n].copy_from_slice(&data[src..src + n]);
            }
        }
        Ok(out)
    }
}

impl Filesystem for MountFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some(p) = self.node(parent) else {
            return reply.error(Errno::ENOENT);
        };
        let kids = match self.children(&p) {
            Ok(k) => k,
            Err(e) => return reply.error(self.eio(&e)),
        };
        match kids
            .into_iter()
            .find(|(n, _)| n.as_slice() == name.as_bytes())
        {
            Some((n, node)) => match self.intern(parent.into(), &n, || node.clone()) {
                Some(ino) => reply.entry(&TTL, &self.attr(ino, &node), Generation(0)),
                None => reply.error(Errno::EIO),
            },
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(n) => reply.attr(&TTL, &self.attr(ino.into(), &n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino) {
            Some(Node::Link(t)) => reply.data(&t),
            Some(Node::Entry(e)) if e.kind() == EntryKind::Symlink => reply.data(&e.target),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino) {
            Some(Node::Entry(e)) if e.kind() == EntryKind::File => match self.file_map(&e) {
                Ok(fm) => {
                    let fh = self.next_fh.fetch_add(1, Relaxed);
                    if let Ok(mut f) = self.files.lock() {
                        f.insert(fh, Arc::new(fm));
                    }
                    reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE)
                }
                Err(e) => reply.error(self.eio(&e)),
            },
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fm = self
            .files
            .lock()
            .ok()
            .and_then(|f| f.get(&u64::from(fh)).cloned());
        match fm {
            Some(fm) => match self.read_file(&fm, offset, size) {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(self.eio(&e)),
            },
            None => reply.error(Errno::EBADF),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        if let Ok(mut f) = self.files.lock() {
            f.remove(&u64::from(fh));
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let kids = match self.children(&node) {
            Ok(k) => k,
            Err(e) => return reply.error(self.eio(&e)),
        };
        let mut all: Vec<(u64, FileType, Vec<u8>)> = vec![
            (ino.into(), FileType::Directory, b".".to_vec()),
            (1, FileType::Directory, b"..".to_vec()),
        ];
        for (name, n) in kids {
            let Some(child) = self.intern(ino.into(), &name, || n.clone()) else {
                return reply.error(Errno::EIO);
            };
            all.push((child, self.attr(child, &n).kind, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }
}
