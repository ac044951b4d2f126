//! What the last runs of the policy did, per repository, in the local
//! cache directory (`<cache>/<repo-id>/policy/`, see `crate::cache`):
//! `state.json` (last run of each source and step, read by `run` to know
//! what is due and by `status`), `run.log` (one line per step, appended)
//! and `run.lock` (one `strata run` at a time per repository and user).
//! `state.json` is written under a temp name, fsynced and renamed, so a
//! crash leaves the old or the new file, never a torn one. A missing or
//! unreadable state means "never ran": every source and step is due.

use crate::backend::fsutil::{Atomic, write_atomic};
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The last run of one source or step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When the last attempt started (Unix ns).
    pub attempt_unix_ns: Option<i64>,
    /// When the last successful run started (Unix ns).
    pub success_unix_ns: Option<i64>,
    /// The error of the last attempt, if it failed.
    pub error: Option<String>,
    /// What the last successful run produced (a snapshot id, a count...).
    pub result: Option<String>,
}

impl LastRun {
    /// Record an attempt started at `start`.
    pub fn record(&mut self, start: i64, outcome: std::result::Result<String, String>) {
        self.attempt_unix_ns = Some(start);
        match outcome {
            Ok(r) => {
                self.success_unix_ns = Some(start);
                self.error = None;
                self.result = Some(r);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Is a run with cadence `every` due at `now`? Never succeeded, or no
    /// cadence, or the last success is at least `every` ago (with a minute
    /// of slack, so a timer firing every 5 minutes takes a 5-minute source
    /// every time even when the runs start a few seconds early).
    pub fn due(&self, every: Option<std::time::Duration>, now: i64) -> bool {
        let (Some(every), Some(last)) = (every, self.success_unix_ns) else {
            return true;
        };
        let every_ns = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
        let slack = (every_ns / 10).min(60_000_000_000);
        now.saturating_sub(last) >= every_ns.saturating_sub(slack)
    }

    /// Is a source whose `every` is a day or more due at `now`, from the
    /// time of day `at` (local)? Never succeeded; or `every` minus an hour
    /// has passed since the last success and the latest `at` at or before
    /// `now` is after it. So one timer every few minutes takes a daily
    /// source at the first run at or after `at`, and a weekly one at the
    /// first such run a week later.
    pub fn due_at(&self, every: std::time::Duration, at: (u8, u8), now: i64) -> bool {
        let Some(last) = self.success_unix_ns else {
            return true;
        };
        let every_ns = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
        let hour = 3_600_000_000_000;
        if now.saturating_sub(last) < every_ns.saturating_sub(hour) {
            return false;
        }
        latest_at(at, now).is_none_or(|t| t > last)
    }
}

/// The latest time of day `at` (local time) at or before `now` (Unix ns).
fn latest_at((h, m): (u8, u8), now: i64) -> Option<i64> {
    let tz = jiff::tz::TimeZone::system();
    let z = jiff::Timestamp::from_nanosecond(i128::from(now))
        .ok()?
        .to_zoned(tz.clone());
    let today = z
        .date()
        .at(h as i8, m as i8, 0, 0)
        .to_zoned(tz.clone())
        .ok()?;
    let t = if today.timestamp() <= z.timestamp() {
        today
    } else {
        z.date()
            .yesterday()
            .ok()?
            .at(h as i8, m as i8, 0, 0)
            .to_zoned(tz)
            .ok()?
    };
    i64::try_from(t.timestamp().as_nanosecond()).ok()
}

/// `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Per source name.
    #[serde(default)]
    pub sources: BTreeMap<String, LastRun>,
    /// `forget` per the retention policy.
    #[serde(default)]
    pub forget: LastRun,
    /// `gc`.
    #[serde(default)]
    pub gc: LastRun,
    /// Snapshots forgotten since the last successful gc.
    #[serde(default)]
    pub forgotten_since_gc: u64,
    /// Sync to the offsite copy.
    #[serde(default)]
    pub sync: LastRun,
    /// `check`.
    #[serde(default)]
    pub check: LastRun,
    /// `check` of the offsite copy (`[verification]
    /// offsite_read_data_subset`).
    #[serde(default)]
    pub offsite_check: LastRun,
    /// The last `strata run` as a whole.
    #[serde(default)]
    pub run: LastRun,
}

/// The policy directory of repository `repo_id` in the cache, or `None`
/// when caching is disabled (`STRATA_CACHE_DIR=`) or no home is known.
pub fn dir(repo_id: &crate::id::RepoId) -> Option<PathBuf> {
    Some(
        crate::cache::base_dir()?
            .join(repo_id.to_hex())
            .join("policy"),
    )
}

fn ensure_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .at(dir)
}

impl State {
    /// The state in `dir`; a missing file is the empty state, an unreadable
    /// one too (with a warning returned).
    pub fn load(dir: &Path) -> (State, Option<String>) {
        let p = dir.join("state.json");
        match fs::read(&p) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(s) => (s, None),
                Err(e) => (
                    State::default(),
                    Some(format!(
                        "{}: unreadable ({e}); treating every step as never run",
                        p.display()
                    )),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (State::default(), None),
            Err(e) => (
                State::default(),
                Some(format!(
                    "{}: {e}; treating every step as never run",
                    p.display()
                )),
            ),
        }
    }

    /// Write `state.json` in `dir`: temp file, fsync, rename, fsync of the
    /// directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        ensure_dir(dir)?;
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Internal(format!("state.json: {e}")))?;
        write_atomic(&dir.join("state.json"), &bytes, Atomic::local(0o600))
    }
}

/// Append `line` to `run.log` in `dir` (best effort: a log that cannot be
/// written never fails a backup).
pub fn append_log(dir: &Path, line: &str) {
    if ensure_dir(dir).is_err() {
        return;
    }
    if let Ok(mut f) = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(dir.join("run.log"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// An exclusive `flock` on `run.lock` in `dir`, held until dropped; `None`
/// if another process holds it.
pub fn run_lock(dir: &Path) -> Result<Option<fs::File>> {
    ensure_dir(dir)?;
    let p = dir.join("run.lock");
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&p)
        .at(&p)?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(std::io::Error::from(e)).at(&p),
    }
}

/// `4m`, `2h 3m`, `3d 4h`: an age to a minute.
pub fn short_duration(ns: i64) -> String {
    let secs = (ns.max(0) / 1_000_000_000) as u64;
    let rounded = if secs >= 3600 { secs / 60 * 60 } else { secs };
    humantime::format_duration(std::time::Duration::from_secs(rounded)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due() {
        let min = 60_000_000_000i64;
        let mut r = LastRun::default();
        assert!(r.due(Some(std::time::Duration::from_secs(300)), 0));
        r.record(10 * min, Ok("x".into()));
        let five = Some(std::time::Duration::from_secs(300));
        assert!(!r.due(five, 12 * min));
        assert!(r.due(five, 15 * min - 20_000_000_000)); // slack
        assert!(r.due(None, 10 * min));
        r.record(20 * min, Err("boom".into()));
        assert_eq!(r.success_unix_ns, Some(10 * min));
        assert_eq!(r.error.as_deref(), Some("boom"));
    }

    #[test]
    fn daily_and_weekly_sources_are_due_from_their_time_of_day() {
        let s = 1_000_000_000i64;
        let day = std::time::Duration::from_secs(86_400);
        // a run at 03:00:05 local time (any day)
        let three = latest_at((3, 0), 1_780_000_000 * s).unwrap();
        let mut r = LastRun::default();
        assert!(r.due_at(day, (3, 0), three), "never ran: due");
        r.record(three + 5 * s, Ok("x".into()));
        let next = three + 86_400 * s;
        assert!(
            !r.due_at(day, (3, 0), next - 5 * 60 * s),
            "02:55 the next day"
        );
        assert!(r.due_at(day, (3, 0), next), "03:00 the next day");
        assert!(
            r.due_at(day, (3, 0), next + 3 * 3600 * s),
            "a run missed at 03:00"
        );
        assert!(!r.due_at(day, (3, 0), three + 3600 * s), "the same day");
        let week = day * 7;
        assert!(!r.due_at(week, (3, 0), next), "weekly: a day later");
        assert!(
            r.due_at(week, (3, 0), three + 7 * 86_400 * s),
            "weekly: 7 days later"
        );
    }

    #[test]
    fn save_load() {
        let d = std::env::temp_dir().join(format!("strata-state-{}", std::process::id()));
        let mut s = State {
            forgotten_since_gc: 3,
            ..State::default()
        };
        s.sources
            .entry("db".into())
            .or_default()
            .record(5, Ok("abc".into()));
        s.save(&d).unwrap();
        assert_eq!(State::load(&d).0, s);
        assert!(run_lock(&d).unwrap().is_some());
        let _ = fs::remove_dir_all(&d);
    }
}
