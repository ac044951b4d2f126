//! The sizes of each source in `strata status` (logical, raw and stored
//! bytes, dedup ratio) without walking every snapshot's tree on every
//! call: this machine keeps, per repository and source, the figures of the
//! last report and the [`Union`] they came from (format-spec/repository.md
//! "Status sizes (local)"). The same snapshots again: the figures are read
//! as they are. New snapshots: only their trees not seen before are walked
//! and only their new blobs looked up. A snapshot gone (forget): the union
//! is counted again from the start. Files that are missing or do not check
//! are rebuilt; failing to write them only costs the next call a walk.

use crate::error::{Error, Result};
use crate::id::BlobId;
use crate::inspect::stats::Union;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::snapshot::Snapshot;
use std::collections::HashSet;
use std::path::PathBuf;

/// Largest union file read (1 GiB of encoded sets).
const MAX_UNION: usize = 1 << 30;

/// A source's sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sizes {
    /// Logical bytes of its snapshots, summed.
    pub logical: u64,
    /// Raw bytes of their distinct blobs.
    pub raw: u64,
    /// Stored bytes of their distinct blobs.
    pub stored: u64,
    /// Logical bytes per distinct content byte (`None`: no content).
    pub dedup_ratio: Option<f64>,
}

/// What the last report counted: each root tree with its logical bytes,
/// and the union's figures.
#[derive(Debug, Default, PartialEq, bincode::Encode, bincode::Decode)]
struct Figures {
    roots: Vec<(BlobId, u64)>,
    raw: u64,
    stored: u64,
    content: u64,
}

/// The two files of source `name` in `repo`'s cache (`None`: no cache).
fn files(repo: &Repo, name: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = crate::cache::base_dir()?
        .join(repo.config().repo_id.to_hex())
        .join("status");
    let tag = crate::id::to_hex(&blake3::hash(name.as_bytes()).as_bytes()[..16]);
    Some((
        dir.join(format!("figures1-{tag}")),
        dir.join(format!("union1-{tag}")),
    ))
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_UNION>()
}

fn load<T: bincode::Decode<()>>(file: &std::path::Path) -> Option<T> {
    let raw = crate::cache::read_sealed(file, MAX_UNION)?;
    let (v, used) = bincode::decode_from_slice(&raw, config()).ok()?;
    (used == raw.len()).then_some(v)
}

fn save<T: bincode::Encode>(file: &std::path::Path, v: &T) {
    if let Ok(raw) = bincode::encode_to_vec(v, config()) {
        crate::cache::write_sealed(file, &raw);
    }
}

/// The sizes of `snaps` (one source's snapshots).
pub(super) fn sizes(
    repo: &Repo,
    reader: &BlobReader,
    name: &str,
    snaps: &[&Snapshot],
) -> Result<Sizes> {
    let want: HashSet<BlobId> = snaps.iter().map(|s| s.tree).collect();
    let files = files(repo, name);
    let cached = files.as_ref().and_then(|(f, _)| load::<Figures>(f));
    let figures = match cached {
        Some(f) if f.roots.len() == want.len() && f.roots.iter().all(|r| want.contains(&r.0)) => f,
        _ => {
            let f = count(reader, files.as_ref().map(|f| f.1.as_path()), &want)?;
            if let Some((file, _)) = &files {
                save(file, &f);
            }
            f
        }
    };
    let by_root: std::collections::HashMap<BlobId, u64> = figures.roots.iter().copied().collect();
    let mut logical = 0u64;
    for s in snaps {
        let l = by_root.get(&s.tree).ok_or_else(|| {
            Error::Internal(format!("status sizes: root {} not counted", s.tree.short()))
        })?;
        logical += l;
    }
    Ok(Sizes {
        logical,
        raw: figures.raw,
        stored: figures.stored,
        dedup_ratio: (figures.content > 0).then(|| logical as f64 / figures.content as f64),
    })
}

/// Count the roots `want`, from the union in `file` when it counted none
/// that `want` lacks (else from nothing), and save the union again.
fn count(
    reader: &BlobReader,
    file: Option<&std::path::Path>,
    want: &HashSet<BlobId>,
) -> Result<Figures> {
    let mut union = match file.and_then(load::<Union>) {
        Some(u) if u.roots().all(|r| want.contains(r)) => u,
        _ => Union::default(),
    };
    let new: Vec<BlobId> = want
        .iter()
        .filter(|r| !union.has_root(r))
        .copied()
        .collect();
    union.add(reader, &new)?;
    if let Some(f) = file {
        save(f, &union);
    }
    let mut roots = Vec::with_capacity(want.len());
    for r in want {
        let l = union.logical(r).ok_or_else(|| {
            Error::Internal(format!("status sizes: root {} not walked", r.short()))
        })?;
        roots.push((*r, l));
    }
    roots.sort_unstable();
    Ok(Figures {
        roots,
        raw: union.raw(),
        stored: union.stored(),
        content: union.content(),
    })
}
