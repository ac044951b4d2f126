//! The policy stored in the repository (issue 22, README "strata
//! recover"): every `strata run` saves its strata.toml as a snapshot of
//! one file, `/strata.toml`, tagged [`POLICY_TAG`] (and
//! `strata-policy-file=PATH`, the file it was read from, which anchors its
//! relative paths), when it differs from the newest one stored. No format
//! change: it is an ordinary stdin snapshot. `run` never forgets it (its
//! retention goes by each source's tag, and no source may be named
//! `strata-policy`), and it holds no passphrase (strata.toml never does:
//! only how to get one). `recover --from URL` on a bare machine reads the
//! newest.

use crate::backup::{self, Counters, SnapshotOptions, StdinSource};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::policy::Config;
use crate::read::BlobReader;
use crate::repo::Repo;
use crate::repo::lock::{Lock, LockKind};
use crate::session::Session;
use crate::snapshot::tree::EntryKind;
use crate::snapshot::{self, Filter, Snapshot};
use std::path::{Path, PathBuf};

pub use crate::policy::config::POLICY_TAG;
/// The tag that names the file the policy was read from.
const FILE_TAG: &str = "strata-policy-file=";
/// The file name in the snapshot.
const NAME: &str = "strata.toml";
/// The largest stored policy read back.
const MAX_POLICY: u64 = 1 << 20;

/// A policy stored in the repository.
#[derive(Clone, Debug)]
pub struct StoredPolicy {
    /// Its snapshot.
    pub id: SnapshotId,
    /// When it was stored (RFC 3339).
    pub time: String,
    /// The host that stored it.
    pub host: String,
    /// The file it was read from there.
    pub origin: PathBuf,
    /// Its text, as stored.
    pub text: String,
    /// It, parsed as if read from `origin`.
    pub config: Config,
}

/// The newest stored policy snapshot and its bytes.
fn newest(repo: &Repo) -> Result<Option<(SnapshotId, Snapshot, Vec<u8>)>> {
    let filter = Filter {
        tags: vec![POLICY_TAG.to_string()],
        ..Filter::default()
    };
    let found = snapshot::readable(repo)?
        .into_iter()
        .rev()
        .find(|(_, s)| filter.matches(s));
    let Some((id, snap)) = found else {
        return Ok(None);
    };
    let reader = BlobReader::reporting(repo)?;
    let at = crate::inspect::locate(&reader, &snap, format!("/{NAME}").as_bytes())?;
    let e = match at.entry {
        Some(e) if e.kind() == EntryKind::File && e.size <= MAX_POLICY => e,
        _ => {
            return Err(Error::Invalid(format!(
                "snapshot {} (tag {POLICY_TAG}): /{NAME} is not a file of at most 1 MiB",
                id.short()
            )));
        }
    };
    let mut bytes = Vec::new();
    crate::inspect::cat(&reader, &e, &mut bytes)?;
    Ok(Some((id, snap, bytes)))
}

/// The file a stored policy was read from (its tag), else `/strata.toml`.
fn origin(snap: &Snapshot) -> PathBuf {
    snap.tags
        .iter()
        .find_map(|t| t.strip_prefix(FILE_TAG))
        .map_or_else(|| PathBuf::from("/").join(NAME), PathBuf::from)
}

/// The newest policy stored in the repository, parsed; `None` if `run`
/// never stored one.
pub fn latest(repo: &Repo) -> Result<Option<StoredPolicy>> {
    let Some((id, snap, bytes)) = newest(repo)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Invalid(format!(
            "the policy stored in snapshot {} is not UTF-8",
            id.short()
        ))
    })?;
    let origin = origin(&snap);
    let config = crate::policy::config::parse(&text, &origin).map_err(|e| {
        Error::Invalid(format!("the policy stored in snapshot {}: {e}", id.short()))
    })?;
    Ok(Some(StoredPolicy {
        id,
        time: snap.time_string(),
        host: snap.host.clone(),
        origin,
        text,
        config,
    }))
}

/// Store `cfg`'s file unless the newest stored policy has the same bytes
/// and origin: the new snapshot's id, or `None` when unchanged.
pub fn store(repo: &Repo, cfg: &Config, lock: &Lock) -> Result<Option<SnapshotId>> {
    let text = std::fs::read(&cfg.path).map_err(|e| Error::Io {
        path: cfg.path.clone(),
        source: e,
    })?;
    if let Some((_, snap, old)) = newest(repo)? {
        if old == text && origin(&snap) == cfg.path {
            return Ok(None);
        }
    }
    let opts = SnapshotOptions {
        stdin: Some(StdinSource {
            name: NAME.to_string(),
            command: None,
            file: Some(cfg.path.clone()),
            timeout: None,
        }),
        tags: vec![
            POLICY_TAG.to_string(),
            format!("{FILE_TAG}{}", cfg.path.display()),
        ],
        host: cfg.host.clone(),
        ..SnapshotOptions::default()
    };
    Ok(Some(
        backup::run(repo, &opts, &Counters::default(), lock)?.id,
    ))
}

/// The `policy` step of `strata run`: store the policy under a shared
/// lock; a one-line detail, or the error.
pub fn run_step(
    session: &Session,
    repo: &Repo,
    cfg: &Config,
) -> std::result::Result<String, String> {
    let done = session
        .lock(repo, LockKind::Shared)
        .and_then(|lock| store(repo, cfg, &lock));
    let shown = shown(&cfg.path);
    match done {
        Ok(Some(id)) => Ok(format!(
            "stored {shown} in snapshot {} (tag {POLICY_TAG})",
            id.short()
        )),
        Ok(None) => Ok(format!("{shown} unchanged since the stored one")),
        Err(e) => Err(format!("storing {shown}: {e}")),
    }
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}
