//! Lock files in `locks/` (format-spec/repository.md "Locks"). Version 1 takes
//! shared locks only; they are removed on drop.

use crate::error::{IoContext, Result};
use crate::repo::fsutil;
use std::path::PathBuf;

/// A lock file; removed when dropped.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Create a shared lock in `repo`.
    pub fn shared(repo: &crate::repo::Repo) -> Result<Lock> {
        let id: [u8; 32] = fsutil::random_bytes()?;
        let path = repo.root().join("locks").join(crate::id::to_hex(&id));
        let body = serde_json::json!({
            "host": crate::repo::hostname(),
            "pid": std::process::id(),
            "time": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            "exclusive": false,
        });
        // Encrypted in an encrypted repository: host and pid are not the
        // storage's business (threat-model.md).
        let bytes = repo.seal_bytes(body.to_string().as_bytes())?;
        fsutil::write_atomic(&repo.root().join("tmp"), &path, &bytes)?;
        Ok(Lock { path })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path).at(&self.path) {
            eprintln!("strata: warning: could not remove lock: {e}");
        }
    }
}
