//! Command-line interface: clap definitions (the single source of help text,
//! completions and the man page), turned into validated engine options. The
//! engine never imports clap. Exit codes are documented in README.md.

mod args;
mod check;
mod drill;
mod events;
mod forget;
mod gc;
mod inspect;
mod key;
mod locks;
mod mount;
mod output;
pub(crate) mod progress;
mod recover;
mod repair;
mod restore;
mod run;
mod schedule;
mod snapshot;
mod snapshots;
mod status;
mod sync;

use crate::events::Events;
use crate::repo::Repo;
use crate::repo::lock::Lock;
use crate::session::{ConfigChoice, Operation, Session, SessionOptions};
pub use args::Cli;
use args::Command;
use clap::{CommandFactory, Parser};
use std::sync::Arc;

/// Exit codes (README "Exit codes").
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A fatal error.
    pub const ERROR: i32 = 1;
    /// Bad command line (clap).
    pub const USAGE: i32 = 2;
    /// Snapshot saved, but some files were skipped or changed while read.
    pub const WARNINGS: i32 = 3;
    /// The `--stdin-from-command` command failed; no snapshot saved. For
    /// `run`: a source failed (the others were saved).
    pub const SOURCE_FAILED: i32 = 4;
    /// `status`: a source is older than `--max-age` (or has no snapshot),
    /// or the last check found errors, or the offsite copy is behind.
    pub const UNHEALTHY: i32 = 5;
    /// The repository does not exist or is not a repository.
    pub const NO_REPO: i32 = 10;
    /// The repository is locked by another process (or our lock was lost).
    pub const REPO_LOCKED: i32 = 11;
    /// Wrong passphrase or key, or no way to ask for one, or a write-only
    /// key for a command that needs a full key.
    pub const LOCKED: i32 = 12;
}

fn exit_code(e: &crate::Error) -> i32 {
    use crate::Error as E;
    match e {
        E::NoRepository(_) | E::NotARepository { .. } => exit::NO_REPO,
        E::SourceCommand { .. } => exit::SOURCE_FAILED,
        E::WrongKey(_) | E::Locked(_) | E::NeedsFullKey(_) => exit::LOCKED,
        E::RepoLocked(_) => exit::REPO_LOCKED,
        _ => exit::ERROR,
    }
}

/// Stack size of the command's thread and of rayon's worker threads.
const WORKER_STACK: usize = 64 << 20;

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    // Walks of the source and of trees recurse once per directory level
    // (at most `snapshot::tree::MAX_DEPTH`, objects.md), on this thread and
    // on rayon's: each gets room for that (address space; pages are
    // touched only when used).
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(WORKER_STACK)
        .build_global();
    match std::thread::Builder::new()
        .name("strata".into())
        .stack_size(WORKER_STACK)
        .spawn(run_main)
    {
        Ok(h) => h.join().unwrap_or(exit::ERROR),
        Err(_) => run_main(),
    }
}

fn run_main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let events: Arc<dyn Events> = Arc::new(events::Terminal);
    match run(&cli, &events) {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = find_io(&e) {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return exit::OK;
                }
            }
            eprintln!("strata: {e}");
            exit_code(&e)
        }
    }
}

fn find_io(e: &crate::Error) -> Option<&std::io::Error> {
    match e {
        crate::Error::Io { source, .. } => Some(source),
        _ => None,
    }
}

/// The session of a command: the global options, and the strata.toml
/// `choice` finds.
fn session(cli: &Cli, choice: ConfigChoice<'_>) -> crate::Result<Session> {
    let opts = SessionOptions {
        repo: cli.repo.clone(),
        password_file: cli.password_file.clone(),
        identity: cli.identity.clone(),
        lock: crate::session::LockOptions {
            no_lock: cli.no_lock,
            retry: cli.retry_lock,
        },
    };
    Session::new(opts, choice)
}

/// Open the repository (strata.toml found as without `--repo`) and take
/// the lock `op` needs.
fn open_for(cli: &Cli, op: Operation, ev: &Arc<dyn Events>) -> crate::Result<(Repo, Lock)> {
    session(cli, ConfigChoice::Implicit)?.open_for(op, ev)
}

fn init(cli: &Cli, a: &args::InitArgs, ev: &Arc<dyn Events>) -> crate::Result<i32> {
    use crate::repo::keys::NewKey;
    let session = session(cli, ConfigChoice::Implicit)?;
    let path = session.repo_path()?;
    if crate::repo::holds_repository(&path) {
        // Before asking for a passphrase.
        return Err(crate::Error::Invalid(format!(
            "{}: a repository already exists here",
            path.display()
        )));
    }
    let key = if a.no_encryption {
        None
    } else if let Some(r) = &a.recipient {
        Some(NewKey::Recipient(r.clone()))
    } else {
        let src = session.unlock_sources();
        Some(NewKey::Passphrase {
            passphrase: crate::session::unlock::new_passphrase(None, &src, true, &**ev)?,
            log_n: a.scrypt_log_n,
        })
    };
    let repo = crate::Repo::init_reporting(&path, &a.to_options(key)?, ev.clone())?;
    let c = repo.config();
    output::line(&format!(
        "created {} repository {} at {} (chunks {}/{}/{} bytes, zstd {}, packs {} MiB)",
        if repo.crypto().is_some() {
            "encrypted"
        } else {
            "UNENCRYPTED"
        },
        c.repo_id.short(),
        path.display(),
        c.chunker.min,
        c.chunker.avg,
        c.chunker.max,
        c.compression_level,
        c.pack_target_size >> 20
    ))?;
    if repo.crypto().is_some() {
        eprintln!(
            "strata: the repository cannot be opened without its key: losing every passphrase \
             and identity loses the data. Consider `strata key add` for a second key."
        );
    }
    Ok(exit::OK)
}

fn run(cli: &Cli, ev: &Arc<dyn Events>) -> crate::Result<i32> {
    use Operation::{Maintain, Read};
    if let Some(t) = &cli.point_in_time {
        let ns = crate::snapshot::timefmt::parse_time(t, &jiff::tz::TimeZone::system())
            .map_err(|e| crate::Error::Invalid(format!("--point-in-time: {e}")))?;
        crate::backend::set_point_in_time(ns.div_euclid(1_000_000_000));
    }
    match &cli.command {
        Command::Init(a) => init(cli, a, ev),
        Command::Snapshot(a) => {
            let (repo, l) = open_for(cli, Operation::Snapshot, ev)?;
            snapshot::run(&repo, a, &l)
        }
        Command::Snapshots(a) => snapshots::run(&open_for(cli, Operation::Snapshots, ev)?.0, a),
        Command::Restore(a) => restore::run(cli, a, ev),
        Command::Run(a) => run::run(cli, a, ev),
        Command::Recover(a) => recover::run(cli, a, ev),
        Command::Drill(a) => drill::run(cli, a, ev),
        Command::Status(a) => status::run(cli, a, ev),
        Command::Schedule(a) => schedule::run(a),
        Command::Ls(a) => inspect::ls(&open_for(cli, Read("ls"), ev)?.0, a),
        Command::Cat(a) => inspect::cat(&open_for(cli, Read("cat"), ev)?.0, a),
        Command::Find(a) => inspect::find(&open_for(cli, Read("find"), ev)?.0, a),
        Command::Diff(a) => inspect::diff(&open_for(cli, Read("diff"), ev)?.0, a),
        Command::Stats(a) => inspect::stats(&open_for(cli, Read("stats"), ev)?.0, a),
        Command::Mount(a) => mount::run(&session(cli, ConfigChoice::Implicit)?, a, cli, ev),
        Command::Forget(a) => {
            let (repo, l) = open_for(cli, Maintain("forget"), ev)?;
            forget::run(&repo, a, &l)
        }
        Command::Gc(a) => {
            let (repo, l) = open_for(cli, Maintain("gc"), ev)?;
            gc::run(&repo, a, &l)
        }
        Command::Tag(a) => {
            let (repo, l) = open_for(cli, Maintain("tag"), ev)?;
            forget::tag(&repo, a, &l)
        }
        Command::Rewrite(a) => {
            let (repo, l) = open_for(cli, Maintain("rewrite"), ev)?;
            forget::rewrite(&repo, a, &l)
        }
        Command::Check(a) => check::run(&open_for(cli, Read("check"), ev)?.0, a),
        Command::RebuildIndex(a) => {
            check::rebuild_index(&open_for(cli, Maintain("rebuild-index"), ev)?.0, a)
        }
        Command::Repair(c) => {
            let (repo, l) = open_for(cli, Maintain("repair"), ev)?;
            repair::run(&repo, c, &l)
        }
        Command::Unlock(a) => locks::run(&open_for(cli, Operation::Unlock, ev)?.0, a),
        // no lock, no unlock unless needed: sync copies bytes (sync.md)
        Command::Sync(a) => {
            // with --from, the repository and its keys come from nowhere else
            let choice = match a.from {
                Some(_) => ConfigChoice::Nothing,
                None => ConfigChoice::Implicit,
            };
            sync::run(&session(cli, choice)?, a, ev)
        }
        Command::Key(k) => key::run(&session(cli, ConfigChoice::Implicit)?, k, ev),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "strata", &mut out);
            output::bytes(&out)?;
            Ok(exit::OK)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|e| crate::Error::Internal(format!("man page: {e}")))?;
            output::bytes(&out)?;
            Ok(exit::OK)
        }
    }
}
