//! Child processes (threat-model.md "Local state"): every command strata
//! starts (a `command` source, `--stdin-from-command`, `restore
//! --to-command`, a `password_command`, the detached `mount` child) gets
//! the environment of strata minus every `STRATA_*PASSWORD*` variable, so
//! that a passphrase given in the environment never reaches a program that
//! could store or send it (a command source that runs `env` would back it
//! up).

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
