//! A write-only host's record of its last snapshot per source
//! (format-spec/write-only.md "Finding the parent without reading
//! manifests"): it cannot read manifests, so it keeps, in its private
//! cache, the snapshot id, root tree and time of the last snapshot it
//! published for each set of paths. The tree cache holds the listings it
//! wrote. A record that is lost or names a snapshot that is gone (forgotten
//! by a full key) means no parent: every file is read again, which is
//! correct.

use crate::id::{BlobId, SnapshotId};
use crate::repo::Repo;
use crate::snapshot::{Layout, Snapshot, Summary};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One source's last snapshot.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
struct Last {
    snapshot: String,
    tree: String,
    time_unix_ns: i64,
}

fn path(repo: &Repo) -> Option<PathBuf> {
    let c = repo.crypto()?;
    let w = c.writer()?;
    Some(
        crate::cache::base_dir()?
            .join(repo.config().repo_id.to_hex())
            .join("write-only")
            .join(w.key_id.as_str())
            .join("last.json"),
    )
}

/// The record's key of a source: host and paths.
fn key(host: &str, paths: &[Vec<u8>]) -> String {
    let mut k = host.to_string();
    for p in paths {
        k.push('\0');
        k.push_str(&String::from_utf8_lossy(p));
    }
    k
}

fn read(path: &std::path::Path) -> BTreeMap<String, Last> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The parent of a write-only host's next snapshot of `paths`: its last
/// one, if the record has it and `snapshots/<id>` is still there (a
/// forgotten snapshot's blobs may be gone). Only the fields a backup uses
/// are filled in.
pub fn parent(
    repo: &Repo,
    host: &str,
    paths: &[Vec<u8>],
) -> crate::Result<Option<(SnapshotId, Snapshot)>> {
    let Some(p) = path(repo) else {
        return Ok(None);
    };
    let Some(last) = read(&p).remove(&key(host, paths)) else {
        return Ok(None);
    };
    let (Some(id), Some(tree)) = (
        SnapshotId::from_hex(&last.snapshot),
        BlobId::from_hex(&last.tree),
    ) else {
        return Ok(None);
    };
    if !repo.store().exists(&format!("snapshots/{}", id.to_hex()))? {
        return Ok(None);
    }
    Ok(Some((
        id,
        Snapshot {
            time_unix_ns: last.time_unix_ns,
            host: host.to_string(),
            username: String::new(),
            paths: paths.to_vec(),
            tags: Vec::new(),
            tree,
            parent: None,
            summary: Summary::default(),
            program: String::new(),
            layout: Layout::Absolute as u8,
            writer: None,
        },
    )))
}

/// Record snapshot `id` (`s`) as the last of its paths (after its
/// manifest is durable; best effort, under the cache's advisory lock).
pub fn record(repo: &Repo, id: &SnapshotId, s: &Snapshot) {
    let Some(p) = path(repo) else {
        return;
    };
    let lock = p.with_extension("lock");
    crate::cache::locked(&lock, || {
        let mut all = read(&p);
        all.insert(
            key(&s.host, &s.paths),
            Last {
                snapshot: id.to_hex(),
                tree: s.tree.to_hex(),
                time_unix_ns: s.time_unix_ns,
            },
        );
        if let Ok(b) = serde_json::to_vec_pretty(&all) {
            crate::cache::write_private(&p, &b);
        }
    });
}
