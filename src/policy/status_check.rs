//! The check and sync parts of `strata status` (`super::status`): the
//! last check on this machine and how much of the repository was
//! read-data verified lately, and how far the offsite copy is behind.

use super::Config;
use super::status::{CheckReport, CheckRun, Coverage, short_duration};
use crate::error::Result;
use crate::repo::Repo;
use crate::sys::rfc3339 as time_string;

/// The last check on this machine (maint/check/state.rs) and how much of
/// the repository was read-data verified within `[verification] max_age`
/// (ever, without one); adds to `problems` when the last check found
/// errors or the last clean one is older than that age. An unreadable
/// check state is a warning to the repository's events.
pub(super) fn report(
    repo: &Repo,
    cfg: &Config,
    now: i64,
    problems: &mut Vec<String>,
) -> Result<CheckReport> {
    use crate::maint::check::state::{self as cstate, CheckState};
    let st = match cstate::path(&repo.config().repo_id) {
        Some(p) => {
            let (st, w) = CheckState::load(&p);
            if let Some(w) = w {
                repo.events().warning(&w);
            }
            st
        }
        None => CheckState::default(),
    };
    let now_s = now / 1_000_000_000;
    let max_age = cfg.verification.as_ref().and_then(|v| v.max_age);
    let after = max_age.map(|a| now_s.saturating_sub(a.as_secs() as i64));
    let verified = st.verified_map();
    let packs: Vec<crate::index::PackRow> = repo
        .index()?
        .packs()?
        .into_iter()
        .filter(|p| p.condemned.is_none() && !p.missing)
        .collect();
    let covered = packs
        .iter()
        .filter(|p| {
            verified
                .get(&p.id)
                .is_some_and(|t| after.is_none_or(|a| *t > a))
        })
        .count();
    if let Some(l) = &st.last {
        if l.errors > 0 {
            problems.push(format!(
                "check: the last check found {} errors ({})",
                l.errors,
                l.first_error.as_deref().unwrap_or("")
            ));
        }
    }
    if let (Some(m), true) = (max_age, cfg.verification.is_some()) {
        match st.last_clean_unix {
            None => problems.push("check: no successful check yet".into()),
            Some(t) if now_s.saturating_sub(t) as u64 > m.as_secs() => problems.push(format!(
                "check: the last successful check is {} old (max age {})",
                short_duration((now_s - t) * 1_000_000_000),
                humantime::format_duration(m)
            )),
            Some(_) => {}
        }
    }
    let time = |t: i64| time_string(t.saturating_mul(1_000_000_000));
    Ok(CheckReport {
        available: true,
        configured: cfg.verification.is_some(),
        coverage: Coverage {
            fraction: if packs.is_empty() {
                1.0
            } else {
                covered as f64 / packs.len() as f64
            },
            packs: packs.len(),
            verified: covered,
            within_seconds: max_age.map(|m| m.as_secs()),
        },
        last: st.last.as_ref().map(|l| CheckRun {
            errors: l.errors,
            first_error: l.first_error.clone(),
            packs_read: l.packs_read,
            read_data: l.read_data,
            seconds: l.seconds,
            time: time(l.time_unix),
        }),
        last_success: st.last_clean_unix.map(time),
    })
}

/// How many of the repository's packs (and bytes) the offsite copy lacks,
/// by one listing of each; `None` without an offsite or when the offsite
/// cannot be listed (which is a problem). More than `[status]
/// max_offsite_behind` packs is a problem too.
pub(super) fn offsite_behind(
    repo: &Repo,
    cfg: &Config,
    problems: &mut Vec<String>,
) -> Option<(u64, u64)> {
    let offsite = cfg.offsite.as_ref()?;
    let listed = crate::backend::open(offsite)
        .map_err(crate::Error::from)
        .and_then(|b| {
            let mut have = std::collections::HashSet::new();
            b.list("packs", &mut |l| {
                have.insert(l.key);
            })?;
            Ok(have)
        });
    let ours = crate::repo::reconcile::list_packs(repo);
    let (have, ours) = match (listed, ours) {
        (Ok(h), Ok(o)) => (h, o),
        (Err(e), _) | (_, Err(e)) => {
            problems.push(format!("sync: cannot compare with {offsite}: {e}"));
            return None;
        }
    };
    let (mut n, mut bytes) = (0u64, 0u64);
    for (id, size) in ours {
        if !have.contains(&crate::backend::key::pack(&id.to_hex())) {
            n += 1;
            bytes += size;
        }
    }
    if let Some(max) = cfg.max_offsite_behind {
        if n > max {
            problems.push(format!(
                "sync: {offsite} lacks {n} packs ({bytes} bytes; at most {max} allowed)"
            ));
        }
    }
    Some((n, bytes))
}
