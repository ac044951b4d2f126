//! `status` on a write-only key (format-spec/write-only.md): it reads no
//! manifest, so it reports this host's local state only: each source's
//! last run and snapshot as `run` recorded them, the last sync, and the
//! start of the last run. Sizes, retention and check coverage are a full
//! key's to report.

use super::{
    CheckReport, Coverage, LastReport, LatestReport, SourceReport, StatusReport, SyncReport,
    time_string,
};
use crate::policy::Config;
use crate::policy::state::{LastRun, State};
use crate::repo::Repo;
use std::time::Duration;

/// The local records a write-only report is made of.
struct Local<'a> {
    cfg: &'a Config,
    st: &'a State,
    sync: &'a LastRun,
    start: &'a LastRun,
    max_age: Option<Duration>,
    now: i64,
}

/// The report from this host's records (the policy state, the last sync,
/// the last start) as of `now`; `problems` holds those found so far
/// (failed runs), and a source older than `max_age` is added.
pub(super) fn report(
    cfg: &Config,
    (st, sync, start): (&State, &LastRun, &LastRun),
    (max_age, now): (Option<Duration>, i64),
    repo: &Repo,
    problems: Vec<String>,
) -> StatusReport {
    let l = Local {
        cfg,
        st,
        sync,
        start,
        max_age,
        now,
    };
    report_of(&l, repo, problems)
}

fn report_of(l: &Local<'_>, repo: &Repo, mut problems: Vec<String>) -> StatusReport {
    let sources = l
        .cfg
        .sources
        .iter()
        .map(|s| source(l, &s.name, &mut problems))
        .collect();
    StatusReport {
        check: CheckReport {
            available: false,
            configured: l.cfg.verification.is_some(),
            coverage: Coverage {
                fraction: 0.0,
                packs: 0,
                verified: 0,
                within_seconds: None,
            },
            last: None,
            last_success: None,
        },
        config: l.cfg.path.clone(),
        forget: None,
        gc: None,
        healthy: problems.is_empty(),
        last_run: LastReport::attempted(&l.st.run),
        last_start: LastReport::attempted(l.start),
        max_age_seconds: l.max_age.map(|m| m.as_secs()),
        problems,
        repository: repo.root().to_path_buf(),
        repository_error: None,
        sources,
        sync: SyncReport {
            available: true,
            behind_bytes: None,
            behind_packs: None,
            check: None,
            configured: l.cfg.offsite.is_some(),
            last: LastReport::attempted(l.sync),
            // which packs live snapshots need is a full key's to know
            lock_expiry: None,
            offsite: l.cfg.offsite.clone(),
        },
        time: time_string(l.now),
        version: 1,
    }
}

fn source(l: &Local<'_>, name: &str, problems: &mut Vec<String>) -> SourceReport {
    let last = l.st.sources.get(name);
    let success = last.and_then(|r| r.success_unix_ns);
    let age_ns = success.map(|t| l.now.saturating_sub(t).max(0));
    let stale = match (l.max_age, age_ns) {
        (None, _) => None,
        (Some(_), None) => Some(format!("{name}: no snapshot (by this host)")),
        (Some(m), Some(a)) if a as u128 > m.as_nanos() => Some(format!(
            "{name}: latest snapshot (by this host) is {} old (max age {})",
            super::short_duration(a),
            humantime::format_duration(m)
        )),
        _ => None,
    };
    let latest = success.map(|t| LatestReport {
        age_seconds: l.now.saturating_sub(t).max(0) / 1_000_000_000,
        bytes_added: 0,
        bytes_read: 0,
        id: last.and_then(|r| r.result.clone()).unwrap_or_default(),
        time: time_string(t),
    });
    let report = SourceReport {
        dedup_ratio: None,
        drill: None,
        last_run: last.map(LastReport::of),
        latest,
        logical_bytes: None,
        raw_bytes: None,
        retention: Vec::new(),
        snapshots: usize::from(success.is_some()),
        source: name.to_string(),
        stale: stale.is_some(),
        stored_bytes: None,
        warnings: vec![
            "as this host recorded it (a write-only key reads no snapshot: sizes, \
             retention and checks are a full key's to report)"
                .into(),
        ],
    };
    problems.extend(stale);
    report
}
