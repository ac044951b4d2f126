//! Time helpers for snapshots: parsing `--time` values, reading an instant
//! as a local wall clock, and Go's calendar arithmetic (`time.AddDate`),
//! which restic's `--keep-within*` rules use and `retention` reproduces.
//!
//! Instants are unix nanoseconds in an `i64` (1677..2262), as in manifests.

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// A `--keep-within*` duration: calendar years, months and days, then
/// absolute hours. Displays as the canonical text (`1y6m`, `30d`, `24h`;
/// weeks appear as days; an all-zero span as `0h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Calendar years.
    pub years: u32,
    /// Calendar months.
    pub months: u32,
    /// Calendar days.
    pub days: u32,
    /// Absolute hours.
    pub hours: u32,
}

impl Span {
    /// An all-zero span (turns its rule off).
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n != 0) {
            write!(f, "{n}{unit}")?;
        }
        Ok(())
    }
}

/// The jiff instant of `unix_ns`. Every `i64` nanosecond count lies inside
/// jiff's range (years -9999..9999), so the fallback is never taken.
pub(crate) fn instant(unix_ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(unix_ns)).unwrap_or(Timestamp::MIN)
}

/// The wall clock in `tz` at `unix_ns`.
pub(crate) fn wall(unix_ns: i64, tz: &TimeZone) -> DateTime {
    tz.to_datetime(instant(unix_ns))
}

/// Parse the `--time` of `strata snapshot`: RFC 3339 with an offset or `Z`
/// (`2024-05-01T14:30:00+02:00`, `2024-05-01T12:30:00.5Z`), or
/// `YYYY-MM-DD HH:MM:SS` read as a wall clock in `tz`. Returns unix ns.
///
/// The RFC 3339 form goes through jiff's parser, which also accepts the
/// RFC 9557 superset (a `[zone]` annotation, omitted seconds); the offset
/// written decides the instant.
///
/// A wall clock that does not exist or exists twice in `tz` is resolved
/// with jiff's "compatible" disambiguation (as RFC 5545 and Temporal do):
/// a time in a spring-forward gap moves forward by the gap's length
/// (Berlin 02:30 on a spring-forward day is 03:30 summer time), and a time
/// in a fall-back fold takes its first, earlier occurrence (summer time).
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<i64, String> {
    let ts = match DateTime::strptime("%Y-%m-%d %H:%M:%S", s) {
        Ok(local) => tz
            .to_ambiguous_timestamp(local)
            .compatible()
            .map_err(|e| format!("invalid time {s:?}: {e}"))?,
        Err(_) => s.parse::<Timestamp>().map_err(|e| {
            format!(
                "invalid time {s:?}: expected RFC 3339 with an offset \
                 (2024-05-01T14:30:00+02:00, 2024-05-01T12:30:00Z) or \
                 YYYY-MM-DD HH:MM:SS in the local time zone ({e})"
            )
        })?,
    };
    i64::try_from(ts.as_nanosecond())
        .map_err(|_| format!("time {s:?} is outside the supported range (years 1678 to 2261)"))
}

/// Go's `t.AddDate(-years, -months, -days).Add(-hours * time.Hour)` for a
/// `span` and `t` in `tz`: the date part moves on the wall clock, the hours are
/// absolute. Go normalises an overflowing date instead of clamping it:
/// Oct 31 minus one month is "Sep 31", which is Oct 1; Mar 31 minus one
/// month is Mar 3 (Mar 2 in a leap year); Feb 29 minus one year is Mar 1.
///
/// `None` when the result falls before jiff's range (year -9999), that is
/// before every snapshot.
pub(crate) fn go_back(t: Timestamp, span: &Span, tz: &TimeZone) -> Option<Timestamp> {
    let clock = tz.to_datetime(t);
    let date = go_date(
        i64::from(clock.year()) - i64::from(span.years),
        i64::from(clock.month()) - i64::from(span.months),
        i64::from(clock.day()) - i64::from(span.days),
    )?;
    let moved = go_resolve(date.to_datetime(clock.time()), tz)?;
    moved
        .checked_sub(SignedDuration::from_hours(i64::from(span.hours)))
        .ok()
}

/// Go's `time.Date` date normalisation: the month's overflow carries into
/// the year, then the day counts on from the first of that month.
fn go_date(year: i64, month: i64, day: i64) -> Option<Date> {
    let y = year + (month - 1).div_euclid(12);
    let m = (month - 1).rem_euclid(12) + 1;
    let first = Date::new(i16::try_from(y).ok()?, i8::try_from(m).ok()?, 1).ok()?;
    let rest = jiff::Span::new().try_days(day - 1).ok()?;
    first.checked_add(rest).ok()
}

/// Go's `time.Date` zone lookup for a wall clock: read the clock as UTC,
/// take the offset in force at that instant, and use the offset in force
/// at the instant this first guess gives. For a wall clock that exists
/// once this is its instant; in a gap or a fold the choice depends on the
/// sign of the offsets (Berlin's fold takes the later occurrence, New
/// York's gap the earlier offset), which differs from "compatible".
fn go_resolve(clock: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    let as_utc = Offset::UTC.to_timestamp(clock).ok()?;
    let shift = |offset: Offset| {
        as_utc
            .checked_sub(SignedDuration::from_secs(i64::from(offset.seconds())))
            .ok()
    };
    let guess = shift(tz.to_offset(as_utc))?;
    shift(tz.to_offset(guess))
}
