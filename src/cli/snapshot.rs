//! `strata snapshot`: options, progress, summary line or JSON, exit code.

use super::args::SnapshotArgs;
use super::{exit, output, progress};
use crate::backup::{self, Counters, SnapshotOptions, StdinSource};
use crate::error::{Error, Result};
use crate::repo::Repo;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn options(a: &SnapshotArgs) -> Result<SnapshotOptions> {
    let dash = a.paths.iter().filter(|p| p.as_os_str() == "-").count();
    if dash > 1 {
        return Err(Error::Invalid("`-` given more than once".into()));
    }
    if dash == 1 && a.stdin_from_command.is_some() {
        return Err(Error::Invalid(
            "use either `-` or --stdin-from-command, not both".into(),
        ));
    }
    let stdin = (dash == 1 || a.stdin_from_command.is_some()).then(|| StdinSource {
        name: a.stdin_name.clone(),
        command: a.stdin_from_command.clone(),
        file: None,
        timeout: None,
    });
    Ok(SnapshotOptions {
        paths: a
            .paths
            .iter()
            .filter(|p| p.as_os_str() != "-")
            .cloned()
            .collect(),
        stdin,
        tags: a.tags.clone(),
        host: a.host.clone(),
        excludes: a.excludes.clone(),
        exclude_if_present: a.exclude_if_present.clone(),
        one_file_system: a.one_file_system,
        parent: a.parent.clone(),
        force_rehash: a.force_rehash,
        time: match &a.time {
            Some(t) => Some(
                crate::snapshot::retention::parse_time(t, &jiff::tz::TimeZone::system())
                    .map_err(|e| Error::Invalid(format!("--time {t:?}: {e}")))?,
            ),
            None => None,
        },
    })
}

pub fn run(repo: &Repo, a: &SnapshotArgs, lock: &crate::repo::lock::Lock) -> Result<i32> {
    let opts = options(a)?;
    let counters = Arc::new(Counters::default());
    // On a terminal, estimate the total in the background for an ETA.
    let total = Arc::new(AtomicU64::new(0));
    let (scanned, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let scan = (progress::is_terminal() && opts.stdin.is_none()).then(|| {
        let (paths, total, scanned, stop) = (
            opts.paths.clone(),
            total.clone(),
            scanned.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            backup::estimate_size(&paths, &total, &stop);
            scanned.store(true, Ordering::Relaxed);
        })
    });
    let (c, t, sc) = (counters.clone(), total.clone(), scanned.clone());
    let ticker = progress::start(
        "snapshot",
        Arc::new(move || {
            let total = if sc.load(Ordering::Relaxed) {
                progress::get(&t)
            } else {
                0
            };
            (
                progress::get(&c.progress_bytes),
                progress::get(&c.progress_files),
                total,
            )
        }),
    );
    let r = backup::run(repo, &opts, &counters, lock);
    drop(ticker);
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = scan {
        let _ = h.join();
    }
    let r = r?;
    for w in &r.warnings {
        eprintln!("strata: warning: {w}");
    }
    let s = &r.snapshot.summary;
    if a.json {
        let v = serde_json::json!({
            "id": r.id.to_hex(),
            "parent": r.snapshot.parent.map(|p| p.to_hex()),
            "tree": r.snapshot.tree.to_hex(),
            "summary": s,
            "files": s.files(),
            "warnings": r.warnings,
        });
        output::line(&v.to_string())?;
    } else {
        output::line(&format!(
            "snapshot {} saved: {} files ({} new, {} changed, {} unchanged), {} dirs, {} read, {} added ({} stored) in {:.2}s{}",
            r.id.short(),
            s.files(),
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.dirs,
            output::size(s.bytes_read),
            output::size(s.bytes_added),
            output::size(s.stored_added),
            s.duration_ns as f64 / 1e9,
            if r.warnings.is_empty() {
                String::new()
            } else {
                format!(", {} warnings", r.warnings.len())
            }
        ))?;
    }
    Ok(if r.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
