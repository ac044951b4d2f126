//! `strata drill` ([`crate::policy::drill()`]): each source's latest
//! snapshot restored, verified, into a scratch place and timed; the
//! summary as text or `--json`. Exit code: 0 every source restored within
//! its rto, 1 a drill failed or was slower (or none could run); else as
//! when the repository cannot be opened (10, 11, 12).

use super::args::DrillArgs;
use super::{exit, output};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::policy::DrillOptions;
use crate::session::ConfigChoice;
use std::sync::Arc;

/// Drill the sources `a` names (every one if none).
pub fn run(cli: &super::Cli, a: &DrillArgs, ev: &Arc<dyn Events>) -> Result<i32> {
    let session = super::session(cli, ConfigChoice::Required(a.config.config.as_deref()))?;
    let cfg = session
        .config()
        .ok_or_else(|| Error::Invalid("no strata.toml".into()))?
        .clone();
    for n in &a.sources {
        if cfg.source(n).is_none() {
            return Err(Error::Invalid(format!(
                "{}: no source named {n:?}",
                cfg.path.display()
            )));
        }
    }
    let repo = session.open(ev)?.repo;
    repo.require_full("`drill`")?;
    let opts = DrillOptions {
        sources: a.sources.clone(),
    };
    let sum = crate::policy::drill(&session, &repo, &cfg, &opts, ev);
    if a.json {
        let json =
            serde_json::to_value(&sum).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
        output::line(&json.to_string())?;
    } else {
        for s in &sum.sources {
            let status = if s.ok {
                "ok"
            } else if s.restored {
                "SLOW"
            } else {
                "FAILED"
            };
            let rto = s
                .rto_seconds
                .map(|r| format!(" (rto {r:.0}s)"))
                .unwrap_or_default();
            output::line(&format!(
                "{:<12} {status} in {:.1}s{rto}: {}",
                s.source, s.seconds, s.detail
            ))?;
        }
        if let Some(e) = &sum.error {
            output::line(&format!("drill FAILED: {e}"))?;
        }
        output::line(&format!(
            "drill {} in {:.1}s",
            if sum.ok { "done" } else { "FAILED" },
            sum.duration_seconds
        ))?;
    }
    Ok(if sum.ok { exit::OK } else { exit::ERROR })
}
