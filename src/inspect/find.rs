//! `find`: the entries below a tree whose own path matches glob patterns,
//! for every snapshot. Identical subtrees (same id) are searched once
//! across all snapshots when the patterns look at names only.

use crate::error::Result;
use crate::id::BlobId;
use crate::paths::Patterns;
use crate::read::BlobReader;
use crate::snapshot::tree::{Entry, EntryKind};
use std::collections::HashMap;
use std::rc::Rc;

/// A match of `find` below some tree: path relative to that tree, and entry.
pub type Matches = Vec<(Vec<u8>, Entry)>;

/// The matches of subtrees already searched, by tree id.
pub type Memo = HashMap<BlobId, Rc<Matches>>;

/// The entries below tree `id` (stored at `dir`, a path starting with `/`)
/// whose own path matches `pats`; `depth` is the level of `id` (0 for a
/// snapshot's root).
pub fn find_in(
    reader: &BlobReader,
    id: &BlobId,
    pats: &Patterns,
    dir: &[u8],
    memo: &mut Memo,
    depth: usize,
) -> Result<Rc<Matches>> {
    // Name-only patterns give the same matches for a subtree wherever it
    // sits, so identical subtrees (same id) are searched once across all
    // snapshots.
    let by_name = pats.names_only();
    if by_name {
        if let Some(m) = memo.get(id) {
            return Ok(m.clone());
        }
    }
    let tree = reader.meta_tree(id)?;
    let mut out = Vec::new();
    for e in &tree.entries {
        let mut full = dir.to_vec();
        if full.last() != Some(&b'/') {
            full.push(b'/');
        }
        full.extend_from_slice(&e.name);
        if pats.matches_itself(&full) {
            out.push((e.name.clone(), e.clone()));
        }
        if let (EntryKind::Dir, Some(sub)) = (e.kind(), e.subtree) {
            crate::snapshot::tree::check_depth(depth, &format!("tree {}", sub.short()))?;
            let below = find_in(reader, &sub, pats, &full, memo, depth + 1)?;
            out.extend(below.iter().map(|(p, x)| {
                let mut rel = e.name.clone();
                rel.push(b'/');
                rel.extend_from_slice(p);
                (rel, x.clone())
            }));
        }
    }
    let out = Rc::new(out);
    if by_name {
        memo.insert(*id, out.clone());
    }
    Ok(out)
}
