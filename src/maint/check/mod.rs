//! `strata check` (format-spec/check.md): is the repository whole, and
//! where is it not. In order:
//!
//! 1. the config, the key files and their info files, every snapshot
//!    manifest, the dictionaries and the gc state files decode;
//! 2. the index is reconciled with one listing of `packs/`: every indexed
//!    pack exists with the size the index records, and every pack's
//!    trailer verifies and agrees with the index rows;
//! 3. every tree reachable from a snapshot (and from a snapshot forgotten
//!    within gc's grace period, gc.md) is read from its pack, never from
//!    the local cache, and decodes; every blob it references is in the
//!    index (gc's mark, `mark_all`); packs holding no referenced blob are
//!    listed, not errors;
//! 4. with `--read-data…`, the chosen packs are read whole on every core
//!    (data.rs): each pack's BLAKE3 against its name, each blob against
//!    its id;
//! 5. only if blobs are damaged or missing: a second walk names the
//!    snapshots and paths that use them (usage.rs).
//!
//! Every problem names its object, and a damaged pack every blob it makes
//! unreadable. What was verified when is kept on this machine (state.rs).

mod data;
mod phases;
pub mod select;
pub mod state;
pub(crate) mod usage;

use super::mark::{self, MarkProgress};
use super::plan;
use super::repair::damaged;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{Index, PackRow};
use crate::read::BlobReader;
use crate::repo::Repo;
pub use phases::run;
use rayon::prelude::*;
pub use select::{Order, Subset};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub use usage::Use;

/// Validated options of `strata check`.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Read pack data, and which packs; `None` checks structure only.
    pub read_data: Option<Subset>,
    /// How a percentage or size picks packs.
    pub order: Order,
    /// With read-data: leave out packs verified within this long.
    pub max_age: Option<Duration>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            read_data: None,
            order: Order::Random,
            max_age: None,
        }
    }
}

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Trees read by the structure walk.
    pub mark: MarkProgress,
    /// Pack bytes read by read-data.
    pub bytes: Arc<AtomicU64>,
    /// Pack bytes read-data will read.
    pub total_bytes: AtomicU64,
}

/// A damaged or missing blob.
#[derive(Clone, Debug, Serialize)]
pub struct BadBlob {
    /// The blob id (hex).
    pub id: String,
    /// What is wrong.
    pub detail: String,
}

/// One problem: an object that is damaged or missing.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// What: `config`, `keys/…`, `snapshots/…`, `dicts/…`, `gc/…`,
    /// `pack <id>`, `tree <id>`, `index`.
    pub object: String,
    /// The pack concerned (hex), if any.
    pub pack: Option<String>,
    /// What is wrong, one line.
    pub message: String,
    /// The blobs it makes unreadable or that are missing.
    pub blobs: Vec<BadBlob>,
    /// Snapshots and paths using those blobs (at most 100).
    pub used_by: Vec<Use>,
}

/// What read-data did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReadData {
    /// Packs the subset chose.
    pub packs_selected: u64,
    /// Packs left out because they were verified within `--max-age`.
    pub packs_recent: u64,
    /// Packs read.
    pub packs_read: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time of the reading.
    pub seconds: f64,
    /// Bytes read per second, in MB (10^6).
    pub mb_per_s: f64,
    /// The packs read (hex).
    pub packs: Vec<String>,
    /// Packs of write-only keys found whole and now trusted for dedup
    /// (write-only.md "Attribution and poisoning").
    pub trusted: usize,
}

/// The result of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: u64,
    /// Distinct trees read.
    pub trees: u64,
    /// Distinct blobs referenced.
    pub blobs: u64,
    /// Pack files.
    pub packs: u64,
    /// Problems found; empty means clean.
    pub problems: Vec<Problem>,
    /// Packs holding no blob any snapshot references (not errors: gc
    /// removes them).
    pub unreferenced_packs: Vec<String>,
    /// Notes that are not problems (state file unreadable...).
    pub warnings: Vec<String>,
    /// Snapshots this machine saw that are gone without a removal from
    /// here (repo/seen.rs): a warning, not a problem.
    pub vanished_snapshots: Vec<String>,
    /// With `--read-data…`.
    pub read_data: Option<ReadData>,
    /// Wall time.
    pub seconds: f64,
}

/// Problems gathered per pack, per blob, and otherwise.
#[derive(Default)]
struct Found {
    packs: BTreeMap<PackId, (Vec<String>, BTreeMap<BlobId, String>)>,
    /// Blobs a snapshot needs that no pack holds.
    missing: BTreeSet<BlobId>,
    other: Vec<Problem>,
    /// Blobs found unreadable, for the record of damaged blobs.
    record: Vec<damaged::Found>,
    /// Reachable blobs whose only copies were recorded damaged, by pack
    /// (`None`: gone): problems if a live snapshot uses them (a backup
    /// never reuses them from a parent, so a forgotten root does not
    /// count), unless read-data finds the pack intact now.
    recorded: BTreeMap<Option<PackId>, Vec<(BlobId, String)>>,
}

impl Found {
    fn pack(&mut self, p: &PackId, msg: impl Into<String>) {
        let msg = msg.into();
        let msgs = &mut self.packs.entry(*p).or_default().0;
        if !msgs.contains(&msg) {
            msgs.push(msg);
        }
    }
    fn blob(&mut self, p: &PackId, b: &BlobId, why: impl Into<String>) {
        self.packs
            .entry(*p)
            .or_default()
            .1
            .entry(*b)
            .or_insert_with(|| why.into());
    }
    fn other(&mut self, object: impl Into<String>, e: impl std::fmt::Display) {
        self.other.push(Problem {
            object: object.into(),
            pack: None,
            message: e.to_string(),
            blobs: Vec::new(),
            used_by: Vec::new(),
        });
    }
    fn damaged(&self) -> HashSet<BlobId> {
        let mut out: HashSet<BlobId> = self.missing.iter().copied().collect();
        for (_, blobs) in self.packs.values() {
            out.extend(blobs.keys().copied());
        }
        out
    }
}

/// A problem as one line: object, message, blob count.
pub fn describe(p: &Problem) -> String {
    let mut s = format!("{}: {}", p.object, p.message);
    if !p.blobs.is_empty() {
        s.push_str(&format!(" ({} blobs)", p.blobs.len()));
    }
    s
}

/// Step 1: the config, the keys and their info files.
fn files(repo: &Repo, found: &mut Found) -> Result<()> {
    let config = repo
        .read("config")
        .and_then(|b| crate::repo::files::open_config(&b, "config", repo.crypto().map(|c| &**c)));
    if let Err(e) = config {
        found.other("config", e);
    }
    let Some(crypto) = repo.crypto() else {
        return Ok(());
    };
    let store = repo.store();
    for id in crate::repo::keys::key_ids(&**store)? {
        let object = format!("keys/{id}");
        match store.get(&object) {
            Ok(b) => {
                if let Err(e) = crate::crypto::agefile::is_scrypt(&b) {
                    found.other(&object, e.into_error(&object));
                }
            }
            Err(e) => found.other(&object, e),
        }
        if let Err(e) = crate::repo::keys::info(&**store, crypto, &id) {
            found.other(format!("keys/{id}.info"), e);
        }
    }
    Ok(())
}

/// Packs whose trailers are read per batch (in parallel).
const TRAILER_BATCH: usize = 64;

/// Step 2: every listed pack's trailer verifies and agrees with the index.
fn trailers(
    repo: &Repo,
    index: &Index,
    packs: &HashMap<i64, PackRow>,
    listed: &HashMap<PackId, u64>,
    dropped: &HashSet<(BlobId, PackId)>,
    found: &mut Found,
) -> Result<()> {
    let rowid: HashMap<PackId, i64> = packs.values().map(|p| (p.id, p.rowid)).collect();
    let mut all: Vec<PackId> = listed.keys().copied().collect();
    all.sort();
    for batch in all.chunks(TRAILER_BATCH) {
        let read: Vec<Result<Vec<crate::pack::PackEntry>>> = batch
            .par_iter()
            .map(|id| {
                let f = repo.open_pack(id)?;
                Ok(crate::pack::reader::read_trailer(&f, &format!("pack {}", id.short()))?.1)
            })
            .collect();
        for (id, r) in batch.iter().zip(read) {
            let rows = match rowid.get(id) {
                Some(r) => index.blobs_of(*r)?,
                None => Vec::new(),
            };
            match r {
                // deleted by a concurrent gc between listing and reading
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    found.pack(id, short(&e));
                    for b in &rows {
                        found.blob(id, &b.id, "unreadable once the index is rebuilt");
                    }
                }
                Ok(mut entries) => {
                    // rows of recorded damaged blobs were dropped on purpose
                    entries.retain(|e| !dropped.contains(&(e.id, *id)));
                    let same = entries.len() == rows.len()
                        && entries.iter().zip(&rows).all(|(e, r)| {
                            e.id == r.id
                                && e.offset == r.offset
                                && e.stored_len == r.stored_len
                                && e.raw_len == r.raw_len
                                && e.kind == r.kind
                                && e.compression == r.compression
                        });
                    if !same {
                        found.pack(
                            id,
                            format!(
                                "the index does not agree with the pack's trailer ({} entries, \
                                 {} index rows): run `strata rebuild-index`",
                                entries.len(),
                                rows.len()
                            ),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// Step 3: an unreadable tree, attributed to the blob that fails (the
/// tree, or one of its parts) and its pack. A tree the index does not
/// know is reported as missing by the reachable pass.
fn pinpoint(reader: &BlobReader, tree: &BlobId, e: &Error, found: &mut Found) -> Result<()> {
    let mut record = |id: &BlobId, e: &Error| -> Result<()> {
        match reader.locate(id)? {
            Some(loc) => {
                found.blob(&loc.pack, id, short(e));
                if !e.is_transport_failure() {
                    found.record.push((*id, Some(loc.pack), short(e)));
                }
            }
            None => {
                found.missing.insert(*id);
            }
        }
        Ok(())
    };
    let top = reader
        .read_kind(tree, Some(crate::blob::BlobKind::Tree))
        .and_then(|b| crate::snapshot::tree::Tree::decode(&b, tree));
    match top {
        Err(e) => record(tree, &e),
        Ok(t) => {
            let mut any = false;
            for p in &t.parts {
                if let Err(pe) = reader.part(p) {
                    record(p, &pe)?;
                    any = true;
                }
            }
            if !any {
                record(tree, e)?;
            }
            Ok(())
        }
    }
}

/// Step 4: read `todo` on every core; returns the figures and, per pack
/// read, whether it was clean.
fn read_data(
    repo: &Repo,
    index: Index,
    rowids: &HashMap<PackId, i64>,
    todo: &[(PackId, u64)],
    progress: &Progress,
    found: &mut Found,
) -> Result<(ReadData, Vec<(PackId, bool)>)> {
    progress
        .total_bytes
        .store(todo.iter().map(|(_, s)| s).sum(), Relaxed);
    // write-only.md "Attribution and poisoning": who wrote each pack, and
    // whether dedup trusts it yet
    let writers: HashMap<PackId, (Option<crate::id::KeyId>, bool)> = index
        .packs()?
        .into_iter()
        .map(|p| (p.id, (p.writer, p.trusted)))
        .collect();
    let index = Mutex::new(index);
    let t0 = Instant::now();
    let results: Vec<(PackId, data::PackOutcome)> = todo
        .par_iter()
        .map(|(id, size)| -> Result<(PackId, data::PackOutcome)> {
            let rows = match rowids.get(id) {
                Some(r) => index
                    .lock()
                    .map_err(|_| Error::Internal("index lock poisoned".into()))?
                    .blobs_of(*r)?,
                None => Vec::new(),
            };
            let out = data::verify_pack(repo, id, *size, &rows, progress.bytes.clone());
            Ok((*id, out))
        })
        .collect::<Result<_>>()?;
    let seconds = t0.elapsed().as_secs_f64();
    let mut rd = ReadData {
        seconds,
        ..ReadData::default()
    };
    let mut clean = Vec::with_capacity(results.len());
    let mut verified = Vec::new();
    let signers = repo.signers()?;
    for (id, out) in results {
        rd.packs_read += 1;
        rd.packs.push(id.to_hex());
        rd.bytes += out.bytes;
        clean.push((id, out.is_clean()));
        let (writer, trusted) = writers.get(&id).cloned().unwrap_or((None, true));
        if out.is_clean() && !trusted && out.bytes > 0 {
            verified.push(id);
        }
        // name the write-only key that wrote a damaged pack
        let by = writer.map(|k| match signers.label(k.as_str()) {
            Some(l) => format!("written by write-only key {k} {l:?}: "),
            None => format!("written by write-only key {k}: "),
        });
        let by = by.unwrap_or_default();
        for p in out.problems {
            found.pack(&id, format!("{by}{p}"));
        }
        for (b, why) in out.bad_blobs {
            let why = format!("{by}{why}");
            found.record.push((b, Some(id), why.clone()));
            found.blob(&id, &b, why);
        }
        for (b, why) in out.unread {
            found.blob(&id, &b, why);
        }
    }
    if !verified.is_empty() {
        // every blob of these packs read back right: full hosts may
        // deduplicate against them from now on (trust.rs)
        crate::repo::trust::record(repo, &verified, "check --read-data")?;
        let mut idx = repo.index()?;
        idx.set_trusted(&verified)?;
        rd.trusted = verified.len();
    }
    rd.mb_per_s = if seconds > 0.0 {
        rd.bytes as f64 / 1e6 / seconds
    } else {
        0.0
    };
    Ok((rd, clean))
}

/// The problems in order: files, packs, missing blobs; each with its uses.
fn problems(found: Found, uses: &BTreeMap<BlobId, Vec<Use>>) -> Vec<Problem> {
    let used_by = |blobs: &mut dyn Iterator<Item = &BlobId>| -> Vec<Use> {
        let mut v: BTreeSet<Use> = BTreeSet::new();
        for b in blobs {
            v.extend(uses.get(b).into_iter().flatten().cloned());
        }
        v.into_iter().take(100).collect()
    };
    let mut out = found.other;
    for (pack, (mut msgs, blobs)) in found.packs {
        if msgs.is_empty() {
            msgs.push(format!("{} damaged blobs", blobs.len()));
        }
        out.push(Problem {
            object: format!("pack {}", pack.to_hex()),
            pack: Some(pack.to_hex()),
            message: msgs.join("; "),
            used_by: used_by(&mut blobs.keys()),
            blobs: blobs
                .into_iter()
                .map(|(id, detail)| BadBlob {
                    id: id.to_hex(),
                    detail,
                })
                .collect(),
        });
    }
    if !found.missing.is_empty() {
        out.push(Problem {
            object: "index".into(),
            pack: None,
            message: format!(
                "{} blobs that snapshots need are in no pack",
                found.missing.len()
            ),
            used_by: used_by(&mut found.missing.iter()),
            blobs: found
                .missing
                .iter()
                .map(|id| BadBlob {
                    id: id.to_hex(),
                    detail: "in no pack".into(),
                })
                .collect(),
        });
    }
    out
}

/// A random seed for the random subsets.
fn seed() -> Result<[u8; 32]> {
    crate::sys::random_bytes()
}

/// An error without the object prefix the caller already names.
pub(crate) fn short(e: &Error) -> String {
    match e {
        Error::Corrupt { detail, .. } => detail.clone(),
        e => e.to_string(),
    }
}
