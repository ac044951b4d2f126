//! Where a `--repo`-style value is on this machine: a local directory
//! (a plain path or `file://`) or elsewhere, and whether two name the same
//! place (a repository is never synced onto itself). A mirror needs no
//! directories of its own: `Repo` opens a local repository through its
//! backend, which creates a missing directory on the first write under it.

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
