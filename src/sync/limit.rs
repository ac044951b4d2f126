//! `sync --limit-upload RATE`: one token bucket shared by every upload
//! worker. A worker takes the size of the object it is about to send before
//! sending it; the bucket holds at most one second of tokens and may go
//! into debt, and a worker that leaves it in debt sleeps until the debt is
//! paid back, so the long-run rate of all workers together stays at RATE
//! whatever the object sizes (format-spec/sync.md "Throughput").

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bandwidth cap in bytes per second, shared across threads.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens (bytes) available; negative is debt.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl RateLimit {
    /// A bucket for `bytes_per_sec` (at least 1), full (one second of burst).
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimit {
            rate,
            state: Mutex::new(Bucket {
                tokens: rate,
                at: Instant::now(),
            }),
        }
    }

    /// Take `n` bytes' worth of tokens; sleeps while the bucket is in debt.
    pub fn take(&self, n: u64) {
        let wait = {
            // a panic elsewhere while holding it leaves a usable bucket
            let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let refill = now.duration_since(b.at).as_secs_f64() * self.rate;
            b.tokens = (b.tokens + refill).min(self.rate) - n as f64;
            b.at = now;
            if b.tokens < 0.0 {
                Duration::from_secs_f64(-b.tokens / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let l = RateLimit::new(1_000_000);
        let t = Instant::now();
        l.take(600_000);
        l.take(400_000);
        assert!(t.elapsed() < Duration::from_millis(100), "within the burst");
        // 250 kB past the burst: about 0.25 s
        l.take(250_000);
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(200), "{e:?}");
        assert!(e < Duration::from_secs(2), "{e:?}");
    }

    #[test]
    fn shared_by_threads() {
        let l = Arc::new(RateLimit::new(2_000_000));
        let t = Instant::now();
        // 2 MB of burst, then 4 threads x 200 kB = 0.8 MB of debt: >= 0.4 s
        l.take(2_000_000);
        std::thread::scope(|s| {
            for _ in 0..4 {
                let l = l.clone();
                s.spawn(move || l.take(200_000));
            }
        });
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(350), "{e:?}");
        assert!(e < Duration::from_secs(3), "{e:?}");
    }

    #[test]
    fn an_object_larger_than_the_bucket_goes_through() {
        let l = RateLimit::new(10_000_000);
        let t = Instant::now();
        l.take(12_000_000); // 2 MB of debt: 0.2 s
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(150) && e < Duration::from_secs(2),
            "{e:?}"
        );
    }
}
