//! Size classes of encrypted tree packs (format-spec/pack.md "Padding";
//! threat-model.md "Compression"). Small files are stored inline in their
//! directory's tree blob and compressed with it, so the length of a tree
//! pack says how well a chosen file compressed next to a secret one (the
//! CRIME attack, for backups). An encrypted tree pack's plaintext is
//! therefore padded up to a size class: a multiple of 4 KiB, or above
//! 128 KiB of 1/32 of the largest power of two below its length (at most
//! 3.2 % more; Padmé's step for such lengths). The padding is a zstd skippable frame at the end of the
//! last blob's stored bytes, which every zstd decoder skips: no reader
//! changes, no format version.

/// The smallest size-class step: 4 KiB.
pub const MIN_STEP: u64 = 4096;

/// A zstd skippable frame's header: magic (LE) and content length (LE).
const SKIPPABLE_HEADER: u64 = 8;

/// The first magic number of zstd skippable frames (0x184D2A50..=5F).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;

/// The size class of a pack of `len` plaintext bytes: the smallest
/// multiple of the step at or above `len`.
pub fn class(len: u64) -> u64 {
    let log2 = 63 - u64::from(len.max(1).leading_zeros());
    let step = MIN_STEP.max(1u64 << log2.saturating_sub(5));
    len.div_ceil(step).saturating_mul(step)
}

/// How many bytes of padding bring a pack of `len` bytes to its class;
/// 0, or at least a skippable frame's header (else the next class).
pub fn padding(len: u64) -> u64 {
    match class(len) - len {
        0 => 0,
        p if p >= SKIPPABLE_HEADER => p,
        _ => class(len + SKIPPABLE_HEADER) - len,
    }
}

/// A zstd skippable frame of `total` bytes (at least 8) of zeros.
pub fn skippable_frame(total: u64) -> Option<Vec<u8>> {
    let content = u32::try_from(total.checked_sub(SKIPPABLE_HEADER)?).ok()?;
    let mut f = Vec::with_capacity(total as usize);
    f.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    f.extend_from_slice(&content.to_le_bytes());
    f.resize(total as usize, 0);
    Some(f)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn classes_are_4k_multiples_then_a_32nd_of_a_power_of_two() {
        assert_eq!(class(1), 4096);
        assert_eq!(class(779), 4096);
        assert_eq!(class(820), 4096);
        assert_eq!(class(4096), 4096);
        assert_eq!(class(4097), 8192);
        assert_eq!(class(200_000), 200_704);
        assert_eq!(class(1 << 20), 1 << 20);
        assert_eq!(class((1 << 20) + 1), (1 << 20) + (1 << 15));
        for len in [1u64, 100, 4095, 4097, 70_000, 3 << 20, 17 << 20] {
            let c = class(len);
            assert!(
                c >= len && (c - len) * 32 <= len.max(MIN_STEP * 32),
                "{len} -> {c}"
            );
            let p = padding(len);
            assert!(p == 0 || p >= 8, "{len}: {p}");
            assert_eq!(class(len + p), len + p, "{len} + {p} is a class");
        }
    }

    #[test]
    fn a_skippable_frame_is_skipped_by_zstd() {
        let raw = b"hello hello hello hello hello".to_vec();
        let mut stored = zstd::bulk::compress(&raw, 3).unwrap();
        stored.extend(skippable_frame(100).unwrap());
        assert_eq!(zstd::bulk::decompress(&stored, raw.len()).unwrap(), raw);
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        assert_eq!(d.decompress(&stored, raw.len()).unwrap(), raw);
        assert!(skippable_frame(7).is_none());
    }
}
