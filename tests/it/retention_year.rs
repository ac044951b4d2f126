//! Our users' tiers over a year of hourly snapshots: `forget --keep-within
//! 24h --keep-daily 30 --keep-weekly 12 --keep-monthly 12` in
//! Europe/Berlin (`TZ`) keeps exactly what the rules, computed
//! independently here from their English description, keep — 68 of 8 760
//! (README "Retention and gc") —; the run without `--dry-run` removes the
//! rest; and forgetting again is a no-op. The first snapshot is made by
//! `strata snapshot`; the other 8 759 are its manifest with another time
//! and the first as parent, written through the library in this process
//! (what `snapshot --time` would write for an unchanged source, without
//! 8 759 process starts), so the test takes seconds, not minutes.
//! `STRATA_YEAR_STEP_HOURS` thins them out.

use crate::support;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{BTreeSet, HashSet};
use strata::SnapshotId;
use strata::id::parse_hex32;
use strata::snapshot::manifest::Snapshot;

const BERLIN: support::Env = &[("TZ", "Europe/Berlin")];

/// The kept set by the rules as documented (restic 0.17): newest first;
/// within 24 h of the newest; for daily, weekly (ISO, Monday first) and
/// monthly, the newest snapshot of each of the last N local buckets; plus
/// the oldest snapshot if a count rule is not filled.
fn expected(times: &[i64], tz: &TimeZone) -> BTreeSet<i64> {
    let mut newest_first: Vec<i64> = times.to_vec();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    let latest = newest_first[0];
    let mut keep = BTreeSet::new();
    for &t in &newest_first {
        if t > latest - 24 * 3600 {
            keep.insert(t);
        }
    }
    let local = |t: i64| Timestamp::from_second(t).unwrap().to_zoned(tz.clone());
    type Bucket<'a> = &'a dyn Fn(i64) -> (i32, i32, i32);
    let rules: [(Bucket, usize); 3] = [
        (
            &|t| {
                let z = local(t);
                (z.year() as i32, z.month() as i32, z.day() as i32)
            },
            30,
        ),
        (
            &|t| {
                let w = local(t).date().iso_week_date();
                (w.year() as i32, w.week() as i32, 0)
            },
            12,
        ),
        (
            &|t| {
                let z = local(t);
                (z.year() as i32, z.month() as i32, 0)
            },
            12,
        ),
    ];
    for (bucket, n) in rules {
        let mut seen: HashSet<(i32, i32, i32)> = HashSet::new();
        for &t in &newest_first {
            if seen.len() == n {
                break;
            }
            if seen.insert(bucket(t)) {
                keep.insert(t);
            }
        }
        if seen.len() < n {
            keep.insert(*newest_first.last().unwrap());
        }
    }
    keep
}

#[test]
fn a_year_of_hourly_snapshots_keeps_exactly_the_users_tiers() {
    let step: i64 = std::env::var("STRATA_YEAR_STEP_HOURS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    if !support::in_child_without_cache(
        "retention_year::a_year_of_hourly_snapshots_keeps_exactly_the_users_tiers",
        &[],
    ) {
        return;
    }
    let tmp = support::scratch_tempdir();
    let repo = tmp.path().join("repo");
    support::ok(&repo, BERLIN, &["init", "--no-encryption"]);
    let src = tmp.path().join("data.json");
    std::fs::write(&src, b"{\"events\": 1}").unwrap();
    let src = src.to_str().unwrap().to_string();
    // 2025-01-01T00:00:00Z, hourly for a year (2025 is not a leap year)
    let start = 1_735_689_600i64;
    let times: Vec<i64> = (0..8760 / step).map(|i| start + i * step * 3600).collect();
    let first = jiff::Timestamp::from_second(times[0]).unwrap().to_string();
    let v = support::json(
        &repo,
        BERLIN,
        &["snapshot", &src, "--time", &first, "--json"],
    );
    let parent = SnapshotId(parse_hex32(v["id"].as_str().unwrap()).unwrap());
    let t0 = std::time::Instant::now();
    let r = strata::Repo::open(&repo).unwrap();
    let made = Snapshot::load(&r, &parent).unwrap();
    for &t in &times[1..] {
        let s = Snapshot {
            time_unix_ns: t * 1_000_000_000,
            parent: Some(parent),
            ..made.clone()
        };
        s.save(&r).unwrap();
    }
    assert_eq!(support::snapshot_ids(&repo).len(), times.len());
    println!(
        "{} snapshots in {:.1}s",
        times.len(),
        t0.elapsed().as_secs_f64()
    );
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let want = expected(&times, &tz);
    if step == 1 {
        // README "Retention and gc": 68 of 8 760
        assert_eq!(want.len(), 68, "the rules keep {} of a year", want.len());
    }
    let policy = [
        "--keep-within",
        "24h",
        "--keep-daily",
        "30",
        "--keep-weekly",
        "12",
        "--keep-monthly",
        "12",
    ];
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend(policy);
    let v: serde_json::Value = serde_json::from_str(&support::ok(&repo, BERLIN, &args)).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let secs = |x: &serde_json::Value| -> i64 {
        x["time"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .unwrap()
            .as_second()
    };
    let kept: BTreeSet<i64> = groups[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(secs)
        .collect();
    let removed = groups[0]["remove"].as_array().unwrap().len();
    assert_eq!(kept, want, "kept set");
    assert_eq!(kept.len() + removed, times.len());
    for k in groups[0]["keep"].as_array().unwrap() {
        assert!(!k["reasons"].as_array().unwrap().is_empty(), "{k}");
    }
    // The newest snapshot is kept by every rule.
    let newest = &groups[0]["keep"][0];
    let reasons = newest["reasons"].to_string();
    for r in ["within 24h", "daily 1/30", "weekly 1/12", "monthly 1/12"] {
        assert!(reasons.contains(r), "{reasons} lacks {r}");
    }
    let by_rule = |r: &str| {
        groups[0]["keep"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["reasons"].to_string().contains(r))
            .count()
    };
    println!(
        "kept {} of {}: within 24h {}, daily {}, weekly {}, monthly {}",
        kept.len(),
        times.len(),
        by_rule("within"),
        by_rule("daily"),
        by_rule("weekly"),
        by_rule("monthly")
    );
    // For real, then again: nothing more to remove.
    let mut args = vec!["forget", "--json"];
    args.extend(policy);
    support::ok(&repo, BERLIN, &args);
    let list: serde_json::Value =
        serde_json::from_str(&support::ok(&repo, BERLIN, &["snapshots", "--json"])).unwrap();
    let left: BTreeSet<i64> = list.as_array().unwrap().iter().map(secs).collect();
    assert_eq!(left, want);
    let v: serde_json::Value = serde_json::from_str(&support::ok(&repo, BERLIN, &args)).unwrap();
    assert_eq!(v["groups"][0]["remove"].as_array().unwrap().len(), 0);
}
