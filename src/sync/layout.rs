//! Where a `--repo`-style value is on this machine: a local directory
//! (a plain path or `file://`) or elsewhere; whether two name the same
//! place; and the empty directories a local repository made by `sync`
//! needs (`strata sync`, and the sync step of `strata run`).

use crate::error::Result;
use std::path::PathBuf;

/// The directory a `--repo`-style value names when it is local (a plain
/// path or `file://`), as `backend::open` decides.
fn local_dir(url: &str) -> Option<PathBuf> {
    match url.split_once("://") {
        None => Some(PathBuf::from(url)),
        Some(("file", _)) => url::Url::parse(url).ok()?.to_file_path().ok(),
        Some(_) => None,
    }
}

/// `Repo::open` still reads a local repository as directories and expects
/// its empty ones too, which a mirror made of objects lacks (an
/// unencrypted repository has no key files, a fresh one no lock).
/// Create them where the destination is a local repository now. Goes when
/// `Repo` opens through the backend.
pub fn local_layout(dest: &str) -> Result<()> {
    let Some(dir) = local_dir(dest) else {
        return Ok(());
    };
    if !dir.join("config").is_file() {
        return Ok(());
    }
    for d in ["packs", "snapshots", "keys", "locks", "tmp", "gc"] {
        crate::repo::fsutil::create_dir_durable(&dir.join(d))?;
    }
    Ok(())
}

/// Are `src` and `dst` the same place (a repository is never synced
/// onto itself)?
pub fn same_place(src: &str, dst: &str) -> bool {
    if src.trim_end_matches('/') == dst.trim_end_matches('/') {
        return true;
    }
    match (local_dir(src), local_dir(dst)) {
        (Some(a), Some(b)) => match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
        _ => false,
    }
}
