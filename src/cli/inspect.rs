//! `ls`, `cat`, `find`, `diff`, `stats`: read-only views of snapshots. Each
//! reads blobs through [`crate::read::BlobReader::reporting`], which first reconciles the
//! index with the packs (format-spec/index.md).

use super::args::{CatArgs, DiffArgs, FindArgs, LsArgs, StatsArgs, StatsMode};
use super::{exit, output};
use crate::error::{Error, IoContext, Result};
use crate::id::{BlobId, PackId, SnapshotId};
use crate::inspect;
use crate::paths;
use crate::repo::Repo;
use crate::snapshot::tree::{Entry, EntryKind, Tree};
use crate::snapshot::{self, Snapshot};
use serde_json::{Value, json};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Resolve a snapshot spec, warning about skipped manifests.
fn resolve(repo: &Repo, spec: &str, filter: &snapshot::Filter) -> Result<(SnapshotId, Snapshot)> {
    let mut skipped = Vec::new();
    let r = snapshot::resolve(repo, spec, filter, &mut skipped);
    for w in &skipped {
        repo.events().warning(w);
    }
    r
}

/// Resolve the spec of a `SNAPSHOT[:PATH]` (`latest:PATH`: the newest
/// snapshot holding PATH), warning about skipped manifests.
fn resolve_at(
    reader: &crate::read::BlobReader,
    spec: &str,
    path: Option<&[u8]>,
    filter: &snapshot::Filter,
) -> Result<(SnapshotId, Snapshot)> {
    let mut skipped = Vec::new();
    let r = inspect::latest::resolve(reader, spec, path, filter, &mut skipped);
    for w in &skipped {
        reader.repo().events().warning(w);
    }
    r
}

/// The snapshots `find` and `stats` go through: those named, else every
/// readable one that passes `filter`; oldest first.
fn chosen(
    repo: &Repo,
    specs: &[String],
    filter: &snapshot::Filter,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if specs.is_empty() {
        let mut all = crate::snapshot::readable(repo)?;
        all.retain(|(_, s)| filter.matches(s));
        return Ok(all);
    }
    let mut v = Vec::new();
    for s in specs {
        let r = resolve(repo, s, filter)?;
        if !v.iter().any(|(id, _): &(SnapshotId, Snapshot)| *id == r.0) {
            v.push(r);
        }
    }
    v.sort_by_key(|(_, s)| s.time_unix_ns);
    Ok(v)
}

/// `SNAPSHOT[:PATH]`: the snapshot spec (text) and the path (bytes, maybe
/// escaped as `ls` prints it); `None` without a `:`.
pub(super) fn split_target(t: &std::ffi::OsStr) -> Result<(String, Option<Vec<u8>>)> {
    let b = t.as_bytes();
    let (spec, path) = match b.iter().position(|&c| c == b':') {
        Some(i) => (&b[..i], Some(b[i + 1..].to_vec())),
        None => (b, None),
    };
    let spec = std::str::from_utf8(spec)
        .map_err(|_| Error::Invalid(format!("{}: not a snapshot", paths::escape(spec))))?;
    Ok((spec.to_string(), path))
}

/// A stored path as printed (README "Paths, names and patterns").
pub(super) fn shown(p: &Path) -> String {
    paths::escape(p.as_os_str().as_bytes())
}

fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Dir => "dir",
        EntryKind::Symlink => "symlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDev => "chardev",
        EntryKind::BlockDev => "blockdev",
        EntryKind::Socket => "socket",
    }
}

/// `drwxr-xr-x` from kind and mode bits.
fn mode_string(e: &Entry) -> String {
    let t = match e.kind() {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::CharDev => 'c',
        EntryKind::BlockDev => 'b',
        EntryKind::Socket => 's',
    };
    let m = e.mode;
    let mut s = String::with_capacity(10);
    s.push(t);
    for (i, special, ch) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> i) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (m & special != 0, x) {
            (true, true) => ch,
            (true, false) => ch.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC) for any i64 seconds: years before 1970 or
/// after 9999 print as such, never clamp or panic (civil-from-days, after
/// Howard Hinnant's algorithm).
pub(super) fn utc_string(sec: i64) -> String {
    let (days, secs) = (sec.div_euclid(86_400), sec.rem_euclid(86_400));
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn mtime_string(e: &Entry) -> String {
    utc_string(e.mtime_sec)
}

/// Size as `ls(1)` shows it: a symlink's is its target's length.
fn shown_size(e: &Entry) -> u64 {
    if e.kind() == EntryKind::Symlink {
        e.target.len() as u64
    } else {
        e.size
    }
}

fn entry_json(path: &Path, e: &Entry) -> Value {
    let mut v = json!({
        "path": shown(path),
        "name": paths::escape(&e.name),
        "type": kind_name(e.kind()),
        "mode": format!("{:o}", e.mode),
        "uid": e.uid,
        "gid": e.gid,
        "size": shown_size(e),
        "mtime": mtime_string(e),
        // null when it does not fit in i64 nanoseconds (beyond year 2262)
        "mtime_unix_ns": e.mtime_sec.checked_mul(1_000_000_000).and_then(|n| n.checked_add(i64::from(e.mtime_nsec))),
    });
    if e.kind() == EntryKind::Symlink {
        v["target"] = json!(paths::escape(&e.target));
    }
    v
}

fn ls_line(out: &mut dyn Write, path: &Path, e: &Entry, a: &LsArgs) -> Result<()> {
    let stdout = Path::new("<stdout>");
    if a.json {
        return writeln!(out, "{}", entry_json(path, e)).at(stdout);
    }
    if !a.long {
        return writeln!(out, "{}", shown(path)).at(stdout);
    }
    let link = if e.kind() == EntryKind::Symlink {
        format!(" -> {}", paths::escape(&e.target))
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} {:>6} {:>6} {:>12} {} {}{link}",
        mode_string(e),
        e.uid,
        e.gid,
        shown_size(e),
        mtime_string(e),
        shown(path)
    )
    .at(stdout)
}

pub fn ls(repo: &Repo, a: &LsArgs) -> Result<i32> {
    let (spec, path) = split_target(&a.target)?;
    let reader = crate::read::BlobReader::reporting(repo)?;
    let filter = a.source.narrow(a.filter.to_filter());
    let (_, snap) = resolve_at(&reader, &spec, path.as_deref(), &filter)?;
    let found = inspect::locate(&reader, &snap, path.as_deref().unwrap_or(b"/"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match found.listing(&reader, &snap)? {
        None => {
            if let Some(e) = &found.entry {
                ls_line(&mut out, &found.path, e, a)?;
            }
        }
        Some(tree) => {
            inspect::walk(&reader, &tree, &found.path, &mut |p, e| {
                ls_line(&mut out, p, e, a)?;
                Ok(a.recursive)
            })?;
        }
    }
    out.flush().at(Path::new("<stdout>"))?;
    Ok(exit::OK)
}

pub fn cat(repo: &Repo, a: &CatArgs) -> Result<i32> {
    if a.raw {
        return cat_raw(repo, a);
    }
    if a.id.is_some() {
        return Err(Error::Invalid(
            "give one SNAPSHOT:PATH (an object id goes with --raw)".into(),
        ));
    }
    let (spec, Some(path)) = split_target(&a.target)? else {
        return Err(Error::Invalid(format!(
            "{}: give SNAPSHOT:PATH, e.g. latest:/srv/app/config.toml",
            paths::escape(a.target.as_bytes())
        )));
    };
    let reader = crate::read::BlobReader::reporting(repo)?;
    let filter = a.source.narrow(a.filter.to_filter());
    let (_, snap) = resolve_at(&reader, &spec, Some(&path), &filter)?;
    let found = inspect::locate(&reader, &snap, &path)?;
    let e = match &found.entry {
        Some(e) if e.kind() == EntryKind::File => e,
        Some(e) if e.kind() == EntryKind::Symlink => {
            return Err(Error::Invalid(format!(
                "{} is a symlink to {}",
                shown(&found.path),
                paths::escape(&e.target)
            )));
        }
        Some(e) if e.kind() != EntryKind::Dir => {
            return Err(Error::Invalid(format!(
                "{} is not a regular file",
                shown(&found.path)
            )));
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{} is a directory; list it with `strata ls {}:{}`",
                shown(&found.path),
                spec,
                shown(&found.path)
            )));
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    inspect::cat(&reader, e, &mut out)?;
    Ok(exit::OK)
}

fn parse_id(kind: &str, id: Option<&String>) -> Result<[u8; 32]> {
    let id = id.ok_or_else(|| Error::Invalid(format!("cat --raw {kind} needs an id")))?;
    crate::id::parse_hex32(id)
        .ok_or_else(|| Error::Invalid(format!("{id:?} is not a 64-digit hex id")))
}

fn tree_json(t: &Tree) -> Value {
    let entries: Vec<Value> = t
        .entries
        .iter()
        .map(|e| {
            let mut v = entry_json(Path::new(&e.name_lossy()), e);
            v["content"] = json!(e.content.iter().map(|c| c.to_hex()).collect::<Vec<_>>());
            v["inline"] = json!(e.inline.len());
            v["subtree"] = json!(e.subtree.map(|s| s.to_hex()));
            v["inode"] = json!(e.inode);
            v["nlink"] = json!(e.nlink);
            v["extents"] = json!(e.extents.iter().map(|x| [x.offset, x.len]).collect::<Vec<_>>());
            v["xattrs"] = json!(
                e.xattrs
                    .iter()
                    .map(|x| json!({"name": String::from_utf8_lossy(&x.name), "value": String::from_utf8_lossy(&x.value)}))
                    .collect::<Vec<_>>()
            );
            v
        })
        .collect();
    json!({"entries": entries, "parts": t.parts.iter().map(|p| p.to_hex()).collect::<Vec<_>>()})
}

fn cat_raw(repo: &Repo, a: &CatArgs) -> Result<i32> {
    let v = match a.target.to_str().unwrap_or_default() {
        "config" => {
            serde_json::to_value(repo.config()).map_err(|e| Error::Internal(e.to_string()))?
        }
        "snapshot" => {
            let spec =
                a.id.as_deref()
                    .ok_or_else(|| Error::Invalid("cat --raw snapshot needs an id".into()))?;
            let (id, s) = snapshot::resolve(repo, spec, &Default::default(), &mut Vec::new())?;
            json!({
                "id": id.to_hex(), "time": s.time_string(), "time_unix_ns": s.time_unix_ns,
                "host": s.host, "username": s.username, "paths": s.path_strings(), "tags": s.tags,
                "tree": s.tree.to_hex(), "parent": s.parent.map(|p| p.to_hex()),
                "summary": s.summary, "program": s.program,
            })
        }
        "tree" => {
            let id = BlobId(parse_id("tree", a.id.as_ref())?);
            let reader = crate::read::BlobReader::reporting(repo)?;
            tree_json(&Tree::decode(
                &reader.read_kind(&id, Some(crate::blob::BlobKind::Tree))?,
                &id,
            )?)
        }
        "blob" => {
            let id = BlobId(parse_id("blob", a.id.as_ref())?);
            let reader = crate::read::BlobReader::reporting(repo)?;
            output::bytes(&reader.read(&id)?)?;
            return Ok(exit::OK);
        }
        "pack" => {
            let id = PackId(parse_id("pack", a.id.as_ref())?);
            serde_json::to_value(inspect::raw::pack(repo, &id)?)
                .map_err(|e| Error::Internal(e.to_string()))?
        }
        other => {
            return Err(Error::Invalid(format!(
                "cat --raw {other:?}: expected config, snapshot, tree, blob or pack"
            )));
        }
    };
    output::line(&serde_json::to_string_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?)?;
    Ok(exit::OK)
}

pub fn find(repo: &Repo, a: &FindArgs) -> Result<i32> {
    let pats = paths::Patterns::new(&a.globs)?;
    let mut snaps = chosen(repo, &a.snapshots, &a.source.narrow(Default::default()))?;
    if let Some(n) = a.newest {
        let skip = snaps.len().saturating_sub(n);
        snaps.drain(..skip);
    }
    let reader = crate::read::BlobReader::reporting(repo)?;
    let mut memo = inspect::find::Memo::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let so = Path::new("<stdout>");
    let mut found = 0usize;
    for (id, s) in &snaps {
        let matches = inspect::find::find_in(&reader, &s.tree, &pats, b"/", &mut memo, 0)?;
        for (rel, e) in matches.iter() {
            found += 1;
            let path = Path::new("/").join(std::ffi::OsStr::from_bytes(rel));
            if a.json {
                let mut v = entry_json(&path, e);
                v["snapshot"] = json!(id.to_hex());
                v["snapshot_time"] = json!(s.time_string());
                writeln!(out, "{v}").at(so)?;
            } else {
                writeln!(
                    out,
                    "{}  {}  {:>12}  {}  {}",
                    id.short(),
                    s.time_string(),
                    e.size,
                    mtime_string(e),
                    shown(&path)
                )
                .at(so)?;
            }
        }
    }
    out.flush().at(so)?;
    if found == 0 && !a.json {
        eprintln!(
            "strata: no match for {} in {} snapshots",
            a.globs.join(" "),
            snaps.len()
        );
    }
    Ok(exit::OK)
}

pub fn diff(repo: &Repo, a: &DiffArgs) -> Result<i32> {
    let filter = a.source.narrow(Default::default());
    let (ia, sa) = resolve(repo, &a.a, &filter)?;
    let (ib, sb) = resolve(repo, &a.b, &filter)?;
    let reader = crate::read::BlobReader::reporting(repo)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let so = Path::new("<stdout>");
    let mut t = inspect::diff::Totals::default();
    inspect::diff::diff(
        &reader,
        &sa.tree,
        &sb.tree,
        Path::new("/"),
        &mut |c, p, old, new| {
            t.count(c, old, new);
            if a.json {
                writeln!(
                    out,
                    "{}",
                    json!({"change": c.marker().to_string(), "path": shown(p)})
                )
                .at(so)
            } else {
                writeln!(out, "{}    {}", c.marker(), shown(p)).at(so)
            }
        },
    )?;
    if a.json {
        writeln!(
            out,
            "{}",
            json!({"totals": {"from": ia.to_hex(), "to": ib.to_hex(), "added": t.added, "removed": t.removed,
                "modified": t.modified, "type_changed": t.type_changed, "metadata": t.metadata,
                "added_bytes": t.added_bytes, "removed_bytes": t.removed_bytes}})
        )
        .at(so)?;
    } else {
        writeln!(
            out,
            "\n{} -> {}: {} added, {} removed, {} modified, {} type changed, {} metadata only; +{} -{}",
            ia.short(),
            ib.short(),
            t.added,
            t.removed,
            t.modified,
            t.type_changed,
            t.metadata,
            output::size(t.added_bytes),
            output::size(t.removed_bytes)
        )
        .at(so)?;
    }
    out.flush().at(so)?;
    Ok(exit::OK)
}

pub fn stats(repo: &Repo, a: &StatsArgs) -> Result<i32> {
    let snaps: Vec<Snapshot> = chosen(repo, &a.snapshots, &a.source.narrow(Default::default()))?
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let reader = crate::read::BlobReader::reporting(repo)?;
    let st = inspect::stats::stats(&reader, &snaps)?;
    if a.json {
        output::line(&serde_json::to_string(&st).map_err(|e| Error::Internal(e.to_string()))?)?;
        return Ok(exit::OK);
    }
    match a.mode {
        StatsMode::RestoreSize => output::line(&format!(
            "{} snapshots: {} files, {} dirs, {} (restore size)",
            st.snapshots,
            st.files,
            st.dirs,
            output::size(st.restore_size)
        ))?,
        StatsMode::RawData => output::line(&format!(
            "{} snapshots: {} data blobs and {} tree blobs in {} packs, {} raw, {} stored; dedup ratio {:.2}, compression ratio {:.2}",
            st.snapshots,
            st.data_blobs,
            st.tree_blobs,
            st.packs,
            output::size(st.raw_size),
            output::size(st.stored_size),
            st.dedup_ratio,
            st.compression_ratio
        ))?,
    }
    output::line(&format!(
        "small files: {} inline in their trees ({}); {} blobs compressed with {} dictionaries (ratio {:.2}, plain zstd {:.2})",
        st.inline_files,
        output::size(st.inline_bytes),
        st.dict_blobs,
        st.dictionaries,
        st.dict_ratio,
        st.zstd_ratio
    ))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::utc_string;

    #[test]
    fn utc_dates_outside_the_usual_range() {
        assert_eq!(utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_string(1_600_000_000), "2020-09-13T12:26:40Z");
        assert_eq!(utc_string(-14_182_940), "1969-07-20T20:17:40Z");
        assert_eq!(utc_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_string(253_402_300_800), "10000-01-01T00:00:00Z");
        assert!(utc_string(i64::MIN).ends_with('Z'));
        assert!(utc_string(i64::MAX).ends_with('Z'));
    }
}
