//! `strata forget`, `tag` and `rewrite`: the commands that remove or replace
//! manifests. Options become engine options here; output per group.

use super::args::{ForgetArgs, RewriteArgs, TagArgs};
use super::{exit, output};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::maint::forget::{self, ForgetOptions, Group, GroupBy, Verdict};
use crate::maint::rewrite::{self, RewriteOptions};
use crate::maint::tag::{self, TagChange};
use crate::repo::Repo;
use crate::repo::lock::Lock;
use crate::snapshot::retention::{Count, Policy, parse_tag_list};
use crate::snapshot::{self, Snapshot};
use jiff::tz::TimeZone;
use serde_json::json;

fn policy(a: &ForgetArgs) -> Policy {
    let c = |v: Option<Count>| v.unwrap_or(Count::Off);
    Policy {
        last: c(a.keep_last),
        hourly: c(a.keep_hourly),
        daily: c(a.keep_daily),
        weekly: c(a.keep_weekly),
        monthly: c(a.keep_monthly),
        yearly: c(a.keep_yearly),
        within: a.keep_within,
        within_hourly: a.keep_within_hourly,
        within_daily: a.keep_within_daily,
        within_weekly: a.keep_within_weekly,
        within_monthly: a.keep_within_monthly,
        within_yearly: a.keep_within_yearly,
        keep_tags: a.keep_tags.iter().map(|t| parse_tag_list(t)).collect(),
    }
}

/// Snapshot time in the local zone, as `forget` buckets it.
fn local_time(s: &Snapshot, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(s.time_unix_ns)) {
        Ok(t) => t
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => s.time_string(),
    }
}

pub fn run(repo: &Repo, a: &ForgetArgs, lock: &Lock) -> Result<i32> {
    let policy = policy(a);
    let tz = TimeZone::system();
    // threat-model.md "Rollback and deletion": refused (a dry run warns)
    // while snapshots this machine saw are gone unexplained.
    if a.dry_run {
        let vanished = snapshot::vanished(repo)?;
        if let Some(w) = crate::repo::seen::warning(&vanished) {
            eprintln!("strata: warning: {w}");
        }
    } else {
        crate::maint::vanished::guard(repo, "forget", a.acknowledge_missing)?;
    }
    if !a.snapshots.is_empty() {
        if !policy.is_empty() {
            return Err(Error::Invalid(
                "give snapshot ids or a --keep-* policy, not both".into(),
            ));
        }
        let targets = resolve_ids(repo, &a.snapshots)?;
        return by_id(repo, a, lock, &targets, &tz);
    }
    if policy.is_empty() {
        return Err(Error::Invalid(
            "no policy: give --keep-* options (or snapshot ids to remove)".into(),
        ));
    }
    let opts = ForgetOptions {
        policy,
        filter: a.filter.to_filter(),
        group_by: GroupBy::parse(&a.group_by).map_err(Error::Invalid)?,
        allow_empty: a.allow_empty,
    };
    let groups = forget::plan(repo, &opts, crate::sys::now_ns(), &tz)?;
    for g in &groups {
        for v in g.keep.iter().filter(|v| v.future) {
            eprintln!(
                "strata: warning: snapshot {} is dated in the future ({}); kept",
                v.id.short(),
                local_time(&v.snapshot, &tz)
            );
        }
    }
    let removed: usize = groups.iter().map(|g| g.remove.len()).sum();
    if a.json {
        output::line(&groups_json(&groups, &tz, a.dry_run).to_string())?;
    } else {
        for g in &groups {
            print_group(g, &tz, a.dry_run)?;
        }
    }
    if !a.dry_run {
        forget::apply(repo, lock, &groups)?;
    }
    if !a.json {
        output::line(&format!(
            "{} {} snapshots{}",
            if a.dry_run { "would remove" } else { "removed" },
            removed,
            if removed == 0 || a.dry_run {
                String::new()
            } else {
                "; their data is freed by `strata gc`".into()
            }
        ))?;
    }
    after(repo, a, lock)
}

/// `forget ID...`: the manifests, or `None` for one that does not read
/// (damaged, or planted by the storage: format-spec/gc.md step 2), which
/// `forget` removes all the same, so that gc can run again.
fn resolve_ids(repo: &Repo, specs: &[String]) -> Result<Vec<(SnapshotId, Option<Snapshot>)>> {
    let mut out: Vec<(SnapshotId, Option<Snapshot>)> = Vec::new();
    for spec in specs {
        let found = if spec == "latest" {
            snapshot::resolve_all(repo, std::slice::from_ref(spec))?
                .into_iter()
                .map(|(id, s)| (id, Some(s)))
                .collect()
        } else {
            let id = snapshot::resolve_id(repo, spec)?;
            match Snapshot::load(repo, &id) {
                Ok(s) => vec![(id, Some(s))],
                Err(e @ Error::Corrupt { .. }) => {
                    eprintln!("strata: warning: removing an unreadable snapshot: {e}");
                    vec![(id, None)]
                }
                Err(e) => return Err(e),
            }
        };
        for (id, s) in found {
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, s));
            }
        }
    }
    Ok(out)
}

/// `forget ID...`: remove exactly these.
fn by_id(
    repo: &Repo,
    a: &ForgetArgs,
    lock: &Lock,
    targets: &[(SnapshotId, Option<Snapshot>)],
    tz: &TimeZone,
) -> Result<i32> {
    let victims: Vec<_> = targets
        .iter()
        .map(|(id, s)| (*id, s.as_ref().map(|s| s.tree)))
        .collect();
    if !a.dry_run {
        forget::remove(repo, lock, &victims)?;
    }
    if a.json {
        let v: Vec<_> = targets
            .iter()
            .map(|(id, s)| json!({"id": id.to_hex(), "time": s.as_ref().map(|s| s.time_string())}))
            .collect();
        output::line(&json!({"dry_run": a.dry_run, "remove": v}).to_string())?;
    } else {
        for (id, s) in targets {
            output::line(&format!(
                "{} {}  {}",
                if a.dry_run { "would remove" } else { "removed" },
                id.short(),
                s.as_ref()
                    .map(|s| local_time(s, tz))
                    .unwrap_or_else(|| "(unreadable)".into())
            ))?;
        }
    }
    after(repo, a, lock)
}

/// `--gc`: collect garbage after forgetting.
fn after(repo: &Repo, a: &ForgetArgs, lock: &Lock) -> Result<i32> {
    if a.gc && !a.dry_run {
        return super::gc::run_default(repo, lock, a.json);
    }
    Ok(exit::OK)
}

fn print_group(g: &Group, tz: &TimeZone, dry_run: bool) -> Result<()> {
    output::line(&format!("group: {}", g.key))?;
    output::line(&format!("keep {} snapshots:", g.keep.len()))?;
    // write-only.md "Retention under attack": which key wrote each one,
    // when a write-only key wrote any of the group
    let keyed = g
        .keep
        .iter()
        .chain(&g.remove)
        .any(|v| v.snapshot.writer.is_some());
    let key = |v: &Verdict| {
        if keyed {
            format!("  key {:<8}", short_key(&v.snapshot))
        } else {
            String::new()
        }
    };
    for v in &g.keep {
        if v.future {
            eprintln!(
                "strata: warning: snapshot {} is dated {}, in the future (kept: `future`; \
                 forged by a write-only key, or a wrong clock?)",
                v.id.short(),
                v.snapshot.time_string()
            );
        }
        output::line(&format!(
            "  {}  {}{}  {}",
            v.id.short(),
            local_time(&v.snapshot, tz),
            key(v),
            v.reasons.join(", ")
        ))?;
    }
    if !g.remove.is_empty() {
        output::line(&format!(
            "{} {} snapshots:",
            if dry_run { "would remove" } else { "remove" },
            g.remove.len()
        ))?;
        for v in &g.remove {
            output::line(&format!(
                "  {}  {}{}",
                v.id.short(),
                local_time(&v.snapshot, tz),
                key(v)
            ))?;
        }
    }
    output::line("")
}

/// The first 8 digits of the writer's key id, or `full`.
fn short_key(s: &Snapshot) -> String {
    let n = forget::writer_name(s);
    n.get(..8).unwrap_or(&n).to_string()
}

fn verdict_json(v: &Verdict, tz: &TimeZone) -> serde_json::Value {
    json!({
        "id": v.id.to_hex(),
        "time": v.snapshot.time_string(),
        "local_time": local_time(&v.snapshot, tz),
        "host": v.snapshot.host,
        "tags": v.snapshot.tags,
        "key": forget::writer_name(&v.snapshot),
        "reasons": v.reasons,
        "future": v.future,
    })
}

fn groups_json(groups: &[Group], tz: &TimeZone, dry_run: bool) -> serde_json::Value {
    let g: Vec<_> = groups
        .iter()
        .map(|g| {
            json!({
                "group": g.key,
                "keep": g.keep.iter().map(|v| verdict_json(v, tz)).collect::<Vec<_>>(),
                "remove": g.remove.iter().map(|v| verdict_json(v, tz)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"dry_run": dry_run, "groups": g})
}

pub fn tag(repo: &Repo, a: &TagArgs, lock: &Lock) -> Result<i32> {
    if a.add.is_empty() && a.remove.is_empty() && a.set.is_empty() {
        return Err(Error::Invalid("give --add, --remove or --set".into()));
    }
    let change = TagChange {
        set: (!a.set.is_empty()).then(|| a.set.iter().filter(|t| !t.is_empty()).cloned().collect()),
        remove: a.remove.clone(),
        add: a.add.clone(),
    };
    let targets = snapshot::resolve_all(repo, &a.snapshots)?;
    let done = tag::tag(repo, lock, &targets, &change)?;
    if a.json {
        output::line(&serde_json::to_string(&done).map_err(|e| Error::Internal(e.to_string()))?)?;
        return Ok(exit::OK);
    }
    for r in &done {
        match r.new {
            Some(n) => output::line(&format!(
                "{} -> {}  tags [{}]",
                r.old.short(),
                n.short(),
                r.tags.join(", ")
            ))?,
            None => output::line(&format!(
                "{} unchanged  tags [{}]",
                r.old.short(),
                r.tags.join(", ")
            ))?,
        }
    }
    Ok(exit::OK)
}

pub fn rewrite(repo: &Repo, a: &RewriteArgs, lock: &Lock) -> Result<i32> {
    let targets = if a.snapshots.is_empty() {
        let f = a.filter.to_filter();
        crate::snapshot::readable(repo)?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect()
    } else {
        snapshot::resolve_all(repo, &a.snapshots)?
    };
    let opts = RewriteOptions {
        excludes: a.excludes.clone(),
        forget: a.forget,
        dry_run: a.dry_run,
    };
    let done = rewrite::rewrite(repo, lock, &targets, &opts)?;
    if a.json {
        let v = json!({"dry_run": a.dry_run, "snapshots": done});
        output::line(&v.to_string())?;
        return Ok(exit::OK);
    }
    for r in &done {
        if r.paths.is_empty() {
            output::line(&format!("{} unchanged", r.old.short()))?;
            continue;
        }
        let d = r.dropped;
        output::line(&format!(
            "{} {}: {} {} files, {} dirs, {} other ({})",
            r.old.short(),
            match r.new {
                Some(n) => format!("-> {}", n.short()),
                None => "(dry run)".into(),
            },
            if a.dry_run { "would drop" } else { "dropped" },
            d.files,
            d.dirs,
            d.other,
            output::size(d.bytes)
        ))?;
        for p in &r.paths {
            output::line(&format!("  - {p}"))?;
        }
    }
    if a.forget && !a.dry_run {
        output::line("originals removed; their data is freed by `strata gc`")?;
    }
    Ok(exit::OK)
}
