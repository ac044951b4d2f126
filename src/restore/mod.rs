//! `strata restore`: plan (tree -> nodes -> blobs grouped by pack), then
//! create directories, read each pack once and write its blobs where they go
//! (both cores), create links and special files, apply metadata, and
//! optionally re-read and verify. It never writes outside the target: names
//! are checked when trees are decoded, files are opened with O_NOFOLLOW, and
//! symlinks from the snapshot are created only after all data is written.

mod meta;
pub mod plan;

use crate::blob::BlobKind;
use crate::error::{Error, IoContext, Result};
use crate::pack::reader;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{Entry, EntryKind, Extent, ExtentReader, Tree};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

/// What to do with files that already exist in the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace them.
    #[default]
    Always,
    /// Replace them unless size and mtime already match.
    IfChanged,
    /// Keep them.
    Never,
}

/// Validated options of `strata restore`.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Target directory.
    pub target: PathBuf,
    /// Restore only paths matching one of these (paths::Patterns, matched
    /// against paths as stored in the snapshot).
    pub includes: Vec<String>,
    /// Skip paths matching one of these (as `includes`).
    pub excludes: Vec<String>,
    /// Existing files.
    pub overwrite: Overwrite,
    /// Plan and report only.
    pub dry_run: bool,
    /// Re-read written files and check their chunk hashes.
    pub verify: bool,
}

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes to write.
    pub bytes_total: AtomicU64,
    /// Bytes written.
    pub bytes_done: AtomicU64,
    /// Files planned.
    pub files_total: AtomicU64,
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Regular files written (or that would be, with --dry-run).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks, hard links, fifos, devices.
    pub other: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Existing files left alone.
    pub skipped: u64,
    /// Files verified (with --verify).
    pub verified: u64,
    /// Problems that did not stop the restore.
    pub warnings: Vec<String>,
}

/// The tree that `SNAPSHOT:PATH` designates, and the stored path of the
/// directory holding its entries: a directory's contents, or a single file
/// or link (restored under its own name), or the whole root.
fn start_point(
    reader: &BlobReader,
    snap: &Snapshot,
    subpath: Option<&[u8]>,
) -> Result<(Tree, PathBuf)> {
    let found = crate::inspect::locate(reader, snap, subpath.unwrap_or(b"/"))?;
    match found.entry {
        None => Ok((reader.tree(&snap.tree)?, found.path)),
        Some(e) if e.kind() == EntryKind::Dir => {
            let tree = match e.subtree {
                Some(id) => reader.tree(&id)?,
                None => Tree::default(),
            };
            Ok((tree, found.path))
        }
        Some(e) => {
            let dir = found
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            Ok((
                Tree {
                    entries: vec![e],
                    parts: Vec::new(),
                },
                dir,
            ))
        }
    }
}

const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;

/// Restore `snap` (or its `subpath`) into `opts.target`.
pub fn run(
    repo: &Repo,
    snap: &Snapshot,
    subpath: Option<&[u8]>,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    // The index is a cache: index any pack it does not know yet (a killed
    // backup, or a missing index.sqlite) before planning.
    let (reader, _) = BlobReader::reconciled(repo)?;
    let (root, stored) = start_point(&reader, snap, subpath)?;
    let nodes = plan::collect(
        &reader,
        &root,
        &stored,
        &crate::paths::Patterns::new(&opts.includes)?,
        &crate::paths::Patterns::new(&opts.excludes)?,
    )?;
    let target = &opts.target;
    // The target itself may be a symlink to a directory (the user's choice);
    // nothing below it is ever followed.
    if let Ok(md) = fs::metadata(target) {
        if !md.is_dir() {
            return Err(Error::Invalid(format!(
                "restore target {} exists and is not a directory",
                target.display()
            )));
        }
    }
    // A target that does not exist or is empty needs no per-file checks.
    let fresh = match fs::read_dir(target) {
        Ok(mut d) => d.next().is_none(),
        Err(_) => true,
    };
    let mut report = RestoreReport::default();

    // Decide per node: skipped subtrees, existing files, hard-link groups.
    let mut skipped_dirs: HashSet<PathBuf> = HashSet::new();
    let mut files: Vec<usize> = Vec::new(); // nodes whose data we write
    let mut links: Vec<(usize, usize)> = Vec::new(); // (node, primary node)
    let mut others: Vec<usize> = Vec::new();
    let mut dirs: Vec<usize> = Vec::new();
    let mut primaries: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        if n.rel.parent().is_some_and(|p| skipped_dirs.contains(p)) {
            if n.entry.kind() == EntryKind::Dir {
                skipped_dirs.insert(n.rel.clone());
            }
            continue;
        }
        let path = target.join(&n.rel);
        let existing = if fresh {
            None
        } else {
            fs::symlink_metadata(&path).ok()
        };
        match n.entry.kind() {
            EntryKind::Dir => {
                if existing.as_ref().is_some_and(|m| !m.is_dir())
                    && opts.overwrite != Overwrite::Always
                {
                    report.warnings.push(format!(
                        "{}: exists and is not a directory; skipped",
                        path.display()
                    ));
                    skipped_dirs.insert(n.rel.clone());
                    continue;
                }
                dirs.push(i);
            }
            // Sockets are recorded but not restored: nothing to create,
            // so no metadata to apply either.
            EntryKind::Socket => continue,
            kind => {
                if let Some(m) = &existing {
                    let same = kind == EntryKind::File
                        && m.is_file()
                        && m.size() == n.entry.size
                        && m.mtime() == n.entry.mtime_sec
                        && m.mtime_nsec() as u32 == n.entry.mtime_nsec;
                    if opts.overwrite == Overwrite::Never
                        || (opts.overwrite == Overwrite::IfChanged && same)
                    {
                        if same && n.entry.nlink > 1 && opts.overwrite == Overwrite::IfChanged {
                            // missing names of this file link to the one in place
                            primaries
                                .entry((n.entry.device, n.entry.inode))
                                .or_insert(i);
                        }
                        report.skipped += 1;
                        continue;
                    }
                    if m.is_dir() {
                        report.warnings.push(format!(
                            "{}: a directory is in the way; skipped",
                            path.display()
                        ));
                        continue;
                    }
                }
                if kind == EntryKind::File && n.entry.nlink > 1 {
                    let key = (n.entry.device, n.entry.inode);
                    if let Some(&p) = primaries.get(&key) {
                        links.push((i, p));
                        continue;
                    }
                    primaries.insert(key, i);
                }
                if kind == EntryKind::File {
                    files.push(i);
                } else {
                    others.push(i);
                }
            }
        }
    }
    let plan = plan::plan_data(&reader, &nodes, &files)?;
    progress.bytes_total.store(plan.bytes, Relaxed);
    progress.files_total.store(files.len() as u64, Relaxed);
    report.files = files.len() as u64;
    report.dirs = dirs.len() as u64;
    report.other = (others.len() + links.len()) as u64;
    report.bytes = plan.bytes;
    if opts.dry_run {
        return Ok(report);
    }

    // 1. directories, parents first (pre-order)
    fs::create_dir_all(target).at(target)?;
    for &i in &dirs {
        let path = target.join(&nodes[i].rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&path).at(&path)?;
                fs::create_dir(&path).at(&path)?;
            }
            Err(_) => fs::create_dir(&path).at(&path)?,
        }
    }
    // 2+3. data: each pack is read once, packs in parallel. The first write
    // to a file creates it (others wait on its `OnceLock`); the last write
    // applies its metadata through the same descriptor and closes it.
    let warnings = Mutex::new(Vec::new());
    let as_root = rustix::process::geteuid().is_root();
    let file_paths: Vec<PathBuf> = files.iter().map(|&i| target.join(&nodes[i].rel)).collect();
    // Over existing files, write each under a temp name beside it and rename
    // it into place once complete: a failure (a corrupt blob, a full disk)
    // then never leaves a good file replaced by a partial one.
    let write_paths: Vec<PathBuf> = if fresh {
        file_paths.clone()
    } else {
        let token = crate::id::to_hex(&crate::repo::fsutil::random_bytes::<6>()?);
        file_paths
            .iter()
            .enumerate()
            .map(|(fi, p)| p.with_file_name(format!(".strata-restore-{token}-{fi}")))
            .collect()
    };
    let finish = |fi: usize, f: &File| -> Result<()> {
        let (path, e) = (&file_paths[fi], &nodes[files[fi]].entry);
        let w = meta::apply_fd(f, path, e, as_root);
        if !w.is_empty() {
            if let Ok(mut all) = warnings.lock() {
                all.extend(w);
            }
        }
        if !fresh {
            fs::rename(&write_paths[fi], path).at(path)?;
        }
        Ok(())
    };
    let states: Vec<FileState> = files
        .iter()
        .map(|&i| FileState {
            created: OnceLock::new(),
            remaining: AtomicUsize::new(nodes[i].entry.content.len()),
        })
        .collect();
    let write = |fi: usize, off: u64, data: &[u8]| -> Result<()> {
        let (path, e) = (&write_paths[fi], &nodes[files[fi]].entry);
        let mut mine = None;
        let created = states[fi].created.get_or_init(|| {
            create_file(path, e)
                .map(|f| mine = Some(f))
                .map_err(|err| format!("{}: {err}", path.display()))
        });
        if let Err(msg) = created {
            return Err(Error::Invalid(msg.clone()));
        }
        let f = match mine {
            Some(f) => f,
            None => OpenOptions::new()
                .write(true)
                .custom_flags(O_NOFOLLOW)
                .open(path)
                .at(path)?,
        };
        write_stream_at(&f, &e.extents, off, data).at(path)?;
        progress.bytes_done.fetch_add(data.len() as u64, Relaxed);
        if states[fi].remaining.fetch_sub(1, Relaxed) == 1 {
            finish(fi, &f)?;
        }
        Ok(())
    };
    let data = plan
        .packs
        .par_iter()
        .try_for_each(|(pack, blobs)| -> Result<()> {
            let pf = repo.open_pack(pack)?;
            let span = |u: &plan::BlobUse| (u.loc.offset, u.loc.stored_len);
            for run in reader::runs(blobs, span) {
                let (buf, start) = reader::read_run(&pf, run, span)?;
                for u in run {
                    let s = (u.loc.offset - start) as usize;
                    let stored = &buf[s..s + u.loc.stored_len as usize];
                    let raw = repo.decode_with(BlobKind::Data, |d| {
                        reader::decode_blob(stored, &u.id, &u.loc, d)
                    })?;
                    for &(fi, off) in &u.targets {
                        write(fi, off, &raw)?;
                    }
                }
            }
            Ok(())
        })
        .and_then(|()| {
            // Files without blobs: inline (their bytes are in the tree),
            // empty, or only holes.
            (0..files.len())
                .into_par_iter()
                .filter(|&fi| nodes[files[fi]].entry.content.is_empty())
                .try_for_each(|fi| -> Result<()> {
                    let (path, e) = (&write_paths[fi], &nodes[files[fi]].entry);
                    let f = create_file(path, e).at(path)?;
                    if e.is_inline() {
                        f.write_all_at(&e.inline, 0).at(path)?;
                        progress.bytes_done.fetch_add(e.size, Relaxed);
                    }
                    finish(fi, &f)
                })
        });
    if let Err(e) = data {
        // No partial file survives a failed restore: in a fresh target they
        // sit under their final names, otherwise under temp names.
        for (fi, st) in states.iter().enumerate() {
            if st.created.get().is_some() && st.remaining.load(Relaxed) > 0 {
                let _ = fs::remove_file(&write_paths[fi]);
            }
        }
        return Err(e);
    }
    // 4. hard links, then special files and symlinks (last: never followed)
    for &(i, p) in &links {
        let (path, src) = (target.join(&nodes[i].rel), target.join(&nodes[p].rel));
        let _ = fs::remove_file(&path);
        fs::hard_link(&src, &path).at(&path)?;
    }
    for &i in &others {
        let e = &nodes[i].entry;
        let path = target.join(&nodes[i].rel);
        let _ = fs::remove_file(&path);
        let r = match e.kind() {
            EntryKind::Symlink => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&e.target), &path)
            }
            EntryKind::Fifo => mknod(&path, rustix::fs::FileType::Fifo, e, 0),
            EntryKind::CharDev | EntryKind::BlockDev if !as_root => {
                warnings
                    .lock()
                    .map(|mut w| {
                        w.push(format!(
                            "{}: device not created (needs root)",
                            path.display()
                        ))
                    })
                    .ok();
                continue;
            }
            EntryKind::CharDev => mknod(&path, rustix::fs::FileType::CharacterDevice, e, e.rdev),
            EntryKind::BlockDev => mknod(&path, rustix::fs::FileType::BlockDevice, e, e.rdev),
            _ => continue, // sockets never reach `others`
        };
        r.at(&path)?;
    }
    // 5. metadata of links and special files, then directories deepest first
    others.par_iter().for_each(|&i| {
        let w = meta::apply(&target.join(&nodes[i].rel), &nodes[i].entry, as_root);
        if !w.is_empty() {
            if let Ok(mut all) = warnings.lock() {
                all.extend(w);
            }
        }
    });
    let mut dirs_deep = dirs.clone();
    dirs_deep.sort_by_key(|&i| std::cmp::Reverse(nodes[i].depth));
    for &i in &dirs_deep {
        report.warnings.extend(meta::apply(
            &target.join(&nodes[i].rel),
            &nodes[i].entry,
            as_root,
        ));
    }
    report
        .warnings
        .extend(warnings.into_inner().unwrap_or_default());
    // 6. verify
    if opts.verify {
        let bad: Vec<String> = files
            .par_iter()
            .enumerate()
            .filter_map(|(fi, &i)| {
                let ok = verify_file(repo, &file_paths[fi], &nodes[i].entry, &plan.chunk_lens[fi]);
                match ok {
                    Ok(true) => None,
                    Ok(false) => Some(nodes[i].rel.display().to_string()),
                    Err(e) => Some(e.to_string()),
                }
            })
            .collect();
        if !bad.is_empty() {
            return Err(Error::Verify(format!(
                "{} file(s) differ: {}",
                bad.len(),
                bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        report.verified = files.len() as u64;
    }
    Ok(report)
}

/// Per-file restore state: created once, metadata after the last write.
struct FileState {
    created: OnceLock<std::result::Result<(), String>>,
    remaining: AtomicUsize,
}

/// Create (truncate) a file for writing, never through a symlink; sparse
/// files get their final size now so that holes stay holes. Over an existing
/// tree `path` is a temp name that is renamed over the old file when done,
/// so an existing file is replaced, never written into (it may be a hard
/// link to a file outside the target, or carry stale xattrs).
fn create_file(path: &Path, e: &Entry) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    if (!e.extents.is_empty() || e.content.is_empty()) && !e.is_inline() {
        f.set_len(e.size)?;
    }
    Ok(f)
}

fn mknod(path: &Path, ft: rustix::fs::FileType, e: &Entry, dev: u64) -> std::io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        rustix::fs::Mode::from_raw_mode(e.mode),
        dev,
    )?;
    Ok(())
}

/// Write `data` at `off` of the file's data stream, mapped through sparse extents.
fn write_stream_at(f: &File, extents: &[Extent], off: u64, data: &[u8]) -> std::io::Result<()> {
    if extents.is_empty() {
        return f.write_all_at(data, off);
    }
    let (mut stream_pos, mut rest, mut off) = (0u64, data, off);
    for e in extents {
        if rest.is_empty() {
            break;
        }
        if off < stream_pos + e.len {
            let within = off - stream_pos;
            let n = rest.len().min((e.len - within) as usize);
            f.write_all_at(&rest[..n], e.offset + within)?;
            rest = &rest[n..];
            off += n as u64;
        }
        stream_pos += e.len;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(std::io::Error::other("data beyond the file's extents"))
    }
}

/// Re-read a restored file and compare each chunk's hash with its id (an
/// inline file: its bytes).
fn verify_file(repo: &Repo, path: &Path, e: &Entry, lens: &[u32]) -> Result<bool> {
    let f = File::open(path).at(path)?;
    if f.metadata().at(path)?.len() != e.size {
        return Ok(false);
    }
    if e.is_inline() {
        let mut got = Vec::with_capacity(e.inline.len());
        (&f).read_to_end(&mut got).at(path)?;
        return Ok(got == e.inline);
    }
    let mut stream: Box<dyn Read> = if e.extents.is_empty() {
        Box::new(&f)
    } else {
        Box::new(ExtentReader::new(&f, &e.extents))
    };
    let mut buf = Vec::new();
    for (id, &len) in e.content.iter().zip(lens) {
        buf.resize(len as usize, 0);
        stream.read_exact(&mut buf).at(path)?;
        if repo.blob_id(BlobKind::Data, &buf) != *id {
            return Ok(false);
        }
    }
    Ok(true)
}
