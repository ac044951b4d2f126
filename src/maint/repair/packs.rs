//! `strata repair packs` (format-spec/check.md "Repair"): for each damaged
//! pack (named, or recorded damaged by `check`), every blob it holds (by
//! its index rows and, if it still verifies, its trailer) that is stored in
//! no other live pack is read and checked against its id; the intact ones
//! are written again through the blob saver, into new packs that are
//! durable and indexed before anything else happens (INV-1, INV-2); the
//! ones that do not read are recorded damaged (damaged.rs), so the next
//! backup of the files that use them stores them again.
//!
//! The pack is then deleted, like gc deletes (GC-2..GC-4: a gc state file
//! records the deletion, the index drops the pack, then the file goes),
//! but only if nothing is lost by it: every blob it held is stored in
//! another live pack, or is damaged and needed by no snapshot. A damaged
//! blob that a snapshot still needs keeps the pack (and `check` reporting
//! it) until a backup has stored it again or `repair snapshots` has
//! written the snapshots without it. This deletes at once, not two-phase:
//! a backup that deduplicated against the pack finds every intact blob in
//! the new packs (gc.md "Why this is safe": "a live copy elsewhere").

use super::damaged::{self, Damaged};
use crate::backup::saver::BlobSaver;
use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::pack::reader::{self, BlobLocation};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::gcstate::GcState;
use crate::repo::lock::Lock;
use std::collections::{BTreeMap, HashSet};

/// One pack's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PackRepair {
    /// The pack (hex in JSON).
    pub pack: PackId,
    /// Blobs it holds (index rows, trailer entries, recorded damaged).
    pub blobs: u64,
    /// Intact blobs written to new packs (with `--dry-run`: that would be).
    pub salvaged: u64,
    /// Blobs already stored in another live pack.
    pub elsewhere: u64,
    /// Damaged blobs: `id: why`.
    pub damaged: Vec<String>,
    /// The pack was deleted.
    pub deleted: bool,
    /// Why it was kept, if it was.
    pub kept: Option<String>,
    /// Replaced by the intact copy at this location (`--from`): nothing
    /// salvaged, nothing lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

impl PackRepair {
    /// The outcome of `pack` before anything was done to it.
    fn new(pack: PackId) -> PackRepair {
        PackRepair {
            pack,
            blobs: 0,
            salvaged: 0,
            elsewhere: 0,
            damaged: Vec::new(),
            deleted: false,
            kept: None,
            restored_from: None,
        }
    }
}

/// A blob in the pack being repaired, where it is.
struct Item {
    kind: BlobKind,
    loc: BlobLocation,
}

/// Repair each of `named` (all packs recorded damaged if empty) under
/// `lock` (exclusive); with `from`, a pack whose copy there is intact is
/// replaced by it first (`super::from`), and only the others salvaged.
pub fn repair(
    repo: &Repo,
    lock: &Lock,
    named: &[PackId],
    dry_run: bool,
    from: Option<&dyn crate::backend::Backend>,
) -> Result<Vec<PackRepair>> {
    let mut restored = Vec::new();
    let mut named = named.to_vec();
    if let (Some(other), false) = (from, dry_run) {
        let damaged = targets_of(repo, &named)?;
        lock.check()?;
        let (done, _) = super::from::restore_from(repo, other, &damaged)?;
        restored = restored_reports(&done, other.name());
        let all_named_restored = !named.is_empty() && named.iter().all(|p| done.contains(p));
        if all_named_restored {
            return Ok(restored);
        }
        named.retain(|p| !done.contains(p));
    }
    let mut out = salvage_all(repo, lock, &named, dry_run)?;
    restored.append(&mut out);
    Ok(restored)
}

/// The outcome of packs replaced by `from`'s intact copies.
fn restored_reports(done: &[PackId], from: &str) -> Vec<PackRepair> {
    done.iter()
        .map(|p| PackRepair {
            restored_from: Some(from.to_string()),
            ..PackRepair::new(*p)
        })
        .collect()
}

/// `named`, or every pack recorded damaged (by `check` or `repair`) that
/// is still listed.
fn targets_of(repo: &Repo, named: &[PackId]) -> Result<Vec<PackId>> {
    if !named.is_empty() {
        return Ok(named.to_vec());
    }
    let mut index = repo.index()?;
    let rec = index.reconcile(repo)?;
    let mut t: Vec<PackId> = Damaged::load(repo)?
        .entries()
        .filter_map(|(_, p, _)| p.copied())
        .chain(check_damaged(repo))
        .filter(|p| rec.listed.contains_key(p))
        .collect();
    t.sort();
    t.dedup();
    Ok(t)
}

/// The packs the last `check --read-data` here found damaged.
fn check_damaged(repo: &Repo) -> Vec<PackId> {
    crate::maint::check::state::path(&repo.config().repo_id, repo.name())
        .map(|p| {
            crate::maint::check::state::CheckState::load(&p)
                .0
                .damaged_packs()
        })
        .unwrap_or_default()
}

/// Salvage each of `named` (all packs recorded damaged if empty).
fn salvage_all(
    repo: &Repo,
    lock: &Lock,
    named: &[PackId],
    dry_run: bool,
) -> Result<Vec<PackRepair>> {
    let mut index = repo.index()?;
    let rec = index.reconcile(repo)?;
    let recorded = Damaged::load(repo)?;
    recorded.apply(&index)?;
    let targets: Vec<PackId> = if named.is_empty() {
        let mut t: Vec<PackId> = recorded
            .entries()
            .filter_map(|(_, p, _)| p.copied())
            .filter(|p| rec.listed.contains_key(p))
            .collect();
        t.sort();
        t.dedup();
        t
    } else {
        for p in named {
            if !rec.listed.contains_key(p) {
                return Err(Error::NotFound(format!(
                    "pack {}: no such pack file",
                    p.to_hex()
                )));
            }
        }
        named.to_vec()
    };
    let saver = if dry_run {
        None
    } else {
        Some(BlobSaver::new(repo)?)
    };
    let rowids = index.pack_rowids()?;
    let mut out = Vec::new();
    let mut found: Vec<damaged::Found> = Vec::new();
    for p in &targets {
        let r = salvage(
            repo,
            &index,
            &recorded,
            p,
            rowids.get(p).copied(),
            saver.as_ref(),
        );
        match r {
            Ok((r, bad)) => {
                found.extend(bad);
                out.push(r);
            }
            Err(e) => {
                if let Some(s) = &saver {
                    s.abandon();
                }
                return Err(e);
            }
        }
    }
    if let Some(s) = &saver {
        // INV-2: the salvaged blobs are durable and indexed before any
        // pack is deleted.
        if let Err(e) = s.finish() {
            s.abandon();
            return Err(e);
        }
    }
    if dry_run {
        return Ok(out);
    }
    drop(saver);
    damaged::record(repo, &index, &found, &|p| rec.listed.contains_key(p))?;
    let delete = decide(repo, &index, &targets, &rowids, &mut out)?;
    if !delete.is_empty() {
        lock.check()?;
        let now = crate::sys::now_ns();
        let deleted: BTreeMap<PackId, i64> = delete.iter().map(|p| (*p, now)).collect();
        GcState::new(&BTreeMap::new(), &BTreeMap::new(), &deleted).save(repo)?; // GC-2
        index.remove_packs(&delete)?; // GC-3
        repo.remove_packs(&delete)?; // GC-4
        // Their entries stay until the blobs are stored again (`record`
        // prunes them then): a backup must still not reuse them.
    }
    Ok(out)
}

/// Read the blobs of pack `id` (row id `rowid` in the index) that are
/// nowhere else, and save the intact ones. Returns the outcome and the
/// blobs found damaged now.
fn salvage(
    repo: &Repo,
    index: &Index,
    recorded: &Damaged,
    id: &PackId,
    rowid: Option<i64>,
    saver: Option<&BlobSaver>,
) -> Result<(PackRepair, Vec<damaged::Found>)> {
    let mut r = PackRepair::new(*id);
    let was_damaged: HashSet<BlobId> = recorded.in_pack(id).into_iter().collect();
    // Every location known for a blob of the pack: index rows, trailer.
    let mut items: BTreeMap<BlobId, Item> = BTreeMap::new();
    if let Some(rowid) = rowid {
        for b in index.blobs_of(rowid)? {
            items.insert(
                b.id,
                Item {
                    kind: b.kind,
                    loc: loc(id, b.offset, b.stored_len, b.raw_len, b.compression),
                },
            );
        }
    }
    let file = match repo.open_pack(id) {
        Ok(f) => Ok(f),
        Err(e) if e.is_store_failure() => return Err(e),
        Err(e) => Err(crate::maint::check::short(&e)),
    };
    if let Ok(f) = &file {
        if let Ok((_, entries)) = reader::read_trailer(f, &format!("pack {}", id.short())) {
            for e in entries {
                items.entry(e.id).or_insert(Item {
                    kind: e.kind,
                    loc: loc(id, e.offset, e.stored_len, e.raw_len, e.compression),
                });
            }
        }
    }
    let mut bad = Vec::new();
    let mut all: HashSet<BlobId> = items.keys().copied().collect();
    all.extend(&was_damaged);
    r.blobs = all.len() as u64;
    for b in &was_damaged {
        if !items.contains_key(b) {
            r.damaged.push(format!("{}: recorded damaged", b.to_hex()));
        }
    }
    for (b, item) in &items {
        if was_damaged.contains(b) {
            r.damaged.push(format!("{}: recorded damaged", b.to_hex()));
            continue;
        }
        if super::stored_elsewhere(index, b, rowid, true)? {
            r.elsewhere += 1;
            continue;
        }
        let read = match &file {
            Ok(f) => repo.decode_with(item.kind, |d| reader::read_blob(f, b, &item.loc, d)),
            Err(why) => Err(Error::Invalid(why.clone())),
        };
        match read {
            Ok(raw) => {
                if let Some(s) = saver {
                    s.save_again(item.kind, *b, &raw)?;
                }
                r.salvaged += 1;
            }
            // no verdict on the blob: stop rather than call it damaged
            Err(e) if e.is_store_failure() => return Err(e),
            Err(e) => {
                let why = crate::maint::check::short(&e);
                r.damaged.push(format!("{}: {why}", b.to_hex()));
                bad.push((*b, Some(*id), why));
            }
        }
    }
    Ok((r, bad))
}

fn loc(
    pack: &PackId,
    offset: u64,
    stored_len: u32,
    raw_len: u32,
    compression: crate::blob::Compression,
) -> BlobLocation {
    BlobLocation {
        pack: *pack,
        offset,
        stored_len,
        raw_len,
        compression,
    }
}

/// Which of `targets` can go: those whose damaged blobs are all stored
/// again elsewhere or needed by no snapshot. Fills in `kept`.
fn decide(
    repo: &Repo,
    index: &Index,
    targets: &[PackId],
    rowids: &std::collections::HashMap<PackId, i64>,
    out: &mut [PackRepair],
) -> Result<Vec<PackId>> {
    // Damaged blobs of each pack that no other live pack holds.
    let mut lost: Vec<HashSet<BlobId>> = Vec::new();
    for (p, r) in targets.iter().zip(out.iter()) {
        let mut set = HashSet::new();
        for d in &r.damaged {
            let hex = d.split(':').next().unwrap_or_default();
            if let Some(b) = BlobId::from_hex(hex) {
                if !super::stored_elsewhere(index, &b, rowids.get(p).copied(), true)? {
                    set.insert(b);
                }
            }
        }
        lost.push(set);
    }
    let all: HashSet<BlobId> = lost.iter().flatten().copied().collect();
    let needed: HashSet<BlobId> = if all.is_empty() {
        HashSet::new()
    } else {
        let (snapshots, bad) = crate::snapshot::list(repo)?;
        if let Some(e) = crate::snapshot::first_error(bad) {
            // an unreadable snapshot may need any of them
            for (r, l) in out.iter_mut().zip(&lost) {
                if !l.is_empty() {
                    r.kept = Some(format!("a snapshot does not read ({e})"));
                }
            }
            all.clone()
        } else {
            let reader = BlobReader::new(repo)?;
            crate::maint::check::usage::find(&reader, &snapshots, &all)
                .into_keys()
                .collect()
        }
    };
    let mut delete = Vec::new();
    for ((p, r), l) in targets.iter().zip(out.iter_mut()).zip(&lost) {
        let needed_here = l.iter().filter(|b| needed.contains(b)).count();
        if needed_here == 0 {
            r.deleted = true;
            delete.push(*p);
        } else if r.kept.is_none() {
            r.kept = Some(format!(
                "{needed_here} damaged blobs are needed by snapshots and stored nowhere else: \
                 back up the files that use them again (`strata check` lists them), or run \
                 `strata repair snapshots`, then `strata repair packs` again"
            ));
        }
    }
    Ok(delete)
}
