//! `strata recover` ([`crate::policy::recover`]): the policy (local, or
//! stored in the repository), the plan printed first, the confirmation a
//! stored policy's commands need, the recovery, its summary. Exit code: 0
//! recovered (or a dry run), 1 a problem of the plan, commands of a stored
//! policy not confirmed, or a failed step; else as when the repository
//! cannot be opened (10, 11, 12).

use super::args::RecoverArgs;
use super::{exit, output};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::policy::recover::{
    self, Plan, Planned, RecoverOptions, RecoverSummary, StepStatus, Which,
};
use crate::session::{ConfigChoice, Session, SessionOptions};
use std::sync::Arc;

/// Recover the sources `a` names.
pub fn run(cli: &super::Cli, a: &RecoverArgs, ev: &Arc<dyn Events>) -> Result<i32> {
    if a.from.is_some() && cli.repo.is_some() && a.from != cli.repo {
        return Err(Error::Invalid(
            "give the repository once: --from or --repo".into(),
        ));
    }
    let opts = SessionOptions {
        repo: a.from.clone().or_else(|| cli.repo.clone()),
        password_file: cli.password_file.clone(),
        identity: cli.identity.clone(),
        lock: crate::session::LockOptions {
            no_lock: cli.no_lock,
            retry: cli.retry_lock,
        },
    };
    let explicit = a.config.config.as_deref();
    let choice = if a.from.is_some() {
        ConfigChoice::IfFound(explicit)
    } else {
        ConfigChoice::Required(explicit)
    };
    let session = Session::new(opts, choice)?;
    let rec = recover::open(&session, session.config(), ev)?;
    let which = match (&a.snapshot, &a.at) {
        (Some(id), _) => Which::Snapshot(id.clone()),
        (None, Some(t)) => Which::At(
            crate::snapshot::timefmt::parse_time(t, &jiff::tz::TimeZone::system())
                .map_err(Error::Invalid)?,
        ),
        (None, None) => Which::Latest,
    };
    let ropts = RecoverOptions {
        sources: a.sources.clone(),
        all: a.all,
        which,
        no_safety_snapshot: a.no_safety_snapshot,
        drill: false,
    };
    let mut plan = recover::plan(&rec.repo, &rec.config, &ropts)?;
    plan.stored_policy = rec.stored.as_ref().map(|s| s.id.to_hex());
    if !a.json {
        if let Some(s) = &rec.stored {
            print_stored(s)?;
        }
        print_plan(&plan)?;
    }
    let unconfirmed = rec.stored.is_some() && !plan.commands.is_empty() && !a.yes;
    if !plan.problems.is_empty() || a.dry_run || unconfirmed {
        return stop(a, &plan, unconfirmed);
    }
    let summary = recover::recover(&session, &rec.repo, &rec.config, &plan, ev);
    if a.json {
        output::line(&serde_json::json!({ "plan": plan, "summary": summary }).to_string())?;
    } else {
        print_summary(&summary)?;
    }
    Ok(if summary.ok { exit::OK } else { exit::ERROR })
}

/// Stop after the plan: a dry run (0), problems, or commands of a stored
/// policy that were not confirmed (1).
fn stop(a: &RecoverArgs, plan: &Plan, unconfirmed: bool) -> Result<i32> {
    let code = if plan.problems.is_empty() && !unconfirmed {
        exit::OK
    } else {
        exit::ERROR
    };
    if a.json {
        output::line(&serde_json::json!({ "plan": plan, "summary": null }).to_string())?;
    } else if !plan.problems.is_empty() {
        eprintln!("strata: nothing was run: the plan has problems (above)");
    } else if unconfirmed {
        eprintln!(
            "strata: nothing was run: the policy comes from the repository, and runs the {} \
             commands listed above; check them, then run again with --yes",
            plan.commands.len()
        );
    } else {
        eprintln!("strata: dry run: nothing was run");
    }
    Ok(code)
}

fn print_stored(s: &recover::StoredPolicy) -> Result<()> {
    output::line(&format!(
        "policy: no local strata.toml; using the one stored in snapshot {} by {} at {} (from {}):",
        s.id.short(),
        s.host,
        s.time,
        s.origin.display()
    ))?;
    for l in s.text.lines() {
        output::line(&format!("  | {l}"))?;
    }
    Ok(())
}

fn print_plan(plan: &Plan) -> Result<()> {
    output::line(&format!("recovery plan ({}):", plan.config.display()))?;
    for p in &plan.sources {
        print_source(p)?;
    }
    for pr in &plan.problems {
        output::line(&format!("PROBLEM: {pr}"))?;
    }
    output::line(&format!(
        "{} to restore in {} sources",
        output::size(plan.bytes),
        plan.sources.len()
    ))
}

fn print_source(p: &Planned) -> Result<()> {
    let snap = match (&p.snapshot, &p.time, p.age_seconds) {
        (Some(id), Some(t), Some(age)) => format!(
            "snapshot {} of {t} ({} old), {}",
            &id[..8.min(id.len())],
            humantime::format_duration(std::time::Duration::from_secs(age)),
            output::size(p.bytes)
        ),
        _ => "no snapshot".to_string(),
    };
    output::line(&format!("  {:<12} {:<8} {snap}", p.source, p.kind))?;
    let detail = |what: &str, v: &str| output::line(&format!("  {:<12} {what:<9}{v}", ""));
    if let Some(c) = &p.before_restore {
        detail("before:", c)?;
    }
    match &p.safety {
        Some(s) => detail("save:", s)?,
        None => detail("save:", "nothing (--no-safety-snapshot)")?,
    }
    let targets = p
        .targets
        .iter()
        .map(|t| t.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match &p.restore_command {
        Some(c) => detail("restore:", &format!("stream the stored file into `{c}`"))?,
        None if !targets.is_empty() => detail("restore:", &format!("to {targets} (verified)"))?,
        None => {}
    }
    for m in &p.missing {
        detail("skip:", &format!("{} (not in the snapshot)", m.display()))?;
    }
    if let Some(c) = &p.after_restore {
        detail("after:", c)?;
    }
    if let Some(c) = &p.health_check {
        detail(
            "health:",
            &format!("{c} (timeout {}s)", p.health_timeout_seconds),
        )?;
    }
    Ok(())
}

fn print_summary(s: &RecoverSummary) -> Result<()> {
    for st in &s.steps {
        let status = match st.status {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "FAILED",
            StepStatus::NotRun => "not run",
        };
        output::line(&format!(
            "{:<12} {:<15} {status:<7} {:>8.2}s  {}",
            st.source, st.step, st.duration_seconds, st.detail
        ))?;
    }
    if let Some(e) = &s.error {
        output::line(&format!("recover did not start: {e}"))?;
    }
    if s.ok {
        output::line(&format!(
            "recovered in {:.2}s (the measured recovery time)",
            s.duration_seconds
        ))
    } else {
        output::line(&format!(
            "recover FAILED after {:.2}s; not run: {}",
            s.duration_seconds,
            if s.not_run.is_empty() {
                "-".to_string()
            } else {
                s.not_run.join(", ")
            }
        ))
    }
}
