//! Copying and deleting files, `jobs` at a time (format-spec/sync.md
//! "Uploads"). Each worker holds one object in memory at a time: it reads
//! the whole object from the source, checks it (its listed size; for a
//! pack, that its bytes hash to its name, so a corrupt source pack is
//! reported and never spread), waits for the rate limit, writes it
//! create-only in one call (`put_new`: one PUT on object stores, a temp
//! file, fsync and link on a local directory; nothing partial ever stands
//! under the final name), then checks the size the destination reports.
//! The objects held by all workers together stay within [`MEMORY`]
//! ([`Budget`]): many small files go `jobs` at a time, packs fewer.

use super::Progress;
use super::limit::RateLimit;
use super::plan::{Item, Kind};
use crate::backend::Backend;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};

/// Bytes of objects that the workers of one sync hold in memory at once
/// (issue 27): four 16 MiB packs. Uploads to one store are limited by the
/// store more than by the number in flight: `sync --jobs 8` of 14 packs to
/// moto took the same time (median 1.25 s against 1.29 s, interleaved)
/// with a peak RSS of 75 MiB instead of 144 MiB (8 packs held).
pub const MEMORY: u64 = 64 << 20;

/// Buffers of at least this many bytes are kept for reuse ([`Budget`]).
const SPARE_MIN: u64 = 1 << 20;

/// Bytes that workers may hold, shared: a worker takes an object's size
/// before reading it and gives it back when the object is written; an
/// object larger than the whole budget waits for all of it. It also keeps
/// the buffers given back (up to the budget) for the next objects: with
/// glibc, a 16 MiB buffer freed by one of 8 threads stays in that thread's
/// arena, so 8 threads that each once held a pack kept 8 packs' worth of
/// memory although only 4 were ever held at once.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    state: Mutex<Free>,
    freed: Condvar,
}

#[derive(Debug)]
struct Free {
    /// Bytes not taken.
    bytes: u64,
    /// Buffers given back, for reuse.
    spare: Vec<Vec<u8>>,
}

impl Budget {
    /// A budget of `total` bytes (at least 1).
    pub fn new(total: u64) -> Budget {
        let total = total.max(1);
        Budget {
            total,
            state: Mutex::new(Free {
                bytes: total,
                spare: Vec::new(),
            }),
            freed: Condvar::new(),
        }
    }

    /// Wait until `n` bytes (at most the whole budget) are free and take
    /// them, until the returned guard is dropped.
    pub fn take(&self, n: u64) -> Held<'_> {
        let n = n.min(self.total);
        // a panic elsewhere while holding the lock leaves a usable count
        let mut free = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while free.bytes < n {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        free.bytes -= n;
        // a spare buffer for a large object (the largest: packs are alike)
        let buf = if n >= SPARE_MIN {
            free.spare.pop()
        } else {
            None
        };
        Held {
            budget: self,
            n,
            buf,
        }
    }
}

/// Bytes taken from a [`Budget`], given back on drop, with a buffer to read
/// into ([`Held::buffer`]) and to give back ([`Held::recycle`]).
#[derive(Debug)]
pub struct Held<'a> {
    budget: &'a Budget,
    n: u64,
    buf: Option<Vec<u8>>,
}

impl Held<'_> {
    /// A spare buffer (empty, maybe with capacity), once.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.buf.take().unwrap_or_default()
    }

    /// Keep the memory of `bytes` for the next object, if nothing else
    /// holds it any more (the upload is done with it).
    pub fn recycle(&mut self, bytes: bytes::Bytes) {
        if let Ok(b) = bytes.try_into_mut() {
            self.buf = Some(Vec::from(b));
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut free = self.budget.state.lock().unwrap_or_else(|p| p.into_inner());
        free.bytes += self.n;
        if let Some(mut b) = self.buf.take() {
            let kept: usize = free.spare.iter().map(Vec::capacity).sum();
            let fits = (kept + b.capacity()) as u64 <= self.budget.total;
            if b.capacity() as u64 >= SPARE_MIN && fits {
                b.clear();
                free.spare.push(b);
                free.spare.sort_by_key(Vec::capacity);
            }
        }
        self.budget.freed.notify_all();
    }
}

/// What copying one file did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    /// Written to the destination (its size).
    Copied(u64),
    /// Found there already with the same size, written by someone else
    /// meanwhile (its size).
    Skipped(u64),
}

/// The two ends and what the workers share.
pub struct Ctx<'a> {
    /// Read from here.
    pub src: &'a dyn Backend,
    /// Write to here.
    pub dst: &'a dyn Backend,
    /// Workers in flight.
    pub jobs: usize,
    /// `--limit-upload`.
    pub limit: Option<&'a RateLimit>,
    /// Bytes of objects held in memory by all workers ([`MEMORY`]).
    pub memory: &'a Budget,
    /// Counters for the progress bar.
    pub progress: &'a Progress,
}

/// Run `f(0..n)` on `jobs` workers (the calling thread is one of them);
/// results in index order.
pub fn pool<T: Send>(jobs: usize, n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Relaxed);
            if i >= n {
                return mine;
            }
            mine.push((i, f(i)));
        }
    };
    let mut slots: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..jobs.min(n))
            .filter_map(|_| {
                // a thread that cannot be started leaves its share to the others
                std::thread::Builder::new()
                    .name("strata-sync".into())
                    .spawn_scoped(s, work)
                    .ok()
            })
            .collect();
        let mut done = work();
        for h in helpers {
            match h.join() {
                Ok(v) => done.extend(v),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for (i, t) in done {
            slots[i] = Some(t);
        }
    });
    slots.into_iter().flatten().collect()
}

/// Copy `items` (missing at the destination when listed).
pub fn copy_all(ctx: &Ctx, items: &[Item]) -> Vec<Result<Done>> {
    pool(ctx.jobs, items.len(), |i| copy_one(ctx, &items[i]))
}

/// Delete `items` from the destination; `Ok(false)` for one already gone.
pub fn delete_all(ctx: &Ctx, items: &[Item]) -> Vec<Result<bool>> {
    pool(ctx.jobs, items.len(), |i| {
        match ctx.dst.delete(&items[i].key) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    })
}

/// `object` at backend `b`, as errors name it.
fn at(b: &dyn Backend, key: &str) -> String {
    format!("{}: {key}", b.name())
}

/// Copy `items` again over the destination's copies (damaged there, or
/// of another size): each only once the source's copy hashes to its name.
pub fn replace_all(ctx: &Ctx, items: &[Item]) -> Vec<Result<Done>> {
    pool(ctx.jobs, items.len(), |i| copy_as(ctx, &items[i], true))
}

/// Copy one file (module doc).
pub fn copy_one(ctx: &Ctx, item: &Item) -> Result<Done> {
    copy_as(ctx, item, false)
}

/// Copy one file, create-only or (`replace`, packs only) over the
/// destination's copy, atomically (`put_replace`).
fn copy_as(ctx: &Ctx, item: &Item, replace: bool) -> Result<Done> {
    let (src, dst) = (ctx.src, ctx.dst);
    // the listed size; a source that grew since is caught below
    let mut held = ctx.memory.take(item.size);
    let bytes = src.get_into(&item.key, held.buffer()).map_err(|e| {
        if e.is_not_found() {
            Error::Invalid(format!(
                "{e} (listed a moment ago: removed by a gc at the source? run sync again)"
            ))
        } else {
            e.into()
        }
    })?;
    let len = bytes.len() as u64;
    if len != item.size {
        return Err(Error::corrupt(
            at(src, &item.key),
            format!("listed with {} bytes, read {len}: not copied", item.size),
        ));
    }
    if item.kind == Kind::Pack {
        // pack.md: the name is the BLAKE3 of the file as stored
        let name = item.key.rsplit('/').next().unwrap_or_default();
        let hash = blake3::hash(&bytes).to_hex();
        if !hash.as_str().eq_ignore_ascii_case(name) {
            return Err(Error::corrupt(
                at(src, &item.key),
                format!(
                    "its bytes hash to {}…, not to its name: not copied",
                    &hash.as_str()[..16]
                ),
            ));
        }
    }
    if let Some(l) = ctx.limit {
        l.take(len);
    }
    let keep = bytes.clone(); // shares the memory, to recycle it after
    if replace && item.kind == Kind::Pack {
        dst.put_replace(&item.key, &bytes)?;
        drop(bytes);
    } else {
        match dst.put_new_bytes(&item.key, bytes) {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => return existing(dst, item),
            Err(e) => return Err(e.into()),
        }
    }
    held.recycle(keep);
    drop(held);
    let got = dst.size(&item.key)?;
    if got != len {
        return Err(Error::corrupt(
            at(dst, &item.key),
            format!("{len} bytes written, the destination reports {got}"),
        ));
    }
    ctx.progress.copied(len);
    Ok(Done::Copied(len))
}

/// `put_new` found the key taken (another sync got there first): fine if
/// the size matches, an error (never an overwrite) if not.
fn existing(dst: &dyn Backend, item: &Item) -> Result<Done> {
    let got = dst.size(&item.key)?;
    if got == item.size {
        return Ok(Done::Skipped(got));
    }
    Err(Error::Invalid(format!(
        "{}: exists with {got} bytes where the source has {}: not overwritten",
        at(dst, &item.key),
        item.size
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_bounds_bytes_held_and_lets_a_large_object_through() {
        let b = Budget::new(100);
        let held = std::sync::atomic::AtomicU64::new(0);
        let peak = std::sync::atomic::AtomicU64::new(0);
        pool(8, 64, |i| {
            let n = [30u64, 60, 10, 250][i % 4];
            let _h = b.take(n);
            let now = held.fetch_add(n.min(100), Relaxed) + n.min(100);
            peak.fetch_max(now, Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(1));
            held.fetch_sub(n.min(100), Relaxed);
        });
        assert!(peak.load(Relaxed) <= 100, "{}", peak.load(Relaxed));
        assert_eq!(b.state.lock().unwrap().bytes, 100);
    }

    #[test]
    fn pool_keeps_order_and_runs_everything() {
        for jobs in [1, 3, 8] {
            let out = pool(jobs, 100, |i| i * 2);
            assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(pool(8, 0, |i| i).is_empty());
    }
}
