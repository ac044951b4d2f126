//! Snapshots: manifests, trees, listing and selecting (`latest`, id prefixes,
//! host/tag/path filters), and the retention policy of `forget`.

pub mod manifest;
pub mod retention;
pub mod timefmt;
pub mod tree;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repo::Repo;
pub use manifest::{Layout, Snapshot, Summary};

/// Filters of `snapshots` and of `latest`.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this host.
    pub host: Option<String>,
    /// Snapshots carrying all these tags.
    pub tags: Vec<String>,
    /// Snapshots whose paths include all of these.
    pub paths: Vec<String>,
    /// Snapshots carrying none of these tags (`restore latest` skips
    /// `pre-restore` safety snapshots).
    pub skip_tags: Vec<String>,
}

impl Filter {
    /// Does `s` pass?
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.host.as_ref().is_none_or(|h| &s.host == h)
            && self.tags.iter().all(|t| s.tags.contains(t))
            && !self.skip_tags.iter().any(|t| s.tags.contains(t))
            && self
                .paths
                .iter()
                .all(|p| s.paths.iter().any(|sp| sp == p.as_bytes()))
    }

    /// The filter in words for a message: ` (tag db, host h, not tagged
    /// pre-restore)`, or `""` when it passes everything.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.tags.iter().map(|t| format!("tag {t}")));
        parts.extend(self.host.iter().map(|h| format!("host {h}")));
        parts.extend(self.paths.iter().map(|p| format!("path {p}")));
        parts.extend(self.skip_tags.iter().map(|t| format!("not tagged {t}")));
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    }
}

/// Every snapshot id in the repository.
pub fn ids(repo: &Repo) -> Result<Vec<SnapshotId>> {
    Ok(repo
        .list_names("snapshots")?
        .iter()
        .filter_map(|n| SnapshotId::from_hex(n))
        .collect())
}

/// Delete manifests, then fsync `snapshots/` (the caller has recorded them
/// as forgotten first, GC-6). A manifest already gone is fine. They leave
/// this machine's record of seen snapshots first (repo/seen.rs).
pub fn remove(repo: &Repo, ids: &[SnapshotId]) -> Result<()> {
    crate::repo::seen::removed(repo, ids);
    for id in ids {
        repo.delete(&format!("snapshots/{}", id.to_hex()))?;
    }
    Ok(())
}

/// Snapshots this machine saw that are gone, and that no gc state records
/// as forgotten (repo/seen.rs; threat-model.md "Rollback and deletion"):
/// the snapshots are listed first, then the gc state read, so a concurrent
/// forget (which records before it deletes, GC-6) is never mistaken for a
/// loss. The record is updated with what is listed now.
pub fn vanished(repo: &Repo) -> Result<Vec<SnapshotId>> {
    let listed = ids(repo)?;
    let state = crate::repo::gcstate::load(repo)?;
    let forgotten = state.forgotten.keys().copied().collect();
    Ok(crate::repo::seen::observe(repo, &listed, &forgotten))
}

/// Snapshots with their ids.
pub type Listed = Vec<(SnapshotId, Snapshot)>;

/// Every readable snapshot, oldest first; unreadable manifests are
/// reported to the repository's events as warnings and skipped.
pub fn readable(repo: &Repo) -> Result<Listed> {
    let (list, bad) = list(repo)?;
    for e in &bad {
        repo.events()
            .warning(&format!("skipping unreadable snapshot: {e}"));
    }
    Ok(list)
}

/// Every readable snapshot, oldest first, and the errors of the manifests
/// that failed their checks (each naming its file). One damaged manifest
/// must not block listing, `latest` or the next backup: callers report the
/// errors and go on with the rest.
pub fn list(repo: &Repo) -> Result<(Listed, Vec<Error>)> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for id in ids(repo)? {
        match Snapshot::load(repo, &id) {
            Ok(s) => out.push((id, s)),
            // removed (forget, tag) between listing and reading
            Err(e) if e.is_not_found() => {}
            Err(e) => bad.push(e),
        }
    }
    out.sort_by(|a, b| a.1.time_unix_ns.cmp(&b.1.time_unix_ns).then(a.0.cmp(&b.0)));
    Ok((out, bad))
}

/// How far after this machine's clock a snapshot may be dated and still
/// be `latest` (write-only.md "Future dates"): clocks drift; a snapshot
/// an hour ahead was made by a wrong clock or forged to push real ones
/// out of retention buckets.
pub const FUTURE_SLACK_NS: i64 = 3600 * 1_000_000_000;

/// Whether snapshot `s` is dated more than [`FUTURE_SLACK_NS`] after now:
/// never `latest` nor a parent; a warning naming it goes to `warnings`.
pub fn skip_future(id: &SnapshotId, s: &Snapshot, warnings: &mut Vec<String>) -> bool {
    let future = s.time_unix_ns > crate::sys::now_ns().saturating_add(FUTURE_SLACK_NS);
    if future {
        warnings.push(format!(
            "snapshot {} is dated {}, in the future: not taken as `latest`{}",
            id.short(),
            s.time_string(),
            s.writer
                .as_ref()
                .map(|k| format!(" (written by write-only key {k})"))
                .unwrap_or_default()
        ));
    }
    future
}

/// The ids of the manifests write-only key `key` signed (`key remove`
/// keeps them valid: write-only.md "Removing a write-only key"). A
/// manifest that does not read now (forged, damaged) is not kept valid:
/// it could not be restored before the removal either; each is reported.
pub fn signed_by(repo: &Repo, key: &crate::id::KeyId) -> Result<Vec<[u8; 32]>> {
    let (list, bad) = list(repo)?;
    for e in &bad {
        repo.events()
            .warning(&format!("not kept valid (it does not read): {e}"));
    }
    Ok(list
        .into_iter()
        .filter(|(_, s)| s.writer.as_ref() == Some(key))
        .map(|(id, _)| id.0)
        .collect())
}

/// [`list`] through this machine's manifest cache (`cache::ManifestCache`):
/// the ids are listed from the repository, and only manifests not in the
/// cache are read, checked and added to it; ids no longer listed leave it.
/// For what runs often and only reads manifests (`status`, a backup's
/// search for its parent): `check`, `repair` and the commands that remove
/// or rewrite snapshots read the manifests themselves, with [`list`].
pub fn list_cached(repo: &Repo) -> Result<(Listed, Vec<Error>)> {
    if crate::cache::ManifestCache::for_repo(&repo.config().repo_id).is_none() {
        return list(repo);
    }
    list_cached_from(repo, stamps(repo)?)
}

/// Every manifest listed, by id (sorted), with what the storage says of
/// its file (`cache::ManifestStamp`: size and time): a cached body or
/// figure is used only for the file it was read from.
pub fn stamps(repo: &Repo) -> Result<Vec<(SnapshotId, crate::cache::ManifestStamp)>> {
    Ok(repo
        .list_files("snapshots")?
        .into_iter()
        .filter_map(|(name, l)| {
            let mtime = l
                .modified
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(-1, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            Some((SnapshotId::from_hex(&name)?, (l.size, mtime)))
        })
        .collect())
}

/// [`list_cached`] of a listing already made with [`stamps`].
pub fn list_cached_from(
    repo: &Repo,
    listed: Vec<(SnapshotId, crate::cache::ManifestStamp)>,
) -> Result<(Listed, Vec<Error>)> {
    let Some(cache) = crate::cache::ManifestCache::for_repo(&repo.config().repo_id) else {
        return list(repo);
    };
    let mut cached = cache.load();
    let mut fresh = std::collections::BTreeMap::new();
    let mut out = Vec::with_capacity(listed.len());
    let mut bad = Vec::new();
    let mut changed = false;
    // a write-only key's manifest is checked against the keys again, from
    // the cache too: a removal since must refuse it (write-only.md)
    let signers = repo.signers()?;
    for (id, stamp) in listed {
        let object = || format!("snapshots/{}", id.to_hex());
        let hit = cached.remove(&id).and_then(|(was, (v, b))| {
            if was != stamp {
                return None;
            }
            let s = manifest::decode(v, &b, &object(), &id.0, &signers).ok()?;
            Some((s, (v, b)))
        });
        let (s, body) = match hit {
            Some(h) => h,
            None => match Snapshot::load_body(repo, &id) {
                Ok(h) => {
                    changed = true;
                    h
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    bad.push(e);
                    continue;
                }
            },
        };
        fresh.insert(id, (stamp, body));
        out.push((id, s));
    }
    if changed || !cached.is_empty() {
        cache.save(&fresh);
    }
    out.sort_by(|a, b| a.1.time_unix_ns.cmp(&b.1.time_unix_ns).then(a.0.cmp(&b.0)));
    Ok((out, bad))
}

/// One error for a list of unreadable manifests: the first, with a count
/// of the others.
pub fn first_error(mut bad: Vec<Error>) -> Option<Error> {
    if bad.is_empty() {
        return None;
    }
    let more = bad.len() - 1;
    let first = bad.swap_remove(0);
    Some(match (first, more) {
        (e, 0) => e,
        (Error::Corrupt { object, detail }, n) => Error::Corrupt {
            object,
            detail: format!("{detail} (and {n} more unreadable snapshots)"),
        },
        (e, _) => e,
    })
}

/// Resolve `latest` (with `filter`) or a unique id prefix. For `latest`,
/// unreadable manifests are skipped and described in `warnings`.
pub fn resolve(
    repo: &Repo,
    spec: &str,
    filter: &Filter,
    warnings: &mut Vec<String>,
) -> Result<(SnapshotId, Snapshot)> {
    if spec == "latest" {
        let (list, bad) = list(repo)?;
        warnings.extend(
            bad.iter()
                .map(|e| format!("skipping unreadable snapshot: {e}")),
        );
        return list
            .into_iter()
            .rev()
            .filter(|(id, s)| !skip_future(id, s, warnings))
            .find(|(_, s)| filter.matches(s))
            .ok_or_else(|| {
                first_error(bad).unwrap_or_else(|| Error::SnapshotNotFound("latest".into()))
            });
    }
    let id = resolve_id(repo, spec)?;
    Ok((id, Snapshot::load(repo, &id)?))
}

/// The one snapshot whose id starts with the hex prefix `spec`, without
/// reading its manifest.
pub fn resolve_id(repo: &Repo, spec: &str) -> Result<SnapshotId> {
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Invalid(format!(
            "{spec:?} is not a snapshot id (hex prefix) or `latest`"
        )));
    }
    let spec_l = spec.to_ascii_lowercase();
    let found: Vec<SnapshotId> = ids(repo)?
        .into_iter()
        .filter(|id| id.to_hex().starts_with(&spec_l))
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err(Error::SnapshotNotFound(spec.into())),
        _ => Err(Error::Invalid(format!(
            "snapshot prefix {spec} is ambiguous ({} matches)",
            found.len()
        ))),
    }
}

/// Resolve snapshot specs (id prefixes or `latest`) to manifests, each
/// once, in the order given; manifests skipped as unreadable on the way
/// are reported to the repository's events as warnings.
pub fn resolve_all(repo: &Repo, specs: &[String]) -> Result<Listed> {
    let mut out: Listed = Vec::new();
    for spec in specs {
        let mut skipped = Vec::new();
        let (id, s) = resolve(repo, spec, &Filter::default(), &mut skipped)?;
        for w in skipped {
            repo.events().warning(&w);
        }
        if !out.iter().any(|(i, _)| *i == id) {
            out.push((id, s));
        }
    }
    Ok(out)
}
