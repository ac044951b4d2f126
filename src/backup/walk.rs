//! Walking source trees: one tree blob per directory, children processed in
//! parallel (rayon), files reused from the parent snapshot when size, mtime,
//! ctime and inode are unchanged.

use super::saver::BlobSaver;
use super::source::{self, SourceError};
use super::treestream::TreeStream;
use super::{Counters, SnapshotOptions};
use crate::blob::BlobKind;
use crate::chunker::Chunker;
use crate::error::Result;
use crate::id::BlobId;
use crate::read::{BlobReader, Listing};
use crate::snapshot::tree::{self, Entry, EntryKind, Extent, Tree};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

/// Children of a directory read (in parallel) before they are handed to
/// its tree: with inline contents of up to 64 KiB each, at most 16 MiB,
/// typically a few hundred KiB.
const BATCH: usize = 256;

/// The parent snapshot's entry for a path, and whether its inline contents
/// were left out of the listing it came from (read.rs `Listing`).
#[derive(Clone, Copy)]
pub(crate) struct Parent<'a> {
    pub entry: &'a Entry,
    pub elided: bool,
}

/// A stored path: its entry, and whether the entry was reused from the
/// parent without its inline contents, which the saver then fills in from
/// the parent's tree if it has to encode the entry again.
pub(crate) struct Child {
    pub entry: Entry,
    pub elided: bool,
}

impl Child {
    /// A child with its contents (nothing left out).
    pub fn new(entry: Entry) -> Child {
        Child {
            entry,
            elided: false,
        }
    }
}

/// What a file stored: its chunks (and sparse extents) or inline bytes.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileData {
    content: Vec<BlobId>,
    extents: Vec<Extent>,
    inline: Vec<u8>,
}

impl FileData {
    fn of(e: &Entry) -> FileData {
        FileData {
            content: e.content.clone(),
            extents: e.extents.clone(),
            inline: e.inline.clone(),
        }
    }
    fn apply(&self, e: &mut Entry) {
        e.content = self.content.clone();
        e.extents = self.extents.clone();
        e.inline = self.inline.clone();
    }
}

/// A hard-linked file already read in this snapshot.
pub(crate) struct Linked {
    size: u64,
    mtime: (i64, u32),
    data: FileData,
}

/// Hard-linked files read in this snapshot, by (device, inode).
pub(crate) type LinkCache = HashMap<(u64, u64), Linked>;

pub(crate) struct Walker<'a> {
    pub saver: &'a BlobSaver<'a>,
    pub parents: Option<&'a BlobReader<'a>>,
    /// The key is write-only (write-only.md): no parent contents are read.
    pub write_only: bool,
    pub chunker: &'a Chunker,
    pub opts: &'a SnapshotOptions,
    pub excludes: crate::paths::Patterns,
    pub counters: &'a Counters,
    pub warnings: Mutex<Vec<String>>,
    pub hardlinks: Mutex<LinkCache>,
    /// (device, inode) of the repository directory: never backed up into itself.
    pub repo_dir: Option<(u64, u64)>,
    /// Blobs recorded damaged and not stored again: a parent's entry
    /// naming one is not reused (maint/repair/damaged.rs).
    pub damaged: HashSet<BlobId>,
}

impl Walker<'_> {
    pub fn warn(&self, msg: String) {
        self.counters.warnings.fetch_add(1, Relaxed);
        if let Ok(mut w) = self.warnings.lock() {
            w.push(msg);
        }
    }

    fn excluded(&self, path: &Path) -> bool {
        self.excludes.matches(path.as_os_str().as_bytes())
    }

    /// The parent snapshot's listing of this directory, with its id.
    fn parent_listing(&self, parent: Option<&Entry>) -> Result<Option<(BlobId, Listing)>> {
        match (self.parents, parent) {
            (Some(r), Some(e)) if e.kind() == EntryKind::Dir => match e.subtree {
                Some(id) if self.damaged.contains(&id) => Ok(None),
                Some(id) => {
                    let l = match r.listing(&id) {
                        Ok(l) => l,
                        // a write-only host's listing not in its cache
                        Err(crate::Error::NotFound(_)) if r.repo().is_write_only() => {
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                    };
                    // a damaged part: the directory is saved anew
                    if l.parts.iter().any(|(p, _)| self.damaged.contains(p)) {
                        return Ok(None);
                    }
                    Ok(Some((id, l)))
                }
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Store one path (any kind). `Ok(None)` = skipped with a warning.
    pub fn node(
        &self,
        path: &Path,
        name: Vec<u8>,
        md: &Metadata,
        parent: Option<Parent<'_>>,
        root_dev: u64,
    ) -> Result<Option<Child>> {
        let mut e = source::entry_from_meta(name, md);
        match source::read_xattrs(path) {
            Ok(x) => e.xattrs = x,
            Err(err) => self.warn(format!("{}: cannot read xattrs: {err}", path.display())),
        }
        match e.kind() {
            EntryKind::Dir => {
                if self.opts.one_file_system && md.dev() != root_dev {
                    // a mount point: keep the directory, not its contents
                    e.subtree = Some(
                        self.saver
                            .save(BlobKind::Tree, &Tree::default().encode()?)?,
                    );
                    self.counters.dirs.fetch_add(1, Relaxed);
                    return Ok(Some(Child::new(e)));
                }
                return Ok(self
                    .dir(path, e, parent.map(|p| p.entry), root_dev)?
                    .map(Child::new));
            }
            EntryKind::File => return self.file(path, e, md, parent),
            EntryKind::Symlink => match std::fs::read_link(path) {
                Ok(t) => e.target = t.into_os_string().into_vec(),
                Err(err) => {
                    self.warn(format!("{}: cannot read link: {err}", path.display()));
                    return Ok(None);
                }
            },
            _ => {}
        }
        self.counters.other.fetch_add(1, Relaxed);
        Ok(Some(Child::new(e)))
    }

    fn file(
        &self,
        path: &Path,
        mut e: Entry,
        md: &Metadata,
        parent: Option<Parent<'_>>,
    ) -> Result<Option<Child>> {
        self.counters.total_bytes.fetch_add(e.size, Relaxed);
        let parent = parent.filter(|p| p.entry.kind() == EntryKind::File);
        let same_meta = parent.is_some_and(|Parent { entry: p, .. }| {
            p.size == e.size
                && p.mtime_sec == e.mtime_sec
                && p.mtime_nsec == e.mtime_nsec
                && p.ctime_sec == e.ctime_sec
                && p.ctime_nsec == e.ctime_nsec
                && p.inode == e.inode
        });
        if let Some(Parent { entry: p, elided }) = parent {
            // write-only.md: a write-only host cannot fill in inline
            // contents left out of a cached listing; it reads the file
            let contents_missing =
                elided || (p.content.is_empty() && p.inline.len() as u64 != p.size);
            let damaged = p.content.iter().any(|c| self.damaged.contains(c));
            let cannot = self.opts.force_rehash || damaged || (self.write_only && contents_missing);
            let reusable = same_meta && !cannot;
            if reusable {
                // Reused without reading; inline contents left out of the
                // parent's listing are filled in by the saver if needed.
                e.content = p.content.clone();
                e.extents = p.extents.clone();
                e.inline = p.inline.clone();
                self.counters.files_unchanged.fetch_add(1, Relaxed);
                self.counters.progress_files.fetch_add(1, Relaxed);
                // processed, though not read: progress and ETA count it
                self.counters.progress_bytes.fetch_add(e.size, Relaxed);
                return Ok(Some(Child { entry: e, elided }));
            }
        }
        let parent = parent.map(|p| p.entry);
        let link_key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Ok(h) = self.hardlinks.lock() {
                if let Some(l) = h.get(&link_key) {
                    if l.size == e.size && l.mtime == (e.mtime_sec, e.mtime_nsec) {
                        l.data.apply(&mut e);
                        self.count_read(parent);
                        return Ok(Some(Child::new(e)));
                    }
                }
            }
        }
        let progress = &self.counters.progress_bytes;
        let small = if md.size() <= tree::INLINE_MAX {
            source::save_small(path, md, &mut e, progress).transpose()
        } else {
            None
        };
        let stored = small.unwrap_or_else(|| {
            source::save_file(path, md, &mut e, self.chunker, self.saver, progress)
        });
        match stored {
            Ok((read, changed)) => {
                self.counters.bytes_read.fetch_add(read, Relaxed);
                if changed {
                    self.warn(format!(
                        "{}: file changed while being read; stored what was read",
                        path.display()
                    ));
                }
                if md.nlink() > 1 {
                    if let Ok(mut h) = self.hardlinks.lock() {
                        let l = Linked {
                            size: e.size,
                            mtime: (e.mtime_sec, e.mtime_nsec),
                            data: FileData::of(&e),
                        };
                        h.insert(link_key, l);
                    }
                }
                if same_meta && self.write_only && !self.opts.force_rehash {
                    // read again only because a write-only host cannot
                    // reuse inline contents it does not have: unchanged
                    self.counters.files_unchanged.fetch_add(1, Relaxed);
                    self.counters.progress_files.fetch_add(1, Relaxed);
                } else {
                    self.count_read(parent);
                }
                Ok(Some(Child::new(e)))
            }
            Err(SourceError::Source(err)) => {
                self.warn(format!("{}: skipped: {err}", path.display()));
                Ok(None)
            }
            Err(SourceError::Repo(err)) => Err(err),
        }
    }

    fn count_read(&self, parent: Option<&Entry>) {
        let c = if parent.is_some() {
            &self.counters.files_changed
        } else {
            &self.counters.files_new
        };
        c.fetch_add(1, Relaxed);
        self.counters.progress_files.fetch_add(1, Relaxed);
    }

    fn dir(
        &self,
        path: &Path,
        mut e: Entry,
        parent: Option<&Entry>,
        root_dev: u64,
    ) -> Result<Option<Entry>> {
        for marker in &self.opts.exclude_if_present {
            if path.join(marker).exists() {
                return Ok(None);
            }
        }
        // its entry sits at depth (components - 1) of the absolute layout
        let depth = path.components().count().saturating_sub(2);
        if let Err(err) = crate::snapshot::tree::check_depth(depth, &path.display()) {
            self.warn(format!("skipped: {err}"));
            return Ok(None);
        }
        let parent_listing = self.parent_listing(parent)?;
        let names = self.names(path);
        // A large directory is stored part by part as its children are
        // read (treestream.rs): at most a batch of them is held with contents.
        let parent = parent_listing.as_ref().map(|(id, l)| (id, l));
        let mut tree = TreeStream::new(self.saver, parent, self.parents);
        tree.reserve(names.len());
        for batch in names.chunks(BATCH) {
            let kids = self.children(path, batch, parent_listing.as_ref(), root_dev)?;
            tree.push(kids.into_iter().map(|c| (c.entry, c.elided)))?;
        }
        e.subtree = Some(tree.finish()?);
        self.counters.dirs.fetch_add(1, Relaxed);
        Ok(Some(e))
    }

    /// The stored children of directory `path`, sorted by name, each with
    /// its entry in `parent_listing` (the parent snapshot's listing of the
    /// directory, with its id) for change detection.
    pub fn dir_kids(
        &self,
        path: &Path,
        parent_listing: Option<&(BlobId, Listing)>,
        root_dev: u64,
    ) -> Result<Vec<Child>> {
        let names = self.names(path);
        self.children(path, &names, parent_listing, root_dev)
    }

    /// The names in directory `path`, sorted (an unreadable directory or
    /// entry is a warning).
    fn names(&self, path: &Path) -> Vec<OsString> {
        let mut names: Vec<OsString> = Vec::new();
        match std::fs::read_dir(path) {
            Ok(rd) => {
                for d in rd {
                    match d {
                        Ok(d) => names.push(d.file_name()),
                        Err(err) => self.warn(format!("{}: cannot list: {err}", path.display())),
                    }
                }
            }
            Err(err) => self.warn(format!("{}: cannot list directory: {err}", path.display())),
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names
    }

    /// The stored children `names` of directory `path` (in that order), in
    /// parallel.
    fn children(
        &self,
        path: &Path,
        names: &[OsString],
        parent_listing: Option<&(BlobId, Listing)>,
        root_dev: u64,
    ) -> Result<Vec<Child>> {
        let children: Vec<Result<Option<Child>>> = names
            .par_iter()
            .with_max_len(64)
            .map(|name| {
                let child = path.join(name);
                let nb = name.as_bytes();
                if self.excluded(&child) {
                    return Ok(None);
                }
                let md = match std::fs::symlink_metadata(&child) {
                    Ok(m) => m,
                    Err(err) => {
                        self.warn(format!("{}: skipped: {err}", child.display()));
                        return Ok(None);
                    }
                };
                if md.is_dir() && self.repo_dir == Some((md.dev(), md.ino())) {
                    return Ok(None); // the repository itself
                }
                let pe = parent_listing.and_then(|(_, l)| {
                    let i = l.position(nb)?;
                    Some(Parent {
                        entry: &l.entries[i],
                        elided: l.elided(i),
                    })
                });
                self.node(&child, nb.to_vec(), &md, pe, root_dev)
            })
            .collect();
        let mut kids = Vec::with_capacity(children.len());
        for c in children {
            if let Some(child) = c? {
                kids.push(child);
            }
        }
        Ok(kids)
    }

    /// Store a directory's children (sorted by name) as its tree, reusing
    /// what the parent snapshot stored for it (treestream.rs `save_tree_reusing`).
    pub fn save_children(
        &self,
        kids: Vec<Child>,
        parent: Option<(&BlobId, &Listing)>,
    ) -> Result<BlobId> {
        let elided: Vec<bool> = kids.iter().map(|c| c.elided).collect();
        let tree = Tree {
            entries: kids.into_iter().map(|c| c.entry).collect(),
            parts: Vec::new(),
        };
        self.saver
            .save_tree_reusing(tree, &elided, parent, self.parents)
    }
}
