//! Repository files as stored and as plaintext (format-spec/keys.md,
//! objects.md): the one place that decides whether a file is decrypted,
//! for `Repo` and for what reads a repository before or without opening
//! it (`sync` compares configs and reads manifests, `check` decodes the
//! config again).

use crate::crypto::{Crypto, agefile};
use crate::error::{Error, Result};
use crate::object;
use crate::repo::config::Config;

/// Largest config, snapshot or key file accepted (objects.md limits).
pub const MAX_FILE: usize = object::MAX_OBJECT + object::HEADER_LEN;

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
    match crypto {
        Some(c) => {
            let plain = c.decrypt(bytes, object, MAX_FILE)?;
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
