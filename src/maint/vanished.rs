//! The rollback guard (threat-model.md "Rollback and deletion"): `gc` and
//! `forget` refuse to run while snapshots this machine saw are gone with no
//! forget recorded for them (repo/seen.rs). A storage that hides the newest
//! manifests could otherwise have gc delete the packs only they need, and
//! bring the manifests back to a repository that cannot restore them. A
//! snapshot forgotten on another host is recorded in the gc state for 90
//! days (format-spec/gc.md), so it does not trip the guard; a storage
//! that also deletes those records gets a refusal, the safe direction.

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::Repo;

/// Snapshots this machine saw that are gone unexplained; `Err` (nothing
/// changed) unless `acknowledge`, which accepts their loss: they leave the
/// record and are returned. `what` is the refusing command, for the error.
pub fn guard(repo: &Repo, what: &str, acknowledge: bool) -> Result<Vec<SnapshotId>> {
    let vanished = crate::snapshot::vanished(repo)?;
    let Some(warning) = crate::repo::seen::warning(&vanished) else {
        return Ok(vanished);
    };
    if acknowledge {
        crate::repo::seen::acknowledge(repo, &vanished);
        return Ok(vanished);
    }
    Err(Error::Refused(format!(
        "{what} refused, nothing was changed: {warning}. {what} could delete data they need if \
         they come back. If they are lost for good, accept it with `strata {what} \
         --acknowledge-missing`"
    )))
}
