//! `strata gc`: options, the report as text or JSON.

use super::args::GcArgs;
use super::{exit, output, progress};
use crate::error::{Error, Result};
use crate::maint::gc::{self, GcOptions, GcReport, Packs};
use crate::maint::plan::{MaxUnused, parse_size};
use crate::repo::Repo;
use crate::repo::gcstate;
use crate::repo::lock::Lock;
use std::sync::Arc;

fn options(a: &GcArgs) -> Result<GcOptions> {
    Ok(GcOptions {
        dry_run: a.dry_run,
        max_unused: MaxUnused::parse(&a.max_unused)
            .map_err(|e| Error::Invalid(format!("--max-unused: {e}")))?,
        max_repack: match &a.max_repack {
            Some(s) => {
                Some(parse_size(s).map_err(|e| Error::Invalid(format!("--max-repack: {e}")))?)
            }
            None => None,
        },
        grace: match a.grace {
            Some(g) => g,
            None => gcstate::grace_from_env()?,
        },
        acknowledge_missing: a.acknowledge_missing,
    })
}

pub fn run(repo: &Repo, a: &GcArgs, lock: &Lock) -> Result<i32> {
    execute(repo, &options(a)?, lock, a.json)
}

/// gc with the default options (`forget --gc`).
pub fn run_default(repo: &Repo, lock: &Lock, json: bool) -> Result<i32> {
    let opts = GcOptions {
        grace: gcstate::grace_from_env()?,
        ..GcOptions::default()
    };
    execute(repo, &opts, lock, json)
}

fn execute(repo: &Repo, opts: &GcOptions, lock: &Lock, json: bool) -> Result<i32> {
    let p = Arc::new(gc::Progress::default());
    let pc = p.clone();
    let ticker = progress::start(
        "gc: marking",
        Arc::new(move || (0, progress::get(&pc.trees), 0)),
    );
    let r = gc::run(repo, opts, lock, &p);
    drop(ticker);
    let r = r?;
    for w in &r.warnings {
        eprintln!("strata: warning: {w}");
    }
    if json {
        output::line(&serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?)?;
    } else {
        print(&r)?;
    }
    Ok(if r.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

fn packs(p: &Packs) -> String {
    format!("{} packs ({})", p.packs, output::size(p.bytes))
}

fn print(r: &GcReport) -> Result<()> {
    let would = |done: &'static str, dry: &'static str| if r.dry_run { dry } else { done };
    let instant = r.grace_secs == 0;
    output::line(&format!(
        "{} snapshots{}, {} trees, {} blobs in use ({}); repository: {}",
        r.snapshots,
        if r.forgotten_roots > 0 {
            format!(" (+{} removed within the grace period)", r.forgotten_roots)
        } else {
            String::new()
        },
        r.trees,
        r.reachable_blobs,
        output::size(r.reachable_bytes),
        packs(&r.total)
    ))?;
    output::line(&format!(
        "unused: {} {}",
        packs(&r.condemned),
        if instant {
            would("deleted", "to delete")
        } else {
            would("condemned", "to condemn")
        }
    ))?;
    output::line(&format!(
        "partly used: {} {}{}; {} kept (within --max-unused)",
        packs(&r.repacked),
        would("repacked", "to repack"),
        if r.dry_run {
            String::new()
        } else {
            format!(" into {}", packs(&r.written))
        },
        packs(&r.kept_partial),
    ))?;
    if r.still_condemned.packs + r.recovered.packs > 0 || !instant {
        output::line(&format!(
            "condemned earlier: {} still in their grace period, {} recovered (a snapshot needs them)",
            packs(&r.still_condemned),
            packs(&r.recovered),
        ))?;
    }
    output::line(&format!(
        "{}: {}{}",
        would("freed now", "would free now"),
        packs(&r.deleted),
        if r.pending_free > 0 {
            format!(
                "; {} condemned, freed by a gc {} from now or later",
                output::size(r.pending_free),
                humantime::format_duration(std::time::Duration::from_secs(r.grace_secs))
            )
        } else {
            String::new()
        }
    ))?;
    output::line(&format!(
        "gc {} in {:.2}s",
        would("done", "planned"),
        r.seconds
    ))
}
