//! Is the destination the same repository as the source, and what sync may
//! decode (format-spec/sync.md "Safety"). Copying needs no key: files are
//! copied as bytes. Two decisions need more than bytes, and only they
//! unlock an encrypted source (with the usual credential: passphrase or
//! identity), only when they arise:
//!
//! - the destination's `config` differs from the source's byte for byte
//!   (equal bytes are the same repository; the only legitimate difference
//!   is the format 1 -> 2 upgrade of repository.md): both configs are
//!   decoded and their repository ids compared;
//! - `--delete` would remove manifests: their times are read to refuse a
//!   source that was rolled back or emptied.
//!
//! Unlocking reads the source's key files through its backend and is
//! `Repo::open`'s own (`repo::keys::unlock_config`); files are decrypted as
//! `Repo` decrypts them (`repo::files::with_plaintext`).

use crate::backend::{Backend, key};
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::repo::CredentialSource;
use crate::repo::config::Config;
use crate::repo::files;
use crate::repo::keys::{self, Credential};
use crate::snapshot::Snapshot;
use bytes::Bytes;
use std::sync::Arc;

/// What to do with the destination's `config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConfigAction {
    /// The destination is empty: a new mirror, the config is copied first.
    New,
    /// The same repository (same bytes, or same id and not older).
    Same,
    /// The same repository in format 1 where the source is format 2: the
    /// config is replaced (the one replace repository.md allows) before
    /// anything of format 2 is copied.
    Upgrade,
}

/// The source's config and, once needed, its unlocked secret.
pub(super) struct SourceKeys<'a, 'c> {
    src: &'a dyn Backend,
    /// The source's `config`, as stored.
    pub config: Bytes,
    creds: CredentialSource<'c>,
    /// `None` until needed; then `Some(None)` for an unencrypted source.
    crypto: Option<Option<Arc<Crypto>>>,
}

impl<'a, 'c> SourceKeys<'a, 'c> {
    /// Read the source's config; a source without one is no repository.
    /// An unencrypted source is refused where `open` requires encryption or
    /// this user recorded an encrypted repository (threat-model.md
    /// "Downgrade"): its packs would otherwise be copied offsite as
    /// plaintext.
    pub fn read(
        src: &'a dyn Backend,
        creds: CredentialSource<'c>,
        open: &crate::repo::OpenOptions,
    ) -> Result<Self> {
        let config = match src.get(key::CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::Invalid(format!(
                    "{}: not a strata repository (no config): nothing to sync from",
                    src.name()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if !files::is_encrypted(&config) {
            crate::repo::refuse_unencrypted(src.name(), open)?;
        }
        Ok(SourceKeys {
            src,
            config,
            creds,
            crypto: None,
        })
    }

    fn encrypted(&self) -> bool {
        files::is_encrypted(&self.config)
    }

    /// The source's secret (`None` for an unencrypted repository),
    /// unlocked on first use.
    pub fn crypto(&mut self) -> Result<Option<Arc<Crypto>>> {
        if let Some(c) = &self.crypto {
            return Ok(c.clone());
        }
        let c = if self.encrypted() {
            let cred = (self.creds)()?;
            Some(unlock(self.src, &self.config, &cred)?)
        } else {
            None
        };
        self.crypto = Some(c.clone());
        Ok(c)
    }

    /// Decode a config (the source's, or one claiming to be of the same
    /// repository) under the source's secret. `object` names it.
    fn decode_config(&mut self, bytes: &[u8], object: &str) -> Result<Config> {
        let crypto = self.crypto()?;
        files::open_config(bytes, object, crypto.as_deref())
    }
}

/// Check that `dst` is empty or holds the source's repository.
pub(super) fn check(keys: &mut SourceKeys, dst: &dyn Backend) -> Result<ConfigAction> {
    let theirs = match dst.get(key::CONFIG) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return check_empty(dst).map(|_| ConfigAction::New),
        Err(e) => return Err(e.into()),
    };
    if theirs == keys.config {
        return Ok(ConfigAction::Same);
    }
    let src_name = keys.src.name().to_string();
    let another = |why: String| {
        Error::Invalid(format!(
            "{}: holds another repository than {src_name} ({why}): refusing to sync into it",
            dst.name()
        ))
    };
    if files::is_encrypted(&theirs) != keys.encrypted() {
        return Err(another("one is encrypted, the other is not".to_string()));
    }
    // same bytes or not, only the ids tell: an encrypted source is unlocked
    let crypto = keys.crypto().map_err(|e| match e {
        Error::Locked(why) => Error::Locked(format!(
            "{}: its config differs from {src_name}'s; to tell whether it holds the same \
             repository sync must unlock the source: {why}",
            dst.name()
        )),
        e => e,
    })?;
    if let Some(w) = crypto.as_ref().and_then(|c| c.writer()) {
        // write-only.md: a write-only key cannot decrypt either config; the
        // usual case is a mirror made before `key add --write-only`
        // upgraded the source to format 3, which a full key's sync copies
        return Err(Error::NeedsFullKey(format!(
            "{}: its config differs from {src_name}'s (an upgrade, e.g. to format 3 by \
             `key add --write-only`, not synced yet?); write-only key {} cannot tell whether \
             it holds the same repository: run `strata sync` to it once with a full key",
            dst.name(),
            w.key_id
        )));
    }
    let ours = keys.decode_config(&keys.config.clone(), &format!("{src_name}: config"))?;
    let dst_object = format!("{}: config", dst.name());
    let theirs = keys
        .decode_config(&theirs, &dst_object)
        .map_err(|e| another(format!("its config does not open as the source's: {e}")))?;
    if theirs.repo_id != ours.repo_id {
        return Err(another(format!(
            "repository id {}…, the source's is {}…",
            theirs.repo_id.short(),
            ours.repo_id.short()
        )));
    }
    let same_but_version = Config {
        version: ours.version,
        ..theirs.clone()
    };
    if same_but_version != ours {
        return Err(Error::corrupt(
            dst_object,
            "same repository id as the source, but other settings: not replaced",
        ));
    }
    Ok(if ours.version > theirs.version {
        ConfigAction::Upgrade
    } else {
        ConfigAction::Same
    })
}

/// A destination without `config` must hold nothing yet: sync makes a new
/// mirror only where it cannot mix with other files.
fn check_empty(dst: &dyn Backend) -> Result<()> {
    let mut first: Option<String> = None;
    dst.list("", &mut |l| {
        if first.is_none() {
            first = Some(l.key);
        }
    })?;
    match first {
        None => Ok(()),
        Some(k) => Err(Error::Invalid(format!(
            "{}: not empty and not a strata repository (holds {k} but no config): refusing to sync into it",
            dst.name()
        ))),
    }
}

/// The time of snapshot manifest `key` (`snapshots/<id>`) from `bytes`,
/// checked as every reader checks it (MAC under `crypto`, id = name).
pub(super) fn snapshot_time(
    bytes: &[u8],
    key: &str,
    object: &str,
    crypto: Option<&Crypto>,
    signers: &crate::repo::keys::Signers,
) -> Result<i64> {
    let (snap, id) = files::with_plaintext(bytes, object, crypto, |plain, c| {
        Snapshot::open(plain, object, c, signers)
    })?;
    if key.strip_prefix("snapshots/") != Some(crate::id::to_hex(&id).as_str()) {
        return Err(Error::corrupt(
            object,
            "content does not match the file name",
        ));
    }
    Ok(snap.time_unix_ns)
}

/// Unlock the source: the first key file that opens with `cred` and whose
/// secret authenticates `config` (as `Repo::open_with` decides).
fn unlock(src: &dyn Backend, config: &[u8], cred: &Credential) -> Result<Arc<Crypto>> {
    let names = format!("{}: ", src.name());
    keys::unlock_config(src, config, cred, &names).map(|(crypto, _, _)| crypto)
}
