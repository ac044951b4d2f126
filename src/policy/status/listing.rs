//! The names in `snapshots/`, for status (issue 27). After a new snapshot,
//! reading that directory is most of what status costs at 10 000
//! snapshots (on a local repository the kernel's directory read alone
//! takes a few milliseconds), so a [`Lister`] reads it on a second
//! thread, started right after the repository opens, while status does
//! what does not need the names: the state files, the time zone, the
//! signers, the check state, opening the status rows and a blob reader.
//! The thread sends the keys in batches; the status thread parses them as
//! they come, while the thread reads the next ones. Status starts one
//! only when the saved report's stamp of the directory (flat.rs) is not
//! the directory's (`super::Early`): with nothing new it lists nothing.
//!
//! The names come back as [`Names`]: in parts by first byte (one pass),
//! each part then sorted and digested on both cores. The parts' digests
//! are what the status rows compare a listing by (rows.rs) and what the
//! report's key is made of (flat.rs), so no later step hashes 10 000 ids
//! again.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

/// A listing on another thread: it sends the keys in batches (one per
/// line), parsed here as they come, while it reads the next ones.
pub(super) struct Lister {
    keys: Receiver<String>,
    done: JoinHandle<Result<()>>,
}

/// Bytes of keys per batch (about 200 keys).
const BATCH: usize = 16 << 10;

impl Lister {
    /// Start listing `snapshots/` of `store` on another thread (`None`:
    /// no thread could start).
    pub(super) fn start(store: Arc<dyn Backend>) -> Option<Lister> {
        let (tx, keys) = std::sync::mpsc::channel();
        let done = std::thread::Builder::new()
            .name("strata-status-list".into())
            .spawn(move || {
                let mut batch = String::with_capacity(BATCH + 256);
                store.list_keys("snapshots", &mut |k| {
                    // keys are [A-Za-z0-9._-/]: no newline in one
                    batch.push_str(k);
                    batch.push('\n');
                    if batch.len() >= BATCH {
                        let full =
                            std::mem::replace(&mut batch, String::with_capacity(BATCH + 256));
                        // the receiver gone: status failed, nothing to do
                        let _ = tx.send(full);
                    }
                })?;
                if !batch.is_empty() {
                    let _ = tx.send(batch);
                }
                Ok(())
            })
            .ok()?;
        Some(Lister { keys, done })
    }

    /// Is it still listing?
    pub(super) fn running(&self) -> bool {
        !self.done.is_finished()
    }

    fn ids(self) -> Result<Vec<SnapshotId>> {
        let mut ids = Vec::new();
        // until the thread ends and drops its sender
        for batch in self.keys.iter() {
            ids.extend(batch.lines().filter_map(id_of));
        }
        self.done.join().unwrap_or_else(|_| {
            Err(Error::Internal(
                "the thread listing snapshots/ panicked".into(),
            ))
        })?;
        Ok(ids)
    }
}

/// The names of `store`'s `snapshots/`: from `lister`, else listed on
/// this thread.
pub(super) fn names(lister: Option<Lister>, store: &dyn Backend) -> Result<Names> {
    let ids = match lister {
        Some(l) => l.ids()?,
        None => list(store)?,
    };
    Ok(Names::from_parted(group(ids)))
}

/// The snapshot id a key of `snapshots/` names, if it does.
fn id_of(key: &str) -> Option<SnapshotId> {
    key.rsplit('/').next().and_then(SnapshotId::from_hex)
}

/// Ids grouped by first byte: part `p` is `ids[ends[p - 1]..ends[p]]`
/// (from 0 for part 0), unsorted within.
struct Parted {
    ids: Vec<SnapshotId>,
    ends: [usize; 256],
}

/// The names in `snapshots/` that are snapshot ids (no stat per
/// manifest), listed on this thread.
fn list(store: &dyn Backend) -> Result<Vec<SnapshotId>> {
    let mut ids: Vec<SnapshotId> = Vec::new();
    store.list_keys("snapshots", &mut |k| ids.extend(id_of(k)))?;
    Ok(ids)
}

/// A counting sort of `ids` by first byte.
fn group(ids: Vec<SnapshotId>) -> Parted {
    let mut ends = [0usize; 256];
    for id in &ids {
        ends[usize::from(id.0[0])] += 1;
    }
    let mut at = [0usize; 256];
    let mut sum = 0;
    for (a, e) in at.iter_mut().zip(ends.iter_mut()) {
        *a = sum;
        sum += *e;
        *e = sum;
    }
    let mut out = vec![SnapshotId([0; 32]); ids.len()];
    for id in ids {
        let slot = &mut at[usize::from(id.0[0])];
        out[*slot] = id;
        *slot += 1;
    }
    Parted { ids: out, ends }
}

/// The snapshot ids listed, sorted (as their bytes, what `Ord` gives and
/// `list_names` lists), with each part's digest.
pub(super) struct Names {
    pub ids: Vec<SnapshotId>,
    /// Per first byte: BLAKE3 of the ids of that part, one after the other
    /// (of nothing for an empty part).
    pub parts: Vec<[u8; 32]>,
}

/// From this many ids on, the parts are sorted and digested on two
/// threads.
const PARALLEL: usize = 2048;

impl Names {
    /// Sort each part of `p` and digest it.
    fn from_parted(p: Parted) -> Names {
        let Parted { mut ids, ends } = p;
        let mut parts = vec![[0u8; 32]; 256];
        // split at the part where half the ids are behind
        let half = ends.partition_point(|&e| e < ids.len() / 2);
        if ids.len() < PARALLEL || half == 0 || half >= 255 {
            sort_and_digest(&mut ids, &ends, 0, &mut parts);
        } else {
            let (lo_ids, hi_ids) = ids.split_at_mut(ends[half]);
            let (lo_parts, hi_parts) = parts.split_at_mut(half + 1);
            rayon::join(
                || sort_and_digest(lo_ids, &ends, 0, lo_parts),
                || sort_and_digest(hi_ids, &ends, half + 1, hi_parts),
            );
        }
        Names { ids, parts }
    }

    /// `ids`, sorted, and their digests.
    #[cfg(test)]
    pub(super) fn of(ids: &[SnapshotId]) -> Names {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v.dedup();
        Names::from_parted(group(v))
    }
}

/// Sort and digest the parts from `first` on whose ids are `ids` (which
/// starts where part `first` does), into `out` (one per part).
fn sort_and_digest(
    ids: &mut [SnapshotId],
    ends: &[usize; 256],
    first: usize,
    out: &mut [[u8; 32]],
) {
    let base = if first == 0 { 0 } else { ends[first - 1] };
    let mut start = 0;
    for (i, digest) in out.iter_mut().enumerate() {
        let end = ends[first + i] - base;
        let part = &mut ids[start..end];
        sort(part);
        let mut h = blake3::Hasher::new();
        hash_ids(&mut h, part);
        *digest = *h.finalize().as_bytes();
        start = end;
    }
}

/// Sort `ids` as their bytes: by their first 8 bytes as a big-endian
/// integer, then the rest, about twice as fast as comparing 32-byte
/// arrays.
fn sort(ids: &mut [SnapshotId]) {
    let head = |id: &SnapshotId| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&id.0[..8]);
        u64::from_be_bytes(b)
    };
    ids.sort_unstable_by(|a, b| head(a).cmp(&head(b)).then_with(|| a.cmp(b)));
}

/// Feed `ids`' bytes, one after the other, to `h`: the same digest as one
/// `update` per id, in runs of 128 ids (BLAKE3 hashes a long input on
/// several lanes at once, 32 bytes one block at a time).
fn hash_ids(h: &mut blake3::Hasher, ids: &[SnapshotId]) {
    const RUN: usize = 128;
    let mut buf = [0u8; RUN * 32];
    for run in ids.chunks(RUN) {
        for (dst, id) in buf.chunks_exact_mut(32).zip(run) {
            dst.copy_from_slice(&id.0);
        }
        h.update(&buf[..run.len() * 32]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ids(n: usize) -> Vec<SnapshotId> {
        // ids sharing their first 8 bytes in pairs, so the tie-break runs
        (0..n)
            .map(|i| {
                let mut b = *blake3::hash(&((i / 2) as u64).to_le_bytes()).as_bytes();
                b[31] = i as u8;
                SnapshotId(b)
            })
            .collect()
    }

    #[test]
    fn sort_is_the_byte_order() {
        for n in [0, 1, 2, 129, 1000] {
            let mut a = ids(n);
            let mut b = a.clone();
            sort(&mut a);
            b.sort();
            assert_eq!(a, b, "{n} ids");
        }
    }

    /// On one thread and on two, the names come out in byte order and
    /// each part's digest is that of its ids.
    #[test]
    fn names_are_sorted_and_each_part_digested() {
        for n in [0, 1, 300, PARALLEL + 1, 5000] {
            let mut v = ids(n);
            v.reverse();
            let names = Names::from_parted(group(v.clone()));
            v.sort();
            assert_eq!(names.ids, v, "{n} ids");
            assert_eq!(names.parts.len(), 256);
            for p in 0..=255u8 {
                let mut h = blake3::Hasher::new();
                for id in v.iter().filter(|id| id.0[0] == p) {
                    h.update(&id.0);
                }
                assert_eq!(
                    names.parts[usize::from(p)],
                    *h.finalize().as_bytes(),
                    "part {p} of {n}"
                );
            }
        }
    }

    /// The thread lists what a listing here does, over several batches,
    /// and its failure is this thread's.
    #[test]
    fn the_thread_lists_what_this_one_would_and_reports_its_failure() {
        use crate::backend::fault::{Fault, FaultBackend};
        use crate::backend::local::LocalBackend;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("snapshots");
        std::fs::create_dir(&dir).unwrap();
        let made = ids(700);
        for id in &made {
            std::fs::write(dir.join(id.to_hex()), b"m").unwrap();
        }
        std::fs::write(dir.join("not-an-id"), b"m").unwrap();
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::new(d.path()));
        // 700 keys of 75 bytes: three batches
        const _: () = assert!(700 * 75 > 3 * BATCH);
        let mut there = Lister::start(Arc::clone(&local)).unwrap().ids().unwrap();
        let mut here = list(local.as_ref()).unwrap();
        there.sort();
        here.sort();
        let mut want = made;
        want.sort();
        assert_eq!(here, want);
        assert_eq!(there, want);
        let faulty = FaultBackend::new(LocalBackend::new(d.path()));
        faulty.fail(crate::backend::Op::List, 1, Fault::LostReply);
        let err = Lister::start(Arc::new(faulty)).unwrap().ids().unwrap_err();
        assert!(err.to_string().contains("snapshots"), "{err}");
    }

    #[test]
    fn hash_ids_is_one_update_per_id() {
        for n in [0, 1, 127, 128, 129, 300] {
            let v = ids(n);
            let mut one = blake3::Hasher::new();
            for id in &v {
                one.update(&id.0);
            }
            let mut runs = blake3::Hasher::new();
            hash_ids(&mut runs, &v);
            assert_eq!(one.finalize(), runs.finalize(), "{n} ids");
        }
    }
}
