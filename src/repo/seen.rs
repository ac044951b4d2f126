//! Snapshots this user has seen (threat-model.md "Rollback and deletion",
//! format-spec/check.md "Seen snapshots"): a storage that deletes or rolls
//! back whole valid manifests cannot be caught from the repository alone,
//! so every manifest this machine writes or lists is recorded in the
//! user's cache, `<cache>/<repository id hex>/seen/<location>` (one per
//! place the repository is opened at, so a mirror made by `sync` keeps its
//! own record). One snapshot id (hex) per line after a header line;
//! written under a temp name, fsynced and renamed (0600), under an
//! advisory lock so two processes never lose each other's update.
//! Removals from this machine (`forget`, `tag`, `rewrite`, `repair`: all go
//! through `snapshot::remove`) leave the record first, and removals from
//! another host are told apart by the gc state, which records every
//! removed snapshot for 90 days (format-spec/gc.md "Gc state files"), so
//! only snapshots that vanished otherwise are reported; `gc` and `forget`
//! refuse to run while any are (maint/vanished.rs). With `STRATA_CACHE_DIR=` (empty)
//! nothing is recorded. Everything here is best effort: a record that
//! cannot be read or written never fails a command.

use crate::backend::fsutil;
use crate::id::SnapshotId;
use crate::repo::Repo;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const HEADER: &str = "strata seen snapshots 1";

/// The record of `repo`, if there is a cache directory.
fn path(repo: &Repo) -> Option<PathBuf> {
    let base = crate::cache::base_dir()?;
    let (_, name) = crate::repo::known::location(repo.name())?;
    Some(
        base.join(repo.config().repo_id.to_hex())
            .join("seen")
            .join(name),
    )
}

/// The ids recorded in `file`; `None` when there is no (readable) record.
fn load(file: &Path) -> Option<BTreeSet<SnapshotId>> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return None;
    }
    Some(lines.filter_map(SnapshotId::from_hex).collect())
}

fn save(file: &Path, ids: &BTreeSet<SnapshotId>) {
    let mut text = String::with_capacity(HEADER.len() + 1 + ids.len() * 65);
    text.push_str(HEADER);
    text.push('\n');
    for id in ids {
        text.push_str(&id.to_hex());
        text.push('\n');
    }
    let _ = fsutil::write_atomic(file, text.as_bytes(), fsutil::Atomic::local(0o600));
}

/// Run `f` on the record (`None`: no record yet) under the record's
/// advisory lock; `f` returns the new record, if it changed.
fn update(
    repo: &Repo,
    f: impl FnOnce(Option<BTreeSet<SnapshotId>>) -> Option<BTreeSet<SnapshotId>>,
) {
    let Some(file) = path(repo) else { return };
    let Some(dir) = file.parent() else { return };
    crate::cache::locked(&dir.join(".lock"), || {
        if let Some(new) = f(load(&file)) {
            save(&file, &new);
        }
    });
}

/// Record snapshots written by this machine (a first record holds only
/// them; the next listing adds the rest).
pub fn added(repo: &Repo, ids: &[SnapshotId]) {
    update(repo, |seen| {
        let mut seen = seen.unwrap_or_default();
        let before = seen.len();
        seen.extend(ids.iter().copied());
        (seen.len() != before).then_some(seen)
    });
}

/// Snapshots this machine removes (before they are deleted).
pub fn removed(repo: &Repo, ids: &[SnapshotId]) {
    update(repo, |seen| {
        let mut seen = seen?;
        let before = seen.len();
        for id in ids {
            seen.remove(id);
        }
        (seen.len() != before).then_some(seen)
    });
}

/// Compare the snapshots listed now with the record: the ids seen before
/// and gone now, without a removal from this machine and not recorded as
/// forgotten in the gc state (`forgotten`: another host's `forget`), sorted.
/// The new ones are recorded, the forgotten ones leave the record, and
/// the vanished ones stay in it: they are reported by every command that
/// looks until [`acknowledge`] removes them (threat-model.md "Rollback and
/// deletion"). No record yet: the listing becomes the record, and nothing
/// vanished.
pub fn observe(
    repo: &Repo,
    listed: &[SnapshotId],
    forgotten: &BTreeSet<SnapshotId>,
) -> Vec<SnapshotId> {
    let now: BTreeSet<SnapshotId> = listed.iter().copied().collect();
    let mut vanished = Vec::new();
    update(repo, |seen| {
        let Some(seen) = seen else {
            return Some(now);
        };
        let new: BTreeSet<SnapshotId> = seen
            .union(&now)
            .filter(|id| now.contains(id) || !forgotten.contains(id))
            .copied()
            .collect();
        vanished = new.difference(&now).copied().collect();
        (new != seen).then_some(new)
    });
    vanished
}

/// The user accepts that these snapshots are lost (`--acknowledge-missing`):
/// they leave the record and are reported no more.
pub fn acknowledge(repo: &Repo, ids: &[SnapshotId]) {
    removed(repo, ids);
}

/// The warning for vanished snapshots, one line.
pub fn warning(vanished: &[SnapshotId]) -> Option<String> {
    if vanished.is_empty() {
        return None;
    }
    let shown: Vec<String> = vanished.iter().take(10).map(|i| i.short()).collect();
    Some(format!(
        "{} snapshots this machine saw before are gone, and no forget recorded them: {}{} \
         (deleted or rolled back by the storage, or forgotten on another host more than \
         90 days ago; threat-model.md \"Rollback and deletion\")",
        vanished.len(),
        shown.join(", "),
        if vanished.len() > 10 { ", …" } else { "" }
    ))
}
