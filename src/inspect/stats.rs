//! `stats`: logical size of snapshots and the deduplicated, compressed
//! storage they use. Identical subtrees are counted from a memo, not re-read.

use crate::blob::Compression;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::read::BlobReader;
use crate::snapshot::Snapshot;
use crate::snapshot::tree::EntryKind;
use std::collections::{HashMap, HashSet};

/// Sizes of a set of snapshots.
#[derive(Debug, Default, serde::Serialize)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Regular files, summed over the snapshots (what restoring each would write).
    pub files: u64,
    /// Directories, summed over the snapshots.
    pub dirs: u64,
    /// Logical bytes of regular files, summed over the snapshots.
    pub restore_size: u64,
    /// Distinct data blobs referenced.
    pub data_blobs: u64,
    /// Distinct tree blobs referenced.
    pub tree_blobs: u64,
    /// Raw (uncompressed) bytes of the distinct blobs.
    pub raw_size: u64,
    /// Stored (compressed) bytes of the distinct blobs.
    pub stored_size: u64,
    /// Packs holding them.
    pub packs: u64,
    /// restore_size / distinct file content: the raw size of the distinct
    /// data blobs plus the bytes stored inline in the distinct trees.
    pub dedup_ratio: f64,
    /// raw_size / stored_size.
    pub compression_ratio: f64,
    /// Regular files stored inline in their trees, summed over the snapshots.
    pub inline_files: u64,
    /// Their bytes.
    pub inline_bytes: u64,
    /// Distinct blobs compressed with a dictionary.
    pub dict_blobs: u64,
    /// raw / stored of the blobs compressed with a dictionary.
    pub dict_ratio: f64,
    /// raw / stored of the blobs compressed with plain zstd.
    pub zstd_ratio: f64,
    /// Dictionaries in the repository.
    pub dictionaries: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sums {
    files: u64,
    dirs: u64,
    bytes: u64,
    inline: u64,
    inline_bytes: u64,
}

/// What one walk over the snapshots collects besides each tree's sums.
#[derive(Clone, Debug, Default)]
struct Seen {
    memo: HashMap<BlobId, Sums>,
    data: HashSet<BlobId>,
    trees: HashSet<BlobId>,
    /// Bytes of files inline in the distinct trees, each tree counted once.
    inline_bytes: u64,
}

fn tree_sums(reader: &BlobReader, id: &BlobId, seen: &mut Seen, depth: usize) -> Result<Sums> {
    if let Some(s) = seen.memo.get(id) {
        return Ok(*s);
    }
    seen.trees.insert(*id);
    let t = reader.listing(id)?;
    seen.trees.extend(t.part_ids());
    let mut s = Sums::default();
    for (k, e) in t.entries.iter().enumerate() {
        match e.kind() {
            EntryKind::File => {
                s.files += 1;
                s.bytes += e.size;
                if t.elided(k) {
                    s.inline += 1;
                    s.inline_bytes += e.size;
                    seen.inline_bytes += e.size;
                }
                seen.data.extend(e.content.iter().copied());
            }
            EntryKind::Dir => {
                s.dirs += 1;
                if let Some(sub) = e.subtree {
                    crate::snapshot::tree::check_depth(depth, &format!("tree {}", sub.short()))?;
                    let c = tree_sums(reader, &sub, seen, depth + 1)?;
                    s.files += c.files;
                    s.dirs += c.dirs;
                    s.bytes += c.bytes;
                    s.inline += c.inline;
                    s.inline_bytes += c.inline_bytes;
                }
            }
            _ => {}
        }
    }
    seen.memo.insert(*id, s);
    Ok(s)
}

/// Count `snaps`.
pub fn stats(reader: &BlobReader, snaps: &[Snapshot]) -> Result<Stats> {
    let mut seen = Seen::default();
    let mut st = Stats::default();
    for s in snaps {
        let sums = tree_sums(reader, &s.tree, &mut seen, 0)?;
        st.snapshots += 1;
        st.files += sums.files;
        st.dirs += sums.dirs;
        st.restore_size += sums.bytes;
        st.inline_files += sums.inline;
        st.inline_bytes += sums.inline_bytes;
    }
    let Seen {
        data,
        trees,
        inline_bytes: distinct_inline,
        ..
    } = seen;
    // One scan of the index gives every location.
    let mut packs: HashSet<PackId> = HashSet::new();
    let (mut data_raw, mut found) = (0u64, 0usize);
    let (mut dict, mut zstd) = ((0u64, 0u64), (0u64, 0u64));
    reader.for_each_blob(&mut |b| {
        let is_data = data.contains(&b.id);
        if is_data || trees.contains(&b.id) {
            found += 1;
            let (raw, stored) = (u64::from(b.raw_len), u64::from(b.stored_len));
            st.raw_size += raw;
            st.stored_size += stored;
            if is_data {
                data_raw += raw;
            }
            let sum = match b.compression {
                Compression::ZstdDict => Some(&mut dict),
                Compression::Zstd => Some(&mut zstd),
                Compression::None => None,
            };
            if let Some(sum) = sum {
                sum.0 += raw;
                sum.1 += stored;
            }
            if b.compression == Compression::ZstdDict {
                st.dict_blobs += 1;
            }
            packs.insert(b.pack);
        }
    })?;
    let ratio = |(raw, stored): (u64, u64)| {
        if stored > 0 {
            raw as f64 / stored as f64
        } else {
            0.0
        }
    };
    st.dict_ratio = ratio(dict);
    st.zstd_ratio = ratio(zstd);
    st.dictionaries = reader.repo().dicts(false)?.len() as u64;
    if found < data.len() + trees.len() {
        let missing = data
            .iter()
            .chain(trees.iter())
            .find(|id| reader.locate(id).ok().flatten().is_none());
        return Err(Error::MissingBlob {
            blob: missing.map(|m| m.to_hex()).unwrap_or_default(),
            file: "(stats)".into(),
        });
    }
    st.data_blobs = data.len() as u64;
    st.tree_blobs = trees.len() as u64;
    st.packs = packs.len() as u64;
    let content = data_raw + distinct_inline;
    st.dedup_ratio = if content > 0 {
        st.restore_size as f64 / content as f64
    } else {
        0.0
    };
    st.compression_ratio = if st.stored_size > 0 {
        st.raw_size as f64 / st.stored_size as f64
    } else {
        0.0
    };
    Ok(st)
}
