//! `latest:PATH` (issue 22): the newest snapshot that passes the filters
//! *and holds PATH*. A repository with several sources has a newer
//! snapshot of another source most of the time, so "the newest snapshot,
//! then look for PATH in it" fails whenever a database was dumped after
//! the files were saved. A path that no snapshot holds is one error that
//! says how many snapshots were searched, and which was the newest.

use super::locate_exact;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::read::BlobReader;
use crate::snapshot::{self, Filter, Snapshot};

/// Does `snap` hold the path `arg` (as [`super::locate`] spells it)?
pub fn holds(reader: &BlobReader, snap: &Snapshot, arg: &[u8]) -> Result<bool> {
    for spelling in crate::paths::spellings(arg) {
        if locate_exact(reader, snap, &spelling)?.is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Is `path` the root (or nothing), which every snapshot holds?
fn is_root(path: &[u8]) -> bool {
    path.iter().all(|&b| b == b'/')
}

/// Resolve `spec` (`latest` or an id prefix) for a `SNAPSHOT:PATH`
/// argument. For `latest` with a `path` other than the root: the newest
/// snapshot passing `filter` that holds `path`; else as
/// [`snapshot::resolve`]. Unreadable manifests are skipped and described
/// in `warnings`.
pub fn resolve(
    reader: &BlobReader,
    spec: &str,
    path: Option<&[u8]>,
    filter: &Filter,
    warnings: &mut Vec<String>,
) -> Result<(SnapshotId, Snapshot)> {
    let repo = reader.repo();
    let path = match path {
        Some(p) if spec == "latest" && !is_root(p) => p,
        _ => return snapshot::resolve(repo, spec, filter, warnings),
    };
    let (list, bad) = snapshot::list(repo)?;
    warnings.extend(
        bad.iter()
            .map(|e| format!("skipping unreadable snapshot: {e}")),
    );
    let mut searched = 0usize;
    let mut newest: Option<(SnapshotId, String)> = None;
    let mut future = Vec::new();
    let listed: Vec<_> = list
        .into_iter()
        .rev()
        .filter(|(id, s)| !snapshot::skip_future(id, s, &mut future))
        .collect();
    warnings.extend(future);
    for (id, s) in listed.into_iter().filter(|(_, s)| filter.matches(s)) {
        searched += 1;
        if newest.is_none() {
            newest = Some((id, s.time_string()));
        }
        if holds(reader, &s, path)? {
            return Ok((id, s));
        }
    }
    // as the user spelled it (`\xe8` escapes stay as typed)
    let shown = String::from_utf8_lossy(path);
    Err(match newest {
        None => snapshot::first_error(bad)
            .unwrap_or_else(|| Error::SnapshotNotFound(format!("latest (holding {shown})"))),
        Some((id, time)) => Error::Invalid(format!(
            "{shown}: no such file or directory in any of the {searched} snapshots searched{} \
             (the newest: {} of {time})",
            filter.describe(),
            id.short()
        )),
    })
}
