//! What sync copies and deletes, from listings of both ends
//! (format-spec/sync.md "Order"): which files of the repository layout are
//! copied at all, in which order, which are already there (skipped, the
//! resumability rule) or there with another size (an error, never
//! overwritten; but a pack is copied again, `replace`), which packs are
//! damaged at the destination (copied again), and which `--delete`
//! removes.

use super::Tally;
use crate::backend::Backend;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// The files sync copies, in copy order (the derived `Ord`). Anything
/// else (`locks/`, `tmp/`, `index.sqlite`, files of other tools) is never
/// listed, copied or deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `config`: first, so that the mirror is recognisable from the start.
    Config,
    /// `keys/<id>.info`: before its key, as `key add` writes them.
    KeyInfo,
    /// `keys/<id>`.
    Key,
    /// `keys/<id>.removed` (format 3): a removed write-only key's record.
    KeyRemoved,
    /// `dicts/<id>`: before any pack whose blobs need one.
    Dict,
    /// `packs/<xx>/<id>`, named by the BLAKE3 of their bytes.
    Pack,
    /// `trust/<id>` (format 3): packs a full key verified, after them.
    Trust,
    /// `coord/<id>` (format 3): written before the gc state file of its
    /// name, so copied before it.
    Coord,
    /// `gc/<id>`: after the packs (GC-2), before the manifests.
    GcState,
    /// `snapshots/<id>`: last (INV-4), once every pack is there.
    Snapshot,
}

fn hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Kind {
    /// The kind of a key of the repository layout (repository.md); `None`
    /// for anything sync leaves alone.
    pub fn of(key: &str) -> Option<Kind> {
        if key == crate::backend::key::CONFIG {
            return Some(Kind::Config);
        }
        let (dir, rest) = key.split_once('/')?;
        match dir {
            "keys" => match (rest.strip_suffix(".info"), rest.strip_suffix(".removed")) {
                (Some(id), _) if hex(id, 32) => Some(Kind::KeyInfo),
                (_, Some(id)) if hex(id, 32) => Some(Kind::KeyRemoved),
                (None, None) if hex(rest, 32) => Some(Kind::Key),
                _ => None,
            },
            "trust" if hex(rest, 64) => Some(Kind::Trust),
            "coord" if hex(rest, 64) => Some(Kind::Coord),
            "dicts" if hex(rest, 64) => Some(Kind::Dict),
            "gc" if hex(rest, 64) => Some(Kind::GcState),
            "snapshots" if hex(rest, 64) => Some(Kind::Snapshot),
            "packs" => {
                let (fan, name) = rest.split_once('/')?;
                (hex(name, 64) && name.get(..2) == Some(fan)).then_some(Kind::Pack)
            }
            _ => None,
        }
    }

    /// How the report names a group of these.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::KeyInfo => "key info files",
            Kind::Key => "key files",
            Kind::KeyRemoved => "removed-key records",
            Kind::Trust => "trust records",
            Kind::Coord => "coordination files",
            Kind::Dict => "dictionaries",
            Kind::Pack => "packs",
            Kind::GcState => "gc state files",
            Kind::Snapshot => "snapshot manifests",
        }
    }

    /// Position in `--delete`'s order: manifests first (nothing names a
    /// pack any more when it goes), then packs, then the gc state files a
    /// gc at the source replaced (GC-5 after GC-4), then keys (the key
    /// before its info, as `key remove`). Configs and dictionaries are
    /// never deleted (objects.md "Dictionaries").
    fn delete_rank(self) -> Option<u8> {
        match self {
            Kind::Snapshot => Some(0),
            Kind::Pack => Some(1),
            Kind::GcState | Kind::Coord => Some(2),
            Kind::Key => Some(3),
            Kind::KeyInfo => Some(4),
            // records of what a full key decided: never deleted
            Kind::Config | Kind::Dict | Kind::KeyRemoved | Kind::Trust => None,
        }
    }
}

/// One file to copy or delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Its key.
    pub key: String,
    /// Its kind.
    pub kind: Kind,
    /// Its size in bytes, as listed.
    pub size: u64,
}

/// The files of the layout at one end, by key (without `config`).
#[derive(Debug, Default)]
pub struct Listing {
    files: BTreeMap<String, (Kind, u64)>,
}

impl Listing {
    /// List `b`: `snapshots/` first, then gc state, keys, dictionaries and
    /// packs last. At the source this order makes concurrent writers
    /// harmless: a manifest is published only after every pack it needs
    /// (INV-4), and those after their dictionaries, and a gc state file
    /// only after the packs its repack wrote (GC-2), so what a listed
    /// manifest or gc state file needs is in the later listings (as gc
    /// lists snapshots before packs, gc.md step 2).
    pub fn read(b: &dyn Backend) -> Result<Listing> {
        let mut files = BTreeMap::new();
        for prefix in [
            "snapshots",
            "gc",
            "coord",
            "trust",
            "keys",
            "dicts",
            "packs",
        ] {
            b.list(prefix, &mut |l| {
                if let Some(kind) = Kind::of(&l.key) {
                    files.insert(l.key, (kind, l.size));
                }
            })?;
        }
        Ok(Listing { files })
    }

    /// Whether `key` was listed.
    pub fn has(&self, key: &str) -> bool {
        self.files.contains_key(key)
    }

    /// The files of `kind`, in key order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = Item> + '_ {
        self.files
            .iter()
            .filter(move |(_, (k, _))| *k == kind)
            .map(|(key, &(kind, size))| Item {
                key: key.clone(),
                kind,
                size,
            })
    }

    fn items(&self) -> impl Iterator<Item = Item> + '_ {
        self.files.iter().map(|(key, &(kind, size))| Item {
            key: key.clone(),
            kind,
            size,
        })
    }
}

/// The files of one kind to copy, and the conflicts found for it.
#[derive(Debug)]
pub struct Phase {
    /// What is copied.
    pub kind: Kind,
    /// Missing at the destination.
    pub items: Vec<Item>,
    /// Packs at the destination that are recorded damaged there, or have
    /// another size: copied again over them, once the source's copy
    /// hashes to its name (format-spec/sync.md "Healing").
    pub replace: Vec<Item>,
    /// Present at the destination with another size: errors naming them.
    pub conflicts: Vec<Error>,
}

/// What to copy, phase by phase in [`Kind`] order, and what is there already.
#[derive(Debug)]
pub struct CopyPlan {
    /// Key info files, keys, dictionaries, packs, gc state, manifests.
    pub phases: Vec<Phase>,
    /// Present at the destination with the same size.
    pub skipped: Tally,
}

impl CopyPlan {
    /// Bytes to copy.
    pub fn bytes(&self) -> u64 {
        self.phases
            .iter()
            .flat_map(|p| p.items.iter().chain(&p.replace))
            .map(|i| i.size)
            .sum()
    }
}

/// Compare the listings: a file missing at `dst` is copied, one of the same
/// size is skipped (copied by an earlier run: every file sync copies is
/// create-only and content-named or random-named, so the same name and size
/// is the same file), one of another size is a conflict. A pack is the
/// exception: named by the BLAKE3 of its bytes, the copy that hashes to its
/// name is the right one, so a pack of another size, or one of `damaged`
/// (keys of packs found damaged at `dst`), is copied again.
pub fn copies(
    src: &Listing,
    dst: &Listing,
    dst_name: &str,
    damaged: &BTreeSet<String>,
) -> CopyPlan {
    let mut phases: Vec<Phase> = [
        Kind::KeyInfo,
        Kind::Key,
        Kind::KeyRemoved,
        Kind::Dict,
        Kind::Pack,
        Kind::Trust,
        Kind::Coord,
        Kind::GcState,
        Kind::Snapshot,
    ]
    .into_iter()
    .map(|kind| Phase {
        kind,
        items: Vec::new(),
        replace: Vec::new(),
        conflicts: Vec::new(),
    })
    .collect();
    let mut skipped = Tally::default();
    for item in src.items() {
        let Some(phase) = phases.iter_mut().find(|p| p.kind == item.kind) else {
            continue;
        };
        let pack = item.kind == Kind::Pack;
        match dst.files.get(&item.key) {
            None => phase.items.push(item),
            Some(_) if pack && damaged.contains(&item.key) => phase.replace.push(item),
            Some(&(_, size)) if size == item.size => skipped.add(size),
            Some(_) if pack => phase.replace.push(item),
            Some(&(_, size)) => phase.conflicts.push(Error::Invalid(format!(
                "{dst_name}: {}: exists with {size} bytes where the source has {}: not \
                 overwritten (damaged at the destination or at the source? check both)",
                item.key, item.size
            ))),
        }
    }
    CopyPlan { phases, skipped }
}

/// What `--delete` removes, in its order: files at `dst` that neither the
/// first source listing nor a `fresh` one taken after the copies holds (a
/// single listing is never trusted for a delete, backend.md "List").
pub fn deletions(src: &Listing, fresh: &Listing, dst: &Listing) -> Vec<Item> {
    let mut out: Vec<Item> = dst
        .items()
        .filter(|i| i.kind.delete_rank().is_some() && !src.has(&i.key) && !fresh.has(&i.key))
        .collect();
    out.sort_by_key(|i| (i.kind.delete_rank(), i.key.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(files: &[(&str, u64)]) -> Listing {
        Listing {
            files: files
                .iter()
                .map(|&(k, s)| (k.to_string(), (Kind::of(k).unwrap(), s)))
                .collect(),
        }
    }

    #[test]
    fn kinds_of_the_layout_and_nothing_else() {
        let h = "ab".repeat(32);
        let k = "0f".repeat(16);
        assert_eq!(Kind::of("config"), Some(Kind::Config));
        assert_eq!(Kind::of(&format!("keys/{k}")), Some(Kind::Key));
        assert_eq!(Kind::of(&format!("keys/{k}.info")), Some(Kind::KeyInfo));
        assert_eq!(Kind::of(&format!("dicts/{h}")), Some(Kind::Dict));
        assert_eq!(Kind::of(&format!("gc/{h}")), Some(Kind::GcState));
        assert_eq!(Kind::of(&format!("snapshots/{h}")), Some(Kind::Snapshot));
        assert_eq!(Kind::of(&format!("packs/ab/{h}")), Some(Kind::Pack));
        for other in [
            format!("packs/cd/{h}"),
            format!("packs/{h}"),
            format!("locks/{h}"),
            format!("tmp/{h}"),
            "index.sqlite".to_string(),
            "index.sqlite-wal".to_string(),
            format!("keys/{k}.tmp"),
            format!("snapshots/{h}x"),
            format!("snapshots/{h}/x"),
            "README".to_string(),
        ] {
            assert_eq!(Kind::of(&other), None, "{other}");
        }
        assert!(Kind::Config < Kind::KeyInfo && Kind::Pack < Kind::GcState);
        assert!(Kind::GcState < Kind::Snapshot);
    }

    #[test]
    fn copies_skips_and_conflicts() {
        let (p1, p2, p3) = ("11".repeat(32), "22".repeat(32), "33".repeat(32));
        let (pk1, pk2, pk3) = (
            format!("packs/11/{p1}"),
            format!("packs/22/{p2}"),
            format!("packs/33/{p3}"),
        );
        let snap = format!("snapshots/{p1}");
        let (p4, p5) = ("44".repeat(32), "55".repeat(32));
        let (pk4, snap5) = (format!("packs/44/{p4}"), format!("snapshots/{p5}"));
        let src = listing(&[
            (&pk1, 10),
            (&pk2, 20),
            (&pk3, 30),
            (&pk4, 40),
            (&snap, 5),
            (&snap5, 6),
        ]);
        let dst = listing(&[(&pk1, 10), (&pk2, 21), (&pk4, 40), (&snap5, 7)]);
        // pk4 has the same size, but a check found it damaged there
        let damaged: BTreeSet<String> = [pk4.clone()].into();
        let plan = copies(&src, &dst, "DST", &damaged);
        assert_eq!(
            plan.skipped,
            Tally {
                objects: 1,
                bytes: 10
            }
        );
        let packs = plan.phases.iter().find(|p| p.kind == Kind::Pack).unwrap();
        assert_eq!(packs.items.len(), 1);
        assert_eq!(packs.items[0].key, pk3);
        // a pack of another size or recorded damaged is copied again
        let replaced: Vec<&str> = packs.replace.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(replaced, [pk2.as_str(), pk4.as_str()]);
        assert!(packs.conflicts.is_empty());
        // any other file of another size is a conflict, never overwritten
        let snaps = plan
            .phases
            .iter()
            .find(|p| p.kind == Kind::Snapshot)
            .unwrap();
        assert_eq!(snaps.conflicts.len(), 1);
        let msg = snaps.conflicts[0].to_string();
        assert!(msg.contains(&snap5) && msg.contains("7 bytes"), "{msg}");
        assert_eq!(plan.bytes(), 20 + 30 + 40 + 5);
        let order: Vec<Kind> = plan.phases.iter().map(|p| p.kind).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }

    #[test]
    fn deletions_need_two_listings_and_keep_the_order() {
        let h = |b: &str| b.repeat(32);
        let (a, b, c) = (h("aa"), h("bb"), h("cc"));
        let k = "0f".repeat(16);
        let dst = listing(&[
            (&format!("packs/aa/{a}"), 1),
            (&format!("packs/bb/{b}"), 1),
            (&format!("snapshots/{c}"), 1),
            (&format!("gc/{a}"), 1),
            (&format!("dicts/{a}"), 1),
            (&format!("keys/{k}"), 1),
            (&format!("keys/{k}.info"), 1),
        ]);
        let src = listing(&[]);
        // packs/bb is back in the second listing: not deleted
        let fresh = listing(&[(&format!("packs/bb/{b}"), 1)]);
        let keys: Vec<String> = deletions(&src, &fresh, &dst)
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            vec![
                format!("snapshots/{c}"),
                format!("packs/aa/{a}"),
                format!("gc/{a}"),
                format!("keys/{k}"),
                format!("keys/{k}.info"),
            ]
        );
    }
}
