//! The check and sync parts of `strata status` (`super`, `policy::status`): the
//! last check on this machine and how much of the repository was
//! read-data verified lately, and how far the offsite copy is behind.

use super::{CheckReport, CheckRun, Coverage, OffsiteCheck, short_duration};
use crate::error::Result;
use crate::maint::check::state::{self as cstate, CheckState};
use crate::policy::Config;
use crate::policy::state::LastRun;
use crate::repo::Repo;
use crate::sys::rfc3339 as time_string;

/// What the check report reads first: the check state and an index
/// connection. Status reads them while `snapshots/` is listed, and counts
/// the packs only after the sections, which may have indexed new ones.
pub(super) struct Read {
    st: CheckState,
    index: Result<crate::index::Index>,
}

/// The check state of this machine (an unreadable one is a warning to the
/// repository's events) and an index connection.
pub(super) fn read(repo: &Repo) -> Read {
    let st = match cstate::path(&repo.config().repo_id, repo.name()) {
        Some(p) => {
            cstate::adopt_legacy(&p);
            let (st, w) = CheckState::load(&p);
            if let Some(w) = w {
                repo.events().warning(&w);
            }
            st
        }
        None => CheckState::default(),
    };
    Read {
        st,
        index: repo.index(),
    }
}

/// The last check on this machine (maint/check/state.rs) and how much of
/// the repository was read-data verified within `[verification] max_age`
/// (ever, without one); adds to `problems` when the last check found
/// errors or the last clean one is older than that age. From what
/// [`read`] read.
pub(super) fn report(
    read: Read,
    cfg: &Config,
    now: i64,
    problems: &mut Vec<String>,
) -> Result<CheckReport> {
    let Read { st, index } = read;
    let now_s = now / 1_000_000_000;
    let max_age = cfg.verification.as_ref().and_then(|v| v.max_age);
    let after = max_age.map(|a| now_s.saturating_sub(a.as_secs() as i64));
    let mut verified = st.verified_map();
    verified.retain(|_, t| after.is_none_or(|a| *t > a));
    let index = index?;
    // Without a pack verified lately, the packs are only counted (status
    // costs the same at 10,000 snapshots as at 100, issue 27).
    let (packs, covered) = if verified.is_empty() {
        (index.live_pack_count()?, 0)
    } else {
        let live: Vec<crate::index::PackRow> = index
            .packs()?
            .into_iter()
            .filter(|p| p.condemned.is_none() && !p.missing)
            .collect();
        let covered = live.iter().filter(|p| verified.contains_key(&p.id)).count();
        (live.len(), covered)
    };
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
        problems.extend(stale("check", "", st.last_clean_unix, now_s, m));
    }
    let time = |t: i64| time_string(t.saturating_mul(1_000_000_000));
    Ok(CheckReport {
        available: true,
        configured: cfg.verification.is_some(),
        coverage: Coverage {
            fraction: if packs == 0 {
                1.0
            } else {
                covered as f64 / packs as f64
            },
            packs,
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

/// How long the offsite copy may lag (README "Backup policy"): twice the
/// sync cadence, else twice the shortest source `every` (a source without
/// one counts as the 5 minutes `strata schedule` gives it).
pub fn sync_window(cfg: &Config) -> std::time::Duration {
    let base = cfg.cadence.sync.unwrap_or_else(|| {
        cfg.sources
            .iter()
            .map(|s| s.every.unwrap_or(std::time::Duration::from_secs(300)))
            .min()
            .unwrap_or(std::time::Duration::from_secs(300))
    });
    base * 2
}

/// The latest of two records of the last sync: `run`'s sync step, and
/// every sync to the offsite (`sync::record`: a manual `strata sync`).
pub(super) fn last_sync(a: &LastRun, b: &LastRun) -> LastRun {
    let newer = |x: Option<i64>, y: Option<i64>| x.max(y);
    let latest = if a.attempt_unix_ns >= b.attempt_unix_ns {
        a
    } else {
        b
    };
    LastRun {
        success_unix_ns: newer(a.success_unix_ns, b.success_unix_ns),
        ..latest.clone()
    }
}

/// How many of the repository's packs (and bytes) the offsite copy lacks,
/// by one listing of each; `None` without an offsite or when the offsite
/// cannot be listed (which is a problem). Then the offsite rule: with
/// `[status] max_offsite_behind`, more packs than that is a problem;
/// without it, a missing pack older than [`sync_window`], or no sync that
/// succeeded within it (`sync`: the last sync, from either record).
/// Also the offsite's pack keys, as listed.
pub(super) fn offsite_behind(
    repo: &Repo,
    cfg: &Config,
    sync: &LastRun,
    now: i64,
    problems: &mut Vec<String>,
) -> (
    Option<(u64, u64)>,
    Option<std::collections::HashSet<String>>,
) {
    let Some(offsite) = cfg.offsite.as_ref() else {
        return (None, None);
    };
    let window = sync_window(cfg);
    let window_ns = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
    if cfg.max_offsite_behind.is_none()
        && sync
            .success_unix_ns
            .is_none_or(|t| now.saturating_sub(t) > window_ns)
    {
        problems.push(format!(
            "sync: no successful sync to {offsite} within {} (twice the sync cadence){}",
            humantime::format_duration(window),
            sync.success_unix_ns
                .map(|t| format!("; the last at {}", time_string(t)))
                .unwrap_or_default()
        ));
    }
    let listed = crate::backend::open(offsite)
        .map_err(crate::Error::from)
        .and_then(|b| {
            let mut have = std::collections::HashSet::new();
            b.list("packs", &mut |l| {
                have.insert(l.key);
            })?;
            Ok(have)
        });
    let ours = repo.list_files("packs");
    let (have, ours) = match (listed, ours) {
        (Ok(h), Ok(o)) => (h, o),
        (Err(e), _) | (_, Err(e)) => {
            problems.push(format!("sync: cannot compare with {offsite}: {e}"));
            return (None, None);
        }
    };
    let (mut n, mut bytes, mut oldest) = (0u64, 0u64, None::<std::time::SystemTime>);
    let packs = ours
        .into_iter()
        .filter(|(name, _)| crate::id::PackId::from_hex(name).is_some());
    for (_, l) in packs {
        if !have.contains(&l.key) {
            n += 1;
            bytes += l.size;
            oldest = match (oldest, l.modified) {
                (Some(o), Some(m)) => Some(o.min(m)),
                (o, m) => o.or(m),
            };
        }
    }
    match cfg.max_offsite_behind {
        Some(max) if n > max => problems.push(format!(
            "sync: {offsite} lacks {n} packs ({bytes} bytes; at most {max} allowed)"
        )),
        Some(_) => {}
        None => {
            let age = |t: std::time::SystemTime| {
                let t = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64);
                now.saturating_sub(t)
            };
            if let Some(a) = oldest.map(age).filter(|a| *a > window_ns) {
                problems.push(format!(
                    "sync: {offsite} lacks {n} packs ({bytes} bytes), the oldest written {} ago \
                     (more than twice the sync cadence, {})",
                    short_duration(a),
                    humantime::format_duration(window)
                ));
            }
        }
    }
    (Some((n, bytes)), Some(have))
}

/// The offsite copy as this machine's checks of it found it (its check
/// state and record of damaged blobs, kept under its location): the
/// share of its packs (`listed`, the keys of its listing) verified within
/// `[verification] max_age`, its damaged packs, its last check. Problems:
/// damaged packs, a last check with errors, and with `[verification]
/// offsite_read_data_subset` and `max_age`, no clean check within it.
pub(super) fn offsite_check(
    repo: &Repo,
    cfg: &Config,
    listed: Option<std::collections::HashSet<String>>,
    now: i64,
    problems: &mut Vec<String>,
) -> Option<OffsiteCheck> {
    use crate::maint::check::state::{self as cstate, CheckState};
    let offsite = cfg.offsite.as_ref()?;
    let id = &repo.config().repo_id;
    let st = cstate::path(id, offsite)
        .map(|p| CheckState::load(&p).0)
        .unwrap_or_default();
    let mut damaged: std::collections::BTreeSet<crate::id::PackId> =
        st.damaged_packs().into_iter().collect();
    if let Some(d) = crate::maint::repair::damaged::index_dir_at(id, offsite) {
        damaged.extend(crate::maint::repair::damaged::packs_in(&d));
    }
    let listed: Vec<crate::id::PackId> = listed
        .unwrap_or_default()
        .iter()
        .filter_map(|k| crate::id::PackId::from_hex(k.rsplit('/').next()?))
        .collect();
    damaged.retain(|p| listed.contains(p));
    let now_s = now / 1_000_000_000;
    let max_age = cfg.verification.as_ref().and_then(|v| v.max_age);
    let after = max_age.map(|a| now_s.saturating_sub(a.as_secs() as i64));
    let verified = st.verified_map();
    let covered = listed
        .iter()
        .filter(|p| {
            verified
                .get(p)
                .is_some_and(|t| after.is_none_or(|a| *t > a))
        })
        .count();
    if !damaged.is_empty() {
        problems.push(format!(
            "offsite: {} damaged packs at {offsite} ({}…): the next `strata run` (or `strata \
             sync`) copies them again",
            damaged.len(),
            damaged.iter().next().map(|p| p.short()).unwrap_or_default()
        ));
    }
    if let Some(l) = st.last.as_ref().filter(|l| l.errors > 0) {
        problems.push(format!(
            "offsite: the last check of {offsite} found {} errors ({})",
            l.errors,
            l.first_error.as_deref().unwrap_or("")
        ));
    }
    let wanted = cfg
        .verification
        .as_ref()
        .is_some_and(|v| v.offsite_read_data_subset.is_some());
    if let (true, Some(m)) = (wanted, max_age) {
        let of = format!(" of {offsite}");
        problems.extend(stale("offsite", &of, st.last_clean_unix, now_s, m));
    }
    let time = |t: i64| time_string(t.saturating_mul(1_000_000_000));
    Some(OffsiteCheck {
        coverage: Coverage {
            fraction: if listed.is_empty() {
                1.0
            } else {
                covered as f64 / listed.len() as f64
            },
            packs: listed.len(),
            verified: covered,
            within_seconds: max_age.map(|m| m.as_secs()),
        },
        damaged_packs: damaged.iter().map(|p| p.to_hex()).collect(),
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

/// The problem of a check (`what`: `check` or `offsite`; `of` names the
/// copy) whose last clean run, at `last` (Unix s), is missing or older
/// than `max` at `now_s`.
fn stale(
    what: &str,
    of: &str,
    last: Option<i64>,
    now_s: i64,
    max: std::time::Duration,
) -> Option<String> {
    match last {
        None => Some(format!("{what}: no successful check{of} yet")),
        Some(t) if now_s.saturating_sub(t) as u64 > max.as_secs() => Some(format!(
            "{what}: the last successful check{of} is {} old (max age {})",
            short_duration((now_s - t) * 1_000_000_000),
            humantime::format_duration(max)
        )),
        Some(_) => None,
    }
}
