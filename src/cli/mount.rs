//! `strata mount`: the FUSE session in the foreground, or a detached copy of
//! this process started with `--foreground` (the default), reported mounted
//! once the mount point shows a new file system.

use super::args::MountArgs;
use super::exit;
use crate::error::{Error, IoContext, Result};
use crate::events::Events;
use crate::mount::MountFs;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::lock::LockKind;
use crate::session::Session;
use crate::session::unlock::Used;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mounted(mp: &Path) -> bool {
    match (std::fs::metadata(mp), mp.parent().map(std::fs::metadata)) {
        (Ok(m), Some(Ok(p))) => m.dev() != p.dev(),
        _ => false,
    }
}

/// The repository is opened here (a bad repository or key is reported
/// here, not by a detached child); what unlocked it is handed to the
/// child. The detached parent only starts the child, which locks.
pub fn run(
    session: &Session,
    a: &MountArgs,
    cli: &super::Cli,
    ev: &Arc<dyn Events>,
) -> Result<i32> {
    let opened = session.open(ev)?;
    opened.repo.require_full("`mount`")?;
    let _l = if a.foreground {
        Some(session.lock(&opened.repo, LockKind::Shared)?)
    } else {
        None
    };
    let (repo, used) = (opened.repo, opened.used);
    let mp = std::path::absolute(&a.mountpoint).at(&a.mountpoint)?;
    if !mp.is_dir() {
        return Err(Error::Invalid(format!(
            "mount point {} is not a directory",
            mp.display()
        )));
    }
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::Invalid(
            "/dev/fuse is missing: FUSE is not available here".into(),
        ));
    }
    if !a.foreground {
        let exe = std::env::current_exe().at(Path::new("strata"))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--repo").arg(repo.name());
        if cli.no_lock {
            cmd.arg("--no-lock");
        }
        if let Some(d) = cli.retry_lock {
            cmd.arg("--retry-lock")
                .arg(humantime::format_duration(d).to_string());
        }
        // The child unlocks with what unlocked us: an identity file by
        // path, a passphrase through a pipe (never argv or the environment).
        let pass = match &used {
            Some(Used::Identity(p)) => {
                cmd.arg("--identity").arg(p);
                None
            }
            Some(Used::Passphrase(p)) => {
                cmd.arg("--password-file").arg("/dev/stdin");
                Some(p.clone())
            }
            None => None,
        };
        crate::sys::scrub(&mut cmd)
            .arg("mount")
            .arg("--foreground")
            .arg(&mp)
            .stdin(if pass.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Invalid(format!("cannot start the mount process: {e}")))?;
        if let (Some(p), Some(mut stdin)) = (pass, child.stdin.take()) {
            use age::secrecy::ExposeSecret;
            use std::io::Write;
            let _ = stdin.write_all(p.expose_secret().as_bytes());
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if mounted(&mp) {
                super::output::line(&format!(
                    "mounted at {} (pid {}); unmount with `fusermount3 -u {}` or `umount {}`",
                    mp.display(),
                    child.id(),
                    mp.display(),
                    mp.display()
                ))?;
                return Ok(exit::OK);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::Invalid(format!(
                    "mount failed ({status}); run with --foreground to see why"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        return Err(Error::Invalid("mount did not appear within 20 s".into()));
    }
    foreground(repo, &mp)
}

use std::os::unix::process::CommandExt;

fn foreground(repo: Repo, mp: &Path) -> Result<i32> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // The session outlives this function's borrows: the repository lives
    // for the rest of the process.
    let repo: &'static Repo = Box::leak(Box::new(repo));
    let reader = BlobReader::reporting(repo)?;
    let snaps = crate::snapshot::readable(repo)?;
    let fs = MountFs::new(reader, snaps);
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::Internal(format!("cannot install signal handlers: {e}")))?;
    let mut cfg = fuser::Config::default();
    cfg.mount_options.extend([
        fuser::MountOption::RO,
        fuser::MountOption::FSName("strata".into()),
    ]);
    cfg.n_threads = Some(2);
    let session = fuser::spawn_mount(fs, mp, &cfg).at(mp)?;
    eprintln!("strata: mounted at {}; Ctrl-C to unmount", mp.display());
    loop {
        if signals.pending().next().is_some() {
            break;
        }
        if session.guard.is_finished() {
            // unmounted from outside (umount, fusermount -u)
            return match session.join() {
                Ok(()) => Ok(exit::OK),
                Err(e) => Err(e).at(mp),
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    session.umount_and_join().at(mp)?;
    eprintln!("strata: unmounted {}", mp.display());
    Ok(exit::OK)
}
