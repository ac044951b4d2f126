//! Writes one pack under `tmp/`, then seals it: trailer, fsync, create-only
//! publish as `packs/xx/<hash>`, fsync directory (INV-1, INV-5). The caller indexes the sealed
//! pack only after `finish` returns (INV-2). In an encrypted repository the
//! pack is written through an age STREAM and named by the BLAKE3 of the
//! ciphertext (keys.md "Packs"). An encrypted tree pack is padded to a
//! size class (pad.rs): its last blob is held back until the seal, which
//! appends the padding to it.

use super::format::{self, PackEntry};
use crate::backend::fsutil;
use crate::blob::{BlobKind, Compression};
use crate::crypto::Crypto;
use crate::crypto::agefile::HashWriter;
use crate::error::{IoContext, Result};
use crate::id::{BlobId, PackId};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

type FileOut = HashWriter<BufWriter<File>>;

enum Sink {
    Plain(FileOut),
    Age(age::stream::StreamWriter<FileOut>),
}

/// A pack being written.
pub struct PackWriter {
    out: Sink,
    tmp: PathBuf,
    offset: u64,
    entries: Vec<PackEntry>,
    kind: BlobKind,
    /// Pad to a size class (an encrypted tree pack): the last blob waits
    /// in `pending` until the next one or the seal.
    pad: bool,
    pending: Option<Pending>,
    /// Format 3: a version-2 pack authenticated by this key (pack.md
    /// "Version 2"): MACed by a full key, signed by a write-only key.
    auth: Option<Arc<Crypto>>,
}

/// A blob not written yet.
struct Pending {
    id: BlobId,
    raw_len: u32,
    comp: Compression,
    stored: Vec<u8>,
}

impl std::fmt::Debug for PackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackWriter({}, {} blobs)",
            self.tmp.display(),
            self.entries.len()
        )
    }
}

/// A pack that is durable under its final name.
#[derive(Clone, Debug)]
pub struct SealedPack {
    /// Its id (BLAKE3 of its bytes).
    pub id: PackId,
    /// Data or tree pack.
    pub kind: BlobKind,
    /// File length (ciphertext length in an encrypted repository).
    pub size: u64,
    /// Its blobs.
    pub entries: Vec<PackEntry>,
    /// The write-only key that wrote it (format 3), if one did.
    pub writer: Option<crate::id::KeyId>,
    /// Whether dedup may use it: written by this process (any key trusts
    /// its own packs), by a full key, or verified by one.
    pub trusted: bool,
}

impl PackWriter {
    /// Start a pack of `kind` blobs in `tmp_dir`, encrypted to `recipient`
    /// if given.
    pub fn create(
        tmp_dir: &Path,
        kind: BlobKind,
        recipient: Option<&age::x25519::Recipient>,
        auth: Option<Arc<Crypto>>,
    ) -> Result<Self> {
        let (f, tmp) = fsutil::create_temp(tmp_dir, ".pack")?;
        let file = HashWriter {
            inner: BufWriter::with_capacity(1 << 20, f),
            hasher: blake3::Hasher::new(),
            len: 0,
        };
        let out = match recipient {
            None => Sink::Plain(file),
            Some(r) => {
                let enc =
                    age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient))
                        .map_err(|e| crate::Error::Internal(format!("cannot encrypt: {e}")))?;
                Sink::Age(enc.wrap_output(file).at(&tmp)?)
            }
        };
        let mut w = PackWriter {
            out,
            tmp,
            offset: 0,
            entries: Vec::new(),
            kind,
            pad: recipient.is_some() && kind == BlobKind::Tree,
            pending: None,
            auth,
        };
        w.write(if w.auth.is_some() {
            &format::HEADER_V2
        } else {
            &format::HEADER
        })?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        match &mut self.out {
            Sink::Plain(w) => w.write_all(b),
            Sink::Age(w) => w.write_all(b),
        }
        .at(&self.tmp)?;
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
        if self.pad {
            self.write_pending()?;
            self.pending = Some(Pending {
                id,
                raw_len,
                comp,
                stored: stored.to_vec(),
            });
            return Ok(());
        }
        self.write_blob(id, raw_len, comp, stored)
    }

    fn write_blob(
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

    fn write_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(p) => self.write_blob(p.id, p.raw_len, p.comp, &p.stored),
            None => Ok(()),
        }
    }

    /// Pad the held-back last blob so that the whole pack (its trailer
    /// included) reaches its size class (pad.rs). A raw blob becomes a
    /// zstd frame first (compression 1 allows stored > raw). Left as it
    /// is where the padding would pass the stored-length limit.
    fn pad_pending(&mut self) -> Result<()> {
        let Some(p) = self.pending.as_mut() else {
            return Ok(());
        };
        if p.comp == Compression::None {
            p.stored = zstd::bulk::compress(&p.stored, 1)
                .map_err(|e| crate::Error::Invalid(format!("zstd: {e}")))?;
            p.comp = Compression::Zstd;
        }
        let auth = if self.auth.is_some() {
            format::AUTH_LEN
        } else {
            0
        };
        let trailer =
            (format::ENTRY_LEN * (self.entries.len() + 1) + auth + format::FOOTER_LEN) as u64;
        let len = self.offset + p.stored.len() as u64 + trailer;
        let pad = super::pad::padding(len);
        if pad > 0 && p.stored.len() as u64 + pad <= crate::blob::MAX_STORED as u64 {
            if let Some(frame) = super::pad::skippable_frame(pad) {
                p.stored.extend_from_slice(&frame);
            }
        }
        Ok(())
    }

    /// Bytes added so far.
    pub fn size(&self) -> u64 {
        self.offset + self.pending.as_ref().map_or(0, |p| p.stored.len() as u64)
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.entries.len() + usize::from(self.pending.is_some())
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write trailer and footer, then publish the file as
    /// `packs/xx/<id>` through the backend: durable before this returns
    /// (INV-1), create-only (INV-5).
    pub fn finish(mut self, store: &dyn crate::backend::Backend) -> Result<SealedPack> {
        self.pad_pending()?;
        self.write_pending()?;
        let trailer = match &self.auth {
            None => format::encode_trailer(&self.entries),
            Some(c) => {
                format::encode_trailer_v2(&self.entries, |hash, count| auth(c, hash, count))?
            }
        };
        self.write(&trailer)?;
        let out = match self.out {
            Sink::Plain(w) => w,
            Sink::Age(w) => w.finish().at(&self.tmp)?,
        };
        let id = PackId(*out.hasher.finalize().as_bytes());
        let size = out.len;
        let file = out
            .inner
            .into_inner()
            .map_err(|e| e.into_error())
            .at(&self.tmp)?;
        // put_new_file makes it durable (local: fsync, link, fsync of the
        // directory; object store: the acknowledged PUT).
        drop(file);
        // INV-5: create-only; a pack already under this name has the same
        // bytes (the name is their hash) and is kept. `put_new_file`
        // consumes the temp file on success and on `AlreadyExists`.
        match store.put_new_file(&crate::backend::key::pack(&id.to_hex()), &self.tmp) {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                return Err(e.into());
            }
        }
        Ok(SealedPack {
            id,
            kind: self.kind,
            size,
            entries: self.entries,
            writer: self
                .auth
                .as_ref()
                .and_then(|c| c.writer().map(|w| w.key_id.clone())),
            trusted: true,
        })
    }

    /// Drop the temp file of a pack that will not be sealed.
    pub fn abandon(self) {
        let tmp = self.tmp.clone();
        drop(self.out);
        let _ = fs::remove_file(tmp);
    }
}

/// The authentication section of a pack written with `c` (pack.md
/// "Version 2"): a MAC for a full key, the key id and a signature for a
/// write-only key.
fn auth(c: &Crypto, hash: &[u8; 32], count: u32) -> Result<format::PackAuth> {
    let mut tag = [0u8; 64];
    match c.writer() {
        None => {
            let m = format::auth_message(hash, count, format::AUTH_FULL, &[0; 16]);
            tag[..32].copy_from_slice(&c.mac(b'P', 2, &m)?);
            Ok(format::PackAuth {
                kind: format::AUTH_FULL,
                key_id: [0; 16],
                tag,
            })
        }
        Some(w) => {
            let key_id = w.key_id.to_bytes16().ok_or_else(|| {
                crate::Error::Internal(format!("key id {} is not 16 bytes", w.key_id))
            })?;
            let m = format::auth_message(hash, count, format::AUTH_WRITE_ONLY, &key_id);
            tag = c
                .writer_sign(&m)
                .ok_or_else(|| crate::Error::Internal("no signing key".into()))?;
            Ok(format::PackAuth {
                kind: format::AUTH_WRITE_ONLY,
                key_id,
                tag,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn seal(root: &Path) -> SealedPack {
        let mut w = PackWriter::create(&root.join("tmp"), BlobKind::Data, None, None).unwrap();
        w.add(BlobId::of(b"blob"), 4, Compression::None, b"blob")
            .unwrap();
        w.finish(&crate::backend::LocalBackend::new(root)).unwrap()
    }

    /// INV-5: sealing a pack whose name is taken (the same bytes sealed
    /// again) keeps the file that is there, never renames over it, and
    /// leaves no temp file.
    #[test]
    fn sealing_an_existing_pack_keeps_the_file() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("tmp")).unwrap();
        let first = seal(d.path());
        let path = d.path().join(first.id.rel_path());
        let ino = fs::metadata(&path).unwrap().ino();
        let again = seal(d.path());
        assert_eq!(again.id, first.id);
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino, "replaced");
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
