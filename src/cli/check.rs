//! `strata check` and `strata rebuild-index`: options, the report as text
//! or JSON (version 1; fields are only added). Exit 0 when the repository
//! is clean, 1 when problems were found (the report says which) or the
//! check could not run (one `strata:` line), 2 for a bad command line.

use super::args::{CheckArgs, RebuildIndexArgs};
use super::{exit, output, progress};
use crate::error::{Error, Result};
use crate::maint::check::{self, CheckOptions, CheckReport, Order, Subset};
use crate::repo::Repo;
use std::sync::Arc;

/// Problems printed with their blobs and uses in full; the rest one line each.
const DETAILED: usize = 20;
/// Blobs and uses printed per problem.
const LINES: usize = 10;

fn options(a: &CheckArgs) -> CheckOptions {
    CheckOptions {
        read_data: match (a.read_data, a.read_data_subset) {
            (_, Some(s)) => Some(s),
            (true, None) => Some(Subset::All),
            (false, None) => None,
        },
        order: Order::Random,
        max_age: a.max_age,
    }
}

pub fn run(repo: &Repo, a: &CheckArgs) -> Result<i32> {
    let r = execute(repo, &options(a))?;
    for w in &r.warnings {
        eprintln!("strata: warning: {w}");
    }
    if a.json {
        let mut v = serde_json::to_value(&r).map_err(|e| Error::Internal(e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            o.insert("version".into(), 1.into());
            o.insert("ok".into(), r.problems.is_empty().into());
        }
        output::line(&v.to_string())?;
    } else {
        print(&r)?;
    }
    Ok(if r.problems.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}

/// Run a check with a progress display.
pub fn execute(repo: &Repo, opts: &CheckOptions) -> Result<CheckReport> {
    let p = Arc::new(check::Progress::default());
    let pc = p.clone();
    let ticker = progress::start(
        "check",
        Arc::new(move || {
            (
                progress::get(&pc.bytes),
                progress::get(&pc.mark.trees),
                progress::get(&pc.total_bytes),
            )
        }),
    );
    let r = check::run(repo, opts, &p);
    drop(ticker);
    r
}

fn print(r: &CheckReport) -> Result<()> {
    output::line(&format!(
        "checked {} snapshots, {} trees, {} blobs, {} packs",
        r.snapshots, r.trees, r.blobs, r.packs
    ))?;
    if let Some(d) = &r.read_data {
        output::line(&format!(
            "read {} packs ({}) in {:.2}s: {:.1} MB/s{}",
            d.packs_read,
            output::size(d.bytes),
            d.seconds,
            d.mb_per_s,
            if d.packs_recent > 0 {
                format!(
                    "; {} packs verified within --max-age left out",
                    d.packs_recent
                )
            } else {
                String::new()
            }
        ))?;
    }
    if !r.unreferenced_packs.is_empty() {
        output::line(&format!(
            "{} unreferenced packs (not an error; gc removes them): {}",
            r.unreferenced_packs.len(),
            r.unreferenced_packs
                .iter()
                .take(LINES)
                .map(|p| p[..16.min(p.len())].to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    for (i, p) in r.problems.iter().enumerate() {
        output::line(&format!("error: {}: {}", p.object, p.message))?;
        if i >= DETAILED {
            continue;
        }
        for b in p.blobs.iter().take(LINES) {
            output::line(&format!("  blob {}: {}", b.id, b.detail))?;
        }
        if p.blobs.len() > LINES {
            output::line(&format!("  … and {} more blobs", p.blobs.len() - LINES))?;
        }
        for u in p.used_by.iter().take(LINES) {
            output::line(&format!(
                "  used by snapshot {} {}",
                &u.snapshot[..8.min(u.snapshot.len())],
                u.path
            ))?;
        }
        if p.used_by.len() > LINES {
            output::line(&format!("  … and {} more uses", p.used_by.len() - LINES))?;
        }
    }
    output::line(&if r.problems.is_empty() {
        format!("no errors found ({:.2}s)", r.seconds)
    } else {
        format!("{} errors found ({:.2}s)", r.problems.len(), r.seconds)
    })
}

pub fn rebuild_index(repo: &Repo, a: &RebuildIndexArgs) -> Result<i32> {
    let r = crate::repo::rebuild::rebuild(repo, false)?
        .ok_or_else(|| Error::Internal("index.sqlite: the rebuild did not run".into()))?;
    for w in &r.warnings {
        eprintln!("strata: warning: {w}");
    }
    if a.json {
        output::line(&serde_json::to_string(&r).map_err(|e| Error::Internal(e.to_string()))?)?;
    } else {
        output::line(&format!(
            "rebuilt index.sqlite from the trailers of {} packs ({} blobs) in {:.2}s",
            r.packs, r.blobs, r.seconds
        ))?;
    }
    Ok(if r.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
