//! `strata.toml`: where it is found, its keys, and their validation. Every
//! key is checked on load: an unknown key, a wrong type or a bad value is
//! one error line naming the file, the line and the key
//! (`strata.toml:12: retention.keep_daly: unknown field ...`). The file
//! never holds a passphrase: only how to get one (`password_command`,
//! `password_file`, `identity`).

use crate::error::{Error, Result};
use crate::snapshot::retention::{Count, Policy, Span, parse_count, parse_span};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The tag of the policy file stored in the repository (`recover::stored`).
pub const POLICY_TAG: &str = "strata-policy";

/// `health_timeout` when a source gives none.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// How a source is restored by `strata recover` (its strata.toml keys
/// `restore_command`, `before_restore`, `after_restore`, `health_check`,
/// `health_timeout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declared {
    /// A command source: the command that reads the stored file on its
    /// standard input and restores it (`psql …`).
    pub restore_command: Option<String>,
    /// Run first (stop the service).
    pub before_restore: Option<String>,
    /// Run after the restore (start the service).
    pub after_restore: Option<String>,
    /// Run last; a non-zero exit or a timeout fails the recovery.
    pub health_check: Option<String>,
    /// How long `health_check` may run.
    pub health_timeout: Duration,
}

impl Default for Declared {
    fn default() -> Self {
        Declared {
            restore_command: None,
            before_restore: None,
            after_restore: None,
            health_check: None,
            health_timeout: HEALTH_TIMEOUT,
        }
    }
}

pub use crate::restore::safety::PRE_RESTORE_TAG;

/// A day: a source whose `every` is this or more is a daily (weekly…)
/// source, due from a time of day (`at`, `[cadence] daily_at`).
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// The default `[cadence] lock_wait`.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(4 * 60);
/// `command_timeout` when a source has none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// `drill_timeout` when a source has none.
pub const DEFAULT_DRILL_TIMEOUT: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------- raw file

/// `strata.toml` as written (before validation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    repository: Option<String>,
    host: Option<String>,
    password_command: Option<String>,
    password_file: Option<PathBuf>,
    identity: Option<PathBuf>,
    require_encryption: Option<bool>,
    environment_file: Option<PathBuf>,
    offsite: Option<String>,
    offsite_lock: Option<RawOffsiteLock>,
    webhook: Option<String>,
    webhook_on: Option<String>,
    webhook_format: Option<String>,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    gc: RawGc,
    verification: Option<RawVerification>,
    #[serde(default)]
    cadence: RawCadence,
    #[serde(default)]
    status: RawStatus,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(default)]
    paths: Vec<PathBuf>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    exclude_if_present: Vec<String>,
    #[serde(default)]
    one_file_system: bool,
    command: Option<String>,
    sqlite: Option<PathBuf>,
    name: Option<String>,
    every: Option<Every>,
    at: Option<String>,
    // issue 22: how `strata recover` restores the source
    restore_command: Option<String>,
    before_restore: Option<String>,
    after_restore: Option<String>,
    health_check: Option<String>,
    health_timeout: Option<Every>,
    // issue 24: how `strata drill` proves the source restores
    drill_command: Option<String>,
    drill_timeout: Option<Every>,
    command_timeout: Option<Every>,
    rto: Option<Every>,
}

/// `offsite_lock = { mode = "compliance", days = 30 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffsiteLock {
    mode: String,
    days: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_last: Option<KeepCount>,
    keep_hourly: Option<KeepCount>,
    keep_daily: Option<KeepCount>,
    keep_weekly: Option<KeepCount>,
    keep_monthly: Option<KeepCount>,
    keep_yearly: Option<KeepCount>,
    keep_within: Option<KeepSpan>,
    keep_within_hourly: Option<KeepSpan>,
    keep_within_daily: Option<KeepSpan>,
    keep_within_weekly: Option<KeepSpan>,
    keep_within_monthly: Option<KeepSpan>,
    keep_within_yearly: Option<KeepSpan>,
    #[serde(default)]
    keep_tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGc {
    min_forgotten: Option<u32>,
    max_unused: Option<String>,
    max_repack: Option<String>,
    grace: Option<Every>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerification {
    read_data_subset: Option<String>,
    max_age: Option<Every>,
    offsite_read_data_subset: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCadence {
    forget: Option<Every>,
    gc: Option<Every>,
    sync: Option<Every>,
    check: Option<Every>,
    offsite_check: Option<Every>,
    drill: Option<Every>,
    daily_at: Option<String>,
    lock_wait: Option<Every>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatus {
    max_age: Option<Every>,
    max_offsite_behind: Option<u64>,
    rto: Option<Every>,
}

/// A `"5m"` / `"1d"` duration (humantime: s, m, h, d, w; `5m` is minutes).
#[derive(Clone, Copy, Debug)]
struct Every(Duration);

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Every)
            .map_err(serde::de::Error::custom)
    }
}

/// A duration as the config and `--max-age` write it: `0s`, `30s`, `5m`,
/// `2h`, `1d`, `1w` (humantime).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (e.g. \"5m\", \"2h\", \"1d\")"))
}

/// A retention count: a non-negative integer or `"unlimited"`.
#[derive(Clone, Copy, Debug)]
struct KeepCount(Count);

impl<'de> Deserialize<'de> for KeepCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KeepCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer or \"unlimited\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<KeepCount, E> {
                parse_count(&v.to_string())
                    .map(KeepCount)
                    .map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<KeepCount, E> {
                parse_count(&v.to_string())
                    .map(KeepCount)
                    .map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<KeepCount, E> {
                parse_count(v).map(KeepCount).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A `keep_within*` span (`"24h"`, `"30d"`, `"1y6m"`).
#[derive(Clone, Copy, Debug)]
struct KeepSpan(Span);

impl<'de> Deserialize<'de> for KeepSpan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_span(&s)
            .map(KeepSpan)
            .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- validated

/// What a source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// Files and directories.
    Paths {
        /// Absolute paths.
        paths: Vec<PathBuf>,
        /// Exclude globs (as `snapshot --exclude`).
        exclude: Vec<String>,
        /// `snapshot --exclude-if-present`.
        exclude_if_present: Vec<String>,
        /// `snapshot --one-file-system`.
        one_file_system: bool,
    },
    /// A shell command's standard output, stored as one file.
    Command {
        /// The command (run with `sh -c`).
        command: String,
        /// The file name in the snapshot.
        file: String,
    },
    /// A consistent copy of a live SQLite database (online backup API).
    Sqlite {
        /// The database file.
        db: PathBuf,
        /// The file name in the snapshot.
        file: String,
    },
}

/// One `[sources.NAME]` table.
#[derive(Clone, Debug)]
pub struct Source {
    /// The table's name: the snapshots' tag.
    pub name: String,
    /// What it reads.
    pub kind: SourceKind,
    /// How often `strata run` takes it; `None`: every run.
    pub every: Option<Duration>,
    /// `at = "HH:MM"`: for an `every` of a day or more, the time of day
    /// from which it is due (default `[cadence] daily_at`).
    pub at: Option<(u8, u8)>,
    /// How `strata recover` restores it.
    pub restore: Declared,
    /// How `strata drill` proves it restores: a shell command that gets
    /// the stored file on its standard input (a command source) or finds
    /// it in `$STRATA_DRILL_FILE` / `$STRATA_DRILL_DIR` (super::drill).
    pub drill_command: Option<String>,
    /// How long a `command` source's command may run before it is
    /// killed with everything it started (`command_timeout`, default 6
    /// hours): a hung dump fails the source instead of holding the run
    /// lock, and every later run, forever.
    pub command_timeout: Duration,
    /// How long the `drill_command` may run before it is killed, with
    /// everything it started (`drill_timeout`, default 1 hour): a hung
    /// command fails the drill instead of holding the run.
    pub drill_timeout: Duration,
    /// The recovery time objective of this source (`rto`; default
    /// `[status] rto`): a slower drill is a problem.
    pub rto: Option<Duration>,
}

/// `[gc]`.
#[derive(Clone, Debug)]
pub struct GcPolicy {
    /// Run gc once this many snapshots were forgotten since the last gc.
    pub min_forgotten: u32,
    /// `gc --max-unused`.
    pub max_unused: crate::maint::plan::MaxUnused,
    /// `gc --max-repack`, bytes.
    pub max_repack: Option<u64>,
    /// `gc --grace` (default: STRATA_GC_GRACE or 23 h).
    pub grace: Option<Duration>,
}

/// `[verification]`.
#[derive(Clone, Debug)]
pub struct Verification {
    /// `check --read-data-subset` per run (`"5%"`, `"1/7"`, `"500M"`).
    pub read_data_subset: Option<String>,
    /// `status` fails when the last successful check is older.
    pub max_age: Option<Duration>,
    /// `check --read-data-subset` of the offsite copy, as a step of `run`
    /// on its own cadence (`[cadence] offsite_check`).
    pub offsite_read_data_subset: Option<String>,
}

/// `[cadence]`: how often each step after the snapshots runs (`None`:
/// every run).
#[derive(Clone, Debug, Default)]
pub struct Cadence {
    /// `forget` per `[retention]`.
    pub forget: Option<Duration>,
    /// `gc` (also needs `gc.min_forgotten`).
    pub gc: Option<Duration>,
    /// Sync to `offsite`.
    pub sync: Option<Duration>,
    /// `check` per `[verification]`.
    pub check: Option<Duration>,
    /// `check` of the offsite copy per `[verification]
    /// offsite_read_data_subset` (`None`: daily).
    pub offsite_check: Option<Duration>,
    /// `strata drill` of every source (`None`: no drill step).
    pub drill: Option<Duration>,
    /// Time of day (`HH:MM`, local) from which a source whose `every` is
    /// a day or more is due (`policy::due`); default 03:00.
    pub daily_at: (u8, u8),
    /// How long a `run` waits for another run of the same repository to
    /// finish before it gives up (`--retry-lock` overrides); default 4 min.
    pub lock_wait: Duration,
}

/// When `run` POSTs its summary (`webhook_on`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebhookOn {
    /// Only runs that failed.
    Failure,
    /// Failures, and the first success after a failure (the default).
    #[default]
    Change,
    /// Every run.
    Always,
}

/// What the webhook receives (`webhook_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The run summary (`run --json`).
    #[default]
    Json,
    /// Slack's incoming-webhook body: `{"text": "…"}`, one line per
    /// problem.
    Slack,
}

/// `webhook`, `webhook_on`, `webhook_format`.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// The URL (often holding a token: shown as its host only).
    pub url: String,
    /// When to POST.
    pub on: WebhookOn,
    /// The body.
    pub format: WebhookFormat,
}

/// A loaded and validated `strata.toml`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `repository` (`--repo` and `STRATA_REPO` take precedence).
    pub repository: Option<PathBuf>,
    /// `host` recorded in snapshots (default: this machine's name).
    pub host: Option<String>,
    /// Unlocking: a command printing the passphrase.
    pub password_command: Option<String>,
    /// Unlocking: a file whose first line is the passphrase.
    pub password_file: Option<PathBuf>,
    /// Unlocking: an age identity or ssh private key file.
    pub identity: Option<PathBuf>,
    /// `require_encryption`: refuse an unencrypted repository
    /// (threat-model.md "Downgrade"). Unset: required whenever a credential
    /// is given (here, on the command line or in the environment).
    pub require_encryption: Option<bool>,
    /// The offsite repository URL.
    pub offsite: Option<String>,
    /// `offsite_lock`: every object synced to `offsite` is written with
    /// this S3 Object Lock retention (format-spec/sync.md "Object Lock").
    pub offsite_lock: Option<crate::backend::ObjectLock>,
    /// `environment_file`: `NAME=value` lines (object store credentials,
    /// `PGPASSWORD`…) that every command loading this policy adds to its
    /// environment (`crate::sys::policy_env`); mode 0600 or stricter.
    pub environment_file: Option<PathBuf>,
    /// Where and when `run` POSTs its summary.
    pub webhook: Option<Webhook>,
    /// Sources, by name.
    pub sources: Vec<Source>,
    /// `[retention]`, applied to each source's snapshots.
    pub retention: Policy,
    /// `[gc]`.
    pub gc: GcPolicy,
    /// `[verification]`, if any.
    pub verification: Option<Verification>,
    /// `[cadence]`.
    pub cadence: Cadence,
    /// `[status] max_age`: default of `status --max-age`.
    pub max_age: Option<Duration>,
    /// `[status] max_offsite_behind`: packs the offsite copy may lack.
    pub max_offsite_behind: Option<u64>,
    /// `[status] rto`: the recovery time objective of every source
    /// without its own `rto`.
    pub rto: Option<Duration>,
}

impl Config {
    /// The source named `name`.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The recovery time objective of source `s`: its own `rto`, else
    /// `[status] rto`.
    pub fn rto_of(&self, s: &Source) -> Option<Duration> {
        s.rto.or(self.rto)
    }
}

// ---------------------------------------------------------------- finding

/// Where the config is: `explicit` (`--config` or `STRATA_CONFIG`), else
/// `./strata.toml`, else `$XDG_CONFIG_HOME/strata/strata.toml` (default
/// `~/.config/strata/strata.toml`).
pub fn find(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let mut tried = vec![PathBuf::from("strata.toml")];
    let home_cfg = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")),
    };
    if let Some(d) = home_cfg {
        tried.push(d.join("strata").join("strata.toml"));
    }
    for p in &tried {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    Err(Error::NotFound(format!(
        "no strata.toml: give --config FILE or STRATA_CONFIG (looked for {})",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// Find ([`find`]) and load ([`load`]) the config.
pub fn find_and_load(explicit: Option<&Path>) -> Result<Config> {
    load(&find(explicit)?)
}

/// Read and validate the config at `path`.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse(&text, &abs)
}

// ---------------------------------------------------------------- parsing

/// A one-line error at `line` of the file, about `key`.
fn at_line(path: &Path, line: usize, key: &str, msg: &str) -> Error {
    let msg = msg.trim().replace('\n', "; ");
    let key = if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    };
    Error::Invalid(format!("{}:{line}: {key}{msg}", path.display()))
}

/// The table header (`sources.db`) in force at line `line` (1-based) and
/// the key written on that line, if any; joined as a dotted key.
fn key_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut table = String::new();
    for l in lines.iter().take(line.saturating_sub(1)) {
        if let Some(h) = header(l) {
            table = h;
        }
    }
    let here = lines.get(line.saturating_sub(1)).copied().unwrap_or("");
    if let Some(h) = header(here) {
        return h;
    }
    let key = here
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}

/// `[a.b]` / `[[a]]` on a line: `a.b` (quotes removed).
fn header(line: &str) -> Option<String> {
    let t = line.trim();
    let t = t.split_once('#').map_or(t, |(a, _)| a).trim();
    let inner = t
        .strip_prefix("[[")
        .and_then(|r| r.strip_suffix("]]"))
        .or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
    Some(
        inner
            .split('.')
            .map(|p| p.trim().trim_matches('"'))
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The line (1-based) where `key` of table `table` is written, or the
/// table's header line, or 1.
fn line_of(text: &str, table: &str, key: Option<&str>) -> usize {
    let mut current = String::new();
    let mut header_line = None;
    for (i, l) in text.lines().enumerate() {
        if let Some(h) = header(l) {
            current = h;
            if current == table && header_line.is_none() {
                header_line = Some(i + 1);
            }
            continue;
        }
        if current == table {
            if let Some(k) = key {
                let written = l
                    .split_once('=')
                    .map(|(a, _)| a.trim().trim_matches('"'))
                    .unwrap_or("");
                if written == k {
                    return i + 1;
                }
            }
        }
    }
    header_line.unwrap_or(1)
}

/// Parse and validate `text` (read from `path`, which names errors and
/// anchors relative paths).
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(1);
        at_line(path, line, &key_at(text, line), e.message())
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let cx = Parsing {
        text,
        path,
        base: std::path::absolute(&base).unwrap_or(base),
    };
    cx.unlock(&raw)?;
    let sources = raw
        .sources
        .iter()
        .map(|(name, s)| cx.source(name, s))
        .collect::<Result<Vec<_>>>()?;
    let retention = retention(&raw.retention);
    let gc = cx.gc(&raw.gc)?;
    let verification = match &raw.verification {
        None => None,
        Some(v) => {
            for (key, subset) in [
                ("read_data_subset", &v.read_data_subset),
                ("offsite_read_data_subset", &v.offsite_read_data_subset),
            ] {
                if let Some(s) = subset {
                    check_subset(s).map_err(|e| cx.bad("verification", Some(key), &e))?;
                }
            }
            if v.offsite_read_data_subset.is_some() && raw.offsite.is_none() {
                return Err(cx.bad(
                    "verification",
                    Some("offsite_read_data_subset"),
                    "no `offsite` to check",
                ));
            }
            Some(Verification {
                read_data_subset: v.read_data_subset.clone(),
                max_age: v.max_age.map(|e| e.0),
                offsite_read_data_subset: v.offsite_read_data_subset.clone(),
            })
        }
    };
    let cadence = cx.cadence(&raw.cadence)?;
    let webhook = cx.webhook(&raw)?;
    Ok(Config {
        path: path.to_path_buf(),
        repository: raw.repository.as_ref().map(|r| {
            if r.contains("://") {
                PathBuf::from(r)
            } else {
                cx.rel(Path::new(r))
            }
        }),
        host: raw.host.clone(),
        password_command: raw.password_command.clone(),
        password_file: raw.password_file.as_deref().map(|p| cx.rel(p)),
        identity: raw.identity.as_deref().map(|p| cx.rel(p)),
        require_encryption: raw.require_encryption,
        environment_file: raw.environment_file.as_deref().map(|p| cx.rel(p)),
        offsite: raw.offsite.clone(),
        offsite_lock: cx.offsite_lock(&raw)?,
        webhook,
        sources,
        retention,
        gc,
        verification,
        cadence,
        max_age: raw.status.max_age.map(|e| e.0),
        max_offsite_behind: raw.status.max_offsite_behind,
        rto: raw.status.rto.map(|e| e.0),
    })
}

/// The text being parsed, for errors that name a key and its line, and
/// the directory that relative paths are anchored at.
struct Parsing<'a> {
    text: &'a str,
    path: &'a Path,
    base: PathBuf,
}

impl Parsing<'_> {
    /// `p`, relative to the config's directory unless absolute.
    fn rel(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// An error about `key` of `table` (`""`: the top level), at its line.
    fn bad(&self, table: &str, key: Option<&str>, msg: &str) -> Error {
        let line = line_of(self.text, table, key);
        let dotted = match (table.is_empty(), key) {
            (true, Some(k)) => k.to_string(),
            (false, Some(k)) => format!("{table}.{k}"),
            (_, None) => table.to_string(),
        };
        at_line(self.path, line, &dotted, msg)
    }

    /// At most one of the unlocking keys, and no empty command.
    fn unlock(&self, raw: &RawConfig) -> Result<()> {
        let unlock = [
            raw.password_command.is_some(),
            raw.password_file.is_some(),
            raw.identity.is_some(),
        ];
        if unlock.iter().filter(|b| **b).count() > 1 {
            let key = ["password_command", "password_file", "identity"]
                .into_iter()
                .zip(unlock)
                .filter(|(_, set)| *set)
                .map(|(k, _)| k)
                .nth(1);
            return Err(self.bad(
                "",
                key,
                "give one of password_command, password_file and identity",
            ));
        }
        if let Some(c) = &raw.password_command {
            if c.trim().is_empty() {
                return Err(self.bad("", Some("password_command"), "empty command"));
            }
        }
        Ok(())
    }

    /// `[sources.NAME]`.
    fn source(&self, name: &str, s: &RawSource) -> Result<Source> {
        let table = format!("sources.{name}");
        if name.is_empty()
            || name == PRE_RESTORE_TAG
            || name == POLICY_TAG
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(self.bad(
                &table,
                None,
                "a source name is letters, digits, `-`, `_` and `.` (it becomes the snapshots' tag), \
                 and not `pre-restore` or `strata-policy`",
            ));
        }
        let kinds = [!s.paths.is_empty(), s.command.is_some(), s.sqlite.is_some()];
        if kinds.iter().filter(|b| **b).count() != 1 {
            return Err(self.bad(
                &table,
                None,
                "give exactly one of paths, command and sqlite",
            ));
        }
        let kind = self.source_kind(&table, s)?;
        if !matches!(kind, SourceKind::Paths { .. })
            && (!s.exclude.is_empty() || !s.exclude_if_present.is_empty() || s.one_file_system)
        {
            return Err(self.bad(
                &table,
                Some("exclude"),
                "exclude, exclude_if_present and one_file_system are for paths sources",
            ));
        }
        if let SourceKind::Paths { exclude, .. } = &kind {
            crate::paths::Patterns::new(exclude)
                .map_err(|e| self.bad(&table, Some("exclude"), &e.to_string()))?;
        }
        let at = match &s.at {
            None => None,
            Some(t) => Some(parse_hhmm(t).ok_or_else(|| {
                self.bad(
                    &table,
                    Some("at"),
                    &format!("{t:?} is not a time of day HH:MM"),
                )
            })?),
        };
        if at.is_some() && s.every.is_none_or(|e| e.0 < DAY) {
            return Err(self.bad(
                &table,
                Some("at"),
                "`at` is for sources whose `every` is a day or more",
            ));
        }
        let restore = self.declared(&table, s, &kind)?;
        if s.drill_command
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(self.bad(&table, Some("drill_command"), "empty command"));
        }
        Ok(Source {
            name: name.to_string(),
            kind,
            every: s.every.map(|e| e.0),
            at,
            restore,
            drill_command: s.drill_command.clone(),
            drill_timeout: s.drill_timeout.map_or(DEFAULT_DRILL_TIMEOUT, |e| e.0),
            command_timeout: s.command_timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |e| e.0),
            rto: s.rto.map(|e| e.0),
        })
    }

    /// `[cadence]`.
    fn cadence(&self, c: &RawCadence) -> Result<Cadence> {
        let daily_at = match &c.daily_at {
            None => (3, 0),
            Some(s) => parse_hhmm(s).ok_or_else(|| {
                self.bad(
                    "cadence",
                    Some("daily_at"),
                    &format!("{s:?} is not a time of day HH:MM"),
                )
            })?,
        };
        Ok(Cadence {
            forget: c.forget.map(|e| e.0),
            gc: c.gc.map(|e| e.0),
            sync: c.sync.map(|e| e.0),
            check: c.check.map(|e| e.0),
            offsite_check: c.offsite_check.map(|e| e.0),
            drill: c.drill.map(|e| e.0),
            daily_at,
            lock_wait: c.lock_wait.map_or(DEFAULT_LOCK_WAIT, |e| e.0),
        })
    }

    /// `offsite` and `webhook` (with `webhook_on`, `webhook_format`).
    fn webhook(&self, raw: &RawConfig) -> Result<Option<Webhook>> {
        self.urls(raw)?;
        let on = match raw.webhook_on.as_deref() {
            None | Some("change") => WebhookOn::Change,
            Some("failure") => WebhookOn::Failure,
            Some("always") => WebhookOn::Always,
            Some(o) => {
                return Err(self.bad(
                    "",
                    Some("webhook_on"),
                    &format!("{o:?}: expected \"failure\", \"change\" or \"always\""),
                ));
            }
        };
        let format = match raw.webhook_format.as_deref() {
            None | Some("json") => WebhookFormat::Json,
            Some("slack") => WebhookFormat::Slack,
            Some(o) => {
                return Err(self.bad(
                    "",
                    Some("webhook_format"),
                    &format!("{o:?}: expected \"json\" or \"slack\""),
                ));
            }
        };
        let set = raw.webhook_on.is_some() || raw.webhook_format.is_some();
        match &raw.webhook {
            Some(url) => Ok(Some(Webhook {
                url: url.clone(),
                on,
                format,
            })),
            None if set => Err(self.bad(
                "",
                Some(if raw.webhook_on.is_some() {
                    "webhook_on"
                } else {
                    "webhook_format"
                }),
                "no `webhook` to apply it to",
            )),
            None => Ok(None),
        }
    }

    /// What source `s` (of `table`) reads: paths, a command or a database.
    fn source_kind(&self, table: &str, s: &RawSource) -> Result<SourceKind> {
        let file_name = |default: Option<String>| -> Result<String> {
            let n = s.name.clone().or(default).ok_or_else(|| {
                self.bad(
                    table,
                    Some("command"),
                    "a command source needs `name`, the file name in the snapshot (e.g. \"postgres.sql\")",
                )
            })?;
            if !crate::snapshot::tree::valid_name(n.as_bytes()) {
                return Err(self.bad(
                    table,
                    Some("name"),
                    &format!("{n:?} is not a valid file name"),
                ));
            }
            Ok(n)
        };
        if let Some(c) = &s.command {
            if c.trim().is_empty() {
                return Err(self.bad(table, Some("command"), "empty command"));
            }
            return Ok(SourceKind::Command {
                command: c.clone(),
                file: file_name(None)?,
            });
        }
        if let Some(db) = &s.sqlite {
            let db = self.rel(db);
            let default = db.file_name().map(|n| n.to_string_lossy().into_owned());
            return Ok(SourceKind::Sqlite {
                file: file_name(default)?,
                db,
            });
        }
        if s.name.is_some() {
            return Err(self.bad(
                table,
                Some("name"),
                "`name` is for command and sqlite sources",
            ));
        }
        Ok(SourceKind::Paths {
            paths: s.paths.iter().map(|p| self.rel(p)).collect(),
            exclude: s.exclude.clone(),
            exclude_if_present: s.exclude_if_present.clone(),
            one_file_system: s.one_file_system,
        })
    }

    /// How `recover` restores source `s` (of `table`): a command is
    /// never empty, and `restore_command` is for command sources only.
    fn declared(&self, table: &str, s: &RawSource, kind: &SourceKind) -> Result<Declared> {
        for (key, v) in [
            ("restore_command", &s.restore_command),
            ("before_restore", &s.before_restore),
            ("after_restore", &s.after_restore),
            ("health_check", &s.health_check),
        ] {
            if v.as_deref().is_some_and(|c| c.trim().is_empty()) {
                return Err(self.bad(table, Some(key), "empty command"));
            }
        }
        if s.restore_command.is_some() && !matches!(kind, SourceKind::Command { .. }) {
            return Err(self.bad(
                table,
                Some("restore_command"),
                "restore_command is for command sources (paths and sqlite sources restore to \
                 their own paths)",
            ));
        }
        if s.health_timeout.is_some() && s.health_check.is_none() {
            return Err(self.bad(
                table,
                Some("health_timeout"),
                "health_timeout needs health_check",
            ));
        }
        Ok(Declared {
            restore_command: s.restore_command.clone(),
            before_restore: s.before_restore.clone(),
            after_restore: s.after_restore.clone(),
            health_check: s.health_check.clone(),
            health_timeout: s.health_timeout.map_or(HEALTH_TIMEOUT, |e| e.0),
        })
    }

    /// `[gc]`.
    fn gc(&self, g: &RawGc) -> Result<GcPolicy> {
        Ok(GcPolicy {
            min_forgotten: g.min_forgotten.unwrap_or(1).max(1),
            max_unused: match &g.max_unused {
                Some(s) => crate::maint::plan::MaxUnused::parse(s)
                    .map_err(|e| self.bad("gc", Some("max_unused"), &e))?,
                None => crate::maint::plan::MaxUnused::Percent(5.0),
            },
            max_repack: match &g.max_repack {
                Some(s) => Some(
                    crate::maint::plan::parse_size(s)
                        .map_err(|e| self.bad("gc", Some("max_repack"), &e))?,
                ),
                None => None,
            },
            grace: g.grace.map(|e| e.0),
        })
    }

    /// `offsite_lock`: a mode and whole days, for an `s3://` offsite.
    fn offsite_lock(&self, raw: &RawConfig) -> Result<Option<crate::backend::ObjectLock>> {
        let Some(l) = &raw.offsite_lock else {
            return Ok(None);
        };
        if !raw
            .offsite
            .as_deref()
            .is_some_and(|o| o.starts_with("s3://"))
        {
            return Err(self.bad(
                "",
                Some("offsite_lock"),
                "needs an s3:// `offsite` (a bucket with Object Lock enabled)",
            ));
        }
        let mode = crate::backend::LockMode::parse(&l.mode)
            .map_err(|e| self.bad("offsite_lock", Some("mode"), &e))?;
        let lock = crate::backend::ObjectLock::new(
            mode,
            Duration::from_secs(u64::from(l.days) * 24 * 3600),
        )
        .map_err(|e| self.bad("offsite_lock", Some("days"), &e))?;
        Ok(Some(lock))
    }

    /// `offsite` is a URL or an absolute directory; `webhook` is http(s).
    fn urls(&self, raw: &RawConfig) -> Result<()> {
        if let Some(u) = &raw.offsite {
            if !u.contains("://") && !u.starts_with('/') {
                return Err(self.bad(
                    "",
                    Some("offsite"),
                    &format!(
                        "{u:?} is neither a URL (e.g. \"s3://bucket/strata\") nor an absolute directory"
                    ),
                ));
            }
        }
        if let Some(u) = &raw.webhook {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(self.bad(
                    "",
                    Some("webhook"),
                    &format!("{u:?} is not an http:// or https:// URL"),
                ));
            }
        }
        Ok(())
    }
}

/// `[retention]` as a policy.
fn retention(r: &RawRetention) -> Policy {
    let c = |v: Option<KeepCount>| v.map_or(Count::Off, |k| k.0);
    let sp = |v: Option<KeepSpan>| v.map(|k| k.0);
    Policy {
        last: c(r.keep_last),
        hourly: c(r.keep_hourly),
        daily: c(r.keep_daily),
        weekly: c(r.keep_weekly),
        monthly: c(r.keep_monthly),
        yearly: c(r.keep_yearly),
        within: sp(r.keep_within),
        within_hourly: sp(r.keep_within_hourly),
        within_daily: sp(r.keep_within_daily),
        within_weekly: sp(r.keep_within_weekly),
        within_monthly: sp(r.keep_within_monthly),
        within_yearly: sp(r.keep_within_yearly),
        keep_tags: r
            .keep_tags
            .iter()
            .map(|t| crate::snapshot::retention::parse_tag_list(t))
            .collect(),
    }
}

/// `N%` (0 < N ≤ 100), `n/m` (1 ≤ n ≤ m), or a size (`500M`): restic's
/// `--read-data-subset` forms, parsed as `strata check` parses them.
fn check_subset(s: &str) -> std::result::Result<(), String> {
    crate::maint::check::Subset::parse(s).map(|_| ())
}

fn parse_hhmm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/strata.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err("repository = \"/r\"\n\n[retention]\nkeep_daily = 3\nkeep_daly = 4\n");
        assert!(
            e.starts_with("/etc/strata.toml:5: retention.keep_daly: "),
            "{e}"
        );
        assert!(e.contains("unknown field"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = err("[sources.db]\ncommand = \"pg_dump app\"\nname = \"db.sql\"\nevery = 5\n");
        assert!(
            e.starts_with("/etc/strata.toml:4: sources.db.every: "),
            "{e}"
        );
        let e = err("[retention]\nkeep_daily = \"many\"\n");
        assert!(
            e.starts_with("/etc/strata.toml:2: retention.keep_daily: "),
            "{e}"
        );
        let e = err("[retention]\nkeep_within = \"3 parsecs\"\n");
        assert!(
            e.starts_with("/etc/strata.toml:2: retention.keep_within: "),
            "{e}"
        );
    }

    #[test]
    fn semantic_errors_name_key_and_line() {
        let e = err("[sources.db]\ncommand = \"pg_dump app\"\n");
        assert!(
            e.starts_with("/etc/strata.toml:2: sources.db.command: "),
            "{e}"
        );
        let e = err("[sources.x]\npaths = [\"/a\"]\nsqlite = \"a.db\"\n");
        assert!(e.starts_with("/etc/strata.toml:1: sources.x: "), "{e}");
        let e = err("password_file = \"/p\"\nidentity = \"/i\"\n");
        assert!(e.starts_with("/etc/strata.toml:2: identity: "), "{e}");
        let e = err("[verification]\nread_data_subset = \"lots\"\n");
        assert!(
            e.starts_with("/etc/strata.toml:2: verification.read_data_subset: "),
            "{e}"
        );
    }

    #[test]
    fn sources_and_defaults() {
        let c = parse(
            "[sources.app]\nsqlite = \"app.db\"\nevery = \"5m\"\n[retention]\nkeep_daily = \"unlimited\"\n",
            Path::new("/etc/strata/strata.toml"),
        )
        .unwrap();
        assert_eq!(
            c.sources[0].kind,
            SourceKind::Sqlite {
                db: PathBuf::from("/etc/strata/app.db"),
                file: "app.db".into()
            }
        );
        assert_eq!(c.sources[0].every, Some(Duration::from_secs(300)));
        assert_eq!(c.retention.daily, Count::Unlimited);
        assert_eq!(c.gc.min_forgotten, 1);
        assert_eq!(c.cadence.daily_at, (3, 0));
    }
}
