//! The process environment, as strata reads and passes it on.
//!
//! - **The policy's environment** (`environment_file` in strata.toml,
//!   README "Backup policy"): `NAME=value` lines that a command loading the
//!   policy adds to what it reads from its environment (object store
//!   credentials for `backend::open`, `STRATA_PASSWORD` for unlocking) and
//!   to the environment of its children (`PGPASSWORD` for `pg_dump`). The
//!   process's own environment wins for a name set in both. Under cron or
//!   systemd this is where credentials come from. (Edition 2024 makes
//!   changing the process environment `unsafe`, which the crate forbids:
//!   the variables are kept here instead.)
//! - **Child processes** (threat-model.md "Local state"): every command
//!   strata starts (a `command` source, `--stdin-from-command`, `restore
//!   --to-command`, a `password_command`, the detached `mount` child) gets
//!   that environment minus every `STRATA_*PASSWORD*` variable, so that a
//!   passphrase given in the environment never reaches a program that
//!   could store or send it (a command source that runs `env` would back
//!   it up).
//! - **The machine**: random bytes, the clock (with the one RFC 3339
//!   formatter of the times strata writes), the host name. Everything
//!   above `error` may use this module; it uses nothing of the crate but
//!   [`crate::error`].

use std::ffi::OsStr;
use std::process::Command;
use std::sync::OnceLock;

static POLICY_ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();

/// Add `vars` (the policy's environment file) to what this process reads;
/// the first call wins (one policy per process).
pub fn set_policy_env(vars: Vec<(String, String)>) {
    let _ = POLICY_ENV.set(vars);
}

/// The policy's variables not set in the process environment.
fn policy_only() -> impl Iterator<Item = &'static (String, String)> {
    POLICY_ENV
        .get()
        .into_iter()
        .flatten()
        .filter(|(k, _)| std::env::var_os(k).is_none())
}

/// `name` from the process environment, else from the policy's.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| {
        POLICY_ENV
            .get()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

/// The process environment and the policy's (UTF-8 variables only).
pub fn vars() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::env::vars().collect();
    v.extend(policy_only().cloned());
    v
}

/// Is `name` a variable that may hold a passphrase (`STRATA_PASSWORD`,
/// `STRATA_NEW_PASSWORD`, `STRATA_PASSWORD_COMMAND`, …)?
pub fn is_secret_var(name: &OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with("STRATA_") && n.contains("PASSWORD"))
}

/// Give `cmd` the policy's environment, and remove every secret variable
/// ([`is_secret_var`]) from it.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for (k, v) in policy_only() {
        if !is_secret_var(OsStr::new(k)) {
            cmd.env(k, v);
        }
    }
    for (name, _) in std::env::vars_os() {
        if is_secret_var(&name) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// `sh -c CMD`, with the policy's environment and without the secret
/// variables.
pub fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    scrub(&mut c);
    c
}

/// Kill process group `pgid` (a command started in its own group, and
/// everything it started), through kill(1): the crate has no unsafe code
/// for kill(2).
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Kills a command's process group once its time is up, unless dropped
/// first: a command that hangs, or stops reading what it is fed, would
/// otherwise block its caller forever.
pub struct Watchdog {
    stop: Option<std::sync::mpsc::Sender<()>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    /// Watch process group `pgid` for `timeout`.
    pub fn start(pgid: u32, timeout: std::time::Duration) -> Watchdog {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let fired = std::sync::Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                f.store(true, Ordering::SeqCst);
                kill_group(pgid);
            }
        });
        Watchdog {
            stop: Some(tx),
            fired,
        }
    }

    /// It killed the command.
    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // dropping the sender wakes the thread, which then exits
        self.stop.take();
    }
}

/// Random bytes for ids, seeds and tokens.
pub fn random_bytes<const N: usize>() -> crate::error::Result<[u8; N]> {
    let mut r = [0u8; N];
    getrandom::fill(&mut r)
        .map_err(|e| crate::error::Error::Internal(format!("no random source available: {e}")))?;
    Ok(r)
}

/// Now, as Unix nanoseconds (0 before 1970, which no clock here reports).
///
/// In a debug build, `STRATA_FAKE_NOW` (Unix seconds, or an RFC 3339 time)
/// replaces the clock, so that a test can run the policy at every time a
/// schedule fires over a day; a release build ignores it.
pub fn now_ns() -> i64 {
    #[cfg(debug_assertions)]
    if let Some(t) = fake_now() {
        return t;
    }
    unix_ns(std::time::SystemTime::now())
}

/// `STRATA_FAKE_NOW` as Unix ns (debug builds: [`now_ns`]).
#[cfg(debug_assertions)]
fn fake_now() -> Option<i64> {
    let v = std::env::var("STRATA_FAKE_NOW")
        .ok()
        .filter(|v| !v.is_empty())?;
    if let Ok(secs) = v.parse::<i64>() {
        return secs.checked_mul(1_000_000_000);
    }
    let t: jiff::Timestamp = v.parse().ok()?;
    i64::try_from(t.as_nanosecond()).ok()
}

/// `t` as Unix nanoseconds (0 before 1970).
pub fn unix_ns(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Unix ns as RFC 3339, UTC, whole seconds (`2026-12-06T16:26:53Z`; 1970
/// for a time before it): the one formatter of the times strata writes in
/// manifests' JSON, lock files and run records.
pub fn rfc3339(unix_ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// This machine's host name.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
