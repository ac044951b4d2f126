//! Reading packs: the trailer alone (index rebuild), or blobs by location,
//! each checked against its id after decompression (pack.md "Rules").
//! Offsets are plaintext offsets; a [`PackFile`] reads them with positioned
//! reads (plaintext packs: a pack truncated under us gives an error, not a
//! SIGBUS) or by seeking in the age STREAM (encrypted packs).

use super::format::{self, ENTRY_LEN, FOOTER_LEN, PackEntry};
use crate::blob::{self, Compression};
use crate::crypto::agefile::PackFile;
use crate::dict::Dict;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use std::sync::Arc;

/// Read and check the trailer of a pack; returns its plaintext length and
/// entries.
pub fn read_trailer(f: &PackFile, object: &str) -> Result<(u64, Vec<PackEntry>)> {
    let (len, t) = read_trailer_auth(f, object)?;
    Ok((len, t.entries))
}

/// [`read_trailer`], with the authentication section of a version-2 pack
/// (pack.md "Version 2").
pub fn read_trailer_auth(f: &PackFile, object: &str) -> Result<(u64, format::Trailer)> {
    let len = f.len()?;
    if len < format::HEADER_LEN + FOOTER_LEN as u64 {
        return Err(Error::corrupt(object, format!("truncated: {len} bytes")));
    }
    let mut h = [0u8; 8];
    f.read_exact_at(&mut h, 0)?;
    let version = format::check_header(&h, object)?;
    let mut foot = [0u8; FOOTER_LEN];
    f.read_exact_at(&mut foot, len - FOOTER_LEN as u64)?;
    let (count, hash) = format::decode_footer(&foot, len, object, version)?;
    let tlen = count * ENTRY_LEN;
    let alen = format::auth_len(version);
    let mut tail = vec![0u8; tlen + alen];
    f.read_exact_at(&mut tail, len - (FOOTER_LEN + alen + tlen) as u64)?;
    let entries = format::decode_trailer(&tail[..tlen], &hash, len, object, version)?;
    let auth = match version {
        1 => None,
        _ => {
            let mut a = [0u8; format::AUTH_LEN];
            a.copy_from_slice(&tail[tlen..]);
            let a = format::PackAuth::decode(&a, object)?;
            Some((
                a,
                format::auth_message(&hash, count as u32, a.kind, &a.key_id),
            ))
        }
    };
    Ok((len, format::Trailer { entries, auth }))
}

/// Where a blob lives, as the index records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack.
    pub pack: PackId,
    /// Offset in the pack.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// Compression.
    pub compression: Compression,
}

/// How a blob is checked and decoded: the id function of its kind, and the
/// dictionaries with a given zstd id (for compression 2).
pub struct Decode<'a> {
    /// The blob-id function of the expected kind.
    pub verify: &'a dyn Fn(&[u8]) -> BlobId,
    /// The dictionaries with a zstd id.
    pub dicts: &'a dyn Fn(u32) -> Result<Vec<Arc<Dict>>>,
}

/// Decode stored bytes of blob `id` and check the id (every read, pack.md).
pub fn decode_blob(stored: &[u8], id: &BlobId, loc: &BlobLocation, d: &Decode) -> Result<Vec<u8>> {
    let object = || format!("blob {} in pack {}", id.short(), loc.pack.short());
    if loc.compression == Compression::ZstdDict {
        let dict_id = blob::frame_dict_id(stored)
            .ok_or_else(|| Error::corrupt(object(), "a dictionary frame names no dictionary"))?;
        // A storage failure while loading the dictionaries stays one: it
        // says nothing about this blob (check.md "Damaged blobs").
        let dicts = (d.dicts)(dict_id).map_err(|e| {
            if e.is_transport_failure() {
                e
            } else {
                Error::corrupt(object(), format!("needs dictionary {dict_id:08x}: {e}"))
            }
        })?;
        if dicts.is_empty() {
            return Err(Error::corrupt(
                object(),
                format!("needs dictionary {dict_id:08x}, which is not in dicts/"),
            ));
        }
        let mut last = None;
        for dict in dicts {
            match blob::decompress_with(stored, &dict, loc.raw_len as usize, &object) {
                Ok(raw) if (d.verify)(&raw) == *id => return Ok(raw),
                Ok(_) => {
                    last = Some(Error::corrupt(
                        object(),
                        format!(
                            "content does not match its id (decoded with dicts/{})",
                            dict.file
                        ),
                    ))
                }
                Err(e) => {
                    last = Some(Error::corrupt(
                        object(),
                        format!("does not decode with dicts/{}: {e}", dict.file),
                    ))
                }
            }
        }
        return Err(last.unwrap_or_else(|| Error::corrupt(object(), "no dictionary")));
    }
    let raw = blob::decompress(stored, loc.compression, loc.raw_len as usize, &object)?;
    if (d.verify)(&raw) != *id {
        return Err(Error::corrupt(object(), "content does not match its id"));
    }
    Ok(raw)
}

/// Read one blob from an open pack.
pub fn read_blob(file: &PackFile, id: &BlobId, loc: &BlobLocation, d: &Decode) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; loc.stored_len as usize];
    file.read_exact_at(&mut buf, loc.offset)?;
    decode_blob(&buf, id, loc, d)
}

/// Split items stored in one pack, sorted by offset, into runs close enough
/// to read with one `pread`: a gap of at most 256 KiB, at most 32 MiB a run.
/// `span` gives an item's (offset, stored length).
pub fn runs<T>(items: &[T], span: impl Fn(&T) -> (u64, u32)) -> Vec<&[T]> {
    const GAP: u64 = 256 << 10;
    const MAX_RUN: u64 = 32 << 20;
    let end = |t: &T| {
        let (o, l) = span(t);
        o + u64::from(l)
    };
    let mut out = Vec::new();
    let mut s = 0;
    for i in 1..=items.len() {
        let split = i == items.len() || {
            let prev_end = end(&items[i - 1]);
            span(&items[i]).0 > prev_end + GAP || prev_end - span(&items[s]).0 > MAX_RUN
        };
        if split {
            out.push(&items[s..i]);
            s = i;
        }
    }
    out
}

/// Read one run of blobs (from [`runs`]) with a single read; returns the
/// bytes and the offset they start at.
pub fn read_run<T>(
    file: &PackFile,
    run: &[T],
    span: impl Fn(&T) -> (u64, u32),
) -> Result<(Vec<u8>, u64)> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Ok((Vec::new(), 0));
    };
    let start = span(first).0;
    let (lo, ll) = span(last);
    let mut buf = vec![0u8; (lo + u64::from(ll) - start) as usize];
    match file.read_exact_at(&mut buf, start) {
        Ok(()) => {}
        // One read spans the gaps between the items too. In an encrypted
        // pack a damaged age chunk in a gap (blobs nobody asked for) fails
        // it although every item is intact: read the items one by one, so
        // only a damaged item fails (tests/it/battery_flips.rs). Gaps stay 0.
        Err(_) if run.len() > 1 => {
            for t in run {
                let (o, l) = span(t);
                let at = (o - start) as usize;
                let dst = buf
                    .get_mut(at..at + l as usize)
                    .ok_or_else(|| Error::Invalid("blob run out of order".into()))?;
                file.read_exact_at(dst, o)?;
            }
        }
        Err(e) => return Err(e),
    }
    Ok((buf, start))
}

/// Bytes of a run that [`for_each_in_run`] reads at once (one blob larger
/// than this is read alone).
pub const WINDOW: u64 = 2 << 20;

/// Call `f` on each item of one run (from [`runs`]) with its stored bytes,
/// in order, holding at most [`WINDOW`] bytes of the run at a time (plus
/// one larger item): the run is read window by window through one reader
/// ([`PackFile::with_sequential`]), so memory does not grow with the run
/// while a sequential read of an encrypted pack on remote storage keeps
/// its large ranged reads. As in [`read_run`], a window that fails is read
/// again item by item, so that only a damaged item fails.
pub fn for_each_in_run<T>(
    file: &PackFile,
    run: &[T],
    span: impl Fn(&T) -> (u64, u32),
    mut f: impl FnMut(&T, &[u8]) -> Result<()>,
) -> Result<()> {
    let out_of_order = || Error::Invalid("blob run out of order".into());
    let end = |t: &T| {
        let (o, l) = span(t);
        o + u64::from(l)
    };
    file.with_sequential(|read| {
        let mut buf = Vec::new();
        let mut rest = run;
        while let Some(first) = rest.first() {
            let start = span(first).0;
            let n = 1 + rest[1..]
                .iter()
                .take_while(|t| end(t).saturating_sub(start) <= WINDOW)
                .count();
            let (window, tail) = rest.split_at(n);
            rest = tail;
            let last = window.last().map_or(start, &end);
            let len = usize::try_from(last.checked_sub(start).ok_or_else(out_of_order)?)
                .map_err(|_| out_of_order())?;
            buf.clear();
            buf.resize(len, 0);
            match read(&mut buf, start) {
                Ok(()) => {}
                Err(_) if window.len() > 1 => {
                    for t in window {
                        let (o, l) = span(t);
                        let at = o.checked_sub(start).ok_or_else(out_of_order)? as usize;
                        let dst = buf.get_mut(at..at + l as usize).ok_or_else(out_of_order)?;
                        file.read_exact_at(dst, o)?;
                    }
                }
                Err(e) => return Err(e),
            }
            for t in window {
                let (o, l) = span(t);
                let at = o.checked_sub(start).ok_or_else(out_of_order)? as usize;
                f(t, buf.get(at..at + l as usize).ok_or_else(out_of_order)?)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, LocalBackend};

    /// One read of a run crosses the gaps between its items: in an
    /// encrypted pack a damaged age chunk there (a blob nobody asked for)
    /// must not fail the items, which are intact; a damaged item still
    /// fails. (Found by tests/it/battery_flips.rs: a restore excluding the
    /// damaged file failed on its neighbours.)
    #[test]
    fn a_damaged_chunk_in_the_gap_of_a_run_fails_only_damaged_items() {
        let crypto = Arc::new(crate::crypto::Crypto::generate().unwrap());
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut ct = crypto.encrypt(&plain).unwrap();
        // header up to "--- <mac>\n", a 16-byte nonce, then 64 KiB chunks
        // each followed by a 16-byte tag: damage chunk 2's tag
        let mac = ct.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
        let hlen = mac + ct[mac..].iter().position(|&b| b == b'\n').unwrap() + 1;
        ct[hlen + 16 + 3 * 65552 - 1] ^= 1;
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path());
        b.put_new("pack", &ct).unwrap();
        let f = PackFile::open(&b, "pack", "pack".into(), Some(&crypto)).unwrap();
        let items = [(1000u64, 1000u32), (250_000, 1000)];
        let run = runs(&items, |t| *t);
        assert_eq!(run.len(), 1, "one run across the gap");
        let (buf, start) = read_run(&f, run[0], |t| *t).unwrap();
        for (o, l) in items {
            let at = (o - start) as usize;
            assert_eq!(
                &buf[at..at + l as usize],
                &plain[o as usize..o as usize + l as usize]
            );
        }
        let damaged = [(140_000u64, 1000u32), (250_000, 1000)];
        assert!(read_run(&f, &damaged, |t| *t).is_err());
    }

    /// [`for_each_in_run`] gives each item its bytes, window by window
    /// (items across several windows, one item larger than a window), and
    /// like [`read_run`] fails only a damaged item, not its neighbours
    /// across a damaged gap.
    #[test]
    fn for_each_in_run_streams_windows_and_fails_only_damaged_items() {
        let crypto = Arc::new(crate::crypto::Crypto::generate().unwrap());
        let plain: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut ct = crypto.encrypt(&plain).unwrap();
        let mac = ct.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
        let hlen = mac + ct[mac..].iter().position(|&b| b == b'\n').unwrap() + 1;
        ct[hlen + 16 + 3 * 65552 - 1] ^= 1; // chunk 2 (bytes 131072..196608)
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path());
        b.put_new("pack", &ct).unwrap();
        let f = PackFile::open(&b, "pack", "pack".into(), Some(&crypto)).unwrap();
        let items = [
            (1000u64, 1000u32),
            (250_000, 1000),
            (300_000, 1_500_000),
            (1_900_000, 2_500_000),
            (4_400_000, 1_000_000),
        ];
        let run = runs(&items, |t| *t);
        assert_eq!(run.len(), 1, "one run across the gaps");
        let mut seen = Vec::new();
        for_each_in_run(
            &f,
            run[0],
            |t| *t,
            |&(o, l), bytes| {
                assert_eq!(bytes, &plain[o as usize..(o + u64::from(l)) as usize]);
                seen.push(o);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, items.iter().map(|t| t.0).collect::<Vec<_>>());
        let damaged = [(140_000u64, 1000u32), (250_000, 1000)];
        let mut got = 0;
        let r = for_each_in_run(
            &f,
            &damaged,
            |t| *t,
            |_, _| {
                got += 1;
                Ok(())
            },
        );
        assert!(r.is_err());
        assert_eq!(got, 0, "the damaged item fails before any is given");
    }
}
