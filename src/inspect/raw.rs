//! `cat --raw pack`: what a pack holds, decoded from its trailer alone
//! (format-spec/pack.md): its size, its plaintext size, and per blob the
//! id, kind, offset, lengths and compression.

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::repo::Repo;
use serde::Serialize;

/// One blob of a pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackBlob {
    /// How it is stored: `none`, `zstd` or `zstd-dict` (pack.md
    /// "Blob compression").
    pub compression: &'static str,
    /// Its id (hex).
    pub id: String,
    /// `data` or `tree`.
    pub kind: &'static str,
    /// Offset in the plaintext pack.
    pub offset: u64,
    /// Raw (uncompressed) length.
    pub raw_len: u32,
    /// Stored length.
    pub stored_len: u32,
}

/// A pack as its trailer describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackListing {
    /// Its blobs, in trailer order.
    pub blobs: Vec<PackBlob>,
    /// Whether the pack file is age-encrypted.
    pub encrypted: bool,
    /// Its id (hex).
    pub id: String,
    /// Its plaintext size.
    pub plaintext_size: u64,
    /// Its size on storage.
    pub size: u64,
}

/// Decode the trailer of pack `id`; a pack that does not exist is an
/// error naming it.
pub fn pack(repo: &Repo, id: &PackId) -> Result<PackListing> {
    let object = format!("pack {id}");
    let file = match repo.open_pack(id) {
        Err(e) if e.is_not_found() => return Err(Error::NotFound(format!("no pack {id}"))),
        r => r?,
    };
    let (plaintext_size, entries) = crate::pack::reader::read_trailer(&file, &object)?;
    let size = repo
        .store()
        .size(&crate::backend::key::pack(&id.to_hex()))?;
    let blobs = entries
        .iter()
        .map(|e| PackBlob {
            compression: e.compression.name(),
            id: e.id.to_hex(),
            kind: e.kind.name(),
            offset: e.offset,
            raw_len: e.raw_len,
            stored_len: e.stored_len,
        })
        .collect();
    Ok(PackListing {
        blobs,
        encrypted: repo.crypto().is_some(),
        id: id.to_hex(),
        plaintext_size,
        size,
    })
}
