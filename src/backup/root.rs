//! A snapshot's root tree in the absolute layout (format-spec/objects.md
//! "Snapshot body", layout 1): each source under its absolute path, with
//! the directories above it (`/srv` for `/srv/bridge`) stored with their
//! own metadata, `/` as the root itself, and a stdin source as a top-level
//! name. A parent snapshot of either layout gives each source its parent
//! entry, so the first snapshot after an upgrade still skips unchanged files.

use super::walk::{Child, Parent, Walker};
use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::read::{BlobReader, Listing};
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use crate::snapshot::{Layout, Snapshot};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// `p` made absolute and normalised: no `.`, no `..` (resolved lexically,
/// never above `/`), no trailing `/`: one spelling per path, as recorded.
pub fn normalize(p: &Path) -> Result<PathBuf> {
    let abs =
        std::path::absolute(p).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Check the sources (normalised, sorted, unique): none inside another, and
/// the stdin name not a top-level name of a path source.
pub fn check(sources: &[PathBuf], stdin: Option<&str>) -> Result<()> {
    for w in sources.windows(2) {
        if w[1].starts_with(&w[0]) {
            return Err(Error::Invalid(format!(
                "source {} is inside source {}: give one of them",
                w[1].display(),
                w[0].display()
            )));
        }
    }
    if let Some(name) = stdin {
        let clash = sources
            .iter()
            .any(|s| s == Path::new("/") || first_component(s) == Some(OsStr::new(name)));
        if clash {
            return Err(Error::Invalid(format!(
                "--stdin-name {name:?} is also a top-level name of a source path"
            )));
        }
    }
    Ok(())
}

fn first_component(p: &Path) -> Option<&OsStr> {
    p.components().find_map(|c| match c {
        Component::Normal(n) => Some(n),
        _ => None,
    })
}

/// What the parent snapshot holds, as seen from the new root.
pub enum ParentRoot<'a> {
    /// No parent.
    None,
    /// A parent in the absolute layout: its root tree.
    Absolute(&'a BlobReader<'a>, Tree, BlobId),
    /// A parent in the format-1 layout: its root tree, entries named by the
    /// last component of each source (`root` for `/`).
    ByName(&'a BlobReader<'a>, Tree),
}

impl<'a> ParentRoot<'a> {
    /// Read the parent's root tree.
    pub fn of(reader: &'a BlobReader<'a>, parent: Option<&Snapshot>) -> Result<ParentRoot<'a>> {
        if reader.repo().is_write_only() {
            // write-only.md: listings from the local cache only (inline
            // contents left out; walk.rs reads those files again); a
            // parent whose root is not cached is no parent
            return Ok(match parent {
                Some(s) if s.layout() == Layout::Absolute => match reader.meta_tree(&s.tree) {
                    Ok(t) => ParentRoot::Absolute(reader, t, s.tree),
                    Err(Error::NotFound(_)) => ParentRoot::None,
                    Err(e) => return Err(e),
                },
                _ => ParentRoot::None,
            });
        }
        Ok(match parent {
            None => ParentRoot::None,
            Some(s) => match s.layout() {
                Layout::Absolute => ParentRoot::Absolute(reader, reader.tree(&s.tree)?, s.tree),
                Layout::ByName => ParentRoot::ByName(reader, reader.tree(&s.tree)?),
            },
        })
    }
}

/// Build the root's children (sorted): the path sources under their
/// absolute paths, then `extra` (the stdin entry), and save the root tree.
pub fn build(
    walker: &Walker,
    sources: &[PathBuf],
    extra: Vec<Child>,
    parent: &ParentRoot,
) -> Result<BlobId> {
    let mut kids = if sources.iter().any(|s| s == Path::new("/")) {
        // `/` itself: its contents are the root's.
        let listing = match parent {
            ParentRoot::Absolute(r, _, id) => Some((*id, r.listing(id)?)),
            ParentRoot::ByName(r, t) => match t.get(b"root").and_then(|e| e.subtree) {
                Some(id) => Some((id, r.listing(&id)?)),
                None => None,
            },
            ParentRoot::None => None,
        };
        let md =
            std::fs::symlink_metadata("/").map_err(|e| Error::Invalid(format!("source /: {e}")))?;
        walker.dir_kids(Path::new("/"), listing.as_ref(), md.dev())?
    } else {
        let above = match parent {
            ParentRoot::Absolute(_, t, _) => Some(t),
            _ => None,
        };
        below(walker, Path::new("/"), sources, above, parent)?
    };
    kids.extend(extra);
    kids.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
    walker.save_children(kids, None)
}

/// The children of directory `dir` that lead to `sources` (all strictly
/// below `dir`), with `parent_tree` the parent's full listing of `dir` in
/// the absolute layout.
fn below(
    walker: &Walker,
    dir: &Path,
    sources: &[PathBuf],
    parent_tree: Option<&Tree>,
    parent: &ParentRoot,
) -> Result<Vec<Child>> {
    let mut kids = Vec::new();
    let mut i = 0;
    while i < sources.len() {
        let rel = sources[i].strip_prefix(dir).unwrap_or(&sources[i]);
        let Some(name) = first_component(rel).map(OsStr::to_os_string) else {
            i += 1;
            continue;
        };
        let path = dir.join(&name);
        let group: Vec<PathBuf> = sources[i..]
            .iter()
            .take_while(|s| s.starts_with(&path))
            .cloned()
            .collect();
        i += group.len();
        let pe = parent_tree.and_then(|t| t.get(name.as_bytes()));
        if group.len() == 1 && group[0] == path {
            kids.extend(source(walker, &path, pe, parent)?);
        } else {
            kids.push(intermediate(walker, &path, &group, pe, parent)?);
        }
    }
    Ok(kids)
}

/// One source path, walked as usual with its parent entry.
fn source(
    walker: &Walker,
    path: &Path,
    pe: Option<&Entry>,
    parent: &ParentRoot,
) -> Result<Option<Child>> {
    let md = std::fs::symlink_metadata(path)
        .map_err(|e| Error::Invalid(format!("source {}: {e}", path.display())))?;
    if md.is_dir() && walker.repo_dir == Some((md.dev(), md.ino())) {
        return Err(Error::Invalid(format!(
            "source {} is the repository itself",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    // A format-1 parent names the source's entry by its last component.
    let by_name;
    let pe = match parent {
        ParentRoot::ByName(_, t) => {
            by_name = t.get(&name).cloned();
            by_name.as_ref()
        }
        _ => pe,
    };
    let pe = pe.map(|entry| Parent {
        entry,
        elided: false,
    });
    walker.node(path, name, &md, pe, md.dev())
}

/// A directory above a source (`/srv` of `/srv/bridge`): its own metadata
/// (following a symlink, as the path does), and only the children that lead
/// to sources.
fn intermediate(
    walker: &Walker,
    path: &Path,
    sources: &[PathBuf],
    pe: Option<&Entry>,
    parent: &ParentRoot,
) -> Result<Child> {
    let md =
        std::fs::metadata(path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    if !md.is_dir() {
        return Err(Error::Invalid(format!(
            "{} is not a directory",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    let mut e = super::source::entry_from_meta(name, &md);
    e.kind = EntryKind::Dir as u8;
    let sub = match (parent, pe.and_then(|p| p.subtree)) {
        (ParentRoot::Absolute(r, _, _), Some(id)) if r.repo().is_write_only() => {
            match r.meta_tree(&id) {
                Ok(t) => Some(t),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            }
        }
        (ParentRoot::Absolute(r, _, _), Some(id)) => Some(r.tree(&id)?),
        _ => None,
    };
    let kids = below(walker, path, sources, sub.as_ref(), parent)?;
    e.subtree = Some(walker.save_children(kids, None::<(&BlobId, &Listing)>)?);
    Ok(Child::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_lexically() {
        assert_eq!(
            normalize(Path::new("/srv/./a/../b/")).unwrap(),
            PathBuf::from("/srv/b")
        );
        assert_eq!(normalize(Path::new("/../..")).unwrap(), PathBuf::from("/"));
        assert_eq!(normalize(Path::new("/")).unwrap(), PathBuf::from("/"));
    }

    #[test]
    fn nested_sources_and_stdin_clashes_are_refused() {
        let s = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert!(check(&s(&["/srv", "/srv/app"]), None).is_err());
        assert!(check(&s(&["/", "/etc"]), None).is_err());
        assert!(check(&s(&["/srv/app/config", "/etc/app/config"]), None).is_ok());
        assert!(check(&s(&["/srv/a"]), Some("srv")).is_err());
        assert!(check(&s(&["/srv/a"]), Some("db.sql")).is_ok());
        assert!(check(&s(&["/"]), Some("db.sql")).is_err());
    }
}
