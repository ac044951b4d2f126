//! Backups and gc at the same time (format-spec/gc.md "Why this is safe"):
//! for 30 s (`STRATA_CONCURRENCY_SECS`), one process loops over `snapshot`
//! of a changing tree while another loops over `forget --keep-last 3` and
//! `gc` with a 3 s grace period, so packs really are condemned, recovered
//! and deleted during the run. The forget/gc side ignores locks
//! (`STRATA_UNSAFE_NO_LOCKS=1`): this is the case of restic#3486, a lock
//! that failed, and only the two-phase delete keeps the data safe.
//!
//! Every snapshot reported successful restores identically right after it
//! is written and, if it still exists, at the end; every fourth one is
//! tagged `keep` (kept by the policy) and must restore at the end. The
//! changing tree brings back content of forgotten snapshots, so backups
//! meet blobs whose only copies are in condemned packs.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Digest, Rng};

/// Restore `id` below `scratch` and digest the source `src` in it (the
/// snapshot keeps it under its absolute path).
fn restore_digest(repo: &Path, scratch: &Path, src: &Path, id: &str) -> Result<Digest, String> {
    let t = scratch.join(format!("r-{id}"));
    let _ = std::fs::remove_dir_all(&t);
    let o = support::run(
        repo,
        &[],
        &["restore", id, "--target", t.to_str().unwrap(), "--verify"],
    );
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let d = support::digest(&support::under(&t, src));
    std::fs::remove_dir_all(&t).unwrap();
    Ok(d)
}

/// A tree of 30 files; each round rewrites a few, and sometimes puts back a
/// version from earlier rounds (content that only forgotten snapshots had).
struct Tree {
    dir: PathBuf,
    rng: Rng,
    history: Vec<Vec<u8>>,
}

impl Tree {
    fn round(&mut self) {
        for _ in 0..4 {
            let k = self.rng.below(30);
            let data = if !self.history.is_empty() && self.rng.below(3) == 0 {
                self.history[self.rng.below(self.history.len() as u64) as usize].clone()
            } else {
                let len = 50_000 + self.rng.below(300_000) as usize;
                let d = self.rng.bytes(len);
                self.history.push(d.clone());
                d
            };
            support::write_file(&self.dir.join(format!("f{k:02}")), &data);
        }
    }
}

#[test]
fn snapshots_and_gc_concurrently_never_lose_a_snapshot() {
    let secs: u64 = std::env::var("STRATA_CONCURRENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let o = support::run(
        &repo,
        &[],
        &["init", "--no-encryption", "--pack-size-mib", "1"],
    );
    assert!(o.status.success());
    let mut tree = Tree {
        dir: tmp.path().join("src"),
        rng: Rng::new(0xC0C0),
        history: Vec::new(),
    };
    for k in 0..30 {
        let d = tree.rng.bytes(100_000);
        support::write_file(&tree.dir.join(format!("f{k:02}")), &d);
    }
    let grace = ("STRATA_GC_GRACE", "3s");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let deleted = Arc::new(AtomicU64::new(0));
    let recovered = Arc::new(AtomicU64::new(0));
    let gc_errors = Arc::new(Mutex::new(Vec::<String>::new()));

    // The forget + gc loop, ignoring locks.
    let gc_thread = {
        let (repo, stop, deleted, recovered, errs) = (
            repo.clone(),
            stop.clone(),
            deleted.clone(),
            recovered.clone(),
            gc_errors.clone(),
        );
        std::thread::spawn(move || {
            let env = [grace, ("STRATA_UNSAFE_NO_LOCKS", "1")];
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                let f = support::run(
                    &repo,
                    &env,
                    &["forget", "--keep-last", "3", "--keep-tag", "keep"],
                );
                let g = support::run(&repo, &env, &["gc", "--json"]);
                for o in [&f, &g] {
                    if !o.status.success() {
                        errs.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&o.stderr).into_owned());
                    }
                }
                if g.status.success() {
                    let v: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
                    deleted.fetch_add(v["deleted"]["packs"].as_u64().unwrap(), Ordering::Relaxed);
                    recovered
                        .fetch_add(v["recovered"]["packs"].as_u64().unwrap(), Ordering::Relaxed);
                }
                rounds += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
            rounds
        })
    };

    // The snapshot loop, here.
    let scratch = tmp.path().join("scratch");
    let src_dir = tmp.path().join("src");
    let mut made: Vec<(String, Digest, bool)> = Vec::new();
    let mut failed = Vec::new();
    let mut n = 0u64;
    while Instant::now() < deadline {
        tree.round();
        let want = support::digest(&tree.dir);
        let keep = n % 4 == 0;
        let mut args = vec![
            "snapshot",
            tree.dir.to_str().unwrap(),
            "--json",
            "--retry-lock",
            "1m",
        ];
        if keep {
            args.extend(["--tag", "keep"]);
        }
        let o = support::run(&repo, &[grace], &args);
        n += 1;
        if !o.status.success() {
            failed.push(String::from_utf8_lossy(&o.stderr).into_owned());
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        let got = restore_digest(&repo, &scratch, &src_dir, &id).unwrap_or_else(|e| {
            panic!("snapshot {id} does not restore right after it was made: {e}")
        });
        assert_eq!(got, want, "snapshot {id} right after it was made");
        made.push((id, want, keep));
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = gc_thread.join().unwrap();

    // At the end: every snapshot still listed restores as it was made, and
    // every `keep` snapshot is still listed.
    let listed: serde_json::Value =
        serde_json::from_slice(&support::run(&repo, &[], &["snapshots", "--json"]).stdout).unwrap();
    let listed: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut checked = 0;
    for (id, want, keep) in &made {
        if *keep {
            assert!(listed.contains(id), "kept snapshot {id} is gone");
        }
        if listed.contains(id) {
            let got = restore_digest(&repo, &scratch, &src_dir, id)
                .unwrap_or_else(|e| panic!("snapshot {id} does not restore at the end: {e}"));
            assert_eq!(&got, want, "snapshot {id} at the end");
            checked += 1;
        }
    }
    let deleted = deleted.load(Ordering::Relaxed);
    println!(
        "{n} snapshots ({} failed), {rounds} forget+gc rounds, {deleted} packs deleted, {} recovered, {checked} restored at the end",
        failed.len(),
        recovered.load(Ordering::Relaxed)
    );
    assert!(failed.is_empty(), "snapshots failed: {failed:?}");
    let errs = gc_errors.lock().unwrap();
    assert!(errs.is_empty(), "forget/gc failed: {errs:?}");
    assert!(made.len() >= 10, "only {} snapshots in {secs}s", made.len());
    assert!(deleted > 0, "packs were really deleted during the run");
}
