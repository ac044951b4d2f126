//! Who uses a damaged blob: a second walk over every snapshot, done only
//! when `check` found damaged or missing blobs. Each directory's listing
//! is read again (parts one by one, so a damaged part names its
//! directory and the other parts are still walked); a file whose chunks
//! include a damaged blob is reported with its path, a directory whose
//! tree or part is damaged with its own path (its inline files went with
//! it). A subtree found clean is not walked again for a later snapshot.

use crate::blob::BlobKind;
use crate::id::{BlobId, SnapshotId};
use crate::read::BlobReader;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use std::collections::{BTreeMap, HashSet};

/// A snapshot and a path in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Use {
    /// The snapshot id (hex).
    pub snapshot: String,
    /// The path in the snapshot (paths::escape'd).
    pub path: String,
}

/// At most this many uses are kept per blob.
const MAX_USES: usize = 50;

/// The uses of each blob of `damaged` in `snapshots`.
pub fn find(
    reader: &BlobReader,
    snapshots: &[(SnapshotId, Snapshot)],
    damaged: &HashSet<BlobId>,
) -> BTreeMap<BlobId, Vec<Use>> {
    let mut w = Walk {
        reader,
        damaged,
        clean: HashSet::new(),
        uses: BTreeMap::new(),
        snapshot: String::new(),
    };
    for (id, s) in snapshots {
        w.snapshot = id.to_hex();
        w.dir(&s.tree, b"/");
    }
    w.uses
}

struct Walk<'a> {
    reader: &'a BlobReader<'a>,
    damaged: &'a HashSet<BlobId>,
    /// Trees with nothing damaged below them.
    clean: HashSet<BlobId>,
    uses: BTreeMap<BlobId, Vec<Use>>,
    snapshot: String,
}

impl Walk<'_> {
    fn found(&mut self, blob: &BlobId, path: &[u8]) {
        let v = self.uses.entry(*blob).or_default();
        if v.len() < MAX_USES {
            v.push(Use {
                snapshot: self.snapshot.clone(),
                path: crate::paths::escape(path),
            });
        }
    }

    /// Walk directory tree `id` at `path`; true if something below is
    /// damaged (or unreadable).
    fn dir(&mut self, id: &BlobId, path: &[u8]) -> bool {
        if self.clean.contains(id) {
            return false;
        }
        if self.damaged.contains(id) {
            self.found(id, path);
            return true;
        }
        let Ok(top) = self.tree(id) else {
            return true; // unreadable: reported by the structure check
        };
        let mut bad = false;
        let mut entries: Vec<Entry> = top.entries;
        for p in &top.parts {
            if self.damaged.contains(p) {
                self.found(p, path);
                bad = true;
                continue;
            }
            match self.tree(p) {
                Ok(t) => entries.extend(t.entries),
                Err(_) => bad = true,
            }
        }
        for e in &entries {
            let mut child = path.to_vec();
            if !child.ends_with(b"/") {
                child.push(b'/');
            }
            child.extend_from_slice(&e.name);
            for c in &e.content {
                if self.damaged.contains(c) {
                    self.found(c, &child);
                    bad = true;
                }
            }
            if e.kind() == EntryKind::Dir {
                if let Some(sub) = e.subtree {
                    bad |= self.dir(&sub, &child);
                }
            }
        }
        if !bad {
            self.clean.insert(*id);
        }
        bad
    }

    fn tree(&self, id: &BlobId) -> crate::Result<Tree> {
        let bytes = self.reader.read_kind(id, Some(BlobKind::Tree))?;
        Tree::decode(&bytes, id)
    }
}
