//! S3 under faults (issue 11 "Faults"): strata talks to a real S3 server
//! (moto on 127.0.0.1) through the fault-injecting proxy of
//! `tests/support/proxy.rs`, which answers 500, 503 and SlowDown, resets
//! connections mid-body, stalls past the client's timeout and truncates
//! bodies.
//!
//! - Transient faults (a fifth of all requests, every kind; and each kind
//!   once on every method): `snapshot` into `s3://`, `restore` from it and
//!   `sync` to it succeed through the bounded retries, and restores are
//!   byte-identical.
//! - Persistent faults: each command fails within a bounded time with one
//!   `strata: ` line; afterwards (faults off) every earlier snapshot
//!   restores and every pack in the bucket hashes to its name (pack.md), so
//!   nothing partial stands under a final name.
//! - A `sync` killed with SIGKILL mid-way, run again, copies exactly what
//!   is missing, and the mirror restores identically.
//!
//! Skipped with a message without moto, unless `STRATA_REQUIRE_S3_TESTS=1`.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::proxy::{Fault, FaultProxy, Method, When};
use support::{S3, assert_same_tree, one_line_error, parse_json, under};

/// The client settings of every command here, so that a stall or a dead
/// server costs seconds, not minutes: the request timeout and the retry
/// bounds (format-spec/backend.md "Retries"). Eight retries make a
/// request that fails for good under a 1-in-5 fault rate rare (5^-9).
const CLIENT_ENV: [(&str, &str); 4] = [
    ("AWS_TIMEOUT", "3s"),
    ("AWS_CONNECT_TIMEOUT", "2s"),
    ("STRATA_STORE_MAX_RETRIES", "8"),
    ("STRATA_STORE_RETRY_TIMEOUT", "10s"),
];

/// Tighter bounds for the tests of persistent faults, which wait them out.
const PERSISTENT_ENV: [(&str, &str); 2] =
    [("AWS_TIMEOUT", "2s"), ("STRATA_STORE_RETRY_TIMEOUT", "4s")];

/// How long a stalled request is held: longer than `AWS_TIMEOUT`.
const STALL: Duration = Duration::from_secs(6);

/// A command under persistent faults must fail within this.
const FAIL_WITHIN: Duration = Duration::from_secs(40);

/// No command may run longer than this (a hang fails the test).
const HANG: Duration = Duration::from_secs(90);

struct Rig {
    s3: S3,
    proxy: FaultProxy,
    tmp: tempfile::TempDir,
    /// Settings over [`CLIENT_ENV`].
    extra_env: Vec<(String, String)>,
}

/// A command's output and how long it ran.
struct Run {
    out: Output,
    took: Duration,
}

impl Run {
    fn ok(&self, what: &str) -> &str {
        assert!(
            self.out.status.success(),
            "{what} failed ({:?}, {:?}):\nstdout: {}\nstderr: {}",
            self.out.status,
            self.took,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        );
        std::str::from_utf8(&self.out.stdout).unwrap()
    }

    fn json(&self, what: &str) -> Value {
        parse_json(self.ok(what).as_bytes())
    }

    /// A failure with one `strata: ` line, within [`FAIL_WITHIN`].
    fn failed(&self, what: &str) -> String {
        let line = one_line_error(&self.out, what);
        self.within(what, &line);
        line
    }

    /// A failure of `sync` within [`FAIL_WITHIN`]: exit 1 and one
    /// `strata: ` line per failed file (sync goes on past a failed file),
    /// each naming a key. The lines.
    fn sync_failed(&self, what: &str) -> Vec<String> {
        let stderr = String::from_utf8_lossy(&self.out.stderr).into_owned();
        assert_eq!(self.out.status.code(), Some(1), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let lines: Vec<String> = stderr.lines().map(str::to_string).collect();
        assert!(!lines.is_empty(), "{what}: no error printed");
        for l in &lines {
            assert!(
                l.starts_with("strata: ") && l.contains("packs/"),
                "{what}: not a one-line error naming a file: {l:?}"
            );
        }
        self.within(what, &lines[0]);
        lines
    }

    fn within(&self, what: &str, line: &str) {
        assert!(
            self.took < FAIL_WITHIN,
            "{what}: took {:?} to fail: {line}",
            self.took
        );
        eprintln!("{what}: failed after {:.1?}: {line}", self.took);
    }
}

impl Rig {
    fn new(test: &str, seed: u64) -> Option<Rig> {
        let s3 = support::S3::new(&test.replace('_', "-"))?;
        let proxy = FaultProxy::start(s3.moto.port, seed);
        proxy.set_stall(STALL);
        Some(Rig {
            s3,
            proxy,
            tmp: tempfile::tempdir().unwrap(),
            extra_env: Vec::new(),
        })
    }

    /// [`Rig::new`] with [`PERSISTENT_ENV`].
    fn persistent(test: &str, seed: u64) -> Option<Rig> {
        let mut rig = Rig::new(test, seed)?;
        rig.extra_env = PERSISTENT_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(rig)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn url(&self, prefix: &str) -> String {
        self.s3.url(prefix)
    }

    /// The environment of a command through the proxy.
    fn env(&self) -> Vec<(String, String)> {
        let mut env = self.proxy.env(&self.s3.env());
        env.extend(
            CLIENT_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// `strata ARGS` through the proxy, with the work directory `cache`
    /// (one per simulated machine), killed after [`HANG`].
    fn run(&self, cache: &str, args: &[&str]) -> Run {
        let mut c = support::command();
        c.env("STRATA_CACHE_DIR", self.path(cache))
            .envs(self.env())
            .args(args)
            .stdin(Stdio::null());
        let start = Instant::now();
        let out = assert_cmd::Command::from_std(c)
            .timeout(HANG)
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(
            took < HANG,
            "strata {args:?} hung: killed after {took:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Run { out, took }
    }

    /// `strata --repo REPO ARGS`.
    fn strata(&self, repo: &str, cache: &str, args: &[&str]) -> Run {
        let mut all = vec!["--repo", repo];
        all.extend_from_slice(args);
        self.run(cache, &all)
    }

    /// Every pack under `prefix` in the bucket, read straight from moto,
    /// hashes to its name, and nothing else but repository files stands
    /// there; the pack count.
    fn check_bucket(&self, prefix: &str) -> usize {
        let objects = self.s3.moto.list(&self.s3.bucket, prefix);
        let mut packs = 0;
        for (key, size) in &objects {
            let rel = key.strip_prefix(&format!("{prefix}/")).unwrap();
            let top = rel.split('/').next().unwrap();
            assert!(
                [
                    "config",
                    "keys",
                    "packs",
                    "snapshots",
                    "locks",
                    "gc",
                    "dicts"
                ]
                .contains(&top),
                "unexpected object {key}"
            );
            if top == "packs" {
                let bytes = self.s3.moto.get(&self.s3.bucket, key);
                assert_eq!(bytes.len() as u64, *size, "{key}");
                let name = rel.rsplit('/').next().unwrap();
                assert_eq!(
                    blake3::hash(&bytes).to_hex().as_str(),
                    name,
                    "{key}: the bytes do not hash to the name (a partial or altered pack)"
                );
                packs += 1;
            }
        }
        packs
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn transient_faults_snapshot_restore_and_sync_succeed() {
    let Some(rig) = Rig::new("s3_transient_faults", 11) else {
        return;
    };
    let src = rig.path("src");
    support::make_tree(&src, 1, support::FIVE_400K);
    let repo = rig.url("direct");
    rig.proxy.set_all(When::Chance(0.2), &Fault::ALL);

    rig.strata(&repo, "a", &["init", "--pack-size-mib", "1"])
        .ok("init");
    let snap = rig
        .strata(&repo, "a", &["snapshot", "--json", src.to_str().unwrap()])
        .json("snapshot");
    let out = rig.path("out");
    let id = id_of(&snap);
    rig.strata(
        &repo,
        "b",
        &[
            "restore",
            &id,
            "--verify",
            "--target",
            out.to_str().unwrap(),
        ],
    )
    .ok("restore");
    assert_same_tree(&src, &under(&out, &src));

    // a local repository synced to the bucket through the same faults
    let local = rig.path("local");
    let local_s = local.to_str().unwrap();
    let src2 = rig.path("src2");
    support::make_tree(&src2, 2, support::FIVE_400K);
    rig.strata(local_s, "l", &["init", "--pack-size-mib", "1"])
        .ok("local init");
    rig.strata(local_s, "l", &["snapshot", src2.to_str().unwrap()])
        .ok("local snapshot");
    let mirror = rig.url("mirror");
    let r = rig
        .strata(local_s, "l", &["sync", &mirror, "--json"])
        .json("sync");
    assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
    let out2 = rig.path("out2");
    rig.strata(
        &mirror,
        "m",
        &[
            "restore",
            "latest",
            "--verify",
            "--target",
            out2.to_str().unwrap(),
        ],
    )
    .ok("restore from the mirror");
    assert_same_tree(&src2, &under(&out2, &src2));

    let injected = rig.proxy.injected_by_fault();
    eprintln!("requests {:?}, faults {injected:?}", rig.proxy.requests());
    for f in Fault::ALL {
        assert!(
            injected.get(&f).copied().unwrap_or(0) > 0,
            "{f:?} never injected: {injected:?}"
        );
    }
    rig.proxy.heal();
    assert!(rig.check_bucket("direct") >= 2);
    assert!(rig.check_bucket("mirror") >= 2);
}

/// Every fault once on every method during one snapshot, each kind in
/// turn (a PUT reset mid-body, a stalled PUT that object_store does not
/// retry, a LIST page cut off...): each snapshot succeeds and restores.
#[test]
fn each_fault_once_on_every_method_is_retried() {
    let Some(mut rig) = Rig::new("s3_each_fault_once", 12) else {
        return;
    };
    // an unencrypted repository opens with no passphrase given (an empty
    // variable counts as unset)
    rig.extra_env
        .push(("STRATA_PASSWORD".to_string(), String::new()));
    let repo = rig.url("r");
    rig.strata(
        &repo,
        "a",
        &["init", "--no-encryption", "--pack-size-mib", "1"],
    )
    .ok("init");
    let src = rig.path("src");
    for (i, f) in Fault::ALL.into_iter().enumerate() {
        support::make_tree(&src, 100 + i as u64, support::FIVE_400K);
        let arm = || {
            for m in Method::ALL {
                rig.proxy.set(m, When::Nth(2), &[f]);
            }
        };
        arm();
        let id = id_of(
            &rig.strata(&repo, "a", &["snapshot", "--json", src.to_str().unwrap()])
                .json(&format!("snapshot with {f:?}")),
        );
        // a new machine: the index is rebuilt from the pack trailers
        let cache = format!("restore-{i}");
        let out = rig.path(&format!("out-{i}"));
        arm();
        rig.strata(
            &repo,
            &cache,
            &[
                "restore",
                &id,
                "--verify",
                "--target",
                out.to_str().unwrap(),
            ],
        )
        .ok(&format!("restore with {f:?}"));
        assert_same_tree(&src, &under(&out, &src));
        for m in [Method::Put, Method::Get, Method::List, Method::Head] {
            assert!(
                rig.proxy.injected().contains_key(&(m, f)),
                "{f:?} on {m:?} never injected: {:?}",
                rig.proxy.injected()
            );
        }
    }
    rig.proxy.heal();
    rig.check_bucket("r");
}

/// A repository in the bucket with one snapshot of `src` (made without
/// faults); its id.
fn seeded(rig: &Rig, repo: &str, src: &Path) -> String {
    rig.proxy.heal();
    support::make_tree(src, 1, support::FIVE_400K);
    rig.strata(repo, "a", &["init", "--pack-size-mib", "1"])
        .ok("init");
    id_of(
        &rig.strata(repo, "a", &["snapshot", "--json", src.to_str().unwrap()])
            .json("first snapshot"),
    )
}

/// After the faults: every snapshot in `want` restores from a fresh cache
/// (the index rebuilt from the packs) and every pack hashes to its name.
fn assert_intact(rig: &Rig, repo: &str, prefix: &str, want: &[(String, PathBuf)]) {
    rig.proxy.heal();
    for (n, (id, src)) in want.iter().enumerate() {
        let cache = format!("check-{n}-{}", &id[..8]);
        let out = rig.path(&format!("{cache}-out"));
        rig.strata(
            repo,
            &cache,
            &["restore", id, "--verify", "--target", out.to_str().unwrap()],
        )
        .ok("restore after the faults");
        assert_same_tree(src, &under(&out, src));
    }
    rig.check_bucket(prefix);
}

#[test]
fn persistent_faults_fail_a_snapshot_quickly_and_leave_the_repository_intact() {
    let Some(rig) = Rig::persistent("s3_persistent_snapshot", 13) else {
        return;
    };
    let repo = rig.url("r");
    let first_src = rig.path("first");
    let first = seeded(&rig, &repo, &first_src);
    let src = rig.path("src");
    support::make_tree(&src, 2, support::FIVE_400K);
    for f in Fault::ALL {
        // the lock is taken, every pack upload fails
        rig.proxy.heal();
        rig.proxy.set_on(Method::Put, "/packs/", When::Always, &[f]);
        let line = rig
            .strata(&repo, "a", &["snapshot", src.to_str().unwrap()])
            .failed(&format!("snapshot under persistent {f:?} on pack uploads"));
        assert!(line.contains("packs/"), "{line}");
    }
    // every write fails, the lock first
    rig.proxy.heal();
    rig.proxy
        .set(Method::Put, When::Always, &[Fault::Unavailable]);
    let line = rig
        .strata(&repo, "a", &["snapshot", src.to_str().unwrap()])
        .failed("snapshot under persistent 503 on every PUT");
    assert!(line.contains("locks/"), "{line}");
    rig.proxy.heal();
    assert_eq!(rig.s3.moto.list(&rig.s3.bucket, "r/snapshots").len(), 1);
    let locks = rig.s3.moto.list(&rig.s3.bucket, "r/locks");
    assert!(
        locks.is_empty(),
        "failed snapshots left their locks: {locks:?}"
    );
    assert_intact(&rig, &repo, "r", &[(first.clone(), first_src.clone())]);
    // and the next snapshot, faults off, is whole
    let second = id_of(
        &rig.strata(&repo, "a", &["snapshot", "--json", src.to_str().unwrap()])
            .json("snapshot after the faults"),
    );
    assert_intact(&rig, &repo, "r", &[(first, first_src), (second, src)]);
}

#[test]
fn persistent_faults_fail_a_restore_quickly() {
    let Some(rig) = Rig::persistent("s3_persistent_restore", 14) else {
        return;
    };
    let repo = rig.url("r");
    let src = rig.path("src");
    let id = seeded(&rig, &repo, &src);
    for f in Fault::ALL {
        rig.proxy.heal();
        // the config, key and manifest are read; the packs fail
        rig.proxy.set_on(Method::Get, "/packs/", When::Always, &[f]);
        let out = rig.path(&format!("out-{f:?}"));
        let cache = format!("c-{f:?}");
        rig.strata(
            &repo,
            &cache,
            &["restore", &id, "--target", out.to_str().unwrap()],
        )
        .failed(&format!("restore under persistent {f:?} on pack reads"));
    }
    assert_intact(&rig, &repo, "r", &[(id, src)]);
}

/// A local repository with two snapshots of `big` 400 kB files each
/// (`--pack-size-mib 1`); the repository path and the snapshot sources.
fn local_repo(rig: &Rig, big: u64) -> (PathBuf, Vec<PathBuf>) {
    let local = rig.path("local");
    let l = local.to_str().unwrap();
    rig.strata(l, "l", &["init", "--pack-size-mib", "1"])
        .ok("local init");
    let mut srcs = Vec::new();
    for seed in [21, 22] {
        let src = rig.path(&format!("src{seed}"));
        let sizes = vec![400_000; big as usize];
        let shape = support::Shape {
            big: &sizes,
            ..support::FIVE_400K
        };
        support::make_tree(&src, seed, shape);
        rig.strata(l, "l", &["snapshot", src.to_str().unwrap()])
            .ok("local snapshot");
        srcs.push(src);
    }
    (local, srcs)
}

/// Restore every snapshot of `repo` (a fresh cache) and compare with the
/// sources, in snapshot order.
fn mirror_restores(rig: &Rig, repo: &str, srcs: &[PathBuf]) {
    let ids = snapshot_ids(rig, repo, "m");
    assert_eq!(ids.len(), srcs.len(), "{ids:?}");
    let want: Vec<(String, PathBuf)> = ids.into_iter().zip(srcs.iter().cloned()).collect();
    for (n, (id, src)) in want.iter().enumerate() {
        let out = rig.path(&format!("mirror-out-{n}"));
        rig.strata(
            repo,
            "m",
            &["restore", id, "--verify", "--target", out.to_str().unwrap()],
        )
        .ok("restore from the mirror");
        assert_same_tree(src, &under(&out, src));
    }
}

#[test]
fn persistent_error_answers_fail_a_sync_quickly_and_the_rerun_completes() {
    persistent_faults_fail_a_sync(
        "s3_persistent_sync_answers",
        &[Fault::InternalError, Fault::Unavailable, Fault::SlowDown],
    );
}

#[test]
fn persistent_transport_faults_fail_a_sync_quickly_and_the_rerun_completes() {
    persistent_faults_fail_a_sync(
        "s3_persistent_sync_transport",
        &[Fault::Reset, Fault::Stall, Fault::Truncate],
    );
}

/// For each of `faults` in turn, a sync to a new mirror where every pack
/// upload after the first fails that way: it fails within bounds, no
/// manifest arrives, every pack there hashes to its name; the rerun,
/// faults off, copies exactly the rest, and the last mirror restores.
fn persistent_faults_fail_a_sync(test: &str, faults: &[Fault]) {
    let Some(rig) = Rig::persistent(test, 15) else {
        return;
    };
    let (local, srcs) = local_repo(&rig, 5);
    let l = local.to_str().unwrap();
    let total = count_files(&local);
    for &f in faults {
        // a new mirror each time: the first pack arrives, then every pack
        // upload fails
        let prefix = format!("mirror-{f:?}");
        let mirror = rig.url(&prefix);
        rig.proxy
            .set_on(Method::Put, "/packs/", When::From(2), &[f]);
        rig.strata(l, "l", &["sync", &mirror, "--jobs", "8"])
            .sync_failed(&format!("sync under persistent {f:?}"));
        rig.proxy.heal();
        assert!(
            rig.s3
                .moto
                .list(&rig.s3.bucket, &format!("{prefix}/snapshots"))
                .is_empty(),
            "a manifest reached the mirror before its packs"
        );
        rig.check_bucket(&prefix);

        let before = rig.s3.moto.list(&rig.s3.bucket, &prefix).len() as u64;
        let r = rig
            .strata(l, "l", &["sync", &mirror, "--json"])
            .json("sync after the faults");
        assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
        assert_eq!(r["copied"]["objects"].as_u64(), Some(total - before), "{r}");
        assert_eq!(r["skipped"]["objects"].as_u64(), Some(before), "{r}");
        rig.check_bucket(&prefix);
    }
    let last = faults.last().unwrap();
    mirror_restores(&rig, &rig.url(&format!("mirror-{last:?}")), &srcs);
}

/// The files sync copies from a local repository (format-spec/sync.md
/// "What is copied").
fn count_files(repo: &Path) -> u64 {
    let mut n = u64::from(repo.join("config").is_file());
    for dir in ["keys", "dicts", "packs", "gc", "snapshots"] {
        if repo.join(dir).is_dir() {
            n += support::list_files(&repo.join(dir)).len() as u64;
        }
    }
    n
}

/// `strata sync` to S3 killed with SIGKILL while packs are uploading, then
/// run again: it completes, copies exactly what the first run had not,
/// and the mirror restores identically.
#[test]
fn sync_killed_mid_way_resumes_with_exactly_the_missing_files() {
    let Some(rig) = Rig::new("s3_sync_kill", 16) else {
        return;
    };
    let (local, srcs) = local_repo(&rig, 15);
    let total = count_files(&local);
    let packs = support::pack_files(&local).len();
    assert!(packs >= 8, "{packs} packs");
    let mirror = rig.url("mirror");

    // slowed down so that the kill lands mid-way: 2 MB/s over 12 MB
    let mut c = support::command();
    c.env("STRATA_CACHE_DIR", rig.path("l"))
        .envs(rig.env())
        .args(["--repo", local.to_str().unwrap(), "sync", &mirror])
        .args(["--jobs", "2", "--limit-upload", "2M"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    loop {
        let up = rig.s3.moto.list(&rig.s3.bucket, "mirror/packs").len();
        if up >= 3 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "sync ended before the kill"
        );
        assert!(start.elapsed() < HANG, "no pack arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // an upload whose body had been sent may still land
    std::thread::sleep(Duration::from_millis(500));
    let there: BTreeMap<String, u64> = rig
        .s3
        .moto
        .list(&rig.s3.bucket, "mirror")
        .into_iter()
        .collect();
    let landed = there.keys().filter(|k| k.contains("/packs/")).count();
    assert!(
        landed < packs,
        "the sync had finished: {landed} of {packs} packs"
    );
    assert!(
        !there.keys().any(|k| k.contains("/snapshots/")),
        "a manifest arrived before its packs"
    );
    rig.check_bucket("mirror");

    let r = rig
        .strata(local.to_str().unwrap(), "l", &["sync", &mirror, "--json"])
        .json("sync after the kill");
    assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
    assert_eq!(
        r["skipped"]["objects"].as_u64(),
        Some(there.len() as u64),
        "{r}"
    );
    assert_eq!(
        r["copied"]["objects"].as_u64(),
        Some(total - there.len() as u64),
        "{r}"
    );
    assert_eq!(
        rig.s3.moto.list(&rig.s3.bucket, "mirror").len() as u64,
        total
    );
    rig.check_bucket("mirror");
    mirror_restores(&rig, &mirror, &srcs);
}

/// The ids of `repo`'s snapshots, oldest first (cache `cache`).
fn snapshot_ids(rig: &Rig, repo: &str, cache: &str) -> Vec<String> {
    rig.strata(repo, cache, &["snapshots", "--json"])
        .json("snapshots")
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect()
}

/// `check --read-data` of `repo` (cache `cache`) finds nothing wrong.
fn check_clean(rig: &Rig, repo: &str, cache: &str, what: &str) {
    let v = rig
        .strata(repo, cache, &["check", "--read-data", "--json"])
        .json(what);
    assert_eq!(v["ok"].as_bool(), Some(true), "{what}: {v}");
}

/// The packs (key -> size) under `prefix` in the bucket.
fn bucket_packs(rig: &Rig, prefix: &str) -> BTreeMap<String, u64> {
    rig.s3
        .moto
        .list(&rig.s3.bucket, &format!("{prefix}/packs"))
        .into_iter()
        .map(|(k, size)| {
            (
                k.trim_start_matches(&format!("{prefix}/")).to_string(),
                size,
            )
        })
        .collect()
}

/// The packs (key -> size) of a local repository.
fn local_packs(repo: &Path) -> BTreeMap<String, u64> {
    support::pack_files(repo)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(repo).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::metadata(&p).unwrap().len())
        })
        .collect()
}

/// Deleting under faults (issue 11 "Delete"): `forget` and `gc --grace 0`
/// straight on `s3://`, and `gc` locally followed by `sync --delete` to an
/// S3 mirror, each through transient faults on every method (a fifth of
/// requests): both succeed, the mirror ends with exactly the local packs,
/// and both check clean and restore what remains. Then a `sync --delete`
/// whose every DELETE fails for good stops with one-line errors naming
/// the files, removes no pack before the manifests that needed it, and the
/// rerun completes.
#[test]
fn gc_and_sync_delete_under_faults_remove_exactly_what_gc_removed() {
    let Some(mut rig) = Rig::new("s3_delete_faults", 16) else {
        return;
    };
    let grace0 = ["gc", "--grace", "0", "--max-unused", "0", "--json"];
    // straight on S3
    let direct = rig.url("direct");
    rig.strata(&direct, "a", &["init", "--pack-size-mib", "1"])
        .ok("init");
    let mut ids = Vec::new();
    for seed in [31, 32] {
        let src = rig.path(&format!("d{seed}"));
        support::make_tree(&src, seed, support::FIVE_400K);
        ids.push(id_of(
            &rig.strata(&direct, "a", &["snapshot", "--json", src.to_str().unwrap()])
                .json("snapshot"),
        ));
    }
    let before = bucket_packs(&rig, "direct").len();
    rig.proxy.set_all(When::Chance(0.2), &Fault::ALL);
    rig.strata(&direct, "a", &["forget", &ids[0]])
        .ok("forget under faults");
    let r = rig.strata(&direct, "a", &grace0).json("gc under faults");
    rig.proxy.heal();
    let after = rig.check_bucket("direct");
    assert!(
        after < before,
        "gc removed nothing: {before} -> {after}; {r}"
    );
    check_clean(&rig, &direct, "fresh", "check after gc");
    let out = rig.path("direct-out");
    rig.strata(
        &direct,
        "fresh",
        &[
            "restore",
            "latest",
            "--verify",
            "--target",
            out.to_str().unwrap(),
        ],
    )
    .ok("restore after gc");
    assert_same_tree(&rig.path("d32"), &under(&out, &rig.path("d32")));

    // locally, then mirrored with --delete
    let (local, srcs) = local_repo(&rig, 5);
    let l = local.to_str().unwrap();
    let mirror = rig.url("mirror");
    rig.strata(l, "l", &["sync", &mirror]).ok("first sync");
    let first = snapshot_ids(&rig, l, "l");
    rig.strata(l, "l", &["forget", &first[0]]).ok("forget");
    rig.strata(l, "l", &grace0).json("local gc");
    let want = local_packs(&local);
    assert!(
        want.len() < bucket_packs(&rig, "mirror").len(),
        "gc freed no pack"
    );
    rig.proxy.set_all(When::Chance(0.2), &Fault::ALL);
    let r = rig
        .strata(l, "l", &["sync", &mirror, "--delete", "--json"])
        .json("sync --delete under faults");
    rig.proxy.heal();
    assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
    assert_eq!(bucket_packs(&rig, "mirror"), want, "the mirror's packs");
    rig.check_bucket("mirror");
    check_clean(&rig, &mirror, "m", "check of the mirror");
    mirror_restores(&rig, &mirror, &srcs[1..]);

    // every DELETE fails for good: the manifests go first, so the failure
    // leaves no snapshot without its packs
    let src3 = rig.path("src23");
    support::make_tree(
        &src3,
        23,
        support::Shape {
            big: &[400_000; 3],
            ..support::FIVE_400K
        },
    );
    rig.strata(l, "l", &["snapshot", src3.to_str().unwrap()])
        .ok("snapshot");
    let last = snapshot_ids(&rig, l, "l");
    rig.strata(l, "l", &["sync", &mirror])
        .ok("sync of the new snapshot");
    rig.strata(l, "l", &["forget", &last[0]]).ok("forget");
    rig.strata(l, "l", &grace0).json("local gc");
    rig.extra_env = PERSISTENT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rig.proxy
        .set(Method::Delete, When::From(1), &[Fault::InternalError]);
    rig.proxy
        .set(Method::Other, When::From(1), &[Fault::InternalError]);
    let o = rig.strata(l, "l", &["sync", &mirror, "--delete"]);
    rig.proxy.heal();
    o.within("sync --delete under persistent DELETE faults", "");
    let stderr = String::from_utf8_lossy(&o.out.stderr).into_owned();
    assert_eq!(o.out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for line in stderr.lines() {
        assert!(line.starts_with("strata: "), "{line:?}");
    }
    // no pack went before its manifest: the mirror still restores each
    // snapshot it lists
    let v = rig
        .strata(&mirror, "m2", &["check", "--json"])
        .json("check of the mirror after failed deletes");
    assert_eq!(v["ok"].as_bool(), Some(true), "{v}");
    let r = rig
        .strata(l, "l", &["sync", &mirror, "--delete", "--json"])
        .json("rerun of sync --delete");
    assert_eq!(r["errors"].as_u64(), Some(0), "{r}");
    assert_eq!(bucket_packs(&rig, "mirror"), local_packs(&local));
    mirror_restores(&rig, &mirror, &[src3]);
}
