//! `strata restore`, streamed in bounded memory:
//!
//! 1. [`plan::check_packs`]: walk the selection's listings (the local tree
//!    cache) and check that every blob is indexed and every pack present,
//!    before anything is written.
//! 2. Walk the selection's trees ([`plan::walk`]); directories are created as
//!    the walk reaches them (parents first, an existing one opened up for
//!    the owner), and with `--delete` what a directory holds beside the
//!    snapshot's entries is removed. Regular files are gathered in batches
//!    (at most [`BATCH_FILES`] files or [`BATCH_BYTES`] of data); each batch
//!    is planned by pack, written on both cores (packs read, blobs decoded
//!    and checked, files created and written in parallel), its hard links
//!    made, verified if asked, and dropped.
//! 3. Symlinks and special files, last: a second walk over the listings.
//! 4. Directory metadata, deepest first.
//!
//! State kept across batches is O(directories) + O(hard-linked files).
//! It never writes outside the target: names are checked when trees are
//! decoded, files are opened with O_NOFOLLOW, symlinks from the snapshot are
//! created only after all data is written, and `--delete` works relative to
//! directories opened without following links (`delete.rs`).

mod delete;
mod meta;
pub mod plan;
pub mod safety;
mod write;

pub use safety::safety_snapshot;

use crate::blob::BlobKind;
use crate::error::{Error, IoContext, Result};
use crate::pack::reader;
use crate::paths::Patterns;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use plan::{BlobUse, DataPlan, FileJob, Selection, Start, Visitor};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Files per batch (a batch's plan and open files are what a restore holds).
pub const BATCH_FILES: usize = 4096;
/// Bytes of file data per batch (a larger file is a batch of its own).
pub const BATCH_BYTES: u64 = 64 << 20;

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
#[derive(Clone, Debug)]
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
    /// Remove what restored directories hold beside the snapshot's entries
    /// (not with includes/excludes).
    pub delete: bool,
    /// Files per batch; 0 = [`BATCH_FILES`] (tests set it small).
    #[doc(hidden)]
    pub batch_files: usize,
}

impl Default for RestoreOptions {
    /// Nothing filtered, overwrite always, no dry run, verify or delete;
    /// batches of `STRATA_RESTORE_BATCH` files when that is set (small
    /// batches let tests cross batch boundaries cheaply), else
    /// [`BATCH_FILES`].
    fn default() -> Self {
        RestoreOptions {
            target: PathBuf::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            overwrite: Overwrite::default(),
            dry_run: false,
            verify: false,
            delete: false,
            batch_files: std::env::var("STRATA_RESTORE_BATCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }
    }
}

impl RestoreOptions {
    /// Reject combinations that make no sense, before anything is read or
    /// written (the CLI calls it before the `pre-restore` safety snapshot).
    pub fn check(&self) -> Result<()> {
        if self.delete && !(self.includes.is_empty() && self.excludes.is_empty()) {
            return Err(Error::Invalid(
                "--delete cannot be combined with --include/--exclude (it would remove what they leave out)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes to write.
    pub bytes_total: AtomicU64,
    /// Bytes written.
    pub bytes_done: AtomicU64,
    /// Files selected.
    pub files_total: AtomicU64,
    /// Files written.
    pub files_done: AtomicU64,
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
    /// Paths removed by --delete (or that would be, with --dry-run); a
    /// directory and each thing in it count one each.
    pub deleted: u64,
    /// With --delete --dry-run: the paths that would be removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted_paths: Vec<String>,
    /// Problems that did not stop the restore.
    pub warnings: Vec<String>,
}

/// Where `SNAPSHOT:PATH` starts, and the stored path of the directory
/// holding its entries: a directory's contents, or a single file or link
/// (restored under its own name), or the whole root.
fn start_point(
    reader: &BlobReader,
    snap: &Snapshot,
    subpath: Option<&[u8]>,
) -> Result<(Start, PathBuf)> {
    let found = crate::inspect::locate(reader, snap, subpath.unwrap_or(b"/"))?;
    match found.entry {
        None => Ok((Start::Tree(Some(snap.tree)), found.path)),
        Some(e) if e.kind() == EntryKind::Dir => Ok((Start::Tree(e.subtree), found.path)),
        Some(e) => {
            let dir = found
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            Ok((Start::One(Box::new(e)), dir))
        }
    }
}

/// Restore `snap` (or its `subpath`) into `opts.target`.
pub fn run(
    repo: &Repo,
    snap: &Snapshot,
    subpath: Option<&[u8]>,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    opts.check()?;
    // The index is a cache: index any pack it does not know yet (a killed
    // backup, or a missing index.sqlite) before planning.
    let (reader, _) = BlobReader::reconciled(repo)?;
    let (start, stored) = start_point(&reader, snap, subpath)?;
    if opts.delete && matches!(start, Start::One(_)) {
        return Err(Error::Invalid(
            "--delete needs a directory to restore, not a single file".into(),
        ));
    }
    let includes = Patterns::new(&opts.includes)?;
    let excludes = Patterns::new(&opts.excludes)?;
    let listings = Selection {
        reader: &reader,
        includes: &includes,
        excludes: &excludes,
        contents: false,
    };
    let totals = plan::check_packs(&listings, &start, &stored)?;
    progress.files_total.store(totals.files, Relaxed);
    progress.bytes_total.store(totals.bytes, Relaxed);

    let mut r = Restorer::new(repo, &reader, opts, progress)?;
    let opened = r.open_target()?;
    let contents = Selection {
        contents: true,
        ..listings
    };
    let done = r.restore(&contents, &listings, &start, &stored);
    if let Some(mode) = opened {
        // the target is not in the snapshot: give it back its mode
        if let Err(e) = fs::set_permissions(&opts.target, fs::Permissions::from_mode(mode)) {
            r.warn(format!("{}: cannot set mode: {e}", opts.target.display()));
        }
    }
    done?;
    r.into_report()
}

/// A directory restored: its metadata is applied last, deepest first.
struct DirMeta {
    path: PathBuf,
    depth: usize,
    entry: Entry,
}

/// Regular files and hard links waiting to be written.
#[derive(Default)]
struct Batch {
    files: Vec<FileJob>,
    /// (new name, name of the file it links to)
    links: Vec<(PathBuf, PathBuf)>,
    /// Bytes of the files whose data is in blobs.
    bytes: u64,
}

/// The state of one restore, shared by its phases. Across batches it holds
/// only `dirs`, `primaries`, `skipped_dirs` and counters.
struct Restorer<'a> {
    repo: &'a Repo,
    reader: &'a BlobReader<'a>,
    opts: &'a RestoreOptions,
    target: &'a Path,
    /// The target was missing or empty: files are written under their
    /// final names, with no per-file checks.
    fresh: bool,
    as_root: bool,
    progress: &'a Progress,
    batch_files: usize,
    /// Temp names over an existing tree: `.strata-restore-<token>-<n>`.
    token: String,
    temp_seq: u64,
    warnings: Mutex<Vec<String>>,
    report: RestoreReport,
    /// Directories created or entered, for the final metadata pass.
    dirs: Vec<DirMeta>,
    /// Hard-link groups: (device, inode) -> the path of the first name.
    primaries: HashMap<(u64, u64), PathBuf>,
    /// Directories refused (a non-directory in the way), below the target.
    skipped_dirs: HashSet<PathBuf>,
    /// Symlinks or special files were seen (a second walk creates them).
    specials_seen: bool,
    deleter: delete::Deleter,
    /// Files that failed `--verify`.
    bad: Vec<String>,
    batch: Batch,
    /// For a repository on remote storage: a pool of as many threads as
    /// its backend's `remote_reads`, so that many ranged reads are in
    /// flight at once (a local disk is read on the cores' own pool).
    io_pool: Option<rayon::ThreadPool>,
}

impl<'a> Restorer<'a> {
    fn new(
        repo: &'a Repo,
        reader: &'a BlobReader<'a>,
        opts: &'a RestoreOptions,
        progress: &'a Progress,
    ) -> Result<Self> {
        let target = opts.target.as_path();
        // The target itself may be a symlink to a directory (the user's
        // choice); nothing below it is ever followed.
        if let Ok(md) = fs::metadata(target) {
            if !md.is_dir() {
                return Err(Error::Invalid(format!(
                    "restore target {} exists and is not a directory",
                    target.display()
                )));
            }
        }
        let fresh = match fs::read_dir(target) {
            Ok(mut d) => d.next().is_none(),
            Err(_) => true,
        };
        let as_root = rustix::process::geteuid().is_root();
        Ok(Restorer {
            repo,
            reader,
            opts,
            target,
            fresh,
            as_root,
            progress,
            batch_files: if opts.batch_files == 0 {
                BATCH_FILES
            } else {
                opts.batch_files
            },
            token: crate::id::to_hex(&crate::sys::random_bytes::<6>()?),
            temp_seq: 0,
            warnings: Mutex::new(Vec::new()),
            report: RestoreReport::default(),
            dirs: Vec::new(),
            primaries: HashMap::new(),
            skipped_dirs: HashSet::new(),
            specials_seen: false,
            deleter: delete::Deleter {
                dry_run: opts.dry_run,
                as_root,
                ..Default::default()
            },
            bad: Vec::new(),
            batch: Batch::default(),
            io_pool: repo
                .store()
                .remote_reads()
                .map(|n| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(n)
                        .thread_name(|i| format!("strata-read-{i}"))
                        .build()
                        .map_err(|e| Error::Internal(format!("cannot start read threads: {e}")))
                })
                .transpose()?,
        })
    }

    /// Create the target, or open an existing one for writing (u+wx for a
    /// non-root owner); returns the mode to give it back.
    fn open_target(&self) -> Result<Option<u32>> {
        if self.opts.dry_run {
            return Ok(None);
        }
        fs::create_dir_all(self.target).at(self.target)?;
        let m = fs::metadata(self.target).at(self.target)?;
        Ok(self.open_up(self.target, &m).then_some(m.mode() & 0o7777))
    }

    /// All phases after the target is ready.
    fn restore(
        &mut self,
        contents: &Selection<'_>,
        listings: &Selection<'_>,
        start: &Start,
        stored: &Path,
    ) -> Result<()> {
        plan::walk(contents, start, stored, self)?;
        self.flush()?;
        if self.specials_seen {
            let mut pass = SpecialsPass {
                r: self,
                batch: Vec::new(),
            };
            plan::walk(listings, start, stored, &mut pass)?;
            let rest = std::mem::take(&mut pass.batch);
            self.links_and_specials(rest)?;
        }
        self.apply_dir_modes();
        Ok(())
    }

    fn into_report(self) -> Result<RestoreReport> {
        let mut report = self.report;
        report.warnings = self.warnings.into_inner().unwrap_or_default();
        report.deleted = self.deleter.count;
        report.deleted_paths = self.deleter.paths;
        if !self.bad.is_empty() {
            return Err(Error::Verify(format!(
                "{} file(s) differ: {}",
                self.bad.len(),
                self.bad
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(report)
    }

    fn warn(&self, msg: String) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(msg);
        }
    }

    fn warn_all(&self, msgs: Vec<String>) {
        if !msgs.is_empty() {
            if let Ok(mut w) = self.warnings.lock() {
                w.extend(msgs);
            }
        }
    }

    /// A non-root owner restoring into a read-only directory: add u+wx
    /// (the snapshot's mode is applied at the end). `true` if changed.
    fn open_up(&self, path: &Path, m: &fs::Metadata) -> bool {
        let mode = m.mode() & 0o7777;
        if self.as_root || mode & 0o300 == 0o300 {
            return false;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o300)).is_ok()
    }

    /// `rel` below the target, removed with `--delete` (a directory where
    /// the snapshot has something else).
    fn delete_at(&mut self, rel: &Path) -> Result<()> {
        let path = self.target.join(rel);
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Ok(());
        };
        if let Some(dir) = delete::open_dir(self.target, parent) {
            self.deleter.remove(&dir, name, &path).at(&path)?;
        }
        Ok(())
    }

    /// What to do about what is already at `rel` before a non-directory
    /// `e` is restored there: `false` to leave it (and skip `e`).
    fn make_room(&mut self, rel: &Path, path: &Path, e: &Entry) -> Result<bool> {
        if self.fresh {
            return Ok(true);
        }
        let Ok(m) = fs::symlink_metadata(path) else {
            return Ok(true);
        };
        let same = e.kind() == EntryKind::File
            && m.is_file()
            && m.size() == e.size
            && m.mtime() == e.mtime_sec
            && m.mtime_nsec() as u32 == e.mtime_nsec;
        let ow = self.opts.overwrite;
        if ow == Overwrite::Never || (ow == Overwrite::IfChanged && same) {
            if same && e.nlink > 1 && ow == Overwrite::IfChanged {
                // missing names of this file link to the one in place
                self.primaries
                    .entry((e.device, e.inode))
                    .or_insert_with(|| path.to_path_buf());
            }
            self.report.skipped += 1;
            return Ok(false);
        }
        if m.is_dir() {
            if self.opts.delete {
                self.delete_at(rel)?;
                return Ok(true);
            }
            self.warn(format!(
                "{}: a directory is in the way; skipped",
                path.display()
            ));
            return Ok(false);
        }
        Ok(true)
    }

    /// Queue a regular file (or a hard link to one queued or written
    /// before); write the batch when it is full.
    fn plan_file(&mut self, rel: PathBuf, e: Entry) -> Result<()> {
        let path = self.target.join(&rel);
        if !self.make_room(&rel, &path, &e)? {
            return Ok(());
        }
        if e.nlink > 1 {
            let key = (e.device, e.inode);
            if let Some(p) = self.primaries.get(&key) {
                self.batch.links.push((path, p.clone()));
                self.report.other += 1;
                return self.flush_if_full();
            }
            self.primaries.insert(key, path.clone());
        }
        self.report.files += 1;
        let write_path = if self.fresh {
            path.clone()
        } else {
            // Over existing files, write each under a temp name beside it
            // and rename it into place once complete: a failure (a corrupt
            // blob, a full disk) then never leaves a good file replaced by
            // a partial one.
            self.temp_seq += 1;
            path.with_file_name(format!(".strata-restore-{}-{}", self.token, self.temp_seq))
        };
        if !e.content.is_empty() {
            self.batch.bytes += e.size;
        }
        self.batch.files.push(FileJob {
            path,
            write_path,
            entry: e,
        });
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> Result<()> {
        let b = &self.batch;
        if b.files.len() + b.links.len() >= self.batch_files || b.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Plan, write, link and verify the current batch, then drop it.
    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        if batch.files.is_empty() && batch.links.is_empty() {
            return Ok(());
        }
        let plan = plan::plan_data(self.reader, &batch.files)?;
        self.report.bytes += plan.bytes;
        if self.opts.dry_run {
            return Ok(());
        }
        self.write_data(&batch.files, &plan)?;
        self.write_small(&batch.files)?;
        self.link(&batch.links)?;
        if self.opts.verify {
            self.verify(&batch.files, &plan);
        }
        Ok(())
    }

    /// The batch's files whose data is in blobs: runs of blobs are read
    /// (one `pread` each; on remote storage [`reader::WINDOW`] at a time)
    /// and decoded in parallel, each blob's id checked,
    /// its bytes written wherever they go. The first write to a file
    /// creates it, the last applies its metadata and renames it into place.
    /// After an error no partial file of the batch is left.
    fn write_data(&self, files: &[FileJob], plan: &DataPlan) -> Result<()> {
        let states: Vec<write::FileState> = files
            .iter()
            .map(|f| write::FileState::new(f.entry.content.len()))
            .collect();
        let span = |u: &BlobUse| (u.loc.offset, u.loc.stored_len);
        let runs: Vec<_> = plan
            .packs
            .iter()
            .flat_map(|(p, blobs)| reader::runs(blobs, span).into_iter().map(move |r| (p, r)))
            .collect();
        let read_all = || {
            runs.par_iter().try_for_each(|&(pack, run)| -> Result<()> {
                let pf = self.reader.pack_file(pack)?;
                if self.io_pool.is_some() {
                    // Remote storage: 16 runs in flight, each streamed a
                    // window at a time and its blobs written in order, so
                    // memory is bounded by reads in flight × the window
                    // (issue 27), not by the runs (up to a pack each).
                    return reader::for_each_in_run(&pf, run, span, |u, stored| {
                        self.write_blob(files, &states, u, stored)
                    });
                }
                let (buf, start) = reader::read_run(&pf, run, span)?;
                run.par_iter().try_for_each(|u| -> Result<()> {
                    let s = (u.loc.offset - start) as usize;
                    self.write_blob(files, &states, u, &buf[s..s + u.loc.stored_len as usize])
                })
            })
        };
        let written = match &self.io_pool {
            Some(pool) => pool.install(read_all),
            None => read_all(),
        };
        if written.is_err() {
            // In a fresh target partial files sit under their final names,
            // otherwise under temp names.
            for (job, st) in files.iter().zip(&states) {
                if st.partial() {
                    let _ = fs::remove_file(&job.write_path);
                }
            }
        }
        written
    }

    /// Decode one blob's stored bytes, check its id, and write it wherever
    /// it goes in the batch's files (finishing each file it completes).
    fn write_blob(
        &self,
        files: &[FileJob],
        states: &[write::FileState],
        u: &BlobUse,
        stored: &[u8],
    ) -> Result<()> {
        let raw = self.repo.decode_with(BlobKind::Data, |d| {
            reader::decode_blob(stored, &u.id, &u.loc, d)
        })?;
        for &(fi, off) in &u.targets {
            let (job, st) = (&files[fi], &states[fi]);
            let f = st.file(&job.write_path, &job.entry)?;
            write::write_stream_at(&f, &job.entry.extents, off, &raw).at(&job.write_path)?;
            self.progress
                .bytes_done
                .fetch_add(raw.len() as u64, Relaxed);
            if st.wrote() {
                self.finish(job, &f)?;
            }
        }
        Ok(())
    }

    /// The batch's files without blobs (inline: bytes in the tree; empty;
    /// only holes), created and written in parallel. Creating a file locks
    /// its directory, so threads take different directories first (files
    /// come in walk order, a directory's together) and share one only
    /// when no other is left.
    fn write_small(&self, files: &[FileJob]) -> Result<()> {
        let small: Vec<&FileJob> = files
            .iter()
            .filter(|f| f.entry.content.is_empty())
            .collect();
        small
            .par_chunk_by(|a, b| a.path.parent() == b.path.parent())
            .try_for_each(|dir| dir.par_iter().try_for_each(|job| self.write_small_one(job)))
    }

    fn write_small_one(&self, job: &FileJob) -> Result<()> {
        let (path, e) = (&job.write_path, &job.entry);
        let done = write::create_file(path, e).at(path).and_then(|f| {
            if e.is_inline() {
                f.write_all_at(&e.inline, 0).at(path)?;
                self.progress.bytes_done.fetch_add(e.size, Relaxed);
            }
            self.finish(job, &f)
        });
        if done.is_err() {
            let _ = fs::remove_file(path);
        }
        done
    }

    /// A file is complete: metadata through its descriptor, then (over an
    /// existing tree) the rename into place.
    fn finish(&self, job: &FileJob, f: &fs::File) -> Result<()> {
        self.warn_all(meta::apply_fd(f, &job.path, &job.entry, self.as_root));
        if !self.fresh {
            if let Err(e) = fs::rename(&job.write_path, &job.path) {
                let _ = fs::remove_file(&job.write_path);
                return Err(e).at(&job.path);
            }
        }
        self.progress.files_done.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Hard links of the batch, to files written in it or before.
    fn link(&self, links: &[(PathBuf, PathBuf)]) -> Result<()> {
        links.par_iter().try_for_each(|(path, src)| {
            if !self.fresh {
                let _ = fs::remove_file(path);
            }
            fs::hard_link(src, path).at(path)
        })
    }

    /// `--verify`: re-read the batch's files and check every chunk.
    fn verify(&mut self, files: &[FileJob], plan: &DataPlan) {
        let bad: Vec<String> = files
            .par_iter()
            .zip(&plan.chunk_lens)
            .filter_map(|(job, lens)| {
                match write::verify_file(self.repo, &job.path, &job.entry, lens) {
                    Ok(true) => None,
                    Ok(false) => Some(job.path.display().to_string()),
                    Err(e) => Some(e.to_string()),
                }
            })
            .collect();
        self.report.verified += (files.len() - bad.len()) as u64;
        self.bad.extend(bad);
    }

    /// Symlinks and special files (after all data, so no write ever goes
    /// through a symlink from the snapshot), with their metadata.
    fn links_and_specials(&self, items: Vec<(PathBuf, Entry)>) -> Result<()> {
        if self.opts.dry_run {
            return Ok(());
        }
        items.par_iter().try_for_each(|(path, e)| -> Result<()> {
            if !self.fresh {
                let _ = fs::remove_file(path);
            }
            use rustix::fs::FileType;
            let made = match e.kind() {
                EntryKind::Symlink => {
                    std::os::unix::fs::symlink(OsStr::from_bytes(&e.target), path)
                }
                EntryKind::Fifo => write::mknod(path, FileType::Fifo, e, 0),
                EntryKind::CharDev | EntryKind::BlockDev if !self.as_root => {
                    self.warn(format!(
                        "{}: device not created (needs root)",
                        path.display()
                    ));
                    return Ok(());
                }
                EntryKind::CharDev => write::mknod(path, FileType::CharacterDevice, e, e.rdev),
                EntryKind::BlockDev => write::mknod(path, FileType::BlockDevice, e, e.rdev),
                _ => return Ok(()), // files, directories and sockets never get here
            };
            made.at(path)?;
            self.warn_all(meta::apply(path, e, self.as_root));
            Ok(())
        })
    }

    /// Directory metadata last (mode, times: writing into a directory
    /// changes its mtime, and a read-only mode would stop the restore),
    /// deepest first, each level in parallel.
    fn apply_dir_modes(&mut self) {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.depth));
        for level in dirs.chunk_by(|a, b| a.depth == b.depth) {
            let w: Vec<String> = level
                .par_iter()
                .flat_map_iter(|d| meta::apply(&d.path, &d.entry, self.as_root))
                .collect();
            self.warn_all(w);
        }
    }
}

/// The first walk: directories, regular files, hard links.
impl Visitor for Restorer<'_> {
    /// Create the directory (or use the one there, opened up for the
    /// owner), replacing a non-directory under `--overwrite always` or
    /// `--delete`, else refusing it with a warning.
    fn dir(&mut self, rel: &Path, e: &Entry) -> Result<bool> {
        let path = self.target.join(rel);
        let dry = self.opts.dry_run;
        let existing = if self.fresh {
            None
        } else {
            fs::symlink_metadata(&path).ok()
        };
        match existing {
            Some(m) if m.is_dir() => {
                if !dry {
                    self.open_up(&path, &m);
                }
            }
            Some(_) if self.opts.overwrite == Overwrite::Always || self.opts.delete => {
                if self.opts.overwrite != Overwrite::Always {
                    self.delete_at(rel)?;
                } else if !dry {
                    fs::remove_file(&path).at(&path)?;
                }
                if !dry {
                    fs::create_dir(&path).at(&path)?;
                }
            }
            Some(_) => {
                self.warn(format!(
                    "{}: exists and is not a directory; skipped",
                    path.display()
                ));
                self.skipped_dirs.insert(rel.to_path_buf());
                return Ok(false);
            }
            None => {
                if !dry {
                    fs::create_dir(&path).at(&path)?;
                }
            }
        }
        self.report.dirs += 1;
        if !dry {
            self.dirs.push(DirMeta {
                path,
                depth: rel.components().count(),
                entry: e.clone(),
            });
        }
        Ok(true)
    }

    /// `--delete`: remove what the directory holds beside `tree`'s entries.
    fn listing(&mut self, rel: &Path, tree: &Tree) -> Result<()> {
        if !self.opts.delete || self.fresh {
            return Ok(());
        }
        let path = self.target.join(rel);
        if let Some(dir) = delete::open_dir(self.target, rel) {
            self.deleter.extras(&dir, &path, tree).at(&path)?;
        }
        Ok(())
    }

    fn leaf(&mut self, rel: PathBuf, e: Entry) -> Result<()> {
        match e.kind() {
            EntryKind::File => self.plan_file(rel, e),
            // Sockets are recorded but not restored: nothing to create.
            EntryKind::Socket | EntryKind::Dir => Ok(()),
            _ => {
                self.specials_seen = true;
                Ok(())
            }
        }
    }
}

/// The second walk: symlinks and special files, in batches.
struct SpecialsPass<'r, 'a> {
    r: &'r mut Restorer<'a>,
    batch: Vec<(PathBuf, Entry)>,
}

impl Visitor for SpecialsPass<'_, '_> {
    fn dir(&mut self, rel: &Path, _: &Entry) -> Result<bool> {
        Ok(!self.r.skipped_dirs.contains(rel))
    }

    fn leaf(&mut self, rel: PathBuf, e: Entry) -> Result<()> {
        if matches!(
            e.kind(),
            EntryKind::File | EntryKind::Dir | EntryKind::Socket
        ) {
            return Ok(());
        }
        let path = self.r.target.join(&rel);
        if !self.r.make_room(&rel, &path, &e)? {
            return Ok(());
        }
        self.r.report.other += 1;
        self.batch.push((path, e));
        if self.batch.len() >= self.r.batch_files {
            let items = std::mem::take(&mut self.batch);
            self.r.links_and_specials(items)?;
        }
        Ok(())
    }
}
