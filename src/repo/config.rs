//! The repository `config` object (format-spec/objects.md "Config body").

use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::RepoId;
use crate::object::{self, ObjectKind};
use bincode::{Decode, Encode};

pub use crate::chunker::{ChunkerParams, DEFAULT_CHUNK_AVG, DEFAULT_CHUNK_MAX, DEFAULT_CHUNK_MIN};

/// Default zstd level.
pub const DEFAULT_COMPRESSION: i32 = 3;
/// Smallest pack target size.
pub const PACK_SIZE_MIN: u64 = 1 << 20;
/// Largest pack target size.
pub const PACK_SIZE_MAX: u64 = 1 << 30;
/// The newest repository format this code reads and writes: 2 adds gc
/// state files, which writers must honour (format-spec/gc.md), so strata
/// 0.1 must refuse it; 3 adds write-only keys (format-spec/write-only.md),
/// signed manifests and packs with a writer section, so strata 0.2 must.
pub const REPO_VERSION: u32 = 3;

/// The format of a new repository: 2. The first write-only key makes it 3
/// (write-only.md "Format version"), which strata 0.2 refuses.
pub const NEW_REPO_VERSION: u32 = 2;
/// Default pack target size.
pub const DEFAULT_PACK_SIZE: u64 = 16 << 20;

/// The decoded `config` file.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Config {
    /// Repository format version: 1, or 2 once it may hold gc state
    /// (format-spec/README.md "Version log").
    pub version: u32,
    /// Random repository id.
    pub repo_id: RepoId,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// zstd level; 0 stores blobs raw.
    pub compression_level: i32,
    /// Pack target size in bytes.
    pub pack_target_size: u64,
    /// 0 = none, 1 = age (keys.md).
    pub encryption: u8,
}

/// Which value of a config is out of its range.
enum OutOfRange {
    /// Chunk sizes FastCDC refuses (its message).
    Chunker(String),
    /// The zstd level.
    Compression,
    /// The pack target size.
    PackSize,
}

impl Config {
    /// The first value out of its range (chunk sizes FastCDC refuses, a
    /// zstd level, a pack size), the one range check of both
    /// [`Config::check_options`] and [`Config::validate`].
    fn out_of_range(&self) -> Option<OutOfRange> {
        if let Err(e) = crate::chunker::Chunker::new(&self.chunker) {
            return Some(OutOfRange::Chunker(e));
        }
        if !(0..=22).contains(&self.compression_level) {
            return Some(OutOfRange::Compression);
        }
        if !(PACK_SIZE_MIN..=PACK_SIZE_MAX).contains(&self.pack_target_size) {
            return Some(OutOfRange::PackSize);
        }
        None
    }

    /// Check user-chosen values; the message names the option.
    pub fn check_options(&self) -> std::result::Result<(), String> {
        match self.out_of_range() {
            None => Ok(()),
            Some(OutOfRange::Chunker(e)) => Err(format!("invalid chunk sizes: {e}")),
            Some(OutOfRange::Compression) => Err(format!(
                "invalid --compression {} (0..=22)",
                self.compression_level
            )),
            Some(OutOfRange::PackSize) => Err(format!(
                "invalid pack size {} MiB (1..=1024)",
                self.pack_target_size >> 20
            )),
        }
    }

    /// Check values a decoder accepted but the engine cannot use.
    pub fn validate(&self, object: &str) -> Result<()> {
        if !(1..=REPO_VERSION).contains(&self.version) {
            return Err(Error::corrupt(
                object,
                format!("unsupported repository version {}", self.version),
            ));
        }
        match self.out_of_range() {
            None => {}
            Some(OutOfRange::Chunker(e)) => return Err(Error::corrupt(object, e)),
            Some(OutOfRange::Compression) => {
                return Err(Error::corrupt(
                    object,
                    format!("compression level {} out of range", self.compression_level),
                ));
            }
            Some(OutOfRange::PackSize) => {
                return Err(Error::corrupt(
                    object,
                    format!("pack size {} out of range", self.pack_target_size),
                ));
            }
        }
        if self.encryption > 1 {
            return Err(Error::corrupt(
                object,
                format!("unknown encryption scheme {}", self.encryption),
            ));
        }
        Ok(())
    }

    /// Decode and validate a `config` envelope (already decrypted); with
    /// `crypto`, its MAC is checked and it must say it is encrypted.
    pub fn from_bytes(bytes: &[u8], object: &str, crypto: Option<&Crypto>) -> Result<Self> {
        let (c, _): (Config, _) = object::open(ObjectKind::Config, bytes, object, crypto)?;
        c.validate(object)?;
        if (c.encryption == 1) != crypto.is_some() {
            return Err(Error::corrupt(
                object,
                if crypto.is_some() {
                    "an encrypted config that says the repository is not encrypted"
                } else {
                    "says the repository is encrypted, but is not an age file"
                },
            ));
        }
        Ok(c)
    }
}
