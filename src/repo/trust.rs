//! Which packs a full host deduplicates against in a format-3 repository
//! (format-spec/write-only.md "Attribution and poisoning"): a write-only
//! key holds the id keys, so it could store garbage under the id of real
//! content. A pack is trusted when a full key wrote it (its version-2
//! authentication section carries a MAC only a full key can make), or
//! when a `trust/<id>` record, MACed by a full key, names it: the packs
//! present when the first write-only key was added, and the packs of
//! write-only keys that `check --read-data` verified blob by blob.

use crate::error::Result;
use crate::id::{KeyId, PackId};
use crate::object::ObjectKind;
use crate::pack::format::{AUTH_FULL, PackAuth};
use crate::repo::Repo;
use bincode::{Decode, Encode};
use std::collections::HashSet;

/// A `trust/<id>` file (kind `T`).
#[derive(Encode, Decode)]
struct Record {
    time_unix_ns: i64,
    /// Why: `format 3` (the packs present at the upgrade) or `check`.
    reason: String,
    packs: Vec<PackId>,
}

/// Who wrote pack `id` (its authentication section `auth`, with the
/// message it authenticates) and whether dedup may use it. Before format
/// 3 every pack is trusted (no key could write without reading).
pub fn judge(
    repo: &Repo,
    id: &PackId,
    auth: Option<&(PackAuth, Vec<u8>)>,
) -> Result<(Option<KeyId>, bool)> {
    if repo.config().version < 3 {
        return Ok((None, true));
    }
    let Some(c) = repo.crypto() else {
        return Ok((None, true));
    };
    match auth {
        Some((a, msg)) if a.kind == AUTH_FULL => {
            let mut tag = [0u8; 32];
            tag.copy_from_slice(&a.tag[..32]);
            // constant-time comparison (blake3::Hash's Eq)
            let ok = blake3::Hash::from(c.mac(b'P', 2, msg)?) == blake3::Hash::from(tag);
            Ok((None, ok || repo.trusted_packs()?.contains(id)))
        }
        Some((a, _)) => Ok((
            Some(KeyId::from_bytes16(&a.key_id)),
            repo.trusted_packs()?.contains(id),
        )),
        // a version-1 pack in a format-3 repository: trusted only if it
        // was there at the upgrade (a write-only key could write one)
        None => Ok((None, repo.trusted_packs()?.contains(id))),
    }
}

/// Every pack named by a `trust/` record that reads (one that does not
/// is skipped: its packs stay untrusted, which costs space, never data).
pub fn load(repo: &Repo) -> Result<HashSet<PackId>> {
    let mut out = HashSet::new();
    if repo.config().version < 3 {
        return Ok(out);
    }
    for name in repo.list_names("trust")? {
        let object = format!("trust/{name}");
        let Some(bytes) = repo.read_opt(&object)? else {
            continue;
        };
        match repo.open_file::<Record>(ObjectKind::Trust, &bytes, &object) {
            Ok((r, id)) if crate::id::to_hex(&id) == name => out.extend(r.packs),
            Ok(_) => repo.events().warning(&format!(
                "{object}: content does not match the file name; ignored"
            )),
            Err(e) => repo.events().warning(&format!("ignoring {e}")),
        }
    }
    Ok(out)
}

/// Record `packs` as trusted in a new `trust/<id>` file (durable,
/// create-only: INV-1, INV-5), for the reason given.
pub fn record(repo: &Repo, packs: &[PackId], reason: &str) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    if let Some(c) = repo.crypto() {
        c.full("recording trusted packs")?;
    }
    let r = Record {
        time_unix_ns: crate::sys::now_ns(),
        reason: reason.to_string(),
        packs: packs.to_vec(),
    };
    let (bytes, id) = repo.seal_file(ObjectKind::Trust, &r)?;
    repo.write_new(&format!("trust/{}", crate::id::to_hex(&id)), &bytes)?;
    Ok(())
}
