//! `strata restore`: resolve `SNAPSHOT[:SUBPATH]`, restore, summarize.

use super::args::{OverwriteArg, RestoreArgs};
use super::{exit, output, progress};
use crate::error::Result;
use crate::repo::Repo;
use crate::restore::{self, Overwrite, Progress, RestoreOptions};
use crate::snapshot;
use std::sync::Arc;

pub fn run(repo: &Repo, a: &RestoreArgs) -> Result<i32> {
    let (spec, sub) = super::inspect::split_target(&a.snapshot)?;
    let f = a.filter.to_filter();
    let mut skipped = Vec::new();
    let (id, snap) = snapshot::resolve(repo, &spec, &f, &mut skipped)?;
    for w in &skipped {
        eprintln!("strata: warning: {w}");
    }
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        dry_run: a.dry_run,
        verify: a.verify,
        delete: a.delete,
        // small batches let tests cross batch boundaries cheaply
        batch_files: std::env::var("STRATA_RESTORE_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    };
    let p = Arc::new(Progress::default());
    let pc = p.clone();
    let start = std::time::Instant::now();
    let ticker = progress::start(
        "restore",
        Arc::new(move || {
            (
                progress::get(&pc.bytes_done),
                progress::get(&pc.files_done),
                progress::get(&pc.bytes_total),
            )
        }),
    );
    let r = restore::run(repo, &snap, sub.as_deref(), &opts, &p);
    drop(ticker);
    let r = r?;
    for w in &r.warnings {
        eprintln!("strata: warning: {w}");
    }
    if a.json {
        output::line(
            &serde_json::json!({"snapshot": id.to_hex(), "dry_run": a.dry_run, "report": r})
                .to_string(),
        )?;
    } else {
        for p in &r.deleted_paths {
            output::line(&format!("would delete {p}"))?;
        }
        output::line(&format!(
            "{} snapshot {} to {}: {} files, {} dirs, {} other, {}{}{}{} in {:.2}s",
            if a.dry_run {
                "would restore"
            } else {
                "restored"
            },
            id.short(),
            a.target.display(),
            r.files,
            r.dirs,
            r.other,
            output::size(r.bytes),
            if r.skipped > 0 {
                format!(", {} existing skipped", r.skipped)
            } else {
                String::new()
            },
            if a.verify {
                format!(", {} verified", r.verified)
            } else {
                String::new()
            },
            match (a.delete, a.dry_run) {
                (false, _) => String::new(),
                (true, false) => format!(", deleted {} paths", r.deleted),
                (true, true) => format!(", would delete {} paths", r.deleted),
            },
            start.elapsed().as_secs_f64()
        ))?;
    }
    Ok(if r.warnings.is_empty() && skipped.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
