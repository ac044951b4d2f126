//! Content-defined chunking (format-spec/chunker.md): FastCDC v2020 over a
//! streaming buffer. Sources are read with `read`, never mmapped, so a file
//! truncated while we read it gives a short read, not a SIGBUS.

use bincode::{Decode, Encode};
use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use std::borrow::Cow;
use std::io::{self, Read};

/// FastCDC parameters (format-spec/chunker.md), as the repository config
/// stores them (objects.md "Config body").
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes.
    pub min: u32,
    /// Average (target) chunk size in bytes.
    pub avg: u32,
    /// Maximum chunk size in bytes.
    pub max: u32,
    /// FastCDC normalization level.
    pub normalization: u8,
    /// Gear-table seed; 0 in plaintext repositories.
    pub seed: u64,
}

/// Default chunk sizes, chosen by measurement (README "Choosing chunk sizes").
pub const DEFAULT_CHUNK_MIN: u32 = 64 * 1024;
/// See [`DEFAULT_CHUNK_MIN`].
pub const DEFAULT_CHUNK_AVG: u32 = 256 * 1024;
/// See [`DEFAULT_CHUNK_MIN`].
pub const DEFAULT_CHUNK_MAX: u32 = 1024 * 1024;

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: DEFAULT_CHUNK_MIN,
            avg: DEFAULT_CHUNK_AVG,
            max: DEFAULT_CHUNK_MAX,
            normalization: 1,
            seed: 0,
        }
    }
}

/// A configured chunker; cheap to share between threads.
#[derive(Clone, Debug)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Chunker {
    /// Build from repository parameters; rejects sizes FastCDC does not support.
    pub fn new(p: &ChunkerParams) -> Result<Self, String> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && [min, avg, max].iter().all(|v| v % 2 == 0);
        if !ok {
            return Err(format!(
                "unsupported chunk sizes min={min} avg={avg} max={max} (need even sizes, \
                 {}..={} <= {}..={} <= {}..={})",
                f::MINIMUM_MIN,
                f::MINIMUM_MAX,
                f::AVERAGE_MIN,
                f::AVERAGE_MAX,
                f::MAXIMUM_MIN,
                f::MAXIMUM_MAX
            ));
        }
        let level = match p.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            3 => Normalization::Level3,
            n => return Err(format!("unsupported normalization level {n}")),
        };
        let (mask_s, mask_l) = select_masks(avg, level);
        let (gear, gear_ls) = get_gear_with_seed(p.seed);
        Ok(Chunker {
            min,
            avg,
            max,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        })
    }

    /// Largest chunk this chunker emits.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the chunk starting at `buf[0]`. The caller passes at least
    /// `max` bytes unless `buf` holds the rest of the input.
    pub fn cut(&self, buf: &[u8]) -> usize {
        let (_, n) = cut_gear(
            buf,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n
    }

    /// Stream `src` and call `f` on each chunk in order. Stops at EOF or at the
    /// first error of `f`. `size_hint` (e.g. the file size) sizes the buffer,
    /// so a small file costs a small allocation; the buffer grows if the
    /// source turns out larger. Returns the bytes read.
    pub fn stream<R: Read, E: From<io::Error>>(
        &self,
        mut src: R,
        size_hint: u64,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let limit = self.max * 4;
        let first = usize::try_from(size_hint.saturating_add(1))
            .unwrap_or(limit)
            .clamp(4096, limit);
        let mut buf = vec![0u8; first];
        let (mut start, mut end) = (0usize, 0usize);
        let mut eof = false;
        let mut total = 0u64;
        loop {
            // Fill until `max` bytes are available after `start`, or EOF.
            while !eof && end - start < self.max {
                if end == buf.len() {
                    if start > 0 {
                        buf.copy_within(start..end, 0);
                        end -= start;
                        start = 0;
                    } else {
                        let grown = (buf.len() * 2).min(limit).max(self.max);
                        buf.resize(grown, 0);
                    }
                }
                match src.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        end += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if start == end {
                return Ok(total);
            }
            let n = self.cut(&buf[start..end]);
            f(&buf[start..start + n])?;
            start += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(min: u32, avg: u32, max: u32) -> ChunkerParams {
        ChunkerParams {
            min,
            avg,
            max,
            normalization: 1,
            seed: 0,
        }
    }

    #[test]
    fn stream_matches_whole_buffer_chunking() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let c = Chunker::new(&params(4096, 16384, 65536)).unwrap();
        let expect: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, 4096, 16384, 65536)
            .map(|c| c.length)
            .collect();
        // a reader that returns odd-sized short reads
        struct Jumpy<'a>(&'a [u8], usize);
        impl Read for Jumpy<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                self.1 += 1;
                let n = out.len().min(self.0.len()).min(1 + self.1 * 7919 % 100_000);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut got = Vec::new();
        let total = c
            .stream(Jumpy(&data, 0), 10, |ch| -> io::Result<()> {
                got.push(ch.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(total, data.len() as u64);
        assert_eq!(got, expect);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(Chunker::new(&params(10, 20, 30)).is_err());
        assert!(Chunker::new(&params(65536, 16384, 1 << 20)).is_err());
    }
}
