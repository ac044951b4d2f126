//! Restore planning. [`walk`] streams the selection (subpath,
//! include/exclude) to a [`Visitor`] in pre-order, holding only the
//! directories on the current path: a directory is handed over only when
//! something in it is included, always before its contents. [`check_packs`]
//! finds missing blobs and packs before anything is written, and
//! [`plan_data`] groups one batch's blobs by pack so each pack is read once
//! per batch, in offset order.

use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::pack::reader::BlobLocation;
use crate::paths::Patterns;
use crate::read::BlobReader;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Receives the selection from [`walk`].
pub trait Visitor {
    /// A directory to restore, at `rel` below the target, before anything
    /// in it (so parents come first). `false` skips it and its contents.
    fn dir(&mut self, rel: &Path, e: &Entry) -> Result<bool>;
    /// The listing of a directory restored as a whole (included itself, or
    /// no patterns), before its entries; `rel` is empty for the target.
    fn listing(&mut self, _rel: &Path, _tree: &Tree) -> Result<()> {
        Ok(())
    }
    /// A non-directory entry to restore (sockets included).
    fn leaf(&mut self, rel: PathBuf, e: Entry) -> Result<()>;
}

/// What [`walk`] selects and how it reads trees.
pub struct Selection<'a> {
    /// Reads the trees.
    pub reader: &'a BlobReader<'a>,
    /// Paths to restore (`paths::Patterns` on stored paths); empty = all.
    pub includes: &'a Patterns,
    /// Paths to skip.
    pub excludes: &'a Patterns,
    /// Read full trees with inline contents (writing files), or listings
    /// without them, served from the local cache (planning, links).
    pub contents: bool,
}

impl Selection<'_> {
    fn load(&self, id: Option<BlobId>) -> Result<Tree> {
        match id {
            None => Ok(Tree::default()),
            Some(id) if self.contents => self.reader.tree(&id),
            Some(id) => self.reader.meta_tree(&id),
        }
    }
}

/// Where a restore starts: a directory's tree (`None`: empty), or one
/// non-directory entry restored under its own name.
#[derive(Clone, Debug)]
pub enum Start {
    /// The entries of this tree go into the target.
    Tree(Option<BlobId>),
    /// This entry goes into the target.
    One(Box<Entry>),
}

/// Walk the selection below `start`, whose stored path is `stored`
/// (patterns match stored paths, whatever part of the snapshot is
/// restored). Memory: the trees and directory entries on the current path.
pub fn walk(sel: &Selection<'_>, start: &Start, stored: &Path, v: &mut dyn Visitor) -> Result<()> {
    let root = match start {
        Start::Tree(id) => sel.load(*id)?,
        Start::One(e) => Tree {
            entries: vec![(**e).clone()],
            parts: Vec::new(),
        },
    };
    v.listing(Path::new(""), &root)?;
    let mut w = Walk {
        sel,
        v,
        stack: Vec::new(),
        created: 0,
    };
    w.tree(root, Path::new(""), stored, false)
}

/// A directory on the current path: handed to the visitor yet?
struct Frame {
    rel: PathBuf,
    entry: Entry,
    skipped: bool,
}

struct Walk<'s, 'v> {
    sel: &'s Selection<'s>,
    v: &'v mut dyn Visitor,
    /// The directories on the current path, outermost first.
    stack: Vec<Frame>,
    /// How many of `stack` the visitor has accepted.
    created: usize,
}

impl Walk<'_, '_> {
    fn tree(&mut self, tree: Tree, rel: &Path, stored: &Path, included_above: bool) -> Result<()> {
        for mut e in tree.entries {
            if self.stack.get(self.created).is_some_and(|f| f.skipped) {
                break; // a directory on the path was refused
            }
            let name = OsStr::from_bytes(&e.name);
            let stored = stored.join(name);
            let sb = stored.as_os_str().as_bytes();
            if !self.sel.excludes.is_empty() && self.sel.excludes.matches(sb) {
                continue;
            }
            let inc =
                included_above || self.sel.includes.is_empty() || self.sel.includes.matches(sb);
            let rel = rel.join(name);
            if e.kind() == EntryKind::Dir {
                let sub = e.subtree.take();
                let name = || format!("tree {}", sub.map(|s| s.short()).unwrap_or_default());
                crate::snapshot::tree::check_depth(self.stack.len(), &name())?;
                self.stack.push(Frame {
                    rel: rel.clone(),
                    entry: e,
                    skipped: false,
                });
                // An included directory is created even if empty; another
                // only when something in it is.
                if !inc || self.materialize()? {
                    let t = self.sel.load(sub)?;
                    if inc {
                        self.v.listing(&rel, &t)?;
                    }
                    self.tree(t, &rel, &stored, inc)?;
                }
                self.stack.pop();
                self.created = self.created.min(self.stack.len());
            } else if inc && self.materialize()? {
                self.v.leaf(rel, e)?;
            }
        }
        Ok(())
    }

    /// Hand the pending directories on the path to the visitor, outermost
    /// first; `false` if one of them is refused.
    fn materialize(&mut self) -> Result<bool> {
        while let Some(f) = self.stack.get_mut(self.created) {
            if f.skipped || !self.v.dir(&f.rel, &f.entry)? {
                f.skipped = true;
                return Ok(false);
            }
            self.created += 1;
        }
        Ok(true)
    }
}

/// Totals of a selection, from [`check_packs`].
#[derive(Debug, Default)]
pub struct Totals {
    /// Regular files.
    pub files: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

/// Before anything is written: every blob of the selection is in the index
/// and every pack holding one is present. Walks listings (the local cache)
/// and looks up each chunk; memory is O(packs).
pub fn check_packs(sel: &Selection<'_>, start: &Start, stored: &Path) -> Result<Totals> {
    struct Check<'r> {
        reader: &'r BlobReader<'r>,
        /// Up to six files per pack, for the error message.
        packs: HashMap<PackId, Vec<PathBuf>>,
        totals: Totals,
    }
    impl Visitor for Check<'_> {
        fn dir(&mut self, _: &Path, _: &Entry) -> Result<bool> {
            Ok(true)
        }
        fn leaf(&mut self, rel: PathBuf, e: Entry) -> Result<()> {
            if e.kind() != EntryKind::File {
                return Ok(());
            }
            self.totals.files += 1;
            if e.content.is_empty() {
                self.totals.bytes += e.size; // inline or empty
            }
            for id in &e.content {
                let loc = self.reader.locate(id)?.ok_or_else(|| Error::MissingBlob {
                    blob: id.to_hex(),
                    file: rel.display().to_string(),
                })?;
                self.totals.bytes += u64::from(loc.raw_len);
                let names = self.packs.entry(loc.pack).or_default();
                if names.len() < 6 && names.last() != Some(&rel) {
                    names.push(rel.clone());
                }
            }
            Ok(())
        }
    }
    let mut c = Check {
        reader: sel.reader,
        packs: HashMap::new(),
        totals: Totals::default(),
    };
    walk(sel, start, stored, &mut c)?;
    let repo = sel.reader.repo();
    // Local: a stat per pack; remote storage: one listing, not a HEAD each.
    let store = repo.store();
    let listed: Option<std::collections::HashSet<PackId>> = match store.remote_reads() {
        None => None,
        Some(_) => Some(
            crate::repo::reconcile::list_packs(repo)?
                .into_iter()
                .map(|(p, _)| p)
                .collect(),
        ),
    };
    let mut missing = Vec::new();
    for (p, names) in c.packs {
        let gone = match &listed {
            None => !matches!(
                store.exists(&crate::backend::key::pack(&p.to_hex())),
                Ok(true)
            ),
            Some(l) => !l.contains(&p),
        };
        if gone {
            missing.push((p, names));
        }
    }
    missing.sort_by_key(|(p, _)| *p);
    if let Some((first, names)) = missing.first() {
        let mut files: Vec<String> = names.iter().map(|p| p.display().to_string()).collect();
        if files.len() > 5 {
            files.truncate(5);
            files.push("more".into());
        }
        return Err(Error::MissingPack {
            pack: first.to_hex(),
            more: missing.len() - 1,
            files: files.join(", "),
        });
    }
    Ok(c.totals)
}

/// A regular file of a batch, to write at `path` (under `write_path`
/// first when the target already held files).
#[derive(Debug)]
pub struct FileJob {
    /// Final path.
    pub path: PathBuf,
    /// Where the data is written: `path`, or a temp name beside it.
    pub write_path: PathBuf,
    /// The tree entry.
    pub entry: Entry,
}

/// Where one blob's bytes go: (file index, offset in the file's data stream).
#[derive(Debug)]
pub struct BlobUse {
    /// The blob.
    pub id: BlobId,
    /// Where it is stored.
    pub loc: BlobLocation,
    /// Destinations.
    pub targets: Vec<(usize, u64)>,
}

/// One batch's blobs grouped by pack, each group sorted by offset.
#[derive(Debug, Default)]
pub struct DataPlan {
    /// Packs in name order, each with its blobs in offset order.
    pub packs: Vec<(PackId, Vec<BlobUse>)>,
    /// Raw chunk lengths of each file (for `--verify`).
    pub chunk_lens: Vec<Vec<u32>>,
    /// Total bytes to write.
    pub bytes: u64,
}

/// Plan the data of one batch of files.
pub fn plan_data(reader: &BlobReader, files: &[FileJob]) -> Result<DataPlan> {
    let mut by_blob: HashMap<BlobId, usize> = HashMap::new();
    let mut uses: Vec<BlobUse> = Vec::new();
    let mut plan = DataPlan::default();
    for (fi, f) in files.iter().enumerate() {
        let e = &f.entry;
        let mut off = 0u64;
        let mut lens = Vec::with_capacity(e.content.len());
        for id in &e.content {
            let ui = match by_blob.get(id) {
                Some(&ui) => ui,
                None => {
                    let loc = reader.locate(id)?.ok_or_else(|| Error::MissingBlob {
                        blob: id.to_hex(),
                        file: f.path.display().to_string(),
                    })?;
                    uses.push(BlobUse {
                        id: *id,
                        loc,
                        targets: Vec::new(),
                    });
                    by_blob.insert(*id, uses.len() - 1);
                    uses.len() - 1
                }
            };
            uses[ui].targets.push((fi, off));
            off += u64::from(uses[ui].loc.raw_len);
            lens.push(uses[ui].loc.raw_len);
        }
        plan.bytes += off + e.inline.len() as u64;
        plan.chunk_lens.push(lens);
    }
    let mut packs: HashMap<PackId, Vec<BlobUse>> = HashMap::new();
    for u in uses {
        packs.entry(u.loc.pack).or_default().push(u);
    }
    let mut packs: Vec<(PackId, Vec<BlobUse>)> = packs.into_iter().collect();
    for (_, v) in &mut packs {
        v.sort_by_key(|u| u.loc.offset);
    }
    packs.sort_by_key(|(p, _)| *p);
    plan.packs = packs;
    Ok(plan)
}
