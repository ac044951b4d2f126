//! age files (<https://age-encryption.org/v1>): whole small files, and packs
//! read at random offsets by seeking inside the age STREAM (keys.md "Packs").
//! Every decryption failure is an authentication error naming the file.
//! A pack is read from a local file, or by ranged reads through a
//! [`Backend`] (object storage: one ranged GET per read, a 256 KiB
//! read-ahead inside an age stream).

use crate::backend::Backend;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// The first line of every age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// True when `bytes` start like an age file.
pub fn is_age(bytes: &[u8]) -> bool {
    bytes.starts_with(AGE_MAGIC)
}

/// Encrypt `plaintext` to `recipients` (a binary age file, not armored).
pub fn encrypt(recipients: &[&dyn age::Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(recipients.iter().copied())
        .map_err(|e| Error::Invalid(format!("cannot encrypt: {e}")))?;
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    let wrap = |e: io::Error| Error::Invalid(format!("cannot encrypt: {e}"));
    let mut w = enc.wrap_output(&mut out).map_err(wrap)?;
    w.write_all(plaintext).map_err(wrap)?;
    w.finish().map_err(wrap)?;
    Ok(out)
}

/// Why an age file did not decrypt.
#[derive(Debug)]
pub enum DecryptFail {
    /// No given identity or passphrase opens it: wrong key, or a damaged
    /// recipient stanza (indistinguishable by design).
    WrongKey,
    /// The file opened but failed authentication, or is not an age file.
    Damaged(String),
    /// Reading failed.
    Io(io::Error),
}

impl DecryptFail {
    /// As a library error about `object`.
    pub fn into_error(self, object: &str) -> Error {
        match self {
            DecryptFail::WrongKey => Error::corrupt(
                object,
                "authentication failed: not encrypted to this repository's key",
            ),
            DecryptFail::Damaged(d) => {
                Error::corrupt(object, format!("authentication failed: {d}"))
            }
            DecryptFail::Io(e) => Error::Io {
                path: PathBuf::from(object),
                source: e,
            },
        }
    }
}

fn classify(e: age::DecryptError) -> DecryptFail {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys | D::DecryptionFailed | D::KeyDecryptionFailed => DecryptFail::WrongKey,
        D::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            DecryptFail::Damaged("truncated age header".into())
        }
        D::Io(e) => DecryptFail::Io(e),
        D::InvalidMac => DecryptFail::Damaged("age header MAC does not match".into()),
        D::InvalidHeader => DecryptFail::Damaged("invalid age header".into()),
        D::UnknownFormat => DecryptFail::Damaged("not an age v1 file".into()),
        D::ExcessiveWork { required, .. } => DecryptFail::Damaged(format!(
            "scrypt work factor 2^{required} exceeds the limit (STRATA_SCRYPT_MAX_LOG_N)"
        )),
    }
}

fn payload_fail(e: io::Error) -> DecryptFail {
    match e.kind() {
        io::ErrorKind::InvalidData => DecryptFail::Damaged("payload does not authenticate".into()),
        io::ErrorKind::UnexpectedEof => DecryptFail::Damaged("age payload is truncated".into()),
        _ => DecryptFail::Io(e),
    }
}

/// Decrypt a small age file held in memory, up to `limit` plaintext bytes.
pub fn decrypt(
    bytes: &[u8],
    identities: &[&dyn age::Identity],
    object: &str,
    limit: usize,
) -> std::result::Result<Zeroizing<Vec<u8>>, DecryptFail> {
    if !is_age(bytes) {
        return Err(DecryptFail::Damaged(format!(
            "{object} is not an age file (an encrypted repository holds only age files)"
        )));
    }
    let d = age::Decryptor::new_buffered(bytes).map_err(classify)?;
    let r = d.decrypt(identities.iter().copied()).map_err(classify)?;
    let mut out = Zeroizing::new(Vec::new());
    r.take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(payload_fail)?;
    if out.len() > limit {
        return Err(DecryptFail::Damaged(format!(
            "plaintext exceeds the {limit}-byte limit"
        )));
    }
    Ok(out)
}

/// The work factor (log2 N) of the scrypt stanza in an age file's header,
/// read from its text without running scrypt; `None` when the header has
/// no well-formed scrypt stanza. Only the first 4 KiB are looked at (a key
/// file's header is a few hundred bytes).
pub fn scrypt_log_n(bytes: &[u8]) -> Option<u8> {
    let head = bytes.strip_prefix(AGE_MAGIC)?;
    let head = &head[..head.len().min(4096)];
    for line in head.split(|b| *b == b'\n') {
        if line.starts_with(b"---") {
            return None;
        }
        let Some(args) = line.strip_prefix(b"-> scrypt ") else {
            continue;
        };
        let text = std::str::from_utf8(args).ok()?;
        let mut parts = text.split(' ');
        let (_salt, log_n) = (parts.next()?, parts.next()?);
        // age requires a canonical decimal (no sign, no leading zero).
        if parts.next().is_some() || log_n.starts_with('0') || log_n.starts_with('+') {
            return None;
        }
        return log_n.parse().ok();
    }
    None
}

/// Parse an age file's header only: is it passphrase-encrypted?
pub fn is_scrypt(bytes: &[u8]) -> std::result::Result<bool, DecryptFail> {
    if !is_age(bytes) {
        return Err(DecryptFail::Damaged("not an age file".into()));
    }
    age::Decryptor::new_buffered(bytes)
        .map(|d| d.is_scrypt())
        .map_err(classify)
}

/// A `Write` that hashes what passes through it (pack names are the BLAKE3
/// of the file's bytes, ciphertext in an encrypted repository).
pub struct HashWriter<W> {
    /// The destination.
    pub inner: W,
    /// Hash of everything written.
    pub hasher: blake3::Hasher,
    /// Bytes written.
    pub len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where a pack's bytes are.
#[derive(Clone, Debug)]
pub enum Source {
    /// A local file.
    File(PathBuf),
    /// An object read by ranged reads.
    Store(Arc<dyn Backend>, String),
}

impl Source {
    fn reader(&self) -> io::Result<Box<dyn ReadSeek>> {
        match self {
            Source::File(p) => Ok(Box::new(File::open(p)?)),
            Source::Store(b, key) => {
                let size = b.size(key).map_err(io::Error::other)?;
                Ok(Box::new(RangeReader {
                    store: b.clone(),
                    key: key.clone(),
                    size,
                    pos: 0,
                    buf: Vec::new(),
                    buf_at: 0,
                    ahead: READ_AHEAD,
                }))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Store(b, key) => format!("{}/{key}", b.name()),
        }
    }
}

/// `Read + Seek` for the age stream reader.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Reads an object through ranged reads with a read-ahead buffer.
struct RangeReader {
    store: Arc<dyn Backend>,
    key: String,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_at: u64,
    /// Bytes the next ranged read asks for: [`READ_AHEAD`], doubled (up
    /// to [`READ_AHEAD_MAX`]) while reads follow each other, so a long
    /// run of blobs costs a few requests, not one per 256 KiB.
    ahead: u64,
}

/// Largest read-ahead of a sequential reader.
const READ_AHEAD_MAX: u64 = 2 << 20;

/// Bytes read ahead per ranged read of a pack on object storage: four age
/// chunks of an encrypted pack; the trees near a plaintext one.
const READ_AHEAD: u64 = 256 << 10;
/// Ranges a plaintext pack on object storage keeps, each of at most
/// 2 × [`READ_AHEAD`] (larger reads are not kept): with the 64 packs a
/// reader keeps open, at most 64 MiB.
const RANGED_CACHE: usize = 2;

impl Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let end = self.buf_at + self.buf.len() as u64;
        if self.pos < self.buf_at || self.pos >= end {
            self.ahead = if self.pos == end && !self.buf.is_empty() {
                (self.ahead * 2).min(READ_AHEAD_MAX)
            } else {
                READ_AHEAD
            };
            let want = (out.len() as u64).max(self.ahead);
            let stop = (self.pos + want).min(self.size);
            let b = self
                .store
                .get_range(&self.key, self.pos..stop)
                .map_err(io::Error::other)?;
            self.buf = b.to_vec();
            self.buf_at = self.pos;
        }
        let off = (self.pos - self.buf_at) as usize;
        let n = out.len().min(self.buf.len() - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = p.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

type AgeReader = age::stream::StreamReader<BufReader<Box<dyn ReadSeek>>>;

/// Parse a pack's age header and unwrap its file key with the data identity.
fn open_reader(r: Box<dyn ReadSeek>, crypto: &super::Crypto, object: &str) -> Result<AgeReader> {
    let d = age::Decryptor::new_buffered(BufReader::new(r))
        .map_err(|e| classify(e).into_error(object))?;
    d.decrypt(std::iter::once(crypto.identity() as &dyn age::Identity))
        .map_err(|e| classify(e).into_error(object))
}

/// An open pack file read by plaintext offset: positioned reads for a
/// plaintext pack, seeks inside the age STREAM for an encrypted one (one
/// 64 KiB age chunk is decrypted per seek, never the whole pack).
pub enum PackFile {
    /// A plaintext local pack.
    Plain {
        /// The file.
        file: File,
        /// Its path, for errors.
        path: PathBuf,
        /// Its name in errors, `pack <id>`.
        object: String,
    },
    /// A plaintext pack read by ranged reads of its object, each reading
    /// ahead at least `READ_AHEAD` (256 KiB) bytes into a small cache, so the trees
    /// of a walk (neighbours in their pack) cost one request per block.
    Ranged {
        /// The backend.
        store: Arc<dyn Backend>,
        /// The key.
        key: String,
        /// Its name in errors.
        object: String,
        /// The object's size.
        size: u64,
        /// The last ranges read: (start, bytes), newest last.
        cache: Mutex<Vec<(u64, bytes::Bytes)>>,
    },
    /// An age-encrypted pack; readers are pooled so threads can share it.
    Age {
        /// Where it is.
        source: Source,
        /// Where it is, for errors.
        path: PathBuf,
        /// Its name in errors.
        object: String,
        /// The repository secret.
        crypto: Arc<super::Crypto>,
        /// Idle decrypting readers.
        pool: Mutex<Vec<AgeReader>>,
    },
}

impl std::fmt::Debug for PackFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackFile({})", self.name())
    }
}

impl PackFile {
    /// Open the pack at `source`; `object` names it in errors.
    pub fn open(
        source: Source,
        object: String,
        crypto: Option<&Arc<super::Crypto>>,
    ) -> Result<Self> {
        let path = PathBuf::from(source.describe());
        let Some(crypto) = crypto else {
            return match source {
                Source::File(path) => {
                    let file = File::open(&path).map_err(|e| Error::Io {
                        path: path.clone(),
                        source: e,
                    })?;
                    Ok(PackFile::Plain { file, path, object })
                }
                Source::Store(store, key) => {
                    let size = store.size(&key)?;
                    Ok(PackFile::Ranged {
                        store,
                        key,
                        object,
                        size,
                        cache: Mutex::new(Vec::new()),
                    })
                }
            };
        };
        // One reader is opened now, so a missing file or a damaged header
        // is reported here.
        let r = match &source {
            Source::File(p) => source.reader().map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?,
            Source::Store(b, key) => {
                b.size(key)?;
                source.reader().map_err(|e| Error::Io {
                    path: path.clone(),
                    source: e,
                })?
            }
        };
        let first = open_reader(r, crypto, &object)?;
        Ok(PackFile::Age {
            source,
            path,
            object,
            crypto: crypto.clone(),
            pool: Mutex::new(vec![first]),
        })
    }

    fn name(&self) -> &str {
        match self {
            PackFile::Plain { object, .. }
            | PackFile::Ranged { object, .. }
            | PackFile::Age { object, .. } => object,
        }
    }

    fn path(&self) -> PathBuf {
        match self {
            PackFile::Plain { path, .. } | PackFile::Age { path, .. } => path.clone(),
            PackFile::Ranged { store, key, .. } => PathBuf::from(format!("{}/{key}", store.name())),
        }
    }

    fn error(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Error::corrupt(self.name(), "truncated"),
            io::ErrorKind::InvalidData => Error::corrupt(
                self.name(),
                "authentication failed: payload does not authenticate",
            ),
            _ => match e.downcast::<crate::backend::BackendError>() {
                Ok(b) => Error::Backend(b),
                Err(e) => Error::Io {
                    path: self.path(),
                    source: e,
                },
            },
        }
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut AgeReader) -> io::Result<T>) -> Result<T> {
        let PackFile::Age {
            source,
            pool,
            crypto,
            ..
        } = self
        else {
            return Err(Error::Invalid("not an encrypted pack".into()));
        };
        let taken = pool.lock().ok().and_then(|mut p| p.pop());
        let mut r = match taken {
            Some(r) => r,
            None => open_reader(
                source.reader().map_err(|e| self.error(e))?,
                crypto,
                self.name(),
            )?,
        };
        let out = f(&mut r).map_err(|e| self.error(e))?;
        if let Ok(mut p) = pool.lock() {
            if p.len() < 8 {
                p.push(r);
            }
        }
        Ok(out)
    }

    /// Plaintext length of the pack.
    pub fn len(&self) -> Result<u64> {
        match self {
            PackFile::Plain { file, .. } => {
                file.metadata().map(|m| m.len()).map_err(|e| self.error(e))
            }
            PackFile::Ranged { size, .. } => Ok(*size),
            PackFile::Age { .. } => self.with_reader(|r| r.seek(SeekFrom::End(0))),
        }
    }

    /// Always false: a pack has at least a header (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Read exactly `buf.len()` plaintext bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match self {
            PackFile::Plain { file, .. } => {
                file.read_exact_at(buf, offset).map_err(|e| self.error(e))
            }
            PackFile::Ranged {
                store,
                key,
                size,
                cache,
                ..
            } => {
                let end = offset
                    .checked_add(buf.len() as u64)
                    .ok_or_else(|| Error::corrupt(self.name(), "offset past the end"))?;
                if end > *size {
                    return Err(Error::corrupt(self.name(), "truncated"));
                }
                let hit = |c: &[(u64, bytes::Bytes)]| {
                    c.iter().rev().find_map(|(start, b)| {
                        let s = offset.checked_sub(*start)? as usize;
                        b.get(s..s + buf.len()).map(|x| x.to_vec())
                    })
                };
                if let Some(v) = cache.lock().ok().and_then(|c| hit(&c)) {
                    buf.copy_from_slice(&v);
                    return Ok(());
                }
                let stop = end.max(offset.saturating_add(READ_AHEAD)).min(*size);
                let b = store.get_range(key, offset..stop).map_err(|e| match e {
                    crate::backend::BackendError::OutOfRange { .. } => {
                        Error::corrupt(self.name(), "truncated")
                    }
                    e => e.into(),
                })?;
                let got = b
                    .get(..buf.len())
                    .ok_or_else(|| Error::corrupt(self.name(), "short read"))?;
                buf.copy_from_slice(got);
                if let (Ok(mut c), true) = (cache.lock(), b.len() as u64 <= 2 * READ_AHEAD) {
                    if c.len() >= RANGED_CACHE {
                        c.remove(0);
                    }
                    c.push((offset, b));
                }
                Ok(())
            }
            PackFile::Age { .. } => self.with_reader(|r| {
                r.seek(SeekFrom::Start(offset))?;
                r.read_exact(buf)
            }),
        }
    }
}
