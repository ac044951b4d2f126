//! `strata rewrite`: new snapshots without the paths matching `--exclude`
//! (restic's `rewrite`), so that a leaked secret can be purged: `--forget`
//! removes the originals, and a later `gc` deletes the data. New trees go
//! through the blob saver (INV-2, INV-3) before the new manifest (INV-4);
//! originals are recorded as forgotten before removal (GC-6). Globs match
//! paths as stored in the snapshot, as for `snapshot --exclude`: without
//! `/` a name anywhere, with `/` the whole path from the snapshot root.

use crate::backup::saver::BlobSaver;
use crate::error::Result;
use crate::id::{BlobId, SnapshotId};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::gcstate::{self, Since};
use crate::repo::lock::Lock;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{EntryKind, Tree};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Validated options of `strata rewrite`.
#[derive(Clone, Debug, Default)]
pub struct RewriteOptions {
    /// Paths to drop.
    pub excludes: Vec<String>,
    /// Remove the original snapshots afterwards.
    pub forget: bool,
    /// Report only.
    pub dry_run: bool,
}

/// What was dropped from one snapshot.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Dropped {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks and special files.
    pub other: u64,
    /// Logical bytes of the files.
    pub bytes: u64,
}

/// One snapshot's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rewritten {
    /// The original.
    pub old: SnapshotId,
    /// The new snapshot; `None` when nothing matched (or with `--dry-run`).
    pub new: Option<SnapshotId>,
    /// What was dropped.
    pub dropped: Dropped,
    /// Paths dropped (the first 20).
    pub paths: Vec<String>,
}

struct Ctx<'a> {
    reader: &'a BlobReader<'a>,
    saver: Option<&'a BlobSaver<'a>>,
    excludes: crate::paths::Patterns,
}

/// Rewrite each snapshot under `lock` (exclusive).
pub fn rewrite(
    repo: &Repo,
    lock: &Lock,
    targets: &[(SnapshotId, Snapshot)],
    opts: &RewriteOptions,
) -> Result<Vec<Rewritten>> {
    let since = Since::now();
    repo.index()?.reconcile(repo)?; // dedup must skip condemned packs
    let excludes = crate::paths::Patterns::new(&opts.excludes)?;
    let reader = BlobReader::new(repo)?;
    let saver = if opts.dry_run {
        None
    } else {
        repo.require_format_2()?; // format-2 trees follow
        Some(BlobSaver::new(repo)?)
    };
    let ctx = Ctx {
        reader: &reader,
        saver: saver.as_ref(),
        excludes,
    };
    let mut out = Vec::new();
    let mut new_trees = Vec::new();
    for (id, s) in targets {
        let mut r = Rewritten {
            old: *id,
            new: None,
            dropped: Dropped::default(),
            paths: Vec::new(),
        };
        let tree = filter(&ctx, &s.tree, Path::new("/"), &mut r)?;
        new_trees.push(tree);
        out.push(r);
    }
    let Some(saver) = &saver else {
        return Ok(out);
    };
    if let Err(e) = saver.finish() {
        saver.abandon();
        return Err(e);
    }
    let mut old = Vec::new();
    for ((r, tree), (id, s)) in out.iter_mut().zip(new_trees).zip(targets) {
        let Some(tree) = tree else { continue };
        let mut summary = s.summary.clone();
        let d = r.dropped;
        summary.files_unchanged = summary.files().saturating_sub(d.files);
        summary.files_new = 0;
        summary.files_changed = 0;
        summary.dirs = summary.dirs.saturating_sub(d.dirs);
        summary.other = summary.other.saturating_sub(d.other);
        summary.total_bytes = summary.total_bytes.saturating_sub(d.bytes);
        let new = Snapshot {
            tree,
            summary,
            program: format!("strata {}", env!("CARGO_PKG_VERSION")),
            ..s.clone()
        };
        lock.check()?;
        gcstate::check_publish(&since)?;
        r.new = Some(new.save(repo)?); // INV-4
        if opts.forget {
            old.push((*id, Some(s.tree)));
        }
    }
    super::forget::remove(repo, lock, &old)?;
    Ok(out)
}

/// The tree `id` at `path` without the excluded entries: `Some(new id)` if
/// anything was dropped below it (saved unless dry-run), else `None`.
fn filter(ctx: &Ctx, id: &BlobId, path: &Path, r: &mut Rewritten) -> Result<Option<BlobId>> {
    let tree = ctx.reader.tree(id)?;
    let mut changed = false;
    let mut entries = Vec::with_capacity(tree.entries.len());
    for mut e in tree.entries {
        let p: PathBuf = path.join(OsStr::from_bytes(&e.name));
        if ctx.excludes.matches(p.as_os_str().as_bytes()) {
            count(ctx, &e, &mut r.dropped)?;
            if r.paths.len() < 20 {
                r.paths.push(crate::paths::escape(p.as_os_str().as_bytes()));
            }
            changed = true;
            continue;
        }
        if let (EntryKind::Dir, Some(sub)) = (e.kind(), e.subtree) {
            if let Some(new) = filter(ctx, &sub, &p, r)? {
                e.subtree = Some(new);
                changed = true;
            }
        }
        entries.push(e);
    }
    if !changed {
        return Ok(None);
    }
    match ctx.saver {
        Some(s) => Ok(Some(s.save_tree(&Tree {
            entries,
            parts: Vec::new(),
        })?)),
        None => Ok(Some(*id)),
    }
}

/// Count what an excluded entry holds.
fn count(ctx: &Ctx, e: &crate::snapshot::tree::Entry, d: &mut Dropped) -> Result<()> {
    match e.kind() {
        EntryKind::File => {
            d.files += 1;
            d.bytes += e.size;
        }
        EntryKind::Dir => {
            d.dirs += 1;
            if let Some(sub) = e.subtree {
                for c in ctx.reader.tree(&sub)?.entries {
                    count(ctx, &c, d)?;
                }
            }
        }
        _ => d.other += 1,
    }
    Ok(())
}
