//! Lock files in `locks/` (format-spec/repository.md "Locks"): shared locks
//! for commands that read or add, exclusive ones for commands that remove.
//! A lock is refreshed while its process runs; a lock that was not refreshed
//! for [`STALE_AFTER`], or whose process is gone on this host, is stale and
//! removed by the next locker. A process whose lock could not be refreshed
//! stops before it publishes anything ([`Lock::check`]). Locks are only the
//! first line of defence: gc's two-phase delete (format-spec/gc.md) keeps
//! data safe when they fail.

use crate::error::{Error, IoContext, Result};
use crate::repo::{Repo, fsutil};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// How often a held lock is refreshed (`STRATA_LOCK_REFRESH` overrides it,
/// for tests).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// Shared or exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Many at once; excludes exclusive locks.
    Shared,
    /// Alone.
    Exclusive,
}

/// What a lock file says.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LockInfo {
    /// Host name of the holder.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it was taken or last refreshed (RFC 3339).
    pub time: String,
    /// Exclusive or shared.
    pub exclusive: bool,
}

impl LockInfo {
    fn now(kind: LockKind) -> LockInfo {
        LockInfo {
            host: crate::repo::hostname(),
            pid: std::process::id(),
            time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            exclusive: kind == LockKind::Exclusive,
        }
    }

    /// Why this lock is stale, if it is: its process is gone on this host,
    /// or it was not refreshed for [`STALE_AFTER`].
    pub fn stale_reason(&self) -> Option<String> {
        if self.host == crate::repo::hostname() && !pid_alive(self.pid) {
            return Some(format!("process {} is gone", self.pid));
        }
        let t = humantime::parse_rfc3339(&self.time).ok()?;
        let age = SystemTime::now().duration_since(t).unwrap_or_default();
        (age > STALE_AFTER).then(|| {
            format!(
                "not refreshed for {}",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            )
        })
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} lock of {} pid {} (refreshed {})",
            if self.exclusive {
                "an exclusive"
            } else {
                "a shared"
            },
            self.host,
            self.pid,
            self.time
        )
    }
}

fn pid_alive(pid: u32) -> bool {
    let Some(p) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process(p) {
        Ok(()) => true,
        Err(e) => e != rustix::io::Errno::SRCH,
    }
}

/// A lock file in the repository, as listed.
#[derive(Debug)]
pub struct Listed {
    /// File name in `locks/`.
    pub name: String,
    /// Its content, or why it could not be read.
    pub info: Result<LockInfo>,
    /// File modification time (for unreadable locks).
    pub mtime: Option<SystemTime>,
}

impl Listed {
    /// Why the lock is stale, if it is. An unreadable lock is stale when
    /// its file is older than [`STALE_AFTER`].
    pub fn stale_reason(&self) -> Option<String> {
        match &self.info {
            Ok(i) => i.stale_reason(),
            Err(_) => {
                let age = SystemTime::now()
                    .duration_since(self.mtime?)
                    .unwrap_or_default();
                (age > STALE_AFTER).then(|| "unreadable and old".to_string())
            }
        }
    }
    fn exclusive(&self) -> bool {
        // An unreadable lock is taken to be exclusive.
        self.info.as_ref().map(|i| i.exclusive).unwrap_or(true)
    }
    /// One line for messages.
    pub fn describe(&self) -> String {
        match &self.info {
            Ok(i) => format!("locks/{}: {}", self.name, i.describe()),
            Err(e) => format!("locks/{}: unreadable ({e})", self.name),
        }
    }
}

fn locks_dir(repo: &Repo) -> PathBuf {
    repo.root().join("locks")
}

/// Every lock file of the repository.
pub fn list(repo: &Repo) -> Result<Vec<Listed>> {
    let dir = locks_dir(repo);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).at(&dir)? {
        let e = e.at(&dir)?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if crate::id::parse_hex32(&name).is_none() {
            continue;
        }
        let path = e.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err).at(&path),
        };
        let mtime = e.metadata().ok().and_then(|m| m.modified().ok());
        let info = repo
            .open_bytes(&bytes, &format!("locks/{name}"), 1 << 16)
            .and_then(|plain| {
                serde_json::from_slice::<LockInfo>(&plain).map_err(|err| {
                    Error::corrupt(format!("locks/{name}"), format!("not a lock: {err}"))
                })
            });
        out.push(Listed { name, info, mtime });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Remove one lock file by name.
pub fn remove(repo: &Repo, name: &str) -> Result<()> {
    let p = locks_dir(repo).join(name);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(&p),
    }
}

/// Writes this process's lock files (also from the refresh thread).
#[derive(Clone, Debug)]
struct Writer {
    root: PathBuf,
    crypto: Option<Arc<crate::crypto::Crypto>>,
    kind: LockKind,
}

impl Writer {
    fn new(repo: &Repo, kind: LockKind) -> Writer {
        Writer {
            root: repo.root().to_path_buf(),
            crypto: repo.crypto().cloned(),
            kind,
        }
    }

    /// Write a new lock file (INV-1); returns its name and path.
    fn write(&self) -> Result<(String, PathBuf)> {
        let id: [u8; 32] = fsutil::random_bytes()?;
        let name = crate::id::to_hex(&id);
        let path = self.root.join("locks").join(&name);
        let body = serde_json::to_vec(&LockInfo::now(self.kind))
            .map_err(|e| Error::Invalid(format!("cannot encode lock: {e}")))?;
        // Encrypted in an encrypted repository: host and pid are not the
        // storage's business (threat-model.md).
        let bytes = match &self.crypto {
            Some(c) => c.encrypt(&body)?,
            None => body,
        };
        fsutil::write_atomic(&self.root.join("tmp"), &path, &bytes)?;
        Ok((name, path))
    }
}

/// State shared with the refresh thread.
#[derive(Debug)]
struct Held {
    /// The current lock file.
    path: Mutex<PathBuf>,
    /// Wall-clock time of the last successful write of the lock file.
    refreshed: Mutex<SystemTime>,
    /// Why a refresh failed, if one did.
    failed: Mutex<Option<String>>,
    stop: (Mutex<bool>, Condvar),
}

/// A held lock; removed when dropped.
#[derive(Debug)]
pub struct Lock {
    held: Arc<Held>,
    refresher: Option<std::thread::JoinHandle<()>>,
    disabled: bool,
}

/// Print stale-lock removals and waits on stderr (a CLI concern, but the
/// messages must appear while a command waits).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Silence lock messages (tests of the library).
pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

fn say(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("strata: {msg}");
    }
}

impl Lock {
    /// Take a lock of `kind`, waiting up to `retry` for conflicting locks to
    /// go away. Stale locks are removed, each with a message naming it.
    /// `STRATA_UNSAFE_NO_LOCKS=1` takes no lock at all (for tests).
    pub fn acquire(repo: &Repo, kind: LockKind, retry: Duration) -> Result<Lock> {
        if std::env::var_os("STRATA_UNSAFE_NO_LOCKS").is_some_and(|v| v == "1") {
            // Tests only: simulates a lock that failed, to show that the
            // two-phase delete alone keeps data safe (format-spec/gc.md).
            return Ok(Lock::none());
        }
        let start = Instant::now();
        let mut waited = false;
        let writer = Writer::new(repo, kind);
        loop {
            let (name, path) = writer.write()?;
            let conflict = conflicts(repo, &name, kind)?;
            let Some(other) = conflict else {
                return Ok(Lock::start(writer, path));
            };
            remove(repo, &name)?;
            let elapsed = start.elapsed();
            if elapsed >= retry {
                return Err(Error::RepoLocked(format!(
                    "{other}; wait (--retry-lock DURATION), or remove a stale lock with `strata unlock`"
                )));
            }
            if !waited {
                say(&format!("waiting for {other}"));
                waited = true;
            }
            let mut r = [0u8; 2];
            let _ = getrandom::fill(&mut r);
            let jitter = Duration::from_millis(200 + u64::from(u16::from_le_bytes(r)) % 800);
            std::thread::sleep(jitter.min(retry - elapsed));
        }
    }

    /// A lock that does nothing (`--no-lock` on read-only commands).
    pub fn none() -> Lock {
        Lock {
            held: Arc::new(Held {
                path: Mutex::new(PathBuf::new()),
                refreshed: Mutex::new(SystemTime::now()),
                failed: Mutex::new(None),
                stop: (Mutex::new(false), Condvar::new()),
            }),
            refresher: None,
            disabled: true,
        }
    }

    fn start(writer: Writer, path: PathBuf) -> Lock {
        let held = Arc::new(Held {
            path: Mutex::new(path),
            refreshed: Mutex::new(SystemTime::now()),
            failed: Mutex::new(None),
            stop: (Mutex::new(false), Condvar::new()),
        });
        let every = refresh_interval();
        let h = held.clone();
        let refresher = std::thread::Builder::new()
            .name("strata-lock".into())
            .spawn(move || refresh_loop(&writer, &h, every))
            .ok();
        Lock {
            held,
            refresher,
            disabled: false,
        }
    }

    /// Fail if this process may no longer rely on its lock: a refresh
    /// failed, the lock file was removed by someone else, or the last
    /// refresh is so old that others may already consider it stale. Called
    /// before publishing anything (a snapshot, a gc state, a deletion).
    pub fn check(&self) -> Result<()> {
        if self.disabled {
            return Ok(());
        }
        let lost = |why: String| {
            Err(Error::RepoLocked(format!(
                "lost the repository lock: {why}; nothing was published"
            )))
        };
        if let Some(why) = self.held.failed.lock().ok().and_then(|f| f.clone()) {
            return lost(why);
        }
        let refreshed = self
            .held
            .refreshed
            .lock()
            .map(|t| *t)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let age = SystemTime::now()
            .duration_since(refreshed)
            .unwrap_or_default();
        if age > STALE_AFTER - STALE_AFTER / 6 {
            return lost(format!(
                "not refreshed for {} (the process was suspended?)",
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            ));
        }
        let path = self.held.path.lock().map(|p| p.clone()).unwrap_or_default();
        if !path.exists() {
            return lost(format!("{} was removed by another process", display(&path)));
        }
        Ok(())
    }
}

fn display(p: &Path) -> String {
    match p.file_name() {
        Some(n) => format!("locks/{}", n.to_string_lossy()),
        None => p.display().to_string(),
    }
}

fn refresh_interval() -> Duration {
    std::env::var("STRATA_LOCK_REFRESH")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(REFRESH_EVERY)
}

/// Every `every`: write a new lock file with a new time, then remove the old
/// one. If the old one is gone (removed as stale by someone else), the lock
/// is lost: record the failure and stop refreshing.
fn refresh_loop(writer: &Writer, held: &Held, every: Duration) {
    let (stop, cv) = &held.stop;
    loop {
        let Ok(guard) = stop.lock() else { return };
        let Ok((guard, _)) = cv.wait_timeout_while(guard, every, |s| !*s) else {
            return;
        };
        if *guard {
            return;
        }
        drop(guard);
        let old = held.path.lock().map(|p| p.clone()).unwrap_or_default();
        if !old.exists() {
            fail(
                held,
                format!("{} was removed by another process", display(&old)),
            );
            return;
        }
        match writer.write() {
            Ok((_, new)) => {
                if let Ok(mut p) = held.path.lock() {
                    *p = new;
                }
                if let Ok(mut t) = held.refreshed.lock() {
                    *t = SystemTime::now();
                }
                let _ = std::fs::remove_file(&old);
            }
            Err(e) => {
                fail(held, format!("cannot refresh the lock: {e}"));
                return;
            }
        }
    }
}

fn fail(held: &Held, why: String) {
    if let Ok(mut f) = held.failed.lock() {
        *f = Some(why);
    }
}

/// The first lock that conflicts with taking `kind` (ours is `own`),
/// removing stale ones on the way.
fn conflicts(repo: &Repo, own: &str, kind: LockKind) -> Result<Option<String>> {
    for l in list(repo)? {
        if l.name == own {
            continue;
        }
        if let Some(why) = l.stale_reason() {
            say(&format!("removing stale lock {} ({why})", l.describe()));
            remove(repo, &l.name)?;
            continue;
        }
        if kind == LockKind::Exclusive || l.exclusive() {
            return Ok(Some(format!("the repository is locked: {}", l.describe())));
        }
    }
    Ok(None)
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.disabled {
            return;
        }
        {
            let (stop, cv) = &self.held.stop;
            if let Ok(mut s) = stop.lock() {
                *s = true;
            }
            cv.notify_all();
        }
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let path = self.held.path.lock().map(|p| p.clone()).unwrap_or_default();
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                say(&format!(
                    "warning: could not remove lock {}: {e}",
                    display(&path)
                ));
            }
        }
    }
}
