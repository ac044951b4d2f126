//! [`PointInTime`]: a read-only view of a repository on a versioned S3
//! bucket as its object versions stood at one time (`--point-in-time`,
//! format-spec/backend.md "Point-in-time views"; kopia's `--point-in-time`
//! is the model). One ListObjectVersions pass at open: for each key, the
//! newest version whose Last-Modified is at or before the time, unless
//! that is a delete marker (then the key is absent). Every read is a GET of
//! that version id, so later deletions, overwrites and additions, whoever
//! made them, are invisible. Writes and deletes are refused: nothing is
//! ever written through a view of the past.

use super::object::{ObjectStoreBackend, REMOTE_READS};
use super::signed::Version;
use super::{BResult, Backend, BackendError, Listed, RangedRead, check_key, check_prefix};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The version of one key the view shows.
#[derive(Clone, Debug)]
struct Shown {
    version: String,
    size: u64,
    modified: i64,
}

/// A repository as its object versions stood at `at`.
#[derive(Debug, Clone)]
pub struct PointInTime {
    inner: ObjectStoreBackend,
    name: String,
    at: i64,
    objects: Arc<BTreeMap<String, Shown>>,
}

impl PointInTime {
    /// The repository of `inner` as its versions stood at `at` (unix
    /// seconds; S3's Last-Modified has whole seconds, so a change in the
    /// very second `at` counts as made before it).
    pub fn open(inner: ObjectStoreBackend, at: i64) -> BResult<PointInTime> {
        let prefix = inner.key_of_prefix();
        let versions = inner.signed("", |s3, _| async move { s3.list_versions(&prefix).await })?;
        let objects = view(versions, at, |p| inner.key_of(p));
        Ok(PointInTime {
            name: format!("{} at {}", inner.name(), super::lock::s3_date(at)),
            inner,
            at,
            objects: Arc::new(objects),
        })
    }

    /// The time of the view (unix seconds).
    pub fn at(&self) -> i64 {
        self.at
    }

    fn shown(&self, key: &str) -> BResult<&Shown> {
        check_key(key)?;
        self.objects.get(key).ok_or_else(|| BackendError::NotFound {
            backend: self.name.clone(),
            key: key.to_string(),
        })
    }

    fn refused(&self, key: &str) -> BackendError {
        BackendError::Refused {
            backend: self.name.clone(),
            key: key.to_string(),
            why: "a point-in-time view (--point-in-time) is read-only".into(),
        }
    }
}

/// What the view shows: per key, the version with the greatest
/// Last-Modified at or before `at` (on a tie the one listed first: S3
/// lists each key's versions newest first), unless that is a delete
/// marker. `key_of` turns a full path into a repository key (or `None`).
fn view(
    versions: Vec<Version>,
    at: i64,
    key_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, Shown> {
    let mut best: BTreeMap<String, Version> = BTreeMap::new();
    for v in versions {
        if v.modified > at {
            continue;
        }
        let Some(key) = key_of(&v.path) else {
            continue;
        };
        if best.get(&key).is_none_or(|b| v.modified > b.modified) {
            best.insert(key, v);
        }
    }
    best.into_iter()
        .filter(|(_, v)| !v.delete_marker)
        .map(|(k, v)| {
            let shown = Shown {
                version: v.version_id,
                size: v.size,
                modified: v.modified,
            };
            (k, shown)
        })
        .collect()
}

/// Bytes `range` of version `version` of `key` (`size` bytes).
fn read_version(
    store: &ObjectStoreBackend,
    key: &str,
    version: &str,
    size: u64,
    range: Range<u64>,
) -> BResult<Bytes> {
    let out_of_range = || BackendError::OutOfRange {
        backend: store.name().to_string(),
        key: key.to_string(),
        range: range.clone(),
        size,
    };
    if range.start > range.end || range.end > size {
        return Err(out_of_range());
    }
    if range.start == range.end {
        return Ok(Bytes::new());
    }
    let v = version.to_string();
    let r = range.clone();
    let (bytes, _) = store.signed(key, |s3, loc| async move {
        s3.get_version(&loc, &v, Some(r)).await
    })?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(out_of_range());
    }
    Ok(bytes)
}

impl Backend for PointInTime {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &str) -> BResult<Bytes> {
        let s = self.shown(key)?;
        let v = s.version.clone();
        let (bytes, _) = self.inner.signed(key, |s3, loc| async move {
            s3.get_version(&loc, &v, None).await
        })?;
        Ok(bytes)
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> BResult<Bytes> {
        let s = self.shown(key)?;
        read_version(&self.inner, key, &s.version, s.size, range)
    }

    fn size(&self, key: &str) -> BResult<u64> {
        Ok(self.shown(key)?.size)
    }

    fn open_ranged(&self, key: &str) -> BResult<Box<dyn RangedRead>> {
        let s = self.shown(key)?;
        Ok(Box::new(VersionRanged {
            store: self.inner.clone(),
            key: key.to_string(),
            version: s.version.clone(),
            size: s.size,
        }))
    }

    fn remote_reads(&self) -> Option<usize> {
        Some(REMOTE_READS)
    }

    fn put_new(&self, key: &str, _: &[u8]) -> BResult<()> {
        Err(self.refused(key))
    }

    fn put_new_file(&self, key: &str, _: &Path) -> BResult<()> {
        Err(self.refused(key))
    }

    fn put_replace(&self, key: &str, _: &[u8]) -> BResult<()> {
        Err(self.refused(key))
    }

    fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()> {
        check_prefix(prefix)?;
        for (key, s) in self.objects.iter() {
            let under = prefix.is_empty()
                || key
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'));
            if under {
                f(Listed {
                    key: key.clone(),
                    size: s.size,
                    modified: u64::try_from(s.modified)
                        .ok()
                        .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)),
                });
            }
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> BResult<()> {
        Err(self.refused(key))
    }

    fn retention(&self, key: &str) -> BResult<Option<super::Retention>> {
        self.shown(key)?;
        Ok(None)
    }
}

/// One version of an object opened for ranged reads.
#[derive(Debug)]
struct VersionRanged {
    store: ObjectStoreBackend,
    key: String,
    version: String,
    size: u64,
}

impl RangedRead for VersionRanged {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> BResult<()> {
        let b = self.read(offset..offset.saturating_add(buf.len() as u64))?;
        buf.copy_from_slice(&b);
        Ok(())
    }

    fn read(&self, range: Range<u64>) -> BResult<Bytes> {
        read_version(&self.store, &self.key, &self.version, self.size, range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(path: &str, id: &str, modified: i64, marker: bool) -> Version {
        Version {
            path: path.into(),
            version_id: id.into(),
            modified,
            size: id.len() as u64,
            delete_marker: marker,
        }
    }

    #[test]
    fn the_view_is_the_newest_version_at_or_before_the_time_unless_deleted() {
        let all = vec![
            v("p/config", "c2", 300, false),
            v("p/config", "c1", 100, false),
            v("p/snapshots/a", "m", 250, true),
            v("p/snapshots/a", "a1", 100, false),
            v("p/snapshots/b", "b1", 200, false),
            v("p/snapshots/b", "b0", 200, false),
            v("p/snapshots/late", "l1", 201, false),
            v("other/x", "x", 1, false),
        ];
        let key_of = |p: &str| p.strip_prefix("p/").map(str::to_string);
        let at_200 = view(all.clone(), 200, key_of);
        let got: Vec<(&str, &str)> = at_200
            .iter()
            .map(|(k, s)| (k.as_str(), s.version.as_str()))
            .collect();
        // the second of `at` counts; a tie goes to the one listed first
        assert_eq!(
            got,
            [
                ("config", "c1"),
                ("snapshots/a", "a1"),
                ("snapshots/b", "b1")
            ]
        );
        let at_300 = view(all, 300, key_of);
        assert_eq!(at_300["config"].version, "c2");
        assert!(!at_300.contains_key("snapshots/a"), "a delete marker hides");
        assert!(at_300.contains_key("snapshots/late"));
    }
}
