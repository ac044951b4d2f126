//! What `check` remembers on this machine (format-spec/check.md "Local
//! state"): `<cache>/<repository id hex>/check/state.json`, per pack the
//! time of its last successful read-data verification, and a summary of
//! the last check (read by `status`). Outside the repository and outside
//! `index.sqlite`, so an index rebuild keeps it. Written under a temp
//! name, fsynced and renamed (backend::fsutil::write_atomic); a missing or
//! unreadable file means "nothing verified yet".

use crate::backend::fsutil::Atomic;
use crate::error::{Error, Result};
use crate::id::PackId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The summary of one check run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastCheck {
    /// When it started (Unix s).
    pub time_unix: i64,
    /// Whether it read pack data.
    pub read_data: bool,
    /// Problems found (0: clean).
    pub errors: u64,
    /// The first problem, one line.
    #[serde(default)]
    pub first_error: Option<String>,
    /// Packs in the repository.
    pub packs: u64,
    /// Packs read and verified by this run.
    pub packs_read: u64,
    /// Wall time.
    pub seconds: f64,
}

/// `state.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CheckState {
    /// Format version, 1.
    #[serde(default)]
    pub version: u32,
    /// Pack (hex) -> last successful read-data verification (Unix s).
    #[serde(default)]
    pub verified: BTreeMap<String, i64>,
    /// The last check.
    #[serde(default)]
    pub last: Option<LastCheck>,
    /// When the last check that found no problem started (Unix s).
    #[serde(default)]
    pub last_clean_unix: Option<i64>,
}

/// The state file of repository `repo_id`; `None` without a cache
/// directory (`STRATA_CACHE_DIR=`).
pub fn path(repo_id: &crate::id::RepoId) -> Option<PathBuf> {
    Some(
        crate::cache::base_dir()?
            .join(repo_id.to_hex())
            .join("check")
            .join("state.json"),
    )
}

impl CheckState {
    /// Load `path`: a missing file is the empty state, an unreadable one
    /// too, with a warning returned.
    pub fn load(path: &Path) -> (CheckState, Option<String>) {
        match std::fs::read(path) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => (s, None),
                Err(e) => (
                    CheckState::default(),
                    Some(format!(
                        "{}: unreadable ({e}); treating every pack as never verified",
                        path.display()
                    )),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (CheckState::default(), None),
            Err(e) => (
                CheckState::default(),
                Some(format!(
                    "{}: {e}; treating every pack as never verified",
                    path.display()
                )),
            ),
        }
    }

    /// Write it to `path` (directories 0700, file 0600).
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::Io {
                    path: dir.to_path_buf(),
                    source: e,
                })?;
        }
        let bytes = serde_json::to_vec(self)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        crate::backend::fsutil::write_atomic(path, &bytes, Atomic::local(0o600))
    }

    /// The verification times by pack id (entries that do not parse are
    /// dropped).
    pub fn verified_map(&self) -> BTreeMap<PackId, i64> {
        self.verified
            .iter()
            .filter_map(|(k, t)| Some((PackId::from_hex(k)?, *t)))
            .collect()
    }

    /// Record a check: `ok` packs verified at `now`, `bad` packs forgotten
    /// (verified again next time), packs no longer present dropped.
    pub fn record(
        &mut self,
        present: &dyn Fn(&PackId) -> bool,
        ok: &[PackId],
        bad: &[PackId],
        last: LastCheck,
    ) {
        self.version = 1;
        self.verified
            .retain(|k, _| PackId::from_hex(k).is_some_and(|p| present(&p)));
        for p in ok {
            self.verified.insert(p.to_hex(), last.time_unix);
        }
        for p in bad {
            self.verified.remove(&p.to_hex());
        }
        if last.errors == 0 {
            self.last_clean_unix = Some(last.time_unix);
        }
        self.last = Some(last);
    }
}
