//! Repository files as stored and as plaintext (format-spec/keys.md,
//! objects.md): the one place that decides whether a file is decrypted,
//! for `Repo` and for what reads a repository before or without opening
//! it (`sync` compares configs and reads manifests, `check` decodes the
//! config again).

use crate::crypto::{Crypto, agefile};
use crate::error::{Error, Result};
use crate::object::{self, ObjectKind};
use crate::repo::config::Config;
use bincode::{Decode, Encode};

/// Largest config, snapshot or key file accepted (objects.md limits).
pub const MAX_FILE: usize = object::MAX_OBJECT + object::HEADER_LEN;

/// Whether the repository whose `config` file holds `bytes` is encrypted:
/// its config is an age file (keys.md). The storage may lie about it;
/// `Repo::open` refuses a plaintext config where encryption is expected
/// (threat-model.md "Downgrade").
pub fn is_encrypted(config: &[u8]) -> bool {
    agefile::is_age(config)
}

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

/// The config `bytes` under the secret of a key file that `keys::unlock`
/// is trying: it must authenticate under that secret and belong to the
/// repository the key file names (`repo_id`). `object` names the config,
/// `key` the key file, in errors.
pub fn config_of_key(
    bytes: &[u8],
    object: &str,
    crypto: &Crypto,
    repo_id: &crate::id::RepoId,
    key: String,
) -> Result<Config> {
    let plain = crypto.decrypt(bytes, object, MAX_FILE)?;
    let config = Config::from_bytes(&plain, object, Some(crypto))?;
    if config.repo_id != *repo_id {
        return Err(Error::corrupt(key, "the key belongs to another repository"));
    }
    Ok(config)
}
