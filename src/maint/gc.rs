//! `strata gc`: mark, plan, repack, condemn, delete — each step after the
//! one before it is durable (format-spec/gc.md "The gc run", GC-1..GC-5).
//! Runs under the exclusive lock; the two-phase delete keeps concurrent
//! backups safe even when locks fail.

use super::mark::{self, MarkProgress};
use super::plan::{self, Limits, MaxUnused, Plan};
use super::repack;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::PackRow;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::gcstate::{self, GcState};
use crate::repo::lock::Lock;
use crate::snapshot;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Validated options of `strata gc`.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Plan and report only.
    pub dry_run: bool,
    /// `--max-unused`.
    pub max_unused: MaxUnused,
    /// `--max-repack`; `None` = unlimited.
    pub max_repack: Option<u64>,
    /// How long a pack stays condemned before it is deleted.
    pub grace: Duration,
    /// Run although snapshots this machine saw are gone unexplained, and
    /// accept their loss (maint/vanished.rs).
    pub acknowledge_missing: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            max_unused: MaxUnused::Percent(5.0),
            max_repack: None,
            grace: gcstate::DEFAULT_GRACE,
            acknowledge_missing: false,
        }
    }
}

/// A number of packs and their bytes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Packs {
    /// Pack files.
    pub packs: u64,
    /// Their size in bytes.
    pub bytes: u64,
}

/// What gc did (or, with `--dry-run`, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// Snapshots marked from.
    pub snapshots: u64,
    /// Removed snapshots still protected (within the grace period).
    pub forgotten_roots: u64,
    /// Distinct trees reached.
    pub trees: u64,
    /// Distinct blobs reachable.
    pub reachable_blobs: u64,
    /// Their stored bytes.
    pub reachable_bytes: u64,
    /// Every pack before gc.
    pub total: Packs,
    /// Unused packs condemned now (deleted by a later gc).
    pub condemned: Packs,
    /// Partly used packs rewritten (and condemned).
    pub repacked: Packs,
    /// New packs written by the repack.
    pub written: Packs,
    /// Packs deleted now: space freed.
    pub deleted: Packs,
    /// Condemned packs not yet due.
    pub still_condemned: Packs,
    /// Condemned packs a snapshot needs again.
    pub recovered: Packs,
    /// Partly used packs left as they are.
    pub kept_partial: Packs,
    /// Bytes a later gc frees (condemned now, repacked now, still condemned).
    pub pending_free: u64,
    /// The grace period (seconds).
    pub grace_secs: u64,
    /// `tmp/` files removed.
    pub tmp_removed: u64,
    /// Snapshots this machine saw that were gone, accepted as lost with
    /// `acknowledge_missing` (hex ids).
    pub acknowledged_missing: Vec<String>,
    /// Problems that did not stop gc.
    pub warnings: Vec<String>,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident memory of the process (bytes), where known.
    pub peak_rss_bytes: Option<u64>,
}

/// Live counters for progress.
pub type Progress = MarkProgress;

/// Run gc under `lock` (exclusive).
pub fn run(repo: &Repo, opts: &GcOptions, lock: &Lock, progress: &Progress) -> Result<GcReport> {
    let started = std::time::Instant::now();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        grace_secs: opts.grace.as_secs(),
        ..GcReport::default()
    };
    // Before anything: snapshots hidden by the storage would lose their
    // data here (threat-model.md "Rollback and deletion").
    report.acknowledged_missing = super::vanished::guard(repo, "gc", opts.acknowledge_missing)?
        .iter()
        .map(|i| i.to_hex())
        .collect();
    // 1. No other writer holds a lock: old tmp/ files are leftovers.
    if !opts.dry_run {
        let age = opts.grace.min(Duration::from_secs(3600));
        report.tmp_removed = repo.clean_tmp_older(age)? as u64;
    }
    // 2. The snapshots first, then the index: every pack a listed snapshot
    // needs was durable before its manifest (INV-4), so the reconcile below
    // sees it. `now` is taken before the listing: a pack is due only if it
    // was condemned a grace period before the snapshots were listed.
    let now = crate::sys::now_ns();
    let due_before = now.saturating_sub(i64::try_from(opts.grace.as_nanos()).unwrap_or(i64::MAX));
    let mut roots = snapshot_roots(repo, &mut report)?;
    // 3. Reconcile: new packs indexed, gone packs dropped, gc state loaded;
    // trees forgotten within the grace period are roots too.
    let mut index = repo.index()?;
    let rec = index.reconcile(repo)?;
    report.warnings.extend(rec.warnings);
    for (tree, since) in rec.state.forgotten.values() {
        if *since > due_before {
            report.forgotten_roots += 1;
            roots.extend(tree);
        }
    }
    roots.sort();
    roots.dedup();
    // 4. Mark.
    let reader = BlobReader::new(repo)?.without_cache_puts();
    let marked = mark::mark(&reader, &roots, progress)?;
    report.trees = marked.trees;
    index.conn().execute(
        "ATTACH DATABASE ?1 AS m",
        [marked.path().to_string_lossy().as_ref()],
    )?;
    // The mark database is scratch (deleted when gc ends, rebuilt by a
    // rerun): no journal and no fsync for it. Pragmas are per connection
    // and schema; those set when mark created it do not carry over to this
    // ATTACH, and without these every row written below was a durable
    // transaction of its own (4 fsyncs each; benches/GC_RESULTS.md).
    index
        .conn()
        .execute_batch("PRAGMA m.journal_mode = OFF; PRAGMA m.synchronous = OFF;")?;
    // 5. Plan.
    let packs: HashMap<i64, PackRow> = index.packs()?.into_iter().map(|p| (p.rowid, p)).collect();
    let acc = plan::account(index.conn(), &packs)?;
    if acc.missing_count > 0 {
        return Err(missing(&acc.missing, acc.missing_count));
    }
    report.reachable_blobs = acc.reachable;
    report.reachable_bytes = acc.reachable_bytes;
    let lim = Limits {
        max_unused: opts.max_unused,
        max_repack: opts.max_repack,
        due_before,
    };
    let plan = plan::plan(&packs, &acc, &lim);
    tally(&mut report, &plan, &packs, opts.grace.is_zero());
    if opts.dry_run {
        return Ok(finish(report, started));
    }
    let at = Times { now, due_before };
    let repacked = repack_step(repo, &mut index, lock, &packs, &plan, &mut report)?;
    let condemned = condemn_step(
        repo,
        lock,
        (&packs, &plan, &repacked),
        &rec.state,
        opts,
        at,
        &mut report,
    )?;
    // 8. The files this run read are superseded by the new state (GC-5):
    // removed before any pack is dropped or deleted, so that a run stopped
    // in 9–10 leaves no forgotten root whose data it deleted (`check`, and
    // a gc with a longer grace period, would find that data missing).
    lock.check()?;
    gcstate::remove_files(repo, &rec.state.files)?;
    crate::killpoint::reached("gc-5");
    // 9. Drop (GC-3), then 10. delete (GC-4).
    index.remove_packs(&condemned.delete)?;
    if !condemned.delete.is_empty() {
        crate::killpoint::reached("gc-3");
    }
    repo.remove_packs(&condemned.delete)?;
    index.set_condemned(&condemned.kept)?;
    Ok(finish(report, started))
}

/// When gc started, and the condemnation time before which a pack is due.
#[derive(Clone, Copy)]
struct Times {
    now: i64,
    due_before: i64,
}

/// 6. Repack (GC-1): new packs durable and indexed first.
fn repack_step(
    repo: &Repo,
    index: &mut crate::index::Index,
    lock: &Lock,
    packs: &HashMap<i64, PackRow>,
    plan: &Plan,
    report: &mut GcReport,
) -> Result<repack::Repacked> {
    lock.check()?;
    let set: HashSet<i64> = plan.repack.iter().copied().collect();
    let mut repacked = repack::Repacked::default();
    if !set.is_empty() {
        repack::list_copies(index, packs, &set)?;
        repacked = repack::repack(repo, index, packs, &plan.repack)?;
        crate::killpoint::reached("gc-1");
    }
    for (rowid, why) in &repacked.failed {
        let name = packs.get(rowid).map(|p| p.id.to_hex()).unwrap_or_default();
        report
            .warnings
            .push(format!("pack {name} not repacked (kept as it is): {why}"));
    }
    report.written = Packs {
        packs: repacked.packs_written,
        bytes: repacked.bytes_written,
    };
    report.repacked = sum(packs, &repacked.done);
    Ok(repacked)
}

/// What stays condemned, and what is deleted now.
struct Condemned {
    kept: BTreeMap<PackId, i64>,
    delete: Vec<PackId>,
}

/// 7. Condemn (GC-2): the new state, durable, before anything is dropped.
fn condemn_step(
    repo: &Repo,
    lock: &Lock,
    (packs, plan, repacked): (&HashMap<i64, PackRow>, &Plan, &repack::Repacked),
    read: &gcstate::State,
    opts: &GcOptions,
    Times { now, due_before }: Times,
    report: &mut GcReport,
) -> Result<Condemned> {
    let id = |r: &i64| packs.get(r).map(|p| p.id);
    let mut condemned: BTreeMap<PackId, i64> = BTreeMap::new();
    for r in &plan.carry {
        if let (Some(p), Some(since)) = (id(r), packs.get(r).and_then(|p| p.condemned)) {
            condemned.insert(p, since);
        }
    }
    let mut delete: Vec<PackId> = plan.delete.iter().filter_map(id).collect();
    let fresh = plan.condemn.iter().chain(&repacked.done).filter_map(id);
    if opts.grace.is_zero() {
        delete.extend(fresh);
    } else {
        condemned.extend(fresh.map(|p| (p, now)));
    }
    // Removed snapshots are kept as long as tombstones, so that another
    // host's record of seen snapshots can tell their removal from a
    // manifest hidden by the storage (maint/vanished.rs). Past this run's
    // grace period only the id is kept, without the tree: this run may
    // delete that tree's data, and a later run (or `check`) with a longer
    // grace period must not take it for a root.
    // Tombstones: an index elsewhere drops a deleted pack instead of
    // reporting it missing. The packs to delete stay condemned in the new
    // state too, in case this run dies before deleting them.
    let keep_after = now.saturating_sub(gcstate::TOMBSTONE_DAYS * 86_400 * 1_000_000_000);
    let forgotten: BTreeMap<_, _> = read
        .forgotten
        .iter()
        .filter(|(_, (_, since))| *since > keep_after)
        .map(|(k, &(tree, since))| (*k, (tree.filter(|_| since > due_before), since)))
        .collect();
    let mut deleted: BTreeMap<PackId, i64> = read
        .deleted
        .iter()
        .filter(|(_, at)| **at > keep_after)
        .map(|(k, v)| (*k, *v))
        .collect();
    let mut state_condemned = condemned.clone();
    for p in &delete {
        deleted.insert(*p, now);
        state_condemned.entry(*p).or_insert(now);
    }
    let state = GcState::new(&state_condemned, &forgotten, &deleted);
    lock.check()?;
    if !state.is_empty() {
        state.save(repo)?;
        crate::killpoint::reached("gc-2");
    }
    let size: HashMap<PackId, u64> = packs.values().map(|p| (p.id, p.size)).collect();
    let bytes =
        |ids: &mut dyn Iterator<Item = &PackId>| ids.filter_map(|p| size.get(p)).sum::<u64>();
    report.deleted = Packs {
        packs: delete.len() as u64,
        bytes: bytes(&mut delete.iter()),
    };
    report.pending_free = bytes(&mut condemned.keys());
    Ok(Condemned {
        kept: condemned,
        delete,
    })
}

/// The readable snapshots' root trees; an unreadable manifest stops gc
/// (format-spec/gc.md step 2), naming the command that removes it.
fn snapshot_roots(repo: &Repo, report: &mut GcReport) -> Result<Vec<BlobId>> {
    let (list, bad) = snapshot::list(repo)?;
    let named: Vec<String> = bad
        .iter()
        .filter_map(|e| match e {
            Error::Corrupt { object, .. } => object.strip_prefix("snapshots/"),
            _ => None,
        })
        .map(|hex| hex.chars().take(16).collect())
        .collect();
    if let Some(e) = snapshot::first_error(bad) {
        return Err(Error::Invalid(format!(
            "gc stopped: {e}; an unreadable snapshot may need any blob, so nothing was changed. \
             If the snapshot is lost (or was planted by the storage), remove it with \
             `strata forget {}`",
            if named.is_empty() {
                "ID".to_string()
            } else {
                named.join(" ")
            }
        )));
    }
    report.snapshots = list.len() as u64;
    Ok(list.iter().map(|(_, s)| s.tree).collect())
}

fn missing(first: &[BlobId], count: u64) -> Error {
    let ids: Vec<String> = first.iter().map(|b| b.short()).collect();
    Error::Invalid(format!(
        "gc stopped: {count} blob(s) that snapshots need are not in any pack (first: {}); \
         nothing was changed (run `strata check`)",
        ids.join(", ")
    ))
}

fn sum(packs: &HashMap<i64, PackRow>, rowids: &[i64]) -> Packs {
    let mut out = Packs::default();
    for r in rowids {
        if let Some(p) = packs.get(r) {
            out.packs += 1;
            out.bytes += p.size;
        }
    }
    out
}

/// The plan's figures; with a zero grace the newly unused packs count as
/// deleted now.
fn tally(report: &mut GcReport, plan: &Plan, packs: &HashMap<i64, PackRow>, instant: bool) {
    let all: Vec<i64> = packs.keys().copied().collect();
    report.total = sum(packs, &all);
    report.condemned = sum(packs, &plan.condemn);
    report.repacked = sum(packs, &plan.repack);
    report.deleted = sum(packs, &plan.delete);
    report.still_condemned = sum(packs, &plan.carry);
    report.recovered = sum(packs, &plan.recovered);
    report.kept_partial = sum(packs, &plan.keep_partial);
    if instant {
        report.deleted.packs += report.condemned.packs + report.repacked.packs;
        report.deleted.bytes += report.condemned.bytes + report.repacked.bytes;
    } else {
        report.pending_free =
            report.condemned.bytes + report.repacked.bytes + report.still_condemned.bytes;
    }
}

fn finish(mut report: GcReport, started: std::time::Instant) -> GcReport {
    report.seconds = started.elapsed().as_secs_f64();
    report.peak_rss_bytes = peak_rss();
    report
}

/// Peak resident set size of this process (`VmHWM`), Linux only.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
