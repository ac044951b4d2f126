//! The blob saver: dedup against the index and this session, compress, append
//! to the open data or tree pack, and hand full packs to a sealing thread that
//! makes them durable (INV-1) and only then indexes them (INV-2). Memory is
//! bounded: one open pack buffer per kind, and at most `SEAL_QUEUE` sealed
//! packs waiting for fsync (as file handles, their bytes already written).
//! Dedup sees live packs only: condemned packs' blobs are written again
//! (format-spec/gc.md). While a dictionary is being trained, blobs that
//! would use it wait in a bounded queue ([`DEFER_LIMIT`]) instead of
//! holding up the walk (format-spec/objects.md "When to train").

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::Index;
use crate::pack::writer::PackWriter;
use crate::read::Listing;
use crate::repo::Repo;
use crate::snapshot::tree::{Entry, Tree};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Bytes of small blobs that may wait for a dictionary being trained.
/// Beyond this a saver waits for the dictionary instead of queueing.
pub const DEFER_LIMIT: usize = 4 << 20;
/// Queued bytes from which a dictionary is trained (or all of them, if
/// the snapshot ends first).
pub const TRAIN_AT: usize = 1 << 20;

/// Whether small blobs are compressed now or queued for a dictionary.
#[derive(Default)]
enum Gate {
    /// Compress with the repository's newest dictionary as usual.
    #[default]
    Open,
    /// A dictionary is being trained: queue blobs that would use it.
    Training {
        queue: Vec<(BlobKind, BlobId, Vec<u8>)>,
        bytes: usize,
        /// No more blobs will come (the walk ended).
        ended: bool,
    },
}

/// A blob larger than the format allows.
fn too_large(raw: &[u8]) -> Result<()> {
    if raw.len() > blob::MAX_RAW {
        return Err(Error::Invalid(format!(
            "blob of {} bytes exceeds the {}-byte limit",
            raw.len(),
            blob::MAX_RAW
        )));
    }
    Ok(())
}

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
    /// Queue of blobs waiting for a dictionary being trained.
    gate: Mutex<Gate>,
    /// Signalled when the gate opens, the queue reaches [`TRAIN_AT`] or
    /// input ends.
    opened: Condvar,
    /// Where the listings of saved directories go, for the next backup.
    cache: Option<crate::cache::TreeCache>,
    /// What was added.
    pub stats: SaveStats,
}

/// Sealed packs that may wait for fsync at once.
const SEAL_QUEUE: usize = 32;

fn poisoned() -> Error {
    Error::Internal("internal lock poisoned by a panic".into())
}

impl<'r> BlobSaver<'r> {
    /// Start a saver and its sealing thread.
    pub fn new(repo: &'r Repo) -> Result<Self> {
        let index = Arc::new(Mutex::new(repo.index()?));
        // Full packs wait here for their fsync. The data is already written
        // (page cache), so a deep queue costs file handles, not memory, and
        // keeps fsync latency off the workers' path.
        let (tx, rx) = crossbeam_channel::bounded::<PackWriter>(SEAL_QUEUE);
        let store = repo.store().clone();
        let idx = index.clone();
        let sealer = std::thread::Builder::new()
            .name("strata-sealer".into())
            .spawn(move || -> Result<()> {
                for w in rx {
                    // INV-2: the pack is durable under its final name before
                    // any index row names it.
                    let sealed = w.finish(&*store)?;
                    crate::killpoint::reached("pack-published");
                    idx.lock().map_err(|_| poisoned())?.add_pack(&sealed)?;
                    crate::killpoint::reached("index-committed");
                }
                Ok(())
            })
            .map_err(|e| Error::Internal(format!("cannot start sealing thread: {e}")))?;
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
            gate: Mutex::new(Gate::Open),
            opened: Condvar::new(),
            cache: crate::cache::TreeCache::for_repo(&repo.config().repo_id),
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

    /// Put the listing of a directory just saved into the local cache, so
    /// the next backup finds its parent there instead of decompressing the
    /// packs. An entry with contents gets their digest; one still without
    /// (reused from the parent, in a reused part) keeps the parent's,
    /// `kept[k]`: a listing must mark every inline file.
    pub(super) fn remember(
        &self,
        id: &BlobId,
        entries: Vec<Entry>,
        kept: &[Option<[u8; 32]>],
        parts: Vec<(BlobId, u32)>,
    ) {
        if self.cache.is_none() {
            return;
        }
        let l = Listing::without_contents(self.repo, entries, parts, |k| {
            kept.get(k).copied().flatten()
        });
        if let Ok(b) = crate::object::encode_body(&l) {
            self.remember_body(id, &b);
        }
    }

    /// Are the listings of saved directories kept (a local cache)?
    pub(super) fn keeps_listings(&self) -> bool {
        self.cache.is_some()
    }

    /// Put `body`, the encoded listing of tree `id`, into the cache.
    pub(super) fn remember_body(&self, id: &BlobId, body: &[u8]) {
        if let Some(cache) = &self.cache {
            cache.put(id, body);
        }
    }

    pub(super) fn save_leaf(&self, tree: &Tree) -> Result<BlobId> {
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
        too_large(raw)?;
        if self.pending.lock().map_err(|_| poisoned())?.contains(&id) {
            return Ok(false);
        }
        if self.lookup.lock().map_err(|_| poisoned())?.contains(&id)? {
            return Ok(false);
        }
        if !self.pending.lock().map_err(|_| poisoned())?.insert(id) {
            return Ok(false);
        }
        if raw.len() <= crate::dict::DICT_MAX_BLOB && self.defer(kind, id, raw)? {
            return Ok(true);
        }
        self.store(kind, id, raw)?;
        Ok(true)
    }

    /// Store a blob although the index may list it: `repair packs` copies
    /// the intact blobs of a damaged pack, whose rows are still indexed.
    /// Only this saver's own blobs dedup. Returns true if added.
    pub fn save_again(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<bool> {
        too_large(raw)?;
        if !self.pending.lock().map_err(|_| poisoned())?.insert(id) {
            return Ok(false);
        }
        self.store(kind, id, raw)?;
        Ok(true)
    }

    /// Queue a blob while a dictionary is trained; false: store it now
    /// (the gate is open, or opened while this waited for queue space).
    fn defer(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<bool> {
        let mut g = self.gate.lock().map_err(|_| poisoned())?;
        loop {
            match &mut *g {
                Gate::Open => return Ok(false),
                Gate::Training { queue, bytes, .. } if *bytes + raw.len() <= DEFER_LIMIT => {
                    let before = *bytes;
                    *bytes += raw.len();
                    queue.push((kind, id, raw.to_vec()));
                    if before < TRAIN_AT && *bytes >= TRAIN_AT {
                        self.opened.notify_all();
                    }
                    return Ok(true);
                }
                Gate::Training { .. } => {
                    g = self.opened.wait(g).map_err(|_| poisoned())?;
                }
            }
        }
    }

    /// From now until [`open_gate`](Self::open_gate), queue the blobs that
    /// a dictionary would compress instead of storing them.
    pub fn hold_for_dictionary(&self) -> Result<()> {
        let mut g = self.gate.lock().map_err(|_| poisoned())?;
        if let Gate::Open = *g {
            *g = Gate::Training {
                queue: Vec::new(),
                bytes: 0,
                ended: false,
            };
        }
        Ok(())
    }

    /// No more blobs will be saved before [`finish`](Self::finish): a
    /// trainer waiting in [`dictionary_samples`](Self::dictionary_samples)
    /// takes what is queued.
    pub fn end_of_input(&self) {
        if let Ok(mut g) = self.gate.lock() {
            if let Gate::Training { ended, .. } = &mut *g {
                *ended = true;
            }
            self.opened.notify_all();
        }
    }

    /// Training samples from the queue, once it holds [`TRAIN_AT`] bytes or
    /// input ended: up to `count` slices of at most `slice` bytes, evenly
    /// spaced over the queued blobs cut into such slices (a dictionary
    /// matters most at the start of a frame; objects.md "When to train").
    /// These are the tree parts and small blobs the dictionary will
    /// compress, so no second pass over the sources is needed.
    pub fn dictionary_samples(&self, count: usize, slice: usize) -> Result<Vec<Vec<u8>>> {
        let slice = slice.max(1);
        let mut g = self.gate.lock().map_err(|_| poisoned())?;
        loop {
            match &*g {
                Gate::Training { bytes, ended, .. } if *bytes < TRAIN_AT && !*ended => {
                    g = self.opened.wait(g).map_err(|_| poisoned())?;
                }
                _ => break,
            }
        }
        let Gate::Training { queue, .. } = &*g else {
            return Ok(Vec::new());
        };
        let total: usize = queue.iter().map(|(_, _, r)| r.len().div_ceil(slice)).sum();
        let step = (total / count.max(1)).max(1);
        Ok(queue
            .iter()
            .flat_map(|(_, _, r)| r.chunks(slice))
            .step_by(step)
            .take(count)
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// The dictionary is trained and durable (or will not be): store the
    /// queued blobs with the repository's newest dictionary, on every core,
    /// and let new ones through.
    pub fn open_gate(&self) -> Result<()> {
        let queue = {
            let mut g = self.gate.lock().map_err(|_| poisoned())?;
            let queue = match std::mem::take(&mut *g) {
                Gate::Open => Vec::new(),
                Gate::Training { queue, .. } => queue,
            };
            self.opened.notify_all();
            queue
        };
        use rayon::prelude::*;
        queue
            .par_iter()
            .try_for_each(|(kind, id, raw)| self.store(*kind, *id, raw))
    }

    /// Compress `raw` and append it to the open pack of its kind.
    fn store(&self, kind: BlobKind, id: BlobId, raw: &[u8]) -> Result<()> {
        let dicts = self.repo.dicts(false)?;
        let (comp, compressed) = blob::compress(
            raw,
            self.repo.config().compression_level,
            dicts.newest().map(|d| &**d),
        );
        let stored = compressed.as_deref().unwrap_or(raw);
        let full = {
            let mut slot = self.open[kind as usize].lock().map_err(|_| poisoned())?;
            if slot.is_none() {
                *slot = Some(self.repo.pack_writer(kind)?);
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
        Ok(())
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
                        .unwrap_or_else(|| Error::Internal("pack sealing thread stopped".into())))
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
                .map_err(|_| Error::Internal("pack sealing thread panicked".into()))?,
            None => Ok(()),
        }
    }

    /// Seal the open packs and wait until every pack is durable and indexed
    /// (INV-2, INV-3). Call before writing the snapshot that needs them.
    pub fn finish(&self) -> Result<()> {
        self.open_gate()?;
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
        if let Ok(mut g) = self.gate.lock() {
            *g = Gate::Open;
            self.opened.notify_all();
        }
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
