//! Fault battery item 1 (issue 10): `kill -9` at seeded random moments of
//! `snapshot`, `gc` and `rebuild-index` on one small repository (a few MiB,
//! 1 MiB packs, small chunks, so a run writes several packs), taking turns.
//! After every kill: every pack under a final name is complete, the
//! snapshots listed are exactly those written (a snapshot killed after its
//! manifest was published counts as written), and VERIFY: `check
//! --read-data` exits 0 and every snapshot still kept restores
//! byte-identical to what its source held. Then the command is run to
//! completion, and the next turn changes the source or forgets the oldest
//! snapshot (gc then has packs to delete and repack; `STRATA_GC_GRACE=0`).
//!
//! 51 kills in CI (17 of each command); `STRATA_BATTERY_ITERATIONS=N` runs
//! N. Seeded: `STRATA_BATTERY_SEED=N` replays another seed. The heavier
//! tests/crash.rs (10 kills of backups of ~100 MB, encrypted) and
//! tests/gc_crash.rs (20 kills of gc, instant and two-phase) cover the same
//! ground at a larger scale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{Rng, Taken};

const NOW: (&str, &str) = ("STRATA_GC_GRACE", "0");

fn mutate(src: &Path, rng: &mut Rng, round: usize) {
    let files = support::list_files(src);
    for f in &files {
        match rng.below(6) {
            0 => std::fs::remove_file(src.join(f)).unwrap(),
            1 => {
                let n = rng.range(1, 300_000) as usize;
                std::fs::write(src.join(f), rng.bytes(n)).unwrap();
            }
            _ => {}
        }
    }
    for k in 0..6 {
        let n = rng.range(1, 600_000) as usize;
        let data = if k % 2 == 0 {
            rng.bytes(n)
        } else {
            rng.text(n)
        };
        support::write_file(&src.join(format!("d{}/r{round}-{k}", k % 3)), &data);
    }
}

fn spawn(repo: &Path, args: &[&str]) -> std::process::Child {
    let mut c = support::unlock_for(support::command(), repo);
    c.arg("--repo")
        .arg(repo)
        .args(args)
        .env(NOW.0, NOW.1)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().unwrap()
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = support::unlock_for(support::command(), repo)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env(NOW.0, NOW.1)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "strata {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn kill_9_during_snapshot_gc_and_rebuild_index_then_verify() {
    let started = Instant::now();
    let seed = support::battery_seed("battery_kill", 0xB477_0001);
    let iterations = support::battery_iterations(51);
    let mut rng = Rng::new(seed);
    let tmp = support::scratch_tempdir();
    let root = tmp.path();
    let repo = root.join("repo");
    support::init_small(&repo, &["--no-encryption"]);
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    mutate(&src, &mut rng, 0);
    mutate(&src, &mut rng, 1);
    let mut kept: Vec<Taken> = vec![support::take(&repo, &src)];
    let commands: [(&str, &[&str]); 3] = [
        ("snapshot", &["snapshot", "--json"]),
        ("gc", &["gc", "--max-unused", "0"]),
        ("rebuild-index", &["rebuild-index"]),
    ];
    // how long each command took when last run to completion
    let mut took: BTreeMap<&str, Duration> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..iterations {
        let (name, args) = commands[i % 3];
        // prepare the turn
        let mut args: Vec<&str> = args.to_vec();
        let src_arg = src.to_str().unwrap().to_string();
        if name == "snapshot" {
            mutate(&src, &mut rng, i + 2);
            args.push(&src_arg);
        }
        if name == "gc" && kept.len() > 2 {
            let old = kept.remove(0);
            ok(&repo, &["forget", &old.id]);
        }
        let state = support::manifest(&src);
        let before = support::snapshot_ids(&repo);
        let estimate = took
            .get(name)
            .copied()
            .unwrap_or(Duration::from_millis(300));
        let delay = estimate.mul_f64(1.2 * rng.unit());
        let when = format!("kill {i} ({name}, seed {seed}, after {delay:?})");

        let mut child = spawn(&repo, &args);
        std::thread::sleep(delay);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let killed = !out.status.success();
        if killed {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(9),
                "{when}: failed on its own: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        // what the kill left
        support::assert_packs_complete(&repo, &when);
        let after = support::snapshot_ids(&repo);
        let new: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
        if name == "snapshot" {
            assert!(new.len() <= 1, "{when}: {new:?}");
            if !killed {
                assert_eq!(new.len(), 1, "{when}: finished but no snapshot");
            }
            if let Some(id) = new.first() {
                kept.push(Taken {
                    id: (*id).clone(),
                    source: src.clone(),
                    manifest: state.clone(),
                });
            }
        } else {
            assert!(new.is_empty(), "{when}: {new:?}");
        }
        let mut want: Vec<String> = kept.iter().map(|t| t.id.clone()).collect();
        want.sort();
        assert_eq!(after, want, "{when}: snapshots on disk");
        support::verify(&repo, &kept, root, &when);

        // the command run to completion
        let t = Instant::now();
        let out = ok(&repo, &args);
        took.insert(name, t.elapsed());
        if name == "snapshot" {
            let v = support::parse_json(out.as_bytes());
            let id = v["id"].as_str().unwrap().to_string();
            if !kept.iter().any(|k| k.id == id) {
                kept.push(Taken {
                    id,
                    source: src.clone(),
                    manifest: state,
                });
            }
        }
        let outcome = format!(
            "{name}: {}",
            if killed { "killed" } else { "finished first" }
        );
        println!("{when}: {outcome}");
        *outcomes.entry(outcome).or_default() += 1;
    }
    support::verify(&repo, &kept, root, "at the end");
    println!(
        "battery_kill: {iterations} kills, {outcomes:?}, {} snapshots kept, {:.1}s",
        kept.len(),
        started.elapsed().as_secs_f64()
    );
    let killed: u32 = outcomes
        .iter()
        .filter(|(k, _)| k.ends_with("killed"))
        .map(|(_, v)| v)
        .sum();
    assert!(
        killed as usize >= iterations / 2,
        "most runs were killed mid-way: {outcomes:?}"
    );
}
