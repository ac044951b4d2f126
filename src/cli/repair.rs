//! `strata repair snapshots|packs` (format-spec/check.md "Repair"): the
//! report as text or JSON (the options are in `args`). Exit 0 when everything named is
//! repaired (or was not damaged), 1 when damage remains (a snapshot whose
//! root does not read, a pack kept because a snapshot needs a damaged blob
//! of it) or the repair could not run, 2 for a bad command line.

use super::args::{RepairCommand, RepairPacksArgs, RepairSnapshotsArgs};
use super::{exit, output};
use crate::error::{Error, Result};
use crate::id::PackId;
use crate::maint::repair::{packs, snapshots};
use crate::repo::Repo;
use crate::repo::lock::Lock;

pub fn run(repo: &Repo, c: &RepairCommand, lock: &Lock) -> Result<i32> {
    match c {
        RepairCommand::Snapshots(a) => run_snapshots(repo, a, lock),
        RepairCommand::Packs(a) => run_packs(repo, a, lock),
    }
}

fn json(v: serde_json::Value) -> Result<()> {
    output::line(&v.to_string())
}

fn run_snapshots(repo: &Repo, a: &RepairSnapshotsArgs, lock: &Lock) -> Result<i32> {
    let targets = if a.snapshots.is_empty() {
        crate::snapshot::readable(repo)?
    } else {
        crate::snapshot::resolve_all(repo, &a.snapshots)?
    };
    let done = snapshots::repair(repo, lock, &targets, a.dry_run)?;
    let failed = done.iter().any(|r| r.error.is_some());
    let code = if failed { exit::ERROR } else { exit::OK };
    if a.json {
        json(
            serde_json::json!({"version": 1, "dry_run": a.dry_run, "ok": !failed,
                                "snapshots": done}),
        )?;
        return Ok(code);
    }
    let mut damaged = 0;
    for r in &done {
        let old = r.old.short();
        if let Some(e) = &r.error {
            output::line(&format!("{old}: cannot be repaired: {e}"))?;
            continue;
        }
        if r.lost.paths.is_empty() {
            continue;
        }
        damaged += 1;
        output::line(&match &r.new {
            Some(n) => format!(
                "{old} -> {}: repaired (tag `{}`), {} files ({}) left out:",
                n.short(),
                snapshots::TAG,
                r.lost.files,
                output::size(r.lost.bytes)
            ),
            None => format!(
                "{old}: damaged, would leave out {} files ({}):",
                r.lost.files,
                output::size(r.lost.bytes)
            ),
        })?;
        for p in &r.lost.paths {
            output::line(&format!("  {p}"))?;
        }
    }
    output::line(&format!(
        "{} snapshots checked, {damaged} damaged{}",
        done.len(),
        if a.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    ))?;
    Ok(code)
}

fn run_packs(repo: &Repo, a: &RepairPacksArgs, lock: &Lock) -> Result<i32> {
    let named = a
        .packs
        .iter()
        .map(|s| {
            PackId::from_hex(s)
                .ok_or_else(|| Error::Invalid(format!("{s:?} is not a pack id (64 hex digits)")))
        })
        .collect::<Result<Vec<_>>>()?;
    let other = match &a.from {
        Some(url) => Some(crate::backend::open(url)?),
        None => None,
    };
    let done = packs::repair(repo, lock, &named, a.dry_run, other.as_deref())?;
    let kept = done.iter().any(|r| !r.deleted && r.restored_from.is_none()) && !a.dry_run;
    let code = if kept { exit::ERROR } else { exit::OK };
    if a.json {
        json(
            serde_json::json!({"version": 1, "dry_run": a.dry_run, "ok": !kept,
                                "packs": done}),
        )?;
        return Ok(code);
    }
    if done.is_empty() {
        output::line(
            "no damaged packs recorded (run `strata check --read-data`, or name the packs)",
        )?;
    }
    for r in &done {
        if let Some(from) = &r.restored_from {
            output::line(&format!(
                "pack {}: replaced by the intact copy at {from} (nothing salvaged)",
                &r.pack.to_hex()[..16]
            ))?;
            continue;
        }
        output::line(&format!(
            "pack {}: {} blobs, {} salvaged into new packs, {} stored elsewhere, {} damaged; {}",
            &r.pack.to_hex()[..16],
            r.blobs,
            r.salvaged,
            r.elsewhere,
            r.damaged.len(),
            match (&r.kept, r.deleted, a.dry_run) {
                (_, _, true) => "dry run: nothing changed".to_string(),
                (_, true, _) => "deleted".to_string(),
                (Some(why), _, _) => format!("kept: {why}"),
                (None, false, _) => "kept".to_string(),
            }
        ))?;
        for d in r.damaged.iter().take(20) {
            output::line(&format!("  damaged blob {d}"))?;
        }
    }
    Ok(code)
}
