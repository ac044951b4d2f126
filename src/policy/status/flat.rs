//! The flat status (issue 27): what `strata status` last reported of each
//! source's snapshots (their count, the latest, what each retention rule
//! keeps, the sizes), kept on this machine under a key that digests all
//! it was computed from: the names listed in `snapshots/`, the keys that
//! sign manifests (a write-only key removed since
//! changes it), the sources and the retention policy, the time zone
//! (format-spec/repository.md "Status report (local)"). While the key is
//! the same, status reads the figures without decoding a manifest; what
//! depends on the time (age, staleness) is computed again on every call,
//! and retention's counts, which depend on it only through snapshots dated
//! after now, are used only while no snapshot of the source is. A file
//! that is missing, stale or does not check is ignored and rewritten: the
//! figures are then computed from the manifests, as without it.
//!
//! The key has the names alone, not each file's size and time, and
//! before it is computed the backend's stamp of `snapshots/` is compared
//! with the one saved (on a local repository one stat of the directory;
//! saved only once two seconds old, so no change can hide in the file
//! system's time granularity): a call costs about the same at 10 000
//! snapshots as at 100. When the listing changed, the sections are
//! brought up to date from the status rows (rows.rs), which read only the
//! manifests added. A manifest rewritten or damaged in place (same name)
//! is therefore not read again by status; `check` reads every one.

use super::Config;
use super::listing::Names;
use crate::repo::Repo;
use crate::repo::keys::Signers;
use std::path::PathBuf;

/// Largest report file read (16 MiB; a few hundred bytes per source).
const MAX_FLAT: usize = 16 << 20;

/// What status reports of one source's snapshots, before the time of the
/// call is applied (`super::finish`).
#[derive(Clone, Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub(super) struct Section {
    /// Its snapshots (without `pre-restore` ones).
    pub snapshots: u64,
    /// The latest of them.
    pub latest: Option<Latest>,
    /// The newest time among them (`i64::MIN` without any).
    pub newest_ns: i64,
    /// What each retention rule that is on keeps (`super::rules` order);
    /// empty when retention is not reported.
    pub kept: Vec<u64>,
    /// Logical, raw, stored bytes and the dedup ratio (`None`: not known).
    pub sizes: Option<(u64, u64, u64, Option<f64>)>,
    /// What could not be reported.
    pub warnings: Vec<String>,
}

/// A source's latest snapshot, without its age.
#[derive(Clone, Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub(super) struct Latest {
    /// Its id (hex).
    pub id: String,
    /// Its time (RFC 3339).
    pub time: String,
    /// Its time, Unix ns.
    pub time_unix_ns: i64,
    /// Raw bytes of new blobs it added.
    pub bytes_added: u64,
    /// Bytes it read.
    pub bytes_read: u64,
}

/// The file: the key, then one section per source of the config.
#[derive(Debug, PartialEq, bincode::Encode, bincode::Decode)]
pub(super) struct Saved {
    /// [`key`] of the ids listed and `rest`.
    pub key: [u8; 32],
    /// [`rest`]: what the figures depend on besides the listing.
    pub rest: [u8; 32],
    /// The listing's stamp (`Backend::listing_stamp`) when it was settled
    /// before the ids were listed, else `None`.
    pub stamp: Option<Vec<u8>>,
    /// One per source, in the config's order.
    pub sections: Vec<Section>,
}

/// What a saved report is looked up by.
pub(super) enum By<'a> {
    /// The key of the ids listed.
    Key(&'a [u8; 32]),
    /// A settled listing stamp and [`rest`].
    Stamp(&'a [u8], &'a [u8; 32]),
}

/// The report file of `repo` (`None`: no cache directory).
fn file(repo: &Repo) -> Option<PathBuf> {
    super::cache_file(repo, "report1")
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FLAT>()
}

/// The key of a report: BLAKE3 of a format tag, the number of ids listed,
/// each part's digest (`listing::Names`, first byte 0 to 255) and
/// [`rest`].
pub(super) fn key(listed: &Names, rest: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"strata status report 2\0");
    h.update(&(listed.ids.len() as u64).to_le_bytes());
    for p in &listed.parts {
        h.update(p);
    }
    h.update(rest);
    *h.finalize().as_bytes()
}

/// What the figures depend on besides the listing: BLAKE3 of a tag, the
/// signers, the sources' names, the retention policy and the time zone,
/// each length-prefixed.
pub(super) fn rest(signers: &Signers, cfg: &Config, tz: &jiff::tz::TimeZone) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"strata status rest 1\0");
    let field = |h: &mut blake3::Hasher, s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(&mut h, &signers_text(signers));
    let names: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
    field(&mut h, &format!("{names:?}"));
    field(&mut h, &format!("{:?}", cfg.retention));
    field(&mut h, &zone_text(tz));
    *h.finalize().as_bytes()
}

/// The signers in a canonical text (every map sorted).
fn signers_text(s: &Signers) -> String {
    let mut live: Vec<_> = s.live.iter().collect();
    live.sort();
    let mut removed: Vec<_> = s
        .removed
        .iter()
        .map(|(k, (v, ids))| {
            let mut ids: Vec<&[u8; 32]> = ids.iter().collect();
            ids.sort();
            (k, v, ids)
        })
        .collect();
    removed.sort();
    let mut forgotten: Vec<_> = s.forgotten_removal.iter().collect();
    forgotten.sort();
    format!("{live:?}{removed:?}{forgotten:?}")
}

/// The time zone whose wall clock makes retention's buckets: jiff's name
/// for it, `$TZ`, and the bytes of `/etc/localtime` (a rule change there
/// changes the key).
fn zone_text(tz: &jiff::tz::TimeZone) -> String {
    let env = std::env::var_os("TZ").map(|v| v.to_string_lossy().into_owned());
    let local = std::fs::read("/etc/localtime").unwrap_or_default();
    format!(
        "{tz:?} {env:?} {}",
        crate::id::to_hex(blake3::hash(&local).as_bytes())
    )
}

/// The report saved, if the file is there and checks; whether it is the
/// one to use is [`Saved::fits`].
pub(super) fn read(repo: &Repo) -> Option<Saved> {
    read_file(&file(repo)?)
}

fn read_file(f: &std::path::Path) -> Option<Saved> {
    let raw = crate::cache::read_sealed(f, MAX_FLAT)?;
    let (saved, used): (Saved, usize) = bincode::decode_from_slice(&raw, config()).ok()?;
    (used == raw.len()).then_some(saved)
}

impl Saved {
    /// Is this the report found `by` its key or stamp, with one section
    /// per source of `sources`, none of them with a snapshot dated after
    /// `now`?
    pub(super) fn fits(&self, by: By<'_>, sources: usize, now: i64) -> bool {
        let found = match by {
            By::Key(k) => &self.key == k,
            By::Stamp(st, rest) => self.stamp.as_deref() == Some(st) && &self.rest == rest,
        };
        found && self.sections.len() == sources && self.sections.iter().all(|s| s.newest_ns <= now)
    }
}

/// Save `saved` (best effort: temp name, rename); nothing is saved when a
/// section has warnings (they are computed again).
pub(super) fn save(repo: &Repo, saved: &Saved) {
    if let Some(f) = file(repo) {
        save_file(&f, saved);
    }
}

fn save_file(f: &std::path::Path, saved: &Saved) {
    if saved.sections.iter().any(|s| !s.warnings.is_empty()) {
        return;
    }
    if let Ok(raw) = bincode::encode_to_vec(saved, config()) {
        crate::cache::write_sealed(f, &raw);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::id::SnapshotId;

    fn load_file(f: &std::path::Path, by: By<'_>, sources: usize, now: i64) -> Option<Saved> {
        read_file(f).filter(|s| s.fits(by, sources, now))
    }

    fn load_sections(
        f: &std::path::Path,
        key: &[u8; 32],
        n: usize,
        now: i64,
    ) -> Option<Vec<Section>> {
        load_file(f, By::Key(key), n, now).map(|s| s.sections)
    }

    fn save_sections(f: &std::path::Path, key: &[u8; 32], sections: &[Section]) {
        let saved = Saved {
            key: *key,
            rest: [1; 32],
            stamp: Some(b"stamp".to_vec()),
            sections: sections.to_vec(),
        };
        save_file(f, &saved);
    }

    fn section(newest_ns: i64) -> Section {
        Section {
            snapshots: 2,
            latest: Some(Latest {
                id: "ab".into(),
                time: "2026-12-06T00:00:00Z".into(),
                time_unix_ns: newest_ns,
                bytes_added: 1,
                bytes_read: 2,
            }),
            newest_ns,
            kept: vec![2, 1],
            sizes: Some((10, 5, 4, Some(2.0))),
            warnings: Vec::new(),
        }
    }

    /// Saved sections load back under their key only, while no snapshot
    /// is dated after now; a damaged, truncated or foreign file loads as
    /// nothing, never as wrong figures; sections with warnings are not
    /// saved.
    #[test]
    fn sections_round_trip_under_their_key_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("status").join("report1");
        let key = [7u8; 32];
        let secs = vec![section(100), section(i64::MIN)];
        assert!(load_sections(&f, &key, 2, 1000).is_none());
        save_sections(&f, &key, &secs);
        assert_eq!(load_sections(&f, &key, 2, 1000), Some(secs.clone()));
        let by_stamp = |st: &[u8], rest: &[u8; 32]| load_file(&f, By::Stamp(st, rest), 2, 1000);
        assert_eq!(
            by_stamp(b"stamp", &[1; 32]).map(|s| s.sections),
            Some(secs.clone())
        );
        assert!(by_stamp(b"other", &[1; 32]).is_none(), "another stamp");
        assert!(by_stamp(b"stamp", &[2; 32]).is_none(), "another rest");
        assert!(
            load_sections(&f, &[8u8; 32], 2, 1000).is_none(),
            "another key"
        );
        assert!(
            load_sections(&f, &key, 3, 1000).is_none(),
            "another source count"
        );
        assert!(
            load_sections(&f, &key, 2, 99).is_none(),
            "a snapshot after now"
        );
        let b = std::fs::read(&f).unwrap();
        let mut flipped = b.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&f, &flipped).unwrap();
        assert!(load_sections(&f, &key, 2, 1000).is_none(), "damaged");
        std::fs::write(&f, &b[..b.len() - 2]).unwrap();
        assert!(load_sections(&f, &key, 2, 1000).is_none(), "truncated");
        std::fs::remove_file(&f).unwrap();
        let mut warned = secs.clone();
        warned[1].warnings.push("sizes: x".into());
        save_sections(&f, &key, &warned);
        assert!(!f.exists(), "not saved with warnings");
    }

    /// The key changes with a manifest added, removed or replaced, with the signers (a write-only key removed), with
    /// the retention policy and with the sources.
    #[test]
    fn the_key_covers_what_the_figures_depend_on() {
        let cfg = crate::policy::config::parse(
            "repository = \"/r\"\n[sources.a]\npaths = [\"/a\"]\n[retention]\nkeep_daily = 3\n",
            std::path::Path::new("/s.toml"),
        )
        .unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        let id = |b: u8| SnapshotId([b; 32]);
        let listed = Names::of(&[id(1), id(2)]);
        let signers = Signers::default();
        let k = key(&listed, &rest(&signers, &cfg, &tz));
        assert_eq!(k, key(&listed, &rest(&signers, &cfg, &tz)));
        let r = rest(&signers, &cfg, &tz);
        assert_ne!(k, key(&Names::of(&[id(1)]), &r), "removed");
        assert_ne!(k, key(&Names::of(&[id(1), id(2), id(3)]), &r), "added");
        assert_ne!(k, key(&Names::of(&[id(1), id(3)]), &r), "replaced");
        let mut same_part = [1u8; 32];
        same_part[31] = 9;
        assert_ne!(
            k,
            key(&Names::of(&[id(1), SnapshotId(same_part)]), &r),
            "replaced in the same part"
        );
        let mut removed = Signers::default();
        removed
            .removed
            .insert("w1".into(), ([3; 32], [[1u8; 32]].into_iter().collect()));
        assert_ne!(k, key(&listed, &rest(&removed, &cfg, &tz)), "a key removed");
        let mut other = crate::policy::config::parse(
            "repository = \"/r\"\n[sources.a]\npaths = [\"/a\"]\n[retention]\nkeep_daily = 4\n",
            std::path::Path::new("/s.toml"),
        )
        .unwrap();
        assert_ne!(
            k,
            key(&listed, &rest(&signers, &other, &tz)),
            "another policy"
        );
        other.retention = cfg.retention.clone();
        assert_eq!(k, key(&listed, &rest(&signers, &other, &tz)));
        other.sources.clear();
        assert_ne!(
            k,
            key(&listed, &rest(&signers, &other, &tz)),
            "other sources"
        );
    }
}
