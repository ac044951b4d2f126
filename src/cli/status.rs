//! `strata status`: are the backups of strata.toml healthy? Per source:
//! the latest snapshot and its age, what each retention rule keeps against
//! its target, logical versus stored size, the last run; then the last
//! check and sync. Exit 5 ([`exit::UNHEALTHY`]) when a source is older than
//! `--max-age` (or has no snapshot). `--json` is documented in README
//! ("strata status --json") and only grows; `--prometheus FILE` writes
//! the same figures for node_exporter's textfile collector (temp file,
//! then rename). Takes no lock: it only reads, and must not fail while gc
//! holds the exclusive lock.

use super::args::StatusArgs;
use super::{exit, output};
use crate::error::Result;
use crate::id::SnapshotId;
use crate::maint::forget::{self, ForgetOptions};
use crate::policy::Config;
use crate::policy::config::PRE_RESTORE_TAG;
use crate::policy::state::{self, LastRun, State};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::snapshot::retention::Policy;
use crate::snapshot::{Filter, Snapshot};
use serde::Serialize;
use serde_json::{Value, json};

/// One retention rule's kept count against its target.
#[derive(Debug, Serialize)]
struct Rule {
    /// `last`, `hourly`, ..., `within`, `daily within`...
    rule: String,
    /// Snapshots the rule keeps now.
    kept: u64,
    /// Its target: a count, `unlimited`, or a span (`24h`).
    target: String,
}

/// The retention rules of `p` that are on, with their targets.
fn rules(p: &Policy) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(w) = p.within.filter(|s| !s.is_zero()) {
        out.push(("within".to_string(), w.to_string()));
    }
    for (name, c) in [
        ("last", p.last),
        ("hourly", p.hourly),
        ("daily", p.daily),
        ("weekly", p.weekly),
        ("monthly", p.monthly),
        ("yearly", p.yearly),
    ] {
        if !c.is_off() {
            out.push((name.to_string(), c.to_string()));
        }
    }
    for (name, s) in [
        ("hourly", p.within_hourly),
        ("daily", p.within_daily),
        ("weekly", p.within_weekly),
        ("monthly", p.within_monthly),
        ("yearly", p.within_yearly),
    ] {
        if let Some(s) = s.filter(|s| !s.is_zero()) {
            out.push((format!("{name} within"), s.to_string()));
        }
    }
    out
}

/// Does a keep reason (`snapshot::retention::Decision::reasons`) belong
/// to `rule` (as named by [`rules`])?
fn reason_is(rule: &str, reason: &str) -> bool {
    let reason = reason.strip_prefix("oldest ").unwrap_or(reason);
    if rule == "within" {
        return reason.starts_with("within ");
    }
    if let Some(unit) = rule.strip_suffix(" within") {
        return reason.starts_with(&format!("{unit} within "));
    }
    reason == rule || (reason.starts_with(&format!("{rule} ")) && !reason.contains(" within "))
}

struct SourceReport {
    json: Value,
    stale: Option<String>,
}

/// What every source's report reads.
struct Ctx<'a> {
    repo: &'a Repo,
    reader: &'a BlobReader<'a>,
    cfg: &'a Config,
    snaps: &'a [(SnapshotId, Snapshot)],
    max_age: Option<std::time::Duration>,
    now: i64,
}

fn source_report(cx: &Ctx<'_>, name: &str, last: Option<&LastRun>) -> SourceReport {
    let Ctx {
        repo,
        reader,
        cfg,
        snaps,
        max_age,
        now,
    } = *cx;
    let mine: Vec<&(SnapshotId, Snapshot)> = snaps
        .iter()
        .filter(|(_, s)| {
            s.tags.iter().any(|t| t == name) && !s.tags.iter().any(|t| t == PRE_RESTORE_TAG)
        })
        .collect();
    let latest = mine.last();
    let age_ns = latest.map(|(_, s)| now.saturating_sub(s.time_unix_ns).max(0));
    let stale = match (max_age, age_ns) {
        (None, _) => None,
        (Some(_), None) => Some(format!("{name}: no snapshot")),
        (Some(m), Some(a)) if a as u128 > m.as_nanos() => Some(format!(
            "{name}: latest snapshot is {} old (max age {})",
            short_duration(a),
            humantime::format_duration(m)
        )),
        _ => None,
    };
    // Retention: what the policy keeps now, per rule.
    let mut retention = Vec::new();
    let mut warnings = Vec::new();
    if !cfg.retention.is_empty() && !mine.is_empty() {
        let opts = ForgetOptions {
            policy: cfg.retention.clone(),
            filter: Filter {
                tags: vec![name.to_string()],
                skip_tags: vec![PRE_RESTORE_TAG.to_string()],
                ..Default::default()
            },
            group_by: Default::default(),
            allow_empty: true,
        };
        match forget::plan(repo, &opts, now, &jiff::tz::TimeZone::system()) {
            Ok(groups) => {
                for (rule, target) in rules(&cfg.retention) {
                    let kept = groups
                        .iter()
                        .flat_map(|g| &g.keep)
                        .filter(|v| v.reasons.iter().any(|r| reason_is(&rule, r)))
                        .count() as u64;
                    retention.push(Rule { rule, kept, target });
                }
            }
            Err(e) => warnings.push(format!("retention: {e}")),
        }
    }
    let list: Vec<Snapshot> = mine.iter().map(|(_, s)| s.clone()).collect();
    let sizes = if list.is_empty() {
        json!({"logical_bytes": 0, "raw_bytes": 0, "stored_bytes": 0, "dedup_ratio": null})
    } else {
        match crate::inspect::stats::stats(reader, &list) {
            Ok(st) => json!({
                "logical_bytes": st.restore_size,
                "raw_bytes": st.raw_size,
                "stored_bytes": st.stored_size,
                "dedup_ratio": if st.dedup_ratio > 0.0 { json!(st.dedup_ratio) } else { Value::Null },
            }),
            Err(e) => {
                warnings.push(format!("sizes: {e}"));
                json!({"logical_bytes": null, "raw_bytes": null, "stored_bytes": null, "dedup_ratio": null})
            }
        }
    };
    let mut v = json!({
        "source": name,
        "snapshots": mine.len(),
        "latest": latest.map(|(id, s)| json!({
            "id": id.to_hex(),
            "time": s.time_string(),
            "age_seconds": age_ns.map(|a| a / 1_000_000_000),
            "bytes_read": s.summary.bytes_read,
            "bytes_added": s.summary.bytes_added,
        })),
        "stale": stale.is_some(),
        "retention": retention,
        "last_run": last.map(last_json),
        "warnings": warnings,
    });
    if let (Some(o), Some(s)) = (v.as_object_mut(), sizes.as_object()) {
        for (k, x) in s {
            o.insert(k.clone(), x.clone());
        }
    }
    SourceReport { json: v, stale }
}

fn last_json(l: &LastRun) -> Value {
    json!({
        "attempt": l.attempt_unix_ns.map(super::run::time_string),
        "success": l.success_unix_ns.map(super::run::time_string),
        "error": l.error,
    })
}

/// `4m`, `2h 3m`, `3d 4h`: an age to a minute.
fn short_duration(ns: i64) -> String {
    let secs = (ns.max(0) / 1_000_000_000) as u64;
    let rounded = if secs >= 3600 { secs / 60 * 60 } else { secs };
    humantime::format_duration(std::time::Duration::from_secs(rounded)).to_string()
}

pub fn run(cli: &super::Cli, a: &StatusArgs) -> Result<i32> {
    let cfg = crate::policy::config::find_and_load(a.config.config.as_deref())?;
    let (repo, _) = super::open_repo_with(cli, Some(&cfg))?;
    let max_age = a.max_age.or(cfg.max_age);
    let now = crate::repo::now_ns();
    let (st, st_warning) = match state::dir(&repo.config().repo_id) {
        Some(d) => State::load(&d),
        None => (State::default(), None),
    };
    if let Some(w) = &st_warning {
        eprintln!("strata: warning: {w}");
    }
    let snaps = super::readable_snapshots(&repo)?;
    let reader = super::blob_reader(&repo)?;
    let mut problems = Vec::new();
    let mut sources = Vec::new();
    for s in &cfg.sources {
        let cx = Ctx {
            repo: &repo,
            reader: &reader,
            cfg: &cfg,
            snaps: &snaps,
            max_age,
            now,
        };
        let r = source_report(&cx, &s.name, st.sources.get(&s.name));
        problems.extend(r.stale);
        sources.push(r.json);
    }
    let check = check_json(&repo, &cfg, now, &mut problems)?;
    let behind = offsite_behind(&repo, &cfg, &mut problems);
    let healthy = problems.is_empty();
    let v = json!({
        "version": 1,
        "config": cfg.path,
        "repository": repo.root(),
        "time": super::run::time_string(now),
        "max_age_seconds": max_age.map(|m| m.as_secs()),
        "healthy": healthy,
        "problems": problems,
        "sources": sources,
        "last_run": st.run.attempt_unix_ns.map(|_| last_json(&st.run)),
        "forget": st.forget.attempt_unix_ns.map(|_| last_json(&st.forget)),
        "gc": st.gc.attempt_unix_ns.map(|_| last_json(&st.gc)),
        "check": check,
        "sync": {
            "configured": cfg.offsite.is_some(),
            "available": true,
            "offsite": cfg.offsite,
            "last": st.sync.attempt_unix_ns.map(|_| last_json(&st.sync)),
            "behind_packs": behind.map(|(n, _)| n),
            "behind_bytes": behind.map(|(_, b)| b),
        },
    });
    if let Some(p) = &a.prometheus {
        let text = prometheus(&v);
        state::write_atomic(p, text.as_bytes(), 0o644)?;
    }
    if a.json {
        output::line(&v.to_string())?;
    } else {
        print(&v, &cfg)?;
    }
    Ok(if healthy { exit::OK } else { exit::UNHEALTHY })
}

fn print(v: &Value, cfg: &Config) -> Result<()> {
    let empty = Vec::new();
    for s in v["sources"].as_array().unwrap_or(&empty) {
        let name = s["source"].as_str().unwrap_or("");
        let latest = match s["latest"].as_object() {
            Some(l) => format!(
                "latest {} at {} ({} ago), {} snapshots",
                l.get("id")
                    .and_then(Value::as_str)
                    .map_or("", |i| &i[..8.min(i.len())]),
                l.get("time").and_then(Value::as_str).unwrap_or(""),
                short_duration(
                    l.get("age_seconds").and_then(Value::as_i64).unwrap_or(0) * 1_000_000_000
                ),
                s["snapshots"]
            ),
            None => "no snapshot".to_string(),
        };
        output::line(&format!(
            "{name}: {latest}{}",
            if s["stale"].as_bool() == Some(true) {
                "  STALE"
            } else {
                ""
            }
        ))?;
        let rules: Vec<String> = s["retention"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|r| {
                let (rule, kept, target) = (
                    r["rule"].as_str().unwrap_or(""),
                    r["kept"].as_u64().unwrap_or(0),
                    r["target"].as_str().unwrap_or(""),
                );
                if rule == "within" || rule.ends_with(" within") {
                    format!("{rule} {target}: {kept}")
                } else {
                    format!("{rule} {kept}/{target}")
                }
            })
            .collect();
        if !rules.is_empty() {
            output::line(&format!("  retention: {}", rules.join(", ")))?;
        }
        if let (Some(l), Some(st)) = (s["logical_bytes"].as_u64(), s["stored_bytes"].as_u64()) {
            output::line(&format!(
                "  size: {} logical, {} stored{}",
                output::size(l),
                output::size(st),
                s["dedup_ratio"]
                    .as_f64()
                    .map(|d| format!(", dedup {d:.1}x"))
                    .unwrap_or_default()
            ))?;
        }
        if let Some(e) = s["last_run"]["error"].as_str() {
            output::line(&format!("  last run FAILED: {e}"))?;
        }
        for w in s["warnings"].as_array().unwrap_or(&empty) {
            output::line(&format!("  warning: {}", w.as_str().unwrap_or("")))?;
        }
    }
    output::line(&format!("check: {}", check_text(&v["check"], cfg)))?;
    output::line(&format!(
        "sync: {}",
        match &cfg.offsite {
            Some(o) => {
                let last = &v["sync"]["last"];
                let when = match (last["success"].as_str(), last["error"].as_str()) {
                    (_, Some(e)) => format!("to {o}: last attempt failed: {e}"),
                    (Some(t), None) => format!("to {o}: last at {t}"),
                    (None, None) => format!("never to {o}"),
                };
                match (
                    v["sync"]["behind_packs"].as_u64(),
                    v["sync"]["behind_bytes"].as_u64(),
                ) {
                    (Some(0), _) => format!("{when}; the offsite copy has every pack"),
                    (Some(n), Some(b)) => format!(
                        "{when}; the offsite copy lacks {n} packs ({})",
                        output::size(b)
                    ),
                    _ => when,
                }
            }
            None => "not configured".into(),
        }
    ))?;
    match v["problems"].as_array() {
        Some(p) if !p.is_empty() => output::line(&format!(
            "UNHEALTHY: {}",
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        )),
        _ => output::line("healthy"),
    }
}

/// The last check on this machine (maint/check/state.rs) and how much of
/// the repository was read-data verified within `[verification] max_age`
/// (ever, without one); adds to `problems` when the last check found
/// errors or the last clean one is older than that age.
fn check_json(repo: &Repo, cfg: &Config, now: i64, problems: &mut Vec<String>) -> Result<Value> {
    use crate::maint::check::state::{self as cstate, CheckState};
    let st = match cstate::path(&repo.config().repo_id) {
        Some(p) => {
            let (st, w) = CheckState::load(&p);
            if let Some(w) = w {
                eprintln!("strata: warning: {w}");
            }
            st
        }
        None => CheckState::default(),
    };
    let now_s = now / 1_000_000_000;
    let max_age = cfg.verification.as_ref().and_then(|v| v.max_age);
    let after = max_age.map(|a| now_s.saturating_sub(a.as_secs() as i64));
    let verified = st.verified_map();
    let packs: Vec<crate::index::PackRow> = repo
        .index()?
        .packs()?
        .into_iter()
        .filter(|p| p.condemned.is_none() && !p.missing)
        .collect();
    let covered = packs
        .iter()
        .filter(|p| {
            verified
                .get(&p.id)
                .is_some_and(|t| after.is_none_or(|a| *t > a))
        })
        .count();
    if let Some(l) = &st.last {
        if l.errors > 0 {
            problems.push(format!(
                "check: the last check found {} errors ({})",
                l.errors,
                l.first_error.as_deref().unwrap_or("")
            ));
        }
    }
    if let (Some(m), true) = (max_age, cfg.verification.is_some()) {
        match st.last_clean_unix {
            None => problems.push("check: no successful check yet".into()),
            Some(t) if now_s.saturating_sub(t) as u64 > m.as_secs() => problems.push(format!(
                "check: the last successful check is {} old (max age {})",
                short_duration((now_s - t) * 1_000_000_000),
                humantime::format_duration(m)
            )),
            Some(_) => {}
        }
    }
    let time = |t: i64| super::run::time_string(t.saturating_mul(1_000_000_000));
    Ok(json!({
        "configured": cfg.verification.is_some(),
        "available": true,
        "last": st.last.as_ref().map(|l| json!({
            "time": time(l.time_unix),
            "read_data": l.read_data,
            "errors": l.errors,
            "first_error": l.first_error,
            "packs_read": l.packs_read,
            "seconds": l.seconds,
        })),
        "last_success": st.last_clean_unix.map(time),
        "coverage": {
            "packs": packs.len(),
            "verified": covered,
            "within_seconds": max_age.map(|m| m.as_secs()),
            "fraction": if packs.is_empty() { 1.0 } else { covered as f64 / packs.len() as f64 },
        },
    }))
}

/// The check line of the text report.
fn check_text(c: &Value, cfg: &Config) -> String {
    let cov = &c["coverage"];
    let coverage = format!(
        "{} of {} packs read-data verified{}",
        cov["verified"],
        cov["packs"],
        match cov["within_seconds"].as_u64() {
            Some(s) => format!(
                " within {}",
                humantime::format_duration(std::time::Duration::from_secs(s))
            ),
            None => String::new(),
        }
    );
    match c["last"].as_object() {
        None if cfg.verification.is_none() => format!("never (not configured); {coverage}"),
        None => format!("never; {coverage}"),
        Some(l) => format!(
            "last at {}{}; {coverage}",
            l.get("time").and_then(Value::as_str).unwrap_or(""),
            match l.get("errors").and_then(Value::as_u64) {
                Some(0) | None => String::new(),
                Some(n) => format!(", {n} ERRORS"),
            }
        ),
    }
}

/// A label value, escaped for the Prometheus text format.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The status as Prometheus text (exposition format 0.0.4).
fn prometheus(v: &Value) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, x) in samples {
            out.push_str(&format!("{name}{labels} {x}\n"));
        }
    };
    let empty = Vec::new();
    let sources = v["sources"].as_array().unwrap_or(&empty);
    let per = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(String, f64)> {
        sources
            .iter()
            .filter_map(|s| {
                let x = f(s)?;
                Some((
                    format!(
                        "{{source=\"{}\"}}",
                        label(s["source"].as_str().unwrap_or(""))
                    ),
                    x,
                ))
            })
            .collect()
    };
    metric(
        "strata_healthy",
        "1 if every source is within its maximum age",
        "gauge",
        vec![(
            String::new(),
            if v["healthy"].as_bool() == Some(true) {
                1.0
            } else {
                0.0
            },
        )],
    );
    metric(
        "strata_source_snapshots",
        "Snapshots of the source",
        "gauge",
        per(&|s| s["snapshots"].as_f64()),
    );
    metric(
        "strata_source_last_snapshot_timestamp_seconds",
        "Time of the latest snapshot of the source",
        "gauge",
        per(&|s| {
            let t = s["latest"]["time"].as_str()?;
            let ts = humantime::parse_rfc3339(t).ok()?;
            Some(ts.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as f64)
        }),
    );
    metric(
        "strata_source_last_snapshot_age_seconds",
        "Age of the latest snapshot of the source",
        "gauge",
        per(&|s| s["latest"]["age_seconds"].as_f64()),
    );
    metric(
        "strata_source_stale",
        "1 if the source's latest snapshot is older than the maximum age (or missing)",
        "gauge",
        per(&|s| {
            Some(if s["stale"].as_bool() == Some(true) {
                1.0
            } else {
                0.0
            })
        }),
    );
    metric(
        "strata_source_logical_bytes",
        "Logical bytes of the source's snapshots, summed",
        "gauge",
        per(&|s| s["logical_bytes"].as_f64()),
    );
    metric(
        "strata_source_stored_bytes",
        "Stored bytes of the distinct blobs of the source's snapshots",
        "gauge",
        per(&|s| s["stored_bytes"].as_f64()),
    );
    metric(
        "strata_source_dedup_ratio",
        "Logical bytes per distinct raw byte of the source's snapshots",
        "gauge",
        per(&|s| s["dedup_ratio"].as_f64()),
    );
    let mut kept = Vec::new();
    let mut target = Vec::new();
    for s in sources {
        let src = label(s["source"].as_str().unwrap_or(""));
        for r in s["retention"].as_array().unwrap_or(&empty) {
            let rule = label(r["rule"].as_str().unwrap_or(""));
            let l = format!("{{source=\"{src}\",rule=\"{rule}\"}}");
            kept.push((l.clone(), r["kept"].as_f64().unwrap_or(0.0)));
            if let Ok(n) = r["target"].as_str().unwrap_or("").parse::<f64>() {
                target.push((l, n));
            }
        }
    }
    metric(
        "strata_source_retention_kept",
        "Snapshots a retention rule keeps now",
        "gauge",
        kept,
    );
    metric(
        "strata_source_retention_target",
        "The count a retention rule aims for",
        "gauge",
        target,
    );
    out
}

/// How many of the repository's packs (and bytes) the offsite copy lacks,
/// by one listing of each; `None` without an offsite or when the offsite
/// cannot be listed (which is a problem). More than `[status]
/// max_offsite_behind` packs is a problem too.
fn offsite_behind(repo: &Repo, cfg: &Config, problems: &mut Vec<String>) -> Option<(u64, u64)> {
    let offsite = cfg.offsite.as_ref()?;
    let listed = crate::backend::open(offsite)
        .map_err(crate::Error::from)
        .and_then(|b| {
            let mut have = std::collections::HashSet::new();
            b.list("packs", &mut |l| {
                have.insert(l.key);
            })?;
            Ok(have)
        });
    let ours = crate::index::list_packs(repo);
    let (have, ours) = match (listed, ours) {
        (Ok(h), Ok(o)) => (h, o),
        (Err(e), _) | (_, Err(e)) => {
            problems.push(format!("sync: cannot compare with {offsite}: {e}"));
            return None;
        }
    };
    let (mut n, mut bytes) = (0u64, 0u64);
    for (id, size) in ours {
        if !have.contains(&crate::backend::key::pack(&id.to_hex())) {
            n += 1;
            bytes += size;
        }
    }
    if let Some(max) = cfg.max_offsite_behind {
        if n > max {
            problems.push(format!(
                "sync: {offsite} lacks {n} packs ({bytes} bytes; at most {max} allowed)"
            ));
        }
    }
    Some((n, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_by_rule() {
        assert!(reason_is("daily", "daily 3/30"));
        assert!(reason_is("daily", "oldest daily"));
        assert!(!reason_is("daily", "daily within 30d"));
        assert!(reason_is("daily within", "daily within 30d"));
        assert!(reason_is("daily within", "oldest daily within 30d"));
        assert!(reason_is("within", "within 24h"));
        assert!(!reason_is("within", "daily within 30d"));
        assert!(!reason_is("weekly", "daily 1/7"));
    }
}
