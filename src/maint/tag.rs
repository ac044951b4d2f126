//! `strata tag`: rewrite manifests' tags (so a snapshot can be pinned with
//! `forget --keep-tag`). The new manifest is written (INV-1) before the old
//! one is removed, and the old one is recorded as forgotten first (GC-6).

use crate::error::Result;
use crate::id::SnapshotId;
use crate::repo::Repo;
use crate::repo::gcstate::{self, Since};
use crate::repo::lock::Lock;
use crate::snapshot::Snapshot;

/// The tag changes of one `tag` command.
#[derive(Clone, Debug, Default)]
pub struct TagChange {
    /// Replace all tags with these (`--set`, applied first).
    pub set: Option<Vec<String>>,
    /// Remove these.
    pub remove: Vec<String>,
    /// Add these.
    pub add: Vec<String>,
}

impl TagChange {
    /// The tags after the change, in order, without duplicates.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let base = self.set.as_deref().unwrap_or(tags);
        for t in base.iter().chain(&self.add) {
            if !self.remove.contains(t) && !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

/// One manifest's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Retagged {
    /// The manifest before.
    pub old: SnapshotId,
    /// The new manifest; `None` when the tags did not change.
    pub new: Option<SnapshotId>,
    /// The tags now.
    pub tags: Vec<String>,
}

/// Apply `change` to each snapshot under `lock` (exclusive).
pub fn tag(
    repo: &Repo,
    lock: &Lock,
    targets: &[(SnapshotId, Snapshot)],
    change: &TagChange,
) -> Result<Vec<Retagged>> {
    let since = Since::now();
    let mut out = Vec::new();
    let mut old = Vec::new();
    for (id, s) in targets {
        let tags = change.apply(&s.tags);
        if tags == s.tags {
            out.push(Retagged {
                old: *id,
                new: None,
                tags,
            });
            continue;
        }
        let new = Snapshot {
            tags: tags.clone(),
            ..s.clone()
        };
        lock.check()?;
        gcstate::check_publish(&since)?;
        let new_id = new.save(repo)?; // INV-1: durable before the old one goes
        if new_id != *id {
            old.push((*id, Some(s.tree)));
        }
        out.push(Retagged {
            old: *id,
            new: Some(new_id),
            tags,
        });
    }
    super::forget::remove(repo, lock, &old)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn set_then_remove_then_add() {
        let c = TagChange {
            set: None,
            remove: v(&["b"]),
            add: v(&["c", "a"]),
        };
        assert_eq!(c.apply(&v(&["a", "b"])), v(&["a", "c"]));
        let c = TagChange {
            set: Some(v(&["x"])),
            ..TagChange::default()
        };
        assert_eq!(c.apply(&v(&["a"])), v(&["x"]));
        let c = TagChange {
            set: Some(vec![]),
            ..TagChange::default()
        };
        assert!(c.apply(&v(&["a"])).is_empty());
    }
}
