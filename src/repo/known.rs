//! Known repositories (threat-model.md "Substitution"): the first time this
//! user opens an encrypted repository at a path, its id and data recipient
//! are recorded in the private cache directory; later opens at that path
//! must find the same ones. This catches a storage that replaced the whole
//! repository (config and key files) with its own, encrypted to a user's
//! public recipient key, which no MAC can: the attacker's files are
//! consistent with the attacker's secret. Trust on first use, like ssh's
//! known_hosts; with `STRATA_CACHE_DIR=` (empty) there is no record.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where `repo` (a backend name) is: a URL as given, or a directory made
/// absolute; and a file name for it (32 hex digits of its BLAKE3).
pub(crate) fn location(repo: &str) -> Option<(String, String)> {
    let key = match crate::repo::url_of(Path::new(repo)) {
        Some(url) => url.to_string(),
        None => std::fs::canonicalize(repo)
            .ok()?
            .to_string_lossy()
            .into_owned(),
    };
    let name = blake3::hash(key.as_bytes()).to_hex()[..32].to_string();
    Some((key, name))
}

/// `repo` is a backend name: a URL as given, or a directory, made absolute.
fn record_path(repo: &str) -> Option<(PathBuf, String)> {
    let (key, name) = location(repo)?;
    Some((crate::cache::base_dir()?.join("known").join(name), key))
}

fn record(path: &str, repo_id: &[u8; 32], recipient: &str) -> String {
    format!(
        "path {path}\nrepo_id {}\nrecipient {recipient}\n",
        crate::id::to_hex(repo_id)
    )
}

/// Record `repo` as it is now (after `init`, or a first open).
pub fn remember(repo: &str, repo_id: &[u8; 32], recipient: &str) {
    if let Some((file, key)) = record_path(repo) {
        crate::cache::write_private(&file, record(&key, repo_id, recipient).as_bytes());
    }
}

/// Check `repo` against its record, creating the record on first use.
pub fn check(repo: &str, repo_id: &[u8; 32], recipient: &str) -> Result<()> {
    let Some((file, key)) = record_path(repo) else {
        return Ok(());
    };
    let want = record(&key, repo_id, recipient);
    let field = |s: &str, name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .filter(|v| !v.is_empty())
    };
    let had = std::fs::read_to_string(&file).ok();
    let old = had
        .as_deref()
        .and_then(|h| Some((field(h, "repo_id ")?, field(h, "recipient ")?)));
    match old {
        Some(_) if had.as_deref() == Some(want.as_str()) => Ok(()),
        Some((old_id, old_r)) => Err(Error::corrupt(
            "config",
            format!(
                "this is not the repository this user opened at {key} before (repository id \
                     {} and key {}… were {} and {}…): it may have been replaced; if it was \
                     re-created on purpose, delete {}",
                &crate::id::to_hex(repo_id)[..8],
                &recipient[..recipient.len().min(16)],
                &old_id[..old_id.len().min(8)],
                &old_r[..old_r.len().min(16)],
                file.display()
            ),
        )),
        // No record, or an unreadable one: (re)write it.
        None => {
            crate::cache::write_private(&file, want.as_bytes());
            Ok(())
        }
    }
}
