//! `strata schedule --print systemd|cron [--install]`: one timer unit or
//! crontab line that runs `strata run` from strata.toml at the shortest
//! cadence of its sources; each run takes what is due, a source whose
//! `every` is a day or more from its time of day (`at`, `[cadence]
//! daily_at`; `policy::state::LastRun::due_at`), so one job is enough and
//! no two jobs of the same policy start together. The job gets the cache
//! directory; credentials come from the policy's `environment_file`, which
//! `--install` creates (0600, every variable commented out) when it does
//! not exist. Nothing is written without `--install`, which says each file
//! it wrote.

use super::args::{ScheduleArgs, ScheduleKind};
use super::{exit, output};
use crate::backend::fsutil;
use crate::error::{Error, IoContext, Result};
use crate::policy::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the job runs when every source is daily or slower: often
/// enough to take each at its time of day within a quarter of an hour.
const ONLY_DAILY: Duration = Duration::from_secs(15 * 60);

/// How often the job runs: the shortest `every` below a day (a source
/// without one runs every 5 minutes), at least a minute.
fn interval(cfg: &Config) -> Duration {
    cfg.sources
        .iter()
        .filter_map(|s| match s.every {
            Some(e) if e >= crate::policy::config::DAY => None,
            e => Some(e.unwrap_or(Duration::from_secs(300))),
        })
        .min()
        .unwrap_or(ONLY_DAILY)
        .max(Duration::from_secs(60))
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
    let every = interval(cfg);
    let dir = PathBuf::from("/etc/systemd/system");
    let env = cache
        .map(|c| {
            format!(
                "Environment=STRATA_CACHE_DIR={}\n",
                quote(&c.to_string_lossy())
            )
        })
        .unwrap_or_default();
    let when = match on_calendar(every) {
        Some(c) => format!("OnCalendar={c}\nPersistent=true\n"),
        None => format!(
            "OnBootSec=1min\nOnUnitActiveSec={}\n",
            humantime::format_duration(every)
        ),
    };
    vec![
        (
            dir.join("strata.service"),
            format!(
                "# written by `strata schedule --print systemd`\n[Unit]\nDescription=strata backup policy\n\
                 Wants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\n{env}\
                 ExecStart={}\nNice=10\nIOSchedulingClass=idle\n",
                command(exe, &cfg.path, &[])
            ),
        ),
        (
            dir.join("strata.timer"),
            format!(
                "# written by `strata schedule --print systemd`\n[Unit]\nDescription=strata run every {}\n\n\
                 [Timer]\n{when}\n[Install]\nWantedBy=timers.target\n",
                humantime::format_duration(every)
            ),
        ),
    ]
}

/// The cron time field for "every `every`".
fn cron_spec(every: Duration) -> String {
    let m = (every.as_secs() / 60).max(1);
    if m < 60 && 60 % m == 0 {
        format!("*/{m} * * * *")
    } else if m % 60 == 0 && m < 1440 && 24 % (m / 60) == 0 {
        format!("0 */{} * * *", m / 60)
    } else {
        // cron cannot say it: every 5 minutes, and `run` skips what is
        // not due
        "*/5 * * * *".to_string()
    }
}

/// `/etc/cron.d/strata` (a crontab line with a user field).
fn cron(cfg: &Config, exe: &Path, cache: Option<&Path>) -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let mut out = String::from("# written by `strata schedule --print cron`\nSHELL=/bin/sh\n");
    if let Some(c) = cache {
        out.push_str(&format!("STRATA_CACHE_DIR={}\n", c.display()));
    }
    out.push_str(&format!(
        "{} {user} {}\n",
        cron_spec(interval(cfg)),
        command(exe, &cfg.path, &[])
    ));
    out
}

/// With `--install`: the policy's `environment_file`, created 0600 with
/// every variable commented out, if the policy names one that does not
/// exist yet. Says what it did.
fn install_env_file(cfg: &Config) -> Result<()> {
    let Some(f) = &cfg.environment_file else {
        return output::line(
            "no environment_file in the policy: a scheduled run gets no credentials from the \
             environment (add environment_file = \"/etc/strata/env\" for S3 keys, PGPASSWORD…)",
        );
    };
    if f.exists() {
        return Ok(());
    }
    if let Some(d) = f.parent() {
        std::fs::create_dir_all(d).at(d)?;
    }
    fsutil::write_atomic(
        f,
        crate::policy::envfile::TEMPLATE.as_bytes(),
        fsutil::Atomic::local(0o600),
    )?;
    output::line(&format!(
        "wrote {} (mode 0600): fill in the credentials the scheduled runs need",
        f.display()
    ))
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
    install_env_file(&cfg)?;
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
    fn one_job_at_the_shortest_cadence() {
        let cfg = crate::policy::config::parse(
            "[sources.data]\npaths = [\"/srv\"]\nevery = \"5m\"\n[sources.db]\ncommand = \"pg_dump app\"\nname = \"db.sql\"\nevery = \"1d\"\n",
            Path::new("/etc/strata/strata.toml"),
        )
        .unwrap();
        let exe = Path::new("/usr/bin/strata");
        let files = systemd(&cfg, exe, None);
        let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/etc/systemd/system/strata.service",
                "/etc/systemd/system/strata.timer"
            ]
        );
        assert!(files[1].1.contains("OnCalendar=*-*-* *:00/5:00"));
        assert!(
            files[0]
                .1
                .contains("ExecStart=/usr/bin/strata run --config /etc/strata/strata.toml\n")
        );
        let c = cron(&cfg, exe, None);
        let jobs: Vec<&str> = c.lines().filter(|l| l.contains(" run ")).collect();
        assert_eq!(jobs.len(), 1, "{c}");
        assert!(jobs[0].starts_with("*/5 * * * * "), "{c}");
        // only daily sources: every quarter of an hour
        let daily = crate::policy::config::parse(
            "[sources.db]\ncommand = \"x\"\nname = \"db.sql\"\nevery = \"1d\"\nat = \"02:30\"\n",
            Path::new("/s.toml"),
        )
        .unwrap();
        assert!(cron(&daily, exe, None).contains("*/15 * * * * "));
    }
}
