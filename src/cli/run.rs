//! `strata run`: one run of the policy in strata.toml
//! ([`crate::policy::run()`]); the summary as text or `--json` on stdout.
//!
//! Exit code: as when it could not start (no repository: 10, locked: 11,
//! wrong key: 12, else 1), else 4 if a source failed (the others were
//! saved), else 1 if a step failed, else 3 if there were warnings, else 0.

use super::args::RunArgs;
use super::{exit, output};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::policy::run::{RunOptions, RunSummary, Status};
use crate::session::ConfigChoice;
use std::sync::Arc;

/// Run the policy once.
pub fn run(cli: &super::Cli, a: &RunArgs, ev: &Arc<dyn Events>) -> Result<i32> {
    let session = super::session(cli, ConfigChoice::Required(a.config.config.as_deref()))?;
    let cfg = session
        .config()
        .ok_or_else(|| Error::NotFound("no strata.toml".into()))?;
    let opts = RunOptions {
        sources: a.sources.clone(),
    };
    let mut summary = crate::policy::run(&session, cfg, &opts, ev);
    if let Some(e) = summary.start_error.take() {
        return Err(e);
    }
    if a.json {
        let json =
            serde_json::to_value(&summary).map_err(|e| Error::Internal(format!("summary: {e}")))?;
        output::line(&json.to_string())?;
    } else {
        print_summary(&summary)?;
    }
    Ok(if summary.failed_source() {
        exit::SOURCE_FAILED
    } else if summary.failed_step() {
        exit::ERROR
    } else if summary.warned() {
        exit::WARNINGS
    } else {
        exit::OK
    })
}

fn print_summary(s: &RunSummary) -> Result<()> {
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
