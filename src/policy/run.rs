//! One run of the policy (`strata run`), in order:
//!
//! 1. **Sources** that are due (or named), each into its own snapshot
//!    tagged with the source's name, under one shared lock. A failing
//!    source does not stop the others.
//! 2. **forget** per `[retention]`, each source's snapshots on their own
//!    (grouped by host and paths, as `strata forget`), when due.
//! 3. **gc** once `gc.min_forgotten` snapshots were forgotten since the
//!    last gc, and it is due.
//! 4. **sync** to `offsite`, and 5. **check** per `[verification]`
//!    (`steps`).
//!
//! [`run`] opens and unlocks the repository itself: a failure to reach or
//! unlock it (or to start at all) is part of the [`RunSummary`], not an
//! early return. Each step writes one log line (time, step, source,
//! status, bytes, duration) to the events (as a notice) and to `run.log`
//! in the cache directory; what ran and when goes to `state.json` there
//! (`policy::state`), after each step. The summary is POSTed, as JSON, to
//! the webhook; a failed webhook is a warning.

mod heal;
mod steps;

use super::state::{self, LastRun, State};
use super::{Config, Source, SourceKind, sqlite, webhook};
use crate::backup::{self, Counters, SnapshotOptions, StdinSource};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::repo::Repo;
use crate::repo::lock::{Lock, LockKind};
use crate::session::Session;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// What to run besides the policy itself.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run these sources now, due or not (empty: every source that is due).
    pub sources: Vec<String>,
}

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
pub struct RunSummary {
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
    /// No source and no step failed, and the run started.
    pub ok: bool,
    /// Every source of the config, in name order.
    pub sources: Vec<SourceOutcome>,
    /// forget, gc, sync, check.
    pub steps: Vec<StepOutcome>,
    /// Warnings about the run itself (state file, locks).
    pub warnings: Vec<String>,
    /// Why the run did not start (the repository not reached or not
    /// unlocked, another run of it, a source name the config lacks);
    /// nothing ran then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// [`RunSummary::error`] as the error itself, for an exit code.
    #[serde(skip)]
    pub start_error: Option<Error>,
    /// Another run of the repository held it past the wait: this one was
    /// skipped (exit 11, not an alert: staleness catches a source skipped
    /// too long).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub another_run: bool,
}

impl RunSummary {
    /// A source failed (the others were saved).
    pub fn failed_source(&self) -> bool {
        self.sources.iter().any(|s| s.status == Status::Failed)
    }

    /// A step failed.
    pub fn failed_step(&self) -> bool {
        self.steps.iter().any(|s| s.status == Status::Failed)
    }

    /// What failed, one line each: the start, each failed source and step.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.error.iter().map(|e| format!("run: {e}")).collect();
        for s in self.sources.iter().filter(|s| s.status == Status::Failed) {
            out.push(format!(
                "{}: {}",
                s.source,
                s.detail.as_deref().unwrap_or("failed")
            ));
        }
        for s in self.steps.iter().filter(|s| s.status == Status::Failed) {
            out.push(format!("{}: {}", s.step, s.detail));
        }
        out
    }

    /// A source or step ended with warnings, or the run itself warned.
    pub fn warned(&self) -> bool {
        self.sources.iter().any(|s| s.status == Status::Warnings)
            || self.steps.iter().any(|s| s.status == Status::Warnings)
            || !self.warnings.is_empty()
    }
}

/// The per-step log: the events (a notice) and `run.log`.
pub(super) struct Log {
    dir: Option<PathBuf>,
    events: Arc<dyn Events>,
}

impl Log {
    pub(super) fn line(
        &self,
        (step, source): (&str, &str),
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
            crate::sys::rfc3339(crate::sys::now_ns()),
            if detail.is_empty() { "" } else { " " },
        );
        self.events.notice(&line);
        if let Some(d) = &self.dir {
            state::append_log(d, &line);
        }
    }
}

/// A run under way: the open repository, its state and the log.
pub(super) struct Runner<'a> {
    pub(super) session: &'a Session,
    pub(super) cfg: &'a Config,
    pub(super) repo: Repo,
    pub(super) st: State,
    pub(super) log: Log,
    pub(super) started: i64,
    dir: Option<PathBuf>,
    warnings: Vec<String>,
    /// The previous run, or the previous start, failed (`webhook_on =
    /// "change"` then sends a success).
    failed_before: bool,
    _run_lock: Option<std::fs::File>,
}

/// Run the policy `cfg` once, on the repository of `session` (with `cfg`
/// as its strata.toml: `repository` and the unlocking keys where the
/// session has none), reporting to `events`; the summary says what
/// happened, including a failure to start (then nothing ran and no webhook
/// was called).
pub fn run(
    session: &Session,
    cfg: &Config,
    opts: &RunOptions,
    events: &Arc<dyn Events>,
) -> RunSummary {
    let session = session.with_config(cfg);
    let started = crate::sys::now_ns();
    // A source name the policy lacks is a mistake on the command line,
    // shown to whoever typed it: not recorded, not sent.
    if let Err(e) = check_sources(cfg, opts) {
        let mut s = unstarted(&session, cfg, &e, started);
        s.start_error = Some(e);
        return s;
    }
    match Runner::start(&session, cfg, events) {
        Ok(r) => {
            super::record::record_start(&cfg.path, started, Ok(()));
            r.run(opts)
        }
        Err(e) => not_started(&session, cfg, e, started, events),
    }
}

/// The summary of a run that could not start. Another run holding the
/// repository is a skip (logged, not sent); anything else is a failure,
/// recorded for `status` under the policy file (the repository's id may
/// not be known), logged there and sent to the webhook.
fn not_started(
    session: &Session,
    cfg: &Config,
    e: Error,
    started: i64,
    events: &Arc<dyn Events>,
) -> RunSummary {
    let another_run = matches!(e, Error::RepoLocked(_));
    let mut s = unstarted(session, cfg, &e, started);
    s.another_run = another_run;
    let log = Log {
        dir: super::record::config_dir(&cfg.path),
        events: events.clone(),
    };
    if another_run {
        log.line(("run", "-"), Status::Skipped, "another run", None, 0.0);
    } else {
        let msg = e.to_string();
        log.line(("run", "-"), Status::Failed, &msg, None, 0.0);
        super::record::record_start(&cfg.path, started, Err(msg));
        if let Some(w) = post(cfg, &s, true, &log) {
            events.warning(&w);
            s.warnings.push(w);
        }
    }
    s.start_error = Some(e);
    s
}

/// The summary of a run that did not start because of `e`.
fn unstarted(session: &Session, cfg: &Config, e: &Error, started: i64) -> RunSummary {
    RunSummary {
        version: 1,
        config: cfg.path.clone(),
        repository: session.repo_path().unwrap_or_default(),
        host: cfg.host.clone().unwrap_or_else(crate::sys::hostname),
        started: crate::sys::rfc3339(started),
        duration_seconds: 0.0,
        ok: false,
        sources: Vec::new(),
        steps: Vec::new(),
        warnings: Vec::new(),
        error: Some(e.to_string()),
        start_error: None,
        another_run: false,
    }
}

/// Every source named in `opts` is one of the policy's.
fn check_sources(cfg: &Config, opts: &RunOptions) -> Result<()> {
    for n in &opts.sources {
        if cfg.source(n).is_none() {
            return Err(Error::NotFound(format!(
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
    Ok(())
}

/// POST `s` to the webhook if there is one and `webhook_on` wants it;
/// a failure is returned as a warning.
fn post(cfg: &Config, s: &RunSummary, failed_before: bool, log: &Log) -> Option<String> {
    let hook = cfg.webhook.as_ref()?;
    if !webhook::wanted(hook.on, s.ok, failed_before) {
        return None;
    }
    let json = match serde_json::to_value(s) {
        Ok(j) => j,
        Err(e) => return Some(format!("summary: {e}")),
    };
    let problems = s.problems();
    let headline = format!(
        "strata run on {} ({}): {}",
        s.host,
        s.repository.display(),
        if s.ok { "ok" } else { "FAILED" }
    );
    match webhook::send(
        hook,
        &webhook::body(hook.format, &json, &headline, &problems),
    ) {
        Ok(_) => {
            log.line(
                ("webhook", "-"),
                Status::Ok,
                &webhook::shown(&hook.url),
                None,
                0.0,
            );
            None
        }
        Err(e) => Some(e),
    }
}

impl<'a> Runner<'a> {
    /// Open the repository, take `run.lock` and load the state.
    fn start(
        session: &'a Session,
        cfg: &'a Config,
        events: &Arc<dyn Events>,
    ) -> Result<Runner<'a>> {
        session.writes("run")?;
        let repo = session.open(events)?.repo;
        let dir = state::dir(&repo.config().repo_id);
        let mut warnings = Vec::new();
        let run_lock = match &dir {
            Some(d) => Some(wait_for_run_lock(session, cfg, d)?),
            None => {
                warnings.push(
                    "no cache directory (STRATA_CACHE_DIR is empty): every source is due, \
                     and nothing is remembered for `status`"
                        .to_string(),
                );
                None
            }
        };
        let st = match &dir {
            Some(d) => {
                let (st, w) = State::load(d);
                warnings.extend(w);
                st
            }
            None => State::default(),
        };
        let failed_before =
            st.run.error.is_some() || super::record::start(&cfg.path).error.is_some();
        for w in &warnings {
            events.warning(w);
        }
        let log = Log {
            dir: dir.clone(),
            events: events.clone(),
        };
        Ok(Runner {
            session,
            cfg,
            repo,
            st,
            log,
            started: crate::sys::now_ns(),
            dir,
            warnings,
            failed_before,
            _run_lock: run_lock,
        })
    }

    /// Save the state; a failure is a warning of the run.
    pub(super) fn save(&mut self) {
        if let Some(d) = &self.dir {
            if let Err(e) = self.st.save(d) {
                self.repo.events().warning(&e.to_string());
                self.warnings.push(e.to_string());
            }
        }
    }

    /// Every phase, then the record of the run, the summary and the
    /// webhook.
    fn run(mut self, opts: &RunOptions) -> RunSummary {
        let t0 = Instant::now();
        let sources = self.sources(opts);
        let steps = steps::run(&mut self);
        let mut summary = RunSummary {
            version: 1,
            config: self.cfg.path.clone(),
            repository: self.repo.root().to_path_buf(),
            host: self.cfg.host.clone().unwrap_or_else(crate::sys::hostname),
            started: crate::sys::rfc3339(self.started),
            duration_seconds: 0.0,
            ok: false,
            sources,
            steps,
            warnings: Vec::new(),
            error: None,
            start_error: None,
            another_run: false,
        };
        summary.ok = !summary.failed_source() && !summary.failed_step();
        self.st.run.record(
            self.started,
            if summary.ok {
                Ok(String::new())
            } else {
                Err("a source or step failed".into())
            },
        );
        self.save();
        summary.warnings = std::mem::take(&mut self.warnings);
        summary.duration_seconds = t0.elapsed().as_secs_f64();
        // An unreachable webhook is a warning of the run (exit 3).
        if let Some(w) = post(self.cfg, &summary, self.failed_before, &self.log) {
            self.repo.events().warning(&w);
            summary.warnings.push(w);
        }
        summary
    }

    /// 1. The sources that are due (or named), under one shared lock.
    fn sources(&mut self, opts: &RunOptions) -> Vec<SourceOutcome> {
        let mut out = Vec::new();
        let mut shared: Option<Lock> = None;
        let cfg = self.cfg;
        for s in &cfg.sources {
            let last = self.st.sources.entry(s.name.clone()).or_default();
            if let Some(why) = not_wanted(opts, cfg, s, last, self.started) {
                out.push(skipped_source(s, why));
                continue;
            }
            if shared.is_none() {
                match self.session.lock(&self.repo, LockKind::Shared) {
                    Ok(l) => shared = Some(l),
                    Err(e) => {
                        // No source can run; record each as failed.
                        let msg = e.to_string();
                        self.log
                            .line(("snapshot", &s.name), Status::Failed, &msg, None, 0.0);
                        last.record(crate::sys::now_ns(), Err(msg.clone()));
                        out.push(failed_source(s, msg, 0.0));
                        continue;
                    }
                }
            }
            let Some(lock) = shared.as_ref() else {
                continue;
            };
            out.push(self.source(s, lock));
            self.save();
        }
        out
    }

    /// Snapshot source `s`, log it and record it in the state.
    fn source(&mut self, s: &Source, lock: &Lock) -> SourceOutcome {
        let start = crate::sys::now_ns();
        let t = Instant::now();
        let r = snapshot_source(&self.repo, self.cfg, s, lock);
        let secs = t.elapsed().as_secs_f64();
        let last = self.st.sources.entry(s.name.clone()).or_default();
        let rep = match r {
            Ok(rep) => rep,
            Err(e) => {
                let msg = e.to_string();
                self.log
                    .line(("snapshot", &s.name), Status::Failed, &msg, None, secs);
                last.record(start, Err(msg.clone()));
                return failed_source(s, msg, secs);
            }
        };
        let sum = &rep.snapshot.summary;
        let status = if rep.warnings.is_empty() {
            Status::Ok
        } else {
            Status::Warnings
        };
        for w in &rep.warnings {
            self.repo.events().warning(&format!("{}: {w}", s.name));
        }
        self.log.line(
            ("snapshot", &s.name),
            status,
            &format!("snapshot={}", rep.id.short()),
            Some((sum.bytes_read, sum.bytes_added)),
            secs,
        );
        last.record(start, Ok(rep.id.to_hex()));
        SourceOutcome {
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
        }
    }
}

/// How often to try `run.lock` while another run holds it.
const RUN_LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `run.lock` in `dir`, waiting for another run of the repository up to
/// `--retry-lock`, else `[cadence] lock_wait`; then `Error::RepoLocked`
/// (a skip: [`not_started`]).
fn wait_for_run_lock(
    session: &Session,
    cfg: &Config,
    dir: &std::path::Path,
) -> Result<std::fs::File> {
    let wait = session
        .lock_options()
        .retry
        .unwrap_or(cfg.cadence.lock_wait);
    let start = Instant::now();
    loop {
        if let Some(f) = state::run_lock(dir)? {
            return Ok(f);
        }
        if start.elapsed() >= wait {
            return Err(Error::RepoLocked(format!(
                "another `strata run` of this repository is running ({}); waited {}, skipped",
                dir.join("run.lock").display(),
                humantime::format_duration(std::time::Duration::from_secs(wait.as_secs()))
            )));
        }
        std::thread::sleep(RUN_LOCK_POLL.min(wait.saturating_sub(start.elapsed())));
    }
}

/// Why source `s` does not run now: not named (when some are), or not due.
fn not_wanted(
    opts: &RunOptions,
    cfg: &Config,
    s: &Source,
    last: &LastRun,
    now: i64,
) -> Option<&'static str> {
    if !opts.sources.is_empty() {
        return (!opts.sources.contains(&s.name)).then_some("not named on the command line");
    }
    let due = match s.every {
        Some(every) if every >= super::config::DAY => {
            last.due_at(every, s.at.unwrap_or(cfg.cadence.daily_at), now)
        }
        every => last.due(every, now),
    };
    (!due).then_some("not due")
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
                timeout: Some(s.command_timeout),
            });
        }
        SourceKind::Sqlite { db, file } => {
            let c = sqlite::copy(db)?;
            opts.stdin = Some(StdinSource {
                name: file.clone(),
                command: None,
                file: Some(c.path().to_path_buf()),
                timeout: None,
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

/// What a step ended with: its name, status and detail (`steps`, `heal`).
type Ended = (&'static str, Status, String);

/// A check's status and one-line detail.
fn outcome(done: crate::Result<crate::maint::check::CheckReport>) -> (Status, String) {
    use crate::maint::check;
    match done {
        Ok(c) if c.problems.is_empty() => {
            let detail = match &c.read_data {
                Some(d) => format!(
                    "no errors; read {} of {} packs ({} bytes, {:.1} MB/s)",
                    d.packs_read, c.packs, d.bytes, d.mb_per_s
                ),
                None => format!("no errors; structure of {} packs", c.packs),
            };
            (Status::Ok, detail)
        }
        Ok(c) => (
            Status::Failed,
            format!(
                "{} errors, first: {}",
                c.problems.len(),
                c.problems.first().map(check::describe).unwrap_or_default()
            ),
        ),
        Err(e) => (Status::Failed, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{ConfigChoice, SessionOptions};

    /// A repository that cannot be reached is in the summary (issue 19:
    /// the alerting of a later issue needs the record), not an early
    /// return: nothing ran, and the error keeps its kind for the exit code.
    #[test]
    fn a_repository_not_reached_is_part_of_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-repo");
        let text = format!(
            "repository = {:?}\n[sources.etc]\npaths = [\"/etc\"]\n",
            missing.to_str().unwrap()
        );
        let cfg = super::super::config::parse(&text, &dir.path().join("strata.toml")).unwrap();
        let session = Session::new(SessionOptions::default(), ConfigChoice::Nothing).unwrap();
        let events = crate::events::silent();
        let s = run(&session, &cfg, &RunOptions::default(), &events);
        assert!(!s.ok);
        assert!(s.sources.is_empty() && s.steps.is_empty());
        assert!(
            s.error.as_deref().unwrap_or("").contains("no-repo"),
            "{s:?}"
        );
        assert!(
            matches!(s.start_error, Some(Error::NoRepository(_))),
            "{s:?}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["ok"], false);
        assert!(json["error"].is_string(), "{json}");
    }
}
