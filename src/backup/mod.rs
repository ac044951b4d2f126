//! `strata snapshot`: walk -> chunk -> hash -> dedup -> pack -> tree ->
//! snapshot. Packs are sealed and indexed before the manifest is written
//! (INV-2, INV-3, INV-4).

mod last;
mod root;
pub mod saver;
pub mod source;
mod treestream;
mod walk;

use crate::dict;
use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::gcstate::{self, Since};
use crate::repo::lock::Lock;
use crate::snapshot::tree::{Entry, EntryKind, valid_name};
use crate::snapshot::{self, Snapshot, Summary};
use saver::BlobSaver;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A stream to back up as one file.
#[derive(Clone, Debug)]
pub struct StdinSource {
    /// File name in the snapshot.
    pub name: String,
    /// Run this shell command and read its stdout instead of our stdin.
    pub command: Option<String>,
    /// Read this file instead of our stdin (the temp copy of a `sqlite`
    /// source of strata.toml); not with `command`.
    pub file: Option<PathBuf>,
    /// Kill `command` (with every process it started) if it has not
    /// finished within this long: the snapshot fails, nothing is saved.
    pub timeout: Option<std::time::Duration>,
}

/// Validated options of `strata snapshot`.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// Source paths.
    pub paths: Vec<PathBuf>,
    /// A stream source, if any.
    pub stdin: Option<StdinSource>,
    /// Tags.
    pub tags: Vec<String>,
    /// Host name override.
    pub host: Option<String>,
    /// Exclude globs.
    pub excludes: Vec<String>,
    /// Skip directories containing one of these file names.
    pub exclude_if_present: Vec<String>,
    /// Do not descend into other file systems.
    pub one_file_system: bool,
    /// Explicit parent snapshot (id prefix or `latest`).
    pub parent: Option<String>,
    /// Read every file even if unchanged.
    pub force_rehash: bool,
    /// Record this time (Unix ns) instead of now (`--time`).
    pub time: Option<i64>,
}

/// Live counters, readable while a snapshot runs (progress display).
#[derive(Debug, Default)]
pub struct Counters {
    /// Files done (progress).
    pub progress_files: AtomicU64,
    /// Bytes chunked (progress).
    pub progress_bytes: AtomicU64,
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    other: AtomicU64,
    total_bytes: AtomicU64,
    bytes_read: AtomicU64,
    warnings: AtomicU64,
}

/// Estimate the bytes of regular files below `paths` (for a progress ETA):
/// a plain walk without excludes, stopped early when `stop` is set.
pub fn estimate_size(paths: &[PathBuf], total: &AtomicU64, stop: &std::sync::atomic::AtomicBool) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if stop.load(Relaxed) {
            return;
        }
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_file() {
            total.fetch_add(md.len(), Relaxed);
        } else if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|d| d.path()));
            }
        }
    }
}

/// What a finished snapshot reports.
#[derive(Debug)]
pub struct SnapshotReport {
    /// The new snapshot.
    pub id: SnapshotId,
    /// Its manifest.
    pub snapshot: Snapshot,
    /// Per-file warnings (files skipped or changed while read).
    pub warnings: Vec<String>,
}

/// Run a snapshot under `lock` (shared). Per-file problems become warnings
/// in the report; errors of the repository or of a source command abort
/// with nothing saved.
pub fn run(
    repo: &Repo,
    opts: &SnapshotOptions,
    counters: &Counters,
    lock: &Lock,
) -> Result<SnapshotReport> {
    let start = std::time::Instant::now();
    let time_unix_ns = opts.time.unwrap_or_else(crate::sys::now_ns);
    if opts.paths.is_empty() && opts.stdin.is_none() {
        return Err(Error::Invalid(
            "nothing to back up: give a PATH or `-`".into(),
        ));
    }
    gcstate::grace_from_env()?; // a bad STRATA_GC_GRACE fails before any work
    repo.require_format_2()?; // format-2 trees follow
    repo.clean_tmp()?;
    let Prepared {
        read_state,
        mut warnings,
        damaged,
    } = prepare(repo)?;
    let host = opts.host.clone().unwrap_or_else(crate::sys::hostname);
    let (sources, paths) = sources(opts)?;
    let parent = find_parent(repo, opts, &host, &paths, &mut warnings)?;
    let reader = BlobReader::new(repo)?;
    let parent_root = root::ParentRoot::of(
        &reader,
        parent
            .as_ref()
            .map(|(_, s)| s)
            .filter(|s| !damaged.contains(&s.tree)),
    )?;

    let saver = BlobSaver::new(repo)?;
    let walker = walk::Walker {
        saver: &saver,
        parents: parent.as_ref().map(|_| &reader),
        write_only: repo.is_write_only(),
        chunker: repo.chunker(),
        opts,
        excludes: crate::paths::Patterns::new(&opts.excludes)?,
        counters,
        warnings: Mutex::new(Vec::new()),
        hardlinks: Mutex::new(HashMap::new()),
        damaged,
        repo_dir: std::fs::metadata(repo.root())
            .ok()
            .map(|m| (m.dev(), m.ino())),
    };
    let root = match walk_and_train(repo, &walker, &sources, &parent_root) {
        Ok(r) => r,
        Err(e) => {
            saver.abandon();
            return Err(e);
        }
    };
    // INV-2/INV-3: every pack sealed, durable and indexed before the manifest.
    saver.finish()?;
    // format-spec/gc.md: publish only while the lock holds and within the
    // grace period since the gc state was read.
    lock.check()?;
    gcstate::check_publish(&read_state)?;
    warnings.extend(walker.warnings.into_inner().unwrap_or_default());
    let snap = Snapshot {
        time_unix_ns,
        host,
        username: std::env::var("USER").unwrap_or_default(),
        paths,
        tags: opts.tags.clone(),
        tree: root,
        parent: parent.map(|(id, _)| id),
        summary: summary(counters, &saver, warnings.len(), start),
        program: format!("strata {}", env!("CARGO_PKG_VERSION")),
        layout: crate::snapshot::Layout::Absolute as u8,
        writer: repo
            .crypto()
            .and_then(|c| c.writer().map(|w| w.key_id.clone())),
    };
    let id = snap.save(repo)?; // INV-4
    if repo.is_write_only() {
        last::record(repo, &id, &snap);
    }
    Ok(SnapshotReport {
        id,
        snapshot: snap,
        warnings,
    })
}

/// What a snapshot starts from: when the gc state was read, the warnings
/// so far, and the blobs recorded damaged that were not stored again.
struct Prepared {
    read_state: Since,
    warnings: Vec<String>,
    damaged: HashSet<BlobId>,
}

/// Packs complete on disk but not yet indexed (a killed run) are indexed
/// now, so this snapshot reuses them; packs gone are dropped, and the gc
/// state is read: dedup skips condemned packs (format-spec/gc.md).
fn prepare(repo: &Repo) -> Result<Prepared> {
    let read_state = Since::now();
    let mut index = repo.index()?;
    let rec = index.reconcile(repo)?;
    let mut warnings = rec.warnings;
    // Healing (format-spec/check.md "Damaged blobs"): blobs found damaged
    // leave the index, so they are stored again, and a parent's entry that
    // names one not stored again since is not reused.
    // An unreadable record is a warning: it must not stop a backup.
    let damaged = if repo.is_write_only() {
        Ok(Default::default())
    } else {
        crate::maint::repair::damaged::Damaged::load(repo)
    };
    let damaged = damaged.unwrap_or_else(|e| {
        warnings.push(format!("{e}"));
        Default::default()
    });
    // a write-only key reads no record (write-only.md)
    let damaged = if repo.is_write_only() {
        Default::default()
    } else {
        damaged
    };
    damaged.apply(&index)?;
    let damaged = damaged.unhealed(&index)?;
    drop(index);
    if let Some(first) = rec.missing.first() {
        warnings.push(format!(
            "{} pack(s) the index knows are missing from the repository (first: {}); \
             their blobs are stored again when a file that has them is read",
            rec.missing.len(),
            first.to_hex()
        ));
    }
    Ok(Prepared {
        read_state,
        warnings,
        damaged,
    })
}

/// The sources (absolute, sorted, checked) and the paths recorded for
/// them: each source's absolute path; a stdin source as `/NAME`, where
/// the absolute layout puts it (restic records the same).
fn sources(opts: &SnapshotOptions) -> Result<(Vec<PathBuf>, Vec<Vec<u8>>)> {
    let mut sources: Vec<PathBuf> = opts
        .paths
        .iter()
        .map(|p| root::normalize(p))
        .collect::<Result<_>>()?;
    sources.sort();
    sources.dedup();
    if let Some(s) = &opts.stdin {
        if !valid_name(s.name.as_bytes()) {
            return Err(Error::Invalid(format!(
                "--stdin-name {:?} is not a valid file name",
                s.name
            )));
        }
    }
    root::check(&sources, opts.stdin.as_ref().map(|s| s.name.as_str()))?;
    let mut paths: Vec<Vec<u8>> = sources
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    if let Some(s) = &opts.stdin {
        paths.push(format!("/{}", s.name).into_bytes());
    }
    paths.sort();
    Ok((sources, paths))
}

/// The parent: explicit, or the latest snapshot of this host with the
/// same paths.
fn find_parent(
    repo: &Repo,
    opts: &SnapshotOptions,
    host: &str,
    paths: &[Vec<u8>],
    warnings: &mut Vec<String>,
) -> Result<Option<(SnapshotId, Snapshot)>> {
    if repo.is_write_only() {
        // write-only.md "Finding the parent without reading manifests"
        if opts.parent.is_some() {
            return Err(Error::NeedsFullKey(
                "--parent needs a full key (a write-only key reads no manifest)".into(),
            ));
        }
        return last::parent(repo, host, paths);
    }
    if let Some(spec) = &opts.parent {
        return snapshot::resolve(repo, spec, &Default::default(), warnings).map(Some);
    }
    // Through the manifest cache: a backup every few minutes must not
    // read and decrypt every manifest of the repository to find its parent.
    let (list, bad) = snapshot::list_cached(repo)?;
    warnings.extend(
        bad.iter()
            .map(|e| format!("skipping unreadable snapshot: {e}")),
    );
    // write-only.md: never a write-only key's snapshot (its packs are not
    // trusted until verified, and trees are reused through the parent)
    Ok(list
        .into_iter()
        .rev()
        .filter(|(id, s)| !snapshot::skip_future(id, s, warnings))
        .find(|(_, s)| s.host == host && s.paths == paths && s.writer.is_none()))
}

/// Walk the sources into the root tree. A dictionary, when one is due, is
/// trained beside the walk; the blobs that need it wait in the saver's
/// bounded queue meanwhile.
fn walk_and_train(
    repo: &Repo,
    walker: &walk::Walker<'_>,
    sources: &[PathBuf],
    parent_root: &root::ParentRoot,
) -> Result<crate::id::BlobId> {
    let saver = walker.saver;
    std::thread::scope(|s| {
        let trainer = match dictionary_due(repo) {
            Ok(false) => None,
            Ok(true) => {
                saver.hold_for_dictionary()?;
                let h = std::thread::Builder::new()
                    .name("strata-dict".into())
                    .spawn_scoped(s, move || {
                        let trained = train_dictionary(repo, saver);
                        // Open even after a failure, or the queue would wait forever.
                        let stored = saver.open_gate();
                        trained.and(stored)
                    })
                    .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
                Some(h)
            }
            Err(e) => return Err(e),
        };
        let root = build_root(walker, sources, walker.opts, parent_root, walker.counters);
        saver.end_of_input();
        if let Some(h) = trainer {
            h.join()
                .map_err(|_| Error::Internal("dictionary training thread panicked".into()))??;
        }
        root
    })
}

/// The snapshot's summary from the live counters.
fn summary(
    counters: &Counters,
    saver: &BlobSaver<'_>,
    warnings: usize,
    start: std::time::Instant,
) -> Summary {
    let g = |a: &AtomicU64| a.load(Relaxed);
    Summary {
        files_new: g(&counters.files_new),
        files_changed: g(&counters.files_changed),
        files_unchanged: g(&counters.files_unchanged),
        dirs: g(&counters.dirs),
        other: g(&counters.other),
        total_bytes: g(&counters.total_bytes),
        bytes_read: g(&counters.bytes_read),
        blobs_added: g(&saver.stats.blobs),
        bytes_added: g(&saver.stats.raw),
        stored_added: g(&saver.stats.stored),
        warnings: warnings as u64,
        duration_ns: start.elapsed().as_nanos() as u64,
    }
}

/// Whether [`train_dictionary`] has work: no dictionary yet, or the newest
/// is older than [`dict::RETRAIN_DAYS`], and blobs are compressed at all.
fn dictionary_due(repo: &Repo) -> Result<bool> {
    if repo.config().compression_level == 0 {
        return Ok(false);
    }
    let dicts = repo.dicts(false)?;
    Ok(match dicts.newest() {
        None => true,
        Some(d) => {
            crate::sys::now_ns().saturating_sub(d.created_unix_ns)
                > dict::RETRAIN_DAYS * 86_400 * 1_000_000_000
        }
    })
}

/// Train the repository's first dictionary from samples of the sources'
/// small files, or a new one when the newest is older than
/// [`dict::RETRAIN_DAYS`] and a fresh one compresses a held-out half of the
/// samples at least 10 % smaller (format-spec/objects.md "When to train").
/// The dictionary file is durable before any blob compressed with it is
/// written (INV-1, then the packs: INV-2).
fn train_dictionary(repo: &Repo, saver: &BlobSaver<'_>) -> Result<()> {
    let dicts = repo.dicts(false)?;
    let samples = saver.dictionary_samples(dict::SAMPLES, dict::SAMPLE_SLICE)?;
    let Some(newest) = dicts.newest() else {
        if let Some(d) = dict::train(&samples) {
            crate::repo::dicts::save(repo, d, samples.len())?;
            repo.dicts(true)?;
        }
        return Ok(());
    };
    // Retrain on one half, judge on the other.
    let (mut train_on, mut judge) = (Vec::new(), Vec::new());
    for (i, s) in samples.into_iter().enumerate() {
        if i % 2 == 0 {
            &mut train_on
        } else {
            &mut judge
        }
        .push(s);
    }
    if let Some(d) = dict::train(&train_on) {
        let old = dict::compressed_size(&judge, Some(&newest.bytes));
        let new = dict::compressed_size(&judge, Some(&d));
        if new * 10 < old * 9 {
            crate::repo::dicts::save(repo, d, train_on.len())?;
            repo.dicts(true)?;
        }
    }
    Ok(())
}

fn build_root(
    walker: &walk::Walker<'_>,
    sources: &[PathBuf],
    opts: &SnapshotOptions,
    parent: &root::ParentRoot,
    counters: &Counters,
) -> Result<crate::id::BlobId> {
    let mut extra = Vec::new();
    if let Some(s) = &opts.stdin {
        extra.push(walk::Child::new(stdin_entry(walker, s, counters)?));
    }
    root::build(walker, sources, extra, parent)
}

fn stdin_entry(walker: &walk::Walker<'_>, s: &StdinSource, counters: &Counters) -> Result<Entry> {
    let now = crate::sys::now_ns();
    let mut e = Entry {
        mode: 0o600,
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        mtime_sec: now.div_euclid(1_000_000_000),
        mtime_nsec: now.rem_euclid(1_000_000_000) as u32,
        ..Entry::new(s.name.as_bytes().to_vec(), EntryKind::File)
    };
    let stream = |r: &mut dyn Read| -> Result<(Vec<crate::id::BlobId>, u64)> {
        source::save_stream(
            r,
            1 << 20,
            walker.chunker,
            walker.saver,
            &counters.progress_bytes,
        )
        .map_err(|e| match e {
            source::SourceError::Source(err) => {
                Error::Invalid(format!("reading {}: {err}", s.name))
            }
            source::SourceError::Repo(err) => err,
        })
    };
    let (content, n) = match (&s.command, &s.file) {
        (None, Some(path)) => {
            let mut f = std::fs::File::open(path).map_err(|e| {
                Error::Invalid(format!("reading {}: {}: {e}", s.name, path.display()))
            })?;
            stream(&mut f)?
        }
        (None, None) => stream(&mut std::io::stdin().lock())?,
        (Some(cmd), _) => {
            let mut c = crate::sys::shell(cmd);
            if s.timeout.is_some() {
                // its own process group: the timeout kills what it started
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
            }
            let mut child = c
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| Error::Invalid(format!("cannot run `{cmd}`: {e}")))?;
            let watchdog = s
                .timeout
                .map(|d| crate::sys::Watchdog::start(child.id(), d));
            let r = match child.stdout.as_mut() {
                Some(out) => stream(out),
                None => Err(Error::Invalid("no stdout from command".into())),
            };
            let status = child
                .wait()
                .map_err(|e| Error::Invalid(format!("waiting for `{cmd}`: {e}")))?;
            if let (Some(w), Some(d)) = (&watchdog, s.timeout) {
                if w.fired() {
                    return Err(Error::SourceCommand {
                        command: cmd.clone(),
                        status: format!(
                            "killed after its command_timeout of {}",
                            humantime::format_duration(d)
                        ),
                    });
                }
            }
            if !status.success() {
                // INV-6: the run fails before any manifest is written; blobs
                // already stored are unreferenced and cost nothing but space.
                return Err(Error::SourceCommand {
                    command: cmd.clone(),
                    status: status.to_string(),
                });
            }
            r?
        }
    };
    e.content = content;
    e.size = n;
    counters.bytes_read.fetch_add(n, Relaxed);
    counters.total_bytes.fetch_add(n, Relaxed);
    counters.files_new.fetch_add(1, Relaxed);
    Ok(e)
}
