//! Opening and creating repositories (format-spec/repository.md), and the
//! one place that knows whether files are encrypted (format-spec/keys.md):
//! objects, packs and ids all go through `Repo`.

pub mod config;
pub use crate::backend::fsutil;
pub mod gcstate;
pub mod known;
pub mod lock;

use crate::blob::BlobKind;
use crate::chunker::Chunker;
use crate::crypto::Crypto;
use crate::crypto::agefile::{self, PackFile};
use crate::crypto::keys::{self, Credential, NewKey};
use crate::error::{Error, IoContext, Result};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::object::{self, ObjectKind};
use bincode::{Decode, Encode};
use config::{ChunkerParams, Config};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options of `strata init`.
#[derive(Default)]
pub struct InitOptions {
    /// The first key; `None` creates an unencrypted repository.
    pub key: Option<NewKey>,
    /// Its label.
    pub key_label: String,
    /// Chunker sizes; `None` = defaults.
    pub chunker: Option<ChunkerParams>,
    /// zstd level; `None` = default.
    pub compression_level: Option<i32>,
    /// Pack target size in bytes; `None` = default.
    pub pack_target_size: Option<u64>,
}

/// An open (and, if encrypted, unlocked) repository.
#[derive(Debug)]
pub struct Repo {
    root: PathBuf,
    config: Config,
    chunker: Chunker,
    crypto: Option<Arc<Crypto>>,
    key_id: Option<String>,
    /// The dictionaries in `dicts/`, loaded on first use.
    dicts: std::sync::Mutex<Option<Arc<crate::dict::Dicts>>>,
}

/// Where `Repo::open` gets a credential when the repository is encrypted;
/// it is called at most once, and never for an unencrypted repository.
pub type CredentialSource<'a> = &'a mut dyn FnMut() -> Result<Credential>;

/// For callers that only open unencrypted repositories.
pub fn no_credentials() -> Result<Credential> {
    Err(Error::Locked(
        "the repository is encrypted and no passphrase or identity was given".into(),
    ))
}

/// Largest config, snapshot or key file accepted (objects.md limits).
const MAX_FILE: usize = object::MAX_OBJECT + object::HEADER_LEN;

const SUBDIRS: [&str; 5] = ["packs", "snapshots", "keys", "locks", "tmp"];

impl Repo {
    /// Create a repository at `path`, which must not exist or be an empty
    /// directory (INV-6: an existing repository is never touched).
    pub fn init(path: &Path, opts: &InitOptions) -> Result<Repo> {
        if let Some(NewKey::Recipient(r)) = &opts.key {
            keys::parse_recipient(r)?;
        }
        if path.join("config").exists() {
            return Err(Error::Invalid(format!(
                "{}: a repository already exists here",
                path.display()
            )));
        }
        if path.exists() {
            if !path.is_dir() {
                return Err(Error::Invalid(format!(
                    "{}: exists and is not a directory",
                    path.display()
                )));
            }
            if fs::read_dir(path).at(path)?.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{}: directory is not empty",
                    path.display()
                )));
            }
        }
        let config = Config {
            version: config::REPO_VERSION,
            repo_id: fsutil::random_bytes()?,
            chunker: opts.chunker.clone().unwrap_or_default(),
            compression_level: opts
                .compression_level
                .unwrap_or(config::DEFAULT_COMPRESSION),
            pack_target_size: opts.pack_target_size.unwrap_or(config::DEFAULT_PACK_SIZE),
            encryption: u8::from(opts.key.is_some()),
        };
        config.check_options().map_err(Error::Invalid)?;
        let crypto = match opts.key {
            Some(_) => Some(Arc::new(Crypto::generate()?)),
            None => None,
        };
        // INV-1: every directory created is fsynced in its parent.
        for d in SUBDIRS.iter().chain(&["gc"]) {
            fsutil::create_dir_durable(&path.join(d))?;
        }
        Index::open(&path.join("index.sqlite"))?;
        let key_id = match (&opts.key, &crypto) {
            (Some(k), Some(c)) => Some(keys::add(path, c, &config.repo_id, k, &opts.key_label)?),
            _ => None,
        };
        let repo = Repo::assemble(path, config, crypto, key_id)?;
        // The config is written last: its presence makes the directory a
        // repository. Create-only: a concurrent `init` that got there first
        // keeps its repository.
        let (bytes, _) = repo.seal_file(ObjectKind::Config, &repo.config)?;
        if fsutil::write_new(&path.join("tmp"), &path.join("config"), &bytes)?
            == fsutil::Published::Existed
        {
            return Err(Error::Invalid(format!(
                "{}: a repository already exists here",
                path.display()
            )));
        }
        if let Some(c) = &repo.crypto {
            known::remember(path, &repo.config.repo_id, &c.recipient().to_string());
        }
        Ok(repo)
    }

    fn assemble(
        path: &Path,
        config: Config,
        crypto: Option<Arc<Crypto>>,
        key_id: Option<String>,
    ) -> Result<Repo> {
        let mut params = config.chunker.clone();
        if let Some(c) = &crypto {
            // keys.md "Chunker seed": the secret's seed, never the config's.
            params.seed = c.chunker_seed();
        }
        let chunker = Chunker::new(&params).map_err(|e| Error::corrupt("config", e))?;
        Ok(Repo {
            root: path.to_path_buf(),
            config,
            chunker,
            crypto,
            key_id,
            dicts: std::sync::Mutex::new(None),
        })
    }

    /// Open an unencrypted repository (an encrypted one gives
    /// [`Error::Locked`]); see [`Repo::open_with`].
    pub fn open(path: &Path) -> Result<Repo> {
        Repo::open_with(path, &mut no_credentials)
    }

    /// Open the repository at `path`, unlocking it with a credential from
    /// `creds` if it is encrypted: the first key file that opens with the
    /// credential and whose secret authenticates the config wins.
    pub fn open_with(path: &Path, creds: CredentialSource) -> Result<Repo> {
        if !path.exists() {
            return Err(Error::NoRepository(path.to_path_buf()));
        }
        if !path.is_dir() {
            return Err(Error::NotARepository {
                path: path.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        let cfg_path = path.join("config");
        let bytes = match fs::read(&cfg_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotARepository {
                    path: path.to_path_buf(),
                    reason: "no config file".into(),
                });
            }
            Err(e) => return Err(e).at(&cfg_path),
        };
        for d in SUBDIRS {
            let p = path.join(d);
            if !p.is_dir() {
                return Err(Error::NotARepository {
                    path: path.to_path_buf(),
                    reason: format!("{d}/ is missing"),
                });
            }
        }
        if !agefile::is_age(&bytes) {
            let config = Config::from_bytes(&bytes, "config", None)?;
            return Repo::assemble(path, config, None, None);
        }
        let cred = creds()?;
        let repo = keys::unlock(path, &cred, &mut |cand| {
            let crypto = Arc::new(cand.crypto);
            let config = crypto
                .decrypt(&bytes, "config", MAX_FILE)
                .and_then(|plain| Config::from_bytes(&plain, "config", Some(&crypto)))?;
            if config.repo_id != cand.repo_id {
                return Err(Error::corrupt(
                    format!("keys/{}", cand.id),
                    "the key belongs to another repository",
                ));
            }
            Repo::assemble(path, config, Some(crypto), Some(cand.id))
        })?;
        if let Some(c) = &repo.crypto {
            known::check(path, &repo.config.repo_id, &c.recipient().to_string())?;
        }
        Ok(repo)
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The decoded config.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The chunker configured by the config.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }
    /// Directory for temp files (INV-1).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
    /// Delete files in `tmp/` older than a day: leftovers of killed runs,
    /// never referenced (format-spec/repository.md "Temp files"). Younger
    /// ones may belong to a running process and are kept.
    pub fn clean_tmp(&self) -> Result<usize> {
        self.clean_tmp_older(std::time::Duration::from_secs(24 * 3600))
    }

    /// Delete files in `tmp/` not modified for `age` (gc, under the
    /// exclusive lock, uses the smaller of an hour and its grace period:
    /// a process that wrongly runs beside it loses a temp file, which fails
    /// that process, never data).
    pub fn clean_tmp_older(&self, age: std::time::Duration) -> Result<usize> {
        let dir = self.tmp_dir();
        let cutoff = std::time::SystemTime::now() - age;
        let mut n = 0;
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t <= cutoff);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Delete pack files (GC-4: only after they left the index), then fsync
    /// their directories. A pack already gone is fine.
    pub fn remove_packs(&self, packs: &[PackId]) -> Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        for id in packs {
            let p = self.pack_path(id);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&p),
            }
            if let Some(d) = p.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
        for d in dirs {
            fsutil::sync_dir(&d)?;
        }
        Ok(())
    }

    /// Path of a pack file.
    pub fn pack_path(&self, id: &PackId) -> PathBuf {
        self.root.join(id.rel_path())
    }
    /// Open a connection to the index.
    pub fn index(&self) -> Result<Index> {
        Index::open(&self.root.join("index.sqlite"))
    }
    /// The id of a blob's plaintext: plain BLAKE3, or keyed BLAKE3 with a
    /// key per blob kind in an encrypted repository (keys.md "Ids").
    pub fn blob_id(&self, kind: BlobKind, data: &[u8]) -> BlobId {
        match &self.crypto {
            Some(c) => c.blob_id(kind, data),
            None => BlobId::of(data),
        }
    }

    /// The unlocked secret of an encrypted repository.
    pub fn crypto(&self) -> Option<&Arc<Crypto>> {
        self.crypto.as_ref()
    }

    /// The key that unlocked the repository.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Encode `value` as a repository file of `kind`: the envelope, then
    /// age encryption in an encrypted repository. Returns the bytes and id.
    pub fn seal_file<T: Encode>(&self, kind: ObjectKind, value: &T) -> Result<(Vec<u8>, [u8; 32])> {
        let crypto = self.crypto.as_deref();
        let (plain, id) = object::seal(kind, value, crypto)?;
        match crypto {
            Some(c) => Ok((c.encrypt(&plain)?, id)),
            None => Ok((plain, id)),
        }
    }

    /// Decode a repository file of `kind` written by [`Repo::seal_file`];
    /// `object` names it in errors.
    pub fn open_file<T: Decode<()>>(
        &self,
        kind: ObjectKind,
        bytes: &[u8],
        object: &str,
    ) -> Result<(T, [u8; 32])> {
        self.with_plaintext(bytes, object, |plain, crypto| {
            object::open(kind, plain, object, crypto)
        })
    }

    /// [`Repo::open_file`] for a kind with several envelope versions: `f`
    /// gets the checked version and body and decodes it.
    pub fn open_file_versioned<T>(
        &self,
        kind: ObjectKind,
        bytes: &[u8],
        object: &str,
        f: impl FnOnce(u8, &[u8]) -> Result<T>,
    ) -> Result<(T, [u8; 32])> {
        self.with_plaintext(bytes, object, |plain, crypto| {
            let (version, body, id) = object::open_versioned(kind, plain, object, crypto)?;
            Ok((f(version, body)?, id))
        })
    }

    /// Run `f` on the plaintext of a repository file (decrypted in an
    /// encrypted repository) with the crypto that checks its MAC.
    fn with_plaintext<T>(
        &self,
        bytes: &[u8],
        object: &str,
        f: impl FnOnce(&[u8], Option<&Crypto>) -> Result<T>,
    ) -> Result<T> {
        match self.crypto.as_deref() {
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

    /// Encrypt free-form bytes (lock files) in an encrypted repository.
    pub fn seal_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        match &self.crypto {
            Some(c) => c.encrypt(bytes),
            None => Ok(bytes.to_vec()),
        }
    }

    /// Make sure the repository is format 2 before anything of format 2 is
    /// written (a gc state file, a format-2 tree): a format-1 config is
    /// replaced by one saying 2 (temp, fsync, rename: INV-1), so that
    /// strata 0.1, which would misread format-2 trees and ignore gc state,
    /// refuses the repository. The config is the only file ever replaced,
    /// and only this way.
    pub fn require_format_2(&self) -> Result<()> {
        if self.config.version >= config::REPO_VERSION {
            return Ok(());
        }
        let cfg_path = self.root.join("config");
        let current = fs::read(&cfg_path).at(&cfg_path)?;
        let (on_disk, _): (Config, _) = self.open_file(ObjectKind::Config, &current, "config")?;
        if on_disk.version >= config::REPO_VERSION {
            return Ok(()); // upgraded meanwhile
        }
        let upgraded = Config {
            version: config::REPO_VERSION,
            ..on_disk
        };
        let (bytes, _) = self.seal_file(ObjectKind::Config, &upgraded)?;
        fsutil::write_atomic(&self.tmp_dir(), &cfg_path, &bytes)?;
        eprintln!(
            "strata: upgraded the repository to format {} (strata 0.1 can no longer open it)",
            config::REPO_VERSION
        );
        Ok(())
    }

    /// The repository's dictionaries (loaded once; `reload` reads
    /// `dicts/` again, e.g. after training one).
    pub fn dicts(&self, reload: bool) -> Result<Arc<crate::dict::Dicts>> {
        let mut g = self
            .dicts
            .lock()
            .map_err(|_| Error::Invalid("dictionary lock poisoned".into()))?;
        if let (Some(d), false) = (g.as_ref(), reload) {
            return Ok(d.clone());
        }
        let d = Arc::new(crate::dict::load(self)?);
        *g = Some(d.clone());
        Ok(d)
    }

    /// How blobs of `kind` are checked and decoded (pack/reader.rs): the
    /// id function, and the dictionaries by zstd id (read again once if a
    /// dictionary is not known yet: another process may have trained it).
    pub fn decode_with<R>(
        &self,
        kind: BlobKind,
        f: impl FnOnce(&crate::pack::reader::Decode) -> R,
    ) -> R {
        let verify = |d: &[u8]| self.blob_id(kind, d);
        let dicts = |id: u32| -> Result<Vec<Arc<crate::dict::Dict>>> {
            let d = self.dicts(false)?;
            let found = d.with_id(id).to_vec();
            if !found.is_empty() {
                return Ok(found);
            }
            let d = self.dicts(true)?;
            let found = d.with_id(id).to_vec();
            match (found.is_empty(), d.unreadable.first()) {
                // one of the files that do not decode may be the one
                (true, Some(bad)) => Err(Error::Invalid(format!("not readable ({bad})"))),
                _ => Ok(found),
            }
        };
        f(&crate::pack::reader::Decode {
            verify: &verify,
            dicts: &dicts,
        })
    }

    /// The plaintext of free-form bytes written by [`Repo::seal_bytes`], at
    /// most `limit` bytes; `object` names the file in errors.
    pub fn open_bytes(&self, bytes: &[u8], object: &str, limit: usize) -> Result<Vec<u8>> {
        match &self.crypto {
            Some(c) => Ok(c.decrypt(bytes, object, limit)?.to_vec()),
            None if agefile::is_age(bytes) => Err(Error::corrupt(
                object,
                "an age-encrypted file in an unencrypted repository",
            )),
            None if bytes.len() > limit => {
                Err(Error::corrupt(object, format!("larger than {limit} bytes")))
            }
            None => Ok(bytes.to_vec()),
        }
    }

    /// Open a pack for reading by plaintext offset.
    pub fn open_pack(&self, id: &PackId) -> Result<PackFile> {
        PackFile::open(
            &self.pack_path(id),
            format!("pack {id}"),
            self.crypto.as_ref(),
        )
    }
}

/// Now, as Unix nanoseconds (0 before 1970, which no clock here reports).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// This machine's host name.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
