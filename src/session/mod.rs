//! What a front end opens before it works on a repository: where the
//! repository is (`--repo` / `STRATA_REPO`, else `repository` in the
//! strata.toml found), what unlocks it ([`unlock`]: flags, environment,
//! strata.toml, then a prompt through [`Events`]), and which lock each
//! operation takes ([`Operation::access`]), with `--retry-lock` and
//! `--no-lock` ([`LockOptions`]). The CLI builds one per command; another
//! front end builds its own the same way.

pub mod unlock;

use crate::error::{Error, Result};
use crate::events::Events;
use crate::policy::config::Config;
use crate::repo::lock::{Lock, LockKind};
use crate::repo::{OpenOptions, Repo};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use unlock::{ConfigUnlock, Sources, Used};

/// How locks are taken (format-spec/repository.md "Locks").
#[derive(Clone, Copy, Debug, Default)]
pub struct LockOptions {
    /// Take no lock (read-only operations only).
    pub no_lock: bool,
    /// Wait up to this long for a conflicting lock to go away.
    pub retry: Option<Duration>,
}

/// What the front end was told: the repository and the unlocking keys
/// given on its command line (or in the environment it read for them).
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// The repository (`--repo`, `STRATA_REPO`).
    pub repo: Option<PathBuf>,
    /// `--password-file`.
    pub password_file: Option<PathBuf>,
    /// `--identity` / `STRATA_IDENTITY`.
    pub identity: Option<PathBuf>,
    /// `--no-lock`, `--retry-lock`.
    pub lock: LockOptions,
}

/// Which strata.toml a session takes the repository and keys from.
#[derive(Clone, Copy, Debug)]
pub enum ConfigChoice<'a> {
    /// None (`sync --from`).
    Nothing,
    /// Only when no repository is given: `STRATA_CONFIG`, else
    /// ./strata.toml, else ~/.config/strata/strata.toml, if one exists.
    Implicit,
    /// The file named (`--config`), else the first of those that exists;
    /// none is fine (`restore`).
    IfFound(Option<&'a Path>),
    /// As [`ConfigChoice::IfFound`], but there must be one (`run`,
    /// `status`).
    Required(Option<&'a Path>),
}

/// The lock an operation needs ([`Operation::access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No lock: it reads what it needs once, or only copies bytes.
    Unlocked,
    /// A shared lock, which `--no-lock` may skip: it only reads.
    Read,
    /// A shared lock that `--no-lock` may not skip: it adds to the
    /// repository (a snapshot) while others read and add.
    Append,
    /// The exclusive lock: it removes or replaces files.
    Exclusive,
}

/// What a front end does with a repository, for [`Operation::access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `snapshot`
    Snapshot,
    /// `snapshots`
    Snapshots,
    /// `restore` (its safety snapshot writes under the same shared lock)
    Restore,
    /// `ls`, `cat`, `find`, `diff`, `stats`, `check`
    Read(&'static str),
    /// `mount` (the detached parent takes none; its child does)
    Mount,
    /// `forget`, `gc`, `tag`, `rewrite`, `rebuild-index`, `repair`
    Maintain(&'static str),
    /// `key add`, `key remove`, `key passwd`
    ChangeKeys,
    /// `key list`, `key export-identity`
    ReadKeys,
    /// `unlock`
    Unlock,
    /// `run` (its steps lock as they go: shared for sources and check,
    /// exclusive for forget and gc)
    Run,
    /// `status`
    Status,
}

impl Operation {
    /// The lock it takes when it opens the repository.
    pub fn access(self) -> Access {
        match self {
            Operation::Snapshot => Access::Append,
            Operation::Restore | Operation::Read(_) | Operation::Mount => Access::Read,
            Operation::Maintain(_) | Operation::ChangeKeys => Access::Exclusive,
            Operation::Snapshots
            | Operation::ReadKeys
            | Operation::Unlock
            | Operation::Run
            | Operation::Status => Access::Unlocked,
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Snapshot => "snapshot",
            Operation::Snapshots => "snapshots",
            Operation::Restore => "restore",
            Operation::Read(n) | Operation::Maintain(n) => n,
            Operation::Mount => "mount",
            Operation::ChangeKeys | Operation::ReadKeys => "key",
            Operation::Unlock => "unlock",
            Operation::Run => "run",
            Operation::Status => "status",
        }
    }
}

/// An open repository and what unlocked it (handed to a detached child
/// such as `mount`'s).
pub struct Opened {
    /// The repository.
    pub repo: Repo,
    /// What unlocked it; `None` when it is not encrypted.
    pub used: Option<Used>,
}

/// A repository location, its unlock sources and lock options, ready to
/// open.
#[derive(Clone, Debug)]
pub struct Session {
    opts: SessionOptions,
    config: Option<Config>,
    /// Why strata.toml's `environment_file` could not be used: every
    /// open fails with it (so that `run` records and reports it).
    env_error: Option<String>,
}

impl Session {
    /// A session from the front end's options and the strata.toml `choice`
    /// finds (loaded now: an invalid one is an error naming it).
    pub fn new(mut opts: SessionOptions, choice: ConfigChoice<'_>) -> Result<Session> {
        if opts.repo.is_none() {
            opts.repo = env_path("STRATA_REPO");
        }
        let config = match choice {
            ConfigChoice::Nothing => None,
            ConfigChoice::Implicit if opts.repo.is_some() => None,
            ConfigChoice::Implicit => found_config(env_path("STRATA_CONFIG").as_deref())?,
            ConfigChoice::IfFound(explicit) => found_config(explicit)?,
            ConfigChoice::Required(explicit) => {
                Some(crate::policy::config::find_and_load(explicit)?)
            }
        };
        let env_error = apply_env(config.as_ref());
        Ok(Session {
            opts,
            config,
            env_error,
        })
    }

    /// The strata.toml in use, if any.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// This session with `cfg` as its strata.toml (the policy a run or a
    /// status report reads gives the repository and keys too).
    pub fn with_config(&self, cfg: &Config) -> Session {
        Session {
            opts: self.opts.clone(),
            config: Some(cfg.clone()),
            env_error: apply_env(Some(cfg)),
        }
    }

    /// This session at another location of the same repository (the
    /// offsite copy): the same keys, lock options and strata.toml.
    pub fn at(&self, repo: PathBuf) -> Session {
        let mut s = self.clone();
        s.opts.repo = Some(repo);
        s
    }

    /// The lock options.
    pub fn lock_options(&self) -> LockOptions {
        self.opts.lock
    }

    /// The repository: the one given, else `repository` in strata.toml.
    pub fn repo_path(&self) -> Result<PathBuf> {
        let cfg = self.config.as_ref();
        match (&self.opts.repo, cfg.and_then(|c| c.repository.clone())) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(p)) => Ok(p),
            (None, None) => Err(Error::Invalid(format!(
                "no repository given: use --repo PATH, STRATA_REPO{}",
                cfg.map(|c| format!(" or `repository` in {}", c.path.display()))
                    .unwrap_or_else(|| " or `repository` in strata.toml".into())
            ))),
        }
    }

    /// The unlock sources of the command line and environment only.
    pub fn given_sources(&self) -> Sources {
        Sources {
            password_file: self.opts.password_file.clone(),
            identity: self.opts.identity.clone(),
            config: ConfigUnlock::default(),
        }
    }

    /// [`Session::given_sources`], with strata.toml's keys after them.
    pub fn unlock_sources(&self) -> Sources {
        let mut src = self.given_sources();
        if let Some(c) = &self.config {
            src.config = ConfigUnlock {
                password_file: c.password_file.clone(),
                password_command: c.password_command.clone(),
                identity: c.identity.clone(),
            };
        }
        src
    }

    /// What an open with the unlock sources `src` refuses (threat-model.md
    /// "Downgrade"): an unencrypted repository when a credential is given,
    /// or when strata.toml says `require_encryption = true`;
    /// `require_encryption = false` allows it.
    pub fn open_options(&self, src: &Sources) -> OpenOptions {
        let cfg = self.config.as_ref();
        let require_encryption = match cfg.and_then(|c| c.require_encryption.map(|r| (r, c))) {
            Some((false, _)) => None,
            Some((true, c)) => Some(format!(
                "{} says require_encryption = true",
                c.path.display()
            )),
            None => unlock::configured(src),
        };
        OpenOptions { require_encryption }
    }

    /// Open the repository, unlocking it if it is encrypted; it reports
    /// to `events`.
    pub fn open(&self, events: &Arc<dyn Events>) -> Result<Opened> {
        if let Some(e) = &self.env_error {
            return Err(Error::Invalid(e.clone()));
        }
        let path = self.repo_path()?;
        let src = self.unlock_sources();
        let opts = self.open_options(&src);
        let mut used = None;
        let repo = Repo::open_reporting(
            &path,
            &mut || {
                let (cred, u) = unlock::credential(&src, events)?;
                used = Some(u);
                Ok(cred)
            },
            &opts,
            events.clone(),
        )?;
        Ok(Opened { repo, used })
    }

    /// Take a lock of `kind` as the lock options say.
    pub fn lock(&self, repo: &Repo, kind: LockKind) -> Result<Lock> {
        // a point-in-time view is read-only and of the past: no lock to take
        if self.opts.lock.no_lock || crate::backend::point_in_time().is_some() {
            return Ok(Lock::none());
        }
        Lock::acquire(repo, kind, self.opts.lock.retry.unwrap_or_default())
    }

    /// Refuse `--no-lock` for an operation that writes.
    pub fn writes(&self, what: &str) -> Result<()> {
        if crate::backend::point_in_time().is_some() {
            return Err(Error::Invalid(format!(
                "--point-in-time opens a read-only view of the past; `{what}` changes the \
                 repository (bring that state back first: `sync --from URL --point-in-time \
                 TIME DEST`)"
            )));
        }
        if self.opts.lock.no_lock {
            return Err(Error::Invalid(format!(
                "--no-lock is for read-only commands; `{what}` changes the repository"
            )));
        }
        Ok(())
    }

    /// Open the repository and take the lock `op` needs
    /// ([`Operation::access`]); `--no-lock` is refused for what writes.
    pub fn open_for(&self, op: Operation, events: &Arc<dyn Events>) -> Result<(Repo, Lock)> {
        let access = op.access();
        if matches!(access, Access::Append | Access::Exclusive) {
            self.writes(op.name())?;
        }
        let repo = self.open(events)?.repo;
        // write-only.md: a write-only key backs up and nothing else
        if !matches!(op, Operation::Snapshot | Operation::Run | Operation::Status) {
            repo.require_full(&format!("`{}`", op.name()))?;
        }
        let lock = match access {
            Access::Unlocked => Lock::none(),
            Access::Read | Access::Append => self.lock(&repo, LockKind::Shared)?,
            Access::Exclusive => self.lock(&repo, LockKind::Exclusive)?,
        };
        Ok((repo, lock))
    }
}

/// Add the policy's `environment_file` to this process's environment
/// (sys.rs: credentials for the backend and for children), before
/// anything is opened; why it could not be used, if so.
fn apply_env(config: Option<&Config>) -> Option<String> {
    let file = config?.environment_file.as_ref()?;
    match crate::policy::envfile::load(file) {
        Ok(vars) => {
            crate::sys::set_policy_env(vars);
            None
        }
        Err(e) => Some(format!("environment_file: {e}")),
    }
}

/// A non-empty environment variable as a path.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The strata.toml `explicit` names, else the first of ./strata.toml and
/// ~/.config/strata/strata.toml that exists, loaded; None when there is
/// none, an error when it is invalid.
pub fn found_config(explicit: Option<&Path>) -> Result<Option<Config>> {
    match crate::policy::config::find(explicit) {
        Ok(p) => crate::policy::config::load(&p).map(Some),
        Err(_) => Ok(None),
    }
}
