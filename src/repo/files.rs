//! Repository files as stored and as plaintext (format-spec/keys.md,
//! objects.md): the one place that decides whether a file is decrypted,
//! for `Repo` and for what reads a repository before or without opening
//! it (`sync` compares configs and reads manifests, `check` decodes the
//! config again).

use crate::backend::Backend;
use crate::crypto::{Crypto, agefile};
use crate::error::{Error, Result};
use crate::object::{self, ObjectKind};
use crate::repo::config::Config;
use crate::repo::keys::{self, Credential};
use bincode::{Decode, Encode};
use std::sync::Arc;

/// Largest config, snapshot or key file accepted (objects.md limits).
pub const MAX_FILE: usize = object::MAX_OBJECT + object::HEADER_LEN;

/// Encode `value` as a repository file of `kind`: the envelope (MACed
/// with `crypto`), then age encryption to the repository. Returns the
/// bytes and the envelope's id.
pub fn seal<T: Encode>(
    kind: ObjectKind,
    value: &T,
    crypto: Option<&Crypto>,
) -> Result<(Vec<u8>, [u8; 32])> {
    let (plain, id) = object::seal(kind, value, crypto)?;
    match crypto {
        Some(c) => Ok((c.encrypt(&plain)?, id)),
        None => Ok((plain, id)),
    }
}

/// Decode a repository file of `kind` written by [`seal`], of at most
/// `limit` bytes of plaintext; `object` names it in errors.
pub fn open<T: Decode<()>>(
    kind: ObjectKind,
    bytes: &[u8],
    object: &str,
    crypto: Option<&Crypto>,
    limit: usize,
) -> Result<(T, [u8; 32])> {
    within(bytes, object, crypto, limit, |plain, c| {
        object::open(kind, plain, object, c)
    })
}

/// Run `f` on the plaintext of a repository file (decrypted, at most
/// [`MAX_FILE`] bytes, with `crypto` in an encrypted repository) and the
/// crypto that checks its MAC. An age file in an unencrypted repository is
/// corrupt. `object` names the file in errors.
pub fn with_plaintext<T>(
    bytes: &[u8],
    object: &str,
    crypto: Option<&Crypto>,
    f: impl FnOnce(&[u8], Option<&Crypto>) -> Result<T>,
) -> Result<T> {
    within(bytes, object, crypto, MAX_FILE, f)
}

/// [`with_plaintext`] with a plaintext limit of `limit` bytes.
fn within<T>(
    bytes: &[u8],
    object: &str,
    crypto: Option<&Crypto>,
    limit: usize,
    f: impl FnOnce(&[u8], Option<&Crypto>) -> Result<T>,
) -> Result<T> {
    match crypto {
        Some(c) => {
            let plain = c.decrypt(bytes, object, limit)?;
            f(&plain, Some(c))
        }
        None if agefile::is_age(bytes) => Err(Error::corrupt(
            object,
            "an age-encrypted file in an unencrypted repository",
        )),
        None => f(bytes, None),
    }
}

/// Decode and validate a `config` file under `crypto` (its MAC checked in
/// an encrypted repository).
pub fn open_config(bytes: &[u8], object: &str, crypto: Option<&Crypto>) -> Result<Config> {
    with_plaintext(bytes, object, crypto, |plain, c| {
        Config::from_bytes(plain, object, c)
    })
}

/// Unlock the repository whose `config` file holds `bytes` with `cred`:
/// the first key file of `store` that opens with it and whose secret
/// authenticates the config (keys.md "Unlocking"; the key that last
/// unlocked here is tried first). Returns the secret, the key's id and the
/// config. The one unlock path, of `Repo::open` and of `sync` (which reads
/// a source without opening it); `names` prefixes the file names in errors
/// (`""`, or the source's name and `: `).
pub fn unlock(
    store: &dyn Backend,
    bytes: &[u8],
    cred: &Credential,
    names: &str,
) -> Result<(Arc<Crypto>, String, Config)> {
    let prefer = super::known::last_key(store.name());
    let object = format!("{names}config");
    keys::unlock(store, cred, prefer.as_deref(), &mut |cand| {
        let crypto = Arc::new(cand.crypto);
        let key = format!("{names}keys/{}", cand.id);
        let config = config_of_key(bytes, &object, &crypto, &cand.repo_id, key)?;
        Ok((crypto, cand.id, config))
    })
}

/// The config `bytes` under the secret of a key file that `keys::unlock`
/// is trying: it must authenticate under that secret and belong to the
/// repository the key file names (`repo_id`). `object` names the config,
/// `key` the key file, in errors.
fn config_of_key(
    bytes: &[u8],
    object: &str,
    crypto: &Crypto,
    repo_id: &[u8; 32],
    key: String,
) -> Result<Config> {
    let plain = crypto.decrypt(bytes, object, MAX_FILE)?;
    let config = Config::from_bytes(&plain, object, Some(crypto))?;
    if config.repo_id != *repo_id {
        return Err(Error::corrupt(key, "the key belongs to another repository"));
    }
    Ok(config)
}
