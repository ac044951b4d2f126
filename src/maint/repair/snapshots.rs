//! `strata repair snapshots` (format-spec/check.md "Repair"): a snapshot
//! that names damaged or missing blobs is written again without them, so
//! that everything else in it stays restorable. A blob counts as damaged
//! when no pack that exists holds it, once the rows that `check` recorded
//! damaged have left the index (damaged.rs); trees are read from their
//! packs (never the local cache) and decoded. Then:
//!
//! - a file whose chunk list names such a blob is left out;
//! - a directory whose listing (or a part of it) does not read keeps its
//!   entry, with the entries that still read (none, for a lost listing);
//! - a snapshot whose root tree does not read cannot be repaired.
//!
//! The new manifest keeps everything but the tree and counters, adds the
//! tag `repaired`, and names the original in its `program` field
//! (`strata X (repair of <id>)`, no format change). New trees go through
//! the blob saver (INV-2, INV-3) before the manifest (INV-4, create-only);
//! the original is removed after, recorded as forgotten first (GC-6).

use crate::backup::saver::BlobSaver;
use crate::blob::BlobKind;
use crate::error::Result;
use crate::id::{BlobId, SnapshotId};
use crate::index::Index;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::gcstate::{self, Since};
use crate::repo::lock::Lock;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{EntryKind, Tree};
use std::collections::HashSet;

/// The tag a repaired snapshot carries.
pub const TAG: &str = "repaired";

/// What was lost from one snapshot.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Lost {
    /// Paths left out or cut short, with why (`path: why`).
    pub paths: Vec<String>,
    /// Regular files left out.
    pub files: u64,
    /// Their logical bytes.
    pub bytes: u64,
}

/// One snapshot's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Repaired {
    /// The snapshot (hex in JSON).
    pub old: SnapshotId,
    /// The repaired snapshot (`None`: nothing was damaged, `--dry-run`,
    /// or it cannot be repaired).
    pub new: Option<SnapshotId>,
    /// What is lost.
    pub lost: Lost,
    /// Why it cannot be repaired, if so.
    pub error: Option<String>,
}

struct Ctx<'a> {
    reader: &'a BlobReader<'a>,
    index: &'a Index,
    saver: Option<&'a BlobSaver<'a>>,
    /// Trees with nothing damaged below them.
    clean: HashSet<BlobId>,
}

impl Ctx<'_> {
    fn usable(&self, id: &BlobId) -> Result<bool> {
        // a condemned pack still reads
        super::stored_elsewhere(self.index, id, None, false)
    }

    /// Tree `id` at `path` without what is damaged: `Some(new id)` if
    /// anything was (saved unless dry-run), else `None`.
    fn dir(&mut self, id: &BlobId, path: &[u8], lost: &mut Lost) -> Result<Option<BlobId>> {
        if self.clean.contains(id) {
            return Ok(None);
        }
        let mut changed = false;
        let top = self
            .reader
            .read_kind(id, Some(BlobKind::Tree))
            .and_then(|b| Tree::decode(&b, id));
        let mut entries = match top {
            Ok(t) => {
                let mut entries = t.entries;
                for p in &t.parts {
                    match self.reader.part(p) {
                        Ok(part) => entries.extend(part.entries),
                        Err(e) => {
                            changed = true;
                            note(lost, path, &format!("part of its listing lost ({e})"));
                        }
                    }
                }
                entries
            }
            Err(e) => {
                changed = true;
                note(lost, path, &format!("listing lost ({e})"));
                Vec::new()
            }
        };
        let mut kept = Vec::with_capacity(entries.len());
        for mut e in entries.drain(..) {
            let mut child = path.to_vec();
            if !child.ends_with(b"/") {
                child.push(b'/');
            }
            child.extend_from_slice(&e.name);
            match e.kind() {
                EntryKind::File => {
                    let mut bad = None;
                    for c in &e.content {
                        if !self.usable(c)? {
                            bad = Some(*c);
                            break;
                        }
                    }
                    if let Some(c) = bad {
                        changed = true;
                        lost.files += 1;
                        lost.bytes += e.size;
                        note(
                            lost,
                            &child,
                            &format!("left out: chunk {} is damaged or missing", c.short()),
                        );
                        continue;
                    }
                }
                EntryKind::Dir => {
                    if let Some(sub) = e.subtree {
                        if let Some(new) = self.dir(&sub, &child, lost)? {
                            e.subtree = Some(new);
                            changed = true;
                        }
                    }
                }
                _ => {}
            }
            kept.push(e);
        }
        if !changed {
            self.clean.insert(*id);
            return Ok(None);
        }
        match self.saver {
            Some(s) => Ok(Some(s.save_tree(&Tree {
                entries: kept,
                parts: Vec::new(),
            })?)),
            None => Ok(Some(*id)),
        }
    }
}

fn note(lost: &mut Lost, path: &[u8], why: &str) {
    lost.paths
        .push(format!("{}: {why}", crate::paths::escape(path)));
}

/// Repair each of `targets` under `lock` (exclusive).
pub fn repair(
    repo: &Repo,
    lock: &Lock,
    targets: &[(SnapshotId, Snapshot)],
    dry_run: bool,
) -> Result<Vec<Repaired>> {
    let since = Since::now();
    let mut index = repo.index()?;
    index.reconcile(repo)?; // missing packs flagged; dedup skips condemned ones
    super::damaged::Damaged::load(repo)?.apply(&index)?;
    let reader = BlobReader::new(repo)?.without_cache();
    let saver = if dry_run {
        None
    } else {
        repo.require_format_2()?; // format-2 trees follow
        Some(BlobSaver::new(repo)?)
    };
    let mut ctx = Ctx {
        reader: &reader,
        index: &index,
        saver: saver.as_ref(),
        clean: HashSet::new(),
    };
    let mut out = Vec::new();
    let mut trees = Vec::new();
    for (id, s) in targets {
        let mut lost = Lost::default();
        let mut r = Repaired {
            old: *id,
            new: None,
            lost: Lost::default(),
            error: None,
        };
        let root = reader
            .read_kind(&s.tree, Some(BlobKind::Tree))
            .and_then(|b| Tree::decode(&b, &s.tree));
        let tree = match root {
            Err(e) => {
                r.error = Some(format!("its root tree does not read: {e}"));
                None
            }
            Ok(_) => ctx.dir(&s.tree, b"/", &mut lost)?,
        };
        r.lost = lost;
        trees.push(tree);
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
    for ((r, tree), (id, s)) in out.iter_mut().zip(trees).zip(targets) {
        let Some(tree) = tree else { continue };
        let mut summary = s.summary.clone();
        summary.files_unchanged = summary.files().saturating_sub(r.lost.files);
        summary.files_new = 0;
        summary.files_changed = 0;
        summary.total_bytes = summary.total_bytes.saturating_sub(r.lost.bytes);
        let mut tags = s.tags.clone();
        if !tags.iter().any(|t| t == TAG) {
            tags.push(TAG.into());
        }
        let new = Snapshot {
            tree,
            summary,
            tags,
            program: format!(
                "strata {} (repair of {})",
                env!("CARGO_PKG_VERSION"),
                id.to_hex()
            ),
            ..s.clone()
        };
        lock.check()?;
        gcstate::check_publish(&since)?;
        r.new = Some(new.save(repo)?); // INV-4: durable before the old one goes
        old.push((*id, Some(s.tree)));
    }
    crate::maint::forget::remove(repo, lock, &old)?;
    Ok(out)
}
