//! Command-line interface: clap definitions (the single source of help text,
//! completions and the man page), turned into validated engine options. The
//! engine never imports clap. Exit codes are documented in README.md.

mod args;
mod check;
mod forget;
mod gc;
mod inspect;
mod key;
mod locks;
mod mount;
mod output;
pub(crate) mod progress;
mod repair;
mod restore;
mod run;
mod schedule;
mod snapshot;
mod snapshots;
mod status;
mod sync;
mod unlock;

use crate::repo::lock::{Lock, LockKind};
pub use args::Cli;
use args::Command;
use clap::{CommandFactory, Parser};
use std::path::PathBuf;

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
    /// Wrong passphrase or key, or no way to ask for one.
    pub const LOCKED: i32 = 12;
}

fn exit_code(e: &crate::Error) -> i32 {
    use crate::Error as E;
    match e {
        E::NoRepository(_) | E::NotARepository { .. } => exit::NO_REPO,
        E::SourceCommand { .. } => exit::SOURCE_FAILED,
        E::WrongKey(_) | E::Locked(_) => exit::LOCKED,
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
    match run(cli) {
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

/// Every readable snapshot, oldest first; unreadable manifests are reported
/// as warnings on stderr and skipped.
fn readable_snapshots(repo: &crate::Repo) -> crate::Result<crate::snapshot::Listed> {
    let (list, bad) = crate::snapshot::list(repo)?;
    for e in &bad {
        eprintln!("strata: warning: skipping unreadable snapshot: {e}");
    }
    Ok(list)
}

/// A blob reader after reconciling the index with the packs
/// ([`crate::read::BlobReader::reconciled`]); packs skipped as unreadable are
/// reported as warnings on stderr.
fn blob_reader(repo: &crate::Repo) -> crate::Result<crate::read::BlobReader<'_>> {
    let (reader, skipped) = crate::read::BlobReader::reconciled(repo)?;
    for w in &skipped {
        eprintln!("strata: warning: {w}");
    }
    Ok(reader)
}

/// The repository: `--repo` / STRATA_REPO, else `repository` in the
/// strata.toml that [`implicit_config`] finds.
fn repo_path(cli: &Cli) -> crate::Result<PathBuf> {
    repo_path_with(cli, implicit_config(cli)?.as_ref())
}

/// `--repo` / STRATA_REPO, else `repository` in `cfg`.
fn repo_path_with(cli: &Cli, cfg: Option<&crate::policy::Config>) -> crate::Result<PathBuf> {
    match (&cli.repo, cfg.and_then(|c| c.repository.clone())) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(p)) => Ok(p),
        (None, None) => Err(crate::Error::Invalid(format!(
            "no repository given: use --repo PATH, STRATA_REPO{}",
            cfg.map(|c| format!(" or `repository` in {}", c.path.display()))
                .unwrap_or_else(|| " or `repository` in strata.toml".into())
        ))),
    }
}

/// The strata.toml a command without `--repo` takes its repository and
/// unlocking keys from, as `run` finds it: STRATA_CONFIG, else
/// ./strata.toml, else ~/.config/strata/strata.toml. None when there is
/// none or `--repo` was given; an error when the one found is invalid.
fn implicit_config(cli: &Cli) -> crate::Result<Option<crate::policy::Config>> {
    if cli.repo.is_some() {
        return Ok(None);
    }
    let env = std::env::var_os("STRATA_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    found_config(env.as_deref())
}

/// The strata.toml `explicit` names, else the first of ./strata.toml and
/// ~/.config/strata/strata.toml that exists, loaded; None when there is
/// none, an error when it is invalid.
fn found_config(
    explicit: Option<&std::path::Path>,
) -> crate::Result<Option<crate::policy::Config>> {
    match crate::policy::config::find(explicit) {
        Ok(p) => crate::policy::config::load(&p).map(Some),
        Err(_) => Ok(None),
    }
}

fn sources(cli: &Cli) -> unlock::Sources {
    unlock::Sources {
        password_file: cli.password_file.clone(),
        identity: cli.identity.clone(),
        config: Default::default(),
    }
}

/// [`sources`], with strata.toml's unlocking keys after them.
fn sources_with(cli: &Cli, cfg: Option<&crate::policy::Config>) -> unlock::Sources {
    let mut src = sources(cli);
    if let Some(c) = cfg {
        src.config = unlock::ConfigUnlock {
            password_file: c.password_file.clone(),
            password_command: c.password_command.clone(),
            identity: c.identity.clone(),
        };
    }
    src
}

/// Open the repository, unlocking it if it is encrypted; also returns what
/// unlocked it.
fn open_repo(cli: &Cli) -> crate::Result<(crate::Repo, Option<unlock::Used>)> {
    open_repo_with(cli, implicit_config(cli)?.as_ref())
}

/// [`open_repo`], with strata.toml's `repository` and unlocking keys used
/// where the command line and the environment give none.
fn open_repo_with(
    cli: &Cli,
    cfg: Option<&crate::policy::Config>,
) -> crate::Result<(crate::Repo, Option<unlock::Used>)> {
    let path = repo_path_with(cli, cfg)?;
    let src = sources_with(cli, cfg);
    let mut used = None;
    let opts = open_options(&src, cfg);
    let repo = crate::Repo::open_with_options(
        &path,
        &mut || {
            let (cred, u) = unlock::credential(&src)?;
            used = Some(u);
            Ok(cred)
        },
        &opts,
    )?;
    Ok((repo, used))
}

/// What an open refuses (threat-model.md "Downgrade"): an unencrypted
/// repository when a credential is given, or when strata.toml says
/// `require_encryption = true`; `require_encryption = false` allows it.
fn open_options(
    src: &unlock::Sources,
    cfg: Option<&crate::policy::Config>,
) -> crate::repo::OpenOptions {
    let require_encryption = match cfg.and_then(|c| c.require_encryption.map(|r| (r, c))) {
        Some((false, _)) => None,
        Some((true, c)) => Some(format!(
            "{} says require_encryption = true",
            c.path.display()
        )),
        None => unlock::configured(src),
    };
    crate::repo::OpenOptions { require_encryption }
}

fn open(cli: &Cli) -> crate::Result<crate::Repo> {
    Ok(open_repo(cli)?.0)
}

fn init(cli: &Cli, a: &args::InitArgs) -> crate::Result<i32> {
    use crate::crypto::keys::NewKey;
    let cfg = implicit_config(cli)?;
    let path = repo_path_with(cli, cfg.as_ref())?;
    if path.join("config").exists() {
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
        Some(NewKey::Passphrase {
            passphrase: unlock::new_passphrase(None, &sources_with(cli, cfg.as_ref()), true)?,
            log_n: a.scrypt_log_n,
        })
    };
    let repo = crate::Repo::init(&path, &a.to_options(key)?)?;
    let c = repo.config();
    output::line(&format!(
        "created {} repository {} at {} (chunks {}/{}/{} bytes, zstd {}, packs {} MiB)",
        if repo.crypto().is_some() {
            "encrypted"
        } else {
            "UNENCRYPTED"
        },
        &crate::id::to_hex(&c.repo_id)[..8],
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

/// Take a lock of `kind` as the global options say (`--retry-lock`,
/// `--no-lock`; format-spec/repository.md "Locks").
fn lock(cli: &Cli, repo: &crate::Repo, kind: LockKind) -> crate::Result<Lock> {
    if cli.no_lock {
        return Ok(Lock::none());
    }
    Lock::acquire(repo, kind, cli.retry_lock.unwrap_or_default())
}

/// `--no-lock` is refused for commands that write.
fn writes(cli: &Cli, what: &str) -> crate::Result<()> {
    if cli.no_lock {
        return Err(crate::Error::Invalid(format!(
            "--no-lock is for read-only commands; `{what}` changes the repository"
        )));
    }
    Ok(())
}

/// Open the repository and take a lock for a command.
fn open_locked(cli: &Cli, kind: LockKind, what: &str) -> crate::Result<(crate::Repo, Lock)> {
    if kind == LockKind::Exclusive || what == "snapshot" {
        writes(cli, what)?;
    }
    let repo = open(cli)?;
    let l = lock(cli, &repo, kind)?;
    Ok((repo, l))
}

fn run(cli: Cli) -> crate::Result<i32> {
    use LockKind::{Exclusive, Shared};
    match &cli.command {
        Command::Init(a) => init(&cli, a),
        Command::Snapshot(a) => {
            let (repo, l) = open_locked(&cli, Shared, "snapshot")?;
            snapshot::run(&repo, a, &l)
        }
        Command::Snapshots(a) => snapshots::run(&open(&cli)?, a),
        Command::Restore(a) => restore::run(&cli, a),
        Command::Run(a) => run::run(&cli, a),
        Command::Status(a) => status::run(&cli, a),
        Command::Schedule(a) => schedule::run(a),
        Command::Ls(a) => {
            let (repo, _l) = open_locked(&cli, Shared, "ls")?;
            inspect::ls(&repo, a)
        }
        Command::Cat(a) => {
            let (repo, _l) = open_locked(&cli, Shared, "cat")?;
            inspect::cat(&repo, a)
        }
        Command::Find(a) => {
            let (repo, _l) = open_locked(&cli, Shared, "find")?;
            inspect::find(&repo, a)
        }
        Command::Diff(a) => {
            let (repo, _l) = open_locked(&cli, Shared, "diff")?;
            inspect::diff(&repo, a)
        }
        Command::Stats(a) => {
            let (repo, _l) = open_locked(&cli, Shared, "stats")?;
            inspect::stats(&repo, a)
        }
        Command::Mount(a) => {
            let (repo, used) = open_repo(&cli)?;
            // The detached parent only starts the child, which locks.
            let _l = if a.foreground {
                Some(lock(&cli, &repo, Shared)?)
            } else {
                None
            };
            mount::run(repo, used, a, &cli)
        }
        Command::Forget(a) => {
            let (repo, l) = open_locked(&cli, Exclusive, "forget")?;
            forget::run(&repo, a, &l)
        }
        Command::Gc(a) => {
            let (repo, l) = open_locked(&cli, Exclusive, "gc")?;
            gc::run(&repo, a, &l)
        }
        Command::Tag(a) => {
            let (repo, l) = open_locked(&cli, Exclusive, "tag")?;
            forget::tag(&repo, a, &l)
        }
        Command::Rewrite(a) => {
            let (repo, l) = open_locked(&cli, Exclusive, "rewrite")?;
            forget::rewrite(&repo, a, &l)
        }
        Command::Check(a) => {
            let (repo, _l) = open_locked(&cli, Shared, "check")?;
            check::run(&repo, a)
        }
        Command::RebuildIndex(a) => {
            let (repo, _l) = open_locked(&cli, Exclusive, "rebuild-index")?;
            check::rebuild_index(&repo, a)
        }
        Command::Repair(c) => {
            let (repo, l) = open_locked(&cli, Exclusive, "repair")?;
            repair::run(&repo, c, &l)
        }
        Command::Unlock(a) => locks::run(&open(&cli)?, a),
        // no lock, no unlock unless needed: sync copies bytes (sync.md)
        Command::Sync(a) => sync::run(&cli, a),
        Command::Key(k) => {
            let exclusive = !matches!(
                k,
                args::KeyCommand::List { .. } | args::KeyCommand::ExportIdentity
            );
            let (repo, _l) = if exclusive {
                open_locked(&cli, Exclusive, "key")?
            } else {
                (open(&cli)?, Lock::none())
            };
            key::run(&cli, &repo, k)
        }
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
                .map_err(|e| crate::Error::Invalid(format!("man page: {e}")))?;
            output::bytes(&out)?;
            Ok(exit::OK)
        }
    }
}
