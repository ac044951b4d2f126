//! Known repositories (threat-model.md "Substitution" and "Downgrade"):
//! the first time this user opens an encrypted repository at a location,
//! its id and data recipient are recorded in the private cache directory;
//! later opens at that location must find the same ones, and must find it
//! encrypted. This catches a storage that replaced the whole repository
//! (config and key files) with its own, encrypted to a user's public
//! recipient key, which no MAC can: the attacker's files are consistent
//! with the attacker's secret; and a storage that swapped in a plaintext
//! config, which would switch encryption off. Trust on first use, like
//! ssh's known_hosts; with `STRATA_CACHE_DIR=` (empty) there is no record.
//!
//! The record also names the key that last unlocked the repository here,
//! so that it is tried first (keys.md "Unlocking": planted key files cost
//! nothing in the usual case).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Where `repo` (a backend name) is: a URL as given, or a directory made
/// absolute; and a file name for it (32 hex digits of its BLAKE3). `None`
/// for an in-memory repository (`memory://`, tests and fuzzing): it has no
/// lasting place to remember.
pub(crate) fn location(repo: &str) -> Option<(String, String)> {
    let key = match crate::repo::url_of(Path::new(repo)) {
        Some(url) if url.starts_with("memory:") => return None,
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

/// A record's fields.
#[derive(Debug, Default, PartialEq, Eq)]
struct Record {
    repo_id: String,
    recipient: String,
    /// The key id that last unlocked the repository here ("" unknown).
    key: String,
}

impl Record {
    fn text(&self, path: &str) -> String {
        let mut s = format!(
            "path {path}\nrepo_id {}\nrecipient {}\n",
            self.repo_id, self.recipient
        );
        if !self.key.is_empty() {
            s.push_str(&format!("key {}\n", self.key));
        }
        s
    }

    /// `None` for text that lacks the id or the recipient.
    fn parse(text: &str) -> Option<Record> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                .filter(|v| !v.is_empty())
        };
        Some(Record {
            repo_id: field("repo_id ")?,
            recipient: field("recipient ")?,
            key: field("key ").unwrap_or_default(),
        })
    }
}

fn load(file: &Path) -> Option<Record> {
    Record::parse(&std::fs::read_to_string(file).ok()?)
}

/// Record `repo` as it is now (after `init`, or a first open).
pub fn remember(repo: &str, repo_id: &crate::id::RepoId, recipient: &str, key: &str) {
    if let Some((file, path)) = record_path(repo) {
        let r = Record {
            repo_id: repo_id.to_hex(),
            recipient: recipient.to_string(),
            key: key.to_string(),
        };
        crate::cache::write_private(&file, r.text(&path).as_bytes());
    }
}

/// The key that last unlocked the repository at `repo` on this machine.
pub fn last_key(repo: &str) -> Option<String> {
    let (file, _) = record_path(repo)?;
    Some(load(&file)?.key).filter(|k| !k.is_empty())
}

/// Check `repo`, opened unlocked with `key`, against its record, creating
/// the record on first use and updating the key that last worked.
pub fn check(repo: &str, repo_id: &crate::id::RepoId, recipient: &str, key: &str) -> Result<()> {
    let Some((file, path)) = record_path(repo) else {
        return Ok(());
    };
    let now = Record {
        repo_id: repo_id.to_hex(),
        recipient: recipient.to_string(),
        key: key.to_string(),
    };
    match load(&file) {
        Some(old) if old.repo_id != now.repo_id || old.recipient != now.recipient => {
            Err(Error::corrupt(
                "config",
                format!(
                    "this is not the repository this user opened at {path} before (repository \
                     id {} and key {}… were {} and {}…): it may have been replaced; if it was \
                     re-created on purpose, delete {}",
                    &now.repo_id[..8],
                    &recipient[..recipient.len().min(16)],
                    &old.repo_id[..old.repo_id.len().min(8)],
                    &old.recipient[..old.recipient.len().min(16)],
                    file.display()
                ),
            ))
        }
        Some(old) if old == now => Ok(()),
        // No record, an unreadable one, or another key: (re)write it.
        _ => {
            crate::cache::write_private(&file, now.text(&path).as_bytes());
            Ok(())
        }
    }
}

/// Refuse an unencrypted config at a location this user recorded as an
/// encrypted repository (threat-model.md "Downgrade").
pub fn check_unencrypted(repo: &str) -> Result<()> {
    let Some((file, path)) = record_path(repo) else {
        return Ok(());
    };
    match load(&file) {
        None => Ok(()),
        Some(old) => Err(Error::Refused(format!(
            "{path}: refusing to open: this user opened an encrypted repository (id {}) here \
             before, and its config now says it is not encrypted; the storage may have swapped \
             in a plaintext config to switch encryption off (threat-model.md \"Downgrade\"). If \
             it was re-created without encryption on purpose, delete {}",
            &old.repo_id[..old.repo_id.len().min(8)],
            file.display()
        ))),
    }
}

/// Write-only keys this user saw removed in repository `repo_id`
/// (write-only.md "Removing a write-only key"): `<cache>/<repo id>/removed-keys`,
/// one key id per line. A storage that deletes `keys/<id>.removed` and
/// replays the key's info file does not make the key live again here.
fn removed_path(repo_id: &crate::id::RepoId) -> Option<PathBuf> {
    Some(
        crate::cache::base_dir()?
            .join(repo_id.to_hex())
            .join("removed-keys"),
    )
}

/// The write-only keys this user saw removed in `repo_id`.
pub fn removed_keys(repo_id: &crate::id::RepoId) -> std::collections::BTreeSet<String> {
    removed_path(repo_id)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .filter(|l| crate::id::KeyId::from_file_name(l).is_some())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Remember that the write-only keys `ids` are removed in `repo_id` (best
/// effort, under the cache's advisory lock; nothing written when they are
/// all known already).
pub fn remember_removed(repo_id: &crate::id::RepoId, ids: &[String]) {
    let Some(p) = removed_path(repo_id) else {
        return;
    };
    if ids.iter().all(|i| removed_keys(repo_id).contains(i)) {
        return;
    }
    crate::cache::locked(&p.with_extension("lock"), || {
        let mut all = removed_keys(repo_id);
        all.extend(ids.iter().cloned());
        let text: String = all.iter().map(|k| format!("{k}\n")).collect();
        crate::cache::write_private(&p, text.as_bytes());
    });
}
