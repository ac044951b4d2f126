//! A drill's restore (`crate::policy::drill`): source `p`'s chosen
//! snapshot restored, verified, into a scratch directory that the drill
//! made and removes, never to the source's own paths or database:
//! - a paths source: the whole snapshot under the scratch directory
//!   (`restore --verify`: written files are read back and their chunks
//!   hashed);
//! - a sqlite or command source: its stored file written into the scratch
//!   directory, synced, read back and compared (BLAKE3); a command source
//!   with a `drill_command` instead streams the file into it (every chunk
//!   is checked against its id as it is read), as `recover` streams it
//!   into `restore_command`.
//!
//! Then the source's `drill_command`, if any, with `STRATA_DRILL_DIR` (the
//! scratch directory) and, for a file, `STRATA_DRILL_FILE` in its
//! environment: load the dump into a temporary database, query it, drop it.

use super::command;
use super::plan::Planned;
use super::write::{hash_file, stored_file, write_checked};
use crate::error::{Error, Result};
use crate::policy::SourceKind;
use crate::repo::Repo;
use crate::restore::{self, Progress, RestoreOptions};
use crate::snapshot::Snapshot;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

/// Restore `p` into `scratch` (an empty directory) and run its
/// `drill_command`: a one-line detail, or why the drill failed.
pub(crate) fn drill(repo: &Repo, p: &Planned, scratch: &Path) -> Result<String> {
    if let Some(why) = &p.problem {
        return Err(Error::Invalid(why.clone()));
    }
    let Some((id, snap)) = &p.chosen else {
        return Err(Error::Invalid(format!("{}: no snapshot chosen", p.source)));
    };
    let cmd = p.src.drill_command.as_deref();
    let dir_env: (&str, &OsStr) = ("STRATA_DRILL_DIR", scratch.as_os_str());
    let what = match (&p.src.kind, cmd) {
        (SourceKind::Command { file, .. }, Some(cmd)) => {
            let (reader, e) = stored_file(repo, snap, file)?;
            let said = command::feed_with(cmd, &[dir_env], Some(p.src.drill_timeout), |w| {
                crate::inspect::cat(&reader, &e, w)
            })
            .map_err(Error::Invalid)?;
            format!(
                "streamed /{file} ({} bytes, every chunk checked) into the drill_command{}",
                e.size,
                said_text(&said)
            )
        }
        (SourceKind::Paths { .. }, _) => {
            let done = paths(repo, snap, scratch)?;
            format!("{done}{}", run_after(cmd, &[dir_env], p.src.drill_timeout)?)
        }
        (SourceKind::Sqlite { file, .. } | SourceKind::Command { file, .. }, _) => {
            let path = scratch.join(file);
            let done = file_to(repo, snap, file, &path)?;
            let file_env: (&str, &OsStr) = ("STRATA_DRILL_FILE", path.as_os_str());
            format!(
                "{done}{}",
                run_after(cmd, &[dir_env, file_env], p.src.drill_timeout)?
            )
        }
    };
    Ok(format!("{what}, from snapshot {}", id.short()))
}

/// ` (what the command said)`, or nothing.
fn said_text(said: &str) -> String {
    if said.is_empty() {
        String::new()
    } else {
        format!(" ({said})")
    }
}

/// Run the drill command, if any, after a restore (at most `timeout`).
fn run_after(cmd: Option<&str>, env: command::Env<'_>, timeout: Duration) -> Result<String> {
    match cmd {
        None => Ok(String::new()),
        Some(c) => {
            let said = command::run_with(c, env, Some(timeout)).map_err(Error::Invalid)?;
            Ok(format!("; the drill_command passed{}", said_text(&said)))
        }
    }
}

/// The whole snapshot under `scratch`, verified.
fn paths(repo: &Repo, snap: &Snapshot, scratch: &Path) -> Result<String> {
    let opts = RestoreOptions {
        target: scratch.to_path_buf(),
        verify: true,
        ..RestoreOptions::default()
    };
    let r = restore::run(repo, snap, None, &opts, &Progress::default())?;
    if let Some(w) = r.warnings.first() {
        return Err(Error::Invalid(format!(
            "the restore warned ({} warnings), first: {w}",
            r.warnings.len()
        )));
    }
    Ok(format!(
        "restored {} files ({} bytes, {} verified) into a scratch directory",
        r.files, r.bytes, r.verified
    ))
}

/// The stored `/file` of `snap`, written to `path`, read back, compared.
fn file_to(repo: &Repo, snap: &Snapshot, file: &str, path: &Path) -> Result<String> {
    let (reader, e) = stored_file(repo, snap, file)?;
    let (hash, len) = write_checked(&reader, &e, path)?;
    let back = hash_file(path)?;
    if back != (hash, len) || len != e.size {
        return Err(Error::Invalid(format!(
            "{}: read back {} bytes that differ from the {len} written",
            path.display(),
            back.1
        )));
    }
    Ok(format!(
        "restored /{file} ({len} bytes, read back and compared) into a scratch directory"
    ))
}
