//! `strata sync DEST [--from SRC]`: the options (`args::SyncArgs`)
//! become [`SyncOptions`], both ends are opened with `backend::open`, and
//! the report is printed as text or JSON (format-spec/sync.md).

use super::args::SyncArgs;
use super::{exit, output, progress};
use crate::backend;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::maint::plan::parse_size;
use crate::session::{Session, unlock};
use crate::sync::{self, SyncOptions, SyncReport};
use std::sync::Arc;

fn options(a: &SyncArgs) -> Result<SyncOptions> {
    let limit_upload = match &a.limit_upload {
        None => None,
        Some(s) => {
            let rate = s.trim().strip_suffix("/s").unwrap_or(s.trim());
            match parse_size(rate) {
                Ok(0) => {
                    return Err(Error::Invalid(
                        "--limit-upload: 0 would never finish".into(),
                    ));
                }
                Ok(n) => Some(n),
                Err(e) => return Err(Error::Invalid(format!("--limit-upload: {e}"))),
            }
        }
    };
    Ok(SyncOptions {
        dry_run: a.dry_run,
        delete: a.delete,
        jobs: a.jobs as usize,
        limit_upload,
        open: Default::default(),
    })
}

/// The source: `--from`, else the repository of `--repo` / STRATA_REPO.
fn source(session: &Session, a: &SyncArgs) -> Result<String> {
    if let Some(s) = &a.from {
        return Ok(s.clone());
    }
    let p = session.repo_path()?;
    p.to_str().map(str::to_string).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: a repository path must be UTF-8 for sync",
            p.display()
        ))
    })
}

pub fn run(session: &Session, a: &SyncArgs, ev: &Arc<dyn Events>) -> Result<i32> {
    let opts = options(a)?;
    let from = source(session, a)?;
    if sync::layout::same_place(&from, &a.dest) {
        return Err(Error::Invalid(format!(
            "{}: source and destination are the same",
            a.dest
        )));
    }
    // strata.toml's keys too, unless the source is --from (the session
    // then holds no strata.toml)
    let sources = session.unlock_sources();
    let opts = SyncOptions {
        open: session.open_options(&sources),
        ..opts
    };
    let lock = match a.object_lock {
        None => None,
        Some(d) => Some(
            backend::ObjectLock::new(
                backend::LockMode::parse(a.lock_mode.as_deref().unwrap_or("compliance"))
                    .map_err(|e| Error::Invalid(format!("--lock-mode: {e}")))?,
                d,
            )
            .map_err(|e| Error::Invalid(format!("--object-lock: {e}")))?,
        ),
    };
    // --point-in-time applies to the source only: the destination is written
    let src = backend::open(&from)?;
    let dst = backend::open_locked(&a.dest, lock)?;
    let p = Arc::new(sync::Progress::default());
    let pc = p.clone();
    let ticker = progress::start(
        "sync",
        Arc::new(move || {
            (
                progress::get(&pc.bytes),
                progress::get(&pc.files),
                progress::get(&pc.total),
            )
        }),
    );
    // the command line's keys only, not strata.toml's
    let sources = session.given_sources();
    let r = sync::run(
        &*src,
        &*dst,
        &opts,
        &mut || Ok(unlock::credential(&sources, ev)?.0),
        &p,
    );
    drop(ticker);
    let r = r?;
    if !opts.dry_run {
        sync::layout::local_layout(&a.dest)?;
    }
    if a.json {
        output::line(&serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?)?;
    } else {
        print(&r)?;
    }
    for e in &r.failures {
        eprintln!("strata: {e}");
    }
    Ok(match r.failures.first() {
        None => exit::OK,
        Some(e) => super::exit_code(e),
    })
}

fn tally(t: &sync::Tally) -> String {
    format!("{} files ({})", t.objects, output::size(t.bytes))
}

fn print(r: &SyncReport) -> Result<()> {
    for p in &r.planned {
        output::line(&format!(
            "would {} {} ({})",
            p.action,
            p.key,
            output::size(p.bytes)
        ))?;
    }
    let rate = if r.seconds > 0.0 && !r.dry_run && r.copied.bytes > 0 {
        format!(
            ", {}/s",
            output::size((r.copied.bytes as f64 / r.seconds) as u64)
        )
    } else {
        String::new()
    };
    output::line(&format!(
        "{} {} -> {}{}",
        if r.dry_run { "would sync" } else { "synced" },
        r.source,
        r.destination,
        if r.new_mirror { " (new mirror)" } else { "" }
    ))?;
    output::line(&format!(
        "{}: {}; already there: {}; {}: {}{}",
        if r.dry_run { "would copy" } else { "copied" },
        tally(&r.copied),
        tally(&r.skipped),
        if r.dry_run { "would delete" } else { "deleted" },
        tally(&r.deleted),
        if r.config_upgraded {
            "; config upgraded to format 2"
        } else {
            ""
        }
    ))?;
    if r.replaced.objects > 0 {
        output::line(&format!(
            "{} over damaged copies at the destination: {}",
            if r.dry_run {
                "would copy again"
            } else {
                "copied again"
            },
            tally(&r.replaced)
        ))?;
    }
    if let Some(l) = &r.locks {
        output::line(&format!(
            "object lock: {} objects checked, {} extended{}{}{}",
            l.checked,
            l.extended,
            l.earliest_expiry
                .map(|t| format!(", earliest expiry {}", backend::lock::s3_date(t)))
                .unwrap_or_default(),
            if l.unlocked > 0 {
                format!(", {} without retention", l.unlocked)
            } else {
                String::new()
            },
            l.not_extended
                .as_ref()
                .map(|w| format!("; not extended: {w}"))
                .unwrap_or_default()
        ))?;
    }
    if let Some(phase) = r.stopped_before {
        output::line(&format!(
            "stopped before {phase}: {} error{}",
            r.errors,
            if r.errors == 1 { "" } else { "s" }
        ))?;
    }
    output::line(&format!(
        "sync {} in {:.2}s{rate}",
        if r.dry_run { "planned" } else { "done" },
        r.seconds
    ))
}
