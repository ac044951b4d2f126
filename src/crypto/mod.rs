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
/// Format 3 (write-only.md "What each kind of key holds"): the
/// coordination identity (locks, the coordination file) and the
/// repository's signing key, both derived from the id key, so full key
/// files do not change.
const CTX_COORD: &str = "strata 2026-12 coordination";
const CTX_REPO_SIGN: &str = "strata 2026-12 repository signing";

/// What a write-only key holds of its own: its id and signing key.
pub struct Writer {
    /// The key file's id (`keys/<id>`).
    pub key_id: crate::id::KeyId,
    signing: ed25519_dalek::SigningKey,
}

/// The unlocked repository secret and the keys derived from it. A full
/// key holds everything; a write-only key (format-spec/write-only.md)
/// lacks the identity, the id key and the MAC key, and each use of those
/// is an [`Error::NeedsFullKey`].
pub struct Crypto {
    identity: Option<age::x25519::Identity>,
    recipient: age::x25519::Recipient,
    id_key: Option<Zeroizing<[u8; 32]>>,
    data_key: Zeroizing<[u8; 32]>,
    tree_key: Zeroizing<[u8; 32]>,
    mac_key: Option<Zeroizing<[u8; 32]>>,
    seed: u64,
    coord: age::x25519::Identity,
    repo_verifying: ed25519_dalek::VerifyingKey,
    repo_signing: Option<ed25519_dalek::SigningKey>,
    writer: Option<Writer>,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.writer {
            Some(w) => write!(f, "Crypto(write-only key {})", w.key_id),
            None => write!(f, "Crypto(recipient {})", self.recipient),
        }
    }
}

/// The parts a write-only key file holds (repo::keys), in and out.
pub struct WriteOnlyParts {
    /// The repository recipient, `age1…`.
    pub recipient: String,
    /// The data id key.
    pub data_key: [u8; 32],
    /// The tree id key.
    pub tree_key: [u8; 32],
    /// The chunker seed.
    pub seed: u64,
    /// The coordination identity, `AGE-SECRET-KEY-1…`.
    pub coord_identity: String,
    /// The repository's ed25519 verifying key.
    pub repo_verifying: [u8; 32],
    /// This key's ed25519 signing seed.
    pub signing_seed: [u8; 32],
}

impl Drop for WriteOnlyParts {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.data_key.zeroize();
        self.tree_key.zeroize();
        self.coord_identity.zeroize();
        self.signing_seed.zeroize();
    }
}

/// An age X25519 identity from 32 secret bytes (age's Bech32 text form).
fn x25519_identity(secret: &[u8; 32], object: &str) -> Result<age::x25519::Identity> {
    use bech32::ToBase32;
    let text = Zeroizing::new(
        bech32::encode(
            "age-secret-key-",
            secret.to_base32(),
            bech32::Variant::Bech32,
        )
        .map_err(|e| Error::Internal(format!("cannot encode an age identity: {e}")))?
        .to_uppercase(),
    );
    age::x25519::Identity::from_str(&text)
        .map_err(|_| Error::corrupt(object, "the coordination identity is not an age key"))
}

impl Crypto {
    /// A fresh random secret (`strata init`).
    pub fn generate() -> Result<Self> {
        let id_key = Zeroizing::new(crate::sys::random_bytes::<32>()?);
        let seed = u64::from_le_bytes(crate::sys::random_bytes::<8>()?);
        Self::from_parts(age::x25519::Identity::generate(), id_key, seed, "")
    }

    /// Rebuild from the parts stored in a key file.
    pub fn from_secret(identity: &str, id_key: &[u8; 32], seed: u64, object: &str) -> Result<Self> {
        let identity = age::x25519::Identity::from_str(identity)
            .map_err(|_| Error::corrupt(object, "the stored data identity is not an age key"))?;
        Self::from_parts(identity, Zeroizing::new(*id_key), seed, object)
    }

    fn from_parts(
        identity: age::x25519::Identity,
        id_key: Zeroizing<[u8; 32]>,
        seed: u64,
        object: &str,
    ) -> Result<Self> {
        let derive = |ctx| Zeroizing::new(blake3::derive_key(ctx, &id_key[..]));
        let coord = x25519_identity(&derive(CTX_COORD), object)?;
        let repo_signing = ed25519_dalek::SigningKey::from_bytes(&derive(CTX_REPO_SIGN));
        Ok(Crypto {
            recipient: identity.to_public(),
            data_key: derive(CTX_DATA),
            tree_key: derive(CTX_TREE),
            mac_key: Some(derive(CTX_MAC)),
            identity: Some(identity),
            coord,
            repo_verifying: repo_signing.verifying_key(),
            repo_signing: Some(repo_signing),
            id_key: Some(id_key),
            seed,
            writer: None,
        })
    }

    /// The secret of write-only key `key_id` from the parts of its key
    /// file; `object` names the file in errors.
    pub fn write_only(
        parts: &WriteOnlyParts,
        key_id: crate::id::KeyId,
        object: &str,
    ) -> Result<Self> {
        let bad = |what: &str| Error::corrupt(object, format!("the stored {what} is not valid"));
        let recipient = age::x25519::Recipient::from_str(&parts.recipient)
            .map_err(|_| bad("repository recipient"))?;
        let coord = age::x25519::Identity::from_str(&parts.coord_identity)
            .map_err(|_| bad("coordination identity"))?;
        let repo_verifying = ed25519_dalek::VerifyingKey::from_bytes(&parts.repo_verifying)
            .map_err(|_| bad("repository verifying key"))?;
        Ok(Crypto {
            identity: None,
            recipient,
            id_key: None,
            data_key: Zeroizing::new(parts.data_key),
            tree_key: Zeroizing::new(parts.tree_key),
            mac_key: None,
            seed: parts.seed,
            coord,
            repo_verifying,
            repo_signing: None,
            writer: Some(Writer {
                key_id,
                signing: ed25519_dalek::SigningKey::from_bytes(&parts.signing_seed),
            }),
        })
    }

    /// The parts of a new write-only key made from this full key, with a
    /// fresh signing seed; also returns the new key's verifying key.
    pub fn write_only_parts(&self) -> Result<(WriteOnlyParts, [u8; 32])> {
        self.full("make a write-only key")?;
        let signing_seed = crate::sys::random_bytes::<32>()?;
        let verifying = ed25519_dalek::SigningKey::from_bytes(&signing_seed)
            .verifying_key()
            .to_bytes();
        let parts = WriteOnlyParts {
            recipient: self.recipient.to_string(),
            data_key: *self.data_key,
            tree_key: *self.tree_key,
            seed: self.seed,
            coord_identity: self.coord.to_string().expose_secret().to_string(),
            repo_verifying: self.repo_verifying.to_bytes(),
            signing_seed,
        };
        Ok((parts, verifying))
    }

    /// `Err` unless this is a full key; `what` names what needed it.
    pub fn full(&self, what: &str) -> Result<()> {
        match &self.writer {
            None => Ok(()),
            Some(w) => Err(needs_full_key(what, &w.key_id)),
        }
    }

    /// The write-only key's own part; `None` for a full key.
    pub fn writer(&self) -> Option<&Writer> {
        self.writer.as_ref()
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
    /// A write-only key cannot MAC ([`Error::NeedsFullKey`]).
    pub fn mac(&self, kind: u8, version: u8, body: &[u8]) -> Result<[u8; 32]> {
        let key = self
            .mac_key
            .as_ref()
            .ok_or_else(|| self.lacks("authenticate"))?;
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(&[kind, version]);
        h.update(body);
        Ok(*h.finalize().as_bytes())
    }

    /// The chunker's gear seed.
    pub fn chunker_seed(&self) -> u64 {
        self.seed
    }

    /// The 32-byte id key (written into new key files only).
    pub fn id_key(&self) -> Result<&[u8; 32]> {
        self.id_key
            .as_deref()
            .ok_or_else(|| self.lacks("add a full key"))
    }

    /// The data identity as an `AGE-SECRET-KEY-1…` string.
    pub fn identity_string(&self) -> Result<Zeroizing<String>> {
        Ok(Zeroizing::new(
            self.identity()?.to_string().expose_secret().to_string(),
        ))
    }

    /// The data identity.
    pub fn identity(&self) -> Result<&age::x25519::Identity> {
        self.identity.as_ref().ok_or_else(|| self.lacks("decrypt"))
    }

    /// The public recipient every repository file is encrypted to.
    pub fn recipient(&self) -> &age::x25519::Recipient {
        &self.recipient
    }

    /// The coordination recipient (locks and the coordination file are
    /// encrypted to it too, so write-only hosts can read them).
    pub fn coord_recipient(&self) -> age::x25519::Recipient {
        self.coord.to_public()
    }

    /// Encrypt a small file to the repository recipient.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        agefile::encrypt(&[&self.recipient], plaintext)
    }

    /// Encrypt a small file to the repository and coordination recipients
    /// (locks, the coordination file: write-only.md).
    pub fn encrypt_shared(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let coord = self.coord_recipient();
        agefile::encrypt(&[&self.recipient, &coord], plaintext)
    }

    /// Decrypt a small repository file; `object` names it in errors.
    pub fn decrypt(&self, bytes: &[u8], object: &str, limit: usize) -> Result<Zeroizing<Vec<u8>>> {
        agefile::decrypt(bytes, &[self.identity()?], object, limit)
            .map_err(|e| e.into_error(object))
    }

    /// Decrypt a file encrypted with [`Crypto::encrypt_shared`]: with the
    /// identity of a full key, the coordination identity of a write-only
    /// key (a lock of an older version, encrypted to the repository only,
    /// does not open with the latter).
    pub fn decrypt_shared(
        &self,
        bytes: &[u8],
        object: &str,
        limit: usize,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let id: &dyn age::Identity = match &self.identity {
            Some(i) => i,
            None => &self.coord,
        };
        agefile::decrypt(bytes, &[id], object, limit).map_err(|e| e.into_error(object))
    }

    /// Sign `msg` with the repository's key (full keys only).
    pub fn repo_sign(&self, msg: &[u8]) -> Result<[u8; 64]> {
        use ed25519_dalek::Signer;
        let k = self
            .repo_signing
            .as_ref()
            .ok_or_else(|| self.lacks("sign for the repository"))?;
        Ok(k.sign(msg).to_bytes())
    }

    /// Whether `sig` is the repository key's signature of `msg`.
    pub fn repo_verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.repo_verifying
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    }

    /// Sign `msg` with this write-only key's own key.
    pub fn writer_sign(&self, msg: &[u8]) -> Option<[u8; 64]> {
        use ed25519_dalek::Signer;
        Some(self.writer.as_ref()?.signing.sign(msg).to_bytes())
    }

    fn lacks(&self, what: &str) -> Error {
        match &self.writer {
            Some(w) => needs_full_key(what, &w.key_id),
            None => Error::Internal(format!("a full key without the part to {what}")),
        }
    }
}

/// What a write-only key signs for a manifest or a dictionary
/// (write-only.md): `context`, the u64 LE length of the encoded body, the
/// body, and the signer's key id.
pub fn signed_message(context: &[u8], body: &[u8], writer: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 8 + body.len() + writer.len());
    m.extend_from_slice(context);
    m.extend_from_slice(&(body.len() as u64).to_le_bytes());
    m.extend_from_slice(body);
    m.extend_from_slice(writer.as_bytes());
    m
}

/// Whether `sig` is a signature of `msg` by the ed25519 key `verifying`.
pub fn verify(verifying: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(verifying).is_ok_and(|k| {
        k.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
            .is_ok()
    })
}

/// The error of a write-only key asked to do what needs a full key.
pub fn needs_full_key(what: &str, key: &crate::id::KeyId) -> Error {
    Error::NeedsFullKey(format!(
        "{what} needs a full key; write-only key {key} cannot decrypt or authenticate \
         (format-spec/write-only.md)"
    ))
}
