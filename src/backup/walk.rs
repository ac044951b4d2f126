//! Walking source trees: one tree blob per directory, children processed in
//! parallel (rayon), files reused from the parent snapshot when size, mtime,
//! ctime and inode are unchanged.

use super::saver::BlobSaver;
use super::source::{self, SourceError};
use super::{Counters, SnapshotOptions};
use crate::blob::BlobKind;
use crate::chunker::Chunker;
use crate::error::Result;
use crate::id::BlobId;
use crate::read::BlobReader;
use crate::snapshot::tree::{Entry, EntryKind, Extent, Tree};
use globset::GlobSet;
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;

/// Content of a hard-linked file already read in this snapshot, keyed by
/// (device, inode): size, mtime and its chunks.
pub(crate) type LinkCache = HashMap<(u64, u64), (u64, i64, u32, Vec<BlobId>, Vec<Extent>)>;

pub(crate) struct Walker<'a> {
    pub saver: &'a BlobSaver<'a>,
    pub parents: Option<&'a BlobReader<'a>>,
    pub chunker: &'a Chunker,
    pub opts: &'a SnapshotOptions,
    pub exclude_path: GlobSet,
    pub exclude_name: GlobSet,
    pub counters: &'a Counters,
    pub warnings: Mutex<Vec<String>>,
    pub hardlinks: Mutex<LinkCache>,
    /// (device, inode) of the repository directory: never backed up into itself.
    pub repo_dir: Option<(u64, u64)>,
}

impl Walker<'_> {
    pub fn warn(&self, msg: String) {
        self.counters.warnings.fetch_add(1, Relaxed);
        if let Ok(mut w) = self.warnings.lock() {
            w.push(msg);
        }
    }

    fn excluded(&self, path: &Path, name: &[u8]) -> bool {
        (!self.exclude_path.is_empty() && self.exclude_path.is_match(path))
            || (!self.exclude_name.is_empty()
                && self
                    .exclude_name
                    .is_match(Path::new(std::ffi::OsStr::from_bytes(name))))
    }

    fn parent_tree(&self, parent: Option<&Entry>) -> Result<Option<Tree>> {
        match (self.parents, parent) {
            (Some(r), Some(e)) if e.kind() == EntryKind::Dir => match e.subtree {
                Some(id) => Ok(Some(r.tree(&id)?)),
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
        parent: Option<&Entry>,
        root_dev: u64,
    ) -> Result<Option<Entry>> {
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
                    return Ok(Some(e));
                }
                return self.dir(path, e, parent, root_dev);
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
        Ok(Some(e))
    }

    fn file(
        &self,
        path: &Path,
        mut e: Entry,
        md: &Metadata,
        parent: Option<&Entry>,
    ) -> Result<Option<Entry>> {
        self.counters.total_bytes.fetch_add(e.size, Relaxed);
        let parent = parent.filter(|p| p.kind() == EntryKind::File);
        if let Some(p) = parent {
            if !self.opts.force_rehash
                && p.size == e.size
                && p.mtime_sec == e.mtime_sec
                && p.mtime_nsec == e.mtime_nsec
                && p.ctime_sec == e.ctime_sec
                && p.ctime_nsec == e.ctime_nsec
                && p.inode == e.inode
            {
                e.content = p.content.clone();
                e.extents = p.extents.clone();
                self.counters.files_unchanged.fetch_add(1, Relaxed);
                self.counters.progress_files.fetch_add(1, Relaxed);
                // processed, though not read: progress and ETA count it
                self.counters.progress_bytes.fetch_add(e.size, Relaxed);
                return Ok(Some(e));
            }
        }
        let link_key = (md.dev(), md.ino());
        if md.nlink() > 1 {
            if let Ok(h) = self.hardlinks.lock() {
                if let Some((size, ms, mn, c, x)) = h.get(&link_key) {
                    if *size == e.size && *ms == e.mtime_sec && *mn == e.mtime_nsec {
                        e.content = c.clone();
                        e.extents = x.clone();
                        self.count_read(parent);
                        return Ok(Some(e));
                    }
                }
            }
        }
        match source::save_file(
            path,
            md,
            &mut e,
            self.chunker,
            self.saver,
            &self.counters.progress_bytes,
        ) {
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
                        h.insert(
                            link_key,
                            (
                                e.size,
                                e.mtime_sec,
                                e.mtime_nsec,
                                e.content.clone(),
                                e.extents.clone(),
                            ),
                        );
                    }
                }
                self.count_read(parent);
                Ok(Some(e))
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
        let parent_tree = self.parent_tree(parent)?;
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
        let children: Vec<Result<Option<Entry>>> = names
            .par_iter()
            .with_max_len(64)
            .map(|name| {
                let child = path.join(name);
                let nb = name.as_bytes();
                if self.excluded(&child, nb) {
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
                let pe = parent_tree.as_ref().and_then(|t| t.get(nb));
                self.node(&child, nb.to_vec(), &md, pe, root_dev)
            })
            .collect();
        let mut tree = Tree::default();
        for c in children {
            if let Some(entry) = c? {
                tree.entries.push(entry);
            }
        }
        e.subtree = Some(self.save_tree(&tree)?);
        self.counters.dirs.fetch_add(1, Relaxed);
        Ok(Some(e))
    }

    /// Store a directory listing (saver.rs `save_tree`).
    pub fn save_tree(&self, tree: &Tree) -> Result<BlobId> {
        self.saver.save_tree(tree)
    }
}
