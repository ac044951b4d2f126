//! Crash safety of gc (format-spec/gc.md "Killed at any point"): 20 runs of
//! `kill -9` at seeded random moments of a gc that repacks and deletes, on
//! copies of one repository. After every kill the repository lists the same
//! snapshots, every one restores byte-identical to what it captured, every
//! file under `packs/` is a complete pack, and a rerun of gc completes and
//! leaves the repository as small as an uninterrupted gc does. After every
//! kill `check --read-data` also exits 0 (VERIFY of the fault battery,
//! issue 10; tests/it/battery_kill.rs kills snapshot, gc and rebuild-index on
//! a smaller repository).
//!
//! Half the runs delete at once (`STRATA_GC_GRACE=0`); the other half first
//! let an uninterrupted gc condemn packs, wait out a 200 ms grace period,
//! then kill the gc that deletes them. The runs are split between the two
//! layouts (tests/it/battery_kill.rs `Layout`): the index in the
//! repository, and the index and tree cache in the cache directory.
//! Seeded: `STRATA_CRASH_SEED=N` replays another seed;
//! `STRATA_GC_CRASH_RUNS=N` changes the count (split the same way).

use crate::support;

use crate::battery_kill::Layout;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::{Digest, Rng};

type Kept = Vec<(String, Digest)>;

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Every pack file is complete: its name is the BLAKE3 of its bytes and its
/// trailer parses (plaintext repository).
fn check_packs(repo: &Path, when: &str) -> u64 {
    let mut total = 0;
    for p in support::pack_files(repo) {
        let bytes = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            name,
            "{when}: incomplete pack {name}"
        );
        strata::pack::format::parse_pack(&bytes, &name)
            .unwrap_or_else(|e| panic!("{when}: pack {name}: {e}"));
        total += bytes.len() as u64;
    }
    total
}

/// A repository of six snapshots of a changing tree, the three oldest
/// forgotten: gc has whole packs to delete and partly used packs to repack.
fn build(root: &Path, env: support::Env, rng: &mut Rng) -> (PathBuf, Kept) {
    let repo = root.join("base");
    support::ok(
        &repo,
        env,
        &["init", "--no-encryption", "--pack-size-mib", "1"],
    );
    let src = root.join("src");
    let mut kept = Vec::new();
    let mut ids = Vec::new();
    for day in 0..6 {
        for k in 0..12 {
            // each day rewrites a third of the files
            if day == 0 || rng.below(3) == 0 {
                let len = 200_000 + rng.below(600_000) as usize;
                support::write_file(&src.join(format!("d{}/f{k}", k % 3)), &rng.bytes(len));
            }
        }
        support::write_file(
            &src.join("status.json"),
            format!("{{\"day\":{day}}}").as_bytes(),
        );
        let out = support::ok(
            &repo,
            env,
            &[
                "snapshot",
                src.to_str().unwrap(),
                "--json",
                "--time",
                &format!("2026-07-0{} 00:00:00", day + 1),
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        ids.push(id.clone());
        if day >= 3 {
            kept.push((id, support::digest(&src)));
        }
    }
    for id in &ids[..3] {
        support::ok(&repo, env, &["forget", id]);
    }
    (repo, kept)
}

fn restores(
    repo: &Path,
    env: support::Env,
    scratch: &Path,
    kept: &[(String, BTreeMap<String, [u8; 32]>)],
    when: &str,
) {
    for (id, want) in kept {
        let t = scratch.join("restore");
        let _ = std::fs::remove_dir_all(&t);
        support::ok(repo, env, &["restore", id, "--target", t.to_str().unwrap()]);
        assert_eq!(
            &support::digest(&support::under(&t, &scratch.join("src"))),
            want,
            "{when}: snapshot {id} restores differently"
        );
        std::fs::remove_dir_all(&t).unwrap();
    }
}

fn runs() -> usize {
    std::env::var("STRATA_GC_CRASH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

#[test]
fn kill_9_during_gc_with_the_index_in_the_repository() {
    battery(Layout::Repository, runs() - runs() / 2);
}

#[test]
fn kill_9_during_gc_with_the_index_and_tree_cache_in_the_cache() {
    battery(Layout::Cache, runs() / 2);
}

/// How long the two-phase runs wait between condemning and deleting.
const GRACE: &str = "200ms";
const PAST_GRACE: Duration = Duration::from_millis(250);

fn battery(layout: Layout, runs: usize) {
    let seed = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6C_C0DE);
    println!("gc crash test {layout:?}: seed {seed}, {runs} runs");
    let on = |extra: &[(&'static str, &'static str)]| layout.env(extra);
    let plain = on(&[]);
    let mut rng = Rng::new(seed);
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let root = tmp.path();
    let (base, kept) = build(root, &plain, &mut rng);
    let now = on(&[("STRATA_GC_GRACE", "0")]);
    let args = ["gc", "--max-unused", "0", "--json"];

    // Reference: an uninterrupted gc, and how long it takes.
    let reference = root.join("reference");
    copy_dir(&base, &reference);
    let t = Instant::now();
    let r: serde_json::Value = serde_json::from_str(&support::ok(&reference, &now, &args)).unwrap();
    let full = t.elapsed();
    assert!(
        r["repacked"]["packs"].as_u64().unwrap() > 0,
        "the fixture repacks: {r}"
    );
    assert!(
        r["deleted"]["packs"].as_u64().unwrap() > 0,
        "the fixture deletes: {r}"
    );
    let reference_size = check_packs(&reference, "reference");
    // the time of a second copy too, and the shorter: one slow first run
    // (a busy machine) would put most kills after gc ends
    let second = root.join("reference-time");
    copy_dir(&base, &second);
    let t = Instant::now();
    support::ok(&second, &now, &args);
    let full = full.min(t.elapsed());
    println!("uninterrupted gc: {:.2}s, {r}", full.as_secs_f64());
    // ... and the deleting run of the two-phase case
    let reference2 = root.join("reference2");
    copy_dir(&base, &reference2);
    let grace = on(&[("STRATA_GC_GRACE", GRACE)]);
    std::thread::sleep(PAST_GRACE);
    support::ok(&reference2, &grace, &args);
    std::thread::sleep(PAST_GRACE);
    let t = Instant::now();
    let r2: serde_json::Value =
        serde_json::from_str(&support::ok(&reference2, &grace, &args)).unwrap();
    let deleting = t.elapsed();
    assert!(
        r2["deleted"]["packs"].as_u64().unwrap() > 0,
        "the two-phase fixture deletes: {r2}"
    );
    println!(
        "deleting run of the two-phase gc: {:.2}s, {r2}",
        deleting.as_secs_f64()
    );

    let mut outcomes = BTreeMap::new();
    for i in 0..runs {
        let work = root.join(format!("work{i}"));
        copy_dir(&base, &work);
        let two_phase = i % 2 == 1;
        let env: Vec<(&str, &str)> = if two_phase {
            // condemn now, delete in the run we kill
            std::thread::sleep(PAST_GRACE); // forgotten roots expire
            support::ok(&work, &grace, &args);
            std::thread::sleep(PAST_GRACE);
            grace.clone()
        } else {
            now.clone()
        };
        let delay = if two_phase { deleting } else { full }.mul_f64(rng.unit());
        let mut c = support::unlock_for(support::command(), &work);
        c.arg("--repo").arg(&work).args(args).stdin(Stdio::null());
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        c.envs(env.iter().copied());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        let killed = !out.status.success();
        let when = format!(
            "run {i} ({layout:?}, seed {seed}, {} kill at {delay:?})",
            if two_phase { "two-phase" } else { "instant" }
        );
        if killed {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(9),
                "{when}: gc failed on its own: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let listed: serde_json::Value =
            serde_json::from_str(&support::ok(&work, &plain, &["snapshots", "--json"])).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), kept.len(), "{when}");
        check_packs(&work, &when);
        restores(&work, &plain, root, &kept, &when);
        // VERIFY (issue 10): check --read-data finds nothing wrong either
        let o = support::run(&work, &plain, &["check", "--read-data"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{when}: check --read-data: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        // The rerun finishes the job.
        support::ok(&work, &env, &args);
        if two_phase {
            std::thread::sleep(PAST_GRACE);
            support::ok(&work, &env, &args);
        }
        let size = check_packs(&work, &format!("{when}, after the rerun"));
        restores(
            &work,
            &plain,
            root,
            &kept,
            &format!("{when}, after the rerun"),
        );
        let again: serde_json::Value =
            serde_json::from_str(&support::ok(&work, &now, &args)).unwrap();
        assert_eq!(
            again["deleted"]["packs"], 0,
            "{when}: a further gc has nothing to delete: {again}"
        );
        assert_eq!(
            again["repacked"]["packs"], 0,
            "{when}: nor to repack: {again}"
        );
        assert!(
            size <= reference_size + reference_size / 20,
            "{when}: {size} bytes after the rerun, {reference_size} after an uninterrupted gc"
        );
        let outcome = if killed { "killed" } else { "finished first" };
        *outcomes.entry(outcome).or_insert(0) += 1;
        println!("{when}: {outcome}, {size} bytes after the rerun");
        std::fs::remove_dir_all(&work).unwrap();
    }
    println!("{outcomes:?}");
    assert!(
        outcomes.get("killed").copied().unwrap_or(0) >= runs / 2,
        "most runs were killed mid-way"
    );
}
