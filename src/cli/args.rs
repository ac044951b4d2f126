//! clap definitions: the one place help text lives (also used for shell
//! completions and the man page).

use crate::error::{Error, Result};
use crate::repo::InitOptions;
use crate::repo::config::ChunkerParams;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// strata: deduplicating, content-addressed backups.
#[derive(Parser, Debug)]
#[command(name = "strata", version, about, long_about = None)]
pub struct Cli {
    /// Repository directory.
    #[arg(long, env = "STRATA_REPO", global = true)]
    pub repo: Option<PathBuf>,
    /// Read the repository passphrase from the first line of FILE (else
    /// STRATA_PASSWORD, then STRATA_PASSWORD_COMMAND).
    #[arg(long, value_name = "FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Unlock with an age identity file or ssh private key instead of a passphrase.
    #[arg(long, value_name = "FILE", env = "STRATA_IDENTITY", global = true)]
    pub identity: Option<PathBuf>,
    /// Wait up to DURATION (e.g. `5m`) for another process's conflicting
    /// lock instead of failing.
    #[arg(long, value_name = "DURATION", global = true, value_parser = duration)]
    pub retry_lock: Option<std::time::Duration>,
    /// Take no lock (read-only commands only: restore, ls, cat, find, diff,
    /// stats, mount).
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Open the repository as its objects stood at TIME (RFC 3339, or
    /// `YYYY-MM-DD HH:MM:SS` local): a read-only view of an s3:// repository
    /// on a versioned bucket, built from its object versions, so later
    /// deletions, overwrites and additions are not seen. For reading
    /// commands, `recover --from` and `sync --from`.
    #[arg(long, value_name = "TIME", env = "STRATA_POINT_IN_TIME", global = true)]
    pub point_in_time: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up paths (or stdin) into a new snapshot.
    Snapshot(SnapshotArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// Restore a snapshot (or part of it) into a directory.
    Restore(RestoreArgs),
    /// List files in a snapshot (`SNAPSHOT[:PATH]`).
    Ls(LsArgs),
    /// Print a file of a snapshot, or a repository object with --raw.
    Cat(CatArgs),
    /// Find paths matching a glob across snapshots.
    Find(FindArgs),
    /// Show what changed between two snapshots.
    Diff(DiffArgs),
    /// Sizes: logical, deduplicated and stored.
    Stats(StatsArgs),
    /// Mount the repository read-only (FUSE) at MOUNTPOINT.
    Mount(MountArgs),
    /// Remove snapshots by policy (`--keep-*`) or by id.
    Forget(ForgetArgs),
    /// Delete or repack what no snapshot needs (two-phase: see --grace).
    Gc(GcArgs),
    /// Change the tags of snapshots.
    Tag(TagArgs),
    /// Write new snapshots without the files matching --exclude.
    Rewrite(RewriteArgs),
    /// Remove stale locks (or all locks with --remove-all).
    Unlock(UnlockArgs),
    /// Verify the repository: structure always, pack data with --read-data.
    Check(CheckArgs),
    /// Rebuild index.sqlite from the pack trailers alone.
    RebuildIndex(RebuildIndexArgs),
    /// Work around damage that `check` found: rewrite damaged snapshots,
    /// salvage damaged packs.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Make DEST a mirror of the repository (offsite copies, disaster recovery).
    Sync(SyncArgs),
    /// Manage the keys that unlock an encrypted repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Run the backup policy of strata.toml once: due sources, forget, gc,
    /// sync, check.
    Run(RunArgs),
    /// Recover sources of strata.toml: plan, stop, save, restore (verified),
    /// start, check health; from this machine, or with --from URL from a
    /// bare one (the policy stored in the repository by `run`).
    Recover(RecoverArgs),
    /// Restore drill: each source's latest snapshot restored, verified,
    /// into a scratch place (or its drill_command), and timed; never to
    /// the live paths or databases.
    Drill(DrillArgs),
    /// Report whether the backups of strata.toml are healthy (for cron and
    /// monitoring).
    Status(StatusArgs),
    /// Print (or install) systemd timer units or crontab lines for `strata run`.
    Schedule(ScheduleArgs),
    /// Print shell completions.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

/// `strata init`
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Minimum chunk size in bytes.
    #[arg(long)]
    pub chunk_min: Option<u32>,
    /// Average chunk size in bytes.
    #[arg(long)]
    pub chunk_avg: Option<u32>,
    /// Maximum chunk size in bytes.
    #[arg(long)]
    pub chunk_max: Option<u32>,
    /// zstd compression level (0 = none, 1-22).
    #[arg(long)]
    pub compression: Option<i32>,
    /// Target pack size in MiB.
    #[arg(long)]
    pub pack_size_mib: Option<u64>,
    /// Store everything in plaintext (for local-only repositories).
    #[arg(long, conflicts_with_all = ["recipient", "label"])]
    pub no_encryption: bool,
    /// Make the first key an age or ssh public key (or a file holding one)
    /// instead of a passphrase.
    #[arg(long, value_name = "PUBKEY")]
    pub recipient: Option<String>,
    /// Label of the first key.
    #[arg(long)]
    pub label: Option<String>,
    /// scrypt work factor of the passphrase key, N = 2^LOG_N (default 18: 256 MiB; at most 20
    /// unless STRATA_SCRYPT_MAX_LOG_N allows more).
    #[arg(long, value_name = "LOG_N", env = "STRATA_SCRYPT_LOG_N", value_parser = clap::value_parser!(u8).range(10..=30))]
    pub scrypt_log_n: Option<u8>,
}

/// `strata key …`
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Add a key: a new passphrase (default) or a public key.
    Add(KeyAddArgs),
    /// List the keys: id, label, kind, created, host.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a key (not the last full one). A write-only key's manifests
    /// made until now stay valid; any it signs later are refused.
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the passphrase of the key used to unlock.
    Passwd(NewPassArgs),
    /// Print the repository's data identity (AGE-SECRET-KEY-1…), which
    /// decrypts every pack and snapshot with stock `age -d`.
    ExportIdentity,
    /// Print the recovery key: the whole repository secret as text that
    /// alone opens the repository (`--identity FILE`), with no key file
    /// and no passphrase. For a safe, against the loss of everything else.
    ExportRecovery,
}

impl KeyCommand {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            KeyCommand::Add(_) => "add",
            KeyCommand::List { .. } => "list",
            KeyCommand::Remove { .. } => "remove",
            KeyCommand::Passwd(_) => "passwd",
            KeyCommand::ExportIdentity => "export-identity",
            KeyCommand::ExportRecovery => "export-recovery",
        }
    }
}

/// New-passphrase options of `key add` and `key passwd`.
#[derive(Args, Debug)]
pub struct NewPassArgs {
    /// Read the new passphrase from FILE (else STRATA_NEW_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// scrypt work factor, N = 2^LOG_N (default 18: 256 MiB, or for `key passwd` the old
    /// key's; at most 20 unless STRATA_SCRYPT_MAX_LOG_N allows more).
    #[arg(long, value_name = "LOG_N", env = "STRATA_SCRYPT_LOG_N", value_parser = clap::value_parser!(u8).range(10..=30))]
    pub scrypt_log_n: Option<u8>,
}

/// `strata key add`
#[derive(Args, Debug)]
pub struct KeyAddArgs {
    /// Protect the new key with a passphrase (the default).
    #[arg(long, conflicts_with = "recipient")]
    pub passphrase: bool,
    /// Encrypt the new key to an age (`age1…`) or ssh (ed25519, rsa) public
    /// key, or a file holding one.
    #[arg(long, value_name = "PUBKEY")]
    pub recipient: Option<String>,
    /// Label shown by `key list`.
    #[arg(long)]
    pub label: Option<String>,
    /// A write-only key: it can back up (`snapshot`, and the snapshot and
    /// sync steps of `run`) but cannot read, forget or delete anything
    /// (README "Write-only keys"). Upgrades the repository to format 3.
    #[arg(long)]
    pub write_only: bool,
    /// New passphrase options.
    #[command(flatten)]
    pub new: NewPassArgs,
}

impl InitArgs {
    /// Validated engine options.
    pub fn to_options(&self, key: Option<crate::repo::keys::NewKey>) -> Result<InitOptions> {
        let d = ChunkerParams::default();
        let chunker =
            if self.chunk_min.is_some() || self.chunk_avg.is_some() || self.chunk_max.is_some() {
                Some(ChunkerParams {
                    min: self.chunk_min.unwrap_or(d.min),
                    avg: self.chunk_avg.unwrap_or(d.avg),
                    max: self.chunk_max.unwrap_or(d.max),
                    ..d
                })
            } else {
                None
            };
        if let Some(c) = &chunker {
            crate::chunker::Chunker::new(c).map_err(Error::Invalid)?;
        }
        Ok(InitOptions {
            key,
            key_label: self.label.clone().unwrap_or_else(|| "initial key".into()),
            chunker,
            compression_level: self.compression,
            pack_target_size: match self.pack_size_mib {
                Some(m) => {
                    Some(m.checked_mul(1 << 20).ok_or_else(|| {
                        Error::Invalid(format!("--pack-size-mib {m} is too large"))
                    })?)
                }
                None => None,
            },
        })
    }
}

/// `strata snapshot`
#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Files and directories to back up; `-` reads stdin.
    #[arg(required_unless_present = "stdin_from_command")]
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Exclude paths matching GLOB (repeatable). GLOB matches paths as stored in the snapshot (`/srv/app/cache`): `*` stays within a name, `**` spans directories; a leading `/` anchors at the root, otherwise any depth.
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Skip directories that contain FILE (repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_if_present: Vec<String>,
    /// Do not cross file-system boundaries.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Compare against this snapshot instead of the latest with the same host and paths.
    #[arg(long, value_name = "ID")]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent.
    #[arg(long)]
    pub force_rehash: bool,
    /// File name for data read from stdin.
    #[arg(long, default_value = "stdin")]
    pub stdin_name: String,
    /// Run this shell command and back up its standard output as one file.
    #[arg(long, value_name = "COMMAND")]
    pub stdin_from_command: Option<String>,
    /// Record TIME as the snapshot's time: RFC 3339, or `YYYY-MM-DD HH:MM:SS`
    /// in the local time zone (`TZ`). For imports and tests.
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Snapshot filters (`snapshots`, and `latest` in `restore`).
#[derive(Args, Debug, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots of this path (repeatable: all must match).
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    /// The engine's filter; `--path` values are made absolute, as recorded.
    pub fn to_filter(&self) -> crate::snapshot::Filter {
        crate::snapshot::Filter {
            host: self.host.clone(),
            tags: self.tags.clone(),
            paths: self
                .paths
                .iter()
                .map(|p| match std::path::absolute(p) {
                    Ok(a) if p != "-" => a.to_string_lossy().into_owned(),
                    _ => p.clone(),
                })
                .collect(),
            skip_tags: Vec::new(),
        }
    }
}

/// `--source NAME` of `snapshots`, `ls`, `cat`, `find`, `diff` and `stats`.
#[derive(Args, Debug, Default)]
pub struct SourceArg {
    /// Only the snapshots of this source of strata.toml (the same as `--tag
    /// NAME`: a source's snapshots carry its name as a tag).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
}

impl SourceArg {
    /// `filter` narrowed to the source's snapshots.
    pub fn narrow(&self, mut filter: crate::snapshot::Filter) -> crate::snapshot::Filter {
        if let Some(s) = &self.source {
            filter.tags.push(s.clone());
        }
        filter
    }
}

/// `strata snapshots`
#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// A source of strata.toml.
    #[command(flatten)]
    pub source: SourceArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Overwrite policy.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum OverwriteArg {
    /// Replace existing files.
    Always,
    /// Replace files whose size or mtime differ.
    IfChanged,
    /// Keep existing files.
    Never,
}

/// `strata restore`
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id prefix or `latest`, optionally `:PATH` (an absolute
    /// path in the snapshot; its contents go into the target). `latest`
    /// skips `pre-restore` snapshots unless `--tag pre-restore` is given.
    pub snapshot: std::ffi::OsString,
    /// Directory to restore into. When the paths the restore writes already
    /// hold something, it is first saved in a snapshot tagged `pre-restore`.
    #[arg(long, short = 't', required_unless_present = "to_command")]
    pub target: Option<PathBuf>,
    /// Stream the snapshot's one file (a command, stdin or sqlite source)
    /// into the standard input of this shell command instead, e.g. `psql app`.
    #[arg(long, value_name = "COMMAND", conflicts_with_all = ["target", "delete", "dry_run", "verify", "includes", "excludes"])]
    pub to_command: Option<String>,
    /// The source of strata.toml whose snapshot `latest` means (the same as
    /// `--tag NAME`: a source's snapshots carry its name as a tag).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Do not save what the target holds in a `pre-restore` snapshot first.
    #[arg(long)]
    pub no_safety_snapshot: bool,
    /// strata.toml, for the repository and unlocking when the command line
    /// and the environment give none.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Restore only paths matching GLOB (repeatable). GLOB matches paths as stored in the snapshot (`/srv/app/cache`): `*` stays within a name, `**` spans directories; a leading `/` anchors at the root, otherwise any depth.
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Skip paths matching GLOB (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Remove files and directories in the target that are not in the
    /// snapshot (not with --include/--exclude).
    #[arg(long)]
    pub delete: bool,
    /// What to do with files that already exist.
    #[arg(long, value_enum, default_value = "always")]
    pub overwrite: OverwriteArg,
    /// Show what would be restored, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Re-read the written files and check their hashes.
    #[arg(long)]
    pub verify: bool,
    /// Which snapshot `latest` means.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata ls`
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id prefix or `latest`, optionally `:PATH` (`latest:PATH`:
    /// the newest snapshot that holds PATH). Names print
    /// with `\\` for a backslash and `\xHH` for bytes that are not UTF-8
    /// or are control characters; such a printed name is accepted back.
    pub target: std::ffi::OsString,
    /// Long listing: mode, owner, size, mtime, name.
    #[arg(short = 'l')]
    pub long: bool,
    /// List directories recursively.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Which snapshot `latest` means.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// A source of strata.toml.
    #[command(flatten)]
    pub source: SourceArg,
}

/// `strata cat`
#[derive(Args, Debug)]
pub struct CatArgs {
    /// `SNAPSHOT:PATH` of a file; with --raw: `config`, `snapshot`, `tree`, `blob` or `pack`.
    pub target: std::ffi::OsString,
    /// With --raw: the object's id (hex; a prefix for snapshots).
    pub id: Option<String>,
    /// Decode a repository object (JSON where structured; blobs as raw bytes).
    #[arg(long)]
    pub raw: bool,
    /// Which snapshot `latest` means.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// A source of strata.toml.
    #[command(flatten)]
    pub source: SourceArg,
}

/// `strata find`
#[derive(Args, Debug)]
pub struct FindArgs {
    /// GLOB (one or more) matches paths as stored in the snapshot (`/srv/app/cache`): `*` stays within a name, `**` spans directories; a leading `/` anchors at the root, otherwise any depth: `*.json`, `/srv/**/events/*.json`.
    #[arg(required = true, value_name = "GLOB")]
    pub globs: Vec<String>,
    /// Search only this snapshot (repeatable; id prefix or `latest`).
    #[arg(long = "snapshot", value_name = "ID")]
    pub snapshots: Vec<String>,
    /// Search only the newest N snapshots.
    #[arg(long, value_name = "N")]
    pub newest: Option<usize>,
    /// A source of strata.toml (its snapshots only; `latest` is its newest).
    #[command(flatten)]
    pub source: SourceArg,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// `strata diff`
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older snapshot (id prefix or `latest`).
    pub a: String,
    /// The newer snapshot.
    pub b: String,
    /// A source of strata.toml (its snapshots only; `latest` is its newest).
    #[command(flatten)]
    pub source: SourceArg,
    /// One JSON object per line, then a totals object.
    #[arg(long)]
    pub json: bool,
}

/// What `stats` reports first.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum StatsMode {
    /// What restoring the snapshots would write.
    RestoreSize,
    /// The distinct blobs they use, raw and stored.
    RawData,
}

/// `strata stats`
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Snapshots (id prefixes or `latest`); all if none.
    pub snapshots: Vec<String>,
    /// A source of strata.toml (its snapshots only; `latest` is its newest).
    #[command(flatten)]
    pub source: SourceArg,
    /// What to report.
    #[arg(long, value_enum, default_value = "restore-size")]
    pub mode: StatsMode,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata mount`
#[derive(Args, Debug)]
pub struct MountArgs {
    /// An existing empty directory.
    pub mountpoint: std::path::PathBuf,
    /// Stay in the foreground until Ctrl-C or SIGTERM (otherwise run in the
    /// background; unmount with `fusermount3 -u MOUNTPOINT` or `umount`).
    #[arg(long)]
    pub foreground: bool,
}

fn duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 5m, 2h)"))
}

fn count(s: &str) -> std::result::Result<crate::snapshot::retention::Count, String> {
    crate::snapshot::retention::parse_count(s)
}

fn span(s: &str) -> std::result::Result<crate::snapshot::retention::Span, String> {
    crate::snapshot::retention::parse_span(s)
}

/// `strata forget`
#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (id prefixes), instead of a policy.
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots (`unlimited` for all).
    #[arg(long, value_name = "N", value_parser = count)]
    pub keep_last: Option<crate::snapshot::retention::Count>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", value_parser = count)]
    pub keep_hourly: Option<crate::snapshot::retention::Count>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N", value_parser = count)]
    pub keep_daily: Option<crate::snapshot::retention::Count>,
    /// Keep the newest snapshot of each of the last N weeks (Monday to Sunday).
    #[arg(long, value_name = "N", value_parser = count)]
    pub keep_weekly: Option<crate::snapshot::retention::Count>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N", value_parser = count)]
    pub keep_monthly: Option<crate::snapshot::retention::Count>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N", value_parser = count)]
    pub keep_yearly: Option<crate::snapshot::retention::Count>,
    /// Keep every snapshot within DURATION (e.g. `24h`, `30d`, `1y6m`) of the newest.
    #[arg(long, value_name = "DURATION", value_parser = span)]
    pub keep_within: Option<crate::snapshot::retention::Span>,
    /// Keep hourly snapshots within DURATION of the newest.
    #[arg(long, value_name = "DURATION", value_parser = span)]
    pub keep_within_hourly: Option<crate::snapshot::retention::Span>,
    /// Keep daily snapshots within DURATION of the newest.
    #[arg(long, value_name = "DURATION", value_parser = span)]
    pub keep_within_daily: Option<crate::snapshot::retention::Span>,
    /// Keep weekly snapshots within DURATION of the newest.
    #[arg(long, value_name = "DURATION", value_parser = span)]
    pub keep_within_weekly: Option<crate::snapshot::retention::Span>,
    /// Keep monthly snapshots within DURATION of the newest.
    #[arg(long, value_name = "DURATION", value_parser = span)]
    pub keep_within_monthly: Option<crate::snapshot::retention::Span>,
    /// Keep yearly snapshots within DURATION of the newest.
    #[arg(long, value_name = "DURATION", value_parser = span)]
    pub keep_within_yearly: Option<crate::snapshot::retention::Span>,
    /// Keep snapshots that have all of these comma-separated tags (repeatable).
    #[arg(long = "keep-tag", value_name = "TAGS")]
    pub keep_tags: Vec<String>,
    /// Which snapshots take part.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Group snapshots by these fields before applying the policy: any of
    /// host, paths, tags, key (the write-only key that wrote them, README
    /// "Write-only keys"), comma-separated; empty for one group.
    #[arg(long, value_name = "FIELDS", default_value = "host,paths")]
    pub group_by: String,
    /// Allow a policy to remove every snapshot of a group.
    #[arg(long)]
    pub allow_empty: bool,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run `gc` afterwards.
    #[arg(long)]
    pub gc: bool,
    /// Run although snapshots this machine saw are gone with no forget
    /// recorded (hidden or deleted by the storage?), accepting their loss.
    #[arg(long)]
    pub acknowledge_missing: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata gc`
#[derive(Args, Debug)]
pub struct GcArgs {
    /// Show what would be condemned, repacked and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Unused space to tolerate, as restic: a percentage of the repository
    /// (`5%`), a size (`100M`) or `unlimited`.
    #[arg(long, value_name = "LIMIT", default_value = "5%")]
    pub max_unused: String,
    /// Rewrite at most SIZE of packs (e.g. `2G`); `0` frees what it can
    /// without writing packs (for a full disk).
    #[arg(long, value_name = "SIZE")]
    pub max_repack: Option<String>,
    /// How long a pack stays condemned before deletion (default 23h, or
    /// STRATA_GC_GRACE). `0` deletes at once: safe only if no backup can be
    /// running (see README "Retention and gc").
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub grace: Option<std::time::Duration>,
    /// Run although snapshots this machine saw are gone with no forget
    /// recorded (hidden or deleted by the storage?), accepting their loss.
    #[arg(long)]
    pub acknowledge_missing: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata tag`
#[derive(Args, Debug)]
pub struct TagArgs {
    /// Snapshots (id prefixes or `latest`).
    #[arg(required = true)]
    pub snapshots: Vec<String>,
    /// Add this tag (repeatable).
    #[arg(long = "add", value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long = "remove", value_name = "TAG")]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable; `--set ''` clears them).
    #[arg(long = "set", value_name = "TAG")]
    pub set: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata rewrite`
#[derive(Args, Debug)]
pub struct RewriteArgs {
    /// Snapshots (id prefixes or `latest`); all (that pass the filter) if none.
    pub snapshots: Vec<String>,
    /// Drop paths matching GLOB (repeatable). GLOB matches paths as stored in the snapshot (`/srv/app/cache`): `*` stays within a name, `**` spans directories; a leading `/` anchors at the root, otherwise any depth.
    #[arg(long = "exclude", value_name = "GLOB", required = true)]
    pub excludes: Vec<String>,
    /// Remove the original snapshots (a later `gc` deletes their data).
    #[arg(long)]
    pub forget: bool,
    /// Show what would be dropped; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Which snapshots, when none are named.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata recover`
#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// Sources of strata.toml to recover.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Recover every source.
    #[arg(long, conflicts_with = "sources")]
    pub all: bool,
    /// Restore this snapshot (id prefix) instead of the source's newest:
    /// one source only (a `pre-restore` snapshot undoes a recovery).
    #[arg(long, value_name = "ID", conflicts_with = "at")]
    pub snapshot: Option<String>,
    /// Restore each source's newest snapshot at or before TIME
    /// (`2026-12-01 14:00:00` local time, or RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Run the commands of a policy read from the repository (they are
    /// printed first; without --yes none runs).
    #[arg(long)]
    pub yes: bool,
    /// Do not save the current state in `pre-restore` snapshots first.
    #[arg(long)]
    pub no_safety_snapshot: bool,
    /// The repository to recover from (as --repo); with no local
    /// strata.toml, the policy is the one `run` stored there.
    #[arg(long, value_name = "URL")]
    pub from: Option<PathBuf>,
    /// strata.toml.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the plan and the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which strata.toml (`--config`, else STRATA_CONFIG, else ./strata.toml,
/// else ~/.config/strata/strata.toml).
#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The policy file.
    #[arg(long, value_name = "FILE", env = "STRATA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `strata run`
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run these sources now, due or not (default: every source that is due).
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The policy file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the summary as JSON (the webhook's body).
    #[arg(long)]
    pub json: bool,
}

/// `strata drill`
#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Sources of strata.toml to drill (default: every source).
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// The policy file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the summary as JSON (the webhook's body on failure).
    #[arg(long)]
    pub json: bool,
}

/// `strata check`
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("data").args(["read_data", "read_data_subset"])))]
pub struct CheckArgs {
    /// Also read every pack: its hash against its name, every blob against
    /// its id.
    #[arg(long)]
    pub read_data: bool,
    /// Read only some packs: `N/M` (part N of M, fixed by pack id: N = 1..M
    /// over M runs reads every pack once), `P%` or a size (`500M`) of
    /// packs picked at random.
    #[arg(long, value_name = "SUBSET", value_parser = subset)]
    pub read_data_subset: Option<crate::maint::check::Subset>,
    /// With read-data: skip the packs this machine verified within
    /// DURATION (e.g. `30d`).
    #[arg(long, value_name = "DURATION", value_parser = policy_duration, requires = "data")]
    pub max_age: Option<std::time::Duration>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn subset(s: &str) -> std::result::Result<crate::maint::check::Subset, String> {
    crate::maint::check::Subset::parse(s)
}

/// `strata rebuild-index`
#[derive(Args, Debug)]
pub struct RebuildIndexArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata status`
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The policy file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Fail (exit 5) when a source's latest snapshot is older than DURATION
    /// (default: `[status] max_age` of the config).
    #[arg(long, value_name = "DURATION", value_parser = policy_duration)]
    pub max_age: Option<std::time::Duration>,
    /// Print JSON (README "strata status --json").
    #[arg(long)]
    pub json: bool,
    /// Also write the figures in the Prometheus text format to FILE
    /// (atomically), for node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// What `schedule` prints.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleKind {
    /// systemd service and timer units.
    Systemd,
    /// crontab lines.
    Cron,
}

/// `strata schedule`
#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// The policy file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print units or crontab lines for this scheduler.
    #[arg(long, value_enum, value_name = "systemd|cron")]
    pub print: ScheduleKind,
    /// Write them (systemd: /etc/systemd/system, then `systemctl
    /// daemon-reload` and `enable --now`; cron: /etc/cron.d/strata) and say
    /// what was written.
    #[arg(long)]
    pub install: bool,
}

fn policy_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    crate::policy::config::parse_duration(s)
}

/// `strata unlock`
#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones (make sure no strata process
    /// uses the repository).
    #[arg(long)]
    pub remove_all: bool,
}

/// `strata repair`
#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Write snapshots that name damaged or missing blobs again without
    /// the damaged files (run `strata check --read-data` first).
    Snapshots(RepairSnapshotsArgs),
    /// Copy the intact blobs of damaged packs into new packs, then delete
    /// the damaged packs when nothing is lost by it.
    Packs(RepairPacksArgs),
}

/// `strata repair snapshots`
#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Snapshots (id prefixes or `latest`); all if none.
    pub snapshots: Vec<String>,
    /// Report what is damaged; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata repair packs`
#[derive(Args, Debug)]
pub struct RepairPacksArgs {
    /// Packs (full ids); all packs `check` recorded damaged if none.
    #[arg(value_name = "PACK")]
    pub packs: Vec<String>,
    /// Report what would be salvaged; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Another copy of the repository (the offsite mirror, or the
    /// primary): a damaged pack whose copy there hashes to its name is
    /// replaced by it before anything is salvaged.
    #[arg(long, value_name = "REPO")]
    pub from: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `strata sync`
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Where the mirror goes: a directory, `file:///path`, `s3://bucket/prefix`,
    /// `gs://…`, `az://…` (credentials from the environment: AWS_*, GOOGLE_*,
    /// AZURE_*). Empty or the same repository; anything else is refused.
    #[arg(value_name = "DEST")]
    pub dest: String,
    /// Copy from this repository instead of --repo / STRATA_REPO (e.g.
    /// `--from s3://bucket/prefix /srv/repo` rebuilds a local repository).
    #[arg(long, value_name = "SRC")]
    pub from: Option<String>,
    /// List what would be copied and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Then remove what the source no longer holds (manifests before
    /// packs); refused if that would remove a snapshot newer than the
    /// newest at the source. Unlocks an encrypted source to read times.
    #[arg(long)]
    pub delete: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Uploads in flight.
    #[arg(long, value_name = "N", default_value_t = crate::sync::DEFAULT_JOBS as u32,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Cap the upload bandwidth at RATE bytes per second (`10M`, `500k`).
    #[arg(long, value_name = "RATE")]
    pub limit_upload: Option<String>,
    /// Write every object to DEST (s3:// on a bucket with Object Lock
    /// enabled) with an Object Lock retention of DURATION (whole days:
    /// `30d`), and extend the retention of every object the source still
    /// holds when less than half of it is left (needs
    /// s3:PutObjectRetention; a put-only credential skips that).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub object_lock: Option<std::time::Duration>,
    /// The Object Lock mode of --object-lock: compliance (no one can
    /// delete or shorten it; the default) or governance.
    #[arg(long, value_name = "MODE", requires = "object_lock")]
    pub lock_mode: Option<String>,
}
