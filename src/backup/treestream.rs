//! Saving a directory's tree as its children arrive. A large directory's
//! content-defined parts (format-spec/objects.md "Parts") are saved as soon
//! as each is complete, and their entries kept for the listing without
//! their inline contents, so a directory of many small files never holds
//! all their contents at once (issue 27: 19k event files of a 25 MB
//! directory were all in memory until its tree was written). The parts,
//! the ids and the listing are exactly those of saving the whole listing
//! at once: a part's end depends only on the entries since its start
//! (`tree::first_part`), and whether a listing is parted at all only grows
//! true as entries are added (`tree::splits`), so a part is saved only once
//! the listing is known to be parted.

use super::saver::BlobSaver;
use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::read::{BlobReader, Listing};
use crate::snapshot::tree::{self, Entry, Tree};
use std::collections::HashMap;

/// Parent trees kept loaded by a [`Filler`]; parts are filled in name
/// order, so older ones are rarely needed again.
const LOADED_MAX: usize = 8;

/// Fills in inline contents that a parent listing left out, reading each
/// needed tree of the parent once.
struct Filler<'a> {
    parent: Option<(&'a BlobId, &'a Listing)>,
    reader: Option<&'a BlobReader<'a>>,
    loaded: HashMap<BlobId, Tree>,
}

impl Filler<'_> {
    /// Give every entry marked in `elided` its inline contents back.
    fn fill(&mut self, entries: &mut [Entry], elided: &[bool]) -> Result<()> {
        for (e, _) in entries.iter_mut().zip(elided).filter(|(_, el)| **el) {
            let (Some((dir, l)), Some(reader)) = (self.parent, self.reader) else {
                return Err(lost(e, "no parent listing"));
            };
            let i = l
                .position(&e.name)
                .ok_or_else(|| lost(e, "not in the parent"))?;
            let (tree, j) = l.part_of(i).unwrap_or((*dir, i));
            if !self.loaded.contains_key(&tree) && self.loaded.len() >= LOADED_MAX {
                self.loaded.clear();
            }
            let t = match self.loaded.entry(tree) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(if l.parts.is_empty() {
                    Tree::decode(&reader.read_kind(&tree, Some(BlobKind::Tree))?, &tree)?
                } else {
                    reader.part(&tree)?
                }),
            };
            let src = t
                .entries
                .get(j)
                .filter(|s| s.name == e.name && s.size == e.size && s.is_inline())
                .ok_or_else(|| lost(e, "not inline in the parent's tree"))?;
            let digest = reader.repo().blob_id(BlobKind::Data, &src.inline).0;
            if l.inline_digest.get(i).copied().flatten() != Some(digest) {
                return Err(lost(e, "the parent's tree disagrees with its listing"));
            }
            e.inline = src.inline.clone();
        }
        Ok(())
    }
}

/// The contents of `e` could not be carried over from the parent.
fn lost(e: &Entry, why: &str) -> Error {
    Error::Invalid(format!(
        "{}: the parent snapshot's inline contents cannot be reused ({why}); run with --force-rehash",
        e.name_lossy()
    ))
}

/// Saving whole listings (the saver's tree methods live here, beside the
/// stream they use, so that saver.rs does not import this module).
impl BlobSaver<'_> {
    /// Store a directory listing: one tree blob, or for a large directory
    /// its content-defined parts and an index of them (objects.md "Parts").
    pub fn save_tree(&self, tree: &Tree) -> Result<BlobId> {
        self.save_tree_reusing(tree.clone(), &[], None, None)
    }

    /// [`save_tree`](Self::save_tree) for a backup with a parent snapshot
    /// (`parent`: this directory's tree id and listing there). Reused: the
    /// directory's id when the listing is unchanged, and the id of each part
    /// whose entries are unchanged, so unchanged entries (and their inline
    /// contents) are neither encoded, hashed nor looked up again; a reused
    /// id names a tree with exactly these entries. `elided[i]` marks an
    /// entry reused from the parent's listing without its inline contents:
    /// before a part holding it is encoded, the contents are read from the
    /// parent's tree with `reader` and checked against the listing's digest.
    pub fn save_tree_reusing(
        &self,
        tree: Tree,
        elided: &[bool],
        parent: Option<(&BlobId, &Listing)>,
        reader: Option<&BlobReader>,
    ) -> Result<BlobId> {
        let mut s = TreeStream::new(self, parent, reader);
        let n = tree.entries.len();
        let flags = (0..n).map(|k| elided.get(k).copied().unwrap_or(false));
        s.push(tree.entries.into_iter().zip(flags))?;
        s.finish()
    }
}

/// One directory's tree being saved: push its entries in name order, then
/// [`finish`](Self::finish).
pub(crate) struct TreeStream<'a, 'r> {
    saver: &'a BlobSaver<'r>,
    /// The directory's tree id and listing in the parent snapshot.
    parent: Option<(&'a BlobId, &'a Listing)>,
    filler: Filler<'a>,
    /// The parent's parts by their first entry's name: (name, id, start, len).
    old: Vec<(&'a [u8], BlobId, usize, usize)>,
    /// Entries not yet in a saved part, and whether each was reused from
    /// the parent's listing without its inline contents.
    pending: Vec<Entry>,
    elided: Vec<bool>,
    /// Entries pushed, and their bytes by `tree::approx_len`.
    count: usize,
    bytes: usize,
    /// The listing is parted (known once `tree::splits` holds).
    parted: bool,
    /// Entries in saved parts.
    done: usize,
    /// Those entries encoded for the listing, without inline contents
    /// (`None`: no listing is kept, or one failed to encode), and the data
    /// id of each one's contents left out (the listing's `inline_digest`).
    listed: Option<Vec<u8>>,
    digests: Vec<Option<[u8; 32]>>,
    parts: Vec<(BlobId, u32)>,
    /// Every saved part equals the parent's entries at the same place.
    same: bool,
}

impl<'a, 'r> TreeStream<'a, 'r> {
    /// A tree saved by `saver`, reusing what `parent` (the directory's id
    /// and listing in the parent snapshot) stored, and reading the inline
    /// contents its listing left out with `reader`.
    pub fn new(
        saver: &'a BlobSaver<'r>,
        parent: Option<(&'a BlobId, &'a Listing)>,
        reader: Option<&'a BlobReader<'a>>,
    ) -> Self {
        let mut old = Vec::new();
        if let Some((_, l)) = parent {
            let mut start = 0;
            for &(id, len) in &l.parts {
                if let Some(first) = l.entries.get(start) {
                    old.push((first.name.as_slice(), id, start, len as usize));
                }
                start += len as usize;
            }
        }
        TreeStream {
            saver,
            parent,
            filler: Filler {
                parent,
                reader,
                loaded: HashMap::new(),
            },
            old,
            pending: Vec::new(),
            elided: Vec::new(),
            count: 0,
            bytes: 0,
            parted: false,
            done: 0,
            listed: saver.keeps_listings().then(Vec::new),
            digests: Vec::new(),
            parts: Vec::new(),
            same: parent.is_some(),
        }
    }

    /// Make room for the listing of `n` entries in all, when that many will
    /// be parted (a large directory's listing is then built without the
    /// slack of a growing vector).
    pub fn reserve(&mut self, n: usize) {
        if n > tree::SPLIT_ABOVE && self.listed.is_some() {
            self.digests.reserve_exact(n);
        }
    }

    /// Add the next entries (in name order, after those pushed before),
    /// each with whether it was reused from the parent's listing without
    /// its inline contents; saves every part they complete.
    pub fn push(&mut self, entries: impl IntoIterator<Item = (Entry, bool)>) -> Result<()> {
        for (e, elided) in entries {
            self.count += 1;
            self.bytes += tree::approx_len(&e);
            self.pending.push(e);
            self.elided.push(elided);
        }
        self.parted = self.parted || tree::splits(self.count, self.bytes);
        if self.parted {
            self.save_parts(false)?;
        }
        Ok(())
    }

    /// Save the tree; returns its id.
    pub fn finish(mut self) -> Result<BlobId> {
        if !self.parted {
            return self.save_whole();
        }
        self.save_parts(true)?;
        if let Some((id, l)) = self.parent {
            if self.same && l.entries.len() == self.done {
                return Ok(*id);
            }
        }
        let index = Tree {
            entries: Vec::new(),
            parts: self.parts.iter().map(|p| p.0).collect(),
        };
        let id = self.saver.save_leaf(&index)?;
        if let Some(entries) = &self.listed {
            if let Ok(b) = Listing::encode_from(self.done, entries, &self.parts, &self.digests) {
                self.saver.remember_body(&id, &b);
            }
        }
        Ok(id)
    }

    /// A listing small enough for one tree blob.
    fn save_whole(mut self) -> Result<BlobId> {
        let mut entries = std::mem::take(&mut self.pending);
        if let Some((id, l)) = self.parent {
            if l.entries == entries {
                return Ok(*id);
            }
        }
        let kept: Vec<Option<[u8; 32]>> = entries
            .iter()
            .zip(&self.elided)
            .map(|(e, &el)| self.kept(e, el))
            .collect();
        self.filler.fill(&mut entries, &self.elided)?;
        let tree = Tree {
            entries,
            parts: Vec::new(),
        };
        let id = self.saver.save_leaf(&tree)?;
        self.saver.remember(&id, tree.entries, &kept, Vec::new());
        Ok(id)
    }

    /// The parent listing's data id of `e`'s contents if they were left
    /// out (`elided`).
    fn kept(&self, e: &Entry, elided: bool) -> Option<[u8; 32]> {
        let (_, l) = self.parent?;
        if !elided {
            return None;
        }
        l.inline_digest.get(l.position(&e.name)?).copied().flatten()
    }

    /// Save each complete part of the pending entries; at the `end`, the
    /// rest too.
    fn save_parts(&mut self, end: bool) -> Result<()> {
        let repo = self.saver.repo();
        while !self.pending.is_empty() {
            let n = match tree::first_part(&self.pending, |n| repo.blob_id(BlobKind::Tree, n)) {
                Some(n) => n,
                None if end => self.pending.len(),
                None => break,
            };
            self.save_part(n)?;
        }
        Ok(())
    }

    /// Save the first `n` pending entries as one part.
    fn save_part(&mut self, n: usize) -> Result<()> {
        let mut entries: Vec<Entry> = self.pending.drain(..n).collect();
        let elided: Vec<bool> = self.elided.drain(..n).collect();
        let at = self.done;
        let reused = self.parent.and_then(|(_, l)| {
            let i = self
                .old
                .binary_search_by(|o| o.0.cmp(entries[0].name.as_slice()))
                .ok()?;
            let (_, id, start, len) = self.old[i];
            (len == n && l.entries.get(start..start + len) == Some(&entries[..]))
                .then_some((id, start))
        });
        self.same = self.same
            && match (reused, self.parent) {
                (Some((_, start)), _) => start == at,
                (None, Some((_, l))) => l.entries.get(at..at + n) == Some(&entries[..]),
                (None, None) => false,
            };
        let kept: Vec<Option<[u8; 32]>> = entries
            .iter()
            .zip(&elided)
            .map(|(e, &el)| self.kept(e, el))
            .collect();
        let id = match reused {
            Some((id, _)) => id,
            None => {
                self.filler.fill(&mut entries, &elided)?;
                let part = Tree {
                    entries,
                    parts: Vec::new(),
                };
                let id = self.saver.save_leaf(&part)?;
                entries = part.entries;
                id
            }
        };
        // the listing: each inline file's contents replaced by their data
        // id (read.rs `Listing::without_contents`)
        self.done += n;
        if let Some(listed) = &mut self.listed {
            let repo = self.saver.repo();
            for (mut e, k) in entries.into_iter().zip(kept) {
                let d = if e.is_inline() {
                    let d = repo.blob_id(BlobKind::Data, &e.inline).0;
                    e.inline = Vec::new();
                    Some(d)
                } else {
                    k
                };
                let config = crate::object::bincode_config();
                if bincode::encode_into_std_write(&e, listed, config).is_err() {
                    self.listed = None;
                    break;
                }
                self.digests.push(d);
            }
        }
        self.parts.push((id, n as u32));
        Ok(())
    }
}
