//! `repair packs --from OTHER` (format-spec/check.md "Repair"): a pack
//! damaged here whose copy at the other location (the offsite mirror, or
//! the primary when repairing the mirror) hashes to its name is every
//! byte as written: it replaces ours, atomically (`put_replace`), before
//! anything is salvaged. Its entries leave the record of damaged blobs and
//! its index rows are read again from its trailer; the check state
//! forgets it, so the next `check --read-data` verifies it again.

use super::damaged;
use crate::backend::Backend;
use crate::error::Result;
use crate::id::PackId;
use crate::repo::Repo;

/// The packs replaced, and each pack not replaced with why.
pub type Restored = (Vec<PackId>, Vec<(PackId, String)>);

/// Copy each of `packs` from `other` over `repo`'s copy where `other`'s
/// hashes to its name: the packs restored, and why each other one was
/// not. A transport failure at either end is an error.
pub fn restore_from(repo: &Repo, other: &dyn Backend, packs: &[PackId]) -> Result<Restored> {
    let (mut done, mut not) = (Vec::new(), Vec::new());
    for p in packs {
        let key = crate::backend::key::pack(&p.to_hex());
        let bytes = match other.get(&key) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                not.push((*p, format!("{}: no copy there", other.name())));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if blake3::hash(&bytes).as_bytes() != &p.0 {
            not.push((*p, format!("{}: its copy is damaged too", other.name())));
            continue;
        }
        repo.store().put_replace(&key, &bytes)?;
        done.push(*p);
    }
    healed(repo, &done)?;
    Ok((done, not))
}

/// `packs` of `repo` are intact again: out of the record of damaged
/// blobs and the check state, their index rows read again.
pub fn healed(repo: &Repo, packs: &[PackId]) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    damaged::healed_in(repo.index_dir(), packs)?;
    if let Some(p) = crate::maint::check::state::path(&repo.config().repo_id, repo.name()) {
        crate::maint::check::state::forget_packs(&p, packs)?;
    }
    let mut index = repo.index()?;
    index.remove_packs(packs)?;
    index.reconcile(repo)?;
    Ok(())
}
