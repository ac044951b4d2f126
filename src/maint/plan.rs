//! gc's plan (format-spec/gc.md step 5): which copy of each reachable blob
//! to keep, then per pack: keep, condemn, repack, delete or carry. The
//! reachable set (mark.rs) is joined with the index in id order, streamed,
//! so only per-pack counters are held in memory.

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::index::{BlobRow, PackRow, blob_row};
use std::collections::{HashMap, HashSet};

/// `--max-unused`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// Unused bytes left at most this percentage of the repository after gc.
    Percent(f64),
    /// At most this many unused bytes left.
    Bytes(u64),
    /// Repack only tree packs and small packs.
    Unlimited,
}

impl MaxUnused {
    /// Parse `5%`, `100M`, a byte count, or `unlimited`.
    pub fn parse(s: &str) -> std::result::Result<MaxUnused, String> {
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid percentage {s:?}"))?;
            if !(0.0..100.0).contains(&v) {
                return Err(format!(
                    "--max-unused {s}: the percentage must be in 0..100"
                ));
            }
            return Ok(MaxUnused::Percent(v));
        }
        parse_size(s).map(MaxUnused::Bytes)
    }

    /// Unused bytes tolerated when `used` bytes remain (restic's rule:
    /// p/(100-p) × used, i.e. unused ≤ p % of the total).
    pub fn limit(&self, used: u64) -> u64 {
        match *self {
            MaxUnused::Percent(p) => (p / (100.0 - p) * used as f64) as u64,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Unlimited => u64::MAX,
        }
    }
}

/// Parse a size: a byte count with an optional suffix k, M, G, T (powers of
/// 1024, case-insensitive, optional trailing `B`/`iB`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(t);
    let (num, mul) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let mul: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(format!("invalid size {s:?} (use e.g. 500M, 2G)")),
            };
            (&t[..t.len() - 1], mul)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {s:?} (use e.g. 500M, 2G)"))?;
    if n.is_nan() || n < 0.0 {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((n * mul as f64) as u64)
}

/// Per-pack usage by the reachable blobs whose chosen copy is in it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Chosen copies in this pack.
    pub used_blobs: u64,
    /// Their stored bytes.
    pub used_bytes: u64,
    /// Stored bytes of every indexed blob of the pack.
    pub total_bytes: u64,
}

/// The result of joining the reachable set with the index.
#[derive(Debug, Default)]
pub struct Accounting {
    /// Usage by pack row id (every indexed pack has an entry).
    pub usage: HashMap<i64, Usage>,
    /// Condemned packs holding the only copy of a reachable blob.
    pub recovered: HashSet<i64>,
    /// Reachable blobs the index does not know (the first few).
    pub missing: Vec<BlobId>,
    /// How many there are.
    pub missing_count: u64,
    /// Distinct reachable blobs (trees and data).
    pub reachable: u64,
    /// Their stored bytes (one copy each).
    pub reachable_bytes: u64,
}

/// Which copy of a blob is kept: a trusted copy before an untrusted one
/// (write-only.md "Attribution and poisoning": a write-only key's copy may
/// be garbage under the right id, so a copy a full key wrote or verified
/// wins), then the newest live pack holding it, else the newest condemned
/// one (which is then recovered); a copy in a missing pack does not count.
/// Depends only on the packs' state at the start of the run, so every
/// pass agrees.
pub fn choose(rows: &[BlobRow], packs: &HashMap<i64, PackRow>) -> Option<(BlobRow, bool)> {
    let present = |r: &&BlobRow| packs.get(&r.pack).is_some_and(|p| !p.missing);
    let live = |r: &&BlobRow| packs.get(&r.pack).is_some_and(|p| p.condemned.is_none());
    let rank = |r: &&BlobRow| (packs.get(&r.pack).is_some_and(|p| p.trusted), r.pack);
    if let Some(r) = rows.iter().filter(present).filter(live).max_by_key(rank) {
        return Some((*r, false));
    }
    rows.iter()
        .filter(present)
        .max_by_key(rank)
        .map(|r| (*r, true))
}

/// Stream each reachable blob (schema `m`, attached) with its index rows,
/// in id order; a blob without rows comes with an empty slice.
pub fn for_each_reachable(
    conn: &rusqlite::Connection,
    f: &mut dyn FnMut(BlobId, &[BlobRow]) -> Result<()>,
) -> Result<()> {
    let mut st = conn.prepare(
        "SELECT r.id, b.offset, b.stored_len, b.raw_len, b.kind, b.compression, b.pack
         FROM m.reach r LEFT JOIN main.blobs b ON b.id = r.id ORDER BY r.id",
    )?;
    let mut rows = st.query([])?;
    let mut cur: Option<BlobId> = None;
    let mut group: Vec<BlobRow> = Vec::new();
    while let Some(r) = rows.next()? {
        let raw: Vec<u8> = r.get(0)?;
        let id = BlobId(
            <[u8; 32]>::try_from(raw)
                .map_err(|_| Error::Invalid("gc mark database: bad id".into()))?,
        );
        if cur != Some(id) {
            if let Some(prev) = cur {
                f(prev, &group)?;
            }
            cur = Some(id);
            group.clear();
        }
        if let Some(pack) = r.get::<_, Option<i64>>(6)? {
            group.push(blob_row(r, pack)?);
        }
    }
    if let Some(prev) = cur {
        f(prev, &group)?;
    }
    Ok(())
}

/// Pass 1: usage per pack, recovered packs, missing blobs.
pub fn account(conn: &rusqlite::Connection, packs: &HashMap<i64, PackRow>) -> Result<Accounting> {
    let mut acc = Accounting::default();
    {
        let mut st = conn.prepare("SELECT pack, sum(stored_len) FROM blobs GROUP BY pack")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let u = acc.usage.entry(r.get(0)?).or_default();
            u.total_bytes = r.get::<_, i64>(1)?.max(0) as u64;
        }
    }
    for p in packs.keys() {
        acc.usage.entry(*p).or_default();
    }
    for_each_reachable(conn, &mut |id, rows| {
        acc.reachable += 1;
        let Some((row, recovered)) = choose(rows, packs) else {
            acc.missing_count += 1;
            if acc.missing.len() < 5 {
                acc.missing.push(id);
            }
            return Ok(());
        };
        if recovered {
            acc.recovered.insert(row.pack);
        }
        let u = acc.usage.entry(row.pack).or_default();
        u.used_blobs += 1;
        u.used_bytes += u64::from(row.stored_len);
        acc.reachable_bytes += u64::from(row.stored_len);
        Ok(())
    })?;
    Ok(acc)
}

/// What gc does with each pack.
#[derive(Debug, Default)]
pub struct Plan {
    /// Live packs no reachable blob uses: condemned now.
    pub condemn: Vec<i64>,
    /// Partly used packs to rewrite (their used blobs copied, then condemned).
    pub repack: Vec<i64>,
    /// Condemned packs due for deletion (condemned for the grace period, not recovered).
    pub delete: Vec<i64>,
    /// Condemned packs kept condemned (not yet due).
    pub carry: Vec<i64>,
    /// Condemned packs that a snapshot needs again.
    pub recovered: Vec<i64>,
    /// Packs kept as they are.
    pub keep: Vec<i64>,
    /// Partly used packs left alone (within `--max-unused` / `--max-repack`).
    pub keep_partial: Vec<i64>,
}

/// Inputs of the repack choice.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-unused`.
    pub max_unused: MaxUnused,
    /// `--max-repack` (bytes of packs rewritten); `None` = unlimited.
    pub max_repack: Option<u64>,
    /// Condemned since this time or earlier is due (Unix ns).
    pub due_before: i64,
}

/// Classify every pack (format-spec/gc.md step 5).
pub fn plan(packs: &HashMap<i64, PackRow>, acc: &Accounting, lim: &Limits) -> Plan {
    let mut plan = Plan::default();
    let mut candidates: Vec<(&PackRow, Usage)> = Vec::new();
    let (mut used_total, mut unused_total, mut removed_unused) = (0u64, 0u64, 0u64);
    let mut rowids: Vec<&i64> = packs.keys().collect();
    rowids.sort();
    for rowid in rowids {
        let p = &packs[rowid];
        if p.missing {
            continue; // its file is gone: for `check` and `repair`, not gc
        }
        let u = acc.usage.get(rowid).copied().unwrap_or_default();
        let recovered = acc.recovered.contains(rowid);
        if let (Some(since), false) = (p.condemned, recovered) {
            if since <= lim.due_before {
                plan.delete.push(*rowid);
            } else {
                plan.carry.push(*rowid);
            }
            continue;
        }
        if recovered {
            plan.recovered.push(*rowid);
        }
        used_total += u.used_bytes;
        let unused = u.total_bytes.saturating_sub(u.used_bytes);
        unused_total += unused;
        if u.used_blobs == 0 {
            plan.condemn.push(*rowid);
            removed_unused += unused;
        } else if u.used_blobs >= p.blob_count {
            plan.keep.push(*rowid);
        } else {
            candidates.push((p, u));
        }
    }
    choose_repacks(
        &mut plan,
        candidates,
        lim,
        used_total,
        unused_total - removed_unused,
    );
    plan
}

/// restic's choice, mostly: tree packs first, then by unused/used ratio;
/// repack until the unused bytes left are within `--max-unused` or
/// `--max-repack` would be passed. Partly used tree packs are repacked
/// whatever the unused share (within `--max-repack`): they are small and
/// every listing reads them. Unlike restic, a data pack is not rewritten for
/// being small: every backup ends with a small pack, and rewriting a day's
/// data on every gc to merge them costs more than it saves.
fn choose_repacks(
    plan: &mut Plan,
    mut cands: Vec<(&PackRow, Usage)>,
    lim: &Limits,
    used_total: u64,
    mut unused_left: u64,
) {
    cands.sort_by(|(pa, ua), (pb, ub)| {
        let tree = |p: &PackRow| p.kind != BlobKind::Tree;
        tree(pa)
            .cmp(&tree(pb))
            .then_with(|| {
                let ra = u128::from(ua.total_bytes - ua.used_bytes) * u128::from(ub.used_bytes);
                let rb = u128::from(ub.total_bytes - ub.used_bytes) * u128::from(ua.used_bytes);
                rb.cmp(&ra)
            })
            .then(pa.rowid.cmp(&pb.rowid))
    });
    let max_unused = lim.max_unused.limit(used_total);
    let mut repacked = 0u64;
    for (p, u) in cands {
        let reached_repack = lim.max_repack.is_some_and(|m| repacked + p.size > m);
        let reached_unused = unused_left <= max_unused;
        let repack = if reached_repack {
            false
        } else {
            p.kind == BlobKind::Tree || !reached_unused
        };
        if repack {
            plan.repack.push(p.rowid);
            repacked += p.size;
            unused_left = unused_left.saturating_sub(u.total_bytes - u.used_bytes);
        } else {
            plan.keep_partial.push(p.rowid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Compression;
    use crate::id::PackId;

    fn pack(rowid: i64, kind: BlobKind, size: u64, count: u64, condemned: Option<i64>) -> PackRow {
        PackRow {
            rowid,
            id: PackId([rowid as u8; 32]),
            kind,
            size,
            blob_count: count,
            condemned,
            missing: false,
            writer: None,
            trusted: true,
        }
    }

    fn row(pack: i64) -> BlobRow {
        BlobRow {
            id: BlobId([9; 32]),
            pack,
            offset: 8,
            stored_len: 10,
            raw_len: 10,
            kind: BlobKind::Data,
            compression: Compression::None,
        }
    }

    #[test]
    fn the_newest_live_copy_wins_else_a_condemned_one_is_recovered() {
        let packs: HashMap<i64, PackRow> = [
            (1, pack(1, BlobKind::Data, 100, 1, None)),
            (2, pack(2, BlobKind::Data, 100, 1, None)),
            (3, pack(3, BlobKind::Data, 100, 1, Some(5))),
            (4, pack(4, BlobKind::Data, 100, 1, Some(5))),
        ]
        .into_iter()
        .collect();
        let r = choose(&[row(1), row(2), row(3)], &packs).unwrap();
        assert_eq!((r.0.pack, r.1), (2, false));
        let r = choose(&[row(3), row(4)], &packs).unwrap();
        assert_eq!((r.0.pack, r.1), (4, true));
        assert!(choose(&[], &packs).is_none());
        let mut gone = packs.clone();
        gone.get_mut(&2).unwrap().missing = true;
        let r = choose(&[row(1), row(2)], &gone).unwrap();
        assert_eq!(
            (r.0.pack, r.1),
            (1, false),
            "a missing pack's copy never counts"
        );
        assert!(choose(&[row(2)], &gone).is_none());
        // write-only.md: a write-only key's unverified copy never wins over
        // one a full key wrote, however new
        let mut poisoned = packs.clone();
        poisoned.get_mut(&2).unwrap().trusted = false;
        let r = choose(&[row(1), row(2)], &poisoned).unwrap();
        assert_eq!((r.0.pack, r.1), (1, false), "the trusted copy is kept");
        let r = choose(&[row(2)], &poisoned).unwrap();
        assert_eq!((r.0.pack, r.1), (2, false), "the only copy is kept");
    }

    #[test]
    fn classification_and_repack_limits() {
        let m = 1 << 20;
        let packs: HashMap<i64, PackRow> = [
            (1, pack(1, BlobKind::Data, 16 * m, 10, None)), // fully used
            (2, pack(2, BlobKind::Data, 16 * m, 10, None)), // unused
            (3, pack(3, BlobKind::Data, 16 * m, 10, None)), // half used
            (4, pack(4, BlobKind::Tree, m, 10, None)),      // tree, partly used
            (5, pack(5, BlobKind::Data, 16 * m, 10, Some(100))), // due
            (6, pack(6, BlobKind::Data, 16 * m, 10, Some(900))), // not due
            (7, pack(7, BlobKind::Data, 16 * m, 10, Some(100))), // recovered
        ]
        .into_iter()
        .collect();
        let mut acc = Accounting::default();
        let u = |used_blobs, used_bytes| Usage {
            used_blobs,
            used_bytes,
            total_bytes: 16 * m,
        };
        acc.usage.insert(1, u(10, 16 * m));
        acc.usage.insert(2, u(0, 0));
        acc.usage.insert(3, u(5, 8 * m));
        acc.usage.insert(
            4,
            Usage {
                used_blobs: 9,
                used_bytes: m - 1000,
                total_bytes: m,
            },
        );
        acc.usage.insert(7, u(10, 16 * m));
        acc.recovered.insert(7);
        let lim = Limits {
            max_unused: MaxUnused::Percent(5.0),
            max_repack: None,
            due_before: 500,
        };
        let p = plan(&packs, &acc, &lim);
        assert_eq!(p.keep, vec![1, 7]);
        assert_eq!(p.condemn, vec![2]);
        assert_eq!(p.delete, vec![5]);
        assert_eq!(p.carry, vec![6]);
        assert_eq!(p.recovered, vec![7]);
        assert_eq!(p.repack, vec![4, 3]);
        // --max-repack 0 rewrites nothing
        let p = plan(
            &packs,
            &acc,
            &Limits {
                max_repack: Some(0),
                ..lim
            },
        );
        assert!(p.repack.is_empty());
        assert_eq!(p.keep_partial.len(), 2);
        // unlimited unused: only the tree pack is repacked
        let p = plan(
            &packs,
            &acc,
            &Limits {
                max_unused: MaxUnused::Unlimited,
                ..lim
            },
        );
        assert_eq!(p.repack, vec![4]);
    }

    #[test]
    fn sizes_and_percentages_parse() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("12Q").is_err());
        assert_eq!(MaxUnused::parse("5%"), Ok(MaxUnused::Percent(5.0)));
        assert!(MaxUnused::parse("100%").is_err());
        assert_eq!(MaxUnused::parse("unlimited"), Ok(MaxUnused::Unlimited));
        assert_eq!(MaxUnused::Percent(50.0).limit(100), 100);
    }
}
