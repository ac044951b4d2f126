//! Opening and creating repositories (format-spec/repository.md).

pub mod config;
pub mod fsutil;
pub mod lock;

use crate::chunker::Chunker;
use crate::error::{Error, IoContext, Result};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use config::{ChunkerParams, Config};
use std::fs;
use std::path::{Path, PathBuf};

/// Options of `strata init`.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Chunker sizes; `None` = defaults.
    pub chunker: Option<ChunkerParams>,
    /// zstd level; `None` = default.
    pub compression_level: Option<i32>,
    /// Pack target size in bytes; `None` = default.
    pub pack_target_size: Option<u64>,
}

/// An open repository.
#[derive(Debug)]
pub struct Repo {
    root: PathBuf,
    config: Config,
    chunker: Chunker,
}

const SUBDIRS: [&str; 5] = ["packs", "snapshots", "keys", "locks", "tmp"];

impl Repo {
    /// Create a repository at `path`, which must not exist or be an empty
    /// directory (INV-6: an existing repository is never touched).
    pub fn init(path: &Path, opts: &InitOptions) -> Result<Repo> {
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
            version: u32::from(crate::object::FORMAT_VERSION),
            repo_id: fsutil::random_bytes()?,
            chunker: opts.chunker.clone().unwrap_or_default(),
            compression_level: opts
                .compression_level
                .unwrap_or(config::DEFAULT_COMPRESSION),
            pack_target_size: opts.pack_target_size.unwrap_or(config::DEFAULT_PACK_SIZE),
            encryption: 0,
        };
        config.check_options().map_err(Error::Invalid)?;
        for d in SUBDIRS {
            let p = path.join(d);
            fs::create_dir_all(&p).at(&p)?;
        }
        Index::open(&path.join("index.sqlite"))?;
        // The config is written last: its presence makes the directory a repository.
        fsutil::write_atomic(&path.join("tmp"), &path.join("config"), &config.to_bytes()?)?;
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                fsutil::sync_dir(parent)?;
            }
        }
        Repo::open(path)
    }

    /// Open the repository at `path`.
    pub fn open(path: &Path) -> Result<Repo> {
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
        let config = Config::from_bytes(&bytes, &cfg_path.display().to_string())?;
        let chunker = Chunker::new(&config.chunker).map_err(|e| Error::corrupt("config", e))?;
        for d in SUBDIRS {
            let p = path.join(d);
            if !p.is_dir() {
                return Err(Error::NotARepository {
                    path: path.to_path_buf(),
                    reason: format!("{d}/ is missing"),
                });
            }
        }
        Ok(Repo {
            root: path.to_path_buf(),
            config,
            chunker,
        })
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
        let dir = self.tmp_dir();
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
        let mut n = 0;
        for e in fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Path of a pack file.
    pub fn pack_path(&self, id: &PackId) -> PathBuf {
        self.root.join(id.rel_path())
    }
    /// Open a connection to the index.
    pub fn index(&self) -> Result<Index> {
        Index::open(&self.root.join("index.sqlite"))
    }
    /// The id of a blob's plaintext (keyed BLAKE3 once encryption lands).
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId::of(data)
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
