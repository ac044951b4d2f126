//! Bringing the index up to date with the repository (format-spec/index.md
//! "Rebuild from packs"): index packs that are on disk but not in the index
//! (a killed run, a missing `index.sqlite`), drop the rows of packs that gc
//! deleted (possibly on another host), flag packs that are gone without a
//! gc record as missing, and load the gc state so that dedup skips
//! condemned and missing packs (format-spec/gc.md "Index").

use super::gcstate;
use crate::blob::BlobKind;
use crate::error::Error;
use crate::error::Result;
use crate::id::PackId;
use crate::index::Index;
use crate::pack::reader;
use crate::pack::writer::SealedPack;
use crate::repo::Repo;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Packs whose trailers are read at once (then indexed in order).
const BATCH: usize = 256;
/// From this many new packs on, indexing shows a progress bar.
const PROGRESS_FROM: usize = 64;

/// The listing stamps of fan-out directories (`packs/xx` -> stamp), as
/// [`Index::add_new_packs`] saw them.
pub type DirStamps = BTreeMap<String, Vec<u8>>;

/// What [`Index::reconcile`] did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Packs indexed from their trailers.
    pub added: usize,
    /// Packs dropped from the index because gc deleted them.
    pub dropped: usize,
    /// Packs in the index whose files are gone without a gc record.
    pub missing: Vec<PackId>,
    /// Unreadable packs and gc state files, one line each.
    pub warnings: Vec<String>,
    /// The gc state as read.
    pub state: gcstate::State,
    /// The pack files listed (id -> size), for callers that need the one
    /// listing this reconcile made (`check`).
    pub listed: HashMap<PackId, u64>,
}

impl Index {
    /// Reconcile the index with the pack files and the gc state. A pack
    /// whose trailer does not verify is reported in the warnings and
    /// skipped; an object store error while reading one stops it.
    pub fn reconcile(&mut self, repo: &Repo) -> Result<Reconciled> {
        if repo.is_write_only() {
            return self.reconcile_write_only(repo);
        }
        let mut out = Reconciled::default();
        // Rows first, then files: a pack that a concurrent backup indexes
        // meanwhile is then never mistaken for a deleted one.
        let known = self.pack_ids()?;
        let on_disk: HashMap<PackId, u64> = list_packs(repo)?.into_iter().collect();
        let state = gcstate::load(repo)?;
        // Gone and recorded by gc (deleted, or condemned: a gc deleting it
        // now) is dropped; gone without a record is missing.
        let (gone, missing): (Vec<PackId>, Vec<PackId>) = known
            .iter()
            .filter(|p| !on_disk.contains_key(p))
            .partition(|p| state.deleted.contains_key(p) || state.condemned.contains_key(p));
        self.remove_packs(&gone)?;
        out.dropped = gone.len();
        let flagged: Vec<PackId> = self
            .packs()?
            .into_iter()
            .filter(|p| p.missing)
            .map(|p| p.id)
            .collect();
        let mut sorted_missing = missing.clone();
        sorted_missing.sort();
        let mut sorted_flagged = flagged;
        sorted_flagged.sort();
        if sorted_missing != sorted_flagged {
            self.set_missing(&sorted_missing)?;
        }
        out.missing = sorted_missing;
        let mut new: Vec<(PackId, u64)> = on_disk
            .iter()
            .filter(|(id, _)| !known.contains(id))
            .map(|(id, size)| (*id, *size))
            .collect();
        new.sort();
        out.added = self.index_new(repo, &new, &mut out.warnings)?;
        out.warnings.extend(
            state
                .unreadable
                .iter()
                .map(|e| format!("ignoring unreadable gc state: {e}")),
        );
        self.sync_condemned(&state.condemned)?;
        out.state = state;
        out.listed = on_disk;
        Ok(out)
    }

    /// Index the packs added since `seen` was recorded, for a reader of
    /// new snapshots (`status`), without listing every pack: each fan-out
    /// directory `packs/xx` whose backend stamp (`Backend::listing_stamp`)
    /// differs from the one in `seen` is listed, and its packs the index
    /// lacks are indexed from their trailers. Only adds rows (never drops
    /// or flags: that is [`Index::reconcile`]'s). Returns the packs
    /// indexed and the stamps to keep (only those settled `settled` before
    /// this call started, so no change can hide in the clock's
    /// granularity); `None` where the backend has no stamps.
    pub fn add_new_packs(
        &mut self,
        repo: &Repo,
        seen: &DirStamps,
        settled: std::time::Duration,
    ) -> Result<Option<(usize, DirStamps)>> {
        let started = std::time::SystemTime::now();
        let mut keep = BTreeMap::new();
        let mut new = Vec::new();
        for fan in 0..=255u8 {
            let dir = format!("packs/{fan:02x}");
            let Some((stamp, changed)) = repo.store().listing_stamp(&dir)? else {
                if fan == 0 && repo.store().listing_stamp("packs")?.is_none() {
                    return Ok(None);
                }
                continue;
            };
            if changed.checked_add(settled).is_some_and(|t| t <= started) {
                keep.insert(dir.clone(), stamp.clone());
            }
            if seen.get(&dir) == Some(&stamp) {
                continue;
            }
            let mut listed = Vec::new();
            repo.store().list(&dir, &mut |l| {
                let name = l.key.rsplit('/').next().unwrap_or_default();
                if let Some(id) = PackId::from_hex(name).filter(|_| name.starts_with(&dir[6..])) {
                    listed.push((id, l.size));
                }
            })?;
            for (id, size) in listed {
                if !self.has_pack(&id)? {
                    new.push((id, size));
                }
            }
        }
        new.sort();
        let mut warnings = Vec::new();
        let added = self.index_new(repo, &new, &mut warnings)?;
        for w in &warnings {
            repo.events().warning(w);
        }
        Ok(Some((added, keep)))
    }

    /// A write-only host's index holds the blobs it wrote itself
    /// (write-only.md "Deduplication without reading"): it reads no
    /// trailer. Its packs that are gone are dropped, and the coordination
    /// files say which are condemned (dedup skips those) or deleted.
    fn reconcile_write_only(&mut self, repo: &Repo) -> Result<Reconciled> {
        let mut out = Reconciled::default();
        let known = self.pack_ids()?;
        let on_disk: HashMap<PackId, u64> = list_packs(repo)?.into_iter().collect();
        let coord = super::coord::load(repo)?;
        let gone: Vec<PackId> = known
            .iter()
            .filter(|p| !on_disk.contains_key(p) || coord.deleted.contains(p))
            .copied()
            .collect();
        self.remove_packs(&gone)?;
        out.dropped = gone.len();
        out.warnings.extend(
            coord
                .unreadable
                .iter()
                .map(|e| format!("ignoring unreadable coordination file: {e}")),
        );
        self.sync_condemned(&coord.condemned)?;
        out.listed = on_disk;
        Ok(out)
    }

    /// Index the packs `new` from their trailers (index.md "Rebuild from
    /// packs"), read in parallel in batches: on every core for a local
    /// repository, the backend's `remote_reads` in flight on remote storage; rows go
    /// in pack order, one transaction per pack. A progress bar shows on a
    /// terminal when there are many. Returns how many were indexed.
    fn index_new(
        &mut self,
        repo: &Repo,
        new: &[(PackId, u64)],
        warnings: &mut Vec<String>,
    ) -> Result<usize> {
        if new.is_empty() {
            return Ok(0);
        }
        let done = Arc::new(AtomicU64::new(0));
        let _bar = (new.len() >= PROGRESS_FROM).then(|| {
            repo.events().progress(crate::events::Meter::Items {
                label: "indexing",
                unit: "packs",
                total: new.len() as u64,
                done: done.clone(),
            })
        });
        let pool = repo
            .store()
            .remote_reads()
            .map(|n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Internal(format!("thread pool: {e}")))
            })
            .transpose()?;
        let read_batch = |batch: &[(PackId, u64)]| -> Vec<Result<SealedPack>> {
            batch
                .par_iter()
                .map(|(id, size)| {
                    let r = read_pack(repo, id, *size);
                    done.fetch_add(1, Relaxed);
                    r
                })
                .collect()
        };
        let mut added = 0;
        for batch in new.chunks(BATCH) {
            let read = match &pool {
                Some(p) => p.install(|| read_batch(batch)),
                None => read_batch(batch),
            };
            for r in read {
                match r {
                    Ok(sealed) => {
                        self.add_pack(&sealed)?;
                        added += 1;
                    }
                    // deleted (by a gc) between listing and reading
                    Err(e) if e.is_not_found() => {}
                    // the storage failed to deliver (an object store after
                    // its retries, an injected fault, a backend I/O error):
                    // no verdict on the pack, and skipping it would turn
                    // into "blob not in the index" later (or a needless
                    // re-upload)
                    Err(e) if e.is_transport_failure() => return Err(e),
                    Err(e) => warnings.push(format!("skipping unreadable pack: {e}")),
                }
            }
        }
        Ok(added)
    }

    /// Set `packs.condemned` from the gc state, writing only if it differs.
    fn sync_condemned(&mut self, want: &BTreeMap<PackId, i64>) -> Result<()> {
        let have: BTreeMap<PackId, i64> = self
            .packs()?
            .into_iter()
            .filter_map(|p| Some((p.id, p.condemned?)))
            .collect();
        let rowids = self.pack_rowids()?;
        let want: BTreeMap<PackId, i64> = want
            .iter()
            .filter(|(p, _)| rowids.contains_key(p))
            .map(|(p, s)| (*p, *s))
            .collect();
        if have != want {
            self.set_condemned(&want)?;
        }
        Ok(())
    }
}

/// Read a pack's trailer as a [`SealedPack`] for the index, with who
/// wrote it and whether dedup may use it ([`super::trust::judge`]).
fn read_pack(repo: &Repo, id: &PackId, size: u64) -> Result<SealedPack> {
    let object = format!("pack {id}");
    let f = repo.open_pack(id)?;
    let (_, t) = reader::read_trailer_auth(&f, &object)?;
    let kind = t.entries.first().map(|e| e.kind).unwrap_or(BlobKind::Data);
    let (writer, trusted) = super::trust::judge(repo, id, t.auth.as_ref())?;
    Ok(SealedPack {
        id: *id,
        kind,
        size,
        entries: t.entries,
        writer,
        trusted,
    })
}

/// Every pack file `packs/xx/<id>` with its size (through the backend;
/// files not named like a pack are skipped).
pub fn list_packs(repo: &Repo) -> Result<Vec<(PackId, u64)>> {
    let mut out = Vec::new();
    repo.store().list("packs", &mut |l| {
        let mut parts = l.key.split('/');
        if let (Some("packs"), Some(dir), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            if let Some(id) = PackId::from_hex(name).filter(|_| name.starts_with(dir)) {
                out.push((id, l.size));
            }
        }
    })?;
    out.sort();
    Ok(out)
}
