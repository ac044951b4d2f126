//! `strata restore`: resolve `SNAPSHOT[:SUBPATH]`, save what the target
//! holds in a `pre-restore` safety snapshot, restore, summarize; or, with
//! `--to-command`, stream a one-file snapshot (a database dump) into a
//! command. `latest` skips `pre-restore` snapshots unless `--tag
//! pre-restore` is given; `--source NAME` is `--tag NAME`.

use super::args::{OverwriteArg, RestoreArgs};
use super::{exit, output, progress};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::id::SnapshotId;
use crate::policy::config::PRE_RESTORE_TAG;
use crate::repo::Repo;
use crate::restore::{self, Overwrite, Progress, RestoreOptions};
use crate::session::{ConfigChoice, Operation};
use crate::snapshot::tree::EntryKind;
use crate::snapshot::{self, Snapshot};
use std::sync::Arc;

pub fn run(cli: &super::Cli, a: &RestoreArgs, ev: &Arc<dyn Events>) -> Result<i32> {
    // strata.toml, when the repository or the source comes from it.
    let choice = if a.config.config.is_some() || cli.repo.is_none() || a.source.is_some() {
        ConfigChoice::IfFound(a.config.config.as_deref())
    } else {
        ConfigChoice::Implicit
    };
    let session = super::session(cli, choice)?;
    let (repo, lock) = session.open_for(Operation::Restore, ev)?;
    let (spec, sub) = super::inspect::split_target(&a.snapshot)?;
    let mut f = a.filter.to_filter();
    if let Some(s) = &a.source {
        f.tags.push(s.clone());
    }
    if !f.tags.iter().any(|t| t == PRE_RESTORE_TAG) {
        f.skip_tags.push(PRE_RESTORE_TAG.to_string());
    }
    let mut skipped = Vec::new();
    let (id, snap) = {
        let reader = crate::read::BlobReader::reporting(&repo)?;
        crate::inspect::latest::resolve(&reader, &spec, sub.as_deref(), &f, &mut skipped)?
    };
    // threat-model.md "Rollback and deletion": `latest` may be older than
    // a snapshot the storage hides; restored all the same, with exit 3.
    if spec == "latest" {
        let vanished = snapshot::vanished(&repo)?;
        if let Some(w) = crate::repo::seen::warning(&vanished) {
            skipped.push(format!(
                "{w}; `latest` is {} of {}, and may not be the newest",
                id.short(),
                snap.time_string()
            ));
        }
    }
    for w in &skipped {
        eprintln!("strata: warning: {w}");
    }
    if let Some(cmd) = &a.to_command {
        let code = to_command(&repo, a, id, &snap, sub.as_deref(), cmd)?;
        return Ok(if skipped.is_empty() {
            code
        } else {
            exit::WARNINGS
        });
    }
    let target = a
        .target
        .clone()
        .ok_or_else(|| Error::Invalid("give --target DIR or --to-command COMMAND".into()))?;
    let opts = RestoreOptions {
        target: target.clone(),
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
        ..RestoreOptions::default()
    };
    opts.check()?;
    let safety = if a.dry_run || a.no_safety_snapshot {
        None
    } else {
        let no_lock = session.lock_options().no_lock;
        restore::safety_snapshot(&repo, &lock, &snap, sub.is_some(), &target, no_lock)?
    };
    let start = std::time::Instant::now();
    let r = with_progress(&repo, &snap, sub.as_deref(), &opts);
    let r = r.map_err(|e| match safety {
        Some(s) => Error::Invalid(format!(
            "{e} (what {} held was saved first in snapshot {}, tag {PRE_RESTORE_TAG})",
            target.display(),
            s.short()
        )),
        None => e,
    })?;
    drop(lock);
    for w in &r.warnings {
        eprintln!("strata: warning: {w}");
    }
    print(a, id, safety, &r, start.elapsed().as_secs_f64())?;
    Ok(if r.warnings.is_empty() && skipped.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

/// The restore, with a progress display.
fn with_progress(
    repo: &Repo,
    snap: &Snapshot,
    sub: Option<&[u8]>,
    opts: &RestoreOptions,
) -> Result<restore::RestoreReport> {
    let p = Arc::new(Progress::default());
    let pc = p.clone();
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
    let r = restore::run(repo, snap, sub, opts, &p);
    drop(ticker);
    r
}

/// The report as JSON or text.
fn print(
    a: &RestoreArgs,
    id: SnapshotId,
    safety: Option<SnapshotId>,
    r: &restore::RestoreReport,
    secs: f64,
) -> Result<()> {
    if a.json {
        return output::line(
            &serde_json::json!({
                "snapshot": id.to_hex(),
                "dry_run": a.dry_run,
                "safety_snapshot": safety.map(|s| s.to_hex()),
                "report": r,
            })
            .to_string(),
        );
    }
    let target = a.target.as_deref().unwrap_or(std::path::Path::new(""));
    if let Some(s) = safety {
        output::line(&format!(
            "saved what {} held in snapshot {} (tag {PRE_RESTORE_TAG})",
            target.display(),
            s.short()
        ))?;
    }
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
        target.display(),
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
        secs
    ))
}

/// `--to-command`: the snapshot's one file (or `:PATH`) into `cmd`'s stdin.
fn to_command(
    repo: &Repo,
    a: &RestoreArgs,
    id: SnapshotId,
    snap: &Snapshot,
    sub: Option<&[u8]>,
    cmd: &str,
) -> Result<i32> {
    let reader = crate::read::BlobReader::reporting(repo)?;
    let (path, entry) = match sub {
        Some(p) => {
            let found = crate::inspect::locate(&reader, snap, p)?;
            (found.path, found.entry)
        }
        None => {
            let root = crate::inspect::locate(&reader, snap, b"/")?;
            let listing = root.listing(&reader, snap)?.unwrap_or_default();
            if listing.entries.len() != 1 {
                return Err(Error::Invalid(format!(
                    "snapshot {} holds {} top-level entries, not one file: give SNAPSHOT:PATH",
                    id.short(),
                    listing.entries.len()
                )));
            }
            let name = listing.entries[0].name.clone();
            let mut p = b"/".to_vec();
            p.extend_from_slice(&name);
            let found = crate::inspect::locate(&reader, snap, &p)?;
            (found.path, found.entry)
        }
    };
    let shown = super::inspect::shown(&path);
    let e = match entry {
        Some(e) if e.kind() == EntryKind::File => e,
        _ => {
            return Err(Error::Invalid(format!(
                "{shown} in snapshot {} is not a regular file",
                id.short()
            )));
        }
    };
    let start = std::time::Instant::now();
    let mut child = crate::sys::shell(cmd)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| Error::Invalid(format!("cannot run `{cmd}`: {err}")))?;
    let streamed = match child.stdin.take() {
        Some(stdin) => {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
            crate::inspect::cat(&reader, &e, &mut w)
            // dropping `w` closes the command's stdin
        }
        None => Err(Error::Invalid(format!("`{cmd}`: no stdin"))),
    };
    let status = child
        .wait()
        .map_err(|err| Error::Invalid(format!("waiting for `{cmd}`: {err}")))?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "`{cmd}` failed ({status}) while restoring {shown} of snapshot {}",
            id.short()
        )));
    }
    if let Err(err) = streamed {
        return Err(Error::Invalid(format!(
            "streaming {shown} of snapshot {} into `{cmd}`: {err}",
            id.short()
        )));
    }
    if a.json {
        output::line(
            &serde_json::json!({
                "snapshot": id.to_hex(),
                "path": shown,
                "command": cmd,
                "bytes": e.size,
            })
            .to_string(),
        )?;
    } else {
        eprintln!(
            "strata: restored {shown} of snapshot {} into `{cmd}`: {} in {:.2}s",
            id.short(),
            output::size(e.size),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(exit::OK)
}
