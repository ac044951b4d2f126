//! Records that outlive a run and are read by `status` before (or
//! without) the repository being opened:
//!
//! - **The start of a run**, per policy file, in
//!   `<cache>/policy/<32 hex of BLAKE3(absolute policy path)>/start.json`
//!   (with that run's `run.log` lines): a run that could not start (the
//!   repository unreachable, the passphrase wrong, the environment file
//!   refused) has no repository id to file its state under, yet must be
//!   reported by `status` and the webhook (README "Backup policy").
//!
//! (The last sync of a repository to a destination is `sync::record`'s.)
//! It is JSON, written crash-safely (`backend::fsutil::write_atomic`), 0600 in
//! 0700 directories; unreadable means "never happened".

use super::state::LastRun;
use crate::backend::fsutil::{Atomic, write_atomic};
use std::path::{Path, PathBuf};

pub(crate) fn hex32(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex()[..32].to_string()
}

/// The directory of policy file `config`'s own records, if there is a
/// cache directory.
pub fn config_dir(config: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    Some(
        crate::cache::base_dir()?
            .join("policy")
            .join(hex32(&[&abs.to_string_lossy()])),
    )
}

pub(crate) fn load(file: &Path) -> LastRun {
    std::fs::read(file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(crate) fn save(file: &Path, r: &LastRun) {
    let Some(dir) = file.parent() else { return };
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir);
    if made.is_ok() {
        if let Ok(b) = serde_json::to_vec_pretty(r) {
            let _ = write_atomic(file, &b, Atomic::local(0o600));
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

/// The last start of a run of policy `config` (an error: it did not start).
pub fn start(config: &Path) -> LastRun {
    config_dir(config).map_or_else(LastRun::default, |d| load(&d.join("start.json")))
}

/// Record a start of a run of policy `config` at `when`: `Err` is why it
/// could not start.
pub fn record_start(config: &Path, when: i64, outcome: std::result::Result<(), String>) {
    let Some(d) = config_dir(config) else { return };
    let file = d.join("start.json");
    let mut r = load(&file);
    let before = r.clone();
    r.record(when, outcome.map(|()| String::new()));
    // A successful start after a successful one changes nothing worth a
    // write but the time.
    if r != before {
        save(&file, &r);
    }
}
