//! Blob codec: zstd compression or raw storage (format-spec/pack.md "Blob
//! compression"). Pure functions, no I/O.

use crate::error::{Error, Result};
use std::cell::RefCell;

/// How a blob's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// stored == raw
    None = 0,
    /// one zstd frame
    Zstd = 1,
    /// one zstd frame compressed with a dictionary of `dicts/`, named by
    /// the frame header's dictionary id (format 2)
    ZstdDict = 2,
}

impl Compression {
    /// Its name in reports (`cat --raw pack`): `none`, `zstd`, `zstd-dict`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
            Compression::ZstdDict => "zstd-dict",
        }
    }

    /// Decode the trailer byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            2 => Some(Compression::ZstdDict),
            _ => None,
        }
    }
}

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// File content.
    Data = 0,
    /// A directory tree.
    Tree = 1,
}

impl BlobKind {
    /// Its name in reports: `data` or `tree`.
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        }
    }

    /// Decode the trailer byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Largest raw blob accepted (pack.md).
pub const MAX_RAW: usize = 64 << 20;
/// Largest stored blob accepted.
pub const MAX_STORED: usize = MAX_RAW + (64 << 10);

/// A compressor per thread and (level, dictionary file).
type Cached<T> = RefCell<Option<((i32, String), T)>>;

thread_local! {
    static COMPRESSOR: Cached<zstd::bulk::Compressor<'static>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static DICT_DECOMPRESSOR: Cached<zstd::bulk::Decompressor<'static>> = const { RefCell::new(None) };
}

/// Compress `raw` at `level` (with `dict`, for a blob of at most
/// [`crate::dict::DICT_MAX_BLOB`] bytes), or keep it raw when that does not
/// pay. Returns `None` in the second field when the blob is to be stored
/// raw.
pub fn compress(
    raw: &[u8],
    level: i32,
    dict: Option<&crate::dict::Dict>,
) -> (Compression, Option<Vec<u8>>) {
    if level == 0 || raw.len() < 64 {
        return (Compression::None, None);
    }
    let dict = dict.filter(|_| raw.len() <= crate::dict::DICT_MAX_BLOB);
    let key = (level, dict.map(|d| d.file.clone()).unwrap_or_default());
    let out = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(k, _)| k) != Some(&key) {
            let z = match dict {
                Some(d) => zstd::bulk::Compressor::with_dictionary(level, &d.bytes),
                None => zstd::bulk::Compressor::new(level),
            };
            *c = z.ok().map(|z| (key, z));
        }
        let (_, z) = c.as_mut()?;
        z.compress(raw).ok()
    });
    let comp = if dict.is_some() {
        Compression::ZstdDict
    } else {
        Compression::Zstd
    };
    match out {
        Some(v) if v.len() + raw.len() / 64 < raw.len() => (comp, Some(v)),
        _ => (Compression::None, None),
    }
}

/// The zstd id of the dictionary a compression-2 frame needs.
pub fn frame_dict_id(stored: &[u8]) -> Option<u32> {
    zstd::zstd_safe::get_dict_id_from_frame(stored).map(|n| n.get())
}

/// Decompress a compression-2 frame with `dict` to exactly `raw_len` bytes.
pub fn decompress_with(
    stored: &[u8],
    dict: &crate::dict::Dict,
    raw_len: usize,
    object: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    if raw_len > MAX_RAW {
        return Err(Error::corrupt(
            object(),
            format!("raw length {raw_len} too large"),
        ));
    }
    let key = (0, dict.file.clone());
    let out = DICT_DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.as_ref().map(|(k, _)| k) != Some(&key) {
            *d = zstd::bulk::Decompressor::with_dictionary(&dict.bytes)
                .ok()
                .map(|z| (key, z));
        }
        match d.as_mut() {
            Some((_, z)) => z.decompress(stored, raw_len),
            None => Err(std::io::Error::other("cannot load the dictionary")),
        }
    });
    let out = out.map_err(|e| Error::corrupt(object(), format!("zstd: {e}")))?;
    if out.len() != raw_len {
        return Err(Error::corrupt(
            object(),
            format!("decompressed to {} bytes, expected {raw_len}", out.len()),
        ));
    }
    Ok(out)
}

/// Decode stored bytes to exactly `raw_len` bytes. `object` names the blob in errors.
pub fn decompress(
    stored: &[u8],
    comp: Compression,
    raw_len: usize,
    object: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    if raw_len > MAX_RAW {
        return Err(Error::corrupt(
            object(),
            format!("raw length {raw_len} too large"),
        ));
    }
    match comp {
        Compression::ZstdDict => Err(Error::corrupt(object(), "needs a dictionary")),
        Compression::None => {
            if stored.len() != raw_len {
                return Err(Error::corrupt(
                    object(),
                    "stored length differs from raw length",
                ));
            }
            Ok(stored.to_vec())
        }
        Compression::Zstd => {
            let out = DECOMPRESSOR.with(|d| {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = zstd::bulk::Decompressor::new().ok();
                }
                match d.as_mut() {
                    Some(z) => z.decompress(stored, raw_len),
                    None => zstd::bulk::decompress(stored, raw_len),
                }
            });
            let out = out.map_err(|e| Error::corrupt(object(), format!("zstd: {e}")))?;
            if out.len() != raw_len {
                return Err(Error::corrupt(
                    object(),
                    format!("decompressed to {} bytes, expected {raw_len}", out.len()),
                ));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_fallback() {
        let text =
            b"hello hello hello hello hello hello hello hello hello hello hello hello".repeat(20);
        let (c, s) = compress(&text, 3, None);
        assert_eq!(c, Compression::Zstd);
        let s = s.unwrap();
        assert!(s.len() < text.len());
        assert_eq!(decompress(&s, c, text.len(), &|| "t".into()).unwrap(), text);
        // wrong raw length is an error, not a panic
        assert!(decompress(&s, c, text.len() - 1, &|| "t".into()).is_err());
        let mut noise = vec![0u8; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        assert_eq!(compress(&noise, 3, None).0, Compression::None);
        assert!(decompress(b"garbage", Compression::Zstd, 10, &|| "t".into()).is_err());
    }
}
