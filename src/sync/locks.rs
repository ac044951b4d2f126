//! Extending the Object Lock of a locked mirror (format-spec/sync.md
//! "Object Lock"). A new object is written with a retention of the lock's
//! period; dedup makes later snapshots need old packs, so their retention
//! must outlive their last use. After the copies, a sync to a locked
//! destination reads the retention of every object the source still holds
//! (a HEAD each, `jobs` at a time; none for what this sync wrote, which
//! carries a full period) and extends to a full period from now
//! each one with less than half of it left (PutObjectRetention). What the
//! source no longer holds (its gc deleted it, so no live snapshot needs
//! it) is left to expire. A destination that refuses the extension
//! (403: a put-only credential) ends the pass without an error: the
//! administrative credential's sync extends them.

use super::copy::{Ctx, pool};
use super::plan::{Item, Kind, Listing};
use crate::backend::ObjectLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// What the pass found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LockReport {
    /// Objects whose retention was read.
    pub checked: u64,
    /// Objects whose retention was extended.
    pub extended: u64,
    /// The earliest retain-until date among them afterwards (unix
    /// seconds): when the first object the source needs may be deleted.
    pub earliest_expiry: Option<i64>,
    /// Objects without any retention (written before the lock was set).
    pub unlocked: u64,
    /// Why extensions stopped, if they did (a put-only credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_extended: Option<String>,
}

/// Read and extend the retention at `ctx.dst` of every object of `src`
/// (and `config`) that the destination holds (the others: not found,
/// skipped); those this sync wrote (`copied`) count as locked for a full
/// period from now without a HEAD.
pub fn extend(
    ctx: &Ctx,
    lock: ObjectLock,
    src: &Listing,
    copied: &std::collections::HashSet<String>,
) -> LockReport {
    let mut items: Vec<Item> = vec![Item {
        key: crate::backend::key::CONFIG.to_string(),
        kind: Kind::Config,
        size: 0,
    }];
    for kind in [
        Kind::KeyInfo,
        Kind::Key,
        Kind::Dict,
        Kind::Pack,
        Kind::GcState,
        Kind::Snapshot,
    ] {
        // copied by this sync or there before it (a fresh listing would
        // miss nothing either: the copies are create-only)
        items.extend(src.of_kind(kind));
    }
    let now = crate::sys::now_ns() / 1_000_000_000;
    // what this sync wrote carries a full period already: no HEAD for it
    let fresh = items.iter().filter(|i| copied.contains(&i.key)).count() as u64;
    items.retain(|i| !copied.contains(&i.key));
    let denied = AtomicBool::new(false);
    let denial = std::sync::Mutex::new(None::<String>);
    let results = pool(ctx.jobs, items.len(), |i| {
        let key = &items[i].key;
        let r = match ctx.dst.retention(key) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return None,
            Err(e) => return Some(Err(e.to_string())),
        };
        let until = r.map(|r| r.until);
        if denied.load(Relaxed) || until.is_some_and(|u| !lock.needs_extension(u, now)) {
            return Some(Ok((until, false, r.is_none())));
        }
        let new = lock.until(now);
        match ctx.dst.set_retention(key, lock.mode, new) {
            Ok(()) => Some(Ok((Some(new), true, false))),
            Err(e) if e.is_access_denied() => {
                denied.store(true, Relaxed);
                if let Ok(mut d) = denial.lock() {
                    d.get_or_insert_with(|| {
                        format!(
                            "{e} (a put-only credential cannot extend retention: run sync \
                             with the administrative credential)"
                        )
                    });
                }
                Some(Ok((until, false, r.is_none())))
            }
            Err(e) => Some(Err(e.to_string())),
        }
    });
    let mut rep = LockReport {
        checked: fresh,
        earliest_expiry: (fresh > 0).then(|| lock.until(now)),
        ..LockReport::default()
    };
    for r in results.into_iter().flatten() {
        match r {
            Ok((until, extended, unlocked)) => {
                rep.checked += 1;
                rep.extended += u64::from(extended);
                rep.unlocked += u64::from(unlocked);
                if let Some(u) = until {
                    rep.earliest_expiry = Some(rep.earliest_expiry.map_or(u, |e| e.min(u)));
                }
            }
            Err(e) => {
                rep.not_extended.get_or_insert(e);
            }
        }
    }
    if let Ok(mut d) = denial.lock() {
        if let Some(d) = d.take() {
            rep.not_extended = Some(d);
        }
    }
    rep
}
