//! The steps of a policy run after the sources (`super`, `policy::run`): the
//! policy stored in the repository, forget, gc, sync and check, each when
//! configured and due. Each returns its status and a one-line detail; the
//! exclusive lock of forget and gc is taken once, and a lock held by another process is a warning (the step
//! runs next time), not a failure.

use super::{Ended, Runner, Status, StepOutcome, outcome};
use crate::error::Error;
use crate::maint::forget::{self, ForgetOptions};
use crate::maint::gc::{self, GcOptions};
use crate::repo::lock::{Lock, LockKind};
use std::time::Instant;

/// 2-5. forget, gc, sync, check; the state is saved after forget and gc.
pub(super) fn run(r: &mut Runner<'_>) -> Vec<StepOutcome> {
    let mut steps = Vec::new();
    if r.repo.is_write_only() {
        // write-only.md: a write-only key backs up and copies offsite;
        // everything else reads or deletes, and is a full key's to run.
        for step in ["policy", "forget", "gc"] {
            steps.push(timed(r, |_| (step, Status::Skipped, WRITE_ONLY.into())));
        }
        steps.push(timed(r, sync_step));
        for step in ["check", "offsite-check", "heal", "drill"] {
            steps.push(timed(r, |_| (step, Status::Skipped, WRITE_ONLY.into())));
        }
        return steps;
    }
    // issue 22: the policy itself, for `recover --from` on a bare machine
    steps.push(timed(r, policy_step));
    let mut exclusive: Option<Lock> = None;
    steps.push(timed(r, |r| forget_step(r, &mut exclusive)));
    r.save();
    steps.push(timed(r, |r| gc_step(r, &mut exclusive)));
    r.save();
    drop(exclusive);
    steps.push(timed(r, sync_step));
    steps.push(timed(r, check_step));
    // issue 24: the offsite copy checked, both copies healed, drills
    steps.push(timed(r, super::heal::offsite_check_step));
    steps.push(timed(r, super::heal::heal_step));
    steps.push(timed(r, drill_step));
    steps
}

/// The detail of a step a write-only key does not run (not a failure).
const WRITE_ONLY: &str = "write-only key";

/// Run a step, time it, log it.
fn timed(r: &mut Runner<'_>, f: impl FnOnce(&mut Runner<'_>) -> Ended) -> StepOutcome {
    let t = Instant::now();
    let (step, status, detail) = f(r);
    let secs = t.elapsed().as_secs_f64();
    r.log.line((step, "-"), status, &detail, None, secs);
    StepOutcome {
        step,
        status,
        detail,
        duration_seconds: secs,
    }
}

/// The exclusive lock for forget and gc, taken once.
fn exclusive_lock<'l>(
    r: &Runner<'_>,
    held: &'l mut Option<Lock>,
) -> std::result::Result<&'l Lock, (Status, String)> {
    if held.is_none() {
        match r.session.lock(&r.repo, LockKind::Exclusive) {
            Ok(l) => *held = Some(l),
            Err(e @ Error::RepoLocked(_)) => {
                return Err((Status::Warnings, format!("not run, will retry: {e}")));
            }
            Err(e) => return Err((Status::Failed, e.to_string())),
        }
    }
    held.as_ref()
        .ok_or_else(|| (Status::Failed, "no lock".to_string()))
}

/// Store the policy file in the repository when it changed
/// (`policy::recover::stored`).
fn policy_step(r: &mut Runner<'_>) -> Ended {
    match crate::policy::recover::stored::run_step(r.session, &r.repo, r.cfg) {
        Ok(detail) => ("policy", Status::Ok, detail),
        Err(e) => ("policy", Status::Failed, e),
    }
}

fn forget_step(r: &mut Runner<'_>, lock: &mut Option<Lock>) -> Ended {
    const STEP: &str = "forget";
    let (cfg, now) = (r.cfg, r.started);
    if cfg.retention.is_empty() {
        return (STEP, Status::Skipped, "no [retention] in the config".into());
    }
    if !r.st.forget.due(cfg.cadence.forget, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let l = match exclusive_lock(r, lock) {
        Ok(l) => l,
        Err((status, msg)) => return (STEP, status, msg),
    };
    let tz = jiff::tz::TimeZone::system();
    let mut removed = 0u64;
    let mut errors = Vec::new();
    // threat-model.md "Rollback and deletion": no forget while snapshots
    // this machine saw are gone unexplained.
    let guard = crate::maint::vanished::guard(&r.repo, "forget", false);
    for s in cfg.sources.iter().filter(|_| guard.is_ok()) {
        let opts = ForgetOptions {
            policy: cfg.retention.clone(),
            filter: crate::snapshot::Filter {
                tags: vec![s.name.clone()],
                ..Default::default()
            },
            // write-only.md "Retention under attack": a write-only key's
            // snapshots never share a bucket with another key's
            group_by: forget::GroupBy {
                key: true,
                ..Default::default()
            },
            allow_empty: false,
        };
        let done = forget::plan(&r.repo, &opts, crate::sys::now_ns(), &tz)
            .and_then(|groups| forget::apply(&r.repo, l, &groups));
        match done {
            Ok(n) => removed += n,
            Err(e) => errors.push(format!("{}: {e}", s.name)),
        }
    }
    if let Err(e) = guard {
        errors.push(e.to_string());
    }
    r.st.forgotten_since_gc += removed;
    let detail = format!("removed {removed} snapshots");
    if errors.is_empty() {
        r.st.forget.record(now, Ok(removed.to_string()));
        (STEP, Status::Ok, detail)
    } else {
        let e = format!("{detail}; {}", errors.join("; "));
        r.st.forget.record(now, Err(e.clone()));
        (STEP, Status::Failed, e)
    }
}

fn gc_step(r: &mut Runner<'_>, lock: &mut Option<Lock>) -> Ended {
    const STEP: &str = "gc";
    let (cfg, now) = (r.cfg, r.started);
    let min = u64::from(cfg.gc.min_forgotten);
    if r.st.forgotten_since_gc < min {
        return (
            STEP,
            Status::Skipped,
            format!(
                "{} snapshots forgotten since the last gc (gc.min_forgotten = {min})",
                r.st.forgotten_since_gc
            ),
        );
    }
    let every = cfg
        .cadence
        .gc
        .or(Some(std::time::Duration::from_secs(86_400)));
    if !r.st.gc.due(every, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let l = match exclusive_lock(r, lock) {
        Ok(l) => l,
        Err((status, msg)) => return (STEP, status, msg),
    };
    let grace = match cfg.gc.grace {
        Some(g) => Ok(g),
        None => crate::repo::gcstate::grace_from_env(),
    };
    let done = grace.and_then(|grace| {
        let opts = GcOptions {
            dry_run: false,
            max_unused: cfg.gc.max_unused,
            max_repack: cfg.gc.max_repack,
            grace,
            acknowledge_missing: false,
        };
        gc::run(&r.repo, &opts, l, &gc::Progress::default())
    });
    let rep = match done {
        Ok(rep) => rep,
        Err(e) => {
            r.st.gc.record(now, Err(e.to_string()));
            return (STEP, Status::Failed, e.to_string());
        }
    };
    r.st.forgotten_since_gc = 0;
    let detail = format!(
        "freed {} bytes now ({} packs), {} bytes condemned for a later gc",
        rep.deleted.bytes, rep.deleted.packs, rep.pending_free
    );
    r.st.gc.record(now, Ok(detail.clone()));
    if rep.warnings.is_empty() {
        (STEP, Status::Ok, detail)
    } else {
        let detail = format!("{detail}; {}", rep.warnings.join("; "));
        (STEP, Status::Warnings, detail)
    }
}

/// Copy the repository to `offsite` when due (`strata sync`, without
/// `--delete`: packs that gc removed here stay offsite until a
/// `strata sync --delete` run by hand; format-spec/sync.md).
fn sync_step(r: &mut Runner<'_>) -> Ended {
    const STEP: &str = "sync";
    let (cfg, now) = (r.cfg, r.started);
    let Some(offsite) = &cfg.offsite else {
        return (STEP, Status::Skipped, "no offsite in the config".into());
    };
    if !r.st.sync.due(cfg.cadence.sync, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let progress = crate::sync::Progress::default();
    let outcome = crate::backend::open_locked(offsite, cfg.offsite_lock)
        .map_err(crate::Error::from)
        .and_then(|dst| {
            let done = crate::sync::run(
                &**r.repo.store(),
                &*dst,
                &crate::sync::SyncOptions::default(),
                &mut crate::repo::no_credentials,
                &progress,
            )?;
            crate::sync::layout::local_layout(offsite)?;
            Ok(done)
        });
    let result = match outcome {
        Ok(s) if s.errors == 0 => Ok(format!(
            "{offsite}: {} files ({} bytes) copied, {} already there",
            s.copied.objects, s.copied.bytes, s.skipped.objects
        )),
        Ok(s) => Err(format!(
            "{offsite}: {} errors: {}",
            s.errors,
            s.error_messages.first().cloned().unwrap_or_default()
        )),
        Err(e) => Err(format!("{offsite}: {e}")),
    };
    r.st.sync.record(now, result.clone());
    match result {
        Ok(msg) => (STEP, Status::Ok, msg),
        Err(msg) => (STEP, Status::Failed, msg),
    }
}

/// `check` per `[verification]` when due: the structure, and with
/// `read_data_subset` that share of the packs, those verified longest ago
/// first (so `"1/7"` daily covers every pack within a week), under a
/// shared lock. The verification times and the result go to the check
/// state (maint/check/state.rs), which `status` reads.
fn check_step(r: &mut Runner<'_>) -> Ended {
    use crate::maint::check::{self, CheckOptions, Order, Subset};
    const STEP: &str = "check";
    let (cfg, now) = (r.cfg, r.started);
    let Some(v) = &cfg.verification else {
        return (
            STEP,
            Status::Skipped,
            "no [verification] in the config".into(),
        );
    };
    let every = cfg
        .cadence
        .check
        .or(Some(std::time::Duration::from_secs(86_400)));
    if !r.st.check.due(every, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let read_data = match v.read_data_subset.as_deref().map(Subset::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return (STEP, Status::Failed, e),
    };
    let _lock = match r.session.lock(&r.repo, LockKind::Shared) {
        Ok(l) => l,
        Err(e @ Error::RepoLocked(_)) => {
            return (STEP, Status::Warnings, format!("not run, will retry: {e}"));
        }
        Err(e) => return (STEP, Status::Failed, e.to_string()),
    };
    let opts = CheckOptions {
        read_data,
        order: Order::Oldest,
        max_age: None,
    };
    let (status, detail) = outcome(check::run(&r.repo, &opts, &check::Progress::default()));
    let outcome = match status {
        Status::Ok => Ok(detail.clone()),
        _ => Err(detail.clone()),
    };
    r.st.check.record(now, outcome);
    (STEP, status, detail)
}

/// Drill the sources whose last drill is `[cadence] drill` old or more
/// (`policy::drill`): each restored, verified, into a scratch place and
/// timed. A failed or slow drill fails the step (so the run's webhook
/// carries it); with none due, drills that are older than twice the
/// cadence, failed or slow fail it too.
fn drill_step(r: &mut Runner<'_>) -> Ended {
    use crate::policy::drill::{self, DrillOptions, record};
    const STEP: &str = "drill";
    let (cfg, now) = (r.cfg, r.started);
    let Some(every) = cfg.cadence.drill else {
        return (
            STEP,
            Status::Skipped,
            "no [cadence] drill in the config".into(),
        );
    };
    let (rec, _) = match super::state::dir(&r.repo.config().repo_id) {
        Some(d) => record::DrillRecord::load(&d),
        None => Default::default(),
    };
    let due: Vec<String> = cfg
        .sources
        .iter()
        .filter(|s| record::due(every, rec.sources.get(&s.name), now))
        .map(|s| s.name.clone())
        .collect();
    if due.is_empty() {
        let problems: Vec<String> = cfg
            .sources
            .iter()
            .filter_map(|s| record::problem(cfg, s, rec.sources.get(&s.name), now))
            .collect();
        if problems.is_empty() {
            return (STEP, Status::Skipped, "not due".into());
        }
        return (STEP, Status::Failed, problems.join("; "));
    }
    let events = r.repo.events().clone();
    let sum = drill::run(
        r.session,
        &r.repo,
        cfg,
        &DrillOptions { sources: due },
        &events,
    );
    if !sum.ok {
        return (STEP, Status::Failed, sum.problems.join("; "));
    }
    let slowest = sum
        .sources
        .iter()
        .max_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .map(|s| format!(" (slowest: {} in {:.1}s)", s.source, s.seconds))
        .unwrap_or_default();
    (
        STEP,
        Status::Ok,
        format!(
            "{} sources restored and verified in {:.1}s{slowest}",
            sum.sources.len(),
            sum.duration_seconds
        ),
    )
}
