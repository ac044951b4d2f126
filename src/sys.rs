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
