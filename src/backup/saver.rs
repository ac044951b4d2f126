//! The blob saver: dedup against the index and this session, compress, append
//! to the open data or tree pack, and hand full packs to a sealing thread that
//! makes them durable (INV-1) and only then indexes them (INV-2). Memory is
//! bounded: one open pack buffer per kind, and at most `SEAL_QUEUE` sealed
//! packs waiting for fsync (as file handles, their bytes already written).
//! Dedup sees live packs only: condemned packs' blobs are written again
//! (format-spec/gc.md).

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::pack::writer::PackWriter;
use crate::repo::Repo;
use crate::snapshot::tree::{self, Tree};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Counters of what was added.
#[derive(Debug, Default)]
pub struct SaveStats {
    /// New blobs.
    pub blobs: AtomicU64,
    /// Raw bytes of new blobs.
    pub raw: AtomicU64,
    /// Stored bytes of new blobs.
    pub stored: AtomicU64,
}

/// Saves blobs into packs; shared by all worker threads.
pub struct BlobSaver<'r> {
    repo: &'r Repo,
    index: Arc<Mutex<Index>>,
    lookup: Mutex<Index>,
    pending: Mutex<HashSet<BlobId>>,
    open: [Mutex<Option<PackWriter>>; 2],
    to_seal: Mutex<Option<crossbeam_channel::Sender<PackWriter>>>,
    sealer: Mutex<Option<JoinHandle<Result<()>>>>,
    /// What was added.
    pub stats: SaveStats,
}

/// Sealed packs that may wait for fsync at once.
const SEAL_QUEUE: usize = 32;

fn poisoned() -> Error {
    Error::Invalid("internal lock poisoned by a panic".into())
}

impl<'r> BlobSaver<'r> {
    /// Start a saver and its sealing thread.
    pub fn new(repo: &'r Repo) -> Result<Self> {
        let index = Arc::new(Mutex::new(repo.index()?));
        // Full packs wait here for their fsync. The data is already written
        // (page cache), so a deep queue costs file handles, not memory, and
        // keeps fsync latency off the workers' path.
        let (tx, rx) = crossbeam_channel::bounded::<PackWriter>(SEAL_QUEUE);
        let root = repo.root().to_path_buf();
        let idx = index.clone();
        let sealer = std::thread::Builder::new()
            .name("strata-sealer".into())
            .spawn(move || -> Result<()> {
                for w in rx {
                    // INV-2: the pack is durable under its final name before
                    // any index row names it.
                    let sealed = w.finish(&root)?;
                    idx.lock().map_err(|_| poisoned())?.add_pack(&sealed)?;
                }
                Ok(())
            })
            .map_err(|e| Error::Invalid(format!("cannot start sealing thread: {e}")))?;
        let mut lookup = repo.index()?;
        lookup.begin_read_snapshot()?;
        Ok(BlobSaver {
            repo,
            index,
            lookup: Mutex::new(lookup),
            pending: Mutex::new(HashSet::new()),
            open: [Mutex::new(None), Mutex::new(None)],
            to_seal: Mutex::new(Some(tx)),
            sealer: Mutex::new(Some(sealer)),
            stats: SaveStats::default(),
        })
    }

    /// The repository.
    pub fn repo(&self) -> &'r Repo {
        self.repo
    }

    /// The index connection shared with the sealer.
    pub fn index(&self) -> &Mutex<Index> {
        &self.index
    }

    /// Store `raw` as a blob of `kind` unless it is already stored. Returns its id.
    pub fn save(&self, kind: BlobKind, raw: &[u8]) -> Result<BlobId> {
        let id = self.repo.blob_id(kind, raw);
        self.save_with_id(kind, id, raw)?;
        Ok(id)
    }

    /// Store a directory listing: one tree blob, or for a large directory
    /// its content-defined parts and an index of them (objects.md "Parts").
    pub fn save_tree(&self, tree: &Tree) -> Result<BlobId> {
        let ranges = tree::part_ranges(&tree.entries, |n| self.repo.blob_id(BlobKind::Tree, n));
        if ranges.len() <= 1 {
            return self.save_leaf(tree);
        }
        let mut index = Tree::default();
        for (a, b) in ranges {
            let part = Tree {
                entries: tree.entries[a..b].to_vec(),
                parts: Vec::new(),
            };
            index.parts.push(self.save_leaf(&part)?);
        }
        self.save_leaf(&index)
    }

    fn save_leaf(&self, tree: &Tree) -> Result<BlobId> {
        let bytes = tree.encode()?;
        if bytes.len() > blob::MAX_RAW {
            return Err(Error::Invalid(format!(
                "directory part with {} entries is too large for one tree blob",
                tree.entries.len()
            )));
        }
        self.save(BlobKind::Tree, &bytes)
    }

    /// Like [`save`](Self::save) with a precomputed id; returns true if added.
    pub fn save_with_id(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<bool> {
        if raw.len() > blob::MAX_RAW {
            return Err(Error::Invalid(format!(
                "blob of {} bytes exceeds the {}-byte limit",
                raw.len(),
                blob::MAX_RAW
            )));
        }
        if self.pending.lock().map_err(|_| poisoned())?.contains(&id) {
            return Ok(false);
        }
        if self.lookup.lock().map_err(|_| poisoned())?.contains(&id)? {
            return Ok(false);
        }
        if !self.pending.lock().map_err(|_| poisoned())?.insert(id) {
            return Ok(false);
        }
        let (comp, compressed) = blob::compress(raw, self.repo.config().compression_level);
        let stored = compressed.as_deref().unwrap_or(raw);
        let full = {
            let mut slot = self.open[kind as usize].lock().map_err(|_| poisoned())?;
            if slot.is_none() {
                *slot = Some(PackWriter::create(
                    &self.repo.tmp_dir(),
                    kind,
                    self.repo.crypto().map(|c| c.recipient()),
                )?);
            }
            let Some(w) = slot.as_mut() else {
                return Err(poisoned());
            };
            w.add(id, raw.len() as u32, comp, stored)?;
            if w.size() >= self.repo.config().pack_target_size {
                slot.take()
            } else {
                None
            }
        };
        self.stats.blobs.fetch_add(1, Relaxed);
        self.stats.raw.fetch_add(raw.len() as u64, Relaxed);
        self.stats.stored.fetch_add(stored.len() as u64, Relaxed);
        if let Some(w) = full {
            self.send(w)?;
        }
        Ok(true)
    }

    fn send(&self, w: PackWriter) -> Result<()> {
        let tx = self.to_seal.lock().map_err(|_| poisoned())?.clone();
        match tx {
            Some(tx) => match tx.send(w) {
                Ok(()) => Ok(()),
                // The sealer stopped on an error; `finish` reports it.
                Err(e) => {
                    e.into_inner().abandon();
                    Err(self
                        .join_sealer()
                        .err()
                        .unwrap_or_else(|| Error::Invalid("pack sealing thread stopped".into())))
                }
            },
            None => Err(Error::Invalid("saver already finished".into())),
        }
    }

    fn join_sealer(&self) -> Result<()> {
        self.to_seal.lock().map_err(|_| poisoned())?.take();
        let h = self.sealer.lock().map_err(|_| poisoned())?.take();
        match h {
            Some(h) => h
                .join()
                .map_err(|_| Error::Invalid("pack sealing thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Seal the open packs and wait until every pack is durable and indexed
    /// (INV-2, INV-3). Call before writing the snapshot that needs them.
    pub fn finish(&self) -> Result<()> {
        for slot in &self.open {
            let w = slot.lock().map_err(|_| poisoned())?.take();
            if let Some(w) = w {
                self.send(w)?;
            }
        }
        self.join_sealer()
    }

    /// Drop open packs after a failure (their temp files are removed).
    pub fn abandon(&self) {
        for slot in &self.open {
            if let Ok(mut s) = slot.lock() {
                if let Some(w) = s.take() {
                    w.abandon();
                }
            }
        }
        let _ = self.join_sealer();
    }
}
