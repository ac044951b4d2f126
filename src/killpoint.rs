//! Named crash points for the kill batteries (`tests/it/battery_kill.rs`,
//! `tests/it/gc_crash.rs`): in debug builds only, `STRATA_KILL_AT=NAME`
//! (or `NAME:N`, the N-th time that step is reached) makes the process
//! kill itself with `SIGKILL` right after that step, exactly as `kill -9`
//! from outside would, so that every step of the write order
//! (format-spec/invariants.md INV-1..INV-5, format-spec/gc.md GC-1..GC-6)
//! is crash-tested on purpose rather than by the luck of a timer.
//! Release builds have no hook: [`reached`] is empty there.
//!
//! The points, in the order a command reaches them:
//! - `pack-fsynced`: a pack's temp file is durable, not yet under its name;
//! - `pack-published`: the pack is under its final name, no index row
//!   names it yet (INV-2's window);
//! - `index-committed`: the pack's index rows are committed;
//! - `manifest-published`: a snapshot's manifest is durable (the command
//!   has not reported it yet);
//! - `gc-1` (repacked packs durable and indexed), `gc-2` (the condemning gc
//!   state saved), `gc-5` (the gc state files read removed), `gc-3` (packs
//!   dropped from the index), `gc-4` (each pack file deleted).

/// Kill this process if `STRATA_KILL_AT` names `point` and this is the
/// N-th time it is reached (debug builds only).
#[cfg(debug_assertions)]
pub fn reached(point: &str) {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);
    let Some(want) = std::env::var_os("STRATA_KILL_AT") else {
        return;
    };
    let want = want.to_string_lossy();
    let (name, nth) = match want.split_once(':') {
        Some((n, k)) => (n, k.parse::<u64>().unwrap_or(1)),
        None => (&*want, 1),
    };
    if name != point {
        return;
    }
    let count = match SEEN.lock() {
        Ok(mut g) => {
            let c = g
                .get_or_insert_with(HashMap::new)
                .entry(point.to_string())
                .or_insert(0);
            *c += 1;
            *c
        }
        Err(_) => nth,
    };
    if count >= nth {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        std::process::abort();
    }
}

/// Release builds: no crash points.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reached(_point: &str) {}
