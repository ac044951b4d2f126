//! Typed 32-byte ids (format-spec/repository.md "Ids"): a `PackId` is never a `BlobId`,
//! nor a `RepoId`.

use std::fmt;

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parse exactly 64 hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let (hi, lo) = (HEX[usize::from(pair[0])], HEX[usize::from(pair[1])]);
        if hi > 15 || lo > 15 {
            return None;
        }
        out[i] = hi << 4 | lo;
    }
    Some(out)
}

/// Each byte's value as a hex digit (either case), 0xff if it is not one.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                to_hex(&self.0)
            }
            /// The first 8 hex digits, as shown to users.
            pub fn short(&self) -> String {
                to_hex(&self.0[..4])
            }
            /// Parse 64 hex digits.
            pub fn from_hex(s: &str) -> Option<Self> {
                parse_hex32(s).map(Self)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
    };
}

define_id!(
    /// BLAKE3 of a blob's plaintext (keyed in encrypted repositories).
    BlobId
);
define_id!(
    /// BLAKE3 of a pack file's bytes as stored.
    PackId
);
define_id!(
    /// Id of a snapshot manifest: the id field of its envelope (BLAKE3 of the
    /// body, or its MAC in an encrypted repository), also its file name.
    SnapshotId
);

define_id!(
    /// The random id of a repository (`config`'s `repo_id`, objects.md
    /// "Config body"), which its key files repeat and its cache directories
    /// are named by.
    RepoId
);

/// A decoder written from the spec alone compares its bytes with the
/// library's id (tests/it/vectors.rs).
impl PartialEq<RepoId> for [u8; 32] {
    fn eq(&self, other: &RepoId) -> bool {
        *self == other.0
    }
}

/// The id of a key (keys.md "Key files"): the name of its key file
/// `keys/<id>`, 32 hex digits, or [`KeyId::recovery`] for the recovery key,
/// which has no file. Stored as its text in a key's info file.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, bincode::Encode, bincode::Decode, serde::Serialize,
)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// The id of a new key file: 16 random bytes in hex.
    pub fn from_random(bytes: [u8; 16]) -> KeyId {
        KeyId(to_hex(&bytes))
    }
    /// `name` if it is the name of a key file (32 hex digits).
    pub fn from_file_name(name: &str) -> Option<KeyId> {
        (name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| KeyId(name.to_string()))
    }
    /// The 16 bytes of a key file's id (`None` for the recovery key).
    pub fn to_bytes16(&self) -> Option<[u8; 16]> {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(self.0.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        (self.0.len() == 32).then_some(out)
    }

    /// The key id of 16 bytes (a pack's authentication section).
    pub fn from_bytes16(b: &[u8; 16]) -> KeyId {
        KeyId(to_hex(b))
    }

    /// The id a repository opened with the recovery key reports: no key
    /// file's name (those are 32 hex digits).
    pub fn recovery() -> KeyId {
        KeyId("recovery-key".to_string())
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl BlobId {
    /// The id of `data` in a plaintext repository.
    pub fn of(data: &[u8]) -> Self {
        BlobId(*blake3::hash(data).as_bytes())
    }
}

impl PackId {
    /// Relative path of the pack file: `packs/ab/abcd…`.
    pub fn rel_path(&self) -> String {
        let h = self.to_hex();
        format!("packs/{}/{}", &h[..2], h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BlobId::of(b"hello");
        assert_eq!(BlobId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.to_hex(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(BlobId::from_hex("zz"), None);
        assert_eq!(BlobId::from_hex(&"g".repeat(64)), None);
    }
}
