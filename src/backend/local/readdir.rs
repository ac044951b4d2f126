//! One directory read for the local backend's listings: each entry's name
//! and kind, and with `stat` a regular file's size and modification time.
//! On Linux through `getdents64` into one buffer (rustix's `RawDir`):
//! no allocation per entry, which is most of a listing's cost in user
//! space (`status` lists `snapshots/` whenever it changed: 10 000 names
//! at 10 000 snapshots); elsewhere `std::fs::read_dir`.

use std::io;
use std::path::Path;
use std::time::SystemTime;

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
    /// A symbolic link, device, socket...: not listed.
    Other,
}

/// A regular file's size and modification time.
pub(super) type Stat = (u64, Option<SystemTime>);

/// What [`read`] calls with each entry.
pub(super) type Visit<'a> = dyn FnMut(&str, Kind, Option<Stat>) -> io::Result<()> + 'a;

/// Call `f` with each entry of `dir` but `.` and `..` whose name is UTF-8,
/// its kind, and with `stat` a regular file's [`Stat`]. An entry removed
/// while the directory is read is left out.
#[cfg(target_os = "linux")]
pub(super) fn read(dir: &Path, stat: bool, f: &mut Visit<'_>) -> io::Result<()> {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut buf = Vec::with_capacity(64 << 10);
    let mut entries = RawDir::new(&fd, buf.spare_capacity_mut());
    while let Some(e) = entries.next() {
        let e = e?;
        let Ok(name) = e.file_name().to_str() else {
            continue;
        };
        if name == "." || name == ".." {
            continue;
        }
        let kind = |t: FileType| match t {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            _ => Kind::Other,
        };
        let mut k = kind(e.file_type());
        let mut st = None;
        // DT_UNKNOWN (a file system without types in its entries) or sizes
        if (stat && k == Kind::File) || e.file_type() == FileType::Unknown {
            match rustix::fs::statat(&fd, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => {
                    k = kind(FileType::from_raw_mode(s.st_mode));
                    let modified = u64::try_from(s.st_mtime)
                        .ok()
                        .zip(u32::try_from(s.st_mtime_nsec).ok())
                        .and_then(|(secs, ns)| {
                            SystemTime::UNIX_EPOCH.checked_add(std::time::Duration::new(secs, ns))
                        });
                    st = Some((u64::try_from(s.st_size).unwrap_or(0), modified));
                }
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        f(name, k, if stat && k == Kind::File { st } else { None })?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub(super) fn read(dir: &Path, stat: bool, f: &mut Visit<'_>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let ft = match entry.file_type() {
            Ok(ft) => ft,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let k = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        let st = if stat && k == Kind::File {
            match entry.metadata() {
                Ok(m) => Some((m.len(), m.modified().ok())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        f(name, k, st)?;
    }
    Ok(())
}
