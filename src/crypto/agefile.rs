//! age files (<https://age-encryption.org/v1>): whole small files, and packs
//! read at random offsets by seeking inside the age STREAM (keys.md "Packs").
//! Every decryption failure is an authentication error naming the file.
//! A pack is read through the ranged-read handle of its [`Backend`] (a
//! local file by `pread`; object storage by one ranged GET per read, with a
//! 256 KiB read-ahead inside an age stream).

use crate::backend::{Backend, BackendError, RangedRead};
use crate::error::{Error, Result};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
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
        .map_err(|e| Error::Internal(format!("cannot encrypt: {e}")))?;
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    let wrap = |e: io::Error| Error::Internal(format!("cannot encrypt: {e}"));
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

/// `Read + Seek` for the age stream reader.
pub trait ReadSeek: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeek for T {}

/// Reads an opened object as a stream: straight through for a local
/// file, with a read-ahead buffer on remote storage.
struct HandleReader {
    handle: Arc<dyn RangedRead>,
    remote: bool,
    pos: u64,
    /// The read-ahead (remote), shared with the pool entry of the age
    /// reader that wraps this one, so that a reader put back in the pool
    /// gives up a large buffer ([`PackFile::give_back`]).
    ahead: Arc<Mutex<ReadAhead>>,
}

/// The last range read ahead of a [`HandleReader`], as the store gave it
/// (no copy).
struct ReadAhead {
    buf: bytes::Bytes,
    /// Where `buf` starts.
    at: u64,
    /// Where the last range read ended (stays when `buf` is dropped, so
    /// a reader that goes on sequentially still doubles its reads).
    end: u64,
    /// Bytes the next ranged read asks for: [`READ_AHEAD`], doubled (up
    /// to [`READ_AHEAD_MAX`]) while reads follow each other, so a long
    /// run of blobs costs a few requests, not one per 256 KiB.
    next: u64,
}

impl ReadAhead {
    fn new() -> Arc<Mutex<ReadAhead>> {
        Arc::new(Mutex::new(ReadAhead {
            buf: bytes::Bytes::new(),
            at: 0,
            end: 0,
            next: READ_AHEAD,
        }))
    }
}

impl HandleReader {
    fn new(handle: Arc<dyn RangedRead>, remote: bool, ahead: Arc<Mutex<ReadAhead>>) -> Self {
        HandleReader {
            handle,
            remote,
            pos: 0,
            ahead,
        }
    }

    /// A local read: straight into `out`.
    fn read_local(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = (out.len() as u64).min(self.handle.size() - self.pos) as usize;
        self.handle
            .read_at(&mut out[..n], self.pos)
            .map_err(local_io)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A local read's error as the `io::Error` a file read gives: the file
/// shrank (end of file), or the error of the system call itself.
fn local_io(e: BackendError) -> io::Error {
    match e {
        BackendError::OutOfRange { .. } => io::ErrorKind::UnexpectedEof.into(),
        BackendError::Io { source, .. } => source,
        e => io::Error::other(e),
    }
}

/// Largest read-ahead of a sequential reader.
const READ_AHEAD_MAX: u64 = 2 << 20;

/// Bytes read ahead per ranged read of a pack on remote storage: four age
/// chunks of an encrypted pack; the trees near a plaintext one.
const READ_AHEAD: u64 = 256 << 10;
/// Ranges a plaintext pack on remote storage keeps, each of at most
/// 2 × [`READ_AHEAD`] (larger reads are not kept): with the 64 packs a
/// reader keeps open, at most 64 MiB.
const RANGED_CACHE: usize = 2;

impl Read for HandleReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let size = self.handle.size();
        if self.pos >= size || out.is_empty() {
            return Ok(0);
        }
        if !self.remote {
            return self.read_local(out);
        }
        let mut a = self
            .ahead
            .lock()
            .map_err(|_| io::Error::other("read-ahead lock poisoned"))?;
        let end = a.at + a.buf.len() as u64;
        if self.pos < a.at || self.pos >= end {
            a.next = if self.pos == a.end && a.end > 0 {
                (a.next * 2).min(READ_AHEAD_MAX)
            } else {
                READ_AHEAD
            };
            let want = (out.len() as u64).max(a.next);
            let stop = (self.pos + want).min(size);
            a.buf = self.handle.read(self.pos..stop).map_err(io::Error::other)?;
            a.at = self.pos;
            a.end = stop;
        }
        let off = (self.pos - a.at) as usize;
        let n = out.len().min(a.buf.len() - off);
        out[..n].copy_from_slice(&a.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for HandleReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let p = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.handle.size().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = p.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

type AgeReader = age::stream::StreamReader<BufReader<Box<dyn ReadSeek>>>;

/// A decrypting reader of a pack and the read-ahead of its handle.
struct Pooled {
    reader: AgeReader,
    ahead: Arc<Mutex<ReadAhead>>,
}

/// Parse a pack's age header and unwrap its file key with the data identity.
fn open_reader(r: Box<dyn ReadSeek>, crypto: &super::Crypto, object: &str) -> Result<AgeReader> {
    let d = age::Decryptor::new_buffered(BufReader::new(r))
        .map_err(|e| classify(e).into_error(object))?;
    let identity = crypto.identity()?;
    d.decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| classify(e).into_error(object))
}

/// An open pack file read by plaintext offset, through the handle of
/// [`Backend::open_ranged`]: positioned reads of a plaintext pack (on
/// remote storage each reading ahead at least `READ_AHEAD` (256 KiB) into a
/// small cache, so the trees of a walk, neighbours in their pack, cost one
/// request per block), seeks inside the age STREAM of an encrypted one (one
/// 64 KiB age chunk is decrypted per seek, never the whole pack).
pub struct PackFile {
    handle: Arc<dyn RangedRead>,
    /// Whether the storage is remote ([`Backend::remote_reads`]).
    remote: bool,
    /// Its name in errors, `pack <id>`.
    object: String,
    /// Where it is (backend and key), for errors.
    path: PathBuf,
    body: Body,
}

enum Body {
    /// A plaintext pack; the last ranges read on remote storage
    /// (start, bytes), newest last.
    Plain {
        cache: Mutex<Vec<(u64, bytes::Bytes)>>,
    },
    /// An age-encrypted pack; readers are pooled so threads can share it.
    Age {
        /// The repository secret.
        crypto: Arc<super::Crypto>,
        /// Idle decrypting readers, each with the read-ahead of the
        /// handle under it.
        pool: Mutex<Vec<Pooled>>,
    },
}

impl std::fmt::Debug for PackFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackFile({})", self.object)
    }
}

impl PackFile {
    /// Open the pack `key` of `store`; `object` names it in errors. One
    /// reader of an encrypted pack is opened now, so a missing file or a
    /// damaged header is reported here.
    pub fn open(
        store: &dyn Backend,
        key: &str,
        object: String,
        crypto: Option<&Arc<super::Crypto>>,
    ) -> Result<Self> {
        let handle: Arc<dyn RangedRead> = Arc::from(store.open_ranged(key)?);
        let remote = store.remote_reads().is_some();
        let path = PathBuf::from(format!("{}/{key}", store.name()));
        let body = match crypto {
            None => Body::Plain {
                cache: Mutex::new(Vec::new()),
            },
            Some(crypto) => {
                let ahead = ReadAhead::new();
                let r = Box::new(HandleReader::new(handle.clone(), remote, ahead.clone()));
                let first = Pooled {
                    reader: open_reader(r, crypto, &object)?,
                    ahead,
                };
                Body::Age {
                    crypto: crypto.clone(),
                    pool: Mutex::new(vec![first]),
                }
            }
        };
        Ok(PackFile {
            handle,
            remote,
            object,
            path,
            body,
        })
    }

    fn name(&self) -> &str {
        &self.object
    }

    fn error(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => Error::corrupt(self.name(), "truncated"),
            io::ErrorKind::InvalidData => Error::corrupt(
                self.name(),
                "authentication failed: payload does not authenticate",
            ),
            _ => match e.downcast::<BackendError>() {
                Ok(b) => Error::Backend(b),
                Err(e) => Error::Io {
                    path: self.path.clone(),
                    source: e,
                },
            },
        }
    }

    /// A read's error: past the end is a truncated pack; a local system
    /// call's error names the file, as a file read's would.
    fn read_error(&self, e: BackendError) -> Error {
        match e {
            BackendError::OutOfRange { .. } => Error::corrupt(self.name(), "truncated"),
            BackendError::Io { source, .. } if !self.remote => Error::Io {
                path: self.path.clone(),
                source,
            },
            e => e.into(),
        }
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut AgeReader) -> io::Result<T>) -> Result<T> {
        let mut r = self.take_reader()?;
        let out = f(&mut r.reader).map_err(|e| self.error(e))?;
        self.give_back(r);
        Ok(out)
    }

    /// An idle reader of an encrypted pack, or a new one.
    fn take_reader(&self) -> Result<Pooled> {
        let Body::Age { pool, crypto } = &self.body else {
            return Err(Error::Invalid("not an encrypted pack".into()));
        };
        if let Some(r) = pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(r);
        }
        let ahead = ReadAhead::new();
        let handle = HandleReader::new(self.handle.clone(), self.remote, ahead.clone());
        Ok(Pooled {
            reader: open_reader(Box::new(handle), crypto, self.name())?,
            ahead,
        })
    }

    /// Put a reader that did not fail back in the pool (at most 8 per
    /// pack). Its read-ahead is kept only up to [`READ_AHEAD`]: the trees
    /// of a walk, neighbours in their pack, still cost one request per
    /// block, while the larger ranges of a sequential read (up to
    /// [`READ_AHEAD_MAX`]) are not held by idle readers.
    fn give_back(&self, r: Pooled) {
        let Body::Age { pool, .. } = &self.body else {
            return;
        };
        if let Ok(mut a) = r.ahead.lock() {
            if a.buf.len() as u64 > READ_AHEAD {
                a.buf = bytes::Bytes::new();
            }
        }
        if let Ok(mut p) = pool.lock() {
            if p.len() < 8 {
                p.push(r);
            }
        }
    }

    /// Run `f` with a function that reads exactly `buf.len()` plaintext
    /// bytes at an offset, like [`read_exact_at`](Self::read_exact_at),
    /// but through one reader for all of `f`'s reads: a sequence of reads
    /// at rising offsets of an encrypted pack on remote storage goes on
    /// with the read-ahead of the one before (fewer, larger ranged reads).
    /// A reader whose read failed is dropped (never pooled again) and the
    /// next read opens another.
    pub fn with_sequential<T>(
        &self,
        f: impl FnOnce(&mut dyn FnMut(&mut [u8], u64) -> Result<()>) -> Result<T>,
    ) -> Result<T> {
        if !matches!(self.body, Body::Age { .. }) {
            return f(&mut |buf, offset| self.read_exact_at(buf, offset));
        }
        let mut held = Some(self.take_reader()?);
        let out = {
            let mut read = |buf: &mut [u8], offset: u64| -> Result<()> {
                let r = match held.as_mut() {
                    Some(r) => r,
                    None => held.insert(self.take_reader()?),
                };
                let done = r
                    .reader
                    .seek(SeekFrom::Start(offset))
                    .and_then(|_| r.reader.read_exact(buf));
                done.map_err(|e| {
                    held = None;
                    self.error(e)
                })
            };
            f(&mut read)
        };
        if let Some(r) = held {
            self.give_back(r);
        }
        out
    }

    /// Plaintext length of the pack.
    pub fn len(&self) -> Result<u64> {
        match &self.body {
            Body::Plain { .. } => Ok(self.handle.size()),
            Body::Age { .. } => self.with_reader(|r| r.seek(SeekFrom::End(0))),
        }
    }

    /// Always false: a pack has at least a header (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Read exactly `buf.len()` plaintext bytes at `offset`.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        match &self.body {
            Body::Plain { .. } if !self.remote => self
                .handle
                .read_at(buf, offset)
                .map_err(|e| self.read_error(e)),
            Body::Plain { cache } => self.read_cached(cache, buf, offset),
            Body::Age { .. } => self.with_reader(|r| {
                r.seek(SeekFrom::Start(offset))?;
                r.read_exact(buf)
            }),
        }
    }

    /// A plaintext read on remote storage: from the last ranges read, else
    /// one ranged read of at least [`READ_AHEAD`] bytes, kept.
    fn read_cached(
        &self,
        cache: &Mutex<Vec<(u64, bytes::Bytes)>>,
        buf: &mut [u8],
        offset: u64,
    ) -> Result<()> {
        let size = self.handle.size();
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| Error::corrupt(self.name(), "offset past the end"))?;
        if end > size {
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
        let stop = end.max(offset.saturating_add(READ_AHEAD)).min(size);
        let b = self
            .handle
            .read(offset..stop)
            .map_err(|e| self.read_error(e))?;
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
}
