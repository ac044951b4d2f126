//! `strata forget`: select snapshots, group them, apply the retention policy
//! (`snapshot::retention`, restic 0.17's rules) per group, and remove the
//! manifests no rule keeps: first recorded as forgotten in a gc state file,
//! then deleted (GC-6, format-spec/gc.md "forget").

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::gcstate::GcState;
use crate::repo::lock::Lock;
use crate::snapshot::retention::{self, Item, Policy};
use crate::snapshot::{self, Filter, Snapshot};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;

/// `--group-by`: which fields make a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    /// By host.
    pub host: bool,
    /// By the set of source paths (a stdin source as `/NAME`).
    pub paths: bool,
    /// By the set of tags.
    pub tags: bool,
    /// By the key that wrote it (write-only.md "Retention under attack"):
    /// a write-only key's snapshots apart from everyone else's.
    pub key: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
            key: false,
        }
    }
}

impl GroupBy {
    /// Parse `host,paths,tags` (any subset, comma-separated; empty = one group).
    pub fn parse(s: &str) -> std::result::Result<GroupBy, String> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
            key: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" | "path" => g.paths = true,
                "tags" | "tag" => g.tags = true,
                "key" => g.key = true,
                other => {
                    return Err(format!(
                        "--group-by: unknown field {other:?} (use host, paths, tags, key)"
                    ));
                }
            }
        }
        Ok(g)
    }
}

/// What identifies a group (fields not grouped by are `None`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct GroupKey {
    /// Host.
    pub host: Option<String>,
    /// Sorted source paths.
    pub paths: Option<Vec<String>>,
    /// Sorted tags.
    pub tags: Option<Vec<String>>,
    /// The write-only key that wrote them, or `full` for full keys'.
    pub key: Option<String>,
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths [{}]", p.join(", ")));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("tags [{}]", t.join(", ")));
        }
        if let Some(k) = &self.key {
            parts.push(format!("key {k}"));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The key that wrote `s`, as `forget` shows it: a write-only key's id,
/// else `full`.
pub fn writer_name(s: &Snapshot) -> String {
    s.writer
        .as_ref()
        .map_or_else(|| "full".to_string(), |k| k.to_string())
}

/// A snapshot and the verdict on it.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// Its id.
    pub id: SnapshotId,
    /// Its manifest.
    pub snapshot: Snapshot,
    /// Why it is kept (empty: removed).
    pub reasons: Vec<String>,
    /// The rule behind each reason, in the same order.
    pub rules: Vec<retention::Rule>,
    /// Dated in the future (kept, flagged).
    pub future: bool,
}

/// One group: kept and removed snapshots, newest first.
#[derive(Clone, Debug)]
pub struct Group {
    /// The group.
    pub key: GroupKey,
    /// Kept.
    pub keep: Vec<Verdict>,
    /// Removed.
    pub remove: Vec<Verdict>,
}

/// Validated options of `strata forget` with a policy.
#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    /// The policy.
    pub policy: Policy,
    /// Which snapshots take part.
    pub filter: Filter,
    /// Grouping.
    pub group_by: GroupBy,
    /// Allow removing every snapshot of a group.
    pub allow_empty: bool,
}

/// The source paths a snapshot is grouped and filtered by: its recorded
/// paths (a stdin source recorded as `/NAME`, as restic does); in a
/// format-1 manifest, `-` (stdin) is replaced by `/NAME`, NAME being the
/// stdin source's name in the root tree.
pub fn group_paths(reader: &BlobReader, s: &Snapshot) -> Result<Vec<String>> {
    if s.layout() == crate::snapshot::Layout::Absolute {
        let mut out = s.path_strings();
        out.sort();
        return Ok(out);
    }
    let mut out: Vec<String> = s
        .paths
        .iter()
        .filter(|p| p.as_slice() != b"-")
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if s.paths.iter().any(|p| p.as_slice() == b"-") {
        let others: Vec<&[u8]> = s
            .paths
            .iter()
            .filter(|p| p.as_slice() != b"-")
            .filter_map(|p| std::path::Path::new(std::ffi::OsStr::from_bytes(p)).file_name())
            .map(|n| n.as_bytes())
            .collect();
        let root = reader.tree(&s.tree)?;
        for e in &root.entries {
            if !others.contains(&e.name.as_slice()) {
                out.push(format!("/{}", e.name_lossy()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Apply the policy to every group. Nothing is written.
pub fn plan(
    repo: &Repo,
    opts: &ForgetOptions,
    now_unix_ns: i64,
    tz: &jiff::tz::TimeZone,
) -> Result<Vec<Group>> {
    let (list, bad) = snapshot::list(repo)?;
    if let Some(e) = snapshot::first_error(bad) {
        return Err(e);
    }
    plan_listed(repo, list, opts, now_unix_ns, tz)
}

/// [`plan`] of snapshots already listed (`status` lists them once, through
/// its cache, for every source).
pub fn plan_listed(
    repo: &Repo,
    list: snapshot::Listed,
    opts: &ForgetOptions,
    now_unix_ns: i64,
    tz: &jiff::tz::TimeZone,
) -> Result<Vec<Group>> {
    let reader = BlobReader::new(repo)?;
    let mut groups: BTreeMap<GroupKey, Vec<(SnapshotId, Snapshot)>> = BTreeMap::new();
    for (id, s) in list {
        if let Some(key) = group_of(&reader, &s, opts)? {
            groups.entry(key).or_default().push((id, s));
        }
    }
    let mut out = Vec::new();
    for (key, mut members) in groups {
        members.sort_by(|a, b| newer_first((a.1.time_unix_ns, &a.0), (b.1.time_unix_ns, &b.0)));
        let items: Vec<Item> = members
            .iter()
            .map(|(_, s)| Item {
                time_unix_ns: s.time_unix_ns,
                tags: &s.tags,
            })
            .collect();
        let decisions = retention::apply(&items, &opts.policy, now_unix_ns, tz);
        let mut g = Group {
            key,
            keep: Vec::new(),
            remove: Vec::new(),
        };
        for ((id, snapshot), d) in members.into_iter().zip(decisions) {
            let v = Verdict {
                id,
                snapshot,
                reasons: d.reasons,
                rules: d.rules,
                future: d.future,
            };
            if d.keep { &mut g.keep } else { &mut g.remove }.push(v);
        }
        if g.keep.is_empty() && !g.remove.is_empty() && !opts.allow_empty {
            return Err(Error::Invalid(format!(
                "the policy would remove all {} snapshots of the group {}; nothing was removed \
                 (give --allow-empty to do so)",
                g.remove.len(),
                g.key
            )));
        }
        out.push(g);
    }
    Ok(out)
}

/// The group of `s` under `opts`, `None` when its filter leaves `s` out:
/// what [`plan_listed`] groups by (`status` keeps it per snapshot).
pub fn group_of(
    reader: &BlobReader,
    s: &Snapshot,
    opts: &ForgetOptions,
) -> Result<Option<GroupKey>> {
    let paths = group_paths(reader, s)?;
    if !selected(&opts.filter, s, &paths) {
        return Ok(None);
    }
    let mut tags = s.tags.clone();
    tags.sort();
    tags.dedup();
    let g = &opts.group_by;
    Ok(Some(GroupKey {
        host: g.host.then(|| s.host.clone()),
        paths: g.paths.then_some(paths),
        tags: g.tags.then_some(tags),
        key: g.key.then(|| writer_name(s)),
    }))
}

/// The order of a group's members for the policy: newest first, ties
/// broken by id so that it is reproducible (shared with `status`).
pub fn newer_first(a: (i64, &SnapshotId), b: (i64, &SnapshotId)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.cmp(b.1))
}

/// Does `s` pass the `--host/--tag/--path` filter (paths as grouped)?
fn selected(f: &Filter, s: &Snapshot, paths: &[String]) -> bool {
    f.host.as_ref().is_none_or(|h| &s.host == h)
        && f.tags.iter().all(|t| s.tags.contains(t))
        && f.paths
            .iter()
            .all(|p| paths.contains(p) || s.paths.iter().any(|sp| sp == p.as_bytes()))
}

/// Remove manifests (GC-6): first a gc state file recording each as
/// forgotten with its root tree (so a backup that chose it as parent stays
/// safe for a grace period), durable; then the manifests, then an fsync of
/// `snapshots/`. `lock` (exclusive) is checked before anything is written.
pub fn remove(repo: &Repo, lock: &Lock, victims: &[(SnapshotId, Option<BlobId>)]) -> Result<()> {
    if victims.is_empty() {
        return Ok(());
    }
    let now = crate::sys::now_ns();
    let forgotten = victims
        .iter()
        .map(|(id, tree)| (*id, (*tree, now)))
        .collect();
    lock.check()?;
    GcState::new(&BTreeMap::new(), &forgotten, &BTreeMap::new()).save(repo)?;
    let ids: Vec<SnapshotId> = victims.iter().map(|(id, _)| *id).collect();
    snapshot::remove(repo, &ids)
}

/// Remove every snapshot that the verdicts of `groups` ([`plan`]) remove,
/// through [`remove`] (GC-6); returns how many. `strata forget` and the
/// forget step of `strata run` both apply a plan this way.
pub fn apply(repo: &Repo, lock: &Lock, groups: &[Group]) -> Result<u64> {
    let victims: Vec<_> = groups
        .iter()
        .flat_map(|g| &g.remove)
        .map(|v| (v.id, Some(v.snapshot.tree)))
        .collect();
    remove(repo, lock, &victims)?;
    Ok(victims.len() as u64)
}
