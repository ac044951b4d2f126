//! `strata sync`: make a destination a mirror of a repository, through the
//! [`Backend`] seam at both ends, so any pair works (local directory,
//! `file://`, `s3://`, `memory://`). Files are copied as identical bytes
//! under the same keys, never decoded or re-encoded. format-spec/sync.md
//! is the contract; the steps, each citing the rule it keeps:
//!
//! 1. **Identity** ([`identity`]): the destination is empty (a new mirror)
//!    or holds the same repository; anything else is refused.
//! 2. **Listings** ([`plan`]): the source's manifests before its packs
//!    (INV-4), then the destination's.
//! 3. **Copies** in [`Kind`] order: `config`, keys, dictionaries, packs,
//!    gc state, manifests, each phase only if every earlier one succeeded,
//!    so a manifest never arrives before the packs it needs (`copy.rs`).
//!    A file already at the destination with the same size is skipped:
//!    an interrupted sync resumes where it stopped.
//! 4. **Locks** ([`locks`]): on a destination written with an Object
//!    Lock, the retention of what the source still holds is extended
//!    before it runs out (after error-free copies).
//! 5. **Deletions** (`--delete`, only after error-free copies): manifests,
//!    then packs, gc state, keys; refused if a manifest to delete is newer
//!    than the newest at the source (a rolled-back or emptied source).

mod copy;
mod heal;
pub mod identity;
pub mod layout;
pub mod limit;
pub mod locks;
pub mod plan;
pub mod record;

use crate::backend::{Backend, key};
use crate::error::{Error, Result};
use crate::repo::CredentialSource;
pub use copy::pool;
use copy::{Ctx, Done};
use identity::{ConfigAction, SourceKeys};
use limit::RateLimit;
pub use plan::Kind;
use plan::{Item, Listing};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// Default number of uploads in flight (`--jobs`).
pub const DEFAULT_JOBS: usize = 8;

/// Options of one sync (validated by the CLI).
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Plan and report; write and delete nothing.
    pub dry_run: bool,
    /// Remove what the source no longer holds (after the copies).
    pub delete: bool,
    /// Uploads (and deletes) in flight, at least 1.
    pub jobs: usize,
    /// Upload cap in bytes per second, shared by all workers.
    pub limit_upload: Option<u64>,
    /// Refuse an unencrypted source (threat-model.md "Downgrade"), as
    /// [`crate::repo::OpenOptions`] does for an open.
    pub open: crate::repo::OpenOptions,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            dry_run: false,
            delete: false,
            jobs: DEFAULT_JOBS,
            limit_upload: None,
            open: Default::default(),
        }
    }
}

/// Counters a progress display samples.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes copied so far.
    pub bytes: AtomicU64,
    /// Files copied so far.
    pub files: AtomicU64,
    /// Bytes to copy in all (known once both ends are listed).
    pub total: AtomicU64,
}

impl Progress {
    fn copied(&self, n: u64) {
        self.bytes.fetch_add(n, Relaxed);
        self.files.fetch_add(1, Relaxed);
    }
}

/// A number of files and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Files.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }
}

/// One line of a dry run: what would be copied or deleted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Planned {
    /// `copy`, `replace` or `delete`.
    pub action: &'static str,
    /// The key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct SyncReport {
    /// The source's URL or directory.
    pub source: String,
    /// The destination's.
    pub destination: String,
    /// Nothing was written or deleted.
    pub dry_run: bool,
    /// The destination was empty: a new mirror.
    pub new_mirror: bool,
    /// The destination's format-1 config was replaced by the source's
    /// format-2 one.
    pub config_upgraded: bool,
    /// Written (dry run: would be).
    pub copied: Tally,
    /// At the destination already, same size.
    pub skipped: Tally,
    /// Packs copied again over a damaged copy at the destination (found
    /// damaged there by a check, or of another size), from a source copy
    /// that hashes to its name (dry run: would be).
    pub replaced: Tally,
    /// Removed by `--delete` (dry run: would be).
    pub deleted: Tally,
    /// How many files failed, or 1 for a refused `--delete`.
    pub errors: usize,
    /// One line per error, each naming its file.
    pub error_messages: Vec<String>,
    /// The Object Lock pass, on a locked destination ([`locks`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<locks::LockReport>,
    /// The first phase not run because an earlier one had errors.
    pub stopped_before: Option<&'static str>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Dry run only: each file that would be copied or deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<Planned>,
    /// The keys this sync wrote (their Object Lock retention is a full
    /// period from now: the lock pass skips them).
    #[serde(skip)]
    pub copied_keys: std::collections::HashSet<String>,
    /// The errors themselves (for the exit code).
    #[serde(skip)]
    pub failures: Vec<Error>,
}

impl SyncReport {
    fn fail(&mut self, e: Error) {
        self.error_messages.push(e.to_string());
        self.failures.push(e);
        self.errors = self.failures.len();
    }

    fn plan(&mut self, action: &'static str, item: &Item) {
        self.planned.push(Planned {
            action,
            key: item.key.clone(),
            bytes: item.size,
        });
    }
}

/// Make `dst` a mirror of the repository at `src`. `creds` is asked for a
/// credential only if the source is encrypted and a decision needs its
/// secret ([`identity`]). Refusals (another repository at the
/// destination, a source that is no repository) and listing failures are
/// `Err`; failures of single files are in the report, whose `stopped_before`
/// says which phases they held back.
pub fn run(
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &SyncOptions,
    creds: CredentialSource,
    progress: &Progress,
) -> Result<SyncReport> {
    let when = crate::sys::now_ns();
    let r = copy_all(src, dst, opts, creds, progress);
    if !opts.dry_run {
        let outcome = match &r {
            Ok(rep) => match rep.failures.first() {
                None => Ok(()),
                Some(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        record::record_sync(src.name(), dst.name(), when, outcome);
    }
    r
}

/// [`run`], without the record.
fn copy_all(
    src: &dyn Backend,
    dst: &dyn Backend,
    opts: &SyncOptions,
    creds: CredentialSource,
    progress: &Progress,
) -> Result<SyncReport> {
    let started = Instant::now();
    let mut r = SyncReport {
        source: src.name().to_string(),
        destination: dst.name().to_string(),
        dry_run: opts.dry_run,
        ..SyncReport::default()
    };
    let mut keys = SourceKeys::read(src, creds, &opts.open)?;
    if opts.delete {
        // write-only.md: deleting needs a full key (it reads manifests to
        // refuse a rollback), refused before anything is copied
        if let Some(c) = keys.crypto()? {
            c.full("`sync --delete`")?;
        }
    }
    let action = identity::check(&mut keys, dst)?;
    r.new_mirror = action == ConfigAction::New;
    let src_list = Listing::read(src)?;
    let dst_list = match action {
        ConfigAction::New => Listing::default(),
        _ => Listing::read(dst)?,
    };
    let records = heal::Records::find(src.name(), dst.name());
    let plan = plan::copies(&src_list, &dst_list, dst.name(), &records.damaged());
    r.skipped = plan.skipped;
    progress.total.store(plan.bytes(), Relaxed);
    let limit = opts.limit_upload.map(RateLimit::new);
    let memory = copy::Budget::new(copy::MEMORY);
    let ctx = Ctx {
        src,
        dst,
        jobs: opts.jobs.max(1),
        limit: limit.as_ref(),
        memory: &memory,
        progress,
    };

    // config first: from the first file on, the mirror is recognisable
    let config = Item {
        key: key::CONFIG.to_string(),
        kind: Kind::Config,
        size: keys.config.len() as u64,
    };
    match (action, opts.dry_run) {
        (ConfigAction::Same, _) => r.skipped.add(config.size),
        (_, true) => {
            r.copied.add(config.size);
            r.plan("copy", &config);
        }
        (ConfigAction::New, false) => {
            match copy::copy_one(&ctx, &config)? {
                Done::Copied(n) => r.copied.add(n),
                Done::Skipped(n) => r.skipped.add(n),
            }
            // another writer may have put a config there first: the same
            // check as for an existing mirror
            identity::check(&mut keys, dst)?;
        }
        (ConfigAction::Upgrade, false) => {
            // repository.md: the config upgrade is the one replace allowed,
            // and it comes before any file of format 2
            dst.put_replace(key::CONFIG, &keys.config)?;
            r.config_upgraded = true;
            r.copied.add(config.size);
        }
    }

    copy_phases(&ctx, &records, plan.phases, opts, &mut r);

    if let Some(lock) = dst.object_lock() {
        if !opts.dry_run && r.failures.is_empty() {
            r.locks = Some(locks::extend(&ctx, lock, &src_list, &r.copied_keys));
        }
    }

    if opts.delete {
        if r.failures.is_empty() {
            delete(&ctx, &mut keys, &src_list, &dst_list, opts, &mut r);
        } else {
            r.stopped_before.get_or_insert("deletions");
        }
    }
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// The phases of `phases` in order, each only if the ones before had no
/// error (a manifest must never arrive before a pack it may need).
fn copy_phases(
    ctx: &Ctx,
    records: &heal::Records,
    phases: Vec<plan::Phase>,
    opts: &SyncOptions,
    r: &mut SyncReport,
) {
    // what a stop leaves out: the next phases, but not the kinds of format
    // 3 when there is nothing of them to copy (a format-2 repository)
    let labels: Vec<Option<&'static str>> = phases
        .iter()
        .map(|p| {
            let idle = p.items.is_empty() && p.replace.is_empty();
            let format_3 = matches!(p.kind, Kind::KeyRemoved | Kind::Trust | Kind::Coord);
            (!(idle && format_3)).then(|| p.kind.label())
        })
        .collect();
    for (i, phase) in phases.into_iter().enumerate() {
        for e in phase.conflicts {
            r.fail(e);
        }
        if opts.dry_run {
            for item in &phase.items {
                r.copied.add(item.size);
                r.plan("copy", item);
            }
            for item in &phase.replace {
                r.replaced.add(item.size);
                r.plan("replace", item);
            }
            continue;
        }
        replace(ctx, records, &phase.replace, r);
        for (item, res) in phase.items.iter().zip(copy::copy_all(ctx, &phase.items)) {
            match res {
                Ok(Done::Copied(n)) => {
                    r.copied.add(n);
                    r.copied_keys.insert(item.key.clone());
                }
                Ok(Done::Skipped(n)) => r.skipped.add(n),
                Err(e) => r.fail(e),
            }
        }
        if !r.failures.is_empty() {
            // a manifest must never arrive before a pack it may need
            r.stopped_before = labels.iter().skip(i + 1).find_map(|l| *l);
            break;
        }
    }
}

/// Copy `items` (damaged packs at the destination) again, then clear
/// the destination's records of those copied.
fn replace(ctx: &Ctx, records: &heal::Records, items: &[Item], r: &mut SyncReport) {
    let mut healed = Vec::new();
    for (item, res) in items.iter().zip(copy::replace_all(ctx, items)) {
        match res {
            Ok(Done::Copied(n) | Done::Skipped(n)) => {
                r.replaced.add(n);
                let name = item.key.rsplit('/').next().unwrap_or_default();
                healed.extend(crate::id::PackId::from_hex(name));
            }
            Err(e) => r.fail(Error::Invalid(format!(
                "{e} (to be copied over the destination's damaged copy: neither end has an \
                 intact one to give? check both)"
            ))),
        }
    }
    if let Some(w) = records.healed(&healed) {
        r.fail(Error::Invalid(format!("records of the copied packs: {w}")));
    }
}

/// `--delete`: plan against a second source listing, check the rollback
/// rule, then delete phase by phase (manifests before packs, each phase
/// only if the one before had no error).
fn delete(
    ctx: &Ctx,
    keys: &mut SourceKeys,
    src_list: &Listing,
    dst_list: &Listing,
    opts: &SyncOptions,
    r: &mut SyncReport,
) {
    let planned = Listing::read(ctx.src).and_then(|fresh| {
        let items = plan::deletions(src_list, &fresh, dst_list);
        not_newer(ctx, keys, &fresh, &items)?;
        Ok(items)
    });
    let items = match planned {
        Ok(items) => items,
        Err(e) => {
            r.fail(e);
            r.stopped_before = Some("deletions");
            return;
        }
    };
    if opts.dry_run {
        for item in &items {
            r.deleted.add(item.size);
            r.plan("delete", item);
        }
        return;
    }
    for group in items.chunk_by(|a, b| a.kind == b.kind) {
        for (item, res) in group.iter().zip(copy::delete_all(ctx, group)) {
            match res {
                Ok(true) => r.deleted.add(item.size),
                Ok(false) => {}
                Err(e) => r.fail(e),
            }
        }
        if !r.failures.is_empty() {
            r.stopped_before = Some("the rest of the deletions");
            return;
        }
    }
}

/// The rollback rule: no manifest among `items` may be newer than the
/// newest manifest at the source (`fresh`); with none at the source, none
/// may be deleted. Reads every source manifest (and the ones to delete)
/// and unlocks an encrypted source for it, only when a manifest is to go.
fn not_newer(ctx: &Ctx, keys: &mut SourceKeys, fresh: &Listing, items: &[Item]) -> Result<()> {
    let doomed: Vec<&Item> = items.iter().filter(|i| i.kind == Kind::Snapshot).collect();
    if doomed.is_empty() {
        return Ok(());
    }
    let crypto = keys.crypto()?;
    // write-only.md: a write-only key's manifests are checked against the
    // source's keys; a write-only key cannot read them at all
    let signers = match crypto.as_deref() {
        Some(c) => {
            c.full("`sync --delete`")?;
            crate::repo::keys::Signers::load(ctx.src, c, None)?
        }
        None => Default::default(),
    };
    let time_at = |b: &dyn Backend, key: &str| -> Result<Option<i64>> {
        let bytes = match b.get(key) {
            Ok(bytes) => bytes,
            // removed meanwhile (forget at the source)
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        identity::snapshot_time(
            &bytes,
            key,
            &format!("{}: {key}", b.name()),
            crypto.as_deref(),
            &signers,
        )
        .map(Some)
    };
    let ours: Vec<Item> = fresh.of_kind(Kind::Snapshot).collect();
    let mut newest: Option<i64> = None;
    for t in copy::pool(ctx.jobs, ours.len(), |i| time_at(ctx.src, &ours[i].key)) {
        // an unreadable manifest may be the newest: refuse rather than guess
        let t = t.map_err(|e| {
            Error::Invalid(format!(
                "--delete needs the time of every snapshot at the source: {e}; nothing deleted"
            ))
        })?;
        newest = newest.max(t);
    }
    let times = copy::pool(ctx.jobs, doomed.len(), |i| time_at(ctx.dst, &doomed[i].key));
    for (item, t) in doomed.iter().zip(times) {
        let t = t.map_err(|e| {
            Error::Invalid(format!(
                "--delete: cannot read the time of a snapshot it would remove: {e}; nothing deleted"
            ))
        })?;
        let Some(t) = t else { continue };
        let newer = match newest {
            None => true,
            Some(n) => t > n,
        };
        if newer {
            return Err(Error::Invalid(format!(
                "{}: {}: dated {}, {}: a rolled-back or emptied source must not spread; \
                 nothing deleted",
                ctx.dst.name(),
                item.key,
                crate::sys::rfc3339(t),
                match newest {
                    Some(n) => format!(
                        "newer than the newest snapshot at the source ({})",
                        crate::sys::rfc3339(n)
                    ),
                    None => "and the source has no snapshots".to_string(),
                }
            )));
        }
    }
    Ok(())
}
