//! Where a `--repo`-style value is on this machine: a local directory
//! (a plain path or `file://`) or elsewhere; whether two name the same
//! place (a repository is never synced onto itself); and the directories a
//! local mirror gets so that its layout is a local repository's.

use crate::backend::{Backend, LocalBackend};
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

/// Give a local mirror (`dest` holds a config) the directories of a local
/// repository's layout (format-spec/repository.md), which a mirror made of
/// objects lacks (an unencrypted repository has no key files, a fresh one no
/// lock), as `LocalBackend::create_layout` makes them for `init`. strata
/// opens a repository without them; the layout is kept for the tools and
/// versions that expect it.
pub fn local_layout(dest: &str) -> Result<()> {
    let Some(dir) = local_dir(dest) else {
        return Ok(());
    };
    let b = LocalBackend::new(dir);
    if b.exists(crate::backend::key::CONFIG)? {
        b.create_layout()?;
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
