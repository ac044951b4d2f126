//! `strata schedule --print systemd|cron [--install]`: timer units or
//! crontab lines that run `strata run` from strata.toml: one timer at the
//! shortest source cadence below a day ("continuous"; each run takes what
//! is due), and a daily run at `cadence.daily_at` that forces the daily
//! sources (those with `every` of 20 hours or more), so they run at a
//! predictable time. Nothing is written without `--install`, which says
//! each file it wrote.

use super::args::{ScheduleArgs, ScheduleKind};
use super::{exit, output};
use crate::backend::fsutil;
use crate::error::{Error, IoContext, Result};
use crate::policy::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DAILY: Duration = Duration::from_secs(20 * 3600);

/// What to schedule: the continuous interval (if any source runs more
/// often than daily, or has no `every`) and the daily sources.
struct Plan {
    continuous: Option<Duration>,
    daily: Vec<String>,
}

fn plan(cfg: &Config) -> Plan {
    let mut continuous: Option<Duration> = None;
    let mut daily = Vec::new();
    for s in &cfg.sources {
        match s.every {
            Some(e) if e >= DAILY => daily.push(s.name.clone()),
            e => {
                // No `every`: every run; schedule it every 5 minutes.
                let e = e
                    .unwrap_or(Duration::from_secs(300))
                    .max(Duration::from_secs(60));
                continuous = Some(continuous.map_or(e, |c| c.min(e)));
            }
        }
    }
    Plan { continuous, daily }
}

/// Quote for a shell / systemd command line.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn command(exe: &Path, cfg: &Path, sources: &[String]) -> String {
    let mut parts = vec![
        quote(&exe.to_string_lossy()),
        "run".into(),
        "--config".into(),
        quote(&cfg.to_string_lossy()),
    ];
    parts.extend(sources.iter().map(|s| quote(s)));
    parts.join(" ")
}

/// systemd's `OnCalendar=` for "every `d`", when it divides an hour or a
/// day evenly; else `None` (then `OnUnitActiveSec=`).
fn on_calendar(d: Duration) -> Option<String> {
    let m = d.as_secs() / 60;
    if d.as_secs() % 60 != 0 || m == 0 {
        return None;
    }
    if m < 60 && 60 % m == 0 {
        return Some(format!("*-*-* *:00/{m}:00"));
    }
    if m % 60 == 0 && 24 % (m / 60) == 0 {
        return Some(format!("*-*-* 00/{}:00:00", m / 60));
    }
    None
}

/// The files to write: (path, contents).
fn systemd(cfg: &Config, exe: &Path, cache: Option<&Path>) -> Vec<(PathBuf, String)> {
    let p = plan(cfg);
    let dir = PathBuf::from("/etc/systemd/system");
    let env = cache
        .map(|c| {
            format!(
                "Environment=STRATA_CACHE_DIR={}\n",
                quote(&c.to_string_lossy())
            )
        })
        .unwrap_or_default();
    let service = |what: &str, sources: &[String]| {
        format!(
            "# written by `strata schedule --print systemd`\n[Unit]\nDescription=strata backup policy ({what})\n\
             Wants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\n{env}\
             ExecStart={}\nNice=10\nIOSchedulingClass=idle\n",
            command(exe, &cfg.path, sources)
        )
    };
    let mut out = Vec::new();
    let (h, m) = cfg.cadence.daily_at;
    if let Some(every) = p.continuous {
        let when = match on_calendar(every) {
            Some(c) => format!("OnCalendar={c}\nPersistent=true\n"),
            None => format!(
                "OnBootSec=1min\nOnUnitActiveSec={}\n",
                humantime::format_duration(every)
            ),
        };
        out.push((dir.join("strata.service"), service("continuous", &[])));
        out.push((
            dir.join("strata.timer"),
            format!(
                "# written by `strata schedule --print systemd`\n[Unit]\nDescription=strata run every {}\n\n\
                 [Timer]\n{when}\n[Install]\nWantedBy=timers.target\n",
                humantime::format_duration(every)
            ),
        ));
    }
    if !p.daily.is_empty() || p.continuous.is_none() {
        out.push((dir.join("strata-daily.service"), service("daily", &p.daily)));
        out.push((
            dir.join("strata-daily.timer"),
            format!(
                "# written by `strata schedule --print systemd`\n[Unit]\nDescription=strata daily run\n\n\
                 [Timer]\nOnCalendar=*-*-* {h:02}:{m:02}:00\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
            ),
        ));
    }
    out
}

/// `/etc/cron.d/strata` (crontab lines with a user field).
fn cron(cfg: &Config, exe: &Path, cache: Option<&Path>) -> String {
    let p = plan(cfg);
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let mut out = String::from("# written by `strata schedule --print cron`\nSHELL=/bin/sh\n");
    if let Some(c) = cache {
        out.push_str(&format!("STRATA_CACHE_DIR={}\n", c.display()));
    }
    if let Some(every) = p.continuous {
        let m = (every.as_secs() / 60).max(1);
        let spec = if m < 60 {
            format!("*/{m} * * * *")
        } else if m % 60 == 0 && m < 1440 {
            format!("0 */{} * * *", m / 60)
        } else {
            "*/5 * * * *".to_string()
        };
        out.push_str(&format!("{spec} {user} {}\n", command(exe, &cfg.path, &[])));
    }
    if !p.daily.is_empty() || p.continuous.is_none() {
        let (h, m) = cfg.cadence.daily_at;
        out.push_str(&format!(
            "{m} {h} * * * {user} {}\n",
            command(exe, &cfg.path, &p.daily)
        ));
    }
    out
}

pub fn run(a: &ScheduleArgs) -> Result<i32> {
    let cfg = crate::policy::config::find_and_load(a.config.config.as_deref())?;
    let cfg = Config {
        path: std::path::absolute(&cfg.path).unwrap_or_else(|_| cfg.path.clone()),
        ..cfg
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find the strata binary: {e}")))?;
    let cache = crate::cache::base_dir().map(|c| std::path::absolute(&c).unwrap_or(c));
    let files: Vec<(PathBuf, String)> = match a.print {
        ScheduleKind::Systemd => systemd(&cfg, &exe, cache.as_deref()),
        ScheduleKind::Cron => vec![(
            PathBuf::from("/etc/cron.d/strata"),
            cron(&cfg, &exe, cache.as_deref()),
        )],
    };
    if !a.install {
        for (path, text) in &files {
            output::line(&format!("# {}", path.display()))?;
            output::bytes(text.as_bytes())?;
            output::line("")?;
        }
        return Ok(exit::OK);
    }
    for (path, text) in &files {
        fsutil::write_atomic(path, text.as_bytes(), fsutil::Atomic::local(0o644))?;
        output::line(&format!("wrote {}", path.display()))?;
    }
    if a.print == ScheduleKind::Systemd {
        let timers: Vec<String> = files
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "timer"))
            .filter_map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        systemctl(&["daemon-reload"])?;
        let mut args = vec!["enable", "--now"];
        args.extend(timers.iter().map(String::as_str));
        systemctl(&args)?;
        output::line(&format!(
            "ran systemctl daemon-reload; systemctl {}",
            args.join(" ")
        ))?;
    }
    Ok(exit::OK)
}

fn systemctl(args: &[&str]) -> Result<()> {
    let st = std::process::Command::new("systemctl")
        .args(args)
        .status()
        .at(Path::new("systemctl"))?;
    if !st.success() {
        return Err(Error::Invalid(format!(
            "systemctl {} failed ({st})",
            args.join(" ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendars() {
        assert_eq!(
            on_calendar(Duration::from_secs(300)).as_deref(),
            Some("*-*-* *:00/5:00")
        );
        assert_eq!(
            on_calendar(Duration::from_secs(7200)).as_deref(),
            Some("*-*-* 00/2:00:00")
        );
        assert_eq!(on_calendar(Duration::from_secs(420)), None);
    }

    #[test]
    fn units_and_lines() {
        let cfg = crate::policy::config::parse(
            "[sources.data]\npaths = [\"/srv\"]\nevery = \"5m\"\n[sources.db]\ncommand = \"pg_dump app\"\nname = \"db.sql\"\nevery = \"1d\"\n",
            Path::new("/etc/strata/strata.toml"),
        )
        .unwrap();
        let exe = Path::new("/usr/bin/strata");
        let files = systemd(&cfg, exe, None);
        let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(files[1].1.contains("OnCalendar=*-*-* *:00/5:00"));
        assert!(
            files[2]
                .1
                .contains("ExecStart=/usr/bin/strata run --config /etc/strata/strata.toml db\n")
        );
        let c = cron(&cfg, exe, None);
        assert!(c.contains("*/5 * * * * "), "{c}");
        assert!(c.contains("0 3 * * * "), "{c}");
    }
}
