//! How the engine tells its caller what happens, without a terminal: one
//! [`Events`] sink for warnings, notices, progress and the passphrase
//! prompt. The library never prints; the `strata` CLI implements this
//! trait with stderr, indicatif and rpassword (`cli/events.rs`), and a
//! library user or another front end implements it as it likes, or takes
//! [`Silent`].
//!
//! A sink is shared (`Arc<dyn Events>`) with the [`crate::Repo`] it is
//! opened with, so that what the repository does on its own (an index
//! rebuilt, a stale lock removed, the format upgraded) is reported to
//! whoever opened it; hence `&self` methods and `Send + Sync`.

use crate::error::Result;
use age::secrecy::SecretString;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// What a long task exposes for a progress display: the engine only bumps
/// counters, the sink samples them.
pub enum Meter {
    /// Bytes done, files done and bytes in all (0 while unknown), sampled
    /// by calling the closure.
    Bytes {
        /// What is running (`restore`, `check`).
        label: &'static str,
        /// (bytes done, files done, total bytes).
        sample: Arc<dyn Fn() -> (u64, u64, u64) + Send + Sync>,
    },
    /// `done` of `total` items.
    Items {
        /// What is running (`indexing`).
        label: &'static str,
        /// What is counted (`packs`).
        unit: &'static str,
        /// How many in all.
        total: u64,
        /// How many are done.
        done: Arc<AtomicU64>,
    },
}

/// A progress display; it stops when this is dropped.
#[must_use = "the display stops when this is dropped"]
pub struct Shown {
    _guard: Option<Box<dyn Send>>,
}

impl Shown {
    /// Nothing shown.
    pub fn none() -> Shown {
        Shown { _guard: None }
    }

    /// A display kept running by `guard` (dropping it stops the display).
    pub fn new(guard: Box<dyn Send>) -> Shown {
        Shown {
            _guard: Some(guard),
        }
    }
}

/// Where the engine reports what its caller should see.
pub trait Events: Send + Sync {
    /// Something went wrong but the operation goes on (a manifest skipped,
    /// a file changed while read). One line, no `warning:` prefix.
    fn warning(&self, message: &str);

    /// Something the engine did on its own that the user should know (an
    /// index rebuilt, a stale lock removed, a wait for a lock). One line.
    fn notice(&self, message: &str);

    /// Show the progress of `meter` until the returned value is dropped.
    fn progress(&self, meter: Meter) -> Shown {
        let _ = meter;
        Shown::none()
    }

    /// Ask the user for a secret (`prompt` says which): `None` when there
    /// is nobody to ask (no terminal), else what was typed or why it could
    /// not be read.
    fn ask_secret(&self, prompt: &str) -> Option<Result<SecretString>> {
        let _ = prompt;
        None
    }
}

impl std::fmt::Debug for dyn Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

/// A sink that drops everything and cannot ask: the default of a
/// repository opened without one (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Events for Silent {
    fn warning(&self, _: &str) {}
    fn notice(&self, _: &str) {}
}

/// A shared [`Silent`].
pub fn silent() -> Arc<dyn Events> {
    Arc::new(Silent)
}

/// A sink that keeps what it is told, for tests and for callers that
/// report at the end (`warnings` and `notices` in order).
#[derive(Debug, Default)]
pub struct Collect {
    /// Warnings, in order.
    pub warnings: std::sync::Mutex<Vec<String>>,
    /// Notices, in order.
    pub notices: std::sync::Mutex<Vec<String>>,
}

impl Events for Collect {
    fn warning(&self, message: &str) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(message.to_string());
        }
    }
    fn notice(&self, message: &str) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(message.to_string());
        }
    }
}
