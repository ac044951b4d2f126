//! Command-line interface: clap definitions (the single source of help text,
//! completions and the man page), turned into validated engine options. The
//! engine never imports clap. Exit codes are documented in README.md.

mod args;
mod inspect;
mod key;
mod mount;
mod output;
mod progress;
mod restore;
mod snapshot;
mod snapshots;
mod unlock;

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
    /// The `--stdin-from-command` command failed; no snapshot saved.
    pub const SOURCE_FAILED: i32 = 4;
    /// The repository does not exist or is not a repository.
    pub const NO_REPO: i32 = 10;
    /// Wrong passphrase or key, or no way to ask for one.
    pub const LOCKED: i32 = 12;
}

fn exit_code(e: &crate::Error) -> i32 {
    use crate::Error as E;
    match e {
        E::NoRepository(_) | E::NotARepository { .. } => exit::NO_REPO,
        E::SourceCommand { .. } => exit::SOURCE_FAILED,
        E::WrongKey(_) | E::Locked(_) => exit::LOCKED,
        _ => exit::ERROR,
    }
}

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
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
        eprintln!("strata: warning: skipping unreadable pack: {w}");
    }
    Ok(reader)
}

fn repo_path(cli: &Cli) -> crate::Result<PathBuf> {
    cli.repo.clone().ok_or_else(|| {
        crate::Error::Invalid("no repository given: use --repo PATH or set STRATA_REPO".into())
    })
}

fn sources(cli: &Cli) -> unlock::Sources {
    unlock::Sources {
        password_file: cli.password_file.clone(),
        identity: cli.identity.clone(),
    }
}

/// Open the repository, unlocking it if it is encrypted; also returns what
/// unlocked it.
fn open_repo(cli: &Cli) -> crate::Result<(crate::Repo, Option<unlock::Used>)> {
    let path = repo_path(cli)?;
    let src = sources(cli);
    let mut used = None;
    let repo = crate::Repo::open_with(&path, &mut || {
        let (cred, u) = unlock::credential(&src)?;
        used = Some(u);
        Ok(cred)
    })?;
    Ok((repo, used))
}

fn open(cli: &Cli) -> crate::Result<crate::Repo> {
    Ok(open_repo(cli)?.0)
}

fn init(cli: &Cli, a: &args::InitArgs) -> crate::Result<i32> {
    use crate::crypto::keys::NewKey;
    let path = repo_path(cli)?;
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
            passphrase: unlock::new_passphrase(None, &sources(cli), true)?,
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

fn run(cli: Cli) -> crate::Result<i32> {
    match &cli.command {
        Command::Init(a) => init(&cli, a),
        Command::Snapshot(a) => snapshot::run(&open(&cli)?, a),
        Command::Snapshots(a) => snapshots::run(&open(&cli)?, a),
        Command::Restore(a) => restore::run(&open(&cli)?, a),
        Command::Ls(a) => inspect::ls(&open(&cli)?, a),
        Command::Cat(a) => inspect::cat(&open(&cli)?, a),
        Command::Find(a) => inspect::find(&open(&cli)?, a),
        Command::Diff(a) => inspect::diff(&open(&cli)?, a),
        Command::Stats(a) => inspect::stats(&open(&cli)?, a),
        Command::Mount(a) => {
            let (repo, used) = open_repo(&cli)?;
            mount::run(repo, used, a)
        }
        Command::Key(k) => key::run(&cli, &open(&cli)?, k),
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
