//! Gc state files `gc/<id>` (format-spec/gc.md "Gc state files"): which
//! packs are condemned since when, which were deleted (so that an index
//! elsewhere drops them instead of reporting them missing), and which
//! snapshots were removed recently (their trees stay gc roots for a grace
//! period). Create-only; the state is the union of every readable file.

use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::object::ObjectKind;
use crate::repo::Repo;
use bincode::{Decode, Encode};
use std::collections::BTreeMap;
use std::time::Duration;

/// A pack and a time: when it was condemned, or when it was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PackTime {
    /// The pack.
    pub pack: PackId,
    /// The time (Unix ns).
    pub unix_ns: i64,
}

/// A removed snapshot manifest whose tree stays a root for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Forgotten {
    /// The removed manifest.
    pub snapshot: SnapshotId,
    /// Its root tree; `None` when the manifest was unreadable.
    pub tree: Option<BlobId>,
    /// When it was removed (Unix ns).
    pub since_unix_ns: i64,
}

/// One `gc/<id>` file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct GcState {
    /// When the file was written (Unix ns).
    pub time_unix_ns: i64,
    /// The host that wrote it.
    pub host: String,
    /// Condemned packs (since when), sorted by pack id, unique.
    pub condemned: Vec<PackTime>,
    /// Removed manifests, sorted by snapshot id, unique.
    pub forgotten: Vec<Forgotten>,
    /// Deleted packs (when), sorted by pack id, unique; kept for
    /// [`TOMBSTONE_DAYS`].
    pub deleted: Vec<PackTime>,
}

/// The union of the readable gc state files.
#[derive(Debug, Default)]
pub struct State {
    /// The files read (so a gc run can remove exactly them).
    pub files: Vec<String>,
    /// Condemned packs with the earliest `since` of any file.
    pub condemned: BTreeMap<PackId, i64>,
    /// Removed manifests with the earliest `since` of any file.
    pub forgotten: BTreeMap<SnapshotId, (Option<BlobId>, i64)>,
    /// Deleted packs with the earliest time of any file.
    pub deleted: BTreeMap<PackId, i64>,
    /// Files that did not decode, each error naming its file.
    pub unreadable: Vec<Error>,
}

/// How long gc keeps recording a deleted pack, so that an index that has
/// not been reconciled since drops it silently (format-spec/gc.md).
pub const TOMBSTONE_DAYS: i64 = 90;

/// The default grace period (format-spec/gc.md): 23 hours.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(23 * 3600);

/// The grace period from `STRATA_GC_GRACE` (a humantime duration, e.g.
/// `5s`, `23h`), else [`DEFAULT_GRACE`].
pub fn grace_from_env() -> Result<Duration> {
    match std::env::var("STRATA_GC_GRACE") {
        Ok(v) if !v.is_empty() => humantime::parse_duration(&v)
            .map_err(|e| Error::Invalid(format!("STRATA_GC_GRACE={v:?}: {e}"))),
        _ => Ok(DEFAULT_GRACE),
    }
}

/// How long a backup may run between reading the gc state and publishing
/// its snapshot: grace minus min(1 h, grace/4); `None` (no limit) when the
/// grace is zero (format-spec/gc.md "Why two phases").
pub fn backup_limit(grace: Duration) -> Option<Duration> {
    if grace.is_zero() {
        return None;
    }
    Some(grace - (grace / 4).min(Duration::from_secs(3600)))
}

/// A start time whose elapsed time counts a suspended machine too: the
/// larger of monotonic time (immune to clock steps) and wall-clock time
/// (which runs on while the machine sleeps).
#[derive(Clone, Copy, Debug)]
pub struct Since {
    mono: std::time::Instant,
    wall: std::time::SystemTime,
}

impl Since {
    /// Now.
    pub fn now() -> Since {
        Since {
            mono: std::time::Instant::now(),
            wall: std::time::SystemTime::now(),
        }
    }
    /// Time since then.
    pub fn elapsed(&self) -> Duration {
        let wall = self.wall.elapsed().unwrap_or_default();
        self.mono.elapsed().max(wall)
    }
}

/// Before publishing a manifest whose blobs were chosen since `since` (when
/// the gc state was read): fail if that took longer than a concurrent gc
/// allows (format-spec/gc.md "Why two phases").
pub fn check_publish(since: &Since) -> Result<()> {
    let Some(limit) = backup_limit(grace_from_env()?) else {
        return Ok(());
    };
    let took = since.elapsed();
    if took <= limit {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{} passed since the gc state was read, more than the {} a concurrent gc allows; \
         nothing was published (what was stored is kept and reused: run it again)",
        humantime::format_duration(Duration::from_secs(took.as_secs())),
        humantime::format_duration(limit)
    )))
}

/// Read every gc state file. A missing `gc/` directory is an empty state.
pub fn load(repo: &Repo) -> Result<State> {
    let mut st = State::default();
    let names: Vec<String> = repo
        .list_names("gc")?
        .into_iter()
        .filter(|n| crate::id::parse_hex32(n).is_some())
        .collect();
    for name in names {
        let object = format!("gc/{name}");
        // None: removed by a concurrent gc between listing and reading
        let Some(bytes) = repo.read_opt(&object)? else {
            continue;
        };
        match decode(repo, &bytes, &name, &object) {
            Ok(s) => {
                merge(&mut st, &s);
                st.files.push(name);
            }
            Err(e) => st.unreadable.push(e),
        }
    }
    Ok(st)
}

fn decode(repo: &Repo, bytes: &[u8], name: &str, object: &str) -> Result<GcState> {
    let (s, id): (GcState, _) = repo.open_file(ObjectKind::GcState, bytes, object)?;
    if crate::id::to_hex(&id) != name {
        return Err(Error::corrupt(
            object,
            "content does not match the file name",
        ));
    }
    let sorted = s.condemned.windows(2).all(|w| w[0].pack < w[1].pack)
        && s.forgotten
            .windows(2)
            .all(|w| w[0].snapshot < w[1].snapshot);
    if !sorted {
        return Err(Error::corrupt(object, "entries not sorted or not unique"));
    }
    Ok(s)
}

fn merge(st: &mut State, s: &GcState) {
    for (list, map) in [
        (&s.condemned, &mut st.condemned),
        (&s.deleted, &mut st.deleted),
    ] {
        for c in list {
            let e = map.entry(c.pack).or_insert(c.unix_ns);
            *e = (*e).min(c.unix_ns);
        }
    }
    for f in &s.forgotten {
        let e = st
            .forgotten
            .entry(f.snapshot)
            .or_insert((f.tree, f.since_unix_ns));
        e.1 = e.1.min(f.since_unix_ns);
        if e.0.is_none() {
            e.0 = f.tree;
        }
    }
}

fn pack_times(m: &BTreeMap<PackId, i64>) -> Vec<PackTime> {
    m.iter()
        .map(|(&pack, &unix_ns)| PackTime { pack, unix_ns })
        .collect()
}

impl GcState {
    /// A state file of this host, now, from sorted maps.
    pub fn new(
        condemned: &BTreeMap<PackId, i64>,
        forgotten: &BTreeMap<SnapshotId, (Option<BlobId>, i64)>,
        deleted: &BTreeMap<PackId, i64>,
    ) -> GcState {
        GcState {
            time_unix_ns: crate::sys::now_ns(),
            host: crate::sys::hostname(),
            condemned: pack_times(condemned),
            deleted: pack_times(deleted),
            forgotten: forgotten
                .iter()
                .map(|(&snapshot, &(tree, since_unix_ns))| Forgotten {
                    snapshot,
                    tree,
                    since_unix_ns,
                })
                .collect(),
        }
    }

    /// Is there anything to record?
    pub fn is_empty(&self) -> bool {
        self.condemned.is_empty() && self.forgotten.is_empty() && self.deleted.is_empty()
    }

    /// Write this state as a new `gc/<id>` file, durably and create-only
    /// (INV-1, INV-5). Returns the file name.
    pub fn save(&self, repo: &Repo) -> Result<String> {
        repo.require_format_2()?;
        let (bytes, id) = repo.seal_file(ObjectKind::GcState, self)?;
        let name = crate::id::to_hex(&id);
        // format 3: what write-only hosts must honour, before the state
        // that it mirrors (a crash between leaves more condemned, never less)
        super::coord::save(
            repo,
            &name,
            self.time_unix_ns,
            self.condemned.iter().map(|p| (p.pack, p.unix_ns)).collect(),
            self.deleted.iter().map(|p| p.pack).collect(),
        )?;
        // INV-5: create-only; the name is the content's id.
        repo.write_new(&format!("gc/{name}"), &bytes)?;
        Ok(name)
    }
}

/// Remove gc state files by name (after a newer file that supersedes them
/// is durable: GC-5), each durably.
pub fn remove_files(repo: &Repo, names: &[String]) -> Result<()> {
    for n in names {
        repo.delete(&format!("gc/{n}"))?;
    }
    super::coord::remove(repo, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_leaves_a_margin() {
        let h = Duration::from_secs(3600);
        assert_eq!(backup_limit(23 * h), Some(22 * h));
        assert_eq!(
            backup_limit(Duration::from_secs(8)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(backup_limit(Duration::ZERO), None);
    }

    #[test]
    fn hostile_counts_are_bounded_errors() {
        // time 0, host "", then a condemned count of 10^12 (varint 253 + u64)
        let mut body = vec![0u8, 0, 253];
        body.extend_from_slice(&1_000_000_000_000u64.to_le_bytes());
        let r: Result<GcState> = crate::object::decode_body(&body, "gc/x");
        assert!(r.is_err());
        // and a host length of 2^64-1
        let mut body = vec![0u8, 253];
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        let r: Result<GcState> = crate::object::decode_body(&body, "gc/x");
        assert!(r.is_err());
    }

    #[test]
    fn union_keeps_the_earliest_since() {
        let p = PackId([1; 32]);
        let mut st = State::default();
        for since in [5, 3, 9] {
            let s = GcState {
                condemned: vec![PackTime {
                    pack: p,
                    unix_ns: since,
                }],
                ..GcState::default()
            };
            merge(&mut st, &s);
        }
        assert_eq!(st.condemned.get(&p), Some(&3));
    }
}
