//! Retention policy of `strata forget`: which snapshots a `--keep-*` policy
//! keeps, and why. A pure function over (time, tags) items; the caller loads
//! the snapshots, groups them, and removes what is not kept.
//!
//! The rules are restic 0.17's `forget`, with the `oldest <rule>` label of
//! restic's later releases, and one deviation of ours: a snapshot dated
//! after `now` is always kept with reason `future` (plus any `tag` reasons)
//! and takes no part in the time rules: it uses up no counts and is not the
//! "latest" that `--keep-within*` counts back from.
//!
//! How the other snapshots are walked (restic's algorithm):
//! - Newest first, by a stable sort: among equal times, the item earlier in
//!   the caller's slice counts as the newer one.
//! - A count rule (`--keep-last/hourly/daily/weekly/monthly/yearly N`) keeps
//!   a snapshot when its bucket differs from the bucket of the snapshot the
//!   rule kept before, until N buckets are kept (`unlimited`: never stops).
//!   Buckets are wall-clock fields in the caller's time zone: local hour,
//!   local date, ISO 8601 week (Monday to Sunday, with the ISO year), month,
//!   year; `last` gives every snapshot its own bucket. Only the previous kept
//!   bucket is compared, as restic does.
//! - If a count rule still has counts left at the oldest snapshot, the oldest
//!   is kept too, labelled `oldest <rule>` when its bucket was already kept.
//! - `--keep-within D` keeps snapshots strictly newer than `latest - D`, where
//!   `latest` is the newest snapshot not in the future; `--keep-within-<unit>`
//!   runs a bucket rule without a count over those snapshots (with the same
//!   oldest-snapshot rule). `latest - D` is Go's `AddDate` arithmetic (see
//!   [`super::timefmt`]): Mar 31 minus `1m` is Mar 3, not Feb 28.
//! - `--keep-tag` keeps snapshots that carry all tags of one of its lists.
//!
//! A zero count or span turns its rule off, as in restic.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

pub use super::timefmt::{Span, parse_time};
use super::timefmt::{go_back, instant, wall};

/// The N of a count rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Count {
    /// The rule is off (`0`).
    #[default]
    Off,
    /// Keep N buckets (`N(0)` is the same as `Off`).
    N(u32),
    /// Keep every bucket (`unlimited`).
    Unlimited,
}

impl Count {
    /// Is the rule off?
    pub fn is_off(self) -> bool {
        matches!(self, Count::Off | Count::N(0))
    }

    /// May a rule that has kept `kept` buckets keep another?
    fn has_room(self, kept: u32) -> bool {
        match self {
            Count::Off => false,
            Count::N(n) => kept < n,
            Count::Unlimited => true,
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Off => f.write_str("0"),
            Count::N(n) => write!(f, "{n}"),
            Count::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A retention policy: the `--keep-*` options of `forget`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--keep-last`.
    pub last: Count,
    /// `--keep-hourly`.
    pub hourly: Count,
    /// `--keep-daily`.
    pub daily: Count,
    /// `--keep-weekly`.
    pub weekly: Count,
    /// `--keep-monthly`.
    pub monthly: Count,
    /// `--keep-yearly`.
    pub yearly: Count,
    /// `--keep-within`.
    pub within: Option<Span>,
    /// `--keep-within-hourly`.
    pub within_hourly: Option<Span>,
    /// `--keep-within-daily`.
    pub within_daily: Option<Span>,
    /// `--keep-within-weekly`.
    pub within_weekly: Option<Span>,
    /// `--keep-within-monthly`.
    pub within_monthly: Option<Span>,
    /// `--keep-within-yearly`.
    pub within_yearly: Option<Span>,
    /// `--keep-tag`, one tag list per use (see [`parse_tag_list`]).
    pub keep_tags: Vec<Vec<String>>,
}

impl Policy {
    /// No rule at all: `forget` must refuse unless given snapshot ids.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, c)| c.is_off())
            && on(self.within).is_none()
            && self.spans().iter().all(|(_, s)| s.is_none())
            && self.keep_tags.is_empty()
    }

    /// The count rules, in the order their reasons are listed.
    fn counts(&self) -> [(Bucket, Count); 6] {
        [
            (Bucket::Each, self.last),
            (Bucket::Hour, self.hourly),
            (Bucket::Day, self.daily),
            (Bucket::Week, self.weekly),
            (Bucket::Month, self.monthly),
            (Bucket::Year, self.yearly),
        ]
    }

    /// The within-bucket rules, `None` when off, in the order their reasons
    /// are listed.
    fn spans(&self) -> [(Bucket, Option<Span>); 5] {
        [
            (Bucket::Hour, on(self.within_hourly)),
            (Bucket::Day, on(self.within_daily)),
            (Bucket::Week, on(self.within_weekly)),
            (Bucket::Month, on(self.within_monthly)),
            (Bucket::Year, on(self.within_yearly)),
        ]
    }
}

/// Parse the N of `--keep-<rule>`: `unlimited` or a non-negative integer
/// (`0`, the rule off, gives [`Count::Off`]).
pub fn parse_count(s: &str) -> Result<Count, String> {
    if s == "unlimited" {
        return Ok(Count::Unlimited);
    }
    if s.strip_prefix('-').is_some_and(all_digits) {
        return Err(format!(
            "invalid count {s:?}: negative values are not allowed, use 'unlimited' instead"
        ));
    }
    if !all_digits(s) {
        return Err(format!(
            "invalid count {s:?}: expected a non-negative integer or 'unlimited'"
        ));
    }
    match s.parse::<u32>() {
        Ok(0) => Ok(Count::Off),
        Ok(n) => Ok(Count::N(n)),
        Err(_) => Err(format!("invalid count {s:?}: too large")),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parse a `--keep-within*` duration as restic does: numbers with units
/// `y` (years), `m` (months), `d` (days), `h` (hours), in any order, e.g.
/// `1y6m`, `30d`, `24h`, `2y3m4d5h`; surrounding blanks are ignored. Our
/// extension: `w`, weeks of 7 days (`2w` is `14d`, `1w2d` is `9d`).
/// Stricter than restic: each unit at most once (restic lets the last one
/// win), and no negative numbers (restic's forget rejects those later).
pub fn parse_span(s: &str) -> Result<Span, String> {
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration: expected e.g. 1y6m, 30d, 2w or 24h".into());
    }
    let bad = |why: String| format!("invalid duration {s:?}: {why}");
    let mut span = Span::default();
    let mut weeks = 0u32;
    let mut seen = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (n, unit, tail) = next_term(rest).map_err(bad)?;
        if seen.contains(&unit) {
            return Err(bad(format!("unit {unit:?} given twice")));
        }
        seen.push(unit);
        *match unit {
            'y' => &mut span.years,
            'm' => &mut span.months,
            'w' => &mut weeks,
            'd' => &mut span.days,
            'h' => &mut span.hours,
            _ => {
                return Err(bad(format!(
                    "unknown unit {unit:?} after {n} (use y, m, w, d or h)"
                )));
            }
        } = n;
        rest = tail;
    }
    span.days = weeks
        .checked_mul(7)
        .and_then(|d| d.checked_add(span.days))
        .ok_or_else(|| bad("too many days".into()))?;
    Ok(span)
}

/// The leading `<number><unit>` of `s`, and what follows.
fn next_term(s: &str) -> Result<(u32, char, &str), String> {
    if s.starts_with('-') {
        return Err("negative values are not allowed".into());
    }
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, tail) = s.split_at(len);
    if digits.is_empty() {
        return Err(format!("expected a number at {tail:?}"));
    }
    let n = digits
        .parse::<u32>()
        .map_err(|_| format!("{digits} is too large"))?;
    let mut chars = tail.chars();
    match chars.next() {
        Some(unit) => Ok((n, unit, chars.as_str())),
        None => Err(format!("no unit after {n} (use y, m, w, d or h)")),
    }
}

/// Split one `--keep-tag` value into its tag list: comma-separated, blanks
/// around each tag trimmed (restic's TagList; `""` gives one empty tag, which
/// matches snapshots without tags).
pub fn parse_tag_list(s: &str) -> Vec<String> {
    s.split(',').map(|t| t.trim().to_string()).collect()
}

/// `span` unless it is zero (which turns its rule off).
fn on(span: Option<Span>) -> Option<Span> {
    span.filter(|s| !s.is_zero())
}

/// One snapshot as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    /// Snapshot time, unix nanoseconds.
    pub time_unix_ns: i64,
    /// Snapshot tags.
    pub tags: &'a [String],
}

/// The rule behind a keep reason: what `status` counts per rule, without
/// reading the reason's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Dated after `now` (`future`).
    Future,
    /// A `--keep-tag` list (`tag a,b`).
    Tag,
    /// `--keep-within` (`within 24h`).
    Within,
    /// `--keep-last` and `--keep-hourly` ... `--keep-yearly` (`last 1/3`,
    /// `daily 3/7`, `oldest daily`).
    Count(Bucket),
    /// `--keep-within-hourly` ... `--keep-within-yearly` (`daily within
    /// 30d`, `oldest daily within 30d`).
    CountWithin(Bucket),
}

/// The verdict on one item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Keep the snapshot (exactly when `reasons` is not empty).
    pub keep: bool,
    /// Why, in rule order: `future`, `tag a,b`, `within 24h`, `last 1/3`,
    /// `hourly 2/24`, `daily 3/unlimited`, `oldest daily`, `daily within 30d`,
    /// `oldest daily within 30d`, ... The CLI joins them with ", ".
    pub reasons: Vec<String>,
    /// The rule behind each reason, in the same order.
    pub rules: Vec<Rule>,
    /// The snapshot is dated after `now`.
    pub future: bool,
}

impl Decision {
    fn new(reasons: Vec<(Rule, String)>, future: bool) -> Decision {
        let (rules, reasons): (Vec<Rule>, Vec<String>) = reasons.into_iter().unzip();
        Decision {
            keep: !reasons.is_empty(),
            reasons,
            rules,
            future,
        }
    }
}

/// One decision per input item, in input order. `now_unix_ns` separates
/// future snapshots; `tz` is the zone whose wall clock makes the buckets
/// (the local zone of the machine running `forget`, `TimeZone::system()`).
/// Among items with equal times, the one earlier in `items` is the newer.
pub fn apply(
    items: &[Item<'_>],
    policy: &Policy,
    now_unix_ns: i64,
    tz: &TimeZone,
) -> Vec<Decision> {
    let (future, present): (Vec<usize>, Vec<usize>) = newest_first(items)
        .into_iter()
        .partition(|&i| items[i].time_unix_ns > now_unix_ns);
    let mut out = vec![Decision::default(); items.len()];
    for &i in &future {
        let mut reasons = vec![(Rule::Future, "future".to_string())];
        reasons.extend(tag_reasons(&policy.keep_tags, items[i].tags));
        out[i] = Decision::new(reasons, true);
    }
    if let Some(&newest) = present.first() {
        let mut walk = Walk::new(policy, items[newest].time_unix_ns, tz);
        for (nr, &i) in present.iter().enumerate() {
            let oldest = nr + 1 == present.len();
            out[i] = Decision::new(walk.reasons(&items[i], nr, oldest), false);
        }
    }
    out
}

/// How many snapshots each rule of `rules` keeps (`apply` over `items`;
/// a snapshot counts once per rule whatever number of reasons it gives).
pub fn kept(
    items: &[Item<'_>],
    policy: &Policy,
    now_unix_ns: i64,
    tz: &TimeZone,
    rules: &[Rule],
) -> Vec<u64> {
    let mut out = vec![0u64; rules.len()];
    for d in apply(items, policy, now_unix_ns, tz) {
        for (k, rule) in rules.iter().enumerate() {
            if d.keep && d.rules.contains(rule) {
                out[k] += 1;
            }
        }
    }
    out
}

/// The run a snapshot at `time_unix_ns` belongs to for [`kept_by_runs`]:
/// its local hour when an hourly rule is on, else its local date. Either
/// determines the bucket of every rule but `last` (a date lies in one ISO
/// week, month and year).
pub fn run_key(policy: &Policy, time_unix_ns: i64, tz: &TimeZone) -> i64 {
    let hourly = !policy.hourly.is_off() || on(policy.within_hourly).is_some();
    let b = if hourly { Bucket::Hour } else { Bucket::Day };
    b.key(wall(time_unix_ns, tz), 0)
}

/// The snapshots of one [`run_key`] in a group: their newest and oldest
/// times and how many there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Unix ns of the newest.
    pub newest_ns: i64,
    /// Unix ns of the oldest.
    pub oldest_ns: i64,
    /// How many (at least 1).
    pub count: u64,
}

/// [`kept`] for `rules` (none of them [`Rule::Future`] or [`Rule::Tag`])
/// from one group's runs instead of each snapshot: what `status` needs at
/// any number of snapshots. `runs` has one entry per [`run_key`] of the
/// group's snapshots, all dated at or before `now`, newest first.
///
/// Within a run, a bucket rule can keep only the newest snapshot (every
/// other one has the bucket kept just before it), except the group's
/// oldest snapshot: so `apply` over each run's newest plus the oldest
/// decides as over every snapshot. `last N` keeps the newest N, `within D`
/// those after a bound, counted by `within_after` (given the bound,
/// `None` for no bound: strictly after it). `None` when two runs overlap
/// in time: a key came back (clocks turned back across a bucket
/// boundary); then [`kept`] must walk every snapshot.
pub fn kept_by_runs<E>(
    runs: &[Run],
    policy: &Policy,
    tz: &TimeZone,
    rules: &[Rule],
    within_after: impl FnOnce(Option<i128>) -> Result<u64, E>,
) -> Result<Option<Vec<u64>>, E> {
    if runs
        .iter()
        .any(|r| r.count == 0 || r.oldest_ns > r.newest_ns)
        || runs.windows(2).any(|w| w[1].newest_ns >= w[0].oldest_ns)
    {
        return Ok(None);
    }
    let mut out = vec![0u64; rules.len()];
    let (Some(newest), Some(last)) = (runs.first(), runs.last()) else {
        return Ok(Some(out));
    };
    let mut items: Vec<Item<'_>> = runs
        .iter()
        .map(|r| Item {
            time_unix_ns: r.newest_ns,
            tags: &[],
        })
        .collect();
    if last.count > 1 {
        items.push(Item {
            time_unix_ns: last.oldest_ns,
            tags: &[],
        });
    }
    let by_runs = kept(&items, policy, i64::MAX, tz, rules);
    let present: u64 = runs.iter().map(|r| r.count).sum();
    let mut within_after = Some(within_after);
    for (k, rule) in rules.iter().enumerate() {
        out[k] = match rule {
            Rule::Count(Bucket::Each) => match policy.last {
                Count::Off => 0,
                Count::N(n) => present.min(u64::from(n)),
                Count::Unlimited => present,
            },
            Rule::Count(_) | Rule::CountWithin(_) => by_runs[k],
            Rule::Within => match (on(policy.within), within_after.take()) {
                (Some(span), Some(f)) => f(Window::new(span, newest.newest_ns, tz).after_ns)?,
                _ => 0,
            },
            Rule::Future | Rule::Tag => 0,
        };
    }
    Ok(Some(out))
}

/// Indices of `items`, newest first; equal times keep the caller's order.
fn newest_first(items: &[Item<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].time_unix_ns));
    order
}

/// restic's `HasTags`: all tags of `list` present; an empty tag matches a
/// snapshot without tags (and, as there, ends the check).
fn has_tags(tags: &[String], list: &[String]) -> bool {
    for want in list {
        if want.is_empty() && tags.is_empty() {
            return true;
        }
        if !tags.contains(want) {
            return false;
        }
    }
    true
}

/// `tag a,b` for every `--keep-tag` list the item matches (an empty tag
/// prints as `""`).
fn tag_reasons(lists: &[Vec<String>], tags: &[String]) -> Vec<(Rule, String)> {
    lists
        .iter()
        .filter(|list| has_tags(tags, list))
        .map(|list| {
            let text = format!(
                "tag {}",
                list.iter()
                    .map(|t| shown_tag(t))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            (Rule::Tag, text)
        })
        .collect()
}

fn shown_tag(tag: &str) -> &str {
    if tag.is_empty() { "\"\"" } else { tag }
}

/// What a rule groups snapshots by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Every snapshot alone (`--keep-last`).
    Each,
    /// An hour of the wall clock.
    Hour,
    /// A day.
    Day,
    /// An ISO week.
    Week,
    /// A month.
    Month,
    /// A year.
    Year,
}

impl Bucket {
    /// The rule's name: `last`, `hourly`, `daily`, `weekly`, `monthly`,
    /// `yearly`.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Each => "last",
            Bucket::Hour => "hourly",
            Bucket::Day => "daily",
            Bucket::Week => "weekly",
            Bucket::Month => "monthly",
            Bucket::Year => "yearly",
        }
    }

    /// The bucket of the `nr`-th snapshot (newest first) with wall clock `at`.
    fn key(self, at: DateTime, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(at.year()),
            i64::from(at.month()),
            i64::from(at.day()),
            i64::from(at.hour()),
        );
        match self {
            Bucket::Each => nr as i64,
            Bucket::Hour => ((y * 100 + m) * 100 + d) * 100 + h,
            Bucket::Day => (y * 100 + m) * 100 + d,
            Bucket::Week => {
                let iso = at.date().iso_week_date();
                i64::from(iso.year()) * 100 + i64::from(iso.week())
            }
            Bucket::Month => y * 100 + m,
            Bucket::Year => y,
        }
    }
}

/// A bucket rule's progress through the walk.
#[derive(Debug)]
struct Tally {
    bucket: Bucket,
    /// How many buckets it may keep.
    limit: Count,
    /// Buckets kept so far.
    kept: u32,
    /// The bucket of the last snapshot it kept.
    prev: Option<i64>,
}

impl Tally {
    fn new(bucket: Bucket, limit: Count) -> Tally {
        Tally {
            bucket,
            limit,
            kept: 0,
            prev: None,
        }
    }

    /// Offer the `nr`-th snapshot (newest first), at wall clock `at`;
    /// `Some(label)` if the rule keeps it: a bucket other than the one kept
    /// before, or the oldest snapshot while counts are left (`Oldest` when
    /// its bucket was kept already).
    fn offer(&mut self, at: DateTime, nr: usize, oldest: bool) -> Option<Label> {
        if !self.limit.has_room(self.kept) {
            return None;
        }
        let key = self.bucket.key(at, nr);
        let again = self.prev == Some(key);
        if again && !oldest {
            return None;
        }
        self.prev = Some(key);
        self.kept += 1;
        Some(if again {
            Label::Oldest
        } else {
            Label::Nth(self.kept)
        })
    }
}

/// How a bucket rule kept a snapshot.
enum Label {
    /// The n-th bucket it kept (1 = newest).
    Nth(u32),
    /// The oldest snapshot, in a bucket already kept.
    Oldest,
}

/// The reach of a `--keep-within*` rule: snapshots strictly newer than
/// `latest - span` (`after_ns`; `None`: no bound).
#[derive(Debug)]
struct Window {
    span: Span,
    after_ns: Option<i128>,
}

impl Window {
    fn new(span: Span, latest_ns: i64, tz: &TimeZone) -> Window {
        let after = go_back(instant(latest_ns), &span, tz);
        Window {
            span,
            after_ns: after.map(|t| t.as_nanosecond()),
        }
    }

    fn holds(&self, time_unix_ns: i64) -> bool {
        self.after_ns.is_none_or(|a| i128::from(time_unix_ns) > a)
    }
}

/// The state of one pass over the present snapshots, newest first.
struct Walk<'a> {
    keep_tags: &'a [Vec<String>],
    tz: &'a TimeZone,
    within: Option<Window>,
    counts: Vec<Tally>,
    windows: Vec<(Window, Tally)>,
}

impl<'a> Walk<'a> {
    /// `latest_ns`: the newest snapshot not in the future.
    fn new(policy: &'a Policy, latest_ns: i64, tz: &'a TimeZone) -> Walk<'a> {
        let counts = policy
            .counts()
            .into_iter()
            .filter(|(_, c)| !c.is_off())
            .map(|(b, c)| Tally::new(b, c))
            .collect();
        let windows = policy
            .spans()
            .into_iter()
            .filter_map(|(b, span)| {
                let w = Window::new(on(span)?, latest_ns, tz);
                Some((w, Tally::new(b, Count::Unlimited)))
            })
            .collect();
        Walk {
            keep_tags: &policy.keep_tags,
            tz,
            within: on(policy.within).map(|s| Window::new(s, latest_ns, tz)),
            counts,
            windows,
        }
    }

    /// The reasons to keep `item`, the `nr`-th snapshot, newest first.
    fn reasons(&mut self, item: &Item<'_>, nr: usize, oldest: bool) -> Vec<(Rule, String)> {
        let t = item.time_unix_ns;
        let at = wall(t, self.tz);
        let mut out = tag_reasons(self.keep_tags, item.tags);
        if let Some(w) = self.within.as_ref().filter(|w| w.holds(t)) {
            out.push((Rule::Within, format!("within {}", w.span)));
        }
        for tally in &mut self.counts {
            let (bucket, name) = (tally.bucket, tally.bucket.name());
            out.extend(tally.offer(at, nr, oldest).map(|l| match l {
                Label::Nth(n) => (Rule::Count(bucket), format!("{name} {n}/{}", tally.limit)),
                Label::Oldest => (Rule::Count(bucket), format!("oldest {name}")),
            }));
        }
        for (w, tally) in self.windows.iter_mut().filter(|(w, _)| w.holds(t)) {
            let bucket = tally.bucket;
            let name = format!("{} within {}", bucket.name(), w.span);
            out.extend(tally.offer(at, nr, oldest).map(|l| match l {
                Label::Nth(_) => (Rule::CountWithin(bucket), name.clone()),
                Label::Oldest => (Rule::CountWithin(bucket), format!("oldest {name}")),
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests;
