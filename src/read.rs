//! Reading blobs by id through the index, with a small cache of open pack
//! files. Shared by backup (parent trees) and restore.

use crate::blob::BlobKind;
use crate::crypto::agefile::PackFile;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::pack::reader::{self, BlobLocation};
use crate::repo::Repo;
use crate::snapshot::tree::{Entry, Tree, check_entries};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Reads and checks blobs.
pub struct BlobReader<'r> {
    repo: &'r Repo,
    index: Mutex<Index>,
    files: Mutex<HashMap<PackId, Arc<PackFile>>>,
    cache: Option<crate::cache::TreeCache>,
    /// Put listings read from the packs into the cache?
    cache_puts: bool,
}

impl<'r> BlobReader<'r> {
    /// A reader over `repo` with its own index connection, which sees the
    /// index as it is now (one read transaction for the reader's lifetime).
    pub fn new(repo: &'r Repo) -> Result<Self> {
        let mut index = repo.index()?;
        index.begin_read_snapshot()?;
        Ok(BlobReader {
            repo,
            index: Mutex::new(index),
            cache: crate::cache::TreeCache::for_repo(&repo.config().repo_id),
            cache_puts: true,
            files: Mutex::new(HashMap::new()),
        })
    }

    /// Index the packs added to the repository since the fan-out
    /// directories' stamps `seen` (`Index::add_new_packs`) through this
    /// reader's own index, whose read snapshot then starts again to see
    /// them. `None`: the backend has no stamps.
    pub fn add_new_packs(
        &self,
        seen: &crate::repo::reconcile::DirStamps,
        settled: std::time::Duration,
    ) -> Result<Option<crate::repo::reconcile::DirStamps>> {
        let mut idx = self
            .index
            .lock()
            .map_err(|_| Error::Internal("index lock poisoned".into()))?;
        idx.end_read_snapshot()?;
        let added = idx.add_new_packs(self.repo, seen, settled);
        idx.begin_read_snapshot()?;
        Ok(added?.map(|(_, keep)| keep))
    }

    /// Use the cache but add nothing to it: for a walk over every tree of
    /// the repository (gc's mark), where writing one cache file per
    /// directory would cost more than it saves.
    pub fn without_cache_puts(mut self) -> Self {
        self.cache_puts = false;
        self
    }

    /// Read every tree from the packs, never from the local cache
    /// (`check`: a listing must prove that the tree in the pack decodes).
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The reader of every command that reads blobs (format-spec/index.md):
    /// first index the packs on disk that the index does not list (a killed
    /// backup, a deleted `index.sqlite`), so that every blob in a pack can
    /// be read, then [`BlobReader::new`]. Also returns the warnings
    /// (unreadable packs and gc state files), for the caller to report.
    pub fn reconciled(repo: &'r Repo) -> Result<(Self, Vec<String>)> {
        let rec = repo.index()?.reconcile(repo)?;
        Ok((Self::new(repo)?, rec.warnings))
    }

    /// [`BlobReader::reconciled`], with its warnings (packs skipped as
    /// unreadable) reported to the repository's events.
    pub fn reporting(repo: &'r Repo) -> Result<Self> {
        let (reader, skipped) = Self::reconciled(repo)?;
        for w in &skipped {
            repo.events().warning(w);
        }
        Ok(reader)
    }

    /// The repository.
    pub fn repo(&self) -> &'r Repo {
        self.repo
    }

    /// Every indexed blob: id, stored length, raw length, pack (one scan).
    pub fn for_each_blob(&self, f: &mut dyn FnMut(&crate::index::BlobInfo)) -> Result<()> {
        let idx = self
            .index
            .lock()
            .map_err(|_| Error::Internal("index lock poisoned".into()))?;
        idx.for_each_blob(f)
    }

    /// Where `id` is stored; `None` if the index does not know it.
    pub fn locate(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        let idx = self
            .index
            .lock()
            .map_err(|_| Error::Internal("index lock poisoned".into()))?;
        Ok(idx.lookup(id)?.map(|(l, _)| l))
    }

    pub(crate) fn pack_file(&self, pack: &PackId) -> Result<Arc<PackFile>> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| Error::Internal("pack cache poisoned".into()))?;
        if let Some(f) = files.get(pack) {
            return Ok(f.clone());
        }
        if files.len() > 64 {
            files.clear();
        }
        let f = match self.repo.open_pack(pack) {
            Ok(f) => Arc::new(f),
            Err(e) if e.is_not_found() => {
                return Err(Error::MissingPack {
                    pack: pack.to_hex(),
                    more: 0,
                    files: "(reading a tree)".into(),
                });
            }
            Err(e) => return Err(e),
        };
        files.insert(*pack, f.clone());
        Ok(f)
    }

    /// Read and check one blob of any kind (the kind the index records).
    pub fn read(&self, id: &BlobId) -> Result<Vec<u8>> {
        self.read_kind(id, None)
    }

    /// Read and check one blob that must be of kind `want` (if given): a
    /// data blob is never accepted where a tree is expected.
    pub fn read_kind(&self, id: &BlobId, want: Option<BlobKind>) -> Result<Vec<u8>> {
        let (loc, kind) = {
            let idx = self
                .index
                .lock()
                .map_err(|_| Error::Internal("index lock poisoned".into()))?;
            idx.lookup(id)?.ok_or_else(|| Error::MissingBlob {
                blob: id.to_hex(),
                file: "(tree)".into(),
            })?
        };
        // In an unencrypted repository data and tree ids are both plain
        // BLAKE3, so a file whose bytes equal a tree's encoding is the same
        // blob: the kind recorded is whichever was stored first, and the
        // bytes (checked against the id) are right either way. Encrypted
        // repositories key ids per kind, so there a mismatch is confusion.
        let confused = want.is_some_and(|w| w != kind) && self.repo.crypto().is_some();
        if confused {
            return Err(Error::corrupt(
                format!("blob {} in pack {}", id.short(), loc.pack.short()),
                format!(
                    "a {kind:?} blob where a {:?} blob was expected",
                    want.unwrap_or(kind)
                ),
            ));
        }
        self.read_as(id, &loc, want.unwrap_or(kind))
    }

    /// Read and check one data blob whose location is known.
    pub fn read_located(&self, id: &BlobId, loc: &BlobLocation) -> Result<Vec<u8>> {
        self.read_as(id, loc, BlobKind::Data)
    }

    fn read_as(&self, id: &BlobId, loc: &BlobLocation, kind: BlobKind) -> Result<Vec<u8>> {
        let f = self.pack_file(&loc.pack)?;
        self.repo
            .decode_with(kind, |d| reader::read_blob(&f, id, loc, d))
    }

    /// A directory's full listing with the contents of inline files, its
    /// parts joined (objects.md "Parts"): always read from the packs, for
    /// the commands that need contents (restore, cat, mount, rewrite).
    pub fn tree(&self, id: &BlobId) -> Result<Tree> {
        let (entries, _) = self.read_joined(id)?;
        Ok(Tree {
            entries,
            parts: Vec::new(),
        })
    }

    /// [`listing`](Self::listing) as a [`Tree`]: names and metadata, no
    /// inline contents (their size stays). For listing and finding.
    pub fn meta_tree(&self, id: &BlobId) -> Result<Tree> {
        Ok(Tree {
            entries: self.listing(id)?.entries,
            parts: Vec::new(),
        })
    }

    /// A directory's listing without inline contents (see [`Listing`]):
    /// served from the local cache when present and intact, otherwise read
    /// from the packs (parts in parallel) and cached. For listing, finding,
    /// diffing, gc's mark and a backup's parent.
    pub fn listing(&self, id: &BlobId) -> Result<Listing> {
        let object = || format!("tree {}", id.short());
        if let Some(c) = &self.cache {
            if let Some(b) = c.get(id) {
                let decoded: Result<Listing> = crate::object::decode_body(&b, &object());
                if let Ok(l) = decoded {
                    if l.is_consistent() && check_entries(&l.entries, &object()).is_ok() {
                        return Ok(l);
                    }
                }
            }
        }
        if self.repo.is_write_only() {
            // write-only.md: its own listings, from the cache, or none
            return Err(Error::NotFound(format!(
                "tree {} is not in the local cache (a write-only key reads no pack)",
                id.short()
            )));
        }
        let (entries, parts) = self.read_joined(id)?;
        let l = Listing::without_contents(self.repo, entries, parts, |_| None);
        if let (Some(c), true) = (&self.cache, self.cache_puts) {
            if let Ok(b) = crate::object::encode_body(&l) {
                c.put(id, &b);
            }
        }
        Ok(l)
    }

    /// Read tree `id` from the packs, joining its parts: the entries and,
    /// for a parted directory, each part's id and entry count.
    fn read_joined(&self, id: &BlobId) -> Result<(Vec<Entry>, PartLens)> {
        let object = || format!("tree {}", id.short());
        let mut t = Tree::decode(&self.read_kind(id, Some(BlobKind::Tree))?, id)?;
        let part_ids = std::mem::take(&mut t.parts);
        let mut parts = Vec::with_capacity(part_ids.len());
        if !part_ids.is_empty() {
            let leaves: Vec<Tree> = part_ids
                .par_iter()
                .map(|p| self.part(p))
                .collect::<Result<_>>()?;
            for (part, part_id) in leaves.into_iter().zip(&part_ids) {
                if let (Some(last), Some(first)) = (t.entries.last(), part.entries.first()) {
                    if last.name >= first.name {
                        return Err(Error::corrupt(object(), "parts not in name order"));
                    }
                }
                parts.push((*part_id, part.entries.len() as u32));
                t.entries.extend(part.entries);
            }
        }
        Ok((t.entries, parts))
    }

    /// Read one part of a parted directory (a leaf: entries, no parts).
    pub fn part(&self, id: &BlobId) -> Result<Tree> {
        let t = Tree::decode(&self.read_kind(id, Some(BlobKind::Tree))?, id)?;
        if !t.parts.is_empty() || t.entries.is_empty() {
            return Err(Error::corrupt(
                format!("tree {}", id.short()),
                "a part that is not a leaf",
            ));
        }
        Ok(t)
    }
}

/// Each part's id and number of entries.
pub type PartLens = Vec<(BlobId, u32)>;

/// A directory's listing as read for everything but contents: its entries
/// (parts joined) with the contents of inline files left out
/// (`Entry::inline` empty; their size stays), a keyed digest of each inline
/// file's contents in their place, and for a directory stored in parts,
/// each part's id and number of entries. This is what the local tree cache
/// holds: names and metadata, never contents (threat-model.md).
#[derive(Clone, Debug, Default, bincode::Encode, bincode::Decode)]
pub struct Listing {
    /// The entries, sorted by name; inline contents left out.
    pub entries: Vec<Entry>,
    /// (part id, entries in it), in order; empty when not parted.
    pub parts: PartLens,
    /// Per entry: the repository's data id of its inline contents (keyed
    /// BLAKE3 in an encrypted repository), `None` if not inline.
    pub inline_digest: Vec<Option<[u8; 32]>>,
}

impl Listing {
    /// The listing of `entries`: each inline file's contents replaced by
    /// their data id (what the cache may hold, threat-model.md); an entry
    /// without contents keeps `known(k)` (a digest kept from an earlier
    /// listing, or `None`).
    pub fn without_contents(
        repo: &Repo,
        mut entries: Vec<Entry>,
        parts: PartLens,
        known: impl Fn(usize) -> Option<[u8; 32]>,
    ) -> Listing {
        let inline_digest = entries
            .iter_mut()
            .enumerate()
            .map(|(k, e)| {
                if !e.is_inline() {
                    return known(k);
                }
                let d = repo.blob_id(BlobKind::Data, &e.inline).0;
                e.inline = Vec::new();
                Some(d)
            })
            .collect();
        Listing {
            entries,
            parts,
            inline_digest,
        }
    }

    /// The encoded body of a listing (what `object::encode_body` makes of
    /// a [`Listing`]) from its `n` entries encoded one by one and
    /// concatenated in `entries`: bincode encodes a vector as its length,
    /// then its items. A large directory's listing is built this way while
    /// its parts are saved (backup/treestream.rs), a few dozen bytes per
    /// entry instead of a whole [`Entry`].
    pub fn encode_from(
        n: usize,
        entries: &[u8],
        parts: &PartLens,
        inline_digest: &[Option<[u8; 32]>],
    ) -> Result<Vec<u8>> {
        let mut out = crate::object::encode_body(&(n as u64))?;
        out.extend_from_slice(entries);
        out.extend(crate::object::encode_body(parts)?);
        out.extend(crate::object::encode_body(&inline_digest)?);
        Ok(out)
    }

    /// The part ids.
    pub fn part_ids(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.parts.iter().map(|p| p.0)
    }

    /// The index of the entry named `name`.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
    }

    /// Find an entry by name.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.position(name).map(|i| &self.entries[i])
    }

    /// Does entry `i` have inline contents (left out here)?
    pub fn elided(&self, i: usize) -> bool {
        self.inline_digest.get(i).is_some_and(|d| d.is_some())
    }

    /// The part holding entry `i`, and the entry's index in that part;
    /// `None` for a directory not stored in parts.
    pub fn part_of(&self, i: usize) -> Option<(BlobId, usize)> {
        let mut start = 0;
        for &(id, len) in &self.parts {
            let len = len as usize;
            if i < start + len {
                return Some((id, i - start));
            }
            start += len;
        }
        None
    }

    /// Lengths add up (a cache file that passed its checksum but was
    /// written by another version could still disagree).
    fn is_consistent(&self) -> bool {
        self.inline_digest.len() == self.entries.len()
            && (self.parts.is_empty()
                || self.parts.iter().map(|p| p.1 as usize).sum::<usize>() == self.entries.len())
            && self.entries.iter().all(|e| e.inline.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tree::{Entry, EntryKind};

    #[test]
    fn a_listing_encoded_entry_by_entry_is_the_listing_encoded_whole() {
        let entries: Vec<Entry> = (0..300u32)
            .map(|i| Entry {
                mode: 0o644,
                size: u64::from(i) * 1000,
                mtime_sec: i64::from(i) << 20,
                content: vec![BlobId([i as u8; 32]); (i % 3) as usize],
                ..Entry::new(format!("f{i:04}").into_bytes(), EntryKind::File)
            })
            .collect();
        let l = Listing {
            parts: vec![(BlobId([7; 32]), 100), (BlobId([8; 32]), 200)],
            inline_digest: (0..300u32)
                .map(|i| (i % 2 == 0).then_some([i as u8; 32]))
                .collect(),
            entries,
        };
        let mut each = Vec::new();
        for e in &l.entries {
            bincode::encode_into_std_write(e, &mut each, crate::object::bincode_config()).unwrap();
        }
        let streamed = Listing::encode_from(300, &each, &l.parts, &l.inline_digest).unwrap();
        assert_eq!(streamed, crate::object::encode_body(&l).unwrap());
        let back: Listing = crate::object::decode_body(&streamed, "listing").unwrap();
        assert_eq!(back.entries, l.entries);
    }
}
