//! Tests of the retention policy, written from restic 0.17's `forget`
//! documentation and code: tables of snapshot times and the exact reasons
//! each gets, a year of hourly snapshots against a brute-force model of the
//! rules, and the parsers.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use super::*;

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// Unix ns of `s`: RFC 3339, or a wall clock in `tz`.
fn at(s: &str, tz: &TimeZone) -> i64 {
    parse_time(s, tz).unwrap_or_else(|e| panic!("{e}"))
}

const HOUR_NS: i64 = 3_600_000_000_000;
const FAR: &str = "2100-01-01T00:00:00Z";

/// A snapshot time, its tags, and the reasons expected for it, joined by
/// ", " ("" = removed).
type Row<'a> = (&'a str, &'a [&'a str], &'a str);

/// Apply `policy` in zone `tz_name` at `now` to one untagged snapshot per
/// row (times in the zone unless they carry an offset), in row order, and
/// compare the reasons.
fn check(tz_name: &str, policy: &Policy, rows: &[(&str, &str)]) {
    let rows: Vec<Row> = rows.iter().map(|&(t, want)| (t, &[][..], want)).collect();
    check_at(tz_name, policy, FAR, &rows);
}

/// [`check`] with tags and a chosen `now`; returns the decisions.
fn check_at(tz_name: &str, policy: &Policy, now: &str, rows: &[Row]) -> Vec<Decision> {
    let tz = zone(tz_name);
    let tags: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.1.iter().map(|t| t.to_string()).collect())
        .collect();
    let items: Vec<Item> = rows
        .iter()
        .zip(&tags)
        .map(|(r, tags)| Item {
            time_unix_ns: at(r.0, &tz),
            tags,
        })
        .collect();
    let got = apply(&items, policy, at(now, &tz), &tz);
    assert_eq!(got.len(), rows.len());
    for d in &got {
        assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
    }
    let show = |reasons: Vec<String>| -> Vec<String> {
        rows.iter()
            .zip(reasons)
            .map(|(r, why)| format!("{} => {why}", r.0))
            .collect()
    };
    let want = show(rows.iter().map(|r| r.2.to_string()).collect());
    assert_eq!(
        show(got.iter().map(|d| d.reasons.join(", ")).collect()),
        want
    );
    got
}

fn count(n: u32) -> Count {
    Count::N(n)
}

fn span(s: &str) -> Option<Span> {
    Some(parse_span(s).unwrap())
}

// ---- count rules ----

#[test]
fn keep_last_counts_newest_first_whatever_the_input_order() {
    let p = Policy {
        last: count(3),
        ..Policy::default()
    };
    check(
        "UTC",
        &p,
        &[
            ("2021-01-03 12:00:00", "last 3/3"),
            ("2021-01-01 12:00:00", ""),
            ("2021-01-05 12:00:00", "last 1/3"),
            ("2021-01-02 12:00:00", ""),
            ("2021-01-04 12:00:00", "last 2/3"),
        ],
    );
}

#[test]
fn keep_last_with_counts_left_keeps_all_and_never_says_oldest() {
    let p = Policy {
        last: count(5),
        ..Policy::default()
    };
    check(
        "UTC",
        &p,
        &[
            ("2021-01-03 12:00:00", "last 1/5"),
            ("2021-01-02 12:00:00", "last 2/5"),
            ("2021-01-02 11:00:00", "last 3/5"),
        ],
    );
}

#[test]
fn hourly_keeps_the_newest_of_each_hour() {
    let p = Policy {
        hourly: count(3),
        ..Policy::default()
    };
    check(
        "UTC",
        &p,
        &[
            ("2021-01-01 12:59:00", "hourly 1/3"),
            ("2021-01-01 12:00:00", ""),
            ("2021-01-01 11:10:00", "hourly 2/3"),
            ("2021-01-01 10:55:00", "hourly 3/3"),
            ("2021-01-01 10:05:00", ""),
            ("2021-01-01 09:30:00", ""),
        ],
    );
}

#[test]
fn daily_buckets_split_at_local_midnight() {
    let p = Policy {
        daily: count(2),
        ..Policy::default()
    };
    check(
        "Europe/Berlin",
        &p,
        &[
            ("2021-06-02 08:00:00", "daily 1/2"),
            ("2021-06-02 00:30:00", ""),
            ("2021-06-01 23:30:00", "daily 2/2"),
            ("2021-06-01 08:00:00", ""),
            ("2021-05-31 23:59:59", ""),
        ],
    );
}

#[test]
fn weekly_buckets_are_iso_weeks_across_a_53_week_year() {
    let p = Policy {
        weekly: count(4),
        ..Policy::default()
    };
    check(
        "UTC",
        &p,
        &[
            ("2021-01-11 12:00:00", "weekly 1/4"), // Mon, 2021-W02
            ("2021-01-10 12:00:00", "weekly 2/4"), // Sun, 2021-W01
            ("2021-01-04 12:00:00", ""),           // Mon, 2021-W01
            ("2021-01-03 12:00:00", "weekly 3/4"), // Sun, 2020-W53
            ("2021-01-01 12:00:00", ""),           // Fri, 2020-W53
            ("2020-12-31 12:00:00", ""),           // Thu, 2020-W53
            ("2020-12-28 12:00:00", ""),           // Mon, 2020-W53
            ("2020-12-27 12:00:00", "weekly 4/4"), // Sun, 2020-W52
            ("2020-12-20 12:00:00", ""),
        ],
    );
}

#[test]
fn weekly_iso_year_can_run_ahead_of_the_calendar_year() {
    let p = Policy {
        weekly: count(2),
        ..Policy::default()
    };
    check(
        "UTC",
        &p,
        &[
            ("2020-01-05 12:00:00", "weekly 1/2"), // Sun, 2020-W01
            ("2019-12-30 12:00:00", ""),           // Mon, 2020-W01
            ("2019-12-29 12:00:00", "weekly 2/2"), // Sun, 2019-W52
            ("2019-12-23 12:00:00", ""),
        ],
    );
}

#[test]
fn monthly_buckets_across_month_ends_and_feb_29() {
    let p = Policy {
        monthly: count(3),
        ..Policy::default()
    };
    check(
        "Europe/Berlin",
        &p,
        &[
            ("2020-03-31 12:00:00", "monthly 1/3"),
            ("2020-03-01 00:30:00", ""), // still February in UTC
            ("2020-02-29 23:59:00", "monthly 2/3"),
            ("2020-02-29 12:00:00", ""),
            ("2020-02-01 12:00:00", ""),
            ("2020-01-31 12:00:00", "monthly 3/3"),
        ],
    );
}

#[test]
fn yearly_buckets_use_the_local_year() {
    let p = |n| Policy {
        yearly: count(n),
        ..Policy::default()
    };
    let times = [
        "2022-03-01 12:00:00",
        "2021-07-01 12:00:00",
        "2021-01-01 00:30:00",
        "2021-01-01T04:00:00Z", // 2020-12-31 23:00 in New York
        "2019-06-01 12:00:00",
    ];
    let with =
        |want: [&'static str; 5]| -> Vec<(&str, &str)> { times.into_iter().zip(want).collect() };
    let two = with(["yearly 1/2", "yearly 2/2", "", "", ""]);
    check("America/New_York", &p(2), &two);
    let ten = with([
        "yearly 1/10",
        "yearly 2/10",
        "",
        "yearly 3/10",
        "yearly 4/10",
    ]);
    check("America/New_York", &p(10), &ten);
}

#[test]
fn unlimited_keeps_every_bucket_and_the_oldest() {
    let p = Policy {
        daily: Count::Unlimited,
        ..Policy::default()
    };
    check(
        "UTC",
        &p,
        &[
            ("2021-06-03 10:00:00", "daily 1/unlimited"),
            ("2021-06-02 10:00:00", "daily 2/unlimited"),
            ("2021-06-02 08:00:00", ""),
            ("2021-06-01 18:00:00", "daily 3/unlimited"),
            ("2021-06-01 09:00:00", "oldest daily"),
        ],
    );
}

#[test]
fn oldest_is_kept_while_counts_are_left() {
    let p = |n| Policy {
        daily: count(n),
        ..Policy::default()
    };
    let times = [
        "2021-06-03 10:00:00",
        "2021-06-02 10:00:00",
        "2021-06-02 08:00:00",
        "2021-06-01 18:00:00",
        "2021-06-01 09:00:00",
    ];
    let with =
        |want: [&'static str; 5]| -> Vec<(&str, &str)> { times.into_iter().zip(want).collect() };
    // Not filled: 3 days for 5 counts, so the oldest is kept too.
    let not_filled = with(["daily 1/5", "daily 2/5", "", "daily 3/5", "oldest daily"]);
    check("UTC", &p(5), &not_filled);
    // Filled: the third day used the last count.
    let filled = with(["daily 1/3", "daily 2/3", "", "daily 3/3", ""]);
    check("UTC", &p(3), &filled);
    // The oldest alone in its bucket is an ordinary keep.
    check(
        "UTC",
        &p(5),
        &[
            ("2021-06-03 10:00:00", "daily 1/5"),
            ("2021-06-02 10:00:00", "daily 2/5"),
            ("2021-06-01 09:00:00", "daily 3/5"),
        ],
    );
}

#[test]
fn a_snapshot_kept_by_several_rules_lists_each() {
    let p = Policy {
        last: count(2),
        daily: count(2),
        weekly: count(1),
        monthly: count(1),
        yearly: count(1),
        within: span("1d"),
        keep_tags: vec![vec!["prod".into()]],
        ..Policy::default()
    };
    check_at(
        "UTC",
        &p,
        FAR,
        &[
            (
                "2021-06-30 18:00:00",
                &[],
                "within 1d, last 1/2, daily 1/2, weekly 1/1, monthly 1/1, yearly 1/1",
            ),
            ("2021-06-30 09:00:00", &[], "within 1d, last 2/2"),
            ("2021-06-29 12:00:00", &[], "daily 2/2"),
            ("2021-06-01 12:00:00", &["prod", "x"], "tag prod"),
            ("2021-05-01 12:00:00", &["x"], ""),
        ],
    );
}

// ---- keep-within ----

#[test]
fn within_counts_back_with_go_adddate_normalisation() {
    let p = |s| Policy {
        within: span(s),
        ..Policy::default()
    };
    // Mar 31 - 1m = "Feb 31" = Mar 3 (a clamp to Feb 28 would keep more).
    check(
        "UTC",
        &p("1m"),
        &[
            ("2021-03-31 12:00:00", "within 1m"),
            ("2021-03-03 12:00:01", "within 1m"),
            ("2021-03-03 12:00:00", ""), // exactly latest - 1m: not newer
            ("2021-03-02 12:00:00", ""),
            ("2021-02-28 12:00:01", ""),
        ],
    );
    // In a leap year "Feb 31" is Mar 2.
    check(
        "UTC",
        &p("1m"),
        &[
            ("2020-03-31 12:00:00", "within 1m"),
            ("2020-03-02 12:00:01", "within 1m"),
            ("2020-03-02 12:00:00", ""),
        ],
    );
    // Oct 31 - 1m = "Sep 31" = Oct 1.
    check(
        "UTC",
        &p("1m"),
        &[
            ("2021-10-31 12:00:00", "within 1m"),
            ("2021-10-01 12:00:01", "within 1m"),
            ("2021-10-01 12:00:00", ""),
            ("2021-09-30 12:00:00", ""),
        ],
    );
    // Feb 29 - 1y = "2019-02-29" = Mar 1.
    check(
        "UTC",
        &p("1y"),
        &[
            ("2020-02-29 12:00:00", "within 1y"),
            ("2019-03-01 12:00:01", "within 1y"),
            ("2019-03-01 12:00:00", ""),
            ("2019-02-28 12:00:00", ""),
        ],
    );
    // Date first (2021-03-31 -1y-1m-1d = "2020-02-30" = Mar 1), then hours.
    check(
        "UTC",
        &p("1y1m1d1h"),
        &[
            ("2021-03-31 12:00:00", "within 1y1m1d1h"),
            ("2020-03-01 11:00:01", "within 1y1m1d1h"),
            ("2020-03-01 11:00:00", ""),
        ],
    );
}

#[test]
fn within_days_are_calendar_days_and_hours_are_absolute() {
    let p = |s| Policy {
        within: span(s),
        ..Policy::default()
    };
    // Berlin springs forward on 2021-03-28: "1d" back from noon is 23 hours.
    check(
        "Europe/Berlin",
        &p("1d"),
        &[
            ("2021-03-28 12:00:00", "within 1d"),
            ("2021-03-27 12:30:00", "within 1d"),
            ("2021-03-27 11:30:00", ""),
        ],
    );
    check(
        "Europe/Berlin",
        &p("24h"),
        &[
            ("2021-03-28 12:00:00", "within 24h"),
            ("2021-03-27 12:30:00", "within 24h"),
            ("2021-03-27 11:30:00", "within 24h"),
            ("2021-03-27 11:00:00", ""),
            ("2021-03-27 10:30:00", ""),
        ],
    );
}

#[test]
fn within_resolves_a_gap_or_fold_as_go_does() {
    let p = Policy {
        within: span("1d"),
        ..Policy::default()
    };
    // Back to 2021-10-31 02:30 in Berlin, which exists twice: Go takes the
    // later one, 01:30Z ("compatible" would take 00:30Z and keep 01:00Z).
    check(
        "Europe/Berlin",
        &p,
        &[
            ("2021-11-01T01:30:00Z", "within 1d"),
            ("2021-10-31T01:45:00Z", "within 1d"),
            ("2021-10-31T01:30:00Z", ""),
            ("2021-10-31T01:00:00Z", ""),
        ],
    );
    // Back to 2021-03-14 02:30 in New York, which does not exist: Go lands
    // on 06:30Z, 01:30 EST ("compatible" would say 07:30Z).
    check(
        "America/New_York",
        &p,
        &[
            ("2021-03-15T06:30:00Z", "within 1d"),
            ("2021-03-14T07:00:00Z", "within 1d"),
            ("2021-03-14T06:31:00Z", "within 1d"),
            ("2021-03-14T06:30:00Z", ""),
        ],
    );
}

#[test]
fn within_daily_keeps_one_per_day_inside_the_span() {
    let p = |s| Policy {
        within_daily: span(s),
        ..Policy::default()
    };
    check(
        "Europe/Berlin",
        &p("3d"),
        &[
            ("2021-06-10 20:00:00", "daily within 3d"),
            ("2021-06-10 08:00:00", ""),
            ("2021-06-09 12:00:00", "daily within 3d"),
            ("2021-06-08 12:00:00", "daily within 3d"),
            ("2021-06-07 21:00:00", "daily within 3d"),
            ("2021-06-07 19:00:00", ""), // before latest - 3d
            ("2021-06-01 12:00:00", ""),
        ],
    );
    // The oldest inside the span, in a day already kept.
    check(
        "Europe/Berlin",
        &p("30d"),
        &[
            ("2021-06-10 20:00:00", "daily within 30d"),
            ("2021-06-10 08:00:00", ""),
            ("2021-06-07 21:00:00", "daily within 30d"),
            ("2021-06-01 12:00:00", "daily within 30d"),
            ("2021-06-01 08:00:00", "oldest daily within 30d"),
        ],
    );
}

#[test]
fn within_hourly_weekly_monthly_yearly() {
    let p = Policy {
        within_hourly: span("2h"),
        within_weekly: span("1m"),
        within_monthly: span("1y"),
        within_yearly: span("10y"),
        ..Policy::default()
    };
    let all = "hourly within 2h, weekly within 1m, monthly within 1y, yearly within 10y";
    check(
        "UTC",
        &p,
        &[
            ("2021-06-10 20:30:00", all),
            ("2021-06-10 20:10:00", ""),
            ("2021-06-10 19:50:00", "hourly within 2h"),
            ("2021-06-10 18:00:00", ""),
            ("2021-06-07 12:00:00", ""), // Mon, same ISO week
            ("2021-06-06 12:00:00", "weekly within 1m"),
            ("2021-05-20 12:00:00", "weekly within 1m, monthly within 1y"),
            (
                "2020-12-01 12:00:00",
                "monthly within 1y, yearly within 10y",
            ),
        ],
    );
}

// ---- tags, future, equal times ----

#[test]
fn keep_tag_needs_every_tag_of_one_list() {
    let p = Policy {
        keep_tags: vec![
            parse_tag_list("a, b"),
            parse_tag_list("c"),
            parse_tag_list(""),
        ],
        ..Policy::default()
    };
    check_at(
        "UTC",
        &p,
        FAR,
        &[
            ("2021-01-05 12:00:00", &["a", "b", "x"], "tag a,b"),
            ("2021-01-04 12:00:00", &["a"], ""),
            ("2021-01-03 12:00:00", &[], "tag \"\""), // "" matches untagged
            ("2021-01-02 12:00:00", &["b", "c"], "tag c"),
            ("2021-01-01 12:00:00", &["c", "a", "b"], "tag a,b, tag c"),
        ],
    );
}

#[test]
fn future_snapshots_are_kept_flagged_and_not_counted() {
    let p = Policy {
        last: count(2),
        daily: count(1),
        within: span("1d"),
        keep_tags: vec![vec!["x".into()]],
        ..Policy::default()
    };
    let got = check_at(
        "UTC",
        &p,
        "2021-06-10T12:00:00Z",
        &[
            ("2021-06-12T00:00:00Z", &[], "future"),
            // Equal to now: not in the future, and the latest for "within".
            (
                "2021-06-10T12:00:00Z",
                &[],
                "within 1d, last 1/2, daily 1/1",
            ),
            ("2021-06-11T00:00:00Z", &["x"], "future, tag x"),
            ("2021-06-10T11:00:00Z", &[], "within 1d, last 2/2"),
            ("2021-06-09T12:00:00Z", &[], ""),
            ("2021-06-09T11:00:00Z", &["x"], "tag x"),
        ],
    );
    let future: Vec<bool> = got.iter().map(|d| d.future).collect();
    assert_eq!(future, [true, false, true, false, false, false]);
}

#[test]
fn only_future_snapshots() {
    let p = Policy {
        last: count(1),
        ..Policy::default()
    };
    let got = check_at(
        "UTC",
        &p,
        "2000-01-01T00:00:00Z",
        &[
            ("2021-06-12T00:00:00Z", &[], "future"),
            ("2021-06-13T00:00:00Z", &[], "future"),
        ],
    );
    assert!(got.iter().all(|d| d.future && d.keep));
}

#[test]
fn equal_times_keep_the_callers_order_earlier_is_newer() {
    let t = "2021-06-01 12:00:00";
    let last = Policy {
        last: count(2),
        ..Policy::default()
    };
    check("UTC", &last, &[(t, "last 1/2"), (t, "last 2/2"), (t, "")]);
    let daily = |n| Policy {
        daily: count(n),
        ..Policy::default()
    };
    check(
        "UTC",
        &daily(1),
        &[("2021-06-01 11:00:00", ""), (t, "daily 1/1"), (t, "")],
    );
    check("UTC", &daily(5), &[(t, "daily 1/5"), (t, "oldest daily")]);
}

// ---- time zones and DST ----

#[test]
fn berlin_spring_forward_day_is_one_bucket_of_23_hours() {
    let p = Policy {
        hourly: Count::Unlimited,
        daily: Count::Unlimited,
        ..Policy::default()
    };
    check(
        "Europe/Berlin",
        &p,
        &[
            (
                "2021-03-29T00:30:00+02:00",
                "hourly 1/unlimited, daily 1/unlimited",
            ),
            (
                "2021-03-28T23:30:00+02:00",
                "hourly 2/unlimited, daily 2/unlimited",
            ),
            ("2021-03-28T03:30:00+02:00", "hourly 3/unlimited"),
            ("2021-03-28T03:10:00+02:00", ""),
            ("2021-03-28T01:30:00+01:00", "hourly 4/unlimited"),
            ("2021-03-28T00:10:00+01:00", "hourly 5/unlimited"),
            (
                "2021-03-27T23:30:00+01:00",
                "hourly 6/unlimited, daily 3/unlimited",
            ),
        ],
    );
}

#[test]
fn berlin_fall_back_repeated_hour_is_one_bucket_and_the_day_has_25_hours() {
    let p = Policy {
        hourly: count(10),
        daily: Count::Unlimited,
        ..Policy::default()
    };
    check(
        "Europe/Berlin",
        &p,
        &[
            (
                "2021-10-31T23:30:00+01:00",
                "hourly 1/10, daily 1/unlimited",
            ),
            ("2021-10-31T03:05:00+01:00", "hourly 2/10"),
            ("2021-10-31T02:20:00+01:00", "hourly 3/10"), // second 02:xx
            ("2021-10-31T02:50:00+02:00", ""),            // first 02:xx
            ("2021-10-31T02:10:00+02:00", ""),
            ("2021-10-31T00:05:00+02:00", "hourly 4/10"),
            (
                "2021-10-30T23:00:00+02:00",
                "hourly 5/10, daily 2/unlimited",
            ),
            ("2021-10-30T22:00:00+02:00", "hourly 6/10, oldest daily"),
        ],
    );
}

#[test]
fn the_same_instants_bucket_differently_in_utc_and_new_york() {
    let p = Policy {
        daily: count(2),
        ..Policy::default()
    };
    let times = [
        "2021-06-02T02:00:00Z", // NY: 06-01 22:00
        "2021-06-01T23:00:00Z", // NY: 06-01 19:00
        "2021-06-01T12:00:00Z", // NY: 06-01 08:00
        "2021-05-31T03:00:00Z", // NY: 05-30 23:00
    ];
    let with =
        |want: [&'static str; 4]| -> Vec<(&str, &str)> { times.into_iter().zip(want).collect() };
    check("UTC", &p, &with(["daily 1/2", "daily 2/2", "", ""]));
    check(
        "America/New_York",
        &p,
        &with(["daily 1/2", "", "", "daily 2/2"]),
    );
}

// ---- whole policies ----

#[test]
fn empty_inputs_and_empty_policy() {
    let tz = zone("UTC");
    assert!(apply(&[], &Policy::default(), 0, &tz).is_empty());
    let items = [Item {
        time_unix_ns: 0,
        tags: &[],
    }];
    assert_eq!(
        apply(&items, &Policy::default(), 1, &tz),
        [Decision::default()]
    );
}

#[test]
fn policy_is_empty_only_without_any_rule() {
    assert!(Policy::default().is_empty());
    let zero = Policy {
        daily: Count::N(0),
        within: span("0d"),
        within_daily: span("0h"),
        ..Policy::default()
    };
    assert!(zero.is_empty());
    let rules = [
        Policy {
            last: count(1),
            ..Policy::default()
        },
        Policy {
            yearly: Count::Unlimited,
            ..Policy::default()
        },
        Policy {
            within: span("1h"),
            ..Policy::default()
        },
        Policy {
            within_yearly: span("1y"),
            ..Policy::default()
        },
        Policy {
            keep_tags: vec![parse_tag_list("a")],
            ..Policy::default()
        },
    ];
    for p in rules {
        assert!(!p.is_empty(), "{p:?}");
    }
}

/// `--keep-within 24h --keep-daily 30 --keep-weekly 12 --keep-monthly 12`.
fn tiers() -> Policy {
    Policy {
        within: span("24h"),
        daily: count(30),
        weekly: count(12),
        monthly: count(12),
        ..Policy::default()
    }
}

/// A year of hourly snapshots from 2021-01-01 00:30 to 2021-12-31 23:30
/// Berlin time (both DST changes), in a scrambled order.
fn year_of_hourly() -> Vec<i64> {
    let start = at("2020-12-31T23:30:00Z", &TimeZone::UTC);
    (0..8760i64)
        .map(|i| start + (i * 7919 % 8760) * HOUR_NS)
        .collect()
}

type Key = fn(&Zoned) -> (i32, i32, i32);

fn day(z: &Zoned) -> (i32, i32, i32) {
    (z.year().into(), z.month().into(), z.day().into())
}

fn week(z: &Zoned) -> (i32, i32, i32) {
    let w = z.date().iso_week_date();
    (w.year().into(), w.week().into(), 0)
}

fn month(z: &Zoned) -> (i32, i32, i32) {
    (z.year().into(), z.month().into(), 0)
}

fn year(z: &Zoned) -> (i32, i32, i32) {
    (z.year().into(), 0, 0)
}

/// The kept set from the rules' English description, for distinct times:
/// every snapshot newer than latest - `within_hours`; for each rule, the
/// newest snapshot of each of the `n` newest buckets, plus the oldest
/// snapshot if there are fewer than `n` buckets.
fn brute_force(
    times: &[i64],
    tz: &TimeZone,
    within_hours: i64,
    rules: &[(Key, usize)],
) -> BTreeSet<usize> {
    let latest = *times.iter().max().unwrap();
    let all = 0..times.len();
    let oldest = all.clone().min_by_key(|&i| times[i]).unwrap();
    let mut kept: BTreeSet<usize> = all
        .filter(|&i| times[i] > latest - within_hours * HOUR_NS)
        .collect();
    for &(key, n) in rules {
        let mut newest_of: BTreeMap<(i32, i32, i32), usize> = BTreeMap::new();
        for (i, &t) in times.iter().enumerate() {
            let z = Timestamp::from_nanosecond(t.into())
                .unwrap()
                .to_zoned(tz.clone());
            let e = newest_of.entry(key(&z)).or_insert(i);
            if t > times[*e] {
                *e = i;
            }
        }
        let mut buckets: Vec<usize> = newest_of.into_values().collect();
        buckets.sort_by_key(|&i| Reverse(times[i]));
        if buckets.len() < n {
            kept.insert(oldest);
        }
        kept.extend(buckets.into_iter().take(n));
    }
    kept
}

/// Run `policy` over the simulated year; the kept indices and decisions.
fn run_year(policy: &Policy, tz: &TimeZone) -> (Vec<i64>, BTreeSet<usize>, Vec<Decision>) {
    let times = year_of_hourly();
    let items: Vec<Item> = times
        .iter()
        .map(|&t| Item {
            time_unix_ns: t,
            tags: &[],
        })
        .collect();
    let now = times.iter().max().unwrap() + HOUR_NS;
    let got = apply(&items, policy, now, tz);
    for d in &got {
        assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
        assert!(!d.future);
    }
    let kept = (0..got.len()).filter(|&i| got[i].keep).collect();
    (times, kept, got)
}

#[test]
fn user_tiers_over_a_year_of_hourly_snapshots() {
    let tz = zone("Europe/Berlin");
    let (times, kept, _) = run_year(&tiers(), &tz);
    // 24 within 24h (all of Dec 31) + 29 more days + 7 more Sundays
    // (Oct 17 .. Nov 28) + 10 more month ends (Jan .. Nov, Oct being a Sunday).
    assert_eq!(kept.len(), 70);
    let rules: [(Key, usize); 3] = [(day, 30), (week, 12), (month, 12)];
    assert_eq!(kept, brute_force(&times, &tz, 24, &rules));
}

#[test]
fn user_tiers_plus_yearly_keep_the_oldest_of_the_year() {
    let tz = zone("Europe/Berlin");
    let policy = Policy {
        yearly: count(3),
        ..tiers()
    };
    let (times, kept, got) = run_year(&policy, &tz);
    assert_eq!(kept.len(), 71);
    let rules: [(Key, usize); 4] = [(day, 30), (week, 12), (month, 12), (year, 3)];
    assert_eq!(kept, brute_force(&times, &tz, 24, &rules));
    let by_time = |t: &str| &got[times.iter().position(|&x| x == at(t, &tz)).unwrap()];
    let newest = [
        "within 24h",
        "daily 1/30",
        "weekly 1/12",
        "monthly 1/12",
        "yearly 1/3",
    ];
    assert_eq!(by_time("2021-12-31 23:30:00").reasons, newest);
    assert_eq!(by_time("2021-01-01 00:30:00").reasons, ["oldest yearly"]);
    assert_eq!(by_time("2021-11-30 23:30:00").reasons, ["monthly 2/12"]);
    assert_eq!(by_time("2021-10-17 23:30:00").reasons, ["weekly 12/12"]);
}

// ---- parsers ----

#[test]
fn parse_span_accepts_restic_durations_and_weeks() {
    let cases = [
        ("1y6m", (1, 6, 0, 0), "1y6m"),
        ("30d", (0, 0, 30, 0), "30d"),
        ("24h", (0, 0, 0, 24), "24h"),
        ("2y3m4d5h", (2, 3, 4, 5), "2y3m4d5h"),
        ("5h2y", (2, 0, 0, 5), "2y5h"),
        ("2w", (0, 0, 14, 0), "14d"),
        ("1w2d", (0, 0, 9, 0), "9d"),
        (" 7d ", (0, 0, 7, 0), "7d"),
        ("0d", (0, 0, 0, 0), "0h"),
        ("4294967295h", (0, 0, 0, u32::MAX), "4294967295h"),
    ];
    for (text, (years, months, days, hours), shown) in cases {
        let s = parse_span(text).unwrap();
        assert_eq!(
            s,
            Span {
                years,
                months,
                days,
                hours
            },
            "{text}"
        );
        assert_eq!(s.to_string(), shown, "{text}");
        assert_eq!(parse_span(shown).unwrap(), s, "{text}");
    }
}

#[test]
fn parse_span_rejects_negatives_and_garbage() {
    let cases = [
        ("", "empty"),
        ("  ", "empty"),
        ("-1d", "negative"),
        ("1d-2h", "negative"),
        ("1x", "unknown unit 'x'"),
        ("1D", "unknown unit 'D'"),
        ("1.5d", "unknown unit '.'"),
        ("1 d", "unknown unit ' '"),
        ("1y 2m", "expected a number"),
        ("d", "expected a number"),
        ("+1d", "expected a number"),
        ("１d", "expected a number"),
        ("1", "no unit"),
        ("1d1d", "twice"),
        ("99999999999d", "too large"),
        ("613566757w", "too many days"),
    ];
    for (text, why) in cases {
        let err = parse_span(text).unwrap_err();
        assert!(err.contains(why), "{text:?}: {err}");
    }
}

#[test]
fn parse_count_accepts_numbers_and_unlimited() {
    assert_eq!(parse_count("0"), Ok(Count::Off));
    assert_eq!(parse_count("7"), Ok(Count::N(7)));
    assert_eq!(parse_count("4294967295"), Ok(Count::N(u32::MAX)));
    assert_eq!(parse_count("unlimited"), Ok(Count::Unlimited));
    assert_eq!(Count::N(7).to_string(), "7");
    assert_eq!(Count::Unlimited.to_string(), "unlimited");
    assert!(Count::N(0).is_off() && Count::Off.is_off() && !Count::Unlimited.is_off());
    assert!(parse_count("-1").unwrap_err().contains("use 'unlimited'"));
    for bad in ["", "abc", "1.5", "4294967296", "Unlimited", "+3", " 3", "-"] {
        assert!(parse_count(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn parse_time_reads_rfc3339_and_local_wall_clocks() {
    let utc = TimeZone::UTC;
    let berlin = zone("Europe/Berlin");
    let noon = 1_622_548_800 * 1_000_000_000; // 2021-06-01T12:00:00Z
    assert_eq!(parse_time("2021-06-01T12:00:00Z", &berlin), Ok(noon));
    assert_eq!(parse_time("2021-06-01T14:00:00+02:00", &utc), Ok(noon));
    assert_eq!(
        parse_time("2021-06-01T12:00:00.5Z", &utc),
        Ok(noon + 500_000_000)
    );
    assert_eq!(parse_time("2021-06-01 14:00:00", &berlin), Ok(noon));
    assert_eq!(parse_time("2021-06-01 12:00:00", &utc), Ok(noon));
    assert_eq!(parse_time("1969-12-31T23:59:59Z", &utc), Ok(-1_000_000_000));
    // "compatible": a gap moves forward, a fold takes the first occurrence.
    let same = |local: &str, tz: &TimeZone, rfc: &str| {
        assert_eq!(parse_time(local, tz), parse_time(rfc, &utc), "{local}");
    };
    same("2021-03-28 02:30:00", &berlin, "2021-03-28T03:30:00+02:00");
    same("2021-10-31 02:30:00", &berlin, "2021-10-31T02:30:00+02:00");
    let ny = zone("America/New_York");
    same("2021-03-14 02:30:00", &ny, "2021-03-14T03:30:00-04:00");
    same("2021-11-07 01:30:00", &ny, "2021-11-07T01:30:00-04:00");
}

#[test]
fn parse_time_rejects_garbage_and_times_out_of_range() {
    let tz = zone("Europe/Berlin");
    for bad in [
        "",
        "yesterday",
        "2021-06-01",
        "2021-06-01T12:00:00",
        "2021-06-01 12:00",
        "2021-13-01 00:00:00",
        "2021-02-30 00:00:00",
        "2021-06-01 12:00:00 +02:00",
    ] {
        let err = parse_time(bad, &tz).unwrap_err();
        assert!(err.contains("invalid time"), "{bad:?}: {err}");
    }
    let err = parse_time("3000-01-01T00:00:00Z", &tz).unwrap_err();
    assert!(err.contains("outside the supported range"), "{err}");
}

/// The `tzdb-bundle-always` feature: the zones these tests name resolve
/// without a system `/usr/share/zoneinfo` (jiff falls back to its copy).
#[test]
fn bundled_tzdb_has_the_zones_the_tests_use() {
    let bundled = jiff::tz::TimeZoneDatabase::bundled();
    let summer: Timestamp = "2021-07-01T00:00:00Z".parse().unwrap();
    for (name, hours) in [("Europe/Berlin", 2), ("America/New_York", -4), ("UTC", 0)] {
        let tz = bundled.get(name).unwrap();
        assert_eq!(tz.to_offset(summer).seconds(), hours * 3600, "{name}");
    }
}

/// Runs of one group as status builds them: per [`run_key`], the newest and
/// oldest time and the count, newest first.
fn runs_of(times: &[i64], policy: &Policy, tz: &TimeZone) -> Vec<Run> {
    let mut by_key: BTreeMap<i64, Run> = BTreeMap::new();
    for &t in times {
        let r = by_key.entry(run_key(policy, t, tz)).or_insert(Run {
            newest_ns: t,
            oldest_ns: t,
            count: 0,
        });
        r.newest_ns = r.newest_ns.max(t);
        r.oldest_ns = r.oldest_ns.min(t);
        r.count += 1;
    }
    let mut runs: Vec<Run> = by_key.into_values().collect();
    runs.sort_by_key(|r| Reverse(r.newest_ns));
    runs
}

fn count_strategy() -> impl proptest::strategy::Strategy<Value = Count> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Count::Off),
        (1u32..6).prop_map(Count::N),
        Just(Count::Unlimited)
    ]
}

fn span_strategy() -> impl proptest::strategy::Strategy<Value = Option<Span>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(None),
        prop::sample::select(vec!["1h", "5h", "1d", "2d", "1w", "1m", "1y2m"])
            .prop_map(|s| Some(parse_span(s).unwrap())),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// `kept_by_runs` (what status computes from its runs) gives the
    /// counts of `apply` over every snapshot, in zones with DST and one
    /// that turned its clocks back over midnight, with equal times,
    /// snapshots minutes to weeks apart, any rule on or off.
    #[test]
    fn kept_by_runs_agrees_with_every_snapshot(
        start in 1_200_000_000i64..1_700_000_000,
        gaps in proptest::collection::vec(
            proptest::prop_oneof![0i64..2, 0i64..900, 0i64..200_000, 0i64..3_000_000],
            1..150,
        ),
        zone_name in proptest::sample::select(
            vec!["UTC", "Europe/Berlin", "America/Sao_Paulo", "Australia/Lord_Howe"],
        ),
        counts in proptest::collection::vec(count_strategy(), 6),
        spans in proptest::collection::vec(span_strategy(), 6),
    ) {
        let tz = zone(zone_name);
        let policy = Policy {
            last: counts[0],
            hourly: counts[1],
            daily: counts[2],
            weekly: counts[3],
            monthly: counts[4],
            yearly: counts[5],
            within: spans[0],
            within_hourly: spans[1],
            within_daily: spans[2],
            within_weekly: spans[3],
            within_monthly: spans[4],
            within_yearly: spans[5],
            keep_tags: Vec::new(),
        };
        let mut t = start * 1_000_000_000;
        let times: Vec<i64> = gaps
            .iter()
            .map(|g| {
                t -= g * 1_000_000_000;
                t
            })
            .collect();
        let mut rules = vec![Rule::Within];
        for b in [Bucket::Each, Bucket::Hour, Bucket::Day, Bucket::Week, Bucket::Month, Bucket::Year] {
            rules.push(Rule::Count(b));
        }
        for b in [Bucket::Hour, Bucket::Day, Bucket::Week, Bucket::Month, Bucket::Year] {
            rules.push(Rule::CountWithin(b));
        }
        let items: Vec<Item> = times.iter().map(|&t| Item { time_unix_ns: t, tags: &[] }).collect();
        let want = kept(&items, &policy, i64::MAX, &tz, &rules);
        let runs = runs_of(&times, &policy, &tz);
        let got = kept_by_runs(&runs, &policy, &tz, &rules, |after| {
            Ok::<_, ()>(times.iter().filter(|&&t| after.is_none_or(|a| i128::from(t) > a)).count() as u64)
        })
        .unwrap();
        if zone_name == "UTC" {
            proptest::prop_assert!(got.is_some(), "UTC runs never overlap");
        }
        if let Some(got) = got {
            proptest::prop_assert_eq!(got, want);
        }
    }
}

/// Runs that overlap in time (a key came back: clocks turned back across
/// a bucket boundary) are declined rather than miscounted; touching runs
/// are not, and equal times cannot be in two runs.
#[test]
fn kept_by_runs_declines_runs_that_overlap() {
    let policy = Policy {
        daily: Count::N(10),
        ..Policy::default()
    };
    let tz = zone("UTC");
    let rules = [Rule::Count(Bucket::Day)];
    let run = |newest_ns, oldest_ns| Run {
        newest_ns,
        oldest_ns,
        count: 2,
    };
    let by = |runs: &[Run]| kept_by_runs(runs, &policy, &tz, &rules, |_| Ok::<_, ()>(0));
    assert_eq!(by(&[run(10, 5), run(7, 1)]), Ok(None));
    assert_eq!(by(&[run(10, 5), run(5, 1)]), Ok(None));
    assert_eq!(by(&[run(10, 5), run(4, 1)]), Ok(Some(vec![2])));
    assert_eq!(by(&[run(4, 10)]), Ok(None));
    assert_eq!(by(&[]), Ok(Some(vec![0])));
}
