//! Which packs `check --read-data…` reads: all, part N of M (restic's
//! `--read-data-subset N/M`: a pack's part is fixed by its id, so parts 1
//! to M over M runs read every pack exactly once), a random percentage or
//! a random amount of bytes; `--max-age` first leaves out packs verified
//! recently (state.rs). `run` picks the packs verified longest ago
//! ([`Order::Oldest`]), so its daily subset covers everything in turn.

use crate::id::PackId;
use std::collections::BTreeMap;

/// How much of the repository to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Every pack.
    All,
    /// Part `n` (1-based) of `m`.
    Part {
        /// Which part, 1..=m.
        n: u32,
        /// How many parts.
        m: u32,
    },
    /// This percentage of the packs (0 < p ≤ 100), at random.
    Percent(f64),
    /// Packs adding up to at most this many bytes (at least one), at random.
    Bytes(u64),
}

impl Subset {
    /// Parse `N/M`, `P%` or a size (`500M`, `2G`).
    pub fn parse(s: &str) -> Result<Subset, String> {
        let bad = || {
            format!("{s:?}: expected a part (\"1/7\"), a percentage (\"5%\") or a size (\"500M\")")
        };
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return if v > 0.0 && v <= 100.0 {
                Ok(Subset::Percent(v))
            } else {
                Err(bad())
            };
        }
        if let Some((n, m)) = t.split_once('/') {
            let (n, m): (u32, u32) = (
                n.trim().parse().map_err(|_| bad())?,
                m.trim().parse().map_err(|_| bad())?,
            );
            return if n >= 1 && n <= m {
                Ok(Subset::Part { n, m })
            } else {
                Err(bad())
            };
        }
        match crate::maint::plan::parse_size(t) {
            Ok(b) if b > 0 => Ok(Subset::Bytes(b)),
            _ => Err(bad()),
        }
    }
}

/// The part (1..=m) a pack belongs to: its id's first four bytes, big
/// endian, modulo `m`, plus one.
pub fn part_of(pack: &PackId, m: u32) -> u32 {
    let x = u32::from_be_bytes([pack.0[0], pack.0[1], pack.0[2], pack.0[3]]);
    x % m.max(1) + 1
}

/// In which order packs are picked for a percentage or a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// At random (`check`).
    Random,
    /// Never verified first, then verified longest ago (`run`).
    Oldest,
}

/// Choose packs from `packs` (id, size). `verified` maps a pack to when
/// it was last verified (Unix s); `fresh_after`, if set, leaves out packs
/// verified after that time. `seed` orders the random picks.
pub fn select(
    packs: &[(PackId, u64)],
    subset: Subset,
    order: Order,
    verified: &BTreeMap<PackId, i64>,
    fresh_after: Option<i64>,
    seed: &[u8; 32],
) -> Vec<(PackId, u64)> {
    let total = packs.len();
    let mut cand: Vec<(PackId, u64)> = packs
        .iter()
        .filter(|(p, _)| match (fresh_after, verified.get(p)) {
            (Some(after), Some(t)) => *t <= after,
            _ => true,
        })
        .copied()
        .collect();
    let key = |p: &PackId| {
        let mut h = blake3::Hasher::new_keyed(seed);
        h.update(&p.0);
        *h.finalize().as_bytes()
    };
    match subset {
        Subset::All => return cand,
        Subset::Part { n, m } if order == Order::Random => {
            cand.retain(|(p, _)| part_of(p, m) == n);
            return cand;
        }
        _ => {}
    }
    match order {
        Order::Random => cand.sort_by_cached_key(|(p, _)| key(p)),
        Order::Oldest => {
            cand.sort_by_cached_key(|(p, _)| (verified.get(p).copied().unwrap_or(i64::MIN), key(p)))
        }
    }
    match subset {
        Subset::Percent(pc) => {
            let n = ((total as f64) * pc / 100.0).ceil() as usize;
            cand.truncate(n.max(1));
        }
        Subset::Part { m, .. } => {
            // `run` with "n/m": a 1/m share, the packs verified longest ago.
            cand.truncate(total.div_ceil(m.max(1) as usize).max(1));
        }
        Subset::Bytes(limit) => {
            let mut sum = 0u64;
            let mut keep = 0;
            for (_, size) in &cand {
                if keep > 0 && sum + size > limit {
                    break;
                }
                sum += size;
                keep += 1;
            }
            cand.truncate(keep);
        }
        Subset::All => {}
    }
    cand
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packs(n: u8) -> Vec<(PackId, u64)> {
        (0..n)
            .map(|i| (PackId(*blake3::hash(&[i]).as_bytes()), 100))
            .collect()
    }

    #[test]
    fn parts_cover_every_pack_once() {
        let all = packs(50);
        let mut seen = Vec::new();
        for n in 1..=7 {
            let got = select(
                &all,
                Subset::Part { n, m: 7 },
                Order::Random,
                &BTreeMap::new(),
                None,
                &[0; 32],
            );
            seen.extend(got.into_iter().map(|p| p.0));
        }
        seen.sort();
        let mut want: Vec<PackId> = all.iter().map(|p| p.0).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn parse_forms() {
        assert_eq!(Subset::parse("2/5"), Ok(Subset::Part { n: 2, m: 5 }));
        assert_eq!(Subset::parse("5%"), Ok(Subset::Percent(5.0)));
        assert_eq!(Subset::parse("1k"), Ok(Subset::Bytes(1024)));
        for bad in ["0/5", "6/5", "0%", "101%", "x", "0"] {
            assert!(Subset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_percentages_and_oldest_first() {
        let all = packs(10);
        let none = BTreeMap::new();
        assert_eq!(
            select(
                &all,
                Subset::Percent(25.0),
                Order::Random,
                &none,
                None,
                &[1; 32]
            )
            .len(),
            3
        );
        assert_eq!(
            select(
                &all,
                Subset::Bytes(250),
                Order::Random,
                &none,
                None,
                &[1; 32]
            )
            .len(),
            2
        );
        assert_eq!(
            select(&all, Subset::Bytes(1), Order::Random, &none, None, &[1; 32]).len(),
            1
        );
        let verified: BTreeMap<PackId, i64> = all[1..].iter().map(|p| (p.0, 5)).collect();
        let got = select(
            &all,
            Subset::Part { n: 1, m: 10 },
            Order::Oldest,
            &verified,
            None,
            &[1; 32],
        );
        assert_eq!(got, vec![all[0]]);
        let fresh = select(
            &all,
            Subset::All,
            Order::Random,
            &verified,
            Some(4),
            &[1; 32],
        );
        assert_eq!(fresh, vec![all[0]]);
    }
}
