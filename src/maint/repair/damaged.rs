//! Blobs found damaged or missing (format-spec/check.md "Damaged blobs"):
//! `check` and `repair` record each (blob, pack) they could not read, so
//! that the next backup stores those blobs again and re-reads the files
//! that use them, although the files are unchanged and an index rebuild
//! would re-add the damaged pack's rows from its intact trailer. Kept
//! beside the index, outside it: `damaged.json` in the index's directory
//! (per repository and location, index.md "Where the index lives");
//! JSON, written under a temp name, fsynced and renamed (0600), under an
//! advisory lock.
//!
//! [`Damaged::apply`] drops the recorded rows from the index (every
//! command that uses the record calls it first, so a rebuild in between
//! changes nothing): dedup then no longer finds such a blob, and a read
//! never picks the damaged copy. An entry leaves the record once its blob
//! is stored again in a live pack and its pack is gone.

use crate::backend::fsutil::Atomic;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::repo::Repo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// One recorded blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The blob (hex).
    pub blob: String,
    /// The pack whose copy is damaged (hex); `None`: in no pack.
    pub pack: Option<String>,
    /// What was wrong, one line.
    pub detail: String,
    /// When it was recorded (Unix s).
    pub time_unix: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    blobs: Vec<Entry>,
}

/// The record of one repository.
#[derive(Debug, Default)]
pub struct Damaged {
    /// (blob, pack) -> entry.
    entries: BTreeMap<(BlobId, Option<PackId>), Entry>,
}

/// A blob to record: its id, the pack of the damaged copy, why.
pub type Found = (BlobId, Option<PackId>, String);

/// Beside the index (index.md "Where the index lives"): per repository
/// and location, as a mirror's copies of a pack are not damaged with ours.
fn path(repo: &Repo) -> PathBuf {
    repo.index_dir().join("damaged.json")
}

fn lock_path(repo: &Repo) -> PathBuf {
    lock_in(repo.index_dir())
}

fn lock_in(index_dir: &Path) -> PathBuf {
    index_dir.join(".damaged.lock")
}

/// The index directory (where the record is kept) of repository
/// `repo_id` at `name` (a directory or a URL), without opening it: the
/// other end of a `sync` (index.md "Where the index lives"). `None`
/// without a cache directory.
pub fn index_dir_at(repo_id: &crate::id::RepoId, name: &str) -> Option<PathBuf> {
    let loc = crate::maint::check::state::location(name);
    Some(
        crate::cache::base_dir()?
            .join(repo_id.to_hex())
            .join("index")
            .join(crate::repo::location_key(&loc)),
    )
}

/// The packs recorded damaged in the record kept in `index_dir` (none if
/// there is no record or it does not read).
pub fn packs_in(index_dir: &Path) -> BTreeSet<PackId> {
    load_file(&index_dir.join("damaged.json"))
        .map(|d| d.entries.keys().filter_map(|(_, p)| *p).collect())
        .unwrap_or_default()
}

/// Packs of the repository whose index lives in `index_dir` were copied
/// again from an intact copy (their hash is their name): their entries
/// leave the record, and their rows the index, so that the next open
/// indexes them again from their trailers (`Index::reconcile`).
pub fn healed_in(index_dir: &Path, packs: &[PackId]) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let p = index_dir.join("damaged.json");
    let out = crate::cache::locked(&lock_in(index_dir), || -> Result<()> {
        let mut d = load_file(&p)?;
        let n = d.entries.len();
        d.entries
            .retain(|(_, q), _| q.as_ref().is_none_or(|q| !packs.contains(q)));
        if d.entries.len() != n {
            save_file(&p, &d)?;
        }
        Ok(())
    });
    out.unwrap_or(Ok(()))?;
    let ix = index_dir.join(crate::repo::INDEX_FILE);
    if let Ok(Ok(mut index)) = Index::open_checked(&ix) {
        index.remove_packs(packs)?;
    }
    Ok(())
}

fn key(e: &Entry) -> Option<(BlobId, Option<PackId>)> {
    let b = BlobId::from_hex(&e.blob)?;
    let p = match &e.pack {
        Some(h) => Some(PackId::from_hex(h)?),
        None => None,
    };
    Some((b, p))
}

impl Damaged {
    /// The record of `repo` (empty if there is none; an unreadable one is
    /// an error, so that it is never silently overwritten).
    pub fn load(repo: &Repo) -> Result<Damaged> {
        load_file(&path(repo))
    }

    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, by blob then pack.
    pub fn entries(&self) -> impl Iterator<Item = (&BlobId, Option<&PackId>, &Entry)> {
        self.entries.iter().map(|((b, p), e)| (b, p.as_ref(), e))
    }

    /// Blobs recorded damaged in `pack`.
    pub fn in_pack(&self, pack: &PackId) -> Vec<BlobId> {
        self.entries
            .keys()
            .filter(|(_, p)| p.as_ref() == Some(pack))
            .map(|(b, _)| *b)
            .collect()
    }

    /// Drop the recorded (blob, pack) rows from the index, in one
    /// transaction; returns how many rows went.
    pub fn apply(&self, index: &Index) -> Result<usize> {
        if self.entries.is_empty() {
            return Ok(0);
        }
        let conn = index.conn();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let run = || -> Result<usize> {
            let mut st = conn.prepare_cached(
                "DELETE FROM blobs WHERE id = ?1 AND pack = (SELECT id FROM packs WHERE name = ?2)",
            )?;
            let mut n = 0;
            for (b, p) in self.entries.keys() {
                if let Some(p) = p {
                    n += st.execute(rusqlite::params![&b.0[..], &p.0[..]])?;
                }
            }
            Ok(n)
        };
        match run() {
            Ok(n) => {
                conn.execute_batch("COMMIT")?;
                Ok(n)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The recorded blobs not stored again in a live pack (call after
    /// [`apply`](Self::apply), so the index holds no damaged copy): the
    /// next backup must not reuse a parent's entry that names one.
    pub fn unhealed(&self, index: &Index) -> Result<HashSet<BlobId>> {
        let mut out = HashSet::new();
        for (b, _) in self.entries.keys() {
            if !out.contains(b) && !index.contains(b)? {
                out.insert(*b);
            }
        }
        Ok(out)
    }
}

/// The record in the file `p` (empty if there is none; an unreadable one
/// is an error, so that it is never silently overwritten).
fn load_file(p: &Path) -> Result<Damaged> {
    let p = p.to_path_buf();
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Damaged::default()),
        Err(e) => return Err(Error::Io { path: p, source: e }),
    };
    let f: File = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: unreadable ({e}); move it away to start a new record",
            p.display()
        ))
    })?;
    Ok(Damaged {
        entries: f
            .blobs
            .into_iter()
            .filter_map(|e| Some((key(&e)?, e)))
            .collect(),
    })
}

/// Add `found` to the record of `repo`, drop entries that are healed
/// (stored again in a live pack) and whose pack is not in `listed`, and
/// save it if it changed. Then drop the recorded rows from `index`.
pub fn record(
    repo: &Repo,
    index: &Index,
    found: &[Found],
    listed: &dyn Fn(&PackId) -> bool,
) -> Result<Damaged> {
    let now = crate::sys::now_ns() / 1_000_000_000;
    let out = crate::cache::locked(&lock_path(repo), || -> Result<Damaged> {
        let mut d = Damaged::load(repo)?;
        let before: Vec<(BlobId, Option<PackId>)> = d.entries.keys().copied().collect();
        for (b, p, why) in found {
            d.entries.entry((*b, *p)).or_insert_with(|| Entry {
                blob: b.to_hex(),
                pack: p.map(|p| p.to_hex()),
                detail: why.clone(),
                time_unix: now,
            });
        }
        d.apply(index)?;
        let mut gone = Vec::new();
        for (b, p) in d.entries.keys() {
            if p.as_ref().is_none_or(|p| !listed(p)) && index.contains(b)? {
                gone.push((*b, *p));
            }
        }
        for k in gone {
            d.entries.remove(&k);
        }
        let after: Vec<(BlobId, Option<PackId>)> = d.entries.keys().copied().collect();
        if after != before {
            save(repo, &d)?;
        }
        Ok(d)
    });
    out.unwrap_or_else(|| {
        Err(Error::Invalid(format!(
            "{}: cannot lock the record of damaged blobs",
            lock_path(repo).display()
        )))
    })
}

/// Remove the entries of `packs` (found intact by `check --read-data`:
/// their hash is their name).
pub fn forget_packs(repo: &Repo, packs: &[PackId]) -> Result<()> {
    let out = crate::cache::locked(&lock_path(repo), || -> Result<()> {
        let mut d = Damaged::load(repo)?;
        let n = d.entries.len();
        d.entries
            .retain(|(_, p), _| p.as_ref().is_none_or(|p| !packs.contains(p)));
        if d.entries.len() != n {
            save(repo, &d)?;
        }
        Ok(())
    });
    out.unwrap_or(Ok(()))
}

fn save(repo: &Repo, d: &Damaged) -> Result<()> {
    save_file(&path(repo), d)
}

fn save_file(p: &Path, d: &Damaged) -> Result<()> {
    let p = p.to_path_buf();
    if d.entries.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Io { path: p, source: e })
            }
            _ => Ok(()),
        };
    }
    let f = File {
        version: 1,
        blobs: d.entries.values().cloned().collect(),
    };
    let bytes = serde_json::to_vec_pretty(&f)
        .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
    crate::backend::fsutil::write_atomic(&p, &bytes, Atomic::local(0o600))
}
