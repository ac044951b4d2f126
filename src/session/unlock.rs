//! Where passphrases and identities come from (README "Encryption"), in
//! order: `--password-file`, `STRATA_PASSWORD`, `STRATA_PASSWORD_COMMAND`,
//! `--identity` / `STRATA_IDENTITY`, then what strata.toml says
//! (`password_file`, `password_command` or `identity`, for `run`, `status`
//! and `restore --source`), then a prompt, which the front end asks
//! through [`Events::ask_secret`] (the CLI on its terminal). A passphrase
//! is never echoed, logged or written anywhere.

use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::repo::keys::Credential;
use age::secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The global unlock options.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// `--password-file`
    pub password_file: Option<PathBuf>,
    /// `--identity` / `STRATA_IDENTITY`
    pub identity: Option<PathBuf>,
    /// strata.toml's `password_file`, `password_command` and `identity`,
    /// used when none of the above is set.
    pub config: ConfigUnlock,
}

/// The unlocking keys of strata.toml.
#[derive(Clone, Debug, Default)]
pub struct ConfigUnlock {
    /// `password_file`
    pub password_file: Option<PathBuf>,
    /// `password_command`
    pub password_command: Option<String>,
    /// `identity`
    pub identity: Option<PathBuf>,
}

/// What unlocked the repository, so a child process (detached `mount`)
/// can be given the same.
#[derive(Clone)]
pub enum Used {
    /// A passphrase from any source.
    Passphrase(SecretString),
    /// An identity file.
    Identity(PathBuf),
}

fn env_nonempty(name: &str) -> Option<String> {
    crate::sys::var(name).filter(|v| !v.is_empty())
}

/// The first line of `s` as a passphrase; `what` names the source in errors.
fn first_line(mut s: String, what: &str) -> Result<SecretString> {
    let line_end = s.find(['\n', '\r']).unwrap_or(s.len());
    s.truncate(line_end);
    if s.is_empty() {
        return Err(Error::UnlockFailed(format!("{what}: empty passphrase")));
    }
    Ok(SecretString::from(s))
}

/// The first line of a password file, without its line ending.
fn read_password_file(path: &Path) -> Result<SecretString> {
    first_line(
        std::fs::read_to_string(path).at(path)?,
        &path.display().to_string(),
    )
}

fn password_command(cmd: &str, what: &str) -> Result<SecretString> {
    let out = crate::sys::shell(cmd)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::UnlockFailed(format!("{what}: cannot run: {e}")))?;
    if !out.status.success() {
        return Err(Error::UnlockFailed(format!(
            "{what} failed ({})",
            out.status
        )));
    }
    let s = String::from_utf8(out.stdout)
        .map_err(|_| Error::UnlockFailed(format!("{what} printed non-UTF-8")))?;
    first_line(s, what)
}

/// A passphrase from the non-interactive sources, if any is set.
fn passphrase_from_sources(src: &Sources) -> Result<Option<SecretString>> {
    if let Some(f) = &src.password_file {
        return read_password_file(f).map(Some);
    }
    if let Some(p) = env_nonempty("STRATA_PASSWORD") {
        return Ok(Some(SecretString::from(p)));
    }
    if let Some(c) = env_nonempty("STRATA_PASSWORD_COMMAND") {
        return password_command(&c, "STRATA_PASSWORD_COMMAND").map(Some);
    }
    // strata.toml, unless an identity is given on the command line or in
    // the environment (that is more explicit than the file).
    if src.identity.is_some() || env_nonempty("STRATA_IDENTITY").is_some() {
        return Ok(None);
    }
    if let Some(f) = &src.config.password_file {
        return read_password_file(f).map(Some);
    }
    if let Some(c) = &src.config.password_command {
        return password_command(c, "strata.toml password_command").map(Some);
    }
    Ok(None)
}

/// The first credential that is given, named for an error, without
/// reading it: a repository opened with one must be encrypted
/// (threat-model.md "Downgrade").
pub fn configured(src: &Sources) -> Option<String> {
    let named = |what: &str| Some(format!("a credential was given ({what})"));
    if src.password_file.is_some() {
        return named("--password-file");
    }
    for var in [
        "STRATA_PASSWORD",
        "STRATA_PASSWORD_COMMAND",
        "STRATA_IDENTITY",
    ] {
        if env_nonempty(var).is_some() {
            return named(var);
        }
    }
    if src.identity.is_some() {
        return named("--identity");
    }
    let c = &src.config;
    if c.password_file.is_some() {
        return named("strata.toml password_file");
    }
    if c.password_command.is_some() {
        return named("strata.toml password_command");
    }
    if c.identity.is_some() {
        return named("strata.toml identity");
    }
    None
}

const NO_SOURCE: &str = "the repository is encrypted: give its passphrase with --password-file, \
     STRATA_PASSWORD or STRATA_PASSWORD_COMMAND, or an identity with --identity or \
     STRATA_IDENTITY (no terminal to prompt on)";

/// The credential to unlock an existing repository, and what it was.
pub fn credential(src: &Sources, events: &Arc<dyn Events>) -> Result<(Credential, Used)> {
    if let Some(p) = passphrase_from_sources(src)? {
        return Ok((Credential::Passphrase(p.clone()), Used::Passphrase(p)));
    }
    let identity = src
        .identity
        .clone()
        .or_else(|| env_nonempty("STRATA_IDENTITY").map(PathBuf::from))
        .or_else(|| src.config.identity.clone());
    if let Some(path) = identity {
        let text = std::fs::read(&path).at(&path)?;
        if crate::repo::recovery::is_recovery(&text) {
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&text).into_owned());
            let key = crate::repo::recovery::decode(&text, &path.display().to_string())?;
            return Ok((Credential::Recovery(Box::new(key)), Used::Identity(path)));
        }
        return Ok((
            Credential::Identities(load_identities(&path, events)?),
            Used::Identity(path),
        ));
    }
    match events.ask_secret("passphrase for the repository: ") {
        Some(p) => {
            let p = p?;
            Ok((Credential::Passphrase(p.clone()), Used::Passphrase(p)))
        }
        None => Err(Error::Locked(NO_SOURCE.into())),
    }
}

/// The passphrase of a new key: `new_file`, `STRATA_NEW_PASSWORD`, or
/// (when `also_unlock_sources`, for `init`) the unlock sources, else a
/// prompt asked twice.
pub fn new_passphrase(
    new_file: Option<&Path>,
    src: &Sources,
    also_unlock_sources: bool,
    events: &dyn Events,
) -> Result<SecretString> {
    if let Some(f) = new_file {
        return read_password_file(f);
    }
    if let Some(p) = env_nonempty("STRATA_NEW_PASSWORD") {
        return Ok(SecretString::from(p));
    }
    if also_unlock_sources {
        if let Some(p) = passphrase_from_sources(src)? {
            return Ok(p);
        }
    }
    let no_prompt = || {
        Error::Locked(
            "a new passphrase is needed: give it with --new-password-file or STRATA_NEW_PASSWORD \
             (or, for init, --password-file / STRATA_PASSWORD; no terminal to prompt on)"
                .into(),
        )
    };
    let a = events
        .ask_secret("new passphrase: ")
        .ok_or_else(no_prompt)??;
    if a.expose_secret().is_empty() {
        return Err(Error::Invalid("empty passphrase".into()));
    }
    let b = events
        .ask_secret("repeat the new passphrase: ")
        .ok_or_else(no_prompt)??;
    if a.expose_secret() != b.expose_secret() {
        return Err(Error::Invalid("the passphrases do not match".into()));
    }
    Ok(a)
}

/// age's callbacks for an encrypted ssh key: its messages and its
/// passphrase go through the events.
#[derive(Clone)]
struct AskCallbacks(Arc<dyn Events>);

impl age::Callbacks for AskCallbacks {
    fn display_message(&self, message: &str) {
        self.0.notice(message);
    }
    fn confirm(&self, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }
    fn request_public_string(&self, _: &str) -> Option<String> {
        None
    }
    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        self.0.ask_secret(&format!("{description}: "))?.ok()
    }
}

/// Identities from an age identity file or an ssh private key (an
/// encrypted ssh key asks for its passphrase through `events`).
pub fn load_identities(
    path: &Path,
    events: &Arc<dyn Events>,
) -> Result<Vec<Box<dyn age::Identity>>> {
    let text = std::fs::read(path).at(path)?;
    let bad = |why: String| Error::UnlockFailed(format!("{}: {why}", path.display()));
    if text.windows(11).any(|w| w == b"-----BEGIN ") {
        let id = age::ssh::Identity::from_buffer(&text[..], Some(path.display().to_string()))
            .map_err(|e| bad(format!("not a usable ssh private key: {e}")))?;
        if let age::ssh::Identity::Unsupported(k) = &id {
            return Err(bad(format!("unsupported ssh key: {k:?}")));
        }
        return Ok(vec![Box::new(
            id.with_callbacks(AskCallbacks(events.clone())),
        )]);
    }
    let ids = age::IdentityFile::from_buffer(&text[..])
        .map_err(|e| bad(e.to_string()))?
        .into_identities()
        .map_err(|e| bad(e.to_string()))?;
    if ids.is_empty() {
        return Err(bad("no identity in the file".into()));
    }
    Ok(ids)
}
