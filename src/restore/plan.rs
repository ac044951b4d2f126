//! Restore planning: select nodes from the tree (subpath, include/exclude),
//! then group every needed blob by pack so each pack is read once, in offset
//! order. Missing blobs or packs are found here, before anything is written.

use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::pack::reader::BlobLocation;
use crate::paths::Patterns;
use crate::read::BlobReader;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One entry to restore, at `rel` below the target.
#[derive(Debug)]
pub struct Node {
    /// Path relative to the target.
    pub rel: PathBuf,
    /// Depth (number of components of `rel`).
    pub depth: usize,
    /// The tree entry.
    pub entry: Entry,
}

/// Nodes to restore, pre-order (a directory before its contents): the
/// entries of `root`, whose stored path is `stored` (patterns match stored
/// paths, whatever part of the snapshot is restored).
pub fn collect(
    reader: &BlobReader,
    root: &Tree,
    stored: &Path,
    includes: &Patterns,
    excludes: &Patterns,
) -> Result<Vec<Node>> {
    let mut out = Vec::new();
    let at = Place {
        rel: Path::new(""),
        stored,
    };
    walk(reader, root, at, includes, excludes, false, &mut out)?;
    Ok(out)
}

/// A directory: its path below the target, and as stored.
#[derive(Clone, Copy)]
struct Place<'a> {
    rel: &'a Path,
    stored: &'a Path,
}

fn walk(
    reader: &BlobReader,
    tree: &Tree,
    at: Place<'_>,
    includes: &Patterns,
    excludes: &Patterns,
    included_above: bool,
    out: &mut Vec<Node>,
) -> Result<bool> {
    let mut any = false;
    for e in &tree.entries {
        let name = std::ffi::OsStr::from_bytes(&e.name);
        let rel = at.rel.join(name);
        let stored = at.stored.join(name);
        let sb = stored.as_os_str().as_bytes();
        if excludes.matches(sb) {
            continue;
        }
        let inc = included_above || includes.is_empty() || includes.matches(sb);
        let depth = rel.components().count();
        if e.kind() == EntryKind::Dir {
            let pos = out.len();
            out.push(Node {
                rel: rel.clone(),
                depth,
                entry: e.clone(),
            });
            let sub = match e.subtree {
                Some(id) => reader.tree(&id)?,
                None => Tree::default(),
            };
            let here = Place {
                rel: &rel,
                stored: &stored,
            };
            let below = walk(reader, &sub, here, includes, excludes, inc, out)?;
            if !inc && !below {
                out.truncate(pos); // nothing included in here
            } else {
                any = true;
            }
        } else if inc {
            out.push(Node {
                rel,
                depth,
                entry: e.clone(),
            });
            any = true;
        }
    }
    Ok(any)
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

/// Blobs grouped by pack, each group sorted by offset.
#[derive(Debug, Default)]
pub struct DataPlan {
    /// Packs in name order, each with its blobs in offset order.
    pub packs: Vec<(PackId, Vec<BlobUse>)>,
    /// Raw chunk lengths of each planned file (for `--verify`).
    pub chunk_lens: Vec<Vec<u32>>,
    /// Total bytes to write.
    pub bytes: u64,
}

/// Plan the data of `files` (indices into `nodes`).
pub fn plan_data(reader: &BlobReader, nodes: &[Node], files: &[usize]) -> Result<DataPlan> {
    let mut by_blob: HashMap<BlobId, usize> = HashMap::new();
    let mut uses: Vec<BlobUse> = Vec::new();
    let mut plan = DataPlan::default();
    for (fi, &ni) in files.iter().enumerate() {
        let e = &nodes[ni].entry;
        let mut off = 0u64;
        let mut lens = Vec::with_capacity(e.content.len());
        for id in &e.content {
            let ui = match by_blob.get(id) {
                Some(&ui) => ui,
                None => {
                    let loc = reader.locate(id)?.ok_or_else(|| Error::MissingBlob {
                        blob: id.to_hex(),
                        file: nodes[ni].rel.display().to_string(),
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
    // Every pack must be present before anything is written.
    let repo = reader.repo();
    let missing: Vec<&(PackId, Vec<BlobUse>)> = packs
        .iter()
        .filter(|(p, _)| !repo.pack_path(p).exists())
        .collect();
    if let Some((first, blobs)) = missing.first() {
        let mut names: Vec<String> = blobs
            .iter()
            .flat_map(|u| u.targets.iter().map(|(fi, _)| *fi))
            .map(|fi| nodes[files[fi]].rel.display().to_string())
            .collect();
        names.sort();
        names.dedup();
        let n = names.len();
        names.truncate(5);
        let mut files = names.join(", ");
        if n > 5 {
            files.push_str(&format!(" and {} more", n - 5));
        }
        return Err(Error::MissingPack {
            pack: first.to_hex(),
            more: missing.len() - 1,
            files,
        });
    }
    plan.packs = packs;
    Ok(plan)
}
