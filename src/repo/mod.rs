//! Opening and creating repositories (format-spec/repository.md), and the
//! one place that knows whether files are encrypted (format-spec/keys.md):
//! objects, packs and ids all go through `Repo`. Every repository file is
//! read and written through the repository's [`Backend`]
//! (format-spec/backend.md); what stays local is the work directory: the
//! repository directory itself for a local repository, else the user's
//! cache directory for it (index, temp files).

pub mod config;
pub mod coord;
pub mod dicts;
pub mod files;
pub mod gcstate;
pub mod keys;
pub mod known;
pub mod lock;
pub mod rebuild;
pub mod reconcile;
pub mod recovery;
pub mod seen;
pub mod trust;

use crate::backend::{Backend, LocalBackend};
use crate::blob::BlobKind;
use crate::chunker::Chunker;
use crate::crypto::Crypto;
use crate::crypto::agefile::{self, PackFile};
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::id::{BlobId, KeyId, PackId, RepoId};
use crate::index::Index;
use crate::object::{self, ObjectKind};
use bincode::{Decode, Encode};
use config::{ChunkerParams, Config};
use keys::{Credential, NewKey};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
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
    /// The work directory: the repository directory (local), or this
    /// repository's directory in the user's cache (object storage).
    root: PathBuf,
    /// The directory holding `index.sqlite` (index.md "Where the index
    /// lives"): this repository's directory in the user's cache, or with
    /// no cache a local repository's own directory.
    index_dir: PathBuf,
    /// Where the repository's files are.
    store: Arc<dyn Backend>,
    /// A local directory (`store` is a [`LocalBackend`] of `root`): where
    /// an index of earlier versions may be left (`Repo::index`).
    local: bool,
    config: Config,
    chunker: Chunker,
    crypto: Option<Arc<Crypto>>,
    key_id: Option<KeyId>,
    /// The dictionaries in `dicts/`, loaded on first use.
    dicts: std::sync::Mutex<Option<Arc<crate::dict::Dicts>>>,
    /// The write-only keys whose signed manifests are accepted, loaded on
    /// first use ([`Repo::signers`]).
    signers: std::sync::OnceLock<Arc<keys::Signers>>,
    /// The packs of `trust/` records, loaded on first use (trust.rs).
    trusted: std::sync::OnceLock<Arc<std::collections::HashSet<PackId>>>,
    /// Where what the repository does on its own is reported.
    events: Arc<dyn Events>,
}

/// What [`Repo::open_with_options`] refuses (threat-model.md "Downgrade").
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Refuse a repository that is not encrypted; the text says why
    /// encryption is expected (the credential given, or the policy's
    /// `require_encryption`), for the error.
    pub require_encryption: Option<String>,
}

/// Refuse an unencrypted repository at `name` when `opts` requires
/// encryption, or when this user recorded an encrypted one there.
pub fn refuse_unencrypted(name: &str, opts: &OpenOptions) -> Result<()> {
    if let Some(why) = &opts.require_encryption {
        return Err(Error::Refused(format!(
            "{name}: refusing to open: the repository is not encrypted, but {why}; a storage \
             that swaps in a plaintext config could otherwise switch encryption off \
             (threat-model.md \"Downgrade\"). For an unencrypted repository give no passphrase \
             or identity (or set require_encryption = false in strata.toml)"
        )));
    }
    known::check_unencrypted(name)
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

impl Repo {
    /// Create a repository at `path`, which must not exist or be an empty
    /// directory (INV-6: an existing repository is never touched).
    pub fn init(path: &Path, opts: &InitOptions) -> Result<Repo> {
        Repo::init_reporting(path, opts, crate::events::silent())
    }

    /// [`Repo::init`], reporting to `events` (which the repository keeps;
    /// see [`Repo::events`]).
    pub fn init_reporting(
        path: &Path,
        opts: &InitOptions,
        events: Arc<dyn Events>,
    ) -> Result<Repo> {
        if crate::backend::point_in_time().is_some() {
            return Err(Error::Invalid(
                "--point-in-time opens a read-only view of the past: nothing is created in it"
                    .into(),
            ));
        }
        if let Some(NewKey::Recipient(r)) = &opts.key {
            keys::parse_recipient(r)?;
        }
        if let Some(url) = url_of(path) {
            let store: Arc<dyn Backend> = Arc::from(crate::backend::open(url)?);
            return Repo::init_work(store, url, None, opts, events);
        }
        let local = LocalBackend::new(path);
        local.check_new()?;
        let config = new_config(opts)?;
        // INV-1: every directory created is fsynced in its parent.
        local.create_layout()?;
        let store: Arc<dyn Backend> = Arc::new(local);
        let index_dir = index_dir(
            Some(path),
            &path.to_string_lossy(),
            &config.repo_id,
            &*events,
        )?;
        Index::create(&index_dir.join(INDEX_FILE))?;
        let work = (path.to_path_buf(), index_dir);
        Repo::finish_init(store, work, true, config, opts, events)
    }

    /// Create a repository in `store`, which must hold no config, with
    /// `work` as its work directory (index, temp files; created if
    /// missing) instead of one in the user's cache: the library entry
    /// point for a repository on a backend the caller built (tests and
    /// fuzzing on `memory://` wrapped in a [`crate::backend::FaultBackend`]).
    pub fn init_on(store: Arc<dyn Backend>, work: &Path, opts: &InitOptions) -> Result<Repo> {
        if crate::backend::point_in_time().is_some() {
            return Err(Error::Invalid(
                "--point-in-time opens a read-only view of the past: nothing is created in it"
                    .into(),
            ));
        }
        if let Some(NewKey::Recipient(r)) = &opts.key {
            keys::parse_recipient(r)?;
        }
        let name = store.name().to_string();
        Repo::init_work(store, &name, Some(work), opts, crate::events::silent())
    }

    fn init_work(
        store: Arc<dyn Backend>,
        url: &str,
        work: Option<&Path>,
        opts: &InitOptions,
        events: Arc<dyn Events>,
    ) -> Result<Repo> {
        if store.exists("config")? {
            return Err(Error::Invalid(format!(
                "{url}: a repository already exists here"
            )));
        }
        let config = new_config(opts)?;
        let (work, index_dir) = match work {
            Some(w) => (given_work_dir(w)?, given_work_dir(w)?),
            None => (
                work_dir(url, &config.repo_id)?,
                index_dir(None, url, &config.repo_id, &*events)?,
            ),
        };
        Index::create(&index_dir.join(INDEX_FILE))?;
        Repo::finish_init(store, (work, index_dir), false, config, opts, events).map_err(
            |e| match e {
                // The first write of a new repository: a missing bucket or
                // container, which init does not create.
                Error::Backend(b) if b.is_not_found() => Error::Invalid(format!(
                    "{url}: cannot write there ({b}): does the bucket (or container) exist? \
                 `strata init` does not create it"
                )),
                e => e,
            },
        )
    }

    /// Keys, then the config (last: its presence makes a repository).
    fn finish_init(
        store: Arc<dyn Backend>,
        (work, index_dir): (PathBuf, PathBuf),
        local: bool,
        config: Config,
        opts: &InitOptions,
        events: Arc<dyn Events>,
    ) -> Result<Repo> {
        let crypto = match opts.key {
            Some(_) => Some(Arc::new(Crypto::generate()?)),
            None => None,
        };
        let key_id = match (&opts.key, &crypto) {
            (Some(k), Some(c)) => Some(keys::add(&*store, c, &config.repo_id, k, &opts.key_label)?),
            _ => None,
        };
        let mut repo = Repo::assemble(work, index_dir, store, local, config, crypto, key_id)?;
        repo.events = events;
        // The config is written last: its presence makes the directory a
        // repository. Create-only: a concurrent `init` that got there first
        // keeps its repository.
        let (bytes, _) = repo.seal_file(ObjectKind::Config, &repo.config)?;
        if !repo.write_new("config", &bytes)? {
            return Err(Error::Invalid(format!(
                "{}: a repository already exists here",
                repo.store.name()
            )));
        }
        if let Some(c) = &repo.crypto {
            known::remember(
                repo.store.name(),
                &repo.config.repo_id,
                &c.recipient().to_string(),
                repo.key_id.as_ref().map_or("", KeyId::as_str),
            );
        }
        Ok(repo)
    }

    fn assemble(
        path: PathBuf,
        index_dir: PathBuf,
        store: Arc<dyn Backend>,
        local: bool,
        config: Config,
        crypto: Option<Arc<Crypto>>,
        key_id: Option<KeyId>,
    ) -> Result<Repo> {
        let mut params = config.chunker.clone();
        if let Some(c) = &crypto {
            // keys.md "Chunker seed": the secret's seed, never the config's.
            params.seed = c.chunker_seed();
        }
        let chunker = Chunker::new(&params).map_err(|e| Error::corrupt("config", e))?;
        Ok(Repo {
            root: path,
            index_dir,
            store,
            local,
            config,
            chunker,
            crypto,
            key_id,
            dicts: std::sync::Mutex::new(None),
            signers: std::sync::OnceLock::new(),
            trusted: std::sync::OnceLock::new(),
            events: crate::events::silent(),
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
        Repo::open_with_options(path, creds, &OpenOptions::default())
    }

    /// [`Repo::open_with`], refusing what `opts` rules out.
    pub fn open_with_options(
        path: &Path,
        creds: CredentialSource,
        opts: &OpenOptions,
    ) -> Result<Repo> {
        Repo::open_reporting(path, creds, opts, crate::events::silent())
    }

    /// [`Repo::open_with_options`], reporting to `events` (which the
    /// repository keeps; see [`Repo::events`]).
    pub fn open_reporting(
        path: &Path,
        creds: CredentialSource,
        opts: &OpenOptions,
        events: Arc<dyn Events>,
    ) -> Result<Repo> {
        if crate::backend::point_in_time().is_some() && url_of(path).is_none() {
            // a local directory has no versions: never show its present as the past
            return Err(Error::Invalid(format!(
                "{}: --point-in-time reads object versions: it needs an s3:// repository on a \
                 versioned bucket",
                path.display()
            )));
        }
        if let Some(url) = url_of(path) {
            let store: Arc<dyn Backend> = Arc::from(crate::backend::open(url)?);
            let bytes = match store.get("config") {
                Ok(b) => b,
                Err(e) if e.is_not_found() => {
                    return Err(Error::NotARepository {
                        path: path.to_path_buf(),
                        reason: "no config file".into(),
                    });
                }
                Err(e) => return Err(e.into()),
            };
            return Repo::open_in(store, (None, None), &bytes, creds, (opts, events));
        }
        if !path.exists() {
            return Err(Error::NoRepository(path.to_path_buf()));
        }
        if !path.is_dir() {
            return Err(Error::NotARepository {
                path: path.to_path_buf(),
                reason: "not a directory".into(),
            });
        }
        let store: Arc<dyn Backend> = Arc::new(LocalBackend::new(path));
        let bytes = match store.get("config") {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::NotARepository {
                    path: path.to_path_buf(),
                    reason: "no config file".into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Repo::open_in(store, (Some(path), None), &bytes, creds, (opts, events))
    }

    /// Open the repository in `store` with `work` as its work directory
    /// (index, temp files; created if missing) instead of one in the
    /// user's cache; see [`Repo::init_on`] and [`Repo::open_with`].
    pub fn open_on(store: Arc<dyn Backend>, work: &Path, creds: CredentialSource) -> Result<Repo> {
        let bytes = match store.get("config") {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::NotARepository {
                    path: PathBuf::from(store.name()),
                    reason: "no config file".into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        Repo::open_in(
            store,
            (None, Some(work)),
            &bytes,
            creds,
            (&OpenOptions::default(), crate::events::silent()),
        )
    }

    /// Open the repository in `store` whose config file holds `bytes`;
    /// `local` is its directory if it is one, `given` a work directory
    /// chosen by the caller ([`Repo::open_on`]).
    fn open_in(
        store: Arc<dyn Backend>,
        (local, given): (Option<&Path>, Option<&Path>),
        bytes: &[u8],
        creds: CredentialSource,
        (opts, events): (&OpenOptions, Arc<dyn Events>),
    ) -> Result<Repo> {
        let name = store.name().to_string();
        // The work directory of a repository on object storage needs its id,
        // which an encrypted config only gives after unlocking.
        // The index of a caller-chosen work directory is in it.
        let work = |id: &RepoId| -> Result<(PathBuf, PathBuf)> {
            Ok(match (local, given) {
                (Some(p), _) => (p.to_path_buf(), index_dir(local, &name, id, &*events)?),
                (None, Some(w)) => (given_work_dir(w)?, given_work_dir(w)?),
                (None, None) => (work_dir(&name, id)?, index_dir(None, &name, id, &*events)?),
            })
        };
        if !files::is_encrypted(bytes) {
            // Downgrade (threat-model.md): whether a repository is encrypted
            // is read from the storage, which may lie; a plaintext config is
            // refused where encryption is expected, before anything is read
            // or written under it.
            refuse_unencrypted(&name, opts)?;
            let config = Config::from_bytes(bytes, "config", None)?;
            let (w, i) = work(&config.repo_id)?;
            let repo = Repo::assemble(w, i, store, local.is_some(), config, None, None)?;
            return Ok(repo.with_events(events));
        }
        let cred = creds()?;
        let (crypto, key_id, config) = keys::unlock_config(&*store, bytes, &cred, "")?;
        let (w, i) = work(&config.repo_id)?;
        let repo = Repo::assemble(
            w,
            i,
            store,
            local.is_some(),
            config,
            Some(crypto),
            Some(key_id),
        )?;
        if let Some(c) = &repo.crypto {
            known::check(
                &name,
                &repo.config.repo_id,
                &c.recipient().to_string(),
                repo.key_id.as_ref().map_or("", KeyId::as_str),
            )?;
        }
        Ok(repo.with_events(events))
    }

    /// Report to `events` from now on.
    pub fn with_events(mut self, events: Arc<dyn Events>) -> Repo {
        self.events = events;
        self
    }

    /// Where what the repository does on its own (an index rebuilt, a
    /// stale lock removed) and what the commands on it find is reported.
    pub fn events(&self) -> &Arc<dyn Events> {
        &self.events
    }

    /// The work directory: the repository directory of a local
    /// repository, else this repository's directory in the user's cache.
    /// Holds the index and temp files; repository files are reached
    /// through [`Repo::store`] only.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The backend holding the repository's files.
    pub fn store(&self) -> &Arc<dyn Backend> {
        &self.store
    }
    /// The repository as the user named it (directory or URL).
    pub fn name(&self) -> &str {
        self.store.name()
    }

    /// Read a whole repository file.
    pub fn read(&self, key: &str) -> Result<bytes::Bytes> {
        Ok(self.store.get(key)?)
    }

    /// Read a repository file, `None` if it does not exist.
    pub fn read_opt(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        match self.store.get(key) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Publish a repository file, create-only (INV-1, INV-5); false if a
    /// file of that name already exists (it is left as it is).
    pub fn write_new(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        match self.store.put_new(key, bytes) {
            Ok(()) => Ok(true),
            Err(e) if e.is_already_exists() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Delete a repository file (durable on return); false if it was gone.
    pub fn delete(&self, key: &str) -> Result<bool> {
        match self.store.delete(key) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The names (last key segment) of the files under `prefix`, sorted.
    pub fn list_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut v = Vec::new();
        self.store.list_keys(prefix, &mut |k| {
            if let Some(n) = k.rsplit('/').next() {
                v.push(n.to_string());
            }
        })?;
        v.sort();
        Ok(v)
    }
    /// [`Self::list_names`], each with what the storage says of it.
    pub fn list_files(&self, prefix: &str) -> Result<Vec<(String, crate::backend::Listed)>> {
        let mut v = Vec::new();
        self.store.list(prefix, &mut |l| {
            if let Some(n) = l.key.rsplit('/').next().map(str::to_string) {
                v.push((n, l));
            }
        })?;
        v.sort();
        Ok(v)
    }
    /// The decoded config.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The chunker configured by the config.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }
    /// Directory for temp files (INV-1): the repository's `tmp/`, or for
    /// object storage `tmp/` of the work directory.
    pub fn tmp_dir(&self) -> PathBuf {
        self.store
            .scratch_dir()
            .unwrap_or_else(|| self.root.join("tmp"))
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

    /// Delete pack files (GC-4: only after they left the index); each is
    /// durable when this returns. A pack already gone is fine.
    pub fn remove_packs(&self, packs: &[PackId]) -> Result<()> {
        for id in packs {
            self.delete(&crate::backend::key::pack(&id.to_hex()))?;
            crate::killpoint::reached("gc-4");
        }
        Ok(())
    }

    /// The directory holding the index (index.md "Where the index lives").
    pub fn index_dir(&self) -> &Path {
        &self.index_dir
    }

    /// The index file.
    pub fn index_path(&self) -> PathBuf {
        self.index_dir.join(INDEX_FILE)
    }

    /// Open a connection to the index. An index that is missing, damaged
    /// or of another schema version is never served: it is rebuilt from
    /// the pack trailers first (format-spec/index.md), with a message on
    /// stderr. A local repository's index left in its directory by an
    /// earlier version is moved into the cache first.
    pub fn index(&self) -> Result<Index> {
        if let Some(w) = self.crypto.as_ref().and_then(|c| c.writer()) {
            // write-only.md "Deduplication without reading": the blobs
            // this key wrote, never rebuilt from packs it cannot read; a
            // lost record makes the next snapshot upload everything again
            let path = self.index_dir.join(format!("sent-{}.sqlite", w.key_id));
            return match Index::open_checked(&path)? {
                Ok(i) => Ok(i),
                Err(why) => {
                    if path.exists() {
                        self.events.warning(&format!(
                            "{}: {why}; starting a new one (the next snapshot stores \
                             everything again)",
                            path.display()
                        ));
                        for suffix in ["", "-wal", "-shm"] {
                            let mut p = path.clone().into_os_string();
                            p.push(suffix);
                            let _ = fs::remove_file(p);
                        }
                    }
                    Index::create(&path)
                }
            };
        }
        let path = self.index_path();
        if self.local && self.index_dir != self.root {
            rebuild::adopt_legacy(&self.root.join(INDEX_FILE), &path, &*self.events)?;
        }
        let why = match Index::open_checked(&path)? {
            Ok(i) => return Ok(i),
            Err(why) => why,
        };
        if let Some(r) = rebuild::rebuild(self, true)? {
            for w in &r.warnings {
                self.events.warning(w);
            }
            self.events.notice(&format!(
                "index.sqlite {why}: rebuilt it from the trailers of {} packs ({} blobs)",
                r.packs, r.blobs
            ));
        }
        Index::open(&path)
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
    pub fn key_id(&self) -> Option<&KeyId> {
        self.key_id.as_ref()
    }

    /// Encode `value` as a repository file of `kind`: the envelope, then
    /// age encryption in an encrypted repository. Returns the bytes and id.
    pub fn seal_file<T: Encode>(&self, kind: ObjectKind, value: &T) -> Result<(Vec<u8>, [u8; 32])> {
        files::seal(kind, value, self.crypto.as_deref())
    }

    /// Decode a repository file of `kind` written by [`Repo::seal_file`];
    /// `object` names it in errors.
    pub fn open_file<T: Decode<()>>(
        &self,
        kind: ObjectKind,
        bytes: &[u8],
        object: &str,
    ) -> Result<(T, [u8; 32])> {
        files::open(kind, bytes, object, self.crypto.as_deref(), files::MAX_FILE)
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
        files::with_plaintext(bytes, object, self.crypto.as_deref(), f)
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
        self.require_format(2)
    }

    /// Make sure the repository is at least format `version` (2, or 3 for
    /// write-only keys: write-only.md "Format version"), replacing the
    /// config as [`Repo::require_format_2`] says. A write-only key cannot
    /// upgrade: it fails if the config is older.
    pub fn require_format(&self, version: u32) -> Result<()> {
        if self.config.version >= version {
            return Ok(());
        }
        if let Some(c) = &self.crypto {
            c.full(&format!("upgrading the repository to format {version}"))?;
        }
        let current = self.read("config")?;
        let (on_disk, _): (Config, _) = self.open_file(ObjectKind::Config, &current, "config")?;
        if on_disk.version >= version {
            return Ok(()); // upgraded meanwhile
        }
        let upgraded = Config { version, ..on_disk };
        let (bytes, _) = self.seal_file(ObjectKind::Config, &upgraded)?;
        self.store.put_replace("config", &bytes)?;
        let who = if version >= 3 {
            "strata 0.2"
        } else {
            "strata 0.1"
        };
        self.events.notice(&format!(
            "upgraded the repository to format {version} ({who} can no longer open it)"
        ));
        Ok(())
    }

    /// The write-only keys whose signatures this repository accepts
    /// (keys.rs [`keys::Signers`]), read once; none in a repository that
    /// is not format 3. A write-only key reads no manifest.
    pub fn signers(&self) -> Result<Arc<keys::Signers>> {
        if let Some(s) = self.signers.get() {
            return Ok(s.clone());
        }
        let s = match &self.crypto {
            Some(c) if self.config.version >= 3 => {
                c.full("reading snapshots")?;
                let id = self.config.repo_id;
                Arc::new(keys::Signers::load(&*self.store, c, Some(&id))?)
            }
            _ => Arc::new(keys::Signers::default()),
        };
        Ok(self.signers.get_or_init(|| s).clone())
    }

    /// `Err` ([`Error::NeedsFullKey`], naming `what` and the key) when the
    /// key in use is a write-only key.
    pub fn require_full(&self, what: &str) -> Result<()> {
        match &self.crypto {
            Some(c) => c.full(what),
            None => Ok(()),
        }
    }

    /// The packs that `trust/` records name (trust.rs), read once.
    pub fn trusted_packs(&self) -> Result<Arc<std::collections::HashSet<PackId>>> {
        if let Some(s) = self.trusted.get() {
            return Ok(s.clone());
        }
        let s = Arc::new(trust::load(self)?);
        Ok(self.trusted.get_or_init(|| s).clone())
    }

    /// Whether the key in use is a write-only key.
    pub fn is_write_only(&self) -> bool {
        self.crypto.as_ref().is_some_and(|c| c.writer().is_some())
    }

    /// The repository's dictionaries (loaded once; `reload` reads
    /// `dicts/` again, e.g. after training one).
    pub fn dicts(&self, reload: bool) -> Result<Arc<crate::dict::Dicts>> {
        let mut g = self
            .dicts
            .lock()
            .map_err(|_| Error::Internal("dictionary lock poisoned".into()))?;
        if let (Some(d), false) = (g.as_ref(), reload) {
            return Ok(d.clone());
        }
        // write-only.md: a write-only key reads no dictionary file; it
        // uses the ones it trained, kept in its cache
        if self.is_write_only() {
            let d = Arc::new(dicts::load_own(self));
            *g = Some(d.clone());
            return Ok(d);
        }
        let d = Arc::new(dicts::load(self)?);
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

    /// A new pack of `kind` blobs in `tmp/`: encrypted in an encrypted
    /// repository, and in a format-3 repository a version-2 pack that
    /// says which key wrote it (pack.md "Version 2").
    pub fn pack_writer(&self, kind: BlobKind) -> Result<crate::pack::writer::PackWriter> {
        let auth = self.crypto.clone().filter(|_| self.config.version >= 3);
        crate::pack::writer::PackWriter::create(
            &self.tmp_dir(),
            kind,
            self.crypto.as_ref().map(|c| c.recipient()),
            auth,
        )
    }

    /// Open a pack for reading by plaintext offset.
    pub fn open_pack(&self, id: &PackId) -> Result<PackFile> {
        let key = crate::backend::key::pack(&id.to_hex());
        PackFile::open(
            &*self.store,
            &key,
            format!("pack {id}"),
            self.crypto.as_ref(),
        )
    }
}

/// The config of a new repository made with `opts` (a fresh random id).
fn new_config(opts: &InitOptions) -> Result<Config> {
    let config = Config {
        version: config::NEW_REPO_VERSION,
        repo_id: RepoId(crate::sys::random_bytes()?),
        chunker: opts.chunker.clone().unwrap_or_default(),
        compression_level: opts
            .compression_level
            .unwrap_or(config::DEFAULT_COMPRESSION),
        pack_target_size: opts.pack_target_size.unwrap_or(config::DEFAULT_PACK_SIZE),
        encryption: u8::from(opts.key.is_some()),
    };
    config.check_options().map_err(Error::Invalid)?;
    Ok(config)
}

/// Whether the local directory `path` already holds a repository (a
/// `config`, asked through its backend): `init` refuses it before asking
/// for a passphrase. A URL is asked nothing here (`Repo::init` refuses an
/// existing repository there).
pub fn holds_repository(path: &Path) -> bool {
    url_of(path).is_none()
        && matches!(
            LocalBackend::new(path).exists(crate::backend::key::CONFIG),
            Ok(true)
        )
}

/// The backend URL `path` names, if it is one (`s3://…`, `file://…`,
/// `memory://`); anything else is a local directory (backend::open's rule).
pub fn url_of(path: &Path) -> Option<&str> {
    let s = path.to_str()?;
    let (scheme, _) = s.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(s)
}

/// The work directory of the repository `id` on object storage: its
/// directory in the user's cache (index, temp files).
fn work_dir(url: &str, id: &RepoId) -> Result<PathBuf> {
    let base = crate::cache::base_dir().ok_or_else(|| {
        Error::Invalid(format!(
            "{url}: a repository on object storage needs a cache directory \
             (set STRATA_CACHE_DIR or HOME)"
        ))
    })?;
    let dir = base.join(id.to_hex());
    let tmp = dir.join("tmp");
    fs::DirBuilder::new()
        .recursive(true)
        .create(&tmp)
        .at(&tmp)?;
    Ok(dir)
}

/// The index's file name in its directory.
pub const INDEX_FILE: &str = "index.sqlite";

/// The directory of the index of the repository `id` at `local` (a
/// directory) or `url` (index.md "Where the index lives"):
/// `<cache>/<id hex>/index/<location key>/`, keyed by the location too, as
/// a mirror (`sync`) has the same id and other packs. With no cache
/// directory a local repository keeps its index in its own directory (the
/// place of earlier versions), and so it does, with a warning, when the
/// cache directory cannot be made.
fn index_dir(local: Option<&Path>, url: &str, id: &RepoId, events: &dyn Events) -> Result<PathBuf> {
    let location = match local {
        Some(p) => fs::canonicalize(p).at(p)?.to_string_lossy().into_owned(),
        None => url.to_string(),
    };
    let Some(base) = crate::cache::base_dir() else {
        return match local {
            Some(p) => Ok(p.to_path_buf()),
            None => Err(Error::Invalid(format!(
                "{url}: a repository on object storage needs a cache directory \
                 (set STRATA_CACHE_DIR or HOME)"
            ))),
        };
    };
    let dir = base
        .join(id.to_hex())
        .join("index")
        .join(location_key(&location));
    let made = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .at(&dir)
        .and_then(|()| {
            // which repository this index belongs to, for a human in the
            // cache directory (and the tests)
            let loc = dir.join("location");
            if !loc.exists() && !crate::cache::write_private(&loc, location.as_bytes()) {
                return Err(Error::Invalid(format!("{}: cannot write", loc.display())));
            }
            Ok(())
        });
    match (made, local) {
        (Ok(()), _) => Ok(dir),
        (Err(e), Some(p)) => {
            events.warning(&format!("{e}: keeping the index in the repository"));
            Ok(p.to_path_buf())
        }
        (Err(e), None) => Err(e),
    }
}

/// 16 hex digits naming a repository location (a canonical directory or a
/// URL) in the cache: BLAKE3 of its bytes.
pub fn location_key(location: &str) -> String {
    blake3::hash(location.as_bytes()).to_hex()[..16].to_string()
}

/// A work directory given by the caller, with its `tmp/` created.
fn given_work_dir(dir: &Path) -> Result<PathBuf> {
    let tmp = dir.join("tmp");
    fs::DirBuilder::new()
        .recursive(true)
        .create(&tmp)
        .at(&tmp)?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The side door is closed: a local repository is opened through its
    /// backend, not by looking for its directories. A mirror made of
    /// objects (no empty `keys/`, `locks/`, `gc/`) opens, and its first
    /// lock creates `locks/`; `LocalBackend::create_layout` gives it the
    /// layout of `init` again (sync::layout::local_layout).
    #[test]
    fn a_local_repository_opens_without_its_empty_directories() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("repo");
        let id = Repo::init(&path, &InitOptions::default())
            .unwrap()
            .config()
            .repo_id;
        for dir in ["keys", "locks", "gc", "snapshots", "tmp"] {
            std::fs::remove_dir(path.join(dir)).unwrap();
        }
        let repo = Repo::open(&path).unwrap();
        assert_eq!(repo.config().repo_id, id);
        assert!(repo.list_names("snapshots").unwrap().is_empty());
        let lock =
            lock::Lock::acquire(&repo, lock::LockKind::Shared, std::time::Duration::ZERO).unwrap();
        assert!(path.join("locks").is_dir());
        drop(lock);
        assert!(holds_repository(&path));
        crate::sync::layout::local_layout(&path.to_string_lossy()).unwrap();
        for dir in ["packs", "snapshots", "keys", "locks", "tmp", "gc"] {
            assert!(path.join(dir).is_dir(), "{dir}/");
        }
        // no config: not a repository, as before
        std::fs::remove_file(path.join("config")).unwrap();
        assert!(matches!(
            Repo::open(&path),
            Err(Error::NotARepository { .. })
        ));
        assert!(!holds_repository(&path));
    }
}
