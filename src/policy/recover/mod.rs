//! `strata recover` (issue 22): the recovery runbook as one command, from
//! this machine or from a bare one. For each source of the policy that is
//! named (or every one, `--all`), in name order:
//!
//! 1. **plan** ([`plan()`]): the snapshot it will use (the source's newest,
//!    `pre-restore` snapshots skipped; or `--snapshot ID`, or the newest at
//!    or before `--at TIME`), its age, the target or commands, the bytes.
//!    A `command` source without `restore_command` is a problem of the
//!    plan, and nothing runs.
//! 2. **before_restore**, the source's command (stop the service).
//! 3. **safety**: what the restore replaces is saved first into a snapshot
//!    tagged `pre-restore`: a paths source's paths, a sqlite database (its
//!    online copy), a command source's own backup command (the live
//!    database dumped). `recover SOURCE --snapshot <that id>` undoes the
//!    restore. If it fails (the database may be the broken thing), the
//!    recovery stops, unless `--no-safety-snapshot`.
//! 4. **restore**, always verified: a paths source to its own paths, each
//!    with `--delete --verify` semantics (what the path holds becomes the
//!    snapshot's, and is read back); a sqlite source to its `sqlite` path
//!    (written beside it, read back, renamed over it); a command source's
//!    file streamed into `restore_command`.
//! 5. **after_restore** (start the service) and **health_check** (with its
//!    `health_timeout`).
//!
//! Every step is timed; the total is the measured recovery time. The first
//! failing step stops the recovery: the summary lists the steps that did
//! not run, and is POSTed to the webhook ([`recover()`], [`RecoverSummary`]).
//!
//! The policy is the local strata.toml, or with none, the newest one that
//! `strata run` stored in the repository ([`stored`]); commands taken from
//! a stored policy are for the front end to show and confirm before
//! [`recover()`] is called ([`Plan::commands`]).

mod command;
mod plan;
pub(crate) mod scratch;
mod steps;
pub mod stored;
mod write;

pub use crate::policy::config::{Declared, HEALTH_TIMEOUT};
pub use plan::{Plan, Planned, plan};
pub use steps::{RecoverSummary, StepRecord, StepStatus, run as recover};
pub use stored::{POLICY_TAG, StoredPolicy};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::repo::Repo;
use crate::session::Session;
use std::sync::Arc;

/// Which snapshot of each source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Which {
    /// The newest (not `pre-restore`).
    #[default]
    Latest,
    /// This snapshot (id prefix); one source only.
    Snapshot(String),
    /// The newest at or before this time (Unix ns).
    At(i64),
}

/// What `recover` was asked.
#[derive(Clone, Debug, Default)]
pub struct RecoverOptions {
    /// The sources to recover, by name.
    pub sources: Vec<String>,
    /// Every source of the policy.
    pub all: bool,
    /// Which snapshot.
    pub which: Which,
    /// No `pre-restore` snapshot before restoring.
    pub no_safety_snapshot: bool,
    /// Plan a drill (`crate::policy::drill`): it restores into a scratch
    /// place, so a command source needs no `restore_command`.
    pub drill: bool,
}

/// An open repository and the policy to recover by.
pub struct Recovery {
    /// The repository.
    pub repo: Repo,
    /// The policy.
    pub config: crate::policy::Config,
    /// Where the policy came from, when it was stored in the repository
    /// (not a local file): its commands are not to be run unconfirmed.
    pub stored: Option<StoredPolicy>,
}

/// Open the repository of `session` and take the policy to recover by:
/// `local` (the repository it names, unless the session names one), else
/// the newest policy stored in the repository by `strata run`.
pub fn open(
    session: &Session,
    local: Option<&crate::policy::Config>,
    events: &Arc<dyn Events>,
) -> Result<Recovery> {
    if let Some(cfg) = local {
        let repo = session.with_config(cfg).open(events)?.repo;
        repo.require_full("`recover`")?;
        return Ok(Recovery {
            repo,
            config: cfg.clone(),
            stored: None,
        });
    }
    let repo = session.open(events)?.repo;
    repo.require_full("`recover`")?;
    let Some(found) = stored::latest(&repo)? else {
        return Err(Error::NotFound(format!(
            "no strata.toml here (--config FILE) and no policy stored in {} \
             (`strata run` stores its strata.toml there, tagged {POLICY_TAG})",
            repo.store().name()
        )));
    };
    Ok(Recovery {
        repo,
        config: found.config.clone(),
        stored: Some(found),
    })
}
