//! The plan of a recovery, made before anything runs: per source, the
//! snapshot and its age, what it restores to or into, the bytes, the
//! commands, and what stops it (a problem: nothing runs then).

use super::{RecoverOptions, Which};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::policy::config::PRE_RESTORE_TAG;
use crate::policy::{Config, Source, SourceKind};
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::snapshot::{self, Filter, Snapshot};
use serde::Serialize;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What `recover` will do.
#[derive(Debug, Serialize)]
pub struct Plan {
    /// The policy file (for a stored policy: where it was read from).
    pub config: PathBuf,
    /// The stored policy snapshot, when the policy came from the
    /// repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_policy: Option<String>,
    /// The sources, in name order.
    pub sources: Vec<Planned>,
    /// Why the recovery cannot run (empty: it can).
    pub problems: Vec<String>,
    /// Every shell command it runs, in order (to show and confirm those
    /// of a stored policy).
    pub commands: Vec<String>,
    /// Bytes to restore, all sources.
    pub bytes: u64,
}

/// One source in the plan.
#[derive(Debug, Serialize)]
pub struct Planned {
    /// The source's name.
    pub source: String,
    /// `paths`, `sqlite` or `command`.
    pub kind: &'static str,
    /// The snapshot it restores.
    pub snapshot: Option<String>,
    /// Its time (RFC 3339).
    pub time: Option<String>,
    /// Its age at planning, seconds.
    pub age_seconds: Option<u64>,
    /// Bytes of file data it restores.
    pub bytes: u64,
    /// Where it restores to: the paths, or the database file.
    pub targets: Vec<PathBuf>,
    /// Paths of the policy that the snapshot does not hold (not restored).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<PathBuf>,
    /// The command the stored file is streamed into.
    pub restore_command: Option<String>,
    /// Run first.
    pub before_restore: Option<String>,
    /// Run after the restore.
    pub after_restore: Option<String>,
    /// Run last.
    pub health_check: Option<String>,
    /// How long `health_check` may run.
    pub health_timeout_seconds: u64,
    /// What the safety step saves (`None`: `--no-safety-snapshot`).
    pub safety: Option<String>,
    /// Why this source cannot be recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The snapshot chosen.
    #[serde(skip)]
    pub(super) chosen: Option<(SnapshotId, Snapshot)>,
    /// The source.
    #[serde(skip)]
    pub(super) src: Source,
}

/// The sources `opts` names (or all), checked against the policy.
fn named<'c>(cfg: &'c Config, opts: &RecoverOptions) -> Result<Vec<&'c Source>> {
    if opts.all && !opts.sources.is_empty() {
        return Err(Error::Invalid(
            "give source names or --all, not both".into(),
        ));
    }
    if !opts.all && opts.sources.is_empty() {
        return Err(Error::Invalid(format!(
            "name the sources to recover, or --all (sources of {}: {})",
            cfg.path.display(),
            names(cfg)
        )));
    }
    for n in &opts.sources {
        if cfg.source(n).is_none() {
            return Err(Error::NotFound(format!(
                "{}: no source named {n:?} (sources: {})",
                cfg.path.display(),
                names(cfg)
            )));
        }
    }
    let chosen: Vec<&Source> = cfg
        .sources
        .iter()
        .filter(|s| opts.all || opts.sources.contains(&s.name))
        .collect();
    if matches!(opts.which, Which::Snapshot(_)) && chosen.len() != 1 {
        return Err(Error::Invalid(
            "--snapshot ID restores one source: name it (`recover SOURCE --snapshot ID`)".into(),
        ));
    }
    Ok(chosen)
}

fn names(cfg: &Config) -> String {
    cfg.sources
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plan the recovery of the sources `opts` names, by policy `cfg`, from
/// `repo`. `Err` for a request that makes no sense (an unknown source);
/// what stops the recovery of a source is in [`Plan::problems`].
pub fn plan(repo: &Repo, cfg: &Config, opts: &RecoverOptions) -> Result<Plan> {
    let sources = named(cfg, opts)?;
    let reader = BlobReader::reporting(repo)?;
    let (list, bad) = snapshot::list(repo)?;
    for e in &bad {
        repo.events()
            .warning(&format!("skipping unreadable snapshot: {e}"));
    }
    let now = crate::sys::now_ns();
    let mut plan = Plan {
        config: cfg.path.clone(),
        stored_policy: None,
        sources: Vec::new(),
        problems: Vec::new(),
        commands: Vec::new(),
        bytes: 0,
    };
    for s in sources {
        let chosen = choose(repo, cfg, s, &opts.which, &list)?;
        let p = planned(&reader, s, chosen, opts, now)?;
        if let Some(why) = &p.problem {
            plan.problems.push(format!("{}: {why}", s.name));
        }
        plan.commands.extend(commands(&p));
        plan.bytes += p.bytes;
        plan.sources.push(p);
    }
    Ok(plan)
}

/// The snapshot of source `s` that `which` means; `Ok(Err(why))` when
/// there is none.
fn choose(
    repo: &Repo,
    cfg: &Config,
    s: &Source,
    which: &Which,
    list: &snapshot::Listed,
) -> Result<std::result::Result<(SnapshotId, Snapshot), String>> {
    let filter = Filter {
        host: cfg.host.clone(),
        tags: vec![s.name.clone()],
        skip_tags: vec![PRE_RESTORE_TAG.to_string()],
        ..Filter::default()
    };
    let mut of_source = list.iter().rev().filter(|(_, sn)| filter.matches(sn));
    let found = match which {
        Which::Snapshot(spec) => {
            let id = snapshot::resolve_id(repo, spec)?;
            return Ok(Ok((id, Snapshot::load(repo, &id)?)));
        }
        Which::Latest => of_source.next(),
        Which::At(t) => of_source.find(|(_, sn)| sn.time_unix_ns <= *t),
    };
    Ok(found.cloned().ok_or_else(|| match which {
        Which::At(t) => format!(
            "no snapshot{} at or before {}",
            filter.describe(),
            crate::sys::rfc3339(*t)
        ),
        _ => format!("no snapshot{}", filter.describe()),
    }))
}

/// Source `s` with its chosen snapshot, checked.
fn planned(
    reader: &BlobReader,
    s: &Source,
    chosen: std::result::Result<(SnapshotId, Snapshot), String>,
    opts: &RecoverOptions,
    now: i64,
) -> Result<Planned> {
    let d = &s.restore;
    let mut p = Planned {
        source: s.name.clone(),
        kind: kind_name(&s.kind),
        snapshot: None,
        time: None,
        age_seconds: None,
        bytes: 0,
        targets: Vec::new(),
        missing: Vec::new(),
        restore_command: d.restore_command.clone(),
        before_restore: d.before_restore.clone(),
        after_restore: d.after_restore.clone(),
        health_check: d.health_check.clone(),
        health_timeout_seconds: d.health_timeout.as_secs(),
        safety: None,
        problem: None,
        chosen: None,
        src: s.clone(),
    };
    let (id, snap) = match chosen {
        Ok(c) => c,
        Err(why) => {
            p.problem = Some(why);
            return Ok(p);
        }
    };
    p.snapshot = Some(id.to_hex());
    p.time = Some(snap.time_string());
    p.age_seconds = Some(((now - snap.time_unix_ns).max(0) / 1_000_000_000) as u64);
    p.bytes = snap.summary.total_bytes;
    p.problem = targets(reader, &snap, &mut p, opts.drill)?;
    if !opts.no_safety_snapshot {
        p.safety = Some(safety_text(&p));
    }
    p.chosen = Some((id, snap));
    Ok(p)
}

fn kind_name(k: &SourceKind) -> &'static str {
    match k {
        SourceKind::Paths { .. } => "paths",
        SourceKind::Sqlite { .. } => "sqlite",
        SourceKind::Command { .. } => "command",
    }
}

/// Fill in where `p` restores to; the problem, if any.
fn targets(
    reader: &BlobReader,
    snap: &Snapshot,
    p: &mut Planned,
    drill: bool,
) -> Result<Option<String>> {
    let holds = |path: &[u8]| crate::inspect::latest::holds(reader, snap, path);
    let file = match &p.src.kind {
        SourceKind::Paths { paths, .. } => {
            for path in paths {
                if holds(path.as_os_str().as_bytes())? {
                    p.targets.push(path.clone());
                } else {
                    p.missing.push(path.clone());
                }
            }
            if p.targets.is_empty() {
                return Ok(Some("the snapshot holds none of the source's paths".into()));
            }
            return Ok(None);
        }
        SourceKind::Sqlite { db, file } => {
            p.targets.push(db.clone());
            file
        }
        SourceKind::Command { file, .. } => file,
    };
    if !holds(format!("/{file}").as_bytes())? {
        return Ok(Some(format!("the snapshot does not hold /{file}")));
    }
    if matches!(p.src.kind, SourceKind::Command { .. }) && p.restore_command.is_none() && !drill {
        return Ok(Some(format!(
            "a command source without restore_command: strata cannot restore it by itself \
             (add restore_command to [sources.{}], or restore it by hand with \
             `strata restore --source {} latest --to-command ...`)",
            p.source, p.source
        )));
    }
    Ok(None)
}

/// What the safety step of `p` saves, in words.
fn safety_text(p: &Planned) -> String {
    match &p.src.kind {
        SourceKind::Paths { .. } => format!(
            "what {} hold, into a {PRE_RESTORE_TAG} snapshot",
            p.targets
                .iter()
                .map(|t| t.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SourceKind::Sqlite { db, .. } => format!(
            "the live database {} (online copy), into a {PRE_RESTORE_TAG} snapshot",
            db.display()
        ),
        SourceKind::Command { command, .. } => {
            format!("the output of `{command}`, into a {PRE_RESTORE_TAG} snapshot")
        }
    }
}

/// The shell commands recovering `p` runs, in order.
fn commands(p: &Planned) -> Vec<String> {
    let safety = match (&p.src.kind, &p.safety) {
        (SourceKind::Command { command, .. }, Some(_)) => Some(command.clone()),
        _ => None,
    };
    [
        p.before_restore.clone(),
        safety,
        p.restore_command.clone(),
        p.after_restore.clone(),
        p.health_check.clone(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
