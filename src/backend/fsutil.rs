//! Durable file writes: temp name, fsync, publish, fsync directory, and
//! every directory created on the way fsynced in its parent (INV-1).
//! Publishing is create-only ([`commit_new`], [`write_new`]) for every
//! file that is never replaced (INV-5): packs, snapshots, keys, config.

use crate::error::{IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A fresh random name in `tmp_dir`.
pub fn temp_path(tmp_dir: &Path, suffix: &str) -> PathBuf {
    let mut r = [0u8; 12];
    // getrandom only fails if the OS has no entropy source; fall back to
    // time and pid, which is unique enough for a temp name.
    if getrandom::fill(&mut r).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        r[..8].copy_from_slice(&(t as u64).to_le_bytes());
        r[8..].copy_from_slice(&std::process::id().to_le_bytes());
    }
    tmp_dir.join(format!("{}{suffix}", crate::id::to_hex(&r)))
}

/// fsync a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(test)]
    tests::record_sync(dir);
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// The directory holding `p`; `.` for a bare relative name.
fn parent_dir(p: &Path) -> Option<&Path> {
    p.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    })
}

/// Create `dir` and every missing parent, fsyncing the parent of each
/// directory as it is created, so that the new directory entry (a new
/// fan-out `packs/xx/`) survives a power loss like the file renamed into it
/// (INV-1). A directory another process created meanwhile is synced in its
/// parent too (that process may not have got there yet). Returns the
/// directories this call created, outermost first.
pub fn create_dir_durable(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.is_dir() {
        missing.push(d);
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => d = p,
            _ => break,
        }
    }
    let mut created = Vec::new();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => created.push(d.to_path_buf()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e).at(d),
        }
        if let Some(parent) = parent_dir(d) {
            sync_dir(parent)?;
        }
    }
    Ok(created)
}

/// Create a temp file for writing.
pub fn create_temp(tmp_dir: &Path, suffix: &str) -> Result<(File, PathBuf)> {
    let p = temp_path(tmp_dir, suffix);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
        .at(&p)?;
    Ok((f, p))
}

/// fsync `file` (at `tmp`), rename it to `dest` (replacing a file of that
/// name), fsync `dest`'s directory (INV-1); a missing directory of `dest` is
/// created durably ([`create_dir_durable`]). Files that are never replaced
/// use [`commit_new`].
pub fn commit_temp(file: File, tmp: &Path, dest: &Path) -> Result<()> {
    file.sync_all().at(tmp)?;
    drop(file);
    let dir = parent_dir(dest);
    if let Some(dir) = dir {
        create_dir_durable(dir)?;
    }
    fs::rename(tmp, dest).at(dest)?;
    if let Some(dir) = dir {
        sync_dir(dir)?;
    }
    Ok(())
}

/// What a create-only publish ([`commit_new`], [`write_new`]) found under
/// the final name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// The new file is now under the final name.
    Created,
    /// A file already had the name: it was left as it is and the new one
    /// dropped (INV-5: for packs and snapshots, same name = same content).
    Existed,
}

/// Give the complete file `tmp` the name `dest` unless something already
/// has it: `link(2)`, which never replaces, then the temp name is removed;
/// where the file system has no hard links, `renameat2` with
/// `RENAME_NOREPLACE`. Atomic either way: no check-then-rename race.
fn publish_new(tmp: &Path, dest: &Path) -> std::io::Result<Published> {
    let published = match fs::hard_link(tmp, dest) {
        Ok(()) => Published::Created,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Published::Existed,
        Err(link_err) => {
            use rustix::fs::{CWD, RenameFlags, renameat_with};
            match renameat_with(CWD, tmp, CWD, dest, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(Published::Created),
                Err(rustix::io::Errno::EXIST) => Published::Existed,
                Err(_) => return Err(link_err),
            }
        }
    };
    // A temp file left behind is harmless (repository.md "Temp files").
    let _ = fs::remove_file(tmp);
    Ok(published)
}

/// The create-only [`commit_temp`] (INV-1, INV-5): fsync `file` (at `tmp`),
/// publish it as `dest` only if no file has that name, fsync `dest`'s
/// directory (also when the name was taken: its writer may not have synced
/// it yet). The temp file is gone afterwards. A missing directory of `dest`
/// is created durably ([`create_dir_durable`]).
pub fn commit_new(file: File, tmp: &Path, dest: &Path) -> Result<Published> {
    file.sync_all().at(tmp)?;
    drop(file);
    if dest
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        == Some("packs".as_ref())
    {
        crate::killpoint::reached("pack-fsynced");
    }
    let dir = parent_dir(dest);
    if let Some(dir) = dir {
        create_dir_durable(dir)?;
    }
    let published = publish_new(tmp, dest).at(dest)?;
    if let Some(dir) = dir {
        sync_dir(dir)?;
    }
    Ok(published)
}

/// Write `bytes` durably under `dest` unless a file already has that name
/// ([`commit_new`]); for every file of the repository that is never
/// replaced.
pub fn write_new(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<Published> {
    let (mut f, tmp) = create_temp(tmp_dir, ".tmp")?;
    let r = f
        .write_all(bytes)
        .at(&tmp)
        .and_then(|_| commit_new(f, &tmp, dest));
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// How [`write_atomic`] writes.
#[derive(Clone, Copy, Debug)]
pub struct Atomic<'a> {
    /// The directory of the temp file: a repository's `tmp/` (where a
    /// leftover is cleaned, repository.md "Temp files"), or `None`: beside
    /// `dest`, as `.NAME.PID.tmp`.
    pub tmp_dir: Option<&'a Path>,
    /// The new file's mode; `None`: the default (0666 less the umask).
    pub mode: Option<u32>,
    /// fsync the file before the rename and the directory after it
    /// (INV-1). Only the cache, an optimisation a crash may cost, skips it.
    pub durable: bool,
}

impl<'a> Atomic<'a> {
    /// A repository file that may be replaced (lock files, the config
    /// upgrade), through a temp file in `tmp_dir`.
    pub fn in_repo(tmp_dir: &'a Path) -> Atomic<'a> {
        Atomic {
            tmp_dir: Some(tmp_dir),
            mode: None,
            durable: true,
        }
    }

    /// A local file of this machine (policy state, check and repair
    /// records, a unit file), durable, with `mode`.
    pub fn local(mode: u32) -> Atomic<'static> {
        Atomic {
            tmp_dir: None,
            mode: Some(mode),
            durable: true,
        }
    }

    /// A file of the cache (mode 0600): atomic, but not fsynced.
    pub fn cache() -> Atomic<'static> {
        Atomic {
            tmp_dir: None,
            mode: Some(0o600),
            durable: false,
        }
    }
}

/// Write `bytes` to `dest` atomically, replacing a file of that name:
/// a temp file, written (and with [`Atomic::durable`] fsynced), renamed
/// over `dest`, then `dest`'s directory fsynced (INV-1). The one writer of
/// files that may be replaced, repository files and local ones alike;
/// files that are never replaced use [`write_new`].
pub fn write_atomic(dest: &Path, bytes: &[u8], how: Atomic) -> Result<()> {
    let (mut f, tmp) = match how.tmp_dir {
        Some(dir) => create_temp(dir, ".tmp")?,
        None => beside(dest, how.mode)?,
    };
    let r = f.write_all(bytes).at(&tmp).and_then(|()| {
        if how.durable {
            commit_temp(f, &tmp, dest)
        } else {
            drop(f);
            fs::rename(&tmp, dest).at(dest)
        }
    });
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// A temp file `.NAME.PID.tmp` beside `dest`, created (or truncated) with
/// `mode`.
fn beside(dest: &Path, mode: Option<u32>) -> Result<(File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent_dir(dest).unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    if let Some(m) = mode {
        o.mode(m);
    }
    let f = o.open(&tmp).at(&tmp)?;
    Ok((f, tmp))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Directories [`sync_dir`] was asked to fsync on this thread.
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn record_sync(dir: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    }

    fn take_synced() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    /// INV-1 for the first pack of a fan-out directory. What this proves:
    /// `commit_temp` asks for an fsync of `packs/` after it creates
    /// `packs/ab/` (so the new directory entry is as durable as the rename
    /// inside it), and of every level it creates. What it cannot prove:
    /// that the data reaches the disk; that needs a power cut, and the
    /// recorder only sees which directories `sync_dir` was called on.
    #[test]
    fn a_new_fan_out_directory_is_synced_in_its_parent() {
        let d = tempfile::tempdir().unwrap();
        let (tmp_dir, packs) = (d.path().join("tmp"), d.path().join("packs"));
        fs::create_dir(&tmp_dir).unwrap();
        fs::create_dir(&packs).unwrap();
        let (mut f, tmp) = create_temp(&tmp_dir, ".pack").unwrap();
        f.write_all(b"pack").unwrap();
        take_synced();
        let dest = packs.join("ab").join("ab12");
        commit_temp(f, &tmp, &dest).unwrap();
        let synced = take_synced();
        assert_eq!(fs::read(&dest).unwrap(), b"pack");
        assert!(synced.contains(&packs), "packs/ not synced: {synced:?}");
        assert!(synced.contains(&packs.join("ab")), "{synced:?}");

        // every level created, outermost first; an existing one is not
        // created again
        let deep = d.path().join("x").join("y").join("z");
        let created = create_dir_durable(&deep).unwrap();
        assert_eq!(
            created,
            vec![d.path().join("x"), d.path().join("x/y"), deep.clone()]
        );
        assert_eq!(
            take_synced(),
            vec![
                d.path().to_path_buf(),
                d.path().join("x"),
                d.path().join("x/y")
            ]
        );
        assert!(create_dir_durable(&deep).unwrap().is_empty());
        assert!(take_synced().is_empty());
    }

    /// The one atomic writer, as its three kinds of callers use it: a
    /// repository file through the repository's `tmp/` (fsynced, the
    /// directory too), a local file with its mode beside it (fsynced), and
    /// a cache file (0600, not fsynced). Each replaces the old file whole
    /// and leaves no temp file.
    #[test]
    fn write_atomic_keeps_each_callers_way() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let tmp_dir = d.path().join("tmp");
        fs::create_dir(&tmp_dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

        let lock = d.path().join("locks").join("l");
        take_synced();
        write_atomic(&lock, b"one", Atomic::in_repo(&tmp_dir)).unwrap();
        write_atomic(&lock, b"two", Atomic::in_repo(&tmp_dir)).unwrap();
        assert_eq!(fs::read(&lock).unwrap(), b"two");
        assert!(take_synced().contains(&d.path().join("locks")));
        assert_eq!(fs::read_dir(&tmp_dir).unwrap().count(), 0);

        let state = d.path().join("state.json");
        write_atomic(&state, b"{}", Atomic::local(0o600)).unwrap();
        assert_eq!(mode(&state), 0o600);
        assert!(take_synced().contains(&d.path().to_path_buf()));

        let cached = d.path().join("cached");
        write_atomic(&cached, b"x", Atomic::cache()).unwrap();
        assert_eq!(
            (fs::read(&cached).unwrap(), mode(&cached)),
            (b"x".to_vec(), 0o600)
        );
        assert!(take_synced().is_empty(), "the cache is not fsynced");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(names.is_empty(), "temp files left: {names:?}");
    }

    /// INV-5: the create-only publish never replaces a file, even one with
    /// other bytes, removes its temp file either way, and syncs the
    /// directory in both cases.
    #[test]
    fn write_new_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let tmp_dir = d.path().join("tmp");
        fs::create_dir(&tmp_dir).unwrap();
        let dest = d.path().join("snapshots").join("s1");
        assert_eq!(
            write_new(&tmp_dir, &dest, b"first").unwrap(),
            Published::Created
        );
        take_synced();
        assert_eq!(
            write_new(&tmp_dir, &dest, b"second").unwrap(),
            Published::Existed
        );
        assert_eq!(fs::read(&dest).unwrap(), b"first");
        assert_eq!(take_synced(), vec![d.path().join("snapshots")]);
        assert_eq!(fs::read_dir(&tmp_dir).unwrap().count(), 0);
        // a failed publish (no such directory, cannot be created) removes
        // its temp file too
        fs::write(d.path().join("file"), b"").unwrap();
        assert!(write_new(&tmp_dir, &d.path().join("file/x"), b"x").is_err());
        assert_eq!(fs::read_dir(&tmp_dir).unwrap().count(), 0);
    }
}
