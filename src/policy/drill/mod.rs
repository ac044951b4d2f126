//! `strata drill` (issue 24): prove that each source restores, and how
//! fast. For each source of the policy (or those named), in name order:
//! its newest snapshot (`pre-restore` ones skipped, as `recover` chooses:
//! `recover::plan`) is restored with verification into a scratch
//! directory made for it under `TMPDIR` and removed after, and the
//! source's `drill_command` runs on what was restored
//! (`recover::scratch`). Nothing is written to the source's own paths or
//! database, and nothing to the repository (no safety snapshot: nothing
//! live is replaced). Each source is timed: its measured restore time.
//!
//! The results go to `drill.json` beside the run state ([`record`]), read
//! by `status` against each source's `rto`; a failed or slow drill is
//! POSTed to the webhook ([`drill()`]; as a step of `run`, the run's
//! summary carries it).

pub mod record;

use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::policy::Config;
use crate::policy::recover::{self, RecoverOptions, Which};
use crate::repo::Repo;
use crate::repo::lock::LockKind;
use crate::session::Session;
use record::{DrillRecord, LastDrill};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What `drill` was asked.
#[derive(Clone, Debug, Default)]
pub struct DrillOptions {
    /// The sources to drill (empty: every source).
    pub sources: Vec<String>,
}

/// One source's drill.
#[derive(Clone, Debug, Serialize)]
pub struct SourceDrill {
    /// The source.
    pub source: String,
    /// The restore (and drill_command) succeeded within the rto.
    pub ok: bool,
    /// The restore (and drill_command) succeeded.
    pub restored: bool,
    /// The measured restore time.
    pub seconds: f64,
    /// The source's recovery time objective.
    pub rto_seconds: Option<f64>,
    /// The snapshot restored.
    pub snapshot: Option<String>,
    /// What it did, or why it failed.
    pub detail: String,
}

/// What `drill` did: printed by `drill --json` and, on failure, POSTed
/// to the webhook.
#[derive(Debug, Serialize)]
pub struct DrillSummary {
    /// Format version of this JSON.
    pub version: u32,
    /// `drill`, for a webhook that also gets `run` summaries.
    pub event: &'static str,
    /// The policy file.
    pub config: PathBuf,
    /// The repository.
    pub repository: String,
    /// This host.
    pub host: String,
    /// Start (RFC 3339, UTC).
    pub started: String,
    /// Wall time, all sources.
    pub duration_seconds: f64,
    /// Every source restored within its rto.
    pub ok: bool,
    /// Each source, in name order.
    pub sources: Vec<SourceDrill>,
    /// What failed or was slow, one line each.
    pub problems: Vec<String>,
    /// Why no drill ran (the lock, a source name the policy lacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Drill the sources `opts` names (every source if none) of policy `cfg`
/// from `repo`, under a shared lock of `session`; record the results
/// and POST the summary to the webhook if a drill failed or was slow.
pub fn drill(
    session: &Session,
    repo: &Repo,
    cfg: &Config,
    opts: &DrillOptions,
    events: &Arc<dyn Events>,
) -> DrillSummary {
    let sum = run(session, repo, cfg, opts, events);
    if !sum.ok {
        post(cfg, &sum, events);
    }
    sum
}

/// [`drill()`] without the webhook (a step of `run`, whose summary is
/// sent instead).
pub(crate) fn run(
    session: &Session,
    repo: &Repo,
    cfg: &Config,
    opts: &DrillOptions,
    events: &Arc<dyn Events>,
) -> DrillSummary {
    let started = crate::sys::now_ns();
    let mut sum = DrillSummary {
        version: 1,
        event: "drill",
        config: cfg.path.clone(),
        repository: repo.store().name().to_string(),
        host: cfg.host.clone().unwrap_or_else(crate::sys::hostname),
        started: crate::sys::rfc3339(started),
        duration_seconds: 0.0,
        ok: false,
        sources: Vec::new(),
        problems: Vec::new(),
        error: None,
    };
    let t0 = Instant::now();
    match drill_all(session, repo, cfg, opts, events) {
        Ok(done) => sum.sources = done,
        Err(e) => sum.error = Some(e.to_string()),
    }
    sum.duration_seconds = t0.elapsed().as_secs_f64();
    sum.problems = sum
        .sources
        .iter()
        .filter(|s| !s.ok)
        .map(|s| format!("{}: {}", s.source, s.detail))
        .chain(sum.error.iter().map(|e| format!("drill: {e}")))
        .collect();
    sum.ok = sum.problems.is_empty();
    let drills = sum
        .sources
        .iter()
        .map(|s| {
            let last = LastDrill {
                time_unix_ns: started,
                ok: s.restored,
                seconds: s.seconds,
                snapshot: s.snapshot.clone(),
                detail: s.detail.clone(),
            };
            (s.source.clone(), last)
        })
        .collect::<Vec<_>>();
    if let Some(dir) = crate::policy::state::dir(&repo.config().repo_id) {
        if let Err(e) = DrillRecord::update(&dir, drills) {
            events.warning(&format!("drill results not recorded: {e}"));
        }
    }
    sum
}

/// Plan, lock, and drill each source.
fn drill_all(
    session: &Session,
    repo: &Repo,
    cfg: &Config,
    opts: &DrillOptions,
    events: &Arc<dyn Events>,
) -> Result<Vec<SourceDrill>> {
    let ropts = RecoverOptions {
        sources: opts.sources.clone(),
        all: opts.sources.is_empty(),
        which: Which::Latest,
        no_safety_snapshot: true,
        drill: true,
    };
    if cfg.sources.is_empty() {
        return Ok(Vec::new());
    }
    let plan = recover::plan(repo, cfg, &ropts)?;
    let _lock = session.lock(repo, LockKind::Shared)?;
    let mut out = Vec::new();
    for p in &plan.sources {
        let src = cfg
            .source(&p.source)
            .ok_or_else(|| Error::Invalid(format!("no source {}", p.source)))?;
        let rto = cfg.rto_of(src);
        let t = Instant::now();
        let result = Scratch::new().and_then(|s| recover::scratch::drill(repo, p, s.path()));
        let seconds = t.elapsed().as_secs_f64();
        let (restored, mut detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        let slow = rto.is_some_and(|r| seconds > r.as_secs_f64());
        if let (true, Some(r)) = (slow, rto) {
            detail = format!(
                "took {seconds:.1}s, more than the rto of {}: {detail}",
                humantime::format_duration(r)
            );
        }
        events.notice(&format!(
            "drill {} {} in {seconds:.2}s: {detail}",
            p.source,
            if !restored {
                "FAILED"
            } else if slow {
                "SLOW"
            } else {
                "ok"
            },
        ));
        out.push(SourceDrill {
            source: p.source.clone(),
            ok: restored && !slow,
            restored,
            seconds,
            rto_seconds: rto.map(|r| r.as_secs_f64()),
            snapshot: p.snapshot.clone(),
            detail,
        });
    }
    Ok(out)
}

/// A scratch directory under `TMPDIR` (mode 0700), removed when dropped,
/// whatever the restore left in it (read-only directories included).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let token = crate::id::to_hex(&crate::sys::random_bytes::<8>()?);
        let p = std::env::temp_dir().join(format!("strata-drill-{token}"));
        std::fs::DirBuilder::new().mode(0o700).create(&p).at(&p)?;
        Ok(Scratch(p))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        writable(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Give every directory under `dir` (not following links) its owner's
/// write and search bits, so that it can be emptied.
fn writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            writable(&e.path());
        }
    }
}

/// POST the summary of a failed or slow drill to the policy's webhook
/// (every `webhook_on` wants a failure), in its format, with its retries.
fn post(cfg: &Config, sum: &DrillSummary, events: &Arc<dyn Events>) {
    use crate::policy::webhook;
    let Some(hook) = &cfg.webhook else {
        return;
    };
    let headline = format!("strata drill FAILED on {}", sum.host);
    let sent = serde_json::to_value(sum)
        .map_err(|e| format!("summary: {e}"))
        .and_then(|json| {
            webhook::send(
                hook,
                &webhook::body(hook.format, &json, &headline, &sum.problems),
            )
        });
    match sent {
        Ok(_) => events.notice(&format!(
            "drill: sent the failure to the webhook {}",
            webhook::shown(&hook.url)
        )),
        Err(e) => events.warning(&e),
    }
}
