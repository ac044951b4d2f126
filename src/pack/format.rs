//! Byte layout of a pack, mirroring format-spec/pack.md section by section.

use crate::blob::{BlobKind, Compression, MAX_RAW, MAX_STORED};
use crate::error::{Error, Result};
use crate::id::BlobId;

/// Header: magic "STRATA", kind 'P', version.
pub const HEADER: [u8; 8] = *b"STRATAP\x01";
/// The header of a version-2 pack (format 3, pack.md "Version 2"): an
/// authentication section between the trailer and the footer says which
/// key wrote it.
pub const HEADER_V2: [u8; 8] = *b"STRATAP\x02";
/// The authentication section of a version-2 pack.
pub const AUTH_LEN: usize = 96;
/// Written by a full key: a MAC under the repository's MAC key.
pub const AUTH_FULL: u8 = 1;
/// Written by a write-only key: its key id and ed25519 signature.
pub const AUTH_WRITE_ONLY: u8 = 2;

/// The authentication section of a version-2 pack (pack.md "Version 2"):
/// kind (1 byte), 15 zero bytes, the writer's key id (16 bytes, zero for
/// a full key), the tag (a 32-byte MAC and 32 zero bytes, or a 64-byte
/// signature) over [`auth_message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackAuth {
    /// [`AUTH_FULL`] or [`AUTH_WRITE_ONLY`].
    pub kind: u8,
    /// The write-only key's id.
    pub key_id: [u8; 16],
    /// MAC or signature.
    pub tag: [u8; 64],
}

impl PackAuth {
    /// The section's bytes.
    pub fn encode(&self) -> [u8; AUTH_LEN] {
        let mut b = [0u8; AUTH_LEN];
        b[0] = self.kind;
        b[16..32].copy_from_slice(&self.key_id);
        b[32..96].copy_from_slice(&self.tag);
        b
    }

    /// Parse the section; `object` names the pack in errors.
    pub fn decode(b: &[u8; AUTH_LEN], object: &str) -> Result<PackAuth> {
        if !matches!(b[0], AUTH_FULL | AUTH_WRITE_ONLY) || b[1..16].iter().any(|x| *x != 0) {
            return Err(Error::corrupt(
                object,
                "unknown pack authentication section",
            ));
        }
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&b[16..32]);
        let mut tag = [0u8; 64];
        tag.copy_from_slice(&b[32..96]);
        Ok(PackAuth {
            kind: b[0],
            key_id,
            tag,
        })
    }
}

/// What the authentication section of a pack authenticates: a context,
/// the trailer's hash and entry count (the trailer names every blob id,
/// offset and length), the kind and the key id.
pub fn auth_message(trailer_hash: &[u8; 32], count: u32, kind: u8, key_id: &[u8; 16]) -> Vec<u8> {
    let mut m = Vec::with_capacity(80);
    m.extend_from_slice(b"strata pack v2\0");
    m.extend_from_slice(trailer_hash);
    m.extend_from_slice(&count.to_le_bytes());
    m.push(kind);
    m.extend_from_slice(key_id);
    m
}

/// A pack's trailer as read: its entries and, for a version-2 pack, the
/// authentication section and the message it authenticates.
#[derive(Clone, Debug)]
pub struct Trailer {
    /// The entries.
    pub entries: Vec<PackEntry>,
    /// Version 2: the section and [`auth_message`] of its kind and key.
    pub auth: Option<(PackAuth, Vec<u8>)>,
}
/// Header length.
pub const HEADER_LEN: u64 = 8;
/// One trailer entry.
pub const ENTRY_LEN: usize = 52;
/// Footer: count u32, trailer hash, magic.
pub const FOOTER_LEN: usize = 44;
/// Footer magic.
pub const FOOTER_MAGIC: &[u8; 8] = b"STRATEND";

/// One blob as listed in a pack trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob id.
    pub id: BlobId,
    /// Offset of the stored bytes from the start of the pack.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// Data or tree.
    pub kind: BlobKind,
    /// How it is stored.
    pub compression: Compression,
}

impl PackEntry {
    /// Encode as the 52-byte trailer entry (pack.md "Trailer entry").
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0); // 0..32
        out.extend_from_slice(&self.offset.to_le_bytes()); // 32..40
        out.extend_from_slice(&self.stored_len.to_le_bytes()); // 40..44
        out.extend_from_slice(&self.raw_len.to_le_bytes()); // 44..48
        out.push(self.kind as u8); // 48
        out.push(self.compression as u8); // 49
        out.extend_from_slice(&[0, 0]); // 50..52 reserved
    }

    /// Decode one trailer entry; `object` names the pack in errors.
    pub fn decode(b: &[u8; ENTRY_LEN], object: &str) -> Result<Self> {
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[0..32]);
        let u64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(x)
        };
        let u32_at = |i: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&b[i..i + 4]);
            u32::from_le_bytes(x)
        };
        let kind = BlobKind::from_u8(b[48])
            .ok_or_else(|| Error::corrupt(object, format!("unknown blob kind {}", b[48])))?;
        let compression = Compression::from_u8(b[49])
            .ok_or_else(|| Error::corrupt(object, format!("unknown compression {}", b[49])))?;
        if b[50] != 0 || b[51] != 0 {
            return Err(Error::corrupt(
                object,
                "reserved trailer bytes are not zero",
            ));
        }
        let e = PackEntry {
            id: BlobId(id),
            offset: u64_at(32),
            stored_len: u32_at(40),
            raw_len: u32_at(44),
            kind,
            compression,
        };
        if e.raw_len as usize > MAX_RAW || e.stored_len as usize > MAX_STORED {
            return Err(Error::corrupt(object, "blob length over the limit"));
        }
        if e.compression == Compression::None && e.stored_len != e.raw_len {
            return Err(Error::corrupt(
                object,
                "raw blob with stored length != raw length",
            ));
        }
        Ok(e)
    }
}

/// Encode the trailer and footer for `entries`.
pub fn encode_trailer(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN + FOOTER_LEN);
    for e in entries {
        e.encode(&mut out);
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    out
}

/// Encode the trailer, the authentication section that `auth` makes from
/// the trailer hash and count ([`auth_message`]), and the footer of a
/// version-2 pack.
pub fn encode_trailer_v2(
    entries: &[PackEntry],
    auth: impl FnOnce(&[u8; 32], u32) -> Result<PackAuth>,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY_LEN + AUTH_LEN + FOOTER_LEN);
    for e in entries {
        e.encode(&mut out);
    }
    let hash = blake3::hash(&out);
    let count = entries.len() as u32;
    out.extend_from_slice(&auth(hash.as_bytes(), count)?.encode());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(FOOTER_MAGIC);
    Ok(out)
}

/// The bytes between the trailer and the footer of a pack of `version`.
pub fn auth_len(version: u8) -> usize {
    if version >= 2 { AUTH_LEN } else { 0 }
}

/// Parse a footer of a pack of `version`; returns the entry count.
pub fn decode_footer(
    footer: &[u8; FOOTER_LEN],
    file_len: u64,
    object: &str,
    version: u8,
) -> Result<(usize, [u8; 32])> {
    if &footer[36..44] != FOOTER_MAGIC {
        return Err(Error::corrupt(object, "bad footer magic (truncated pack?)"));
    }
    let mut c = [0u8; 4];
    c.copy_from_slice(&footer[0..4]);
    let count = u32::from_le_bytes(c) as u64;
    if HEADER_LEN + count * ENTRY_LEN as u64 + (auth_len(version) + FOOTER_LEN) as u64 > file_len {
        return Err(Error::corrupt(
            object,
            format!("entry count {count} does not fit the file"),
        ));
    }
    let mut h = [0u8; 32];
    h.copy_from_slice(&footer[4..36]);
    Ok((count as usize, h))
}

/// Decode the trailer bytes (`count` entries, no footer) of a pack of `file_len` bytes.
pub fn decode_trailer(
    trailer: &[u8],
    expected_hash: &[u8; 32],
    file_len: u64,
    object: &str,
    version: u8,
) -> Result<Vec<PackEntry>> {
    if blake3::hash(trailer).as_bytes() != expected_hash {
        return Err(Error::corrupt(object, "trailer checksum mismatch"));
    }
    let trailer_start = file_len - trailer.len() as u64 - (auth_len(version) + FOOTER_LEN) as u64;
    let mut next = HEADER_LEN;
    let mut out = Vec::with_capacity(trailer.len() / ENTRY_LEN);
    for chunk in trailer.chunks_exact(ENTRY_LEN) {
        let mut b = [0u8; ENTRY_LEN];
        b.copy_from_slice(chunk);
        let e = PackEntry::decode(&b, object)?;
        if e.offset != next {
            return Err(Error::corrupt(
                object,
                format!(
                    "blob {} at offset {} where {next} was expected",
                    e.id.short(),
                    e.offset
                ),
            ));
        }
        next = e.offset + u64::from(e.stored_len);
        out.push(e);
    }
    if next != trailer_start {
        return Err(Error::corrupt(
            object,
            "blobs do not end where the trailer starts",
        ));
    }
    Ok(out)
}

/// Check the 8-byte header; returns the pack version (1 or 2).
pub fn check_header(h: &[u8], object: &str) -> Result<u8> {
    if h.len() < 8 || h[..7] != HEADER[..7] {
        return Err(Error::corrupt(object, "bad pack header magic"));
    }
    if h[7] != HEADER[7] && h[7] != HEADER_V2[7] {
        return Err(Error::corrupt(
            object,
            format!("unsupported pack version {}", h[7]),
        ));
    }
    Ok(h[7])
}

/// Parse a whole pack held in memory: header, footer, trailer.
pub fn parse_pack(bytes: &[u8], object: &str) -> Result<Vec<PackEntry>> {
    Ok(parse_pack_trailer(bytes, object)?.entries)
}

/// [`parse_pack`], with the authentication section of a version-2 pack.
pub fn parse_pack_trailer(bytes: &[u8], object: &str) -> Result<Trailer> {
    let len = bytes.len() as u64;
    if len < HEADER_LEN + FOOTER_LEN as u64 {
        return Err(Error::corrupt(object, format!("truncated: {len} bytes")));
    }
    let version = check_header(&bytes[..8], object)?;
    let mut f = [0u8; FOOTER_LEN];
    f.copy_from_slice(&bytes[bytes.len() - FOOTER_LEN..]);
    let (count, hash) = decode_footer(&f, len, object, version)?;
    let auth_end = bytes.len() - FOOTER_LEN;
    let tend = auth_end - auth_len(version);
    let tstart = tend - count * ENTRY_LEN;
    let entries = decode_trailer(&bytes[tstart..tend], &hash, len, object, version)?;
    let auth = match version {
        1 => None,
        _ => {
            let mut a = [0u8; AUTH_LEN];
            a.copy_from_slice(&bytes[tend..auth_end]);
            let a = PackAuth::decode(&a, object)?;
            Some((a, auth_message(&hash, count as u32, a.kind, &a.key_id)))
        }
    };
    Ok(Trailer { entries, auth })
}
