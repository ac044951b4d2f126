//! Model-based check of a whole repository (issue 10 "Fuzzing"), shared by
//! `tests/it/repo_model.rs` (a seeded loop in `cargo test`) and
//! `fuzz/fuzz_targets/repo_model.rs` (libFuzzer): bytes decode into a
//! sequence of steps — edit the source directory, snapshot, forget, gc,
//! restore, check — run through the library on `memory://` wrapped in a
//! [`FaultBackend`] that fails a chosen call of a step (transient,
//! persistent, or a lost reply). After every step, with the faults healed,
//! the repository is compared with a model: which snapshots exist, and
//! the files (name -> bytes) each holds. A step that failed must leave the
//! model unchanged or be accounted for (a snapshot whose step failed may
//! exist and is then adopted; a forget that failed may have removed it).
//! Needs `STRATA_CACHE_DIR=""` (no tree cache, no check state in the
//! user's cache) and `STRATA_GC_GRACE=0s` (gc deletes at once, and check
//! and backup agree with it on the grace period): the callers set them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata::SnapshotId;
use strata::backend::{Backend, Fault, FaultBackend, Op};
use strata::backup::{self, Counters, SnapshotOptions};
use strata::maint::check::{self, CheckOptions, Subset};
use strata::maint::gc::{self, GcOptions};
use strata::maint::plan::MaxUnused;
use strata::repo::config::ChunkerParams;
use strata::repo::lock::Lock;
use strata::restore::{self, RestoreOptions};
use strata::snapshot::Snapshot;
use strata::{InitOptions, Repo};

/// Steps per input at most (a fuzz input of any length stays fast).
pub const MAX_STEPS: usize = 24;
const FILES: u8 = 4;
const OPS: [Op; 8] = [
    Op::Get,
    Op::GetRange,
    Op::Size,
    Op::PutNew,
    Op::PutNewFile,
    Op::PutReplace,
    Op::List,
    Op::Delete,
];

/// What a step of the library did (inner) unless the repository and the
/// model parted (outer `Err`, which ends the run).
type Step = Result<Result<(), String>, String>;

/// File name -> bytes.
type Files = BTreeMap<String, Vec<u8>>;
type Store = FaultBackend<Box<dyn Backend>>;

/// What a run did, for the caller's statistics.
#[derive(Debug, Default)]
pub struct Summary {
    /// Repository steps run.
    pub steps: usize,
    /// Faults injected (rules added).
    pub faults: usize,
    /// Steps that failed (always with a fault).
    pub failed: usize,
    /// Snapshots adopted although their step failed.
    pub adopted: usize,
    /// Snapshots that exist at the end.
    pub snapshots: usize,
}

/// The input, read a byte at a time (0 once it is used up).
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// Deterministic file contents (xorshift over a seed).
fn contents(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // runs of repeated bytes compress, the rest does not
        let b = x.to_le_bytes();
        if x % 4 == 0 {
            out.extend(std::iter::repeat_n(b[0], 64));
        } else {
            out.extend_from_slice(&b);
        }
    }
    out.truncate(len);
    out
}

struct Harness {
    scratch: PathBuf,
    src: PathBuf,
    store: Arc<Store>,
    repo: Repo,
    lock: Lock,
    /// The source directory as it is now.
    source: Files,
    /// The model: snapshots that exist and what they hold.
    snaps: BTreeMap<SnapshotId, Files>,
    step: u64,
    summary: Summary,
    /// `STRATA_MODEL_TRACE=1`: print each step on stderr.
    trace: bool,
}

/// Run the steps `input` encodes in a fresh repository under `scratch`
/// (an empty directory, left for the caller to remove). `Err` says where
/// the repository and the model parted.
pub fn run(input: &[u8], scratch: &Path) -> Result<Summary, String> {
    let mut inp = Input {
        data: input,
        pos: 0,
    };
    if strata::repo::gcstate::grace_from_env().ok() != Some(std::time::Duration::ZERO) {
        return Err("the model needs STRATA_GC_GRACE=0s".into());
    }
    let flags = inp.byte();
    let mut h = Harness::new(scratch, flags & 1 == 1)?;
    while !inp.done() && h.summary.steps < MAX_STEPS {
        let op = inp.byte();
        match op % 8 {
            0 | 1 => {
                let idx = inp.byte() % FILES;
                let size = match inp.byte() % 4 {
                    0 => usize::from(inp.byte()),              // inline
                    1 => 4096 + usize::from(inp.byte()) * 16,  // one or two chunks
                    _ => 8192 + usize::from(inp.byte()) * 160, // several chunks
                };
                h.write(idx, size)?;
            }
            2 => {
                let idx = inp.byte() % FILES;
                h.remove(idx)?;
            }
            _ => {
                let arg = inp.byte();
                let fault = (inp.byte(), inp.byte());
                h.summary.steps += 1;
                h.repo_step(op % 8, arg, fault)?;
                h.store.heal();
                h.verify()?;
            }
        }
    }
    h.summary.snapshots = h.snaps.len();
    Ok(h.summary)
}

impl Harness {
    fn new(scratch: &Path, encrypted: bool) -> Result<Harness, String> {
        let src = scratch.join("src");
        std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
        let inner = strata::backend::open("memory://").map_err(|e| e.to_string())?;
        let store = Arc::new(FaultBackend::new(inner));
        let key = encrypted.then(|| {
            let id = age::x25519::Identity::generate();
            strata::repo::keys::NewKey::Recipient(id.to_public().to_string())
        });
        let opts = InitOptions {
            key,
            key_label: "model".into(),
            chunker: Some(ChunkerParams {
                min: 1024,
                avg: 4096,
                max: 16384,
                ..ChunkerParams::default()
            }),
            ..InitOptions::default()
        };
        let repo = Repo::init_on(store.clone(), &scratch.join("work"), &opts)
            .map_err(|e| format!("init: {e}"))?;
        Ok(Harness {
            scratch: scratch.to_path_buf(),
            src,
            store,
            repo,
            lock: Lock::none(),
            source: Files::new(),
            snaps: BTreeMap::new(),
            step: 0,
            summary: Summary::default(),
            trace: std::env::var_os("STRATA_MODEL_TRACE").is_some(),
        })
    }

    /// A fault for what follows from two input bytes: none (half the
    /// values), or op, call (1..=6 calls after those made so far) and kind.
    fn fault(&mut self, (a, b): (u8, u8)) -> bool {
        if a < 128 {
            return false;
        }
        let op = OPS[usize::from(a % 8)];
        let nth = self.store.calls(op) + 1 + u64::from(b % 6);
        let kind = match (a / 8) % 3 {
            0 => Fault::Transient,
            1 => Fault::Persistent,
            _ => Fault::LostReply,
        };
        self.store.fail(op, nth, kind);
        if self.trace {
            eprintln!("  fault: {op:?} call {nth} {kind:?}");
        }
        self.summary.faults += 1;
        true
    }

    fn write(&mut self, idx: u8, size: usize) -> Result<(), String> {
        self.step += 1;
        let name = format!("f{idx}");
        let data = contents(self.step, size);
        let path = self.src.join(&name);
        std::fs::write(&path, &data).map_err(|e| e.to_string())?;
        // a distinct mtime per write: change detection cannot miss an edit
        // made within the timestamp granularity of the previous snapshot
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000 + self.step);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(t))
            .map_err(|e| e.to_string())?;
        if self.trace {
            eprintln!("step {}: write {name} ({size} bytes)", self.step);
        }
        self.source.insert(name, data);
        Ok(())
    }

    fn remove(&mut self, idx: u8) -> Result<(), String> {
        let name = format!("f{idx}");
        if self.source.remove(&name).is_some() {
            std::fs::remove_file(self.src.join(&name)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The snapshot ids in the repository (faults healed).
    fn repo_snapshots(&self) -> Result<BTreeMap<SnapshotId, Snapshot>, String> {
        let (list, bad) =
            strata::snapshot::list(&self.repo).map_err(|e| format!("listing snapshots: {e}"))?;
        if let Some(e) = bad.first() {
            return Err(format!("unreadable snapshot: {e}"));
        }
        Ok(list.into_iter().collect())
    }

    /// A snapshot of the model and its manifest (read with no fault).
    fn pick(&self, arg: u8) -> Result<Option<(SnapshotId, Snapshot)>, String> {
        let n = self.snaps.len().max(1);
        let Some(id) = self.snaps.keys().nth(usize::from(arg) % n) else {
            return Ok(None);
        };
        let snap = self
            .repo_snapshots()?
            .remove(id)
            .ok_or_else(|| format!("snapshot {id} of the model is missing"))?;
        Ok(Some((*id, snap)))
    }

    /// One step that uses the repository, with the fault `fault` encodes
    /// injected just before the library call.
    fn repo_step(&mut self, op: u8, arg: u8, fault: (u8, u8)) -> Result<(), String> {
        self.step += 1;
        let what;
        let picked = match op {
            4 | 6 => self.pick(arg)?,
            _ => None,
        };
        let fault = self.fault(fault);
        let result: Result<(), String> = match op {
            3 => {
                what = "snapshot";
                self.snapshot(fault)?
            }
            4 => {
                what = "forget";
                match picked {
                    None => Ok(()),
                    Some((id, snap)) => self.forget(id, &snap)?,
                }
            }
            5 => {
                what = "gc";
                let opts = GcOptions {
                    grace: std::time::Duration::ZERO,
                    max_unused: if arg % 2 == 0 {
                        MaxUnused::Percent(0.0)
                    } else {
                        MaxUnused::Unlimited
                    },
                    ..GcOptions::default()
                };
                gc::run(&self.repo, &opts, &self.lock, &Default::default())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            6 => {
                what = "restore";
                match picked {
                    None => Ok(()),
                    Some((id, snap)) => self.restore_compare(&id, &snap, "restore-step")?,
                }
            }
            _ => {
                what = "check";
                check::run(&self.repo, &read_all(), &Default::default())
                    .map_err(|e| e.to_string())
                    .and_then(|r| match (r.problems.first(), fault) {
                        (Some(p), false) => Err(format!("problem: {}", check::describe(p))),
                        _ => Ok(()),
                    })
            }
        };
        if self.trace {
            eprintln!("step {}: {what} fault={fault} -> {result:?}", self.step);
        }
        match result {
            Ok(()) => Ok(()),
            // an error is right only when a fault was injected; what it
            // left behind is compared with the model next
            Err(_) if fault => {
                self.summary.failed += 1;
                Ok(())
            }
            Err(e) => Err(format!(
                "step {}: {what} without a fault failed: {e}",
                self.step
            )),
        }
    }

    fn snapshot(&mut self, fault: bool) -> Step {
        let opts = SnapshotOptions {
            paths: vec![self.src.clone()],
            host: Some("model".into()),
            time: Some(1_700_000_000_000_000_000 + self.step as i64 * 1_000_000_000),
            ..SnapshotOptions::default()
        };
        let r = backup::run(&self.repo, &opts, &Counters::default(), &self.lock);
        self.store.heal();
        let after = self.repo_snapshots()?;
        let new: Vec<SnapshotId> = after
            .keys()
            .filter(|id| !self.snaps.contains_key(id))
            .copied()
            .collect();
        match &r {
            Ok(rep) => {
                if new != [rep.id] {
                    return Err(format!(
                        "step {}: snapshot {} reported, new in the repository: {new:?}",
                        self.step, rep.id
                    ));
                }
                if !rep.warnings.is_empty() && !fault {
                    return Err(format!("snapshot warnings: {:?}", rep.warnings));
                }
            }
            Err(_) if new.len() > 1 => {
                return Err(format!("a failed snapshot left {} new ones", new.len()));
            }
            Err(_) => self.summary.adopted += new.len(),
        }
        for id in new {
            self.snaps.insert(id, self.source.clone());
        }
        Ok(r.map(|_| ()).map_err(|e| e.to_string()))
    }

    fn forget(&mut self, id: SnapshotId, snap: &Snapshot) -> Step {
        let r = strata::maint::forget::remove(&self.repo, &self.lock, &[(id, Some(snap.tree))]);
        self.store.heal();
        let gone = !self.repo_snapshots()?.contains_key(&id);
        if r.is_ok() && !gone {
            return Err(format!(
                "step {}: forgot {id}, it is still there",
                self.step
            ));
        }
        if gone {
            self.snaps.remove(&id);
        }
        Ok(r.map_err(|e| e.to_string()))
    }

    /// Restore `id` into a fresh directory and compare it with the model:
    /// `Ok(Err)` for a failed restore, `Err` for wrong bytes (never a
    /// fault's doing).
    fn restore_compare(&self, id: &SnapshotId, snap: &Snapshot, name: &str) -> Step {
        let target = self.scratch.join(name);
        let _ = std::fs::remove_dir_all(&target);
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        if let Err(e) = restore::run(&self.repo, snap, None, &opts, &Default::default()) {
            let _ = std::fs::remove_dir_all(&target);
            return Ok(Err(format!("restore of {id}: {e}")));
        }
        let got = read_files(&target, &self.src)?;
        let _ = std::fs::remove_dir_all(&target);
        let want = &self.snaps[id];
        if &got != want {
            return Err(format!(
                "snapshot {id} restores {:?}, the model holds {:?}",
                sizes(&got),
                sizes(want)
            ));
        }
        Ok(Ok(()))
    }

    /// With faults healed: the snapshots are those of the model, each
    /// restores to the model's files, and `check --read-data` is clean.
    fn verify(&mut self) -> Result<(), String> {
        let step = self.step;
        let in_repo = self.repo_snapshots()?;
        let ids: Vec<&SnapshotId> = in_repo.keys().collect();
        let model: Vec<&SnapshotId> = self.snaps.keys().collect();
        if ids != model {
            return Err(format!(
                "step {step}: the repository has snapshots {ids:?}, the model {model:?}"
            ));
        }
        for (id, snap) in &in_repo {
            self.restore_compare(id, snap, "verify")
                .and_then(|r| r)
                .map_err(|e| format!("step {step}: {e}"))?;
        }
        let r = check::run(&self.repo, &read_all(), &Default::default())
            .map_err(|e| format!("step {step}: check: {e}"))?;
        if let Some(p) = r.problems.first() {
            return Err(format!("step {step}: check: {}", check::describe(p)));
        }
        Ok(())
    }
}

fn read_all() -> CheckOptions {
    CheckOptions {
        read_data: Some(Subset::All),
        ..CheckOptions::default()
    }
}

/// The regular files restored under `target` for the source `src`, by name.
fn read_files(target: &Path, src: &Path) -> Result<Files, String> {
    let rel = src.strip_prefix("/").unwrap_or(src);
    let dir = target.join(rel);
    let mut out = Files::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(out); // an empty source may restore as nothing
    };
    for e in rd {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name().to_string_lossy().into_owned();
        let data = std::fs::read(e.path()).map_err(|err| format!("{name}: {err}"))?;
        out.insert(name, data);
    }
    Ok(out)
}

fn sizes(f: &Files) -> Vec<(String, usize)> {
    f.iter().map(|(k, v)| (k.clone(), v.len())).collect()
}
