//! What `check` remembers on this machine (format-spec/check.md "Local
//! state"): `<cache>/<repository id hex>/check/<location key>/state.json`,
//! per pack the time of its last successful read-data verification, the
//! packs read-data found damaged, and a summary of the last check (read by
//! `status`). Keyed by the location as well as the repository id, as
//! `damaged.json` is: a mirror (`sync`) has the same id, and checking it
//! must not overwrite the primary's record. Outside the repository and
//! outside `index.sqlite`, so an index rebuild keeps it. Written under a
//! temp name, fsynced and renamed (backend::fsutil::write_atomic); a missing
//! or unreadable file means "nothing verified yet". The file of earlier
//! versions, `check/state.json`, is taken over by the first location
//! checked (`adopt_legacy`).

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
    /// Pack (hex) -> when read-data last found it damaged (Unix s): not
    /// every byte as written. `sync` copies such a pack again from the
    /// other end, `repair packs --from` takes the other end's copy.
    #[serde(default)]
    pub damaged: BTreeMap<String, i64>,
}

/// Where the repository named `name` (a backend name: a directory or a
/// URL) is: a directory made canonical, or the URL as given.
pub fn location(name: &str) -> String {
    crate::repo::known::location(name)
        .map(|(l, _)| l)
        .unwrap_or_else(|| name.to_string())
}

/// The state file of repository `repo_id` at `name` (a directory or a
/// URL); `None` without a cache directory (`STRATA_CACHE_DIR=`).
pub fn path(repo_id: &crate::id::RepoId, name: &str) -> Option<PathBuf> {
    Some(
        crate::cache::base_dir()?
            .join(repo_id.to_hex())
            .join("check")
            .join(crate::repo::location_key(&location(name)))
            .join("state.json"),
    )
}

/// Move the state file of earlier versions (`check/state.json`, keyed by
/// the repository id only) to `path` if that has none yet.
pub fn adopt_legacy(path: &Path) {
    let Some(check_dir) = path.parent().and_then(Path::parent) else {
        return;
    };
    let legacy = check_dir.join("state.json");
    if legacy.is_file() && !path.exists() {
        if let Some(d) = path.parent() {
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d);
        }
        let _ = std::fs::rename(&legacy, path);
    }
}

/// Remove `packs` from the state at `path` (copied again from an intact
/// copy: verified again at the next check); a missing file is fine.
pub fn forget_packs(path: &Path, packs: &[PackId]) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let (mut st, _) = CheckState::load(path);
    for p in packs {
        st.damaged.remove(&p.to_hex());
        st.verified.remove(&p.to_hex());
    }
    st.save(path)
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

    /// The packs read-data found damaged.
    pub fn damaged_packs(&self) -> Vec<PackId> {
        self.damaged
            .keys()
            .filter_map(|k| PackId::from_hex(k))
            .collect()
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
        self.damaged
            .retain(|k, _| PackId::from_hex(k).is_some_and(|p| present(&p)));
        for p in ok {
            self.verified.insert(p.to_hex(), last.time_unix);
            self.damaged.remove(&p.to_hex());
        }
        for p in bad {
            self.verified.remove(&p.to_hex());
            self.damaged.insert(p.to_hex(), last.time_unix);
        }
        if last.errors == 0 {
            self.last_clean_unix = Some(last.time_unix);
        }
        self.last = Some(last);
    }
}
