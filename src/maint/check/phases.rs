//! [`run`]: the five steps of a check (the module header of `check`), one
//! function each, over what the steps before found.

use super::{
    CheckOptions, CheckReport, Found, Progress, ReadData, damaged, data, describe, files, mark,
    pinpoint, plan, problems, read_data, seed, select, state, trailers, usage,
};
use crate::dict::Dicts;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::{Index, PackRow};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::reconcile::Reconciled;
use crate::snapshot::Listed;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Run a check of `repo`.
pub fn run(repo: &Repo, opts: &CheckOptions, progress: &Progress) -> Result<CheckReport> {
    let started = Instant::now();
    let now = crate::sys::now_ns() / 1_000_000_000;
    let state_path = state::path(&repo.config().repo_id, repo.name());
    if let Some(p) = &state_path {
        state::adopt_legacy(p);
    }
    if opts.max_age.is_some() && opts.read_data.is_some() && state_path.is_none() {
        return Err(Error::Invalid(
            "--max-age needs the local cache directory, where verification times are kept \
             (STRATA_CACHE_DIR is empty)"
                .into(),
        ));
    }
    let mut cx = Checking {
        repo,
        report: CheckReport::default(),
        found: Found::default(),
    };
    // 1. Files that must decode.
    let (snapshots, dicts) = cx.decode()?;
    // 2. Index, listing, sizes, trailers.
    let mut index = repo.index()?;
    let ix = cx.index(&mut index, opts, &dicts)?;
    // 3. Every reachable tree, every referenced blob.
    let reader = BlobReader::new(repo)?.without_cache();
    cx.reach(&index, &reader, &snapshots, &ix, progress)?;
    // 4. Read data.
    let (mut st, st_warning) = match &state_path {
        Some(p) => state::CheckState::load(p),
        None => (state::CheckState::default(), None),
    };
    cx.report.warnings.extend(st_warning);
    let read = cx.read(index, opts, &ix, &st, now, progress)?;
    // 5. The record of damaged blobs, then who uses what is damaged.
    cx.settle(&ix, &read.ok)?;
    cx.uses(&reader, &snapshots);
    let mut report = cx.report;
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(p) = &state_path {
        let last = state::LastCheck {
            time_unix: now,
            read_data: opts.read_data.is_some(),
            errors: report.problems.len() as u64,
            first_error: report.problems.first().map(describe),
            packs: report.packs,
            packs_read: report.read_data.as_ref().map_or(0, |r| r.packs_read),
            seconds: report.seconds,
        };
        let listed = &ix.rec.listed;
        st.record(&|id| listed.contains_key(id), &read.ok, &read.bad, last);
        if let Err(e) = st.save(p) {
            report
                .warnings
                .push(format!("verification times not recorded: {e}"));
        }
    }
    Ok(report)
}

/// A check under way: what it found so far.
struct Checking<'r> {
    repo: &'r Repo,
    report: CheckReport,
    found: Found,
}

/// What step 2 leaves for the others.
struct Indexed {
    /// The reconcile: the listing of `packs/` and the gc state.
    rec: Reconciled,
    /// Every listed pack was indexed (none skipped as unreadable).
    rec_complete: bool,
    /// The record of damaged blobs, as applied to the index.
    recorded: damaged::Damaged,
    /// blob -> (its pack if that still exists, why), from the record.
    recorded_in: HashMap<BlobId, Vec<(Option<PackId>, String)>>,
    /// Blobs whose rows the record dropped.
    dropped_ids: HashSet<BlobId>,
    /// The index's packs by row id.
    packs: HashMap<i64, PackRow>,
}

/// Packs read whole by step 4: clean, and not.
#[derive(Default)]
struct Read {
    ok: Vec<PackId>,
    bad: Vec<PackId>,
}

impl Checking<'_> {
    /// Step 1: The config, keys, manifests, dictionaries and gc state decode.
    fn decode(&mut self) -> Result<(Listed, Dicts)> {
        let repo = self.repo;
        files(repo, &mut self.found)?;
        let (snapshots, bad) = crate::snapshot::list(repo)?;
        for e in bad {
            self.found.other("snapshot", e);
        }
        self.report.snapshots = snapshots.len() as u64;
        // Kept in the record, so every check warns until `snapshots` has.
        let vanished = crate::snapshot::vanished(repo)?;
        self.report.vanished_snapshots = vanished.iter().map(|i| i.to_hex()).collect();
        self.report
            .warnings
            .extend(crate::repo::seen::warning(&vanished));
        let dicts = crate::repo::dicts::load(repo)?;
        for e in &dicts.unreadable {
            self.found.other("dictionary", e);
        }
        Ok((snapshots, dicts))
    }

    /// Step 2: The index reconciled with the listing; sizes and trailers.
    fn index(&mut self, index: &mut Index, opts: &CheckOptions, dicts: &Dicts) -> Result<Indexed> {
        let repo = self.repo;
        let rec = index.reconcile(repo)?;
        let rec_complete = rec.warnings.is_empty();
        for e in &rec.state.unreadable {
            self.found.other("gc state", e);
        }
        self.report.packs = rec.listed.len() as u64;
        let recorded = self.recorded(index, opts, &rec.listed)?;
        let mut dropped: HashSet<(BlobId, PackId)> = HashSet::new();
        let mut recorded_in: HashMap<BlobId, Vec<(Option<PackId>, String)>> = HashMap::new();
        for (b, p, e) in recorded.entries() {
            let p = p.filter(|p| rec.listed.contains_key(*p)).copied();
            if let Some(p) = p {
                dropped.insert((*b, p));
            }
            recorded_in
                .entry(*b)
                .or_default()
                .push((p, format!("recorded damaged: {}", e.detail)));
        }
        let dropped_ids: HashSet<BlobId> = recorded.entries().map(|(b, _, _)| *b).collect();
        let packs: HashMap<i64, PackRow> =
            index.packs()?.into_iter().map(|p| (p.rowid, p)).collect();
        self.sizes(index, &packs, &rec.listed)?;
        trailers(repo, index, &packs, &rec.listed, &dropped, &mut self.found)?;
        let compressed_2: i64 = index.conn().query_row(
            "SELECT count(*) FROM blobs WHERE compression = 2",
            [],
            |r| r.get(0),
        )?;
        if compressed_2 > 0 && dicts.is_empty() {
            self.found.other(
                "dicts/",
                format!(
                    "{compressed_2} blobs are compressed with a dictionary, and dicts/ holds \
                     none that reads"
                ),
            );
        }
        Ok(Indexed {
            rec,
            rec_complete,
            recorded,
            recorded_in,
            dropped_ids,
            packs,
        })
    }

    /// The record of damaged blobs, applied: their rows leave the index
    /// (again, after a rebuild). With read-data, a recorded pack whose
    /// bytes hash to its name again (restored from a copy, a bad read) is
    /// cleared first, so that its rows are back before the trees are
    /// walked (check.md "Damaged blobs").
    fn recorded(
        &mut self,
        index: &mut Index,
        opts: &CheckOptions,
        listed: &HashMap<PackId, u64>,
    ) -> Result<damaged::Damaged> {
        let repo = self.repo;
        let mut recorded = match damaged::Damaged::load(repo) {
            Ok(d) => d,
            Err(e) => {
                self.report.warnings.push(e.to_string());
                damaged::Damaged::default()
            }
        };
        if opts.read_data.is_some() && !recorded.is_empty() {
            let mut again: Vec<PackId> = recorded
                .entries()
                .filter_map(|(_, p, _)| p.copied())
                .filter(|p| listed.contains_key(p))
                .collect();
            again.sort();
            again.dedup();
            let intact: Vec<PackId> = again
                .into_par_iter()
                .filter(|p| {
                    let size = listed.get(p).copied().unwrap_or(0);
                    data::verify_pack(repo, p, size, &[], Arc::new(AtomicU64::new(0))).is_clean()
                })
                .collect();
            if !intact.is_empty() {
                damaged::forget_packs(repo, &intact)?;
                index.remove_packs(&intact)?;
                index.reconcile(repo)?;
                recorded = damaged::Damaged::load(repo)?;
            }
        }
        recorded.apply(index)?;
        Ok(recorded)
    }

    /// Every indexed pack exists, with the size the index records.
    fn sizes(
        &mut self,
        index: &Index,
        packs: &HashMap<i64, PackRow>,
        listed: &HashMap<PackId, u64>,
    ) -> Result<()> {
        for p in packs.values() {
            let size = listed.get(&p.id);
            if p.missing {
                self.found.pack(
                    &p.id,
                    "missing: the index lists it, but there is no such file (and gc did not \
                     delete it)",
                );
            } else if let Some(&s) = size.filter(|s| **s != p.size) {
                self.found.pack(
                    &p.id,
                    format!(
                        "{s} bytes on storage, {} in the index: truncated or damaged",
                        p.size
                    ),
                );
            } else {
                continue;
            }
            for b in index.blobs_of(p.rowid)? {
                self.found.blob(&p.id, &b.id, "in this pack");
                if p.missing {
                    self.found
                        .record
                        .push((b.id, Some(p.id), "its pack is missing".into()));
                }
            }
        }
        Ok(())
    }
}

impl Checking<'_> {
    /// Step 3: Every tree reachable from a snapshot (or from one forgotten
    /// within the grace period) reads, and every blob it references is in
    /// a pack; packs holding none are listed.
    fn reach(
        &mut self,
        index: &Index,
        reader: &BlobReader,
        snapshots: &Listed,
        ix: &Indexed,
        progress: &Progress,
    ) -> Result<()> {
        let mut roots: Vec<BlobId> = snapshots.iter().map(|(_, s)| s.tree).collect();
        let grace = crate::repo::gcstate::grace_from_env()?;
        let due_before = crate::sys::now_ns()
            .saturating_sub(i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX));
        for (tree, since) in ix.rec.state.forgotten.values() {
            if *since > due_before {
                roots.extend(tree);
            }
        }
        roots.sort();
        roots.dedup();
        let marked = mark::mark_all(reader, &roots, &progress.mark)?;
        self.report.trees = marked.trees;
        for (tree, e) in &marked.unreadable {
            pinpoint(reader, tree, e, &mut self.found)?;
        }
        index.conn().execute(
            "ATTACH DATABASE ?1 AS m",
            [marked.path().to_string_lossy().as_ref()],
        )?;
        let mut used: HashSet<i64> = HashSet::new();
        let reach = plan::for_each_reachable(index.conn(), &mut |id, rows| {
            self.report.blobs += 1;
            match plan::choose(rows, &ix.packs) {
                Some((row, _)) => {
                    used.insert(row.pack);
                }
                None if rows.is_empty() => self.unstored(id, ix),
                None => {
                    for r in rows {
                        if let Some(p) = ix.packs.get(&r.pack) {
                            self.found.blob(&p.id, &id, "in this pack");
                        }
                    }
                }
            }
            Ok(())
        });
        index.conn().execute_batch("DETACH DATABASE m")?;
        reach?;
        // A recorded tree that does not read (pinpoint) counts as recorded.
        let recorded_missing: Vec<BlobId> = self
            .found
            .missing
            .iter()
            .filter(|b| ix.recorded_in.contains_key(b))
            .copied()
            .collect();
        for b in recorded_missing {
            self.found.missing.remove(&b);
            self.found
                .recorded
                .entry(None)
                .or_default()
                .push((b, "recorded damaged; its pack is gone".into()));
        }
        drop(marked);
        let mut unreferenced: Vec<PackId> = ix
            .packs
            .values()
            .filter(|p| !used.contains(&p.rowid) && p.condemned.is_none() && !p.missing)
            .map(|p| p.id)
            .collect();
        unreferenced.sort();
        self.report.unreferenced_packs = unreferenced.iter().map(|p| p.to_hex()).collect();
        Ok(())
    }

    /// A reachable blob in no pack: recorded damaged earlier, or missing.
    fn unstored(&mut self, id: BlobId, ix: &Indexed) {
        match ix.recorded_in.get(&id) {
            Some(copies) => {
                for (p, why) in copies {
                    self.found
                        .recorded
                        .entry(*p)
                        .or_default()
                        .push((id, why.clone()));
                }
            }
            None => {
                self.found.missing.insert(id);
                // only when every listed pack was indexed (a pack skipped
                // as unreadable may hold it) and no recorded entry dropped
                // its rows in this run
                if ix.rec_complete && !ix.dropped_ids.contains(&id) {
                    self.found.record.push((id, None, "in no pack".into()));
                }
            }
        }
    }

    /// Step 4: With read-data, read the packs it selects whole, on every core.
    fn read(
        &mut self,
        index: Index,
        opts: &CheckOptions,
        ix: &Indexed,
        st: &state::CheckState,
        now: i64,
        progress: &Progress,
    ) -> Result<Read> {
        let Some(subset) = opts.read_data else {
            return Ok(Read::default());
        };
        let mut all: Vec<(PackId, u64)> = ix.rec.listed.iter().map(|(p, s)| (*p, *s)).collect();
        all.sort();
        let verified = st.verified_map();
        let fresh_after = opts
            .max_age
            .map(|a| now.saturating_sub(i64::try_from(a.as_secs()).unwrap_or(i64::MAX)));
        let todo = select::select(&all, subset, opts.order, &verified, fresh_after, &seed()?);
        let recent = match fresh_after {
            Some(after) => all
                .iter()
                .filter(|(p, _)| verified.get(p).is_some_and(|t| *t > after))
                .count(),
            None => 0,
        };
        let rowids: HashMap<PackId, i64> = ix.packs.values().map(|p| (p.id, p.rowid)).collect();
        let (figures, read) =
            read_data(self.repo, index, &rowids, &todo, progress, &mut self.found)?;
        let mut out = Read::default();
        for (p, clean) in read {
            if clean { &mut out.ok } else { &mut out.bad }.push(p);
        }
        self.report.read_data = Some(ReadData {
            packs_selected: todo.len() as u64,
            packs_recent: recent as u64,
            ..figures
        });
        Ok(out)
    }

    /// A pack recorded damaged that read-data found intact (its hash is
    /// its name: every byte as written) was damaged in passing (restored
    /// from a copy, a bad read): its entries go and its rows come back.
    /// Then the record of damaged blobs, for the next backup and `repair`.
    fn settle(&mut self, ix: &Indexed, ok_packs: &[PackId]) -> Result<()> {
        let repo = self.repo;
        let intact: Vec<PackId> = ok_packs
            .iter()
            .filter(|p| ix.recorded.entries().any(|(_, q, _)| q == Some(*p)))
            .copied()
            .collect();
        self.found
            .recorded
            .retain(|p, _| p.is_none_or(|p| !intact.contains(&p)));
        // Nothing in a pack found intact is damaged: a tree that did not
        // read because its rows were dropped for such a pack is not
        // recorded again.
        let verified_ok: HashSet<PackId> = ok_packs.iter().copied().collect();
        self.found
            .record
            .retain(|(_, p, _)| p.is_none_or(|p| !verified_ok.contains(&p)));
        let now_recorded = if intact.is_empty() {
            None
        } else {
            damaged::forget_packs(repo, &intact)?;
            let mut index = repo.index()?;
            index.remove_packs(&intact)?;
            index.reconcile(repo)?;
            Some(damaged::Damaged::load(repo)?)
        };
        let recorded = now_recorded.as_ref().unwrap_or(&ix.recorded);
        if !self.found.record.is_empty() || !recorded.is_empty() {
            let index = repo.index()?;
            let listed = &ix.rec.listed;
            if let Err(e) = damaged::record(repo, &index, &self.found.record, &|p| {
                listed.contains_key(p)
            }) {
                self.report
                    .warnings
                    .push(format!("damaged blobs not recorded: {e}"));
            }
        }
        Ok(())
    }

    /// Step 5: Who uses what is damaged, and the problems.
    fn uses(&mut self, reader: &BlobReader, snapshots: &Listed) {
        let found = &mut self.found;
        let mut damaged = found.damaged();
        damaged.extend(found.recorded.values().flatten().map(|(b, _)| *b));
        let uses = if damaged.is_empty() {
            BTreeMap::new()
        } else {
            usage::find(reader, snapshots, &damaged)
        };
        for (p, blobs) in std::mem::take(&mut found.recorded) {
            for (b, why) in blobs.into_iter().filter(|(b, _)| uses.contains_key(b)) {
                match &p {
                    Some(p) => found.blob(p, &b, why),
                    None => {
                        found.missing.insert(b);
                    }
                }
            }
        }
        self.report.problems = problems(std::mem::take(found), &uses);
    }
}
