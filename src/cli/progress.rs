//! Progress bars on a terminal (indicatif), nothing when stdout is not one.
//! A ticker thread samples the engine's atomic counters.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A running progress display; stops on drop.
pub struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Show `bytes`/`files` (and `total` bytes if known) until the ticker is dropped.
pub fn start(label: &'static str, bytes: Arc<dyn Fn() -> (u64, u64, u64) + Send + Sync>) -> Ticker {
    let stop = Arc::new(AtomicBool::new(false));
    if !is_terminal() {
        return Ticker { stop, handle: None };
    }
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let mut has_len = false;
        while !s.load(Relaxed) {
            let (done, files, total) = bytes();
            if total > 0 && !has_len {
                pb.set_length(total);
                pb.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                has_len = true;
            } else if !has_len {
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
            }
            pb.set_position(done);
            pb.set_message(format!("{label} {files} files"));
            // woken early by the drop, so a quick command does not wait
            std::thread::park_timeout(Duration::from_millis(100));
        }
        pb.finish_and_clear();
    });
    Ticker {
        stop,
        handle: Some(handle),
    }
}

/// Show `done`/`total` items of a known count (`unit`: "packs") with a
/// rate and ETA until the ticker is dropped.
pub fn start_items(
    label: &'static str,
    unit: &'static str,
    total: u64,
    done: Arc<AtomicU64>,
) -> Ticker {
    let stop = Arc::new(AtomicBool::new(false));
    if !std::io::stderr().is_terminal() {
        return Ticker { stop, handle: None };
    }
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(label);
        while !s.load(Relaxed) {
            pb.set_position(done.load(Relaxed));
            std::thread::park_timeout(Duration::from_millis(100));
        }
        pb.finish_and_clear();
    });
    Ticker {
        stop,
        handle: Some(handle),
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// Is stdout a terminal (progress is shown only then)?
pub fn is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Read an atomic.
pub fn get(a: &AtomicU64) -> u64 {
    a.load(Relaxed)
}
