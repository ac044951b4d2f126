//! The object envelope of config, snapshot and key files (format-spec/objects.md
//! "The object envelope") and the bincode configuration every body uses. In
//! an encrypted repository the envelope's id field is a MAC under the
//! repository's MAC key (keys.md "MACs"); the envelope is then age-encrypted.

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use bincode::{Decode, Encode};

/// `"STRATA"`, the first six bytes of every strata file.
pub const MAGIC: &[u8; 6] = b"STRATA";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Decoder limit for one object body (objects.md).
pub const MAX_OBJECT: usize = 64 << 20;
/// Envelope header length: magic, kind, version, id, body length.
pub const HEADER_LEN: usize = 44;

/// The bincode configuration of format version 1.
pub fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_OBJECT>()
}

/// Encode `value` with the version-1 bincode configuration.
pub fn encode_body<T: Encode>(value: &T) -> Result<Vec<u8>> {
    bincode::encode_to_vec(value, bincode_config())
        .map_err(|e| Error::Internal(format!("cannot encode object: {e}")))
}

/// Decode a whole body; trailing bytes are an error.
pub fn decode_body<T: Decode<()>>(bytes: &[u8], object: &str) -> Result<T> {
    let (value, used) = bincode::decode_from_slice(bytes, bincode_config())
        .map_err(|e| Error::corrupt(object, format!("cannot decode: {e}")))?;
    if used != bytes.len() {
        return Err(Error::corrupt(
            object,
            format!("{} trailing bytes", bytes.len() - used),
        ));
    }
    Ok(value)
}

/// The kind byte of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `config`
    Config = b'C' as isize,
    /// `snapshots/<id>`
    Snapshot = b'S' as isize,
    /// `keys/<id>`: a wrapped repository secret (checksum, no MAC).
    Key = b'K' as isize,
    /// `keys/<id>.info`: what `key list` shows.
    KeyInfo = b'I' as isize,
    /// `gc/<id>`: condemned packs and removed manifests (format-spec/gc.md).
    GcState = b'G' as isize,
    /// `keys/<id>.removed` (format 3).
    KeyRemoved = b'R' as isize,
    /// `trust/<id>`: packs a full key verified (format 3).
    Trust = b'T' as isize,
    /// `dicts/<id>`: a zstd dictionary (format-spec/objects.md).
    Dict = b'D' as isize,
}

impl ObjectKind {
    /// The envelope version this code writes for the kind: 2 for snapshot
    /// manifests (objects.md "Snapshot body", `layout`), 1 for the rest.
    pub fn version(self) -> u8 {
        match self {
            ObjectKind::Snapshot => 2,
            _ => FORMAT_VERSION,
        }
    }

    /// The highest envelope version read (format 3, write-only.md):
    /// manifests signed by a write-only key (3), write-only key files and
    /// their info (2).
    pub fn max_version(self) -> u8 {
        match self {
            ObjectKind::Snapshot => 3,
            ObjectKind::Key | ObjectKind::KeyInfo | ObjectKind::Dict => 2,
            _ => self.version(),
        }
    }
}

/// Whether envelopes of `kind` and `version` are signed rather than MACed
/// (a write-only key's manifest or dictionary, write-only.md): their id
/// field is then plain BLAKE3 of kind, version and body, and the signature
/// in the body is checked by the reader (snapshot::manifest,
/// repo::dicts), never here.
pub fn is_signed(kind: ObjectKind, version: u8) -> bool {
    (kind == ObjectKind::Snapshot && version >= 3) || (kind == ObjectKind::Dict && version >= 2)
}

/// The id field: the MAC under `crypto`, else the BLAKE3 of the body.
fn tag(kind: ObjectKind, version: u8, body: &[u8], crypto: Option<&Crypto>) -> Result<[u8; 32]> {
    if is_signed(kind, version) {
        let mut h = blake3::Hasher::new();
        h.update(&[kind as u8, version]);
        h.update(body);
        return Ok(*h.finalize().as_bytes());
    }
    match crypto {
        Some(c) => c.mac(kind as u8, version, body),
        None => Ok(*blake3::hash(body).as_bytes()),
    }
}

/// Wrap `value` in an envelope; returns the envelope bytes and the id (a
/// MAC when `crypto` is given).
pub fn seal<T: Encode>(
    kind: ObjectKind,
    value: &T,
    crypto: Option<&Crypto>,
) -> Result<(Vec<u8>, [u8; 32])> {
    seal_as(kind, kind.version(), value, crypto)
}

/// [`seal`] as envelope `version` (one of those [`open_versioned`] reads).
pub fn seal_as<T: Encode>(
    kind: ObjectKind,
    version: u8,
    value: &T,
    crypto: Option<&Crypto>,
) -> Result<(Vec<u8>, [u8; 32])> {
    // Zeroized on drop: a key file's body holds the repository secret.
    let body = zeroize::Zeroizing::new(encode_body(value)?);
    if body.len() > MAX_OBJECT {
        return Err(Error::Invalid(format!(
            "object of {} bytes exceeds the {MAX_OBJECT}-byte limit",
            body.len()
        )));
    }
    let id = tag(kind, version, &body, crypto)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.push(version);
    out.extend_from_slice(&id);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok((out, id))
}

/// Check an envelope of `kind` (and its MAC when `crypto` is given) and
/// decode its body. `object` names the file in errors. Returns the value and
/// the id. Only the version this code writes for the kind is accepted; see
/// [`open_versioned`] for kinds with older versions.
pub fn open<T: Decode<()>>(
    kind: ObjectKind,
    bytes: &[u8],
    object: &str,
    crypto: Option<&Crypto>,
) -> Result<(T, [u8; 32])> {
    let (version, body, id) = open_versioned(kind, bytes, object, crypto)?;
    if version != kind.version() {
        return Err(Error::corrupt(
            object,
            format!("unsupported format version {version}"),
        ));
    }
    Ok((decode_body(body, object)?, id))
}

/// Check an envelope of `kind` of version 1 up to the one this code writes
/// (and its MAC when `crypto` is given). Returns the version, the body and
/// the id; the caller decodes the body of that version.
pub fn open_versioned<'b>(
    kind: ObjectKind,
    bytes: &'b [u8],
    object: &str,
    crypto: Option<&Crypto>,
) -> Result<(u8, &'b [u8], [u8; 32])> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::corrupt(
            object,
            format!(
                "truncated: {} bytes, header needs {HEADER_LEN}",
                bytes.len()
            ),
        ));
    }
    if &bytes[..6] != MAGIC {
        return Err(Error::corrupt(object, "bad magic (not a strata object)"));
    }
    if bytes[6] != kind as u8 {
        return Err(Error::corrupt(
            object,
            format!(
                "object kind {:?} where {:?} was expected",
                bytes[6] as char, kind as u8 as char
            ),
        ));
    }
    let version = bytes[7];
    if !(1..=kind.max_version()).contains(&version) {
        return Err(Error::corrupt(
            object,
            format!("unsupported format version {version}"),
        ));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&bytes[8..40]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[40..44]);
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_OBJECT || bytes.len() != HEADER_LEN + len {
        return Err(Error::corrupt(
            object,
            format!(
                "length field says {len} bytes, file holds {}",
                bytes.len() - HEADER_LEN
            ),
        ));
    }
    let body = &bytes[HEADER_LEN..];
    // blake3::Hash compares in constant time.
    if blake3::Hash::from(tag(kind, version, body, crypto)?) != blake3::Hash::from(id) {
        return Err(Error::corrupt(
            object,
            if crypto.is_some() {
                "authentication failed: MAC does not match (forged, or not written with this repository's key)"
            } else {
                "checksum mismatch"
            },
        ));
    }
    Ok((version, body, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_checks() {
        let v: (u32, String) = (7, "x".into());
        let (bytes, id) = seal(ObjectKind::Snapshot, &v, None).unwrap();
        let (back, id2): ((u32, String), _) =
            open(ObjectKind::Snapshot, &bytes, "t", None).unwrap();
        assert_eq!((back, id2), (v, id));
        // wrong kind is rejected
        assert!(open::<(u32, String)>(ObjectKind::Config, &bytes, "t", None).is_err());
        // any flipped byte is rejected
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(
                open::<(u32, String)>(ObjectKind::Snapshot, &b, "t", None).is_err(),
                "byte {i}"
            );
        }
        // truncation is rejected
        assert!(
            open::<(u32, String)>(ObjectKind::Snapshot, &bytes[..bytes.len() - 1], "t", None)
                .is_err()
        );
    }
}
