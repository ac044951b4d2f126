//! Running a recovery plan ([`run`]): each source's steps in order, timed
//! and logged (a notice per step, as `strata run` logs); the first failure
//! stops it, and the steps after it are listed as not run. A command
//! source saves the live database (its own backup command) *before*
//! `before_restore`, since that usually stops the server the dump needs;
//! paths and sqlite sources are saved after it, when nothing writes them.

use super::command;
use super::plan::{Plan, Planned};
use crate::backup::{self, Counters, SnapshotOptions, StdinSource};
use crate::error::Result;
use crate::events::Events;
use crate::policy::config::PRE_RESTORE_TAG;
use crate::policy::{Config, SourceKind};
use crate::repo::Repo;
use crate::repo::lock::{Lock, LockKind};
use crate::session::Session;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Done.
    Ok,
    /// Failed: the recovery stopped here.
    Failed,
    /// Not run, because an earlier step failed.
    NotRun,
}

/// One step of the recovery.
#[derive(Debug, Serialize)]
pub struct StepRecord {
    /// The source.
    pub source: String,
    /// `before_restore`, `safety`, `restore`, `after_restore` or
    /// `health_check`.
    pub step: &'static str,
    /// How it ended.
    pub status: StepStatus,
    /// What it did, or the error.
    pub detail: String,
    /// Wall time.
    pub duration_seconds: f64,
    /// The `pre-restore` snapshot a safety step saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// What `recover` did: printed by `recover --json` and, on failure,
/// POSTed to the webhook.
#[derive(Debug, Serialize)]
pub struct RecoverSummary {
    /// Format version of this JSON (README "strata recover").
    pub version: u32,
    /// `recover`, for a webhook that also gets `run` summaries.
    pub event: &'static str,
    /// The policy file.
    pub config: PathBuf,
    /// The repository.
    pub repository: String,
    /// This host.
    pub host: String,
    /// Start (RFC 3339, UTC).
    pub started: String,
    /// The measured recovery time: from the first step to the last.
    pub duration_seconds: f64,
    /// Every step ran and succeeded.
    pub ok: bool,
    /// The steps, in order, with those not run.
    pub steps: Vec<StepRecord>,
    /// `SOURCE/STEP` of each step not run.
    pub not_run: Vec<String>,
    /// Why the recovery did not start (a problem of the plan, the lock).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The steps of source `p`, in order.
fn steps_of(p: &Planned) -> Vec<&'static str> {
    let d = &p.src.restore;
    let safety = p.safety.is_some().then_some("safety");
    let before = d.before_restore.is_some().then_some("before_restore");
    let order = if matches!(p.src.kind, SourceKind::Command { .. }) {
        [safety, before]
    } else {
        [before, safety]
    };
    order
        .into_iter()
        .chain([
            Some("restore"),
            d.after_restore.is_some().then_some("after_restore"),
            d.health_check.is_some().then_some("health_check"),
        ])
        .flatten()
        .collect()
}

/// Run `plan` (made by [`super::plan()`]) on `repo`, under a
/// shared lock of `session`'s lock options, reporting each step to
/// `events`. A plan with problems runs nothing. The summary is POSTed to
/// the policy's webhook when the recovery failed.
pub fn run(
    session: &Session,
    repo: &Repo,
    cfg: &Config,
    plan: &Plan,
    events: &Arc<dyn Events>,
) -> RecoverSummary {
    let mut sum = RecoverSummary {
        version: 1,
        event: "recover",
        config: plan.config.clone(),
        repository: repo.store().name().to_string(),
        host: cfg.host.clone().unwrap_or_else(crate::sys::hostname),
        started: crate::sys::rfc3339(crate::sys::now_ns()),
        duration_seconds: 0.0,
        ok: false,
        steps: Vec::new(),
        not_run: Vec::new(),
        error: None,
    };
    let t0 = Instant::now();
    // at a point in time (a read-only view) recover writes nothing to the
    // repository when no safety snapshot is taken
    let reads_only = crate::backend::point_in_time().is_some()
        && plan.sources.iter().all(|p| p.safety.is_none());
    let lock = if plan.problems.is_empty() {
        (if reads_only {
            Ok(())
        } else {
            session.writes("recover")
        })
        .and_then(|()| session.lock(repo, LockKind::Shared))
        .map_err(|e| e.to_string())
    } else {
        Err(format!(
            "the plan has problems: {}",
            plan.problems.join("; ")
        ))
    };
    match lock {
        Ok(lock) => run_steps(
            &Ctx {
                repo,
                cfg,
                lock: &lock,
                events,
            },
            plan,
            &mut sum,
        ),
        Err(e) => sum.error = Some(e),
    }
    sum.duration_seconds = t0.elapsed().as_secs_f64();
    sum.ok = sum.error.is_none() && sum.steps.iter().all(|s| s.status == StepStatus::Ok);
    if !sum.ok {
        post(cfg, &sum, events);
    }
    sum
}

/// What every step needs.
struct Ctx<'a> {
    repo: &'a Repo,
    cfg: &'a Config,
    lock: &'a Lock,
    events: &'a Arc<dyn Events>,
}

/// Every step of every source, until one fails.
fn run_steps(cx: &Ctx<'_>, plan: &Plan, sum: &mut RecoverSummary) {
    let mut failed = false;
    for p in &plan.sources {
        for step in steps_of(p) {
            if failed {
                sum.not_run.push(format!("{}/{step}", p.source));
                sum.steps.push(StepRecord {
                    source: p.source.clone(),
                    step,
                    status: StepStatus::NotRun,
                    detail: "an earlier step failed".into(),
                    duration_seconds: 0.0,
                    snapshot: None,
                });
                continue;
            }
            let t = Instant::now();
            let (result, snapshot) = match run_step(cx, p, step) {
                Ok((detail, snap)) => (Ok(detail), snap),
                Err(e) => (Err(e), None),
            };
            let secs = t.elapsed().as_secs_f64();
            let (status, detail) = match result {
                Ok(d) => (StepStatus::Ok, d),
                Err(e) => {
                    failed = true;
                    (StepStatus::Failed, e)
                }
            };
            cx.events.notice(&format!(
                "recover {} {step} {} in {secs:.2}s{}{detail}",
                p.source,
                if status == StepStatus::Ok {
                    "ok"
                } else {
                    "FAILED"
                },
                if detail.is_empty() { "" } else { ": " },
            ));
            sum.steps.push(StepRecord {
                source: p.source.clone(),
                step,
                status,
                detail,
                duration_seconds: secs,
                snapshot,
            });
        }
    }
}

/// One step: its detail (and the safety snapshot), or the error.
fn run_step(
    cx: &Ctx<'_>,
    p: &Planned,
    step: &str,
) -> std::result::Result<(String, Option<String>), String> {
    let d = &p.src.restore;
    let shell = |c: &Option<String>, timeout| match c {
        Some(c) => command::run(c, timeout).map(|said| (said, None)),
        None => Ok((String::new(), None)),
    };
    match step {
        "before_restore" => shell(&d.before_restore, None),
        "after_restore" => shell(&d.after_restore, None),
        "health_check" => shell(&d.health_check, Some(d.health_timeout)),
        "safety" => match safety(cx, p) {
            Ok(Some((id, what))) => {
                Ok((format!("saved {what} in snapshot {}", &id[..8]), Some(id)))
            }
            Ok(None) => Ok(("nothing to save".into(), None)),
            Err(e) => Err(format!(
                "the safety snapshot failed, nothing was restored (--no-safety-snapshot \
                 skips it): {e}"
            )),
        },
        _ => super::write::restore(cx.repo, p)
            .map(|d| (d, None))
            .map_err(|e| e.to_string()),
    }
}

/// Save what source `p`'s restore replaces in a `pre-restore` snapshot:
/// its id and what it holds, or `None` when there is nothing.
fn safety(cx: &Ctx<'_>, p: &Planned) -> Result<Option<(String, String)>> {
    let mut opts = SnapshotOptions {
        tags: vec![PRE_RESTORE_TAG.to_string()],
        host: cx.cfg.host.clone(),
        ..SnapshotOptions::default()
    };
    let mut _copy = None;
    let what = match &p.src.kind {
        SourceKind::Paths { .. } => {
            opts.paths = p
                .targets
                .iter()
                .filter(|t| std::fs::symlink_metadata(t).is_ok())
                .cloned()
                .collect();
            if opts.paths.is_empty() {
                return Ok(None);
            }
            format!("{} paths", opts.paths.len())
        }
        SourceKind::Sqlite { db, file } => {
            if !db.exists() {
                return Ok(None);
            }
            let c = crate::policy::sqlite::copy(db)?;
            opts.stdin = Some(StdinSource {
                name: file.clone(),
                command: None,
                file: Some(c.path().to_path_buf()),
                timeout: None,
            });
            _copy = Some(c);
            format!("the live database {}", db.display())
        }
        SourceKind::Command { command, file } => {
            opts.stdin = Some(StdinSource {
                name: file.clone(),
                command: Some(command.clone()),
                file: None,
                timeout: Some(p.src.command_timeout),
            });
            format!("the output of `{command}`")
        }
    };
    let r = backup::run(cx.repo, &opts, &Counters::default(), cx.lock)?;
    for w in &r.warnings {
        cx.events
            .warning(&format!("safety snapshot of {}: {w}", p.source));
    }
    Ok(Some((r.id.to_hex(), what)))
}

/// POST the summary of a failed recovery to the policy's webhook (every
/// `webhook_on` wants a failure), in its `webhook_format`, with its
/// retries.
fn post(cfg: &Config, sum: &RecoverSummary, events: &Arc<dyn Events>) {
    use crate::policy::webhook;
    let Some(hook) = &cfg.webhook else {
        return;
    };
    let mut problems: Vec<String> = sum
        .steps
        .iter()
        .filter(|s| matches!(s.status, StepStatus::Failed))
        .map(|s| format!("{}/{} FAILED: {}", s.source, s.step, s.detail))
        .collect();
    problems.extend(sum.error.iter().cloned());
    if !sum.not_run.is_empty() {
        problems.push(format!("not run: {}", sum.not_run.join(", ")));
    }
    let headline = format!("strata recover FAILED on {}", sum.host);
    let sent = serde_json::to_value(sum)
        .map_err(|e| format!("summary: {e}"))
        .and_then(|json| {
            webhook::send(
                hook,
                &webhook::body(hook.format, &json, &headline, &problems),
            )
        });
    match sent {
        Ok(_) => events.notice(&format!(
            "recover: sent the failure to the webhook {}",
            webhook::shown(&hook.url)
        )),
        Err(e) => events.warning(&e),
    }
}
