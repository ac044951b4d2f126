//! The steps of a policy run that keep the offsite copy whole (issue 24),
//! after `check`:
//!
//! - **offsite-check**: `check --read-data-subset` of the offsite copy
//!   per `[verification] offsite_read_data_subset`, on its own cadence
//!   (`[cadence] offsite_check`, default daily), those packs verified
//!   longest ago first. Its records (verification times, damaged packs,
//!   `damaged.json`) are kept under the offsite's own location, apart
//!   from the primary's.
//! - **heal**: the two copies repair each other. A pack recorded damaged
//!   here is replaced by the offsite's copy if that one hashes to its
//!   name (`repair packs --from`, nothing salvaged); a pack recorded
//!   damaged offsite is copied again from here (`sync`, which replaces
//!   it). Skipped when neither end has a damaged pack recorded.

use super::{Ended, Runner, Status, outcome};
use crate::error::Error;
use crate::id::PackId;
use crate::repo::lock::LockKind;
use std::collections::BTreeSet;

/// `check --read-data-subset` of the offsite copy, when configured and due.
pub(super) fn offsite_check_step(r: &mut Runner<'_>) -> Ended {
    use crate::maint::check::{self, CheckOptions, Order, Subset};
    const STEP: &str = "offsite-check";
    let (cfg, now) = (r.cfg, r.started);
    let subset = cfg
        .verification
        .as_ref()
        .and_then(|v| v.offsite_read_data_subset.as_deref());
    let (Some(offsite), Some(subset)) = (&cfg.offsite, subset) else {
        return (
            STEP,
            Status::Skipped,
            "no [verification] offsite_read_data_subset in the config".into(),
        );
    };
    let every = cfg
        .cadence
        .offsite_check
        .or(Some(crate::policy::config::DAY));
    if !r.st.offsite_check.due(every, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let read_data = match Subset::parse(subset) {
        Ok(s) => s,
        Err(e) => return (STEP, Status::Failed, e),
    };
    let events = r.repo.events().clone();
    let at = r.session.at(std::path::PathBuf::from(offsite));
    let off = match at.open(&events) {
        Ok(o) => o.repo,
        Err(e) => {
            let msg = format!("{offsite}: {e}");
            r.st.offsite_check.record(now, Err(msg.clone()));
            return (STEP, Status::Failed, msg);
        }
    };
    // a locked offsite (`offsite_lock`) is checked without a lock: a lock
    // file is written and then deleted, and a put-only credential cannot
    // delete (format-spec/sync.md "Object Lock")
    let lock = match r.cfg.offsite_lock {
        Some(_) => Ok(crate::repo::lock::Lock::none()),
        None => at.lock(&off, LockKind::Shared),
    };
    let _lock = match lock {
        Ok(l) => l,
        Err(e @ Error::RepoLocked(_)) => {
            return (STEP, Status::Warnings, format!("not run, will retry: {e}"));
        }
        Err(e) => return (STEP, Status::Failed, format!("{offsite}: {e}")),
    };
    let opts = CheckOptions {
        read_data: Some(read_data),
        order: Order::Oldest,
        max_age: None,
    };
    let (status, detail) = outcome(check::run(&off, &opts, &check::Progress::default()));
    let detail = format!("{offsite}: {detail}");
    let result = match status {
        Status::Ok => Ok(detail.clone()),
        _ => Err(detail.clone()),
    };
    r.st.offsite_check.record(now, result);
    (STEP, status, detail)
}

/// The packs recorded damaged at the primary: by `check` and `repair`
/// (`damaged.json`) and by read-data (the check state), still listed.
fn damaged_here(r: &Runner<'_>) -> crate::Result<Vec<PackId>> {
    use crate::maint::check::state;
    let repo = &r.repo;
    let mut set: BTreeSet<PackId> = crate::maint::repair::damaged::packs_in(repo.index_dir());
    if let Some(p) = state::path(&repo.config().repo_id, repo.name()) {
        set.extend(state::CheckState::load(&p).0.damaged_packs());
    }
    if set.is_empty() {
        return Ok(Vec::new());
    }
    let listed: BTreeSet<String> = repo
        .list_files("packs")?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    Ok(set
        .into_iter()
        .filter(|p| listed.contains(&p.to_hex()))
        .collect())
}

/// The packs recorded damaged at the offsite copy `offsite`.
fn damaged_offsite(r: &Runner<'_>, offsite: &str) -> BTreeSet<PackId> {
    use crate::maint::check::state;
    let id = &r.repo.config().repo_id;
    let mut set = BTreeSet::new();
    if let Some(d) = crate::maint::repair::damaged::index_dir_at(id, offsite) {
        set.extend(crate::maint::repair::damaged::packs_in(&d));
    }
    if let Some(p) = state::path(id, offsite) {
        set.extend(state::CheckState::load(&p).0.damaged_packs());
    }
    set
}

/// Heal each copy from the other (module doc).
pub(super) fn heal_step(r: &mut Runner<'_>) -> Ended {
    const STEP: &str = "heal";
    let Some(offsite) = r.cfg.offsite.clone() else {
        return (STEP, Status::Skipped, "no offsite in the config".into());
    };
    let here = match damaged_here(r) {
        Ok(h) => h,
        Err(e) => return (STEP, Status::Failed, e.to_string()),
    };
    let there = damaged_offsite(r, &offsite);
    if here.is_empty() && there.is_empty() {
        return (
            STEP,
            Status::Skipped,
            "no damaged pack recorded at either end".into(),
        );
    }
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    if !here.is_empty() {
        match restore_here(r, &offsite, &here) {
            Ok(d) => done.push(d),
            Err(e) => errors.push(e),
        }
    }
    if !there.is_empty() {
        match resync(r, &offsite) {
            Ok(d) => done.push(d),
            Err(e) => errors.push(e),
        }
    }
    let detail = done
        .into_iter()
        .chain(errors.iter().cloned())
        .collect::<Vec<_>>();
    let status = if errors.is_empty() {
        Status::Ok
    } else {
        Status::Failed
    };
    (STEP, status, detail.join("; "))
}

/// Replace `packs` here by the offsite's intact copies.
fn restore_here(r: &Runner<'_>, offsite: &str, packs: &[PackId]) -> Result<String, String> {
    let other = crate::backend::open(offsite).map_err(|e| format!("{offsite}: {e}"))?;
    let _lock = r
        .session
        .lock(&r.repo, LockKind::Shared)
        .map_err(|e| e.to_string())?;
    let (done, not) = crate::maint::repair::from::restore_from(&r.repo, &*other, packs)
        .map_err(|e| e.to_string())?;
    let mut msg = format!(
        "{} of {} damaged packs here replaced by the intact copies at {offsite}",
        done.len(),
        packs.len()
    );
    if !not.is_empty() {
        let why: Vec<String> = not
            .iter()
            .map(|(p, why)| format!("pack {}: {why}", p.short()))
            .collect();
        msg.push_str(&format!(
            "; not replaced: {} (`strata repair packs` salvages what it can)",
            why.join(", ")
        ));
        return Err(msg);
    }
    Ok(msg)
}

/// Sync to the offsite copy, which copies its damaged packs again.
fn resync(r: &Runner<'_>, offsite: &str) -> Result<String, String> {
    let dst = crate::backend::open_locked(offsite, r.cfg.offsite_lock)
        .map_err(|e| format!("{offsite}: {e}"))?;
    let s = crate::sync::run(
        &**r.repo.store(),
        &*dst,
        &crate::sync::SyncOptions::default(),
        &mut crate::repo::no_credentials,
        &crate::sync::Progress::default(),
    )
    .map_err(|e| format!("{offsite}: {e}"))?;
    if s.errors > 0 {
        return Err(format!(
            "{offsite}: {} errors copying damaged packs again: {}",
            s.errors,
            s.error_messages.first().cloned().unwrap_or_default()
        ));
    }
    Ok(format!(
        "{} damaged packs at {offsite} copied again from here",
        s.replaced.objects
    ))
}
