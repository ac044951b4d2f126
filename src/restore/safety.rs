//! The `pre-restore` safety snapshot (README "Backup policy"): before a
//! restore writes into a target, what the paths it will write hold is
//! saved in a snapshot tagged `pre-restore`, so that a restore into the
//! wrong place loses nothing.

use crate::backup::{self, Counters, SnapshotOptions};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::Repo;
use crate::repo::lock::Lock;
use crate::snapshot::{Layout, Snapshot};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The tag of the safety snapshot `restore` takes of a non-empty target.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// Does `p` hold anything (a non-empty directory, or any other file)?
fn holds_something(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Err(_) => false,
        Ok(m) if m.is_dir() => std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()),
        Ok(_) => true,
    }
}

/// Before a restore of `snap` (of a `SNAPSHOT:PATH` when `subpath`) into
/// `target`: save the paths it will write into, if they hold anything, in
/// a snapshot tagged `pre-restore`, under `lock` (shared). Those paths are
/// `target` itself for `SNAPSHOT:PATH`, else `target` + each source path
/// of the snapshot (so `restore latest --target /` saves `/srv/bridge`,
/// not all of `/`). `None` when there is nothing to save. `no_lock`: the
/// caller took no lock (`--no-lock`), so a snapshot may not be written,
/// and a target that holds something is refused. The snapshot's per-file
/// warnings go to the repository's events.
pub fn safety_snapshot(
    repo: &Repo,
    lock: &Lock,
    snap: &Snapshot,
    subpath: bool,
    target: &Path,
    no_lock: bool,
) -> Result<Option<SnapshotId>> {
    let target = std::path::absolute(target).map_err(|e| Error::Io {
        path: target.to_path_buf(),
        source: e,
    })?;
    let candidates: Vec<PathBuf> = if subpath || snap.layout() != Layout::Absolute {
        vec![target.clone()]
    } else {
        snap.paths
            .iter()
            .map(|p| {
                let rel = Path::new(OsStr::from_bytes(p));
                target.join(rel.strip_prefix("/").unwrap_or(rel))
            })
            .collect()
    };
    let paths: Vec<PathBuf> = candidates
        .into_iter()
        .filter(|p| holds_something(p))
        .collect();
    if paths.is_empty() {
        return Ok(None);
    }
    if no_lock {
        return Err(Error::Invalid(format!(
            "{} is not empty: the pre-restore safety snapshot writes to the repository, \
             which --no-lock does not allow (add --no-safety-snapshot to restore without it)",
            target.display()
        )));
    }
    let opts = SnapshotOptions {
        paths,
        tags: vec![PRE_RESTORE_TAG.to_string()],
        ..SnapshotOptions::default()
    };
    let r = backup::run(repo, &opts, &Counters::default(), lock)
        .map_err(|e| Error::Invalid(format!(
            "the safety snapshot of {} failed, nothing was restored (--no-safety-snapshot skips it): {e}",
            target.display()
        )))?;
    for w in &r.warnings {
        repo.events().warning(&format!("safety snapshot: {w}"));
    }
    Ok(Some(r.id))
}
