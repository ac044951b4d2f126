//! Child processes (threat-model.md "Local state"): every command strata
//! starts (a `command` source, `--stdin-from-command`, `restore
//! --to-command`, a `password_command`, the detached `mount` child) gets
//! the environment of strata minus every `STRATA_*PASSWORD*` variable, so
//! that a passphrase given in the environment never reaches a program that
//! could store or send it (a command source that runs `env` would back it
//! up).
//!
//! And what the engine asks of the machine otherwise: random bytes, the
//! clock (and the one RFC 3339 formatter of the times it writes), the host
//! name. Everything above `error` may use this module; it uses nothing of
//! the crate but [`crate::error`].

use std::ffi::OsStr;
use std::process::Command;

/// Is `name` a variable that may hold a passphrase (`STRATA_PASSWORD`,
/// `STRATA_NEW_PASSWORD`, `STRATA_PASSWORD_COMMAND`, …)?
pub fn is_secret_var(name: &OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with("STRATA_") && n.contains("PASSWORD"))
}

/// Remove every secret variable ([`is_secret_var`]) of strata's own
/// environment from `cmd`'s.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if is_secret_var(&name) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// `sh -c CMD`, without the secret variables.
pub fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    scrub(&mut c);
    c
}

/// Random bytes for ids, seeds and tokens.
pub fn random_bytes<const N: usize>() -> crate::error::Result<[u8; N]> {
    let mut r = [0u8; N];
    getrandom::fill(&mut r)
        .map_err(|e| crate::error::Error::Internal(format!("no random source available: {e}")))?;
    Ok(r)
}

/// Now, as Unix nanoseconds (0 before 1970, which no clock here reports).
pub fn now_ns() -> i64 {
    unix_ns(std::time::SystemTime::now())
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
