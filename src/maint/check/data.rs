//! `check --read-data`, one pack: the file is read once, front to back,
//! through the backend (ranged reads of 4 MiB), hashed with BLAKE3 and
//! compared with its name; on the way each blob the index lists is cut
//! out of the (decrypted) stream, decompressed and checked against its id
//! (pack.md "Rules"). Memory is the read buffer and one blob. Where the
//! stream breaks (a damaged age chunk, a truncation), the blobs after the
//! break are read one by one from their own age chunks, so a damaged
//! byte names exactly the blobs it makes unreadable.

use super::short;
use crate::backend::Backend;
use crate::error::Result;
use crate::id::{BlobId, PackId};
use crate::index::BlobRow;
use crate::pack::format;
use crate::pack::reader::{self, BlobLocation};
use crate::repo::Repo;
use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bytes fetched per ranged read.
const CHUNK: u64 = 4 << 20;

/// What reading one pack found.
#[derive(Debug, Default)]
pub struct PackOutcome {
    /// Bytes of the file read.
    pub bytes: u64,
    /// Problems with the pack as a whole (hash, header, trailer region).
    pub problems: Vec<String>,
    /// Blobs that do not read back, with why.
    pub bad_blobs: Vec<(BlobId, String)>,
    /// Blobs the storage failed to deliver (`Error::is_transport_failure`),
    /// with why: reported, not recorded as damaged.
    pub unread: Vec<(BlobId, String)>,
}

impl PackOutcome {
    /// Nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.bad_blobs.is_empty() && self.unread.is_empty()
    }
}

/// Reads an object front to back by ranged reads.
struct Sequential {
    store: Arc<dyn Backend>,
    key: String,
    size: u64,
    pos: u64,
    buf: bytes::Bytes,
    at: usize,
    counter: Arc<AtomicU64>,
}

impl Read for Sequential {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.size || out.is_empty() {
                return Ok(0);
            }
            let end = (self.pos + CHUNK).min(self.size);
            self.buf = self
                .store
                .get_range(&self.key, self.pos..end)
                .map_err(io::Error::other)?;
            self.at = 0;
            self.pos = end;
            self.counter.fetch_add(self.buf.len() as u64, Relaxed);
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Hashes and counts what is read through it.
struct Tee<'a, R> {
    inner: &'a mut R,
    hasher: &'a mut blake3::Hasher,
    read: &'a mut u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hasher.update(&out[..n]);
        *self.read += n as u64;
        Ok(n)
    }
}

/// Read and verify pack `id` of `size` bytes (as listed), whose blobs the
/// index lists as `rows`; `counter` counts bytes read (progress).
pub fn verify_pack(
    repo: &Repo,
    id: &PackId,
    size: u64,
    rows: &[BlobRow],
    counter: Arc<AtomicU64>,
) -> PackOutcome {
    let mut out = PackOutcome::default();
    let mut rows: Vec<BlobRow> = rows.to_vec();
    rows.sort_by_key(|r| r.offset);
    let mut src = Sequential {
        store: repo.store().clone(),
        key: crate::backend::key::pack(&id.to_hex()),
        size,
        pos: 0,
        buf: bytes::Bytes::new(),
        at: 0,
        counter,
    };
    let mut hasher = blake3::Hasher::new();
    let mut read = 0u64;
    // Rows from `done` on were not verified by the stream.
    let done = {
        let mut tee = Tee {
            inner: &mut src,
            hasher: &mut hasher,
            read: &mut read,
        };
        match repo.crypto() {
            None => stream(repo, &mut tee, &rows, &mut out),
            Some(c) => {
                let Ok(identity) = c.identity() else {
                    out.problems.push("needs a full key to decrypt".into());
                    return out;
                };
                let opened = age::Decryptor::new(BufReader::with_capacity(1 << 20, &mut tee))
                    .and_then(|d| d.decrypt(std::iter::once(identity as &dyn age::Identity)));
                match opened {
                    Ok(mut plain) => stream(repo, &mut plain, &rows, &mut out),
                    Err(e) => {
                        out.problems
                            .push(format!("age header does not decrypt: {e}"));
                        0
                    }
                }
            }
        }
    };
    // The rest of the file, for the hash.
    let mut tee = Tee {
        inner: &mut src,
        hasher: &mut hasher,
        read: &mut read,
    };
    if let Err(e) = io::copy(&mut tee, &mut io::sink()) {
        out.problems.push(format!("cannot be read to the end: {e}"));
    }
    out.bytes = read;
    if read == size && hasher.finalize().as_bytes() != &id.0 {
        out.problems
            .push("its content does not match its name (BLAKE3)".into());
    }
    if done < rows.len() {
        one_by_one(repo, id, &rows[done..], &mut out);
    }
    out
}

/// Verify the blobs of `rows` (sorted by offset) from a plaintext stream
/// positioned at offset 0; returns how many rows it got through before
/// the stream itself failed (a failed blob check does not stop it).
fn stream(repo: &Repo, r: &mut dyn Read, rows: &[BlobRow], out: &mut PackOutcome) -> usize {
    let mut header = [0u8; format::HEADER_LEN as usize];
    if let Err(e) = r.read_exact(&mut header) {
        out.problems.push(format!("header cannot be read: {e}"));
        return 0;
    }
    if let Err(e) = format::check_header(&header, "pack") {
        out.problems.push(short(&e));
    }
    let mut pos = format::HEADER_LEN;
    let mut buf = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if row.offset < pos {
            // a second row at one offset: the index is checked elsewhere
            continue;
        }
        let skip = row.offset - pos;
        if let Err(e) = io::copy(&mut r.take(skip), &mut io::sink()).and_then(|n| {
            (n == skip)
                .then_some(())
                .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
        }) {
            out.problems
                .push(format!("stream breaks before offset {}: {e}", row.offset));
            return i;
        }
        buf.resize(row.stored_len as usize, 0);
        if let Err(e) = r.read_exact(&mut buf) {
            out.problems
                .push(format!("stream breaks at offset {}: {e}", row.offset));
            return i;
        }
        pos = row.offset + u64::from(row.stored_len);
        match decode(repo, &buf, row) {
            Err(e) if e.is_transport_failure() => out.unread.push((row.id, short(&e))),
            Err(e) => out.bad_blobs.push((row.id, short(&e))),
            Ok(()) => {}
        }
    }
    if let Err(e) = io::copy(r, &mut io::sink()) {
        out.problems
            .push(format!("the trailer region does not read: {e}"));
    }
    rows.len()
}

/// Read `rows` one at a time by offset (after the stream broke).
fn one_by_one(repo: &Repo, id: &PackId, rows: &[BlobRow], out: &mut PackOutcome) {
    let f = match repo.open_pack(id) {
        Ok(f) => f,
        Err(e) => {
            let why = short(&e);
            let to = if e.is_transport_failure() {
                &mut out.unread
            } else {
                &mut out.bad_blobs
            };
            to.extend(rows.iter().map(|r| (r.id, why.clone())));
            return;
        }
    };
    for row in rows {
        let loc = location(id, row);
        let r = repo.decode_with(row.kind, |d| reader::read_blob(&f, &row.id, &loc, d));
        match r {
            Err(e) if e.is_transport_failure() => out.unread.push((row.id, short(&e))),
            Err(e) => out.bad_blobs.push((row.id, short(&e))),
            Ok(_) => {}
        }
    }
}

fn location(pack: &PackId, row: &BlobRow) -> BlobLocation {
    BlobLocation {
        pack: *pack,
        offset: row.offset,
        stored_len: row.stored_len,
        raw_len: row.raw_len,
        compression: row.compression,
    }
}

fn decode(repo: &Repo, stored: &[u8], row: &BlobRow) -> Result<()> {
    let loc = location(&PackId([0; 32]), row);
    repo.decode_with(row.kind, |d| reader::decode_blob(stored, &row.id, &loc, d))
        .map(|_| ())
}
