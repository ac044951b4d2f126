//! `sqlite = "app.db"` sources: a consistent copy of a live database,
//! taken with SQLite's online backup API (`rusqlite::backup`) into a
//! private temp file, which `run` then stores as one file. The copy is of
//! one committed state: the backup copies every page in one step under a
//! read transaction (a writer in WAL mode is not blocked; a writer with a
//! rollback journal waits up to its busy timeout), never a torn file.

use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A temp file removed when dropped.
#[derive(Debug)]
pub struct TempCopy {
    path: PathBuf,
}

impl TempCopy {
    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Copy the database `db` into a new private file (mode 0600) under the
/// system temp directory (`TMPDIR`). Errors name the database.
pub fn copy(db: &Path) -> Result<TempCopy> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::Invalid(format!("sqlite {}: {what}: {e}", db.display()))
    };
    if !db.is_file() {
        return Err(Error::NotFound(format!(
            "sqlite {}: no such database file",
            db.display()
        )));
    }
    // Read-write when allowed (a WAL database's -shm may need it), never
    // created; read-only otherwise.
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .or_else(|_| {
        Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    })
    .map_err(|e| fail("cannot open", &e))?;
    src.busy_timeout(Duration::from_secs(60))
        .map_err(|e| fail("busy timeout", &e))?;
    let path = std::env::temp_dir().join(format!(
        "strata-sqlite-{}-{}.db",
        std::process::id(),
        crate::sys::now_ns()
    ));
    // Create it private before SQLite opens it.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| fail(&format!("cannot create {}", path.display()), &e))?;
    let out = TempCopy { path };
    let mut dst = Connection::open(out.path()).map_err(|e| fail("temp copy", &e))?;
    {
        let b = rusqlite::backup::Backup::new(&src, &mut dst)
            .map_err(|e| fail("cannot start the online backup", &e))?;
        // -1: every page in one step, so the copy is one committed state;
        // on SQLITE_BUSY/LOCKED (a writer holds its lock), retry after a
        // pause, for at most a minute.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            use rusqlite::backup::StepResult;
            match b.step(-1).map_err(|e| fail("online backup", &e))? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if std::time::Instant::now() > deadline => {
                    return Err(fail(
                        "online backup",
                        &"the database stayed locked for 60 s",
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    dst.close().map_err(|(_, e)| fail("temp copy", &e))?;
    Ok(out)
}
