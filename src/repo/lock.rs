//! Lock files in `locks/` (format-spec/repository.md "Locks"): shared locks
//! for commands that read or add, exclusive ones for commands that remove.
//! A lock is refreshed while its process runs; a lock that was not refreshed
//! for [`STALE_AFTER`], or whose process is gone on this host, is stale and
//! removed by the next locker. A process whose lock could not be refreshed
//! stops before it publishes anything ([`Lock::check`]). Locks are only the
//! first line of defence: gc's two-phase delete (format-spec/gc.md) keeps
//! data safe when they fail.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::repo::Repo;
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
            host: crate::sys::hostname(),
            pid: std::process::id(),
            time: crate::sys::rfc3339(crate::sys::unix_ns(SystemTime::now())),
            exclusive: kind == LockKind::Exclusive,
        }
    }

    /// Why this lock is stale, if it is: its process is gone on this host,
    /// or it was not refreshed for [`STALE_AFTER`].
    pub fn stale_reason(&self) -> Option<String> {
        if self.host == crate::sys::hostname() && !pid_alive(self.pid) {
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
    /// When the storage says the file was written (for unreadable locks).
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

/// Every lock file of the repository.
pub fn list(repo: &Repo) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    for (name, listed) in repo.list_files("locks")? {
        if crate::id::parse_hex32(&name).is_none() {
            continue;
        }
        let key = format!("locks/{name}");
        // None: removed (released) between listing and reading
        let Some(bytes) = repo.read_opt(&key)? else {
            continue;
        };
        // The storage's age of the file (mtime, Last-Modified): an
        // unreadable lock is stale by it alone.
        let mtime = listed.modified;
        let info = open_lock(repo, &bytes, &key).and_then(|plain| {
            serde_json::from_slice::<LockInfo>(&plain)
                .map_err(|err| Error::corrupt(&key, format!("not a lock: {err}")))
        });
        out.push(Listed { name, info, mtime });
    }
    Ok(out)
}

/// A lock's plaintext: encrypted locks are readable with the coordination
/// identity too (write-only.md), so a write-only host sees them.
fn open_lock(repo: &Repo, bytes: &[u8], key: &str) -> Result<Vec<u8>> {
    match repo.crypto() {
        Some(c) => Ok(c.decrypt_shared(bytes, key, 1 << 16)?.to_vec()),
        None => repo.open_bytes(bytes, key, 1 << 16),
    }
}

/// Remove one lock file by name.
pub fn remove(repo: &Repo, name: &str) -> Result<()> {
    repo.delete(&format!("locks/{name}"))?;
    Ok(())
}

/// Writes this process's lock files (also from the refresh thread).
#[derive(Clone, Debug)]
struct Writer {
    store: Arc<dyn Backend>,
    crypto: Option<Arc<crate::crypto::Crypto>>,
    kind: LockKind,
}

impl Writer {
    fn new(repo: &Repo, kind: LockKind) -> Writer {
        Writer {
            store: repo.store().clone(),
            crypto: repo.crypto().cloned(),
            kind,
        }
    }

    /// Write a new lock file (INV-1); returns its name and key.
    fn write(&self) -> Result<(String, String)> {
        let id: [u8; 32] = crate::sys::random_bytes()?;
        let name = crate::id::to_hex(&id);
        let key = format!("locks/{name}");
        let body = serde_json::to_vec(&LockInfo::now(self.kind))
            .map_err(|e| Error::Internal(format!("cannot encode lock: {e}")))?;
        // Encrypted in an encrypted repository: host and pid are not the
        // storage's business (threat-model.md).
        let bytes = match &self.crypto {
            Some(c) => c.encrypt_shared(&body)?,
            None => body,
        };
        // a new random name each time: create-only never meets another
        self.store.put_new(&key, &bytes)?;
        Ok((name, key))
    }
}

/// State shared with the refresh thread.
#[derive(Debug)]
struct Held {
    /// The current lock file's key (empty: no lock).
    path: Mutex<String>,
    /// Where it is.
    store: Option<Arc<dyn Backend>>,
    /// Where a failure to remove it is reported.
    events: Arc<dyn Events>,
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
                return Ok(Lock::start(writer, path, repo.events().clone()));
            };
            remove(repo, &name)?;
            let elapsed = start.elapsed();
            if elapsed >= retry {
                return Err(Error::RepoLocked(format!(
                    "{other}; wait (--retry-lock DURATION), or remove a stale lock with `strata unlock`"
                )));
            }
            if !waited {
                repo.events().notice(&format!("waiting for {other}"));
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
                path: Mutex::new(String::new()),
                store: None,
                events: crate::events::silent(),
                refreshed: Mutex::new(SystemTime::now()),
                failed: Mutex::new(None),
                stop: (Mutex::new(false), Condvar::new()),
            }),
            refresher: None,
            disabled: true,
        }
    }

    fn start(writer: Writer, path: String, events: Arc<dyn Events>) -> Lock {
        let held = Arc::new(Held {
            path: Mutex::new(path),
            store: Some(writer.store.clone()),
            events,
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
        if !exists(&self.held, &path) {
            return lost(format!("{path} was removed by another process"));
        }
        Ok(())
    }
}

/// Whether our lock file `key` is still there (an error reading it counts
/// as there: the refresh that follows will tell).
fn exists(held: &Held, key: &str) -> bool {
    match &held.store {
        Some(s) => s.exists(key).unwrap_or(true),
        None => true,
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
        if !exists(held, &old) {
            fail(held, format!("{old} was removed by another process"));
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
                let _ = writer.store.delete(&old);
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
            repo.events()
                .notice(&format!("removing stale lock {} ({why})", l.describe()));
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
        if let Some(store) = &self.held.store {
            match store.delete(&path) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => self
                    .held
                    .events
                    .warning(&format!("could not remove lock {path}: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unreadable lock is stale by the age the storage gives its file
    /// (a local mtime, an object's Last-Modified), and never without one.
    #[test]
    fn an_unreadable_lock_is_stale_by_its_storage_age() {
        let unreadable = |age: Option<Duration>| Listed {
            name: "ab".repeat(32),
            info: Err(Error::corrupt("locks/x", "not a lock")),
            mtime: age.and_then(|a| SystemTime::now().checked_sub(a)),
        };
        assert!(unreadable(None).stale_reason().is_none());
        assert!(
            unreadable(Some(Duration::from_secs(60)))
                .stale_reason()
                .is_none()
        );
        assert_eq!(
            unreadable(Some(STALE_AFTER + Duration::from_secs(60))).stale_reason(),
            Some("unreadable and old".to_string())
        );
    }
}
