//! Repository encryption (format-spec/keys.md): the repository secret, the
//! keys derived from it, and the age files every repository file is written
//! as. The secret never touches disk unencrypted: it is held in zeroizing
//! buffers and written only inside age-encrypted key files (`repo::keys`).

pub mod agefile;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::BlobId;
use age::secrecy::ExposeSecret;
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// Key-derivation contexts (keys.md "Derived keys"). Changing one changes
/// every id of an encrypted repository: they are part of format version 1.
const CTX_DATA: &str = "strata 2026-11-22 data chunk id";
const CTX_TREE: &str = "strata 2026-11-22 tree id";
const CTX_MAC: &str = "strata 2026-11-22 object mac";

/// The unlocked repository secret and the keys derived from it.
pub struct Crypto {
    identity: age::x25519::Identity,
    recipient: age::x25519::Recipient,
    id_key: Zeroizing<[u8; 32]>,
    data_key: Zeroizing<[u8; 32]>,
    tree_key: Zeroizing<[u8; 32]>,
    mac_key: Zeroizing<[u8; 32]>,
    seed: u64,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crypto(recipient {})", self.recipient)
    }
}

impl Crypto {
    /// A fresh random secret (`strata init`).
    pub fn generate() -> Result<Self> {
        let id_key = Zeroizing::new(crate::sys::random_bytes::<32>()?);
        let seed = u64::from_le_bytes(crate::sys::random_bytes::<8>()?);
        Ok(Self::from_parts(
            age::x25519::Identity::generate(),
            id_key,
            seed,
        ))
    }

    /// Rebuild from the parts stored in a key file.
    pub fn from_secret(identity: &str, id_key: &[u8; 32], seed: u64, object: &str) -> Result<Self> {
        let identity = age::x25519::Identity::from_str(identity)
            .map_err(|_| Error::corrupt(object, "the stored data identity is not an age key"))?;
        Ok(Self::from_parts(identity, Zeroizing::new(*id_key), seed))
    }

    fn from_parts(identity: age::x25519::Identity, id_key: Zeroizing<[u8; 32]>, seed: u64) -> Self {
        let derive = |ctx| Zeroizing::new(blake3::derive_key(ctx, &id_key[..]));
        Crypto {
            recipient: identity.to_public(),
            data_key: derive(CTX_DATA),
            tree_key: derive(CTX_TREE),
            mac_key: derive(CTX_MAC),
            identity,
            id_key,
            seed,
        }
    }

    /// The keyed id of a blob's plaintext: data and tree blobs use different
    /// keys, so a data blob can never carry a tree's id (keys.md "Ids").
    pub fn blob_id(&self, kind: BlobKind, data: &[u8]) -> BlobId {
        let key = match kind {
            BlobKind::Data => &self.data_key,
            BlobKind::Tree => &self.tree_key,
        };
        BlobId(*blake3::keyed_hash(key, data).as_bytes())
    }

    /// The MAC of an envelope: keyed BLAKE3 over kind, version and body.
    pub fn mac(&self, kind: u8, version: u8, body: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.mac_key);
        h.update(&[kind, version]);
        h.update(body);
        *h.finalize().as_bytes()
    }

    /// The chunker's gear seed.
    pub fn chunker_seed(&self) -> u64 {
        self.seed
    }

    /// The 32-byte id key (written into new key files only).
    pub fn id_key(&self) -> &[u8; 32] {
        &self.id_key
    }

    /// The data identity as an `AGE-SECRET-KEY-1…` string.
    pub fn identity_string(&self) -> Zeroizing<String> {
        Zeroizing::new(self.identity.to_string().expose_secret().to_string())
    }

    /// The data identity.
    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }

    /// The public recipient every repository file is encrypted to.
    pub fn recipient(&self) -> &age::x25519::Recipient {
        &self.recipient
    }

    /// Encrypt a small file to the repository recipient.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        agefile::encrypt(&[&self.recipient], plaintext)
    }

    /// Decrypt a small repository file; `object` names it in errors.
    pub fn decrypt(&self, bytes: &[u8], object: &str, limit: usize) -> Result<Zeroizing<Vec<u8>>> {
        agefile::decrypt(bytes, &[&self.identity], object, limit).map_err(|e| e.into_error(object))
    }
}
