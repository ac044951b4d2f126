//! `strata repair` (format-spec/check.md "Repair"): what `check` found
//! damaged is worked around, never papered over.
//!
//! - `damaged.rs`: the local record of damaged blobs that `check` and
//!   `repair` keep, so the next backup stores them again (healing);
//! - `snapshots.rs`: a snapshot whose trees or chunks are damaged is
//!   rewritten without the damaged files, and the old manifest removed;
//! - `packs.rs`: a damaged pack's intact blobs are copied into new packs,
//!   and the pack deleted once nothing it held is lost by that;
//! - `from.rs`: before that, with `--from OTHER`, a damaged pack is
//!   replaced by the other location's copy if that one is intact.

pub mod damaged;
pub mod from;
pub mod packs;
pub mod snapshots;

use crate::error::Result;
use crate::id::BlobId;
use crate::index::Index;
use rusqlite::params;

/// Is `id` in a pack that exists (and, with `live`, is not condemned),
/// other than the pack with row id `except`?
pub(crate) fn stored_elsewhere(
    index: &Index,
    id: &BlobId,
    except: Option<i64>,
    live: bool,
) -> Result<bool> {
    let mut st = index.conn().prepare_cached(
        "SELECT 1 FROM blobs b JOIN packs p ON p.id = b.pack
         WHERE b.id = ?1 AND p.missing = 0 AND (p.condemned IS NULL OR ?3 = 0)
           AND b.pack != ?2 LIMIT 1",
    )?;
    Ok(st.exists(params![&id.0[..], except.unwrap_or(-1), live])?)
}
