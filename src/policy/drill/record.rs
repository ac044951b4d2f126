//! The last drill of each source (`drill.json`, beside the run state in
//! `<cache>/<repository id>/policy/`, README "Restore drills"): when, how
//! it ended, how long the restore took. Read-modify-written under an
//! advisory lock (`.drill.lock`), so a `strata drill` beside a `strata run`
//! loses neither's record; written under a temp name, fsynced and renamed.
//! A missing or unreadable file means "never drilled".

use crate::error::{Error, Result};
use crate::policy::{Config, Source};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The last drill of one source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastDrill {
    /// When it started (Unix ns).
    pub time_unix_ns: i64,
    /// The restore (and the drill_command) succeeded.
    pub ok: bool,
    /// The measured restore time (wall time of the source's drill).
    pub seconds: f64,
    /// The snapshot restored (hex).
    pub snapshot: Option<String>,
    /// What it did, or why it failed.
    pub detail: String,
}

/// `drill.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// Format version, 1.
    #[serde(default)]
    pub version: u32,
    /// By source name.
    #[serde(default)]
    pub sources: BTreeMap<String, LastDrill>,
}

/// `drill.json` in the policy directory `dir` (`policy::state::dir`).
pub fn path(dir: &Path) -> PathBuf {
    dir.join("drill.json")
}

impl DrillRecord {
    /// The record in `dir`; missing is empty, unreadable is empty with a
    /// warning.
    pub fn load(dir: &Path) -> (DrillRecord, Option<String>) {
        let p = path(dir);
        match std::fs::read(&p) {
            Ok(b) => match serde_json::from_slice(&b) {
                Ok(r) => (r, None),
                Err(e) => (
                    DrillRecord::default(),
                    Some(format!(
                        "{}: unreadable ({e}); treating every source as never drilled",
                        p.display()
                    )),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (DrillRecord::default(), None),
            Err(e) => (
                DrillRecord::default(),
                Some(format!(
                    "{}: {e}; treating every source as never drilled",
                    p.display()
                )),
            ),
        }
    }

    /// Add `drills` to the record in `dir` (under its lock) and save it.
    pub fn update(dir: &Path, drills: Vec<(String, LastDrill)>) -> Result<()> {
        let lock = dir.join(".drill.lock");
        let done = crate::cache::locked(&lock, || -> Result<()> {
            let (mut r, _) = DrillRecord::load(dir);
            r.version = 1;
            r.sources.extend(drills);
            let bytes = serde_json::to_vec_pretty(&r)
                .map_err(|e| Error::Invalid(format!("drill.json: {e}")))?;
            crate::backend::fsutil::write_atomic(
                &path(dir),
                &bytes,
                crate::backend::fsutil::Atomic::local(0o600),
            )
        });
        done.unwrap_or_else(|| Err(Error::Invalid(format!("{}: cannot lock", lock.display()))))
    }
}

/// What is wrong with source `s`'s last drill `last` at `now`: none with
/// `[cadence] drill` set, older than twice the cadence, failed, or slower
/// than the source's `rto`.
pub fn problem(cfg: &Config, s: &Source, last: Option<&LastDrill>, now: i64) -> Option<String> {
    let name = &s.name;
    let Some(l) = last else {
        return cfg
            .cadence
            .drill
            .map(|_| format!("{name}: never drilled (`strata drill {name}`)"));
    };
    if !l.ok {
        return Some(format!("{name}: the last drill failed: {}", l.detail));
    }
    if let Some(rto) = cfg.rto_of(s) {
        if l.seconds > rto.as_secs_f64() {
            return Some(format!(
                "{name}: the last drill took {:.1}s, more than the rto of {}",
                l.seconds,
                humantime::format_duration(rto)
            ));
        }
    }
    let every = cfg.cadence.drill?;
    let age = now.saturating_sub(l.time_unix_ns);
    let limit = i64::try_from((every * 2).as_nanos()).unwrap_or(i64::MAX);
    (age > limit).then(|| {
        format!(
            "{name}: the last drill is {} old (more than twice the drill cadence, {})",
            crate::policy::state::short_duration(age),
            humantime::format_duration(every * 2)
        )
    })
}

/// Is a drill of source `s` due at `now` (its last attempt is at least
/// `every` ago, with the slack of `LastRun::due`)?
pub fn due(every: Duration, last: Option<&LastDrill>, now: i64) -> bool {
    let run = crate::policy::state::LastRun {
        success_unix_ns: last.map(|l| l.time_unix_ns),
        ..Default::default()
    };
    run.due(Some(every), now)
}
