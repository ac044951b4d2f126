//! Byte layout of a pack, mirroring format-spec/pack.md section by section.

use crate::blob::{BlobKind, Compression, MAX_RAW, MAX_STORED};
use crate::error::{Error, Result};
use crate::id::BlobId;

/// Header: magic "STRATA", kind 'P', version.
pub const HEADER: [u8; 8] = *b"STRATAP\x01";
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

/// Parse a footer; returns the entry count.
pub fn decode_footer(
    footer: &[u8; FOOTER_LEN],
    file_len: u64,
    object: &str,
) -> Result<(usize, [u8; 32])> {
    if &footer[36..44] != FOOTER_MAGIC {
        return Err(Error::corrupt(object, "bad footer magic (truncated pack?)"));
    }
    let mut c = [0u8; 4];
    c.copy_from_slice(&footer[0..4]);
    let count = u32::from_le_bytes(c) as u64;
    if HEADER_LEN + count * ENTRY_LEN as u64 + FOOTER_LEN as u64 > file_len {
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
) -> Result<Vec<PackEntry>> {
    if blake3::hash(trailer).as_bytes() != expected_hash {
        return Err(Error::corrupt(object, "trailer checksum mismatch"));
    }
    let trailer_start = file_len - trailer.len() as u64 - FOOTER_LEN as u64;
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

/// Check the 8-byte header.
pub fn check_header(h: &[u8], object: &str) -> Result<()> {
    if h.len() < 8 || h[..7] != HEADER[..7] {
        return Err(Error::corrupt(object, "bad pack header magic"));
    }
    if h[7] != HEADER[7] {
        return Err(Error::corrupt(
            object,
            format!("unsupported pack version {}", h[7]),
        ));
    }
    Ok(())
}

/// Parse a whole pack held in memory: header, footer, trailer.
pub fn parse_pack(bytes: &[u8], object: &str) -> Result<Vec<PackEntry>> {
    let len = bytes.len() as u64;
    if len < HEADER_LEN + FOOTER_LEN as u64 {
        return Err(Error::corrupt(object, format!("truncated: {len} bytes")));
    }
    check_header(&bytes[..8], object)?;
    let mut f = [0u8; FOOTER_LEN];
    f.copy_from_slice(&bytes[bytes.len() - FOOTER_LEN..]);
    let (count, hash) = decode_footer(&f, len, object)?;
    let tstart = bytes.len() - FOOTER_LEN - count * ENTRY_LEN;
    decode_trailer(&bytes[tstart..bytes.len() - FOOTER_LEN], &hash, len, object)
}
