//! Copying and deleting files, `jobs` at a time (format-spec/sync.md
//! "Uploads"). Each worker holds one object in memory at a time: it reads
//! the whole object from the source, checks it (its listed size; for a
//! pack, that its bytes hash to its name, so a corrupt source pack is
//! reported and never spread), waits for the rate limit, writes it
//! create-only in one call (`put_new`: one PUT on object stores, a temp
//! file, fsync and link on a local directory; nothing partial ever stands
//! under the final name), then checks the size the destination reports.

use super::Progress;
use super::limit::RateLimit;
use super::plan::{Item, Kind};
use crate::backend::Backend;
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

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
    let bytes = src.get(&item.key).map_err(|e| {
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
    if replace && item.kind == Kind::Pack {
        dst.put_replace(&item.key, &bytes)?;
    } else {
        match dst.put_new_bytes(&item.key, bytes) {
            Ok(()) => {}
            Err(e) if e.is_already_exists() => return existing(dst, item),
            Err(e) => return Err(e.into()),
        }
    }
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
    fn pool_keeps_order_and_runs_everything() {
        for jobs in [1, 3, 8] {
            let out = pool(jobs, 100, |i| i * 2);
            assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        }
        assert!(pool(8, 0, |i| i).is_empty());
    }
}
