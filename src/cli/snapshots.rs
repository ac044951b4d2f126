//! `strata snapshots`: a table, or JSON.

use super::args::SnapshotsArgs;
use super::{exit, output};
use crate::error::Result;
use crate::repo::Repo;
use crate::snapshot;

pub fn run(repo: &Repo, a: &SnapshotsArgs) -> Result<i32> {
    let f = a.source.narrow(a.filter.to_filter());
    let (all, bad) = snapshot::list(repo)?;
    // Reported every time until acknowledged (repo/seen.rs).
    let vanished = snapshot::vanished(repo)?;
    if let Some(w) = crate::repo::seen::warning(&vanished) {
        eprintln!("strata: warning: {w}");
    }
    let list: Vec<_> = all.into_iter().filter(|(_, s)| f.matches(s)).collect();
    if a.json {
        let v: Vec<_> = list
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "time": s.time_string(),
                    "host": s.host,
                    "username": s.username,
                    "tags": s.tags,
                    "paths": s.path_strings(),
                    "tree": s.tree.to_hex(),
                    "parent": s.parent.map(|p| p.to_hex()),
                    "files": s.summary.files(),
                    "size": s.summary.total_bytes,
                    "added": s.summary.stored_added,
                    "summary": s.summary,
                    // the write-only key that signed it (write-only.md), else null
                    "writer": s.writer.as_ref().map(|k| k.to_string()),
                })
            })
            .collect();
        output::line(&serde_json::Value::Array(v).to_string())?;
        return done(bad);
    }
    output::line(&format!(
        "{:<8}  {:<20}  {:<12}  {:<12}  {:>8}  {:>10}  {:>10}  paths",
        "id", "time", "host", "tags", "files", "size", "added"
    ))?;
    for (id, s) in &list {
        output::line(&format!(
            "{:<8}  {:<20}  {:<12}  {:<12}  {:>8}  {:>10}  {:>10}  {}",
            id.short(),
            s.time_string(),
            s.host,
            s.tags.join(","),
            s.summary.files(),
            output::size(s.summary.total_bytes),
            output::size(s.summary.stored_added),
            s.path_strings().join(" ")
        ))?;
    }
    output::line(&format!("{} snapshots", list.len()))?;
    done(bad)
}

/// The readable snapshots are printed; a damaged manifest still fails the
/// command, naming it (one line).
fn done(bad: Vec<crate::Error>) -> Result<i32> {
    match snapshot::first_error(bad) {
        Some(e) => Err(e),
        None => Ok(exit::OK),
    }
}
