//! Bringing the index up to date with the repository (format-spec/index.md
//! "Rebuild from packs"): index packs that are on disk but not in the index
//! (a killed run, a missing `index.sqlite`), drop the rows of packs that gc
//! deleted (possibly on another host), flag packs that are gone without a
//! gc record as missing, and load the gc state so that dedup skips
//! condemned and missing packs (format-spec/gc.md "Index").

use super::Index;
use crate::blob::BlobKind;
use crate::error::{Error, IoContext, Result};
use crate::id::PackId;
use crate::pack::reader;
use crate::pack::writer::SealedPack;
use crate::repo::Repo;
use crate::repo::gcstate;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What [`Index::reconcile`] did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Packs indexed from their trailers.
    pub added: usize,
    /// Packs dropped from the index because gc deleted them.
    pub dropped: usize,
    /// Packs in the index whose files are gone without a gc record.
    pub missing: Vec<PackId>,
    /// Unreadable packs and gc state files, one line each.
    pub warnings: Vec<String>,
    /// The gc state as read.
    pub state: gcstate::State,
}

impl Index {
    /// Reconcile the index with the pack files and the gc state. A pack
    /// whose trailer does not verify is reported in the warnings and skipped.
    pub fn reconcile(&mut self, repo: &Repo) -> Result<Reconciled> {
        let mut out = Reconciled::default();
        // Rows first, then files: a pack that a concurrent backup indexes
        // meanwhile is then never mistaken for a deleted one.
        let known = self.pack_ids()?;
        let on_disk: HashMap<PackId, PathBuf> = list_pack_files(&repo.root().join("packs"))?
            .into_iter()
            .filter_map(|p| {
                let id = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(PackId::from_hex)?;
                Some((id, p))
            })
            .collect();
        let state = gcstate::load(repo)?;
        // Gone and recorded by gc (deleted, or condemned: a gc deleting it
        // now) is dropped; gone without a record is missing.
        let (gone, missing): (Vec<PackId>, Vec<PackId>) = known
            .iter()
            .filter(|p| !on_disk.contains_key(p))
            .partition(|p| state.deleted.contains_key(p) || state.condemned.contains_key(p));
        self.remove_packs(&gone)?;
        out.dropped = gone.len();
        let flagged: Vec<PackId> = self
            .packs()?
            .into_iter()
            .filter(|p| p.missing)
            .map(|p| p.id)
            .collect();
        let mut sorted_missing = missing.clone();
        sorted_missing.sort();
        let mut sorted_flagged = flagged;
        sorted_flagged.sort();
        if sorted_missing != sorted_flagged {
            self.set_missing(&sorted_missing)?;
        }
        out.missing = sorted_missing;
        let mut new: Vec<(&PackId, &PathBuf)> = on_disk
            .iter()
            .filter(|(id, _)| !known.contains(id))
            .collect();
        new.sort();
        for (id, path) in new {
            match read_pack(repo, id, path) {
                Ok(sealed) => {
                    self.add_pack(&sealed)?;
                    out.added += 1;
                }
                // deleted (by a gc) between listing and reading
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => out.warnings.push(format!("skipping unreadable pack: {e}")),
            }
        }
        out.warnings.extend(
            state
                .unreadable
                .iter()
                .map(|e| format!("ignoring unreadable gc state: {e}")),
        );
        self.sync_condemned(&state.condemned)?;
        out.state = state;
        Ok(out)
    }

    /// Set `packs.condemned` from the gc state, writing only if it differs.
    fn sync_condemned(&mut self, want: &BTreeMap<PackId, i64>) -> Result<()> {
        let have: BTreeMap<PackId, i64> = self
            .packs()?
            .into_iter()
            .filter_map(|p| Some((p.id, p.condemned?)))
            .collect();
        let rowids = self.pack_rowids()?;
        let want: BTreeMap<PackId, i64> = want
            .iter()
            .filter(|(p, _)| rowids.contains_key(p))
            .map(|(p, s)| (*p, *s))
            .collect();
        if have != want {
            self.set_condemned(&want)?;
        }
        Ok(())
    }
}

/// Read a pack's trailer as a [`SealedPack`] for the index.
fn read_pack(repo: &Repo, id: &PackId, path: &Path) -> Result<SealedPack> {
    let object = format!("pack {id}");
    let f = repo.open_pack(id)?;
    let (_, entries) = reader::read_trailer(&f, &object)?;
    let size = std::fs::metadata(path).at(path)?.len();
    let kind = entries.first().map(|e| e.kind).unwrap_or(BlobKind::Data);
    Ok(SealedPack {
        id: *id,
        kind,
        size,
        entries,
    })
}

/// Every file `packs/xx/<name>`.
pub fn list_pack_files(packs: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(packs).at(packs)? {
        let d = d.at(packs)?;
        if !d.file_type().at(&d.path())?.is_dir() {
            continue;
        }
        let dp = d.path();
        for f in std::fs::read_dir(&dp).at(&dp)? {
            out.push(f.at(&dp)?.path());
        }
    }
    out.sort();
    Ok(out)
}
