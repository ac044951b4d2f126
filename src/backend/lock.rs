//! S3 Object Lock settings and retention dates (format-spec/backend.md
//! "Object Lock"): [`ObjectLock`] (a mode and a number of days, from
//! `offsite_lock` in strata.toml or `sync --object-lock DUR --lock-mode M`),
//! [`Retention`] (what a stored version carries) and the date format S3
//! wants. Pure: no I/O.

use std::time::Duration;

/// One day.
const DAY: i64 = 24 * 3600;

/// The retention mode of an Object Lock (S3's `x-amz-object-lock-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// No one can delete the version or shorten its retention, not even
    /// the account's root user (on real S3; moto allows shortening).
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can delete it early.
    Governance,
}

impl LockMode {
    /// `compliance` or `governance` (any case).
    pub fn parse(s: &str) -> Result<LockMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "compliance" => Ok(LockMode::Compliance),
            "governance" => Ok(LockMode::Governance),
            _ => Err(format!(
                "lock mode {s:?}: expected \"compliance\" or \"governance\""
            )),
        }
    }

    /// As S3 spells it: `COMPLIANCE`, `GOVERNANCE`.
    pub fn s3(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// Write every object with a retention of `days` from the time it is
/// written, in `mode`; a full-key sync extends the retention of what the
/// source still holds before it runs out ([`ObjectLock::needs_extension`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectLock {
    /// The retention mode.
    pub mode: LockMode,
    /// Whole days of retention, at least 1.
    pub days: u32,
}

impl ObjectLock {
    /// A lock of `period` (whole days, `30d`, `4w`; at least one day) in
    /// `mode`.
    pub fn new(mode: LockMode, period: Duration) -> Result<ObjectLock, String> {
        let secs = period.as_secs();
        if secs == 0 || secs % DAY as u64 != 0 {
            return Err(format!(
                "object lock period {}: whole days, at least one (e.g. \"30d\")",
                humantime::format_duration(period)
            ));
        }
        let days = u32::try_from(secs / DAY as u64)
            .map_err(|_| "object lock period: too long".to_string())?;
        Ok(ObjectLock { mode, days })
    }

    /// The retain-until date of an object written at `now` (unix seconds).
    pub fn until(&self, now: i64) -> i64 {
        now.saturating_add(i64::from(self.days) * DAY)
    }

    /// Whether a version retained until `until` is due for extension at
    /// `now`: less than half the period is left (a daily sync then extends
    /// each object about every `days / 2` days, never letting it run out).
    pub fn needs_extension(&self, until: i64, now: i64) -> bool {
        until.saturating_sub(now) < i64::from(self.days) * DAY / 2
    }
}

/// The retention a stored version carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Its mode.
    pub mode: LockMode,
    /// Retained until (unix seconds).
    pub until: i64,
}

/// `unix` seconds as S3 writes a date: `2026-12-06T19:50:48Z`.
pub fn s3_date(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "9999-12-31T23:59:59Z".to_string(),
    }
}

/// An S3 date (`2026-12-06T19:50:48Z`, `2026-12-06T19:50:48.000Z`) as unix
/// seconds (fractions dropped).
pub fn parse_s3_date(s: &str) -> Option<i64> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_modes_and_dates() {
        let l = ObjectLock::new(
            LockMode::parse("Governance").unwrap(),
            Duration::from_secs(30 * 86400),
        )
        .unwrap();
        assert_eq!((l.mode, l.days), (LockMode::Governance, 30));
        assert!(ObjectLock::new(LockMode::Compliance, Duration::from_secs(3600)).is_err());
        assert!(ObjectLock::new(LockMode::Compliance, Duration::ZERO).is_err());
        assert!(LockMode::parse("legal-hold").is_err());
        assert_eq!(s3_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            parse_s3_date("2026-12-06T19:50:48.000Z"),
            parse_s3_date("2026-12-06T19:50:48Z")
        );
        assert_eq!(parse_s3_date(&s3_date(1_800_000_000)), Some(1_800_000_000));
        let now = 1_000_000;
        assert!(!l.needs_extension(l.until(now), now));
        assert!(!l.needs_extension(now + 16 * 86400, now));
        assert!(l.needs_extension(now + 14 * 86400, now));
        assert!(l.needs_extension(now - 1, now));
    }
}
