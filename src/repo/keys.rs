//! Key files (format-spec/keys.md "Key files"): the repository secret
//! wrapped once per key in `keys/<id>`, an age file encrypted to a
//! passphrase (scrypt) or to an age/ssh recipient, plus `keys/<id>.info`
//! (label, kind, creation), encrypted to the repository and MACed.

use crate::backend::Backend;
use crate::crypto::{Crypto, agefile};
use crate::error::{Error, IoContext, Result};
use crate::id::{KeyId, RepoId};
use crate::object::{self, ObjectKind};
use crate::repo::config::Config;
use crate::repo::files;
use age::secrecy::SecretString;
use bincode::{Decode, Encode};
use std::fs;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// Default scrypt work factor of passphrase keys: N = 2^18, r = 8, p = 1
/// (256 MiB, about 0.5 s on the benchmark machine), age's own choice for
/// a passphrase on a machine like it. It is paid once per command (the
/// key that last unlocked is tried first).
pub const DEFAULT_SCRYPT_LOG_N: u8 = 18;

/// The largest scrypt work factor a key file may have, unless
/// `STRATA_SCRYPT_MAX_LOG_N` says otherwise: N = 2^20 (1 GiB, about 2 s).
/// age's own limit is the calibrated factor + 4 (about 16 GiB and 16 s
/// here), which lets a planted key file stall every unlock
/// (threat-model.md "Unlocking").
pub const MAX_SCRYPT_LOG_N: u8 = 20;

/// How many passphrase key files one unlock runs scrypt on at most: a
/// storage that plants key files cannot make unlocking cost more than this
/// many scrypt runs at [`MAX_SCRYPT_LOG_N`].
pub const MAX_SCRYPT_TRIES: usize = 8;

/// How many key files one unlock reads at most.
pub const MAX_KEY_FILES: usize = 1000;

/// The scrypt work factor limit: `STRATA_SCRYPT_MAX_LOG_N` (10..=30), else
/// [`MAX_SCRYPT_LOG_N`].
pub fn max_scrypt_log_n() -> Result<u8> {
    match std::env::var("STRATA_SCRYPT_MAX_LOG_N") {
        Ok(v) if !v.is_empty() => v
            .parse::<u8>()
            .ok()
            .filter(|n| (10..=30).contains(n))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "STRATA_SCRYPT_MAX_LOG_N={v:?}: expected a number from 10 to 30"
                ))
            }),
        _ => Ok(MAX_SCRYPT_LOG_N),
    }
}

/// The work factor of a new passphrase key: `log_n`, else the default;
/// refused above the limit, which would make the key refuse to open.
pub fn new_scrypt_log_n(log_n: Option<u8>) -> Result<u8> {
    let n = log_n.unwrap_or(DEFAULT_SCRYPT_LOG_N);
    let max = max_scrypt_log_n()?;
    if !(10..=max).contains(&n) {
        return Err(Error::Invalid(format!(
            "scrypt work factor 2^{n} is outside 2^10..=2^{max} (a higher one needs \
             STRATA_SCRYPT_MAX_LOG_N on every machine that opens the repository)"
        )));
    }
    Ok(n)
}

/// Largest key file we read (a key file is under 1 KiB).
const MAX_KEY_FILE: usize = 64 << 10;

/// How a user proves they may open the repository.
pub enum Credential {
    /// A passphrase for a scrypt key.
    Passphrase(SecretString),
    /// Identities (age X25519, ssh) for recipient keys.
    Identities(Vec<Box<dyn age::Identity>>),
    /// A recovery key (keys.md "Recovery key"): the secret itself, no key
    /// file needed.
    Recovery(Box<super::recovery::RecoveryKey>),
}

/// What a new key is encrypted to.
pub enum NewKey {
    /// A passphrase; `log_n` overrides the scrypt work factor
    /// ([`DEFAULT_SCRYPT_LOG_N`]).
    Passphrase {
        /// The passphrase.
        passphrase: SecretString,
        /// scrypt work factor N = 2^log_n.
        log_n: Option<u8>,
    },
    /// An age (`age1…`) or ssh (`ssh-ed25519 …`, `ssh-rsa …`) public key.
    Recipient(String),
}

/// The body of a key file's plaintext envelope (kind `K`).
#[derive(Encode, Decode)]
struct KeyBody {
    repo_id: RepoId,
    identity: String,
    id_key: [u8; 32],
    chunker_seed: u64,
}

impl Drop for KeyBody {
    fn drop(&mut self) {
        self.identity.zeroize();
        self.id_key.zeroize();
        self.chunker_seed.zeroize();
    }
}

/// The body of a write-only key file (envelope kind `K`, version 2;
/// format-spec/write-only.md "What each kind of key holds"): what a backup
/// needs and nothing that reads.
#[derive(Encode, Decode)]
struct WriteOnlyBody {
    repo_id: RepoId,
    recipient: String,
    data_key: [u8; 32],
    tree_key: [u8; 32],
    chunker_seed: u64,
    coord_identity: String,
    repo_verifying: [u8; 32],
    signing_seed: [u8; 32],
    /// The config, which the host cannot decrypt: a copy.
    config: Config,
    /// BLAKE3 of the `config` file as it was when the key was made: a
    /// config replaced since (an upgrade) stops the host.
    config_digest: [u8; 32],
}

impl Drop for WriteOnlyBody {
    fn drop(&mut self) {
        self.data_key.zeroize();
        self.tree_key.zeroize();
        self.coord_identity.zeroize();
        self.signing_seed.zeroize();
    }
}

/// The kind of a write-only key in `keys/<id>.info` and `key list`.
pub const WRITE_ONLY: &str = "write-only";

/// `keys/<id>.info` version 1 (every key before format 3).
#[derive(Encode, Decode)]
struct InfoV1 {
    id: String,
    label: String,
    kind: String,
    recipient: String,
    created_unix_ns: i64,
    host: String,
    username: String,
}

/// `keys/<id>.info` version 2: a write-only key's, with its verifying key.
#[derive(Encode, Decode)]
struct InfoV2 {
    v1: InfoV1,
    verifying_key: [u8; 32],
}

/// `keys/<id>.removed` (kind `R`): written by `key remove` of a write-only
/// key before its info goes (write-only.md "Manifests of write-only
/// keys"): the manifests it signed that stay valid.
#[derive(Encode, Decode)]
pub struct Removed {
    /// The key id.
    pub id: String,
    /// Its verifying key.
    pub verifying_key: [u8; 32],
    /// The ids of its manifests present at removal.
    pub manifests: Vec<[u8; 32]>,
    /// When, Unix nanoseconds.
    pub removed_unix_ns: i64,
}

/// What `key list` shows about a key (`keys/<id>.info`, kind `I`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    /// The key id (file name), bound into the MACed body.
    /// (As the file says: [`info`] checks it against the key's [`KeyId`].)
    pub id: String,
    /// Free-form label.
    pub label: String,
    /// `passphrase`, `age`, `ssh-ed25519` or `ssh-rsa`.
    pub kind: String,
    /// The public recipient for recipient keys; empty for passphrases.
    pub recipient: String,
    /// Creation time, Unix nanoseconds.
    pub created_unix_ns: i64,
    /// Host that created it.
    pub host: String,
    /// User that created it.
    pub username: String,
    /// A write-only key's ed25519 verifying key (info version 2).
    #[serde(skip)]
    pub verifying_key: Option<[u8; 32]>,
}

impl KeyInfo {
    fn v1(&self) -> InfoV1 {
        InfoV1 {
            id: self.id.clone(),
            label: self.label.clone(),
            kind: self.kind.clone(),
            recipient: self.recipient.clone(),
            created_unix_ns: self.created_unix_ns,
            host: self.host.clone(),
            username: self.username.clone(),
        }
    }

    fn from_v1(v: InfoV1, verifying_key: Option<[u8; 32]>) -> KeyInfo {
        KeyInfo {
            id: v.id,
            label: v.label,
            kind: v.kind,
            recipient: v.recipient,
            created_unix_ns: v.created_unix_ns,
            host: v.host,
            username: v.username,
            verifying_key,
        }
    }

    /// The sealed info file (version 2 for a write-only key), encrypted.
    pub fn seal(&self, crypto: &Crypto) -> Result<Vec<u8>> {
        let plain = match self.verifying_key {
            None => object::seal(ObjectKind::KeyInfo, &self.v1(), Some(crypto))?.0,
            Some(k) => {
                let body = InfoV2 {
                    v1: self.v1(),
                    verifying_key: k,
                };
                object::seal_as(ObjectKind::KeyInfo, 2, &body, Some(crypto))?.0
            }
        };
        crypto.encrypt(&plain)
    }

    /// Is this a write-only key's info?
    pub fn is_write_only(&self) -> bool {
        self.kind == WRITE_ONLY
    }
}

fn removed_path(id: &KeyId) -> String {
    format!("keys/{id}.removed")
}

fn key_path(id: &KeyId) -> String {
    format!("keys/{id}")
}

fn info_path(id: &KeyId) -> String {
    format!("keys/{id}.info")
}

/// Ids of every key file in `keys/`, sorted.
pub fn key_ids(store: &dyn Backend) -> Result<Vec<KeyId>> {
    let mut out = Vec::new();
    store.list("keys", &mut |l| {
        if let Some(id) = l.key.strip_prefix("keys/").and_then(KeyId::from_file_name) {
            out.push(id);
        }
    })?;
    out.sort();
    Ok(out)
}

/// Parse a recipient given on the command line: the key itself, or a file
/// holding it (e.g. `~/.ssh/id_ed25519.pub`). Returns it and its kind.
pub fn parse_recipient(s: &str) -> Result<(Box<dyn age::Recipient + Send>, String, String)> {
    let text = if Path::new(s).is_file() {
        let t = fs::read_to_string(s).at(Path::new(s))?;
        t.lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("")
            .to_string()
    } else {
        s.trim().to_string()
    };
    if text.starts_with("age1") {
        let r = age::x25519::Recipient::from_str(&text)
            .map_err(|e| Error::Invalid(format!("invalid age recipient: {e}")))?;
        return Ok((Box::new(r), "age".into(), text));
    }
    let kind = text.split_whitespace().next().unwrap_or("").to_string();
    match age::ssh::Recipient::from_str(&text) {
        Ok(r) if kind == "ssh-ed25519" || kind == "ssh-rsa" => Ok((Box::new(r), kind, text)),
        _ => Err(Error::Invalid(format!(
            "unsupported recipient {:?}: give an age1… key or an ssh-ed25519/ssh-rsa public key",
            text.chars().take(24).collect::<String>()
        ))),
    }
}

/// Write a new key for `crypto` and its info file; returns the key id.
/// The info file is written first: a key file's presence makes the key
/// usable, and a key without info is still listed (INV-1 for each file).
pub fn add(
    store: &dyn Backend,
    crypto: &Crypto,
    repo_id: &RepoId,
    new: &NewKey,
    label: &str,
) -> Result<KeyId> {
    let id = KeyId::from_random(crate::sys::random_bytes::<16>()?);
    let (kind, recipient_text, recipient): (String, String, Box<dyn age::Recipient + Send>) =
        match new {
            NewKey::Passphrase { passphrase, log_n } => {
                let mut r = age::scrypt::Recipient::new(passphrase.clone());
                r.set_work_factor(new_scrypt_log_n(*log_n)?);
                ("passphrase".into(), String::new(), Box::new(r))
            }
            NewKey::Recipient(s) => {
                let (r, kind, text) = parse_recipient(s)?;
                (kind, text, r)
            }
        };
    let info = new_info(&id, label, kind, recipient_text, None);
    write_key_file(store, &info_path(&id), &info.seal(crypto)?)?;
    let body = KeyBody {
        repo_id: *repo_id,
        identity: crypto.identity_string()?.to_string(),
        id_key: *crypto.id_key()?,
        chunker_seed: crypto.chunker_seed(),
    };
    let plain = Zeroizing::new(object::seal(ObjectKind::Key, &body, None)?.0);
    let bytes = agefile::encrypt(&[recipient.as_ref() as &dyn age::Recipient], &plain)?;
    write_key_file(store, &key_path(&id), &bytes)?;
    Ok(id)
}

fn new_info(
    id: &KeyId,
    label: &str,
    kind: String,
    recipient: String,
    verifying_key: Option<[u8; 32]>,
) -> KeyInfo {
    KeyInfo {
        id: id.to_string(),
        label: label.to_string(),
        kind,
        recipient,
        created_unix_ns: crate::sys::now_ns(),
        host: crate::sys::hostname(),
        username: std::env::var("USER").unwrap_or_default(),
        verifying_key,
    }
}

/// `key add --write-only`: a key for full key `crypto` that holds what a
/// backup needs and nothing that reads (format-spec/write-only.md), with
/// a copy of `config` (whose file holds `config_bytes` now), encrypted to
/// `new`. The info (version 2, with the key's verifying key, MACed by
/// the full key: what lets every full host trust its signatures) is
/// written first, as for every key. The caller has made the repository
/// format 3.
pub fn add_write_only(
    store: &dyn Backend,
    crypto: &Crypto,
    (config, config_bytes): (&Config, &[u8]),
    new: &NewKey,
    label: &str,
) -> Result<KeyId> {
    let id = KeyId::from_random(crate::sys::random_bytes::<16>()?);
    let recipient: Box<dyn age::Recipient + Send> = match new {
        NewKey::Passphrase { passphrase, log_n } => {
            let mut r = age::scrypt::Recipient::new(passphrase.clone());
            r.set_work_factor(new_scrypt_log_n(*log_n)?);
            Box::new(r)
        }
        NewKey::Recipient(s) => parse_recipient(s)?.0,
    };
    let (parts, verifying) = crypto.write_only_parts()?;
    let info = new_info(
        &id,
        label,
        WRITE_ONLY.into(),
        String::new(),
        Some(verifying),
    );
    write_key_file(store, &info_path(&id), &info.seal(crypto)?)?;
    let body = WriteOnlyBody {
        repo_id: config.repo_id,
        recipient: parts.recipient.clone(),
        data_key: parts.data_key,
        tree_key: parts.tree_key,
        chunker_seed: parts.seed,
        coord_identity: parts.coord_identity.clone(),
        repo_verifying: parts.repo_verifying,
        signing_seed: parts.signing_seed,
        config: config.clone(),
        config_digest: *blake3::hash(config_bytes).as_bytes(),
    };
    let plain = Zeroizing::new(object::seal_as(ObjectKind::Key, 2, &body, None)?.0);
    let bytes = agefile::encrypt(&[recipient.as_ref() as &dyn age::Recipient], &plain)?;
    write_key_file(store, &key_path(&id), &bytes)?;
    Ok(id)
}

/// Publish a new key or info file, create-only (INV-5): its name holds 16
/// random bytes, so a file already there is not ours and is never replaced.
fn write_key_file(store: &dyn Backend, key: &str, bytes: &[u8]) -> Result<()> {
    match store.put_new(key, bytes) {
        Ok(()) => Ok(()),
        Err(e) if e.is_already_exists() => Err(Error::Invalid(format!(
            "{key}: already exists; not replaced"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Read and check `keys/<id>.info`: decrypted, MAC checked, and naming
/// this key. `Err` names the file.
pub fn info(store: &dyn Backend, crypto: &Crypto, id: &KeyId) -> Result<KeyInfo> {
    let object = info_path(id);
    let bytes = store.get(&object)?;
    let plain = crypto.decrypt(&bytes, &object, MAX_KEY_FILE)?;
    let info = open_info(&plain, &object, Some(crypto))?;
    if info.id != id.as_str() {
        return Err(Error::corrupt(object, "info belongs to another key"));
    }
    Ok(info)
}

/// Decode the plaintext of an info file (version 1, or 2 for a write-only
/// key), its MAC checked under `crypto`.
pub fn open_info(plain: &[u8], object: &str, crypto: Option<&Crypto>) -> Result<KeyInfo> {
    let (version, body, _) = object::open_versioned(ObjectKind::KeyInfo, plain, object, crypto)?;
    let info = match version {
        1 => KeyInfo::from_v1(object::decode_body(body, object)?, None),
        _ => {
            let v: InfoV2 = object::decode_body(body, object)?;
            KeyInfo::from_v1(v.v1, Some(v.verifying_key))
        }
    };
    if info.is_write_only() != info.verifying_key.is_some() {
        return Err(Error::corrupt(object, "kind and version disagree"));
    }
    Ok(info)
}

/// Every key's info, in id order; a missing or unreadable info file gives
/// an entry whose kind says so.
pub fn list(store: &dyn Backend, crypto: &Crypto) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for id in key_ids(store)? {
        match info(store, crypto, &id) {
            Ok(info) => out.push(info),
            Err(e) => out.push(unknown(&id, &e.to_string())),
        }
    }
    Ok(out)
}

fn unknown(id: &KeyId, why: &str) -> KeyInfo {
    KeyInfo {
        id: id.to_string(),
        label: format!("(info unreadable: {why})"),
        kind: "?".into(),
        recipient: String::new(),
        created_unix_ns: 0,
        host: String::new(),
        username: String::new(),
        verifying_key: None,
    }
}

/// Resolve a key id or unique prefix.
pub fn resolve(store: &dyn Backend, prefix: &str) -> Result<KeyId> {
    let mut ids: Vec<KeyId> = key_ids(store)?
        .into_iter()
        .filter(|i| i.as_str().starts_with(prefix))
        .collect();
    match (ids.len(), ids.pop()) {
        (1, Some(id)) => Ok(id),
        (0, _) => Err(Error::NotFound(format!(
            "no key {prefix:?} (see `strata key list`)"
        ))),
        (n, _) => Err(Error::Invalid(format!(
            "key prefix {prefix:?} matches {n} keys"
        ))),
    }
}

/// Delete a key; refuses to delete the last full one. A write-only key
/// (`crypto` reads its info) is first recorded in `keys/<id>.removed`
/// with `manifests`, the ids of the manifests it signed that stay valid
/// (write-only.md "Manifests of write-only keys"); any other manifest
/// signed by it is refused from then on.
pub fn remove(
    store: &dyn Backend,
    crypto: &Crypto,
    id: &KeyId,
    manifests: &mut dyn FnMut(&KeyId) -> Result<Vec<[u8; 32]>>,
) -> Result<()> {
    let ids = key_ids(store)?;
    if !ids.contains(id) {
        return Err(Error::NotFound(format!("no key {id}")));
    }
    let info = info(store, crypto, id).ok();
    let write_only = info.as_ref().is_some_and(KeyInfo::is_write_only);
    // another key that can read: its info reads (MACed, so not planted)
    // and says it is not write-only
    let full_left = ids
        .iter()
        .filter(|k| *k != id)
        .any(|k| self::info(store, crypto, k).is_ok_and(|i| !i.is_write_only()));
    if !write_only && !full_left {
        return Err(Error::Invalid(format!(
            "key {id} is the last key that can read the repository (every other key is \
             write-only or has no readable info): removing it would lock the repository forever"
        )));
    }
    if let Some(KeyInfo {
        verifying_key: Some(v),
        ..
    }) = &info
    {
        let record = Removed {
            id: id.to_string(),
            verifying_key: *v,
            manifests: manifests(id)?,
            removed_unix_ns: crate::sys::now_ns(),
        };
        let (bytes, _) = files::seal(ObjectKind::KeyRemoved, &record, Some(crypto))?;
        match store.put_new(&removed_path(id), &bytes) {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    store.delete(&key_path(id))?;
    let _ = store.delete(&info_path(id));
    Ok(())
}

/// Unlock the repository whose `config` file holds `bytes` with `cred`:
/// the first key file of `store` that opens with it and whose secret
/// authenticates the config (keys.md "Unlocking"; the key that last
/// unlocked here is tried first). Returns the secret, the key's id and the
/// config. The one unlock path, of `Repo::open` and of `sync` (which reads
/// a source without opening it); `names` prefixes the file names in errors
/// (`""`, or the source's name and `: `).
pub fn unlock_config(
    store: &dyn Backend,
    bytes: &[u8],
    cred: &Credential,
    names: &str,
) -> Result<(Arc<Crypto>, KeyId, Config)> {
    let prefer = super::known::last_key(store.name());
    let object = format!("{names}config");
    unlock(store, cred, prefer.as_deref(), &mut |cand| {
        let crypto = Arc::new(cand.crypto);
        let key = format!("{names}keys/{}", cand.id);
        let config = match cand.config_copy {
            None => files::config_of_key(bytes, &object, &crypto, &cand.repo_id, key)?,
            // write-only.md: the host cannot decrypt the config; its key
            // holds a copy, good while the file is the one it was taken from
            Some((config, digest)) => {
                if blake3::hash(bytes) != blake3::Hash::from(digest) {
                    return Err(Error::Refused(format!(
                        "{object} changed since write-only key {} was made (a format upgrade, \
                         or a replaced file): make a new write-only key with a full key",
                        cand.id
                    )));
                }
                if config.repo_id != cand.repo_id {
                    return Err(Error::corrupt(key, "the key belongs to another repository"));
                }
                config
            }
        };
        Ok((crypto, cand.id, config))
    })
}

/// A secret read from a key file that decrypted with the credential.
pub struct Candidate {
    /// The key id.
    pub id: KeyId,
    /// The repository id the key file names.
    pub repo_id: RepoId,
    /// The secret.
    pub crypto: Crypto,
    /// A write-only key's copy of the config and the digest of the config
    /// file it was taken from.
    pub config_copy: Option<(Config, [u8; 32])>,
}

/// A key file that fits the credential, read, waiting to be tried.
struct Fitting {
    id: KeyId,
    bytes: bytes::Bytes,
    /// The scrypt work factor (0 for a recipient key).
    log_n: u8,
}

/// What one unlock has tried and met so far.
#[derive(Default)]
struct Attempts {
    tried: Vec<String>,
    scrypt_runs: usize,
    /// The first failure other than a wrong key.
    damaged: Option<Error>,
}

/// Try `cred` on the key files whose kind fits (passphrase keys for a
/// passphrase, recipient keys for identities), and return the first
/// decrypted candidate that `accept` takes (the caller checks that its
/// secret authenticates the config). The order (keys.md "Unlocking"):
/// `prefer` (the key that last unlocked on this machine) first, then
/// passphrase keys by ascending work factor, then id. A passphrase key
/// above [`max_scrypt_log_n`] is refused without running scrypt, and at
/// most [`MAX_SCRYPT_TRIES`] scrypt runs are made: planted key files
/// cannot stall unlocking. `Err` names a damaged key file or a rejected
/// candidate, else lists the key files tried.
pub fn unlock<T>(
    store: &dyn Backend,
    cred: &Credential,
    prefer: Option<&str>,
    accept: &mut dyn FnMut(Candidate) -> Result<T>,
) -> Result<T> {
    if let Credential::Recovery(k) = cred {
        return unlock_recovery(k, accept);
    }
    let max_log_n = max_scrypt_log_n()?;
    let mut scrypt_identity;
    let identities: Vec<&dyn age::Identity> = match cred {
        Credential::Passphrase(p) => {
            scrypt_identity = age::scrypt::Identity::new(p.clone());
            scrypt_identity.set_max_work_factor(max_log_n);
            vec![&scrypt_identity]
        }
        Credential::Identities(ids) => ids.iter().map(|b| b.as_ref()).collect(),
        Credential::Recovery(_) => Vec::new(),
    };
    let want_scrypt = matches!(cred, Credential::Passphrase(_));
    let mut ids = key_ids(store)?;
    let mut at = Attempts::default();
    // The key that worked here before: one read, one scrypt run.
    if let Some(pos) = prefer.and_then(|p| ids.iter().position(|i| i.as_str() == p)) {
        let id = ids.remove(pos);
        if let Some(f) = fitting(store, id, want_scrypt, max_log_n, &mut at) {
            if let Some(t) = try_key(&f, &identities, &mut at, accept) {
                return Ok(t);
            }
        }
    }
    if ids.len() > MAX_KEY_FILES {
        return Err(Error::Invalid(format!(
            "keys/ holds {} key files, more than the {MAX_KEY_FILES} strata reads to unlock: \
             files planted by the storage? (threat-model.md \"Unlocking\")",
            ids.len()
        )));
    }
    let mut fits: Vec<Fitting> = ids
        .into_iter()
        .filter_map(|id| fitting(store, id, want_scrypt, max_log_n, &mut at))
        .collect();
    fits.sort_by(|a, b| a.log_n.cmp(&b.log_n).then_with(|| a.id.cmp(&b.id)));
    for f in &fits {
        if want_scrypt && at.scrypt_runs >= MAX_SCRYPT_TRIES {
            return Err(Error::WrongKey(format!(
                "tried {}; stopped at {MAX_SCRYPT_TRIES} passphrase key files \
                 (threat-model.md \"Unlocking\")",
                at.tried.join(", ")
            )));
        }
        if let Some(t) = try_key(f, &identities, &mut at, accept) {
            return Ok(t);
        }
    }
    if let Some(e) = at.damaged {
        return Err(e);
    }
    let kind = if want_scrypt {
        "passphrase"
    } else {
        "identity"
    };
    Err(Error::WrongKey(if at.tried.is_empty() {
        format!("the repository has no {kind} key")
    } else {
        format!("tried {}", at.tried.join(", "))
    }))
}

/// The recovery key's secret offered to `accept` as the candidate
/// [`RECOVERY_KEY_ID`]; a secret that does not authenticate the config is
/// a wrong key.
fn unlock_recovery<T>(
    k: &super::recovery::RecoveryKey,
    accept: &mut dyn FnMut(Candidate) -> Result<T>,
) -> Result<T> {
    let cand = Candidate {
        id: KeyId::recovery(),
        repo_id: k.repo_id,
        crypto: k.crypto()?,
        config_copy: None,
    };
    accept(cand).map_err(|e| match e {
        Error::Corrupt { detail, .. } => Error::WrongKey(format!(
            "the recovery key (of repository {}…) does not open this repository: {detail}",
            k.repo_id.short()
        )),
        e => e,
    })
}

/// The key id a repository opened with a recovery key reports (not a key
/// file's name: those are 32 hex digits); [`KeyId::recovery`] as text.
pub const RECOVERY_KEY_ID: &str = "recovery-key";

/// Key file `id`, read, if its kind fits the credential and its work
/// factor is within the limit; a file that cannot be read or parsed, or
/// whose work factor is too high, is recorded in `at` and skipped.
fn fitting(
    store: &dyn Backend,
    id: KeyId,
    want_scrypt: bool,
    max_log_n: u8,
    at: &mut Attempts,
) -> Option<Fitting> {
    let object = key_path(&id);
    let bytes = match store.get(&object) {
        Ok(b) => b,
        Err(e) => {
            at.damaged.get_or_insert(e.into());
            return None;
        }
    };
    match agefile::is_scrypt(&bytes) {
        Ok(s) if s != want_scrypt => return None,
        Ok(_) => {}
        Err(e) => {
            at.damaged.get_or_insert(e.into_error(&object));
            return None;
        }
    }
    let log_n = if want_scrypt {
        agefile::scrypt_log_n(&bytes).unwrap_or(u8::MAX)
    } else {
        0
    };
    if log_n > max_log_n {
        at.damaged.get_or_insert(Error::corrupt(
            &object,
            format!(
                "scrypt work factor 2^{log_n} exceeds the limit 2^{max_log_n} \
                 (STRATA_SCRYPT_MAX_LOG_N); not tried"
            ),
        ));
        return None;
    }
    Some(Fitting { id, bytes, log_n })
}

/// Decrypt key file `f` and offer its secret to `accept`: `Some` when
/// accepted; else the failure is recorded in `at`.
fn try_key<T>(
    f: &Fitting,
    identities: &[&dyn age::Identity],
    at: &mut Attempts,
    accept: &mut dyn FnMut(Candidate) -> Result<T>,
) -> Option<T> {
    let object = key_path(&f.id);
    at.tried.push(object.clone());
    if f.log_n > 0 {
        at.scrypt_runs += 1;
    }
    let plain = match agefile::decrypt(&f.bytes, identities, &object, MAX_KEY_FILE) {
        Ok(p) => p,
        Err(agefile::DecryptFail::WrongKey) => return None,
        Err(e) => {
            at.damaged.get_or_insert(e.into_error(&object));
            return None;
        }
    };
    let opened = object::open_versioned(ObjectKind::Key, &plain, &object, None).and_then(
        |(version, body, _)| {
            if version == 1 {
                let body: KeyBody = object::decode_body(body, &object)?;
                let crypto =
                    Crypto::from_secret(&body.identity, &body.id_key, body.chunker_seed, &object)?;
                return Ok(Candidate {
                    id: f.id.clone(),
                    repo_id: body.repo_id,
                    crypto,
                    config_copy: None,
                });
            }
            let body: WriteOnlyBody = object::decode_body(body, &object)?;
            let parts = crate::crypto::WriteOnlyParts {
                recipient: body.recipient.clone(),
                data_key: body.data_key,
                tree_key: body.tree_key,
                seed: body.chunker_seed,
                coord_identity: body.coord_identity.clone(),
                repo_verifying: body.repo_verifying,
                signing_seed: body.signing_seed,
            };
            Ok(Candidate {
                id: f.id.clone(),
                repo_id: body.repo_id,
                crypto: Crypto::write_only(&parts, f.id.clone(), &object)?,
                config_copy: Some((body.config.clone(), body.config_digest)),
            })
        },
    );
    match opened.and_then(accept) {
        Ok(t) => Some(t),
        Err(e) => {
            at.damaged.get_or_insert(e);
            None
        }
    }
}

/// The scrypt work factor of passphrase key `id` (`key passwd` keeps it).
pub fn scrypt_log_n(store: &dyn Backend, id: &KeyId) -> Result<u8> {
    let object = key_path(id);
    let bytes = store.get(&object)?;
    agefile::scrypt_log_n(&bytes)
        .ok_or_else(|| Error::corrupt(object, "no scrypt stanza in the header"))
}

/// The info of key `id` if `key passwd` may replace it (keys.md "Key
/// commands"): its info file must be readable and say `passphrase`. As a
/// cross-check the key file itself must be a passphrase (scrypt) age file.
pub fn passphrase_key_info(store: &dyn Backend, crypto: &Crypto, id: &KeyId) -> Result<KeyInfo> {
    let info = info(store, crypto, id).map_err(|e| {
        Error::Invalid(format!(
            "key {id}: its info is unreadable, so its kind and label are unknown \
             (add a new key with `strata key add`, then remove this one): {e}"
        ))
    })?;
    if info.kind != "passphrase" {
        return Err(Error::Invalid(format!(
            "key {id} is not a passphrase key (keys/{id}.info says {:?})",
            info.kind
        )));
    }
    let object = key_path(id);
    let bytes = store.get(&object)?;
    if !agefile::is_scrypt(&bytes).map_err(|e| e.into_error(&object))? {
        return Err(Error::corrupt(
            object,
            format!("not a passphrase key, but keys/{id}.info says it is"),
        ));
    }
    Ok(info)
}

/// `key passwd`: replace passphrase key `old` (the one that unlocked) by a
/// new passphrase key with the same label and, unless `new_key` sets one,
/// the same scrypt work factor; `new_key` makes it from the old key's info (asking for the passphrase only once the old key is
/// known to be replaceable, [`passphrase_key_info`]). The new key is
/// durable before the old one goes: a crash in between leaves both, never
/// neither. Returns the new key's id.
pub fn change_passphrase(
    store: &dyn Backend,
    crypto: &Crypto,
    repo_id: &RepoId,
    old: &KeyId,
    new_key: &mut dyn FnMut(&KeyInfo) -> Result<NewKey>,
) -> Result<KeyId> {
    // keys.md "Key commands": the info decides (and gives the label).
    let info = passphrase_key_info(store, crypto, old)?;
    let mut new = new_key(&info)?;
    // The new key keeps the old one's work factor unless told.
    if let NewKey::Passphrase {
        log_n: l @ None, ..
    } = &mut new
    {
        *l = Some(scrypt_log_n(store, old)?);
    }
    let id = add(store, crypto, repo_id, &new, &info.label)?;
    remove(store, crypto, old, &mut |_| Ok(Vec::new()))?;
    Ok(id)
}

/// The write-only keys whose signatures a full host accepts
/// (write-only.md "Manifests of write-only keys"): each write-only key
/// with a valid info file, and each removed one with the manifests it may
/// still sign. Read with the full key `crypto`; an unreadable file is
/// skipped (its key's manifests are then refused, never trusted).
#[derive(Debug, Default)]
pub struct Signers {
    /// Live write-only keys: id → (verifying key, label).
    pub live: std::collections::HashMap<String, ([u8; 32], String)>,
    /// Removed ones: id → (verifying key, manifests still valid).
    pub removed: std::collections::HashMap<String, ([u8; 32], std::collections::HashSet<[u8; 32]>)>,
}

impl Signers {
    /// Load them from `keys/`.
    pub fn load(store: &dyn Backend, crypto: &Crypto) -> Result<Signers> {
        let mut out = Signers::default();
        let mut removed = Vec::new();
        store.list("keys", &mut |l| {
            if let Some(id) = l
                .key
                .strip_prefix("keys/")
                .and_then(|n| n.strip_suffix(".removed"))
                .and_then(KeyId::from_file_name)
            {
                removed.push(id);
            }
        })?;
        for id in key_ids(store)? {
            if let Ok(i) = info(store, crypto, &id) {
                if let Some(v) = i.verifying_key {
                    out.live.insert(id.to_string(), (v, i.label));
                }
            }
        }
        for id in removed {
            let object = removed_path(&id);
            let Ok(bytes) = store.get(&object) else {
                continue;
            };
            if let Ok((r, _)) = files::open::<Removed>(
                ObjectKind::KeyRemoved,
                &bytes,
                &object,
                Some(crypto),
                files::MAX_FILE,
            ) {
                if r.id == id.as_str() {
                    // a removed key is never live again, whatever info is there
                    out.live.remove(id.as_str());
                    out.removed
                        .insert(r.id, (r.verifying_key, r.manifests.into_iter().collect()));
                }
            }
        }
        Ok(out)
    }

    /// The verifying key that may sign manifest `manifest` as `key`, or
    /// why none may.
    pub fn verifier(
        &self,
        key: &str,
        manifest: &[u8; 32],
    ) -> std::result::Result<[u8; 32], String> {
        if let Some((v, _)) = self.live.get(key) {
            return Ok(*v);
        }
        match self.removed.get(key) {
            Some((v, ok)) if ok.contains(manifest) => Ok(*v),
            Some(_) => Err(format!("signed by removed key {key}")),
            None => Err(format!("signed by unknown key {key}")),
        }
    }

    /// The verifying key of write-only key `key`, live or removed (its
    /// dictionaries stay readable after a removal).
    pub fn any_verifier(&self, key: &str) -> Option<[u8; 32]> {
        self.live
            .get(key)
            .map(|(v, _)| *v)
            .or_else(|| self.removed.get(key).map(|(v, _)| *v))
    }

    /// A key's label, if it is a live write-only key.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.live.get(key).map(|(_, l)| l.as_str())
    }
}
