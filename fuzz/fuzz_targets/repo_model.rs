//! The model-based repository target (tests/model/mod.rs): bytes become a
//! sequence of snapshot, forget, gc, restore and check steps on
//! `memory://` behind a fault-injecting backend, each compared with an
//! in-memory model; a divergence is a crash.
#![no_main]

#[path = "../../tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicU64, Ordering};

static RUN: AtomicU64 = AtomicU64::new(0);

fn scratch() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "strata-fuzz-model-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ))
}

fuzz_target!(|data: &[u8]| {
    // the library reads the user's cache directory and the gc grace from
    // the environment; the model runs without a cache, with a zero grace
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // SAFETY: set once before any other thread of this process exists
        // that reads the environment (libFuzzer's main thread runs this).
        unsafe {
            std::env::set_var("STRATA_CACHE_DIR", "");
            std::env::set_var("STRATA_GC_GRACE", "0s");
        }
    });
    let dir = scratch();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let r = model::run(data, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = r {
        panic!("{e}");
    }
});
