//! `strata status`: are the backups of strata.toml healthy? Per source:
//! the latest snapshot and its age, what each retention rule keeps against
//! its target, logical versus stored size, the last run; then the last
//! check and sync. [`status`] returns a typed [`StatusReport`]; its
//! `Serialize` is `status --json` (README "strata status --json"; fields
//! are only added), its fields declared in name order, as the JSON has
//! always listed them. Takes no lock: it only reads, and must not fail
//! while gc holds the exclusive lock.

mod check;
mod flat;
mod listing;
mod locks;
mod refs;
mod rows;
mod write_only;

use super::Config;
use super::state::{self, LastRun, State};
use crate::error::Result;
use crate::repo::Repo;
use crate::snapshot::retention::{Policy, Rule};
use crate::sys::rfc3339 as time_string;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What to report against.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusOptions {
    /// A source whose latest snapshot is older is unhealthy (default:
    /// `[status] max_age` of the config).
    pub max_age: Option<Duration>,
}

/// The last run of a source or step (`policy::state::LastRun`), as times.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastReport {
    /// When the last attempt started (RFC 3339).
    pub attempt: Option<String>,
    /// Its error, if it failed.
    pub error: Option<String>,
    /// When the last successful one started (RFC 3339).
    pub success: Option<String>,
}

impl LastReport {
    fn of(l: &LastRun) -> LastReport {
        LastReport {
            attempt: l.attempt_unix_ns.map(time_string),
            error: l.error.clone(),
            success: l.success_unix_ns.map(time_string),
        }
    }

    /// The report of `l` if it was ever attempted.
    fn attempted(l: &LastRun) -> Option<LastReport> {
        l.attempt_unix_ns.map(|_| LastReport::of(l))
    }
}

/// One retention rule's kept count against its target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleReport {
    /// Snapshots the rule keeps now.
    pub kept: u64,
    /// `last`, `hourly`, ..., `within`, `daily within`...
    pub rule: String,
    /// Its target: a count, `unlimited`, or a span (`24h`).
    pub target: String,
    /// The rule, typed.
    #[serde(skip)]
    pub kind: Rule,
}

impl RuleReport {
    /// A span rule (`within`, `daily within`): its target is a span, not
    /// a count.
    pub fn is_span(&self) -> bool {
        matches!(self.kind, Rule::Within | Rule::CountWithin(_))
    }
}

/// A source's latest snapshot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatestReport {
    /// Its age (s).
    pub age_seconds: i64,
    /// Raw bytes of new blobs it added.
    pub bytes_added: u64,
    /// Bytes it read.
    pub bytes_read: u64,
    /// Its id (hex).
    pub id: String,
    /// Its time (RFC 3339).
    pub time: String,
}

/// A source's last drill (`strata drill`, `policy::drill::record`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrillReport {
    /// What it did, or why it failed.
    pub detail: String,
    /// The restore (and the drill_command) succeeded.
    pub ok: bool,
    /// Why it is a problem (failed, slower than the rto, too old).
    pub problem: Option<String>,
    /// The source's recovery time objective.
    pub rto_seconds: Option<f64>,
    /// The measured restore time.
    pub seconds: f64,
    /// The snapshot restored.
    pub snapshot: Option<String>,
    /// When it started (RFC 3339).
    pub time: String,
}

/// One source of the config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceReport {
    /// Logical bytes per distinct raw byte; `None` without snapshots.
    pub dedup_ratio: Option<f64>,
    /// The last drill (`None`: never drilled).
    pub drill: Option<DrillReport>,
    /// The last run of the source.
    pub last_run: Option<LastReport>,
    /// The latest snapshot.
    pub latest: Option<LatestReport>,
    /// Logical bytes of its snapshots, summed (`None`: not known).
    pub logical_bytes: Option<u64>,
    /// Raw bytes of the distinct blobs of its snapshots.
    pub raw_bytes: Option<u64>,
    /// The retention rules that are on.
    pub retention: Vec<RuleReport>,
    /// Its snapshots (without `pre-restore` ones).
    pub snapshots: usize,
    /// Its name.
    pub source: String,
    /// Older than the maximum age, or no snapshot.
    pub stale: bool,
    /// Stored bytes of the distinct blobs of its snapshots.
    pub stored_bytes: Option<u64>,
    /// What could not be reported.
    pub warnings: Vec<String>,
}

/// The last check on this machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckRun {
    /// Problems found.
    pub errors: u64,
    /// The first one.
    pub first_error: Option<String>,
    /// Packs read.
    pub packs_read: u64,
    /// Whether it read pack data.
    pub read_data: bool,
    /// Wall time.
    pub seconds: f64,
    /// When it started (RFC 3339).
    pub time: String,
}

/// How much of the repository was read-data verified lately.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// `verified / packs` (1 without packs).
    pub fraction: f64,
    /// Packs in the index.
    pub packs: usize,
    /// Packs verified within `within_seconds` (ever, without one).
    pub verified: usize,
    /// `[verification] max_age`.
    pub within_seconds: Option<u64>,
}

/// The check part of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    /// Always true (the state is local).
    pub available: bool,
    /// `[verification]` is in the config.
    pub configured: bool,
    /// Read-data coverage.
    pub coverage: Coverage,
    /// The last check.
    pub last: Option<CheckRun>,
    /// When the last clean check started (RFC 3339).
    pub last_success: Option<String>,
}

/// What this machine's checks of the offsite copy found (kept under the
/// offsite's own location).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OffsiteCheck {
    /// Read-data coverage of the offsite's packs (within `[verification]
    /// max_age`).
    pub coverage: Coverage,
    /// Packs found damaged there and not copied again since (hex).
    pub damaged_packs: Vec<String>,
    /// The last check of the offsite copy.
    pub last: Option<CheckRun>,
    /// When the last clean check of it started (RFC 3339).
    pub last_success: Option<String>,
}

/// The sync part of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncReport {
    /// Always true.
    pub available: bool,
    /// Bytes of the packs the offsite copy lacks.
    pub behind_bytes: Option<u64>,
    /// Packs the offsite copy lacks (`None`: no offsite, or not listed).
    pub behind_packs: Option<u64>,
    /// The offsite copy as this machine checked it (`None`: no offsite).
    pub check: Option<OffsiteCheck>,
    /// `offsite` is in the config.
    pub configured: bool,
    /// The last sync step.
    pub last: Option<LastReport>,
    /// With `offsite_lock`: the earliest Object Lock expiry among the
    /// objects the repository needs at the offsite (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_expiry: Option<String>,
    /// The offsite copy.
    pub offsite: Option<String>,
}

/// What `strata status` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    /// The check.
    pub check: CheckReport,
    /// The policy file.
    pub config: std::path::PathBuf,
    /// The last forget step.
    pub forget: Option<LastReport>,
    /// The last gc step.
    pub gc: Option<LastReport>,
    /// No problem.
    pub healthy: bool,
    /// The last run as a whole.
    pub last_run: Option<LastReport>,
    /// The last start of a run of this policy (README "Backup policy": a
    /// run that could not start is recorded here).
    pub last_start: Option<LastReport>,
    /// The maximum age of a source's latest snapshot.
    pub max_age_seconds: Option<u64>,
    /// What makes it unhealthy, one line each.
    pub problems: Vec<String>,
    /// The repository.
    pub repository: std::path::PathBuf,
    /// Why the repository could not be opened (then nothing else of it is
    /// reported, and the report is unhealthy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository_error: Option<String>,
    /// Every source of the config.
    pub sources: Vec<SourceReport>,
    /// The offsite copy.
    pub sync: SyncReport,
    /// Now (RFC 3339).
    pub time: String,
    /// Format version of this JSON.
    pub version: u32,
}

pub use super::state::short_duration;

/// The report on the repository of `session` (with `cfg` as its
/// strata.toml) against the policy `cfg`; warnings (an unreadable state
/// file, skipped manifests) go to `events`.
pub fn status(
    session: &crate::session::Session,
    cfg: &Config,
    opts: &StatusOptions,
    events: &Arc<dyn crate::events::Events>,
) -> Result<StatusReport> {
    let max_age = opts.max_age.or(cfg.max_age);
    let now = crate::sys::now_ns();
    // Read before the repository is opened: a run that could not start
    // (the repository unreachable, the key wrong) is recorded only here.
    let start = super::record::start(&cfg.path);
    let mut problems = Vec::new();
    if let Some(e) = &start.error {
        problems.push(format!(
            "run: the last run at {} could not start: {e}",
            start.attempt_unix_ns.map(time_string).unwrap_or_default()
        ));
    }
    let repo = match session.with_config(cfg).open(events) {
        Ok(o) => o.repo,
        Err(e) => {
            problems.push(format!("repository: cannot open it: {e}"));
            return Ok(unreachable(cfg, max_age, now, &start, e, problems));
        }
    };
    let (st, st_warning) = match state::dir(&repo.config().repo_id) {
        Some(d) => State::load(&d),
        None => (State::default(), None),
    };
    if let Some(w) = &st_warning {
        events.warning(w);
    }
    let sync = match &cfg.offsite {
        Some(o) => check::last_sync(&st.sync, &crate::sync::record::last_sync(repo.name(), o)),
        None => st.sync.clone(),
    };
    last_failures(cfg, &st, &sync, &mut problems);
    if repo.is_write_only() {
        let records = (&st, &sync, &start);
        return Ok(write_only::report(
            cfg,
            records,
            (max_age, now),
            &repo,
            problems,
        ));
    }
    // the names in snapshots/ are listed on another thread meanwhile
    let early = Early::start(&repo);
    let drills = match state::dir(&repo.config().repo_id) {
        Some(d) => super::drill::record::DrillRecord::load(&d).0,
        None => Default::default(),
    };
    let checked = check::read(&repo);
    let sources = cfg
        .sources
        .iter()
        .zip(current_sections(&repo, cfg, now, events, early)?)
        .map(|(s, sec)| {
            let mut r = finish(
                &s.name,
                sec,
                &cfg.retention,
                st.sources.get(&s.name),
                (max_age, now),
                &mut problems,
            );
            r.drill = drill_report(cfg, s, drills.sources.get(&s.name), now, &mut problems);
            r
        })
        .collect();
    let check = check::report(checked, cfg, now, &mut problems)?;
    let sync = offsite_report(&repo, cfg, &sync, now, &mut problems);
    Ok(StatusReport {
        check,
        config: cfg.path.clone(),
        forget: LastReport::attempted(&st.forget),
        gc: LastReport::attempted(&st.gc),
        healthy: problems.is_empty(),
        last_run: LastReport::attempted(&st.run),
        last_start: LastReport::attempted(&start),
        max_age_seconds: max_age.map(|m| m.as_secs()),
        problems,
        repository: repo.root().to_path_buf(),
        repository_error: None,
        sources,
        sync,
        time: time_string(now),
        version: 1,
    })
}

/// The sync part of a full key's report: how far the offsite copy is
/// behind, this machine's checks of it, and its Object Lock expiry.
fn offsite_report(
    repo: &crate::repo::Repo,
    cfg: &Config,
    sync: &LastRun,
    now: i64,
    problems: &mut Vec<String>,
) -> SyncReport {
    let (behind, off_packs) = check::offsite_behind(repo, cfg, sync, now, problems);
    let off_check = check::offsite_check(repo, cfg, off_packs, now, problems);
    let lock_expiry = locks::earliest_expiry(repo, cfg, now, problems);
    SyncReport {
        available: true,
        behind_bytes: behind.map(|(_, b)| b),
        behind_packs: behind.map(|(n, _)| n),
        check: off_check,
        configured: cfg.offsite.is_some(),
        last: LastReport::attempted(sync),
        lock_expiry: lock_expiry.map(crate::backend::lock::s3_date),
        offsite: cfg.offsite.clone(),
    }
}

/// Every source and step whose last run failed: a problem until a later
/// run of it succeeds (`LastRun::record` clears the error); `sync` is the
/// latest sync, the run's or a manual one.
fn last_failures(cfg: &Config, st: &State, sync: &LastRun, problems: &mut Vec<String>) {
    for s in &cfg.sources {
        if let Some(e) = st.sources.get(&s.name).and_then(|l| l.error.as_ref()) {
            problems.push(format!("{}: the last run failed: {e}", s.name));
        }
    }
    for (step, l) in [
        ("forget", &st.forget),
        ("gc", &st.gc),
        ("sync", sync),
        ("check", &st.check),
        ("offsite-check", &st.offsite_check),
    ] {
        if let Some(e) = &l.error {
            problems.push(format!("{step}: the last run failed: {e}"));
        }
    }
}

/// The report when the repository cannot be opened: what the policy and
/// the start record say, unhealthy.
fn unreachable(
    cfg: &Config,
    max_age: Option<Duration>,
    now: i64,
    start: &LastRun,
    e: crate::Error,
    problems: Vec<String>,
) -> StatusReport {
    StatusReport {
        check: CheckReport {
            available: false,
            configured: cfg.verification.is_some(),
            coverage: Coverage {
                fraction: 0.0,
                packs: 0,
                verified: 0,
                within_seconds: None,
            },
            last: None,
            last_success: None,
        },
        config: cfg.path.clone(),
        forget: None,
        gc: None,
        healthy: false,
        last_run: None,
        last_start: LastReport::attempted(start),
        max_age_seconds: max_age.map(|m| m.as_secs()),
        problems,
        repository: cfg.repository.clone().unwrap_or_default(),
        repository_error: Some(e.to_string()),
        sources: Vec::new(),
        sync: SyncReport {
            available: false,
            behind_bytes: None,
            behind_packs: None,
            check: None,
            configured: cfg.offsite.is_some(),
            last: None,
            lock_expiry: None,
            offsite: cfg.offsite.clone(),
        },
        time: time_string(now),
        version: 1,
    }
}

/// What status knows of `snapshots/` before it needs the names.
struct Early {
    /// The directory's stamp (`Backend::listing_stamp`) when it had
    /// settled ([`SETTLED`]) before the names were listed: only such a
    /// stamp is saved with the report.
    stamp: Option<Vec<u8>>,
    /// The report saved on this machine, if one reads.
    saved: Option<flat::Saved>,
    /// The names being listed on another thread (listing.rs); `None` when
    /// the saved report has the directory's stamp, or no thread could
    /// start.
    listing: Option<listing::Lister>,
}

impl Early {
    /// Take the directory's stamp, read the saved report and, unless the
    /// report has that stamp, start listing the names.
    fn start(repo: &Repo) -> Early {
        let started = std::time::SystemTime::now();
        // one stat on a local repository; taken before the names are
        // listed, so a change during the listing moves it
        let stamp = repo
            .store()
            .listing_stamp("snapshots")
            .ok()
            .flatten()
            .filter(|(_, changed)| changed.checked_add(SETTLED).is_some_and(|t| t <= started))
            .map(|(s, _)| s);
        let saved = flat::read(repo);
        let fresh = stamp.is_some() && saved.as_ref().is_some_and(|s| s.stamp == stamp);
        let listing = if fresh {
            None
        } else {
            listing::Lister::start(Arc::clone(repo.store()))
        };
        Early {
            stamp,
            saved,
            listing,
        }
    }
}

/// Each source's section, in the config's order. A monitor calls status
/// every minute: while the snapshots listed, the signers, the sources, the
/// policy and the time zone are those of the last report, its sections are
/// read as they are (flat.rs); else they are computed from the manifests,
/// read through the local manifest cache, and saved. `early` has the
/// stamp of `snapshots/`, the saved report and the names being listed
/// (listing.rs).
fn current_sections(
    repo: &Repo,
    cfg: &Config,
    now: i64,
    events: &Arc<dyn crate::events::Events>,
    mut early: Early,
) -> Result<Vec<flat::Section>> {
    let tz = jiff::tz::TimeZone::system();
    let signers = repo.signers()?;
    let rest = flat::rest(&signers, cfg, &tz);
    let n = cfg.sources.len();
    let stamp = early.stamp.take();
    let saved = early.saved.take();
    // snapshots/ unchanged since the report was saved (flat.rs)
    if let (Some(st), Some(saved)) = (&stamp, &saved) {
        if saved.fits(flat::By::Stamp(st, &rest), n, now) {
            return Ok(saved.sections.clone());
        }
    }
    // opened while the names are listed
    let mut db = rows::Db::open(repo);
    if early.listing.as_ref().is_some_and(listing::Lister::running) {
        db.prepare_reader(repo);
    }
    let names = listing::names(early.listing.take(), repo.store().as_ref())?;
    let key = flat::key(&names, &rest);
    if let Some(saved) = saved.filter(|s| s.fits(flat::By::Key(&key), n, now)) {
        if stamp.is_some() && saved.stamp != stamp {
            let saved = flat::Saved { stamp, ..saved };
            flat::save(repo, &saved);
            return Ok(saved.sections);
        }
        return Ok(saved.sections);
    }
    let update = rows::Update {
        repo,
        cfg,
        names: &names,
        rest: &rest,
        now,
        tz: &tz,
        events,
    };
    let (sections, clean) = rows::sections(db, &update)?;
    if clean {
        let saved = flat::Saved {
            key,
            rest,
            stamp,
            sections,
        };
        flat::save(repo, &saved);
        return Ok(saved.sections);
    }
    Ok(sections)
}

/// File `name` of `repo`'s status directory in the local cache (`None`:
/// no cache directory): the report (flat.rs) and the rows (rows.rs).
fn cache_file(repo: &Repo, name: &str) -> Option<std::path::PathBuf> {
    Some(
        crate::cache::base_dir()?
            .join(repo.config().repo_id.to_hex())
            .join("status")
            .join(name),
    )
}

/// How long the snapshots/ directory must have been unchanged before its
/// stamp is saved: longer than any file system's time granularity.
pub(super) const SETTLED: Duration = Duration::from_secs(2);

/// The retention rules of `p` that are on, with their names and targets.
fn rules(p: &Policy) -> Vec<(Rule, String, String)> {
    use crate::snapshot::retention::Bucket;
    let mut out = Vec::new();
    if let Some(w) = p.within.filter(|s| !s.is_zero()) {
        out.push((Rule::Within, "within".to_string(), w.to_string()));
    }
    for (b, c) in [
        (Bucket::Each, p.last),
        (Bucket::Hour, p.hourly),
        (Bucket::Day, p.daily),
        (Bucket::Week, p.weekly),
        (Bucket::Month, p.monthly),
        (Bucket::Year, p.yearly),
    ] {
        if !c.is_off() {
            out.push((Rule::Count(b), b.name().to_string(), c.to_string()));
        }
    }
    for (b, s) in [
        (Bucket::Hour, p.within_hourly),
        (Bucket::Day, p.within_daily),
        (Bucket::Week, p.within_weekly),
        (Bucket::Month, p.within_monthly),
        (Bucket::Year, p.within_yearly),
    ] {
        if let Some(s) = s.filter(|s| !s.is_zero()) {
            let name = format!("{} within", b.name());
            out.push((Rule::CountWithin(b), name, s.to_string()));
        }
    }
    out
}

/// Source `name`'s report from its section at time `now`: the latest
/// snapshot's age and staleness (a problem, added to `problems`).
fn finish(
    name: &str,
    sec: flat::Section,
    policy: &Policy,
    last: Option<&LastRun>,
    (max_age, now): (Option<Duration>, i64),
    problems: &mut Vec<String>,
) -> SourceReport {
    let age_ns = sec
        .latest
        .as_ref()
        .map(|l| now.saturating_sub(l.time_unix_ns).max(0));
    let latest = sec.latest.map(|l| LatestReport {
        age_seconds: now.saturating_sub(l.time_unix_ns).max(0) / 1_000_000_000,
        bytes_added: l.bytes_added,
        bytes_read: l.bytes_read,
        id: l.id,
        time: l.time,
    });
    let stale = match (max_age, age_ns) {
        (None, _) => None,
        (Some(_), None) => Some(format!("{name}: no snapshot")),
        (Some(m), Some(a)) if a as u128 > m.as_nanos() => Some(format!(
            "{name}: latest snapshot is {} old (max age {})",
            short_duration(a),
            humantime::format_duration(m)
        )),
        _ => None,
    };
    let retention = if sec.kept.is_empty() {
        Vec::new()
    } else {
        rules(policy)
            .into_iter()
            .zip(sec.kept)
            .map(|((kind, rule, target), kept)| RuleReport {
                kept,
                rule,
                target,
                kind,
            })
            .collect()
    };
    let (logical_bytes, raw_bytes, stored_bytes, dedup_ratio) = match sec.sizes {
        Some((l, r, s, d)) => (Some(l), Some(r), Some(s), d),
        None => (None, None, None, None),
    };
    let report = SourceReport {
        dedup_ratio,
        drill: None,
        last_run: last.map(LastReport::of),
        latest,
        logical_bytes,
        raw_bytes,
        retention,
        snapshots: sec.snapshots as usize,
        source: name.to_string(),
        stale: stale.is_some(),
        stored_bytes,
        warnings: sec.warnings,
    };
    problems.extend(stale);
    report
}

/// Source `s`'s last drill against its rto and the drill cadence; its
/// problem, if any, added to `problems`.
fn drill_report(
    cfg: &Config,
    s: &super::Source,
    last: Option<&super::drill::record::LastDrill>,
    now: i64,
    problems: &mut Vec<String>,
) -> Option<DrillReport> {
    let problem = super::drill::record::problem(cfg, s, last, now);
    problems.extend(problem.clone());
    let l = last?;
    Some(DrillReport {
        detail: l.detail.clone(),
        ok: l.ok,
        problem,
        rto_seconds: cfg.rto_of(s).map(|r| r.as_secs_f64()),
        seconds: l.seconds,
        snapshot: l.snapshot.clone(),
        time: time_string(l.time_unix_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::retention::Bucket;

    fn last() -> LastReport {
        LastReport {
            attempt: Some("2026-01-02T03:04:05Z".into()),
            error: Some("boom".into()),
            success: None,
        }
    }

    fn sync_report() -> SyncReport {
        SyncReport {
            available: true,
            behind_bytes: Some(8),
            behind_packs: Some(1),
            check: Some(OffsiteCheck {
                coverage: Coverage {
                    fraction: 1.0,
                    packs: 2,
                    verified: 2,
                    within_seconds: None,
                },
                damaged_packs: vec!["cd".into()],
                last: None,
                last_success: None,
            }),
            configured: true,
            last: Some(last()),
            lock_expiry: None,
            offsite: Some("s3://b/p".into()),
        }
    }

    /// `status --json` was a serde_json map, whose keys serde_json sorts:
    /// the report's own serialization gives the same bytes only while its
    /// fields stay declared in name order, at every level.
    #[test]
    fn serializes_as_the_sorted_json_map_did() {
        let source = SourceReport {
            dedup_ratio: Some(2.5),
            drill: Some(DrillReport {
                detail: "d".into(),
                ok: true,
                problem: None,
                rto_seconds: Some(300.0),
                seconds: 1.5,
                snapshot: Some("ab".into()),
                time: "t".into(),
            }),
            last_run: Some(last()),
            latest: Some(LatestReport {
                age_seconds: 60,
                bytes_added: 1,
                bytes_read: 2,
                id: "ab".into(),
                time: "2026-01-02T03:04:05Z".into(),
            }),
            logical_bytes: Some(3),
            raw_bytes: None,
            retention: vec![RuleReport {
                kept: 4,
                rule: "daily".into(),
                target: "7".into(),
                kind: Rule::Count(Bucket::Day),
            }],
            snapshots: 5,
            source: "etc".into(),
            stale: true,
            stored_bytes: Some(6),
            warnings: vec!["w".into()],
        };
        let r = StatusReport {
            check: CheckReport {
                available: true,
                configured: true,
                coverage: Coverage {
                    fraction: 0.5,
                    packs: 2,
                    verified: 1,
                    within_seconds: Some(7),
                },
                last: Some(CheckRun {
                    errors: 1,
                    first_error: Some("e".into()),
                    packs_read: 2,
                    read_data: true,
                    seconds: 1.5,
                    time: "t".into(),
                }),
                last_success: None,
            },
            config: "/etc/strata.toml".into(),
            forget: Some(last()),
            gc: None,
            healthy: false,
            last_run: Some(last()),
            last_start: None,
            max_age_seconds: Some(86_400),
            problems: vec!["p".into()],
            repository: "/srv/repo".into(),
            repository_error: None,
            sources: vec![source],
            sync: sync_report(),
            time: "now".into(),
            version: 1,
        };
        let direct = serde_json::to_string(&r).unwrap();
        let map = serde_json::to_value(&r).unwrap().to_string();
        assert_eq!(direct, map);
        // keys and nesting as `status --json` has always printed them
        for key in [
            "\"behind_packs\":1",
            "\"coverage\":{\"fraction\":0.5,",
            "\"dedup_ratio\":2.5,\"drill\":{\"detail\":\"d\",\"ok\":true,",
            "\"check\":{\"coverage\":{\"fraction\":1.0,",
            "\"retention\":[{\"kept\":4,\"rule\":\"daily\",\"target\":\"7\"}]",
            "\"latest\":{\"age_seconds\":60,\"bytes_added\":1,\"bytes_read\":2,",
            "\"last_run\":{\"attempt\":\"2026-01-02T03:04:05Z\",\"error\":\"boom\",\"success\":null}",
        ] {
            assert!(direct.contains(key), "{key} in {direct}");
        }
    }
}
