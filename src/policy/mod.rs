//! Backup policy in one file (`strata.toml`): what to back up, how long to
//! keep it, where the offsite copy goes and how to verify it, run by
//! `strata run` and reported by `strata status`.
//!
//! - [`config`]: finding, parsing and validating `strata.toml` (every key
//!   is documented in README "Backup policy: strata.toml").
//! - [`envfile`]: the policy's `environment_file` (credentials for
//!   scheduled runs), added to the process's through `crate::sys`.
//! - [`state`]: what the last runs did, kept per repository in the local
//!   cache directory (written under a temp name, then renamed).
//! - [`sqlite`]: a consistent copy of a live SQLite database through
//!   SQLite's online backup API.
//! - [`webhook`]: the run summary, POSTed as JSON.
//! - [`run`](mod@run): one run of the policy ([`run()`], a [`RunSummary`]);
//!   its steps after the sources are in `steps`.
//! - [`recover`](mod@recover): `strata recover`, the recovery runbook as
//!   one command ([`recover::plan()`], then [`recover()`](fn@recover)); and the policy
//!   that every run stores in the repository for a bare machine.
//! - [`drill`](mod@drill): `strata drill`, each source restored into a
//!   scratch place and timed; also a step of `run` (`[cadence] drill`).
//! - `heal`: the steps of `run` that check the offsite copy and make the
//!   two copies repair each other.
//! - [`status`](mod@status): the health report ([`status()`], a
//!   [`StatusReport`]).

pub mod config;
pub mod drill;
pub mod envfile;
pub mod record;
pub mod recover;
pub mod run;
pub mod sqlite;
pub mod state;
pub mod status;
pub mod webhook;

pub use config::{Config, Source, SourceKind};
pub use drill::{DrillOptions, DrillSummary, drill};
pub use recover::{RecoverOptions, RecoverSummary, recover};
pub use run::{RunOptions, RunSummary, run};
pub use status::{StatusOptions, StatusReport, status};
