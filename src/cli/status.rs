//! `strata status`: the health report of [`crate::policy::status()`] as
//! text, or `--json` (the report's own serialization; README "strata
//! status --json"), and with `--prometheus FILE` the same figures for
//! node_exporter's textfile collector (temp file, then rename). Exit 5
//! ([`exit::UNHEALTHY`]) when a source is older than `--max-age` (or has
//! no snapshot), the last check found errors, or the offsite copy is
//! behind.

use super::args::StatusArgs;
use super::{exit, output};
use crate::backend::fsutil;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::policy::Config;
use crate::policy::status::{
    CheckReport, SourceReport, StatusOptions, StatusReport, SyncReport, short_duration,
};
use crate::session::ConfigChoice;
use std::sync::Arc;

mod prometheus;

pub fn run(cli: &super::Cli, a: &StatusArgs, ev: &Arc<dyn Events>) -> Result<i32> {
    let session = super::session(cli, ConfigChoice::Required(a.config.config.as_deref()))?;
    let cfg = session
        .config()
        .ok_or_else(|| Error::NotFound("no strata.toml".into()))?;
    let opts = StatusOptions { max_age: a.max_age };
    let r = crate::policy::status(&session, cfg, &opts, ev)?;
    if let Some(p) = &a.prometheus {
        let text = prometheus::text(&r);
        fsutil::write_atomic(p, text.as_bytes(), fsutil::Atomic::local(0o644))?;
    }
    if a.json {
        output::line(&serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?)?;
    } else {
        print(&r, cfg)?;
    }
    Ok(if r.healthy { exit::OK } else { exit::UNHEALTHY })
}

fn print(r: &StatusReport, cfg: &Config) -> Result<()> {
    if let Some(e) = &r.repository_error {
        output::line(&format!("repository: cannot open it: {e}"))?;
    }
    for s in &r.sources {
        print_source(s)?;
    }
    output::line(&format!("check: {}", check_text(&r.check, cfg)))?;
    output::line(&format!("sync: {}", sync_text(&r.sync, cfg)))?;
    if r.problems.is_empty() {
        output::line("healthy")
    } else {
        output::line(&format!("UNHEALTHY: {}", r.problems.join("; ")))
    }
}

fn print_source(s: &SourceReport) -> Result<()> {
    let latest = match &s.latest {
        Some(l) => format!(
            "latest {} at {} ({} ago), {} snapshots",
            &l.id[..8.min(l.id.len())],
            l.time,
            short_duration(l.age_seconds * 1_000_000_000),
            s.snapshots
        ),
        None => "no snapshot".to_string(),
    };
    output::line(&format!(
        "{}: {latest}{}",
        s.source,
        if s.stale { "  STALE" } else { "" }
    ))?;
    let rules: Vec<String> = s
        .retention
        .iter()
        .map(|r| {
            if r.is_span() {
                format!("{} {}: {}", r.rule, r.target, r.kept)
            } else {
                format!("{} {}/{}", r.rule, r.kept, r.target)
            }
        })
        .collect();
    if !rules.is_empty() {
        output::line(&format!("  retention: {}", rules.join(", ")))?;
    }
    if let (Some(l), Some(st)) = (s.logical_bytes, s.stored_bytes) {
        output::line(&format!(
            "  size: {} logical, {} stored{}",
            output::size(l),
            output::size(st),
            s.dedup_ratio
                .map(|d| format!(", dedup {d:.1}x"))
                .unwrap_or_default()
        ))?;
    }
    if let Some(e) = s.last_run.as_ref().and_then(|l| l.error.as_deref()) {
        output::line(&format!("  last run FAILED: {e}"))?;
    }
    if let Some(d) = &s.drill {
        output::line(&format!(
            "  drill: last at {}, {} in {:.1}s{}{}",
            d.time,
            if d.ok { "restored" } else { "FAILED" },
            d.seconds,
            d.rto_seconds
                .map(|r| format!(" (rto {r:.0}s)"))
                .unwrap_or_default(),
            d.problem.as_ref().map(|_| "  PROBLEM").unwrap_or_default()
        ))?;
    }
    for w in &s.warnings {
        output::line(&format!("  warning: {w}"))?;
    }
    Ok(())
}

/// The check line of the text report.
fn check_text(c: &CheckReport, cfg: &Config) -> String {
    let cov = &c.coverage;
    let coverage = format!(
        "{} of {} packs read-data verified{}",
        cov.verified,
        cov.packs,
        match cov.within_seconds {
            Some(s) => format!(
                " within {}",
                humantime::format_duration(std::time::Duration::from_secs(s))
            ),
            None => String::new(),
        }
    );
    match &c.last {
        None if cfg.verification.is_none() => format!("never (not configured); {coverage}"),
        None => format!("never; {coverage}"),
        Some(l) => format!(
            "last at {}{}; {coverage}",
            l.time,
            match l.errors {
                0 => String::new(),
                n => format!(", {n} ERRORS"),
            }
        ),
    }
}

/// The sync line of the text report.
fn sync_text(s: &SyncReport, cfg: &Config) -> String {
    let Some(o) = &cfg.offsite else {
        return "not configured".into();
    };
    let last = s.last.as_ref();
    let when = match (
        last.and_then(|l| l.success.as_deref()),
        last.and_then(|l| l.error.as_deref()),
    ) {
        (_, Some(e)) => format!("to {o}: last attempt failed: {e}"),
        (Some(t), None) => format!("to {o}: last at {t}"),
        (None, None) => format!("never to {o}"),
    };
    let behind = match (s.behind_packs, s.behind_bytes) {
        (Some(0), _) => format!("{when}; the offsite copy has every pack"),
        (Some(n), Some(b)) => format!(
            "{when}; the offsite copy lacks {n} packs ({})",
            output::size(b)
        ),
        _ => when,
    };
    let behind = match &s.lock_expiry {
        Some(t) => format!("{behind}; object lock: the earliest needed object expires {t}"),
        None => behind,
    };
    let Some(c) = &s.check else {
        return behind;
    };
    let checked = match &c.last {
        Some(l) => format!("last checked at {}", l.time),
        None => "never checked".into(),
    };
    let damaged = match c.damaged_packs.len() {
        0 => String::new(),
        n => format!(", {n} DAMAGED packs"),
    };
    format!(
        "{behind}; offsite {} of {} packs read-data verified ({:.0}%){damaged}, {checked}",
        c.coverage.verified,
        c.coverage.packs,
        c.coverage.fraction * 100.0
    )
}
