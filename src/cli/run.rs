//! `strata run`: one run of the policy in strata.toml. In order:
//!
//! 1. **Sources** that are due (or named on the command line), each into
//!    its own snapshot tagged with the source's name, under one shared
//!    lock. A failing source does not stop the others.
//! 2. **forget** per `[retention]`, each source's snapshots on their own
//!    (grouped by host and paths, as `strata forget`), when due.
//! 3. **gc** once `gc.min_forgotten` snapshots were forgotten since the
//!    last gc, and it is due.
//! 4. **sync** to `offsite` ([`sync_step`]), and 5. **check** per
//!    `[verification]` ([`check_step`]).
//!
//! Each step writes one log line (time, step, source, status, bytes,
//! duration) to stderr and to `run.log` in the cache directory; what ran
//! and when goes to `state.json` there (`policy::state`), after each step.
//! The summary (text, or `--json`) goes to stdout and, as JSON, to the
//! webhook; a failed webhook is a warning.
//!
//! Exit code: 4 if a source failed (the others were saved), else 1 if a
//! step failed, else 3 if there were warnings, else 0.

use super::args::RunArgs;
use super::{exit, output};
use crate::backup::{self, Counters, SnapshotOptions, StdinSource};
use crate::error::{Error, Result};
use crate::maint::forget::{self, ForgetOptions};
use crate::maint::gc::{self, GcOptions};
use crate::policy::state::{self, LastRun, State};
use crate::policy::{Config, Source, SourceKind, sqlite, webhook};
use crate::repo::Repo;
use crate::repo::lock::{Lock, LockKind};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// How a source or step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Done.
    Ok,
    /// Done, with warnings (files skipped or changed while read).
    Warnings,
    /// Failed.
    Failed,
    /// Not run: not due, not configured, or not available.
    Skipped,
}

/// One source in the summary.
#[derive(Debug, Serialize)]
pub struct SourceOutcome {
    /// The source's name.
    pub source: String,
    /// How it ended.
    pub status: Status,
    /// Why it was skipped, or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The new snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Raw bytes of new blobs.
    pub bytes_added: u64,
    /// Stored bytes of new blobs.
    pub stored_added: u64,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Wall time.
    pub duration_seconds: f64,
    /// Per-file warnings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// One step after the sources.
#[derive(Debug, Serialize)]
pub struct StepOutcome {
    /// `forget`, `gc`, `sync` or `check`.
    pub step: &'static str,
    /// How it ended.
    pub status: Status,
    /// What it did, why it was skipped, or the error.
    pub detail: String,
    /// Wall time.
    pub duration_seconds: f64,
}

/// The summary printed by `run --json` and POSTed to the webhook.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Format version of this JSON (README "strata run").
    pub version: u32,
    /// The policy file.
    pub config: PathBuf,
    /// The repository.
    pub repository: PathBuf,
    /// This host.
    pub host: String,
    /// Start (RFC 3339, UTC).
    pub started: String,
    /// Wall time.
    pub duration_seconds: f64,
    /// No source and no step failed.
    pub ok: bool,
    /// Every source of the config, in name order.
    pub sources: Vec<SourceOutcome>,
    /// forget, gc, sync, check.
    pub steps: Vec<StepOutcome>,
    /// Warnings about the run itself (state file, locks).
    pub warnings: Vec<String>,
}

/// The per-step log: stderr and `run.log`.
struct Log {
    dir: Option<PathBuf>,
}

impl Log {
    fn line(
        &self,
        step: &str,
        source: &str,
        status: Status,
        detail: &str,
        bytes: Option<(u64, u64)>,
        secs: f64,
    ) {
        let status = match status {
            Status::Ok => "ok",
            Status::Warnings => "warnings",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        };
        let bytes = bytes
            .map(|(read, added)| format!(" bytes={read} added={added}"))
            .unwrap_or_default();
        let line = format!(
            "{} {step} {source} {status}{bytes} duration={secs:.2}s{}{detail}",
            time_string(crate::repo::now_ns()),
            if detail.is_empty() { "" } else { " " },
        );
        eprintln!("strata: {line}");
        if let Some(d) = &self.dir {
            state::append_log(d, &line);
        }
    }
}

/// Unix ns as RFC 3339 UTC, seconds.
pub fn time_string(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Snapshot options for source `s`; a sqlite source's temp copy is
/// returned too and must live until the snapshot is saved.
fn source_options(cfg: &Config, s: &Source) -> Result<(SnapshotOptions, Option<sqlite::TempCopy>)> {
    let mut opts = SnapshotOptions {
        tags: vec![s.name.clone()],
        host: cfg.host.clone(),
        ..SnapshotOptions::default()
    };
    let mut copy = None;
    match &s.kind {
        SourceKind::Paths {
            paths,
            exclude,
            exclude_if_present,
            one_file_system,
        } => {
            opts.paths = paths.clone();
            opts.excludes = exclude.clone();
            opts.exclude_if_present = exclude_if_present.clone();
            opts.one_file_system = *one_file_system;
        }
        SourceKind::Command { command, file } => {
            opts.stdin = Some(StdinSource {
                name: file.clone(),
                command: Some(command.clone()),
                file: None,
            });
        }
        SourceKind::Sqlite { db, file } => {
            let c = sqlite::copy(db)?;
            opts.stdin = Some(StdinSource {
                name: file.clone(),
                command: None,
                file: Some(c.path().to_path_buf()),
            });
            copy = Some(c);
        }
    }
    Ok((opts, copy))
}

fn snapshot_source(
    repo: &Repo,
    cfg: &Config,
    s: &Source,
    lock: &Lock,
) -> Result<backup::SnapshotReport> {
    let (opts, _copy) = source_options(cfg, s)?;
    backup::run(repo, &opts, &Counters::default(), lock)
}

/// Run the policy once.
pub fn run(cli: &super::Cli, a: &RunArgs) -> Result<i32> {
    let cfg = crate::policy::config::find_and_load(a.config.config.as_deref())?;
    for n in &a.sources {
        if cfg.source(n).is_none() {
            return Err(Error::Invalid(format!(
                "{}: no source named {n:?} (sources: {})",
                cfg.path.display(),
                cfg.sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    super::writes(cli, "run")?;
    let (repo, _) = super::open_repo_with(cli, Some(&cfg))?;
    let dir = state::dir(&repo.config().repo_id);
    let mut warnings = Vec::new();
    let _run_lock = match &dir {
        Some(d) => match state::run_lock(d)? {
            Some(f) => Some(f),
            None => {
                return Err(Error::RepoLocked(format!(
                    "another `strata run` of this repository is running ({})",
                    d.join("run.lock").display()
                )));
            }
        },
        None => {
            warnings.push(
                "no cache directory (STRATA_CACHE_DIR is empty): every source is due, \
                 and nothing is remembered for `status`"
                    .to_string(),
            );
            None
        }
    };
    let mut st = match &dir {
        Some(d) => {
            let (st, w) = State::load(d);
            warnings.extend(w);
            st
        }
        None => State::default(),
    };
    for w in &warnings {
        eprintln!("strata: warning: {w}");
    }
    let log = Log { dir: dir.clone() };
    let save = |st: &State, warnings: &mut Vec<String>| {
        if let Some(d) = &dir {
            if let Err(e) = st.save(d) {
                eprintln!("strata: warning: {e}");
                warnings.push(e.to_string());
            }
        }
    };
    let started = crate::repo::now_ns();
    let t0 = Instant::now();

    // 1. Sources.
    let mut sources = Vec::new();
    let want = |s: &Source, last: &LastRun| -> Option<&'static str> {
        if !a.sources.is_empty() {
            return (!a.sources.contains(&s.name)).then_some("not named on the command line");
        }
        (!last.due(s.every, started)).then_some("not due")
    };
    let mut shared: Option<Lock> = None;
    for s in &cfg.sources {
        let last = st.sources.entry(s.name.clone()).or_default();
        if let Some(why) = want(s, last) {
            sources.push(skipped_source(s, why));
            continue;
        }
        if shared.is_none() {
            match super::lock(cli, &repo, LockKind::Shared) {
                Ok(l) => shared = Some(l),
                Err(e) => {
                    // No source can run; record each as failed.
                    let msg = e.to_string();
                    log.line("snapshot", &s.name, Status::Failed, &msg, None, 0.0);
                    last.record(crate::repo::now_ns(), Err(msg.clone()));
                    sources.push(failed_source(s, msg, 0.0));
                    continue;
                }
            }
        }
        let Some(lock) = shared.as_ref() else {
            continue;
        };
        let start = crate::repo::now_ns();
        let t = Instant::now();
        let r = snapshot_source(&repo, &cfg, s, lock);
        let secs = t.elapsed().as_secs_f64();
        match r {
            Ok(rep) => {
                let sum = &rep.snapshot.summary;
                let status = if rep.warnings.is_empty() {
                    Status::Ok
                } else {
                    Status::Warnings
                };
                for w in &rep.warnings {
                    eprintln!("strata: warning: {}: {w}", s.name);
                }
                log.line(
                    "snapshot",
                    &s.name,
                    status,
                    &format!("snapshot={}", rep.id.short()),
                    Some((sum.bytes_read, sum.bytes_added)),
                    secs,
                );
                last.record(start, Ok(rep.id.to_hex()));
                sources.push(SourceOutcome {
                    source: s.name.clone(),
                    status,
                    detail: None,
                    snapshot: Some(rep.id.to_hex()),
                    bytes_read: sum.bytes_read,
                    bytes_added: sum.bytes_added,
                    stored_added: sum.stored_added,
                    files: sum.files(),
                    duration_seconds: secs,
                    warnings: rep.warnings,
                });
            }
            Err(e) => {
                let msg = e.to_string();
                log.line("snapshot", &s.name, Status::Failed, &msg, None, secs);
                last.record(start, Err(msg.clone()));
                sources.push(failed_source(s, msg, secs));
            }
        }
        save(&st, &mut warnings);
    }
    drop(shared);

    // 2-5. forget, gc, sync, check.
    let mut steps = Vec::new();
    let mut exclusive: Option<Lock> = None;
    steps.push(timed(&log, || {
        forget_step(cli, &repo, &cfg, &mut st, &mut exclusive, started)
    }));
    save(&st, &mut warnings);
    steps.push(timed(&log, || {
        gc_step(cli, &repo, &cfg, &mut st, &mut exclusive, started)
    }));
    save(&st, &mut warnings);
    drop(exclusive);
    steps.push(timed(&log, || sync_step(&repo, &cfg, &mut st, started)));
    steps.push(timed(&log, || {
        check_step(cli, &repo, &cfg, &mut st, started)
    }));

    let failed_source = sources.iter().any(|s| s.status == Status::Failed);
    let failed_step = steps.iter().any(|s| s.status == Status::Failed);
    let warned = sources.iter().any(|s| s.status == Status::Warnings)
        || steps.iter().any(|s| s.status == Status::Warnings)
        || !warnings.is_empty();
    let ok = !failed_source && !failed_step;
    st.run.record(
        started,
        if ok {
            Ok(String::new())
        } else {
            Err("a source or step failed".into())
        },
    );
    save(&st, &mut warnings);
    let summary = Summary {
        version: 1,
        config: cfg.path.clone(),
        repository: repo.root().to_path_buf(),
        host: cfg.host.clone().unwrap_or_else(crate::repo::hostname),
        started: time_string(started),
        duration_seconds: t0.elapsed().as_secs_f64(),
        ok,
        sources,
        steps,
        warnings,
    };
    let json =
        serde_json::to_value(&summary).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
    if let Some(url) = &cfg.webhook {
        match webhook::post(url, &json, std::time::Duration::from_secs(10)) {
            Ok(_) => log.line("webhook", "-", Status::Ok, &webhook::shown(url), None, 0.0),
            Err(e) => eprintln!("strata: warning: {e}"),
        }
    }
    if a.json {
        output::line(&json.to_string())?;
    } else {
        print_summary(&summary)?;
    }
    Ok(if failed_source {
        exit::SOURCE_FAILED
    } else if failed_step {
        exit::ERROR
    } else if warned {
        exit::WARNINGS
    } else {
        exit::OK
    })
}

fn skipped_source(s: &Source, why: &str) -> SourceOutcome {
    SourceOutcome {
        source: s.name.clone(),
        status: Status::Skipped,
        detail: Some(why.to_string()),
        snapshot: None,
        bytes_read: 0,
        bytes_added: 0,
        stored_added: 0,
        files: 0,
        duration_seconds: 0.0,
        warnings: Vec::new(),
    }
}

fn failed_source(s: &Source, msg: String, secs: f64) -> SourceOutcome {
    SourceOutcome {
        status: Status::Failed,
        detail: Some(msg),
        duration_seconds: secs,
        ..skipped_source(s, "")
    }
}

/// Run a step, time it, log it.
fn timed(log: &Log, f: impl FnOnce() -> (&'static str, Status, String)) -> StepOutcome {
    let t = Instant::now();
    let (step, status, detail) = f();
    let secs = t.elapsed().as_secs_f64();
    log.line(step, "-", status, &detail, None, secs);
    StepOutcome {
        step,
        status,
        detail,
        duration_seconds: secs,
    }
}

/// The exclusive lock for forget and gc, taken once. A lock held by
/// another process is a warning (the step runs next time), not a failure.
fn exclusive_lock<'a>(
    cli: &super::Cli,
    repo: &Repo,
    held: &'a mut Option<Lock>,
) -> std::result::Result<&'a Lock, (Status, String)> {
    if held.is_none() {
        match super::lock(cli, repo, LockKind::Exclusive) {
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

fn forget_step(
    cli: &super::Cli,
    repo: &Repo,
    cfg: &Config,
    st: &mut State,
    lock: &mut Option<Lock>,
    now: i64,
) -> (&'static str, Status, String) {
    const STEP: &str = "forget";
    if cfg.retention.is_empty() {
        return (STEP, Status::Skipped, "no [retention] in the config".into());
    }
    if !st.forget.due(cfg.cadence.forget, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let l = match exclusive_lock(cli, repo, lock) {
        Ok(l) => l,
        Err((status, msg)) => return (STEP, status, msg),
    };
    let tz = jiff::tz::TimeZone::system();
    let mut removed = 0u64;
    let mut errors = Vec::new();
    // threat-model.md "Rollback and deletion": no forget while snapshots
    // this machine saw are gone unexplained.
    let guard = crate::maint::vanished::guard(repo, "forget", false);
    for s in cfg.sources.iter().filter(|_| guard.is_ok()) {
        let opts = ForgetOptions {
            policy: cfg.retention.clone(),
            filter: crate::snapshot::Filter {
                tags: vec![s.name.clone()],
                ..Default::default()
            },
            group_by: Default::default(),
            allow_empty: false,
        };
        let r = forget::plan(repo, &opts, crate::repo::now_ns(), &tz).and_then(|groups| {
            let victims: Vec<_> = groups
                .iter()
                .flat_map(|g| &g.remove)
                .map(|v| (v.id, Some(v.snapshot.tree)))
                .collect();
            forget::remove(repo, l, &victims)?;
            Ok(victims.len() as u64)
        });
        match r {
            Ok(n) => removed += n,
            Err(e) => errors.push(format!("{}: {e}", s.name)),
        }
    }
    if let Err(e) = guard {
        errors.push(e.to_string());
    }
    st.forgotten_since_gc += removed;
    let detail = format!("removed {removed} snapshots");
    if errors.is_empty() {
        st.forget.record(now, Ok(removed.to_string()));
        (STEP, Status::Ok, detail)
    } else {
        let e = format!("{detail}; {}", errors.join("; "));
        st.forget.record(now, Err(e.clone()));
        (STEP, Status::Failed, e)
    }
}

fn gc_step(
    cli: &super::Cli,
    repo: &Repo,
    cfg: &Config,
    st: &mut State,
    lock: &mut Option<Lock>,
    now: i64,
) -> (&'static str, Status, String) {
    const STEP: &str = "gc";
    let min = u64::from(cfg.gc.min_forgotten);
    if st.forgotten_since_gc < min {
        return (
            STEP,
            Status::Skipped,
            format!(
                "{} snapshots forgotten since the last gc (gc.min_forgotten = {min})",
                st.forgotten_since_gc
            ),
        );
    }
    let every = cfg
        .cadence
        .gc
        .or(Some(std::time::Duration::from_secs(86_400)));
    if !st.gc.due(every, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let l = match exclusive_lock(cli, repo, lock) {
        Ok(l) => l,
        Err((status, msg)) => return (STEP, status, msg),
    };
    let grace = match cfg.gc.grace {
        Some(g) => Ok(g),
        None => crate::repo::gcstate::grace_from_env(),
    };
    let r = grace.and_then(|grace| {
        let opts = GcOptions {
            dry_run: false,
            max_unused: cfg.gc.max_unused,
            max_repack: cfg.gc.max_repack,
            grace,
            acknowledge_missing: false,
        };
        gc::run(repo, &opts, l, &gc::Progress::default())
    });
    match r {
        Ok(rep) => {
            st.forgotten_since_gc = 0;
            let detail = format!(
                "freed {} bytes now ({} packs), {} bytes condemned for a later gc",
                rep.deleted.bytes, rep.deleted.packs, rep.pending_free
            );
            st.gc.record(now, Ok(detail.clone()));
            if rep.warnings.is_empty() {
                (STEP, Status::Ok, detail)
            } else {
                (
                    STEP,
                    Status::Warnings,
                    format!("{detail}; {}", rep.warnings.join("; ")),
                )
            }
        }
        Err(e) => {
            st.gc.record(now, Err(e.to_string()));
            (STEP, Status::Failed, e.to_string())
        }
    }
}

/// Copy the repository to `offsite` when due (`strata sync`, without
/// `--delete`: packs that gc removed here stay offsite until a
/// `strata sync --delete` run by hand; format-spec/sync.md).
fn sync_step(
    repo: &Repo,
    cfg: &Config,
    st: &mut State,
    now: i64,
) -> (&'static str, Status, String) {
    const STEP: &str = "sync";
    let Some(offsite) = &cfg.offsite else {
        return (STEP, Status::Skipped, "no offsite in the config".into());
    };
    if !st.sync.due(cfg.cadence.sync, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let progress = crate::sync::Progress::default();
    let outcome = crate::backend::open(offsite)
        .map_err(crate::Error::from)
        .and_then(|dst| {
            let r = crate::sync::run(
                &**repo.store(),
                &*dst,
                &crate::sync::SyncOptions::default(),
                &mut crate::repo::no_credentials,
                &progress,
            )?;
            super::sync::local_layout(offsite)?;
            Ok(r)
        });
    let result = match outcome {
        Ok(r) if r.errors == 0 => Ok(format!(
            "{offsite}: {} files ({} bytes) copied, {} already there",
            r.copied.objects, r.copied.bytes, r.skipped.objects
        )),
        Ok(r) => Err(format!(
            "{offsite}: {} errors: {}",
            r.errors,
            r.error_messages.first().cloned().unwrap_or_default()
        )),
        Err(e) => Err(format!("{offsite}: {e}")),
    };
    st.sync.record(now, result.clone());
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
fn check_step(
    cli: &super::Cli,
    repo: &Repo,
    cfg: &Config,
    st: &mut State,
    now: i64,
) -> (&'static str, Status, String) {
    use crate::maint::check::{self, CheckOptions, Order, Subset};
    const STEP: &str = "check";
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
    if !st.check.due(every, now) {
        return (STEP, Status::Skipped, "not due".into());
    }
    let read_data = match v.read_data_subset.as_deref().map(Subset::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return (STEP, Status::Failed, e),
    };
    let _lock = match super::lock(cli, repo, LockKind::Shared) {
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
    match check::run(repo, &opts, &check::Progress::default()) {
        Ok(r) if r.problems.is_empty() => {
            let detail = match &r.read_data {
                Some(d) => format!(
                    "no errors; read {} of {} packs ({} bytes, {:.1} MB/s)",
                    d.packs_read, r.packs, d.bytes, d.mb_per_s
                ),
                None => format!("no errors; structure of {} packs", r.packs),
            };
            st.check.record(now, Ok(detail.clone()));
            (STEP, Status::Ok, detail)
        }
        Ok(r) => {
            let msg = format!(
                "{} errors, first: {}",
                r.problems.len(),
                r.problems.first().map(check::describe).unwrap_or_default()
            );
            st.check.record(now, Err(msg.clone()));
            (STEP, Status::Failed, msg)
        }
        Err(e) => {
            st.check.record(now, Err(e.to_string()));
            (STEP, Status::Failed, e.to_string())
        }
    }
}

fn print_summary(s: &Summary) -> Result<()> {
    for o in &s.sources {
        let what = match o.status {
            Status::Ok | Status::Warnings => format!(
                "snapshot {} ({} files, {} read, {} added){}",
                o.snapshot
                    .as_deref()
                    .map_or("", |id| &id[..8.min(id.len())]),
                o.files,
                output::size(o.bytes_read),
                output::size(o.bytes_added),
                if o.warnings.is_empty() {
                    String::new()
                } else {
                    format!(", {} warnings", o.warnings.len())
                }
            ),
            Status::Failed => format!("FAILED: {}", o.detail.as_deref().unwrap_or("")),
            Status::Skipped => format!("skipped: {}", o.detail.as_deref().unwrap_or("")),
        };
        output::line(&format!("{:<12} {what}", o.source))?;
    }
    for st in &s.steps {
        let status = match st.status {
            Status::Ok => "",
            Status::Warnings => "warning: ",
            Status::Failed => "FAILED: ",
            Status::Skipped => "skipped: ",
        };
        output::line(&format!("{:<12} {status}{}", st.step, st.detail))?;
    }
    output::line(&format!(
        "run {} in {:.2}s",
        if s.ok { "done" } else { "FAILED" },
        s.duration_seconds
    ))
}
