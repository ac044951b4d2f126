//! Writes one pack under `tmp/`, then seals it: trailer, fsync, rename to
//! `packs/xx/<hash>`, fsync directory (INV-1). The caller indexes the sealed
//! pack only after `finish` returns (INV-2).

use super::format::{self, PackEntry};
use crate::blob::{BlobKind, Compression};
use crate::error::{IoContext, Result};
use crate::id::{BlobId, PackId};
use crate::repo::fsutil;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A pack being written.
#[derive(Debug)]
pub struct PackWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    hasher: blake3::Hasher,
    offset: u64,
    entries: Vec<PackEntry>,
    kind: BlobKind,
}

/// A pack that is durable under its final name.
#[derive(Clone, Debug)]
pub struct SealedPack {
    /// Its id (BLAKE3 of its bytes).
    pub id: PackId,
    /// Data or tree pack.
    pub kind: BlobKind,
    /// File length.
    pub size: u64,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    /// Start a pack of `kind` blobs in `tmp_dir`.
    pub fn create(tmp_dir: &Path, kind: BlobKind) -> Result<Self> {
        let (f, tmp) = fsutil::create_temp(tmp_dir, ".pack")?;
        let mut w = PackWriter {
            out: BufWriter::with_capacity(1 << 20, f),
            tmp,
            hasher: blake3::Hasher::new(),
            offset: 0,
            entries: Vec::new(),
            kind,
        };
        w.write(&format::HEADER)?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).at(&self.tmp)?;
        self.hasher.update(b);
        self.offset += b.len() as u64;
        Ok(())
    }

    /// Append one blob's stored bytes.
    pub fn add(
        &mut self,
        id: BlobId,
        raw_len: u32,
        comp: Compression,
        stored: &[u8],
    ) -> Result<()> {
        let e = PackEntry {
            id,
            offset: self.offset,
            stored_len: stored.len() as u32,
            raw_len,
            kind: self.kind,
            compression: comp,
        };
        self.write(stored)?;
        self.entries.push(e);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.offset
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write trailer and footer, fsync, rename into `packs/` (INV-1).
    pub fn finish(mut self, repo_root: &Path) -> Result<SealedPack> {
        let trailer = format::encode_trailer(&self.entries);
        self.write(&trailer)?;
        let id = PackId(*self.hasher.finalize().as_bytes());
        let file = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .at(&self.tmp)?;
        let dest = repo_root.join(id.rel_path());
        if dest.exists() {
            // INV-5: same name, same bytes; keep the existing file.
            drop(file);
            fs::remove_file(&self.tmp).at(&self.tmp)?;
        } else {
            fsutil::commit_temp(file, &self.tmp, &dest)?;
        }
        Ok(SealedPack {
            id,
            kind: self.kind,
            size: self.offset,
            entries: self.entries,
        })
    }

    /// Drop the temp file of a pack that will not be sealed.
    pub fn abandon(self) {
        let tmp = self.tmp.clone();
        drop(self.out);
        let _ = fs::remove_file(tmp);
    }
}
