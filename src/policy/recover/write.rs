//! The restore step of a recovery, always verified:
//! - a paths source: each of its paths from the snapshot, into itself,
//!   as `restore SNAPSHOT:PATH --target PATH --delete --verify` (what the
//!   path holds becomes what the snapshot holds; written files are read
//!   back and their chunks hashed);
//! - a sqlite source: the stored database written beside its `sqlite` path
//!   (a temp name in the same directory), synced, read back and compared
//!   (BLAKE3), given the old file's mode and owner, then renamed over it;
//!   a `-wal`, `-shm` or `-journal` file of the replaced database is
//!   removed (it belongs to the old one and would be applied to the new);
//! - a command source: the stored file streamed into `restore_command`
//!   (every chunk is checked against its id as it is read).

use super::command;
use super::plan::Planned;
use crate::error::{Error, IoContext, Result};
use crate::inspect;
use crate::policy::SourceKind;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::restore::{self, Progress, RestoreOptions};
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{Entry, EntryKind};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Restore source `p` from its chosen snapshot: a one-line detail.
pub(super) fn restore(repo: &Repo, p: &Planned) -> Result<String> {
    let Some((id, snap)) = &p.chosen else {
        return Err(Error::Invalid(format!("{}: no snapshot chosen", p.source)));
    };
    let what = match &p.src.kind {
        SourceKind::Paths { .. } => paths(repo, snap, p)?,
        SourceKind::Sqlite { db, file } => sqlite(repo, snap, file, db)?,
        SourceKind::Command { file, .. } => {
            let cmd = p
                .restore_command
                .as_deref()
                .ok_or_else(|| Error::Invalid(format!("{}: no restore_command", p.source)))?;
            into_command(repo, snap, file, cmd)?
        }
    };
    Ok(format!("{what} from snapshot {}", id.short()))
}

/// Each path of the plan, into itself.
fn paths(repo: &Repo, snap: &Snapshot, p: &Planned) -> Result<String> {
    let (mut files, mut bytes, mut verified, mut deleted) = (0, 0, 0, 0);
    for t in &p.targets {
        let opts = RestoreOptions {
            target: t.clone(),
            delete: true,
            verify: true,
            ..RestoreOptions::default()
        };
        let r = restore::run(
            repo,
            snap,
            Some(t.as_os_str().as_bytes()),
            &opts,
            &Progress::default(),
        )
        .map_err(|e| Error::Invalid(format!("restoring {}: {e}", t.display())))?;
        for w in &r.warnings {
            repo.events().warning(&format!("{}: {w}", t.display()));
        }
        files += r.files;
        bytes += r.bytes;
        verified += r.verified;
        deleted += r.deleted;
    }
    Ok(format!(
        "restored {} paths: {files} files, {bytes} bytes, {verified} verified, {deleted} removed",
        p.targets.len()
    ))
}

/// The file `/name` of `snap`, and a reader for it.
pub(super) fn stored_file<'r>(
    repo: &'r Repo,
    snap: &Snapshot,
    name: &str,
) -> Result<(BlobReader<'r>, Entry)> {
    let reader = BlobReader::reporting(repo)?;
    let found = inspect::locate(&reader, snap, format!("/{name}").as_bytes())?;
    match found.entry {
        Some(e) if e.kind() == EntryKind::File => Ok((reader, e)),
        _ => Err(Error::Invalid(format!(
            "/{name} in the snapshot is not a regular file"
        ))),
    }
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hash: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The stored database `/file` of `snap`, over `db`.
fn sqlite(repo: &Repo, snap: &Snapshot, file: &str, db: &Path) -> Result<String> {
    let (reader, e) = stored_file(repo, snap, file)?;
    let dir = db.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).at(dir)?;
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let token = crate::id::to_hex(&crate::sys::random_bytes::<6>()?);
    let tmp = dir.join(format!(".{name}.strata-recover-{token}"));
    let written = write_checked(&reader, &e, &tmp);
    let done = written.and_then(|(hash, len)| {
        let back = hash_file(&tmp)?;
        if back != (hash, len) || len != e.size {
            return Err(Error::Invalid(format!(
                "{}: read back {} bytes that differ from the {} written",
                tmp.display(),
                back.1,
                len
            )));
        }
        if let Ok(old) = fs::metadata(db) {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(old.mode() & 0o7777)).at(&tmp)?;
            if rustix::process::geteuid().is_root() {
                std::os::unix::fs::chown(&tmp, Some(old.uid()), Some(old.gid())).at(&tmp)?;
            }
        }
        fs::rename(&tmp, db).at(db)?;
        fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
        Ok(len)
    });
    let len = match done {
        Ok(len) => len,
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
    };
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = dir.join(format!("{name}{suffix}"));
        match fs::remove_file(&side) {
            Ok(()) => repo.events().notice(&format!(
                "removed {} (of the replaced database)",
                side.display()
            )),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).at(&side),
        }
    }
    Ok(format!(
        "restored {} ({len} bytes, read back and compared)",
        db.display()
    ))
}

/// Write entry `e` to the new file `path`, synced: its BLAKE3 and length.
pub(super) fn write_checked(
    reader: &BlobReader,
    e: &Entry,
    path: &Path,
) -> Result<(blake3::Hash, u64)> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(path)
        .at(path)?;
    let mut w = Hashing {
        inner: std::io::BufWriter::with_capacity(1 << 20, f),
        hash: blake3::Hasher::new(),
        len: 0,
    };
    inspect::cat(reader, e, &mut w)?;
    let f = w.inner.into_inner().map_err(|err| Error::Io {
        path: path.to_path_buf(),
        source: err.into_error(),
    })?;
    f.sync_all().at(path)?;
    Ok((w.hash.finalize(), w.len))
}

/// The BLAKE3 and length of the file at `path`.
pub(super) fn hash_file(path: &Path) -> Result<(blake3::Hash, u64)> {
    let mut f = fs::File::open(path).at(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).at(path)?;
        if n == 0 {
            return Ok((h.finalize(), len));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

/// The stored `/file` of `snap` streamed into `cmd`.
fn into_command(repo: &Repo, snap: &Snapshot, file: &str, cmd: &str) -> Result<String> {
    let (reader, e) = stored_file(repo, snap, file)?;
    let said = command::feed(cmd, |w| inspect::cat(&reader, &e, w)).map_err(Error::Invalid)?;
    Ok(format!(
        "streamed /{file} ({} bytes, every chunk checked) into `{cmd}`{}",
        e.size,
        if said.is_empty() {
            String::new()
        } else {
            format!(" ({said})")
        }
    ))
}

/// Create files private to the owner until they are renamed into place.
trait Private {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Private for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}
