//! Reading blobs by id through the index, with a small cache of open pack
//! files. Shared by backup (parent trees) and restore.

use crate::error::{Error, IoContext, Result};
use crate::id::{BlobId, PackId};
use crate::index::Index;
use crate::pack::reader::{self, BlobLocation};
use crate::repo::Repo;
use crate::snapshot::tree::Tree;
use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex};

/// Reads and checks blobs.
pub struct BlobReader<'r> {
    repo: &'r Repo,
    index: Mutex<Index>,
    files: Mutex<HashMap<PackId, Arc<File>>>,
    cache: Option<crate::cache::TreeCache>,
}

impl<'r> BlobReader<'r> {
    /// A reader over `repo` with its own index connection, which sees the
    /// index as it is now (one read transaction for the reader's lifetime).
    pub fn new(repo: &'r Repo) -> Result<Self> {
        let index = repo.index()?;
        index.begin_read_snapshot()?;
        Ok(BlobReader {
            repo,
            index: Mutex::new(index),
            cache: crate::cache::TreeCache::for_repo(&repo.config().repo_id),
            files: Mutex::new(HashMap::new()),
        })
    }

    /// The repository.
    pub fn repo(&self) -> &'r Repo {
        self.repo
    }

    /// Where `id` is stored; `None` if the index does not know it.
    pub fn locate(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        let idx = self
            .index
            .lock()
            .map_err(|_| Error::Invalid("index lock poisoned".into()))?;
        Ok(idx.lookup(id)?.map(|(l, _)| l))
    }

    fn pack_file(&self, pack: &PackId) -> Result<Arc<File>> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| Error::Invalid("pack cache poisoned".into()))?;
        if let Some(f) = files.get(pack) {
            return Ok(f.clone());
        }
        if files.len() > 64 {
            files.clear();
        }
        let path = self.repo.pack_path(pack);
        let f = match File::open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingPack {
                    pack: pack.to_hex(),
                    more: 0,
                    files: "(reading a tree)".into(),
                });
            }
            Err(e) => return Err(e).at(&path),
        };
        files.insert(*pack, f.clone());
        Ok(f)
    }

    /// Read and check one blob.
    pub fn read(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?.ok_or_else(|| Error::MissingBlob {
            blob: id.to_hex(),
            file: "(tree)".into(),
        })?;
        self.read_located(id, &loc)
    }

    /// Read and check one blob whose location is known.
    pub fn read_located(&self, id: &BlobId, loc: &BlobLocation) -> Result<Vec<u8>> {
        let loc = *loc;
        let f = self.pack_file(&loc.pack)?;
        let path = self.repo.pack_path(&loc.pack);
        reader::read_blob(&f, &path, id, &loc, &|d| self.repo.blob_id(d))
    }

    /// A tree blob's bytes: from the local cache when present and intact,
    /// else from its pack (and then cached).
    fn read_tree_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        if let Some(c) = &self.cache {
            if let Some(b) = c.get(id, |d| self.repo.blob_id(d)) {
                return Ok(b);
            }
        }
        let b = self.read(id)?;
        if let Some(c) = &self.cache {
            c.put(id, &b);
        }
        Ok(b)
    }

    /// Read and decode a directory's listing, joining its parts if it is
    /// stored in parts (objects.md "Parts").
    pub fn tree(&self, id: &BlobId) -> Result<Tree> {
        let mut t = Tree::decode(&self.read_tree_blob(id)?, id)?;
        if t.parts.is_empty() {
            return Ok(t);
        }
        let object = || format!("tree {}", id.short());
        for part_id in std::mem::take(&mut t.parts) {
            let part = Tree::decode(&self.read_tree_blob(&part_id)?, &part_id)?;
            if !part.parts.is_empty() || part.entries.is_empty() {
                return Err(Error::corrupt(
                    object(),
                    format!("part {} is not a leaf", part_id.short()),
                ));
            }
            if let (Some(last), Some(first)) = (t.entries.last(), part.entries.first()) {
                if last.name >= first.name {
                    return Err(Error::corrupt(object(), "parts not in name order"));
                }
            }
            t.entries.extend(part.entries);
        }
        Ok(t)
    }
}
