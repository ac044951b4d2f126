//! `status`'s view of a locked offsite copy (`offsite_lock`,
//! format-spec/sync.md "Object Lock"): the earliest Object Lock expiry
//! among the objects the repository still needs there (its packs and
//! manifests, as listed here: what its gc has not deleted), read by one
//! HEAD each at the offsite. A problem when it is less than a week away,
//! or when a needed object carries no retention at all.

use crate::policy::Config;
use crate::repo::Repo;

/// An expiry closer than this is a problem.
pub const WARN_WITHIN: i64 = 7 * 24 * 3600;

/// The earliest retain-until date (unix seconds) among the needed objects
/// at the offsite; `None` without `offsite_lock` or when it cannot be read
/// (then a problem says why).
pub(super) fn earliest_expiry(
    repo: &Repo,
    cfg: &Config,
    now_ns: i64,
    problems: &mut Vec<String>,
) -> Option<i64> {
    let (Some(offsite), Some(_)) = (cfg.offsite.as_ref(), cfg.offsite_lock) else {
        return None;
    };
    let now = now_ns / 1_000_000_000;
    let dst = match crate::backend::open(offsite) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("offsite lock: {offsite}: {e}"));
            return None;
        }
    };
    let mut keys = Vec::new();
    for prefix in ["packs", "snapshots"] {
        match repo.list_files(prefix) {
            Ok(v) => keys.extend(v.into_iter().map(|(_, l)| l.key)),
            Err(e) => {
                problems.push(format!("offsite lock: cannot list {prefix} here: {e}"));
                return None;
            }
        }
    }
    let jobs = dst.remote_reads().unwrap_or(4);
    let found = crate::sync::pool(jobs, keys.len(), |i| dst.retention(&keys[i]));
    let (mut earliest, mut unlocked, mut errors) = (None::<i64>, 0u64, Vec::new());
    for r in found {
        match r {
            Ok(Some(r)) => earliest = Some(earliest.map_or(r.until, |e| e.min(r.until))),
            Ok(None) => unlocked += 1,
            // not there yet: the sync rule counts it (`behind`)
            Err(e) if e.is_not_found() => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(e) = errors.first() {
        problems.push(format!(
            "offsite lock: cannot read the retention of {} objects at {offsite}: {e}",
            errors.len()
        ));
    }
    if unlocked > 0 {
        problems.push(format!(
            "offsite lock: {unlocked} objects this repository needs at {offsite} have no Object \
             Lock retention (synced before offsite_lock was set?): run `strata sync {offsite} \
             --object-lock DAYS` with the administrative credential"
        ));
    }
    if let Some(t) = earliest.filter(|t| t - now < WARN_WITHIN) {
        problems.push(format!(
            "offsite lock: the retention of an object this repository needs at {offsite} \
             ends at {} (less than a week away): a full-key `strata sync {offsite} \
             --object-lock DAYS` with the administrative credential extends it",
            crate::backend::lock::s3_date(t)
        ));
    }
    earliest
}
