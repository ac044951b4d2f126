//! Retention and garbage collection from the command line (issue 8):
//! forget then gc frees exactly the forgotten snapshots' unique data while
//! every kept snapshot restores byte for byte; the two-phase delete
//! (condemn, grace period, delete, recovery); tag and rewrite; locks; and
//! the edge cases that broke other tools' prune.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::{Rng, one_line_error};

const NOW: &[(&str, &str)] = &[("STRATA_GC_GRACE", "0")];

fn init(repo: &Path, encrypted: bool) {
    let args: &[&str] = if encrypted {
        &["init"]
    } else {
        &["init", "--no-encryption"]
    };
    support::ok(repo, &[], args);
}

/// Snapshot `src` at `time`; returns the id.
fn snap(repo: &Path, src: &Path, time: &str) -> String {
    let v = support::json(
        repo,
        &[],
        &["snapshot", src.to_str().unwrap(), "--time", time, "--json"],
    );
    v["id"].as_str().unwrap().to_string()
}

/// Restore `id` into a fresh directory under `scratch` and return its digest
/// (of the source directory `scratch/src`'s contents, which the snapshot
/// keeps under its absolute path).
fn restored(repo: &Path, scratch: &Path, id: &str) -> support::Digest {
    let t = scratch.join(format!("r-{id}-{}", rand_suffix()));
    support::ok(repo, &[], &["restore", id, "--target", t.to_str().unwrap()]);
    let d = support::digest(&support::under(&t, &scratch.join("src")));
    let _ = std::fs::remove_dir_all(&t);
    d
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn packs_size(repo: &Path) -> u64 {
    let mut total = 0;
    for d in std::fs::read_dir(repo.join("packs")).unwrap() {
        for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
            total += f.unwrap().metadata().unwrap().len();
        }
    }
    total
}

fn pack_count(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("packs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum()
}

fn write(p: &Path, data: &[u8]) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(p, data).unwrap();
}

/// A source tree that changes daily: each day adds a unique 1 MiB random
/// file, deletes the file of three days ago, and rewrites a small JSON
/// file; a shared 2 MiB file never changes.
struct Days {
    src: PathBuf,
    rng: Rng,
    /// unique bytes of each day's random file, by day
    unique: Vec<u64>,
}

impl Days {
    fn new(dir: &Path, seed: u64) -> Days {
        let src = dir.join("src");
        let mut rng = Rng::new(seed);
        write(&src.join("shared.bin"), &rng.bytes(2 << 20));
        Days {
            src,
            rng,
            unique: Vec::new(),
        }
    }
    fn day(&mut self, n: usize) {
        let len = (1 << 20) + self.rng.below(4096) as usize;
        write(&self.src.join(format!("day{n}.bin")), &self.rng.bytes(len));
        self.unique.push(len as u64);
        if n >= 3 {
            let _ = std::fs::remove_file(self.src.join(format!("day{}.bin", n - 3)));
        }
        write(
            &self.src.join("state/status.json"),
            format!("{{\"day\": {n}, \"ok\": true}}").as_bytes(),
        );
    }
}

#[test]
fn forget_then_gc_frees_the_forgotten_data_and_every_kept_snapshot_restores() {
    for encrypted in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        init(&repo, encrypted);
        let mut days = Days::new(tmp.path(), 7);
        let mut ids = Vec::new();
        let mut want = BTreeMap::new();
        for n in 0..8 {
            days.day(n);
            let id = snap(&repo, &days.src, &format!("2026-11-{:02} 12:00:00", n + 1));
            want.insert(id.clone(), support::digest(&days.src));
            ids.push(id);
        }
        let before = packs_size(&repo);
        // keep the 3 newest; days 0..=4 are forgotten
        let v = support::json(&repo, &[], &["forget", "--keep-last", "3", "--json"]);
        let removed: Vec<&str> = v["groups"][0]["remove"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(removed.len(), 5);
        let r = support::json(&repo, NOW, &["gc", "--json"]);
        assert_eq!(r["snapshots"], 3);
        let after = packs_size(&repo);
        // Unique data of the forgotten snapshots: the random files of days
        // 0..=2 (each file lives three days, so days 3 and 4 are still in
        // the kept snapshot of day 5).
        let unique: u64 = days.unique[..3].iter().sum();
        let freed = before - after;
        let slack = after / 20 + (64 << 10); // --max-unused 5 %, plus trees
        assert!(
            freed + slack >= unique && freed <= unique + (256 << 10),
            "encrypted={encrypted}: freed {freed} of {before}, unique {unique}, slack {slack}"
        );
        for id in &ids[5..] {
            assert_eq!(restored(&repo, tmp.path(), id), want[id], "snapshot {id}");
        }
        for id in &ids[..5] {
            let o = support::run(&repo, &[], &["restore", id, "--target", "/nonexistent-x"]);
            one_line_error(&o, "restore of a forgotten snapshot");
        }
        // A second gc finds nothing to do.
        let r2 = support::json(&repo, NOW, &["gc", "--json"]);
        assert_eq!(r2["deleted"]["packs"], 0, "{r2}");
        assert_eq!(r2["repacked"]["packs"], 0, "{r2}");
        assert_eq!(packs_size(&repo), after);
    }
}

#[test]
fn gc_condemns_first_deletes_after_the_grace_period_and_backups_skip_condemned_packs() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    let mut rng = Rng::new(3);
    let big = rng.bytes(3 << 20);
    write(&src.join("big.bin"), &big);
    // in the same pack as big.bin's chunks and never back: the pack
    // big.bin is written to again below cannot have the same bytes, so
    // the same name (gc_keeps_a_condemned_pack_written_again_under_its_name)
    write(&src.join("other.bin"), &rng.bytes(100 << 10));
    let first = snap(&repo, &src, "2026-11-01 00:00:00");
    std::fs::remove_file(src.join("big.bin")).unwrap();
    std::fs::remove_file(src.join("other.bin")).unwrap();
    write(&src.join("small.txt"), b"hello");
    snap(&repo, &src, "2026-11-02 00:00:00");
    support::ok(&repo, &[], &["forget", &first]);
    let grace = [("STRATA_GC_GRACE", "2s")];
    let n_before = pack_count(&repo);
    // Within the grace period the forgotten snapshot is still a root.
    let r = support::json(&repo, &grace, &["gc", "--json"]);
    assert_eq!(r["forgotten_roots"], 1, "{r}");
    assert_eq!(r["condemned"]["packs"], 0, "{r}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = support::json(&repo, &grace, &["gc", "--json"]);
    assert_eq!(r["forgotten_roots"], 0, "{r}");
    assert_eq!(r["deleted"]["packs"], 0, "{r}");
    assert!(r["condemned"]["bytes"].as_u64().unwrap() >= 3 << 20, "{r}");
    assert_eq!(
        pack_count(&repo),
        n_before,
        "nothing deleted in the first run"
    );
    let states: Vec<_> = std::fs::read_dir(repo.join("gc")).unwrap().collect();
    assert_eq!(states.len(), 1, "one gc state file");
    // The forgotten file comes back: dedup must not use the condemned pack.
    write(&src.join("big.bin"), &big);
    let v = support::json(
        &repo,
        &grace,
        &["snapshot", src.to_str().unwrap(), "--json"],
    );
    assert!(
        v["summary"]["bytes_added"].as_u64().unwrap() >= 3 << 20,
        "the blob was written again, not deduplicated against a condemned pack: {v}"
    );
    let back = v["id"].as_str().unwrap().to_string();
    // Within the grace period a second gc deletes nothing.
    let r = support::json(&repo, &grace, &["gc", "--json"]);
    assert_eq!(r["deleted"]["packs"], 0, "{r}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = support::json(&repo, &grace, &["gc", "--json"]);
    assert!(r["deleted"]["bytes"].as_u64().unwrap() >= 3 << 20, "{r}");
    assert_eq!(restored(&repo, tmp.path(), &back), support::digest(&src));
    assert!(packs_size(&repo) < (4 << 20) + (1 << 20));
}

/// A condemned pack written again under the same name: a file of one
/// chunk, forgotten and condemned, comes back; the backup does not
/// deduplicate against the condemned pack and writes the same bytes again,
/// so the same pack name. Gc after the grace period must keep it (the new
/// snapshot needs it), and the snapshot must restore.
#[test]
fn gc_keeps_a_condemned_pack_written_again_under_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    let mut rng = Rng::new(5);
    // above the inline limit, below the smallest chunk: one blob, one pack
    let one = rng.bytes(60 << 10);
    write(&src.join("one.bin"), &one);
    let first = snap(&repo, &src, "2026-11-01 00:00:00");
    let names = |repo: &Path| -> std::collections::BTreeSet<std::ffi::OsString> {
        std::fs::read_dir(repo.join("packs"))
            .unwrap()
            .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
            .map(|p| p.unwrap().file_name())
            .collect()
    };
    std::fs::remove_file(src.join("one.bin")).unwrap();
    write(&src.join("small.txt"), b"hello");
    snap(&repo, &src, "2026-11-02 00:00:00");
    support::ok(&repo, &[], &["forget", &first]);
    let grace = [("STRATA_GC_GRACE", "2s")];
    support::json(&repo, &grace, &["gc", "--json"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = support::json(&repo, &grace, &["gc", "--json"]);
    assert!(r["condemned"]["packs"].as_u64().unwrap() >= 1, "{r}");
    write(&src.join("one.bin"), &one);
    let before = names(&repo);
    let v = support::json(
        &repo,
        &grace,
        &["snapshot", src.to_str().unwrap(), "--json"],
    );
    assert!(
        v["summary"]["bytes_added"].as_u64().unwrap() >= 60 << 10,
        "written again, not deduplicated against the condemned pack: {v}"
    );
    let back = v["id"].as_str().unwrap().to_string();
    // its pack has the name of the condemned one: no new pack holds it
    for n in names(&repo).difference(&before) {
        let size = std::fs::metadata(repo.join("packs").join(&n.to_string_lossy()[..2]).join(n))
            .unwrap()
            .len();
        assert!(size < 60 << 10, "a new pack of {size} bytes: {v}");
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = support::json(&repo, &grace, &["gc", "--json"]);
    assert_eq!(
        restored(&repo, tmp.path(), &back),
        support::digest(&src),
        "{r}"
    );
    support::ok(&repo, &[], &["check", "--read-data"]);
}

/// A backup that started before gc condemned a pack, and reuses its
/// parent's chunk list (no lookup) while the parent is forgotten and the
/// pack condemned, publishes a snapshot that needs the pack: the next gc
/// must recover the pack, not delete it. Locks are switched off for the
/// forget and gc to simulate a lock that failed (restic#3486).
#[test]
fn a_condemned_pack_that_a_new_snapshot_needs_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    let mut rng = Rng::new(5);
    write(&src.join("keep.bin"), &rng.bytes(2 << 20));
    let parent = snap(&repo, &src, "2026-11-01 00:00:00");
    // The backup: same paths (so the parent is reused), plus a stdin
    // command that stalls for 4 s.
    let mut c = support::unlock_for(support::command(), &repo);
    c.arg("--repo")
        .arg(&repo)
        .args([
            "snapshot",
            src.to_str().unwrap(),
            "--parent",
            &parent,
            "--json",
        ])
        .args(["--stdin-from-command", "sleep 4; echo late"])
        .env("STRATA_GC_GRACE", "30s")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let unsafe_env = [("STRATA_UNSAFE_NO_LOCKS", "1"), ("STRATA_GC_GRACE", "1s")];
    support::ok(&repo, &unsafe_env, &["forget", &parent]);
    // once the forgotten root's grace period is over, its pack is condemned
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = support::json(&repo, &unsafe_env, &["gc", "--json"]);
    assert!(r["condemned"]["bytes"].as_u64().unwrap() >= 2 << 20, "{r}");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let new = v["id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // Due now, but the new snapshot needs it: recovered, not deleted.
    let r = support::json(&repo, &unsafe_env, &["gc", "--json"]);
    assert!(r["recovered"]["packs"].as_u64().unwrap() >= 1, "{r}");
    let t = tmp.path().join("r");
    support::ok(
        &repo,
        &[],
        &["restore", &new, "--target", t.to_str().unwrap(), "--verify"],
    );
    assert_eq!(
        std::fs::read(support::under(&t, &src).join("keep.bin")).unwrap(),
        std::fs::read(src.join("keep.bin")).unwrap()
    );
}

#[test]
fn tag_pins_a_snapshot_and_rewrite_purges_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    let mut rng = Rng::new(11);
    let secret = rng.bytes(200_000);
    write(&src.join("app/.env"), &secret);
    write(&src.join("app/config.json"), b"{\"a\": 1}");
    let a = snap(&repo, &src, "2026-10-01 00:00:00");
    write(&src.join("app/config.json"), b"{\"a\": 2}");
    let b = snap(&repo, &src, "2026-10-02 00:00:00");
    // tag: the old manifest is replaced by one with the tag
    let v: Value = serde_json::from_str(&support::ok(
        &repo,
        &[],
        &["tag", &a, "--add", "pin", "--json"],
    ))
    .unwrap();
    let pinned = v[0]["new"].as_str().unwrap().to_string();
    assert_ne!(pinned, a);
    let list = support::json(&repo, &[], &["snapshots", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == pinned.as_str() && s["tags"][0] == "pin")
    );
    // keep-last 1 would remove the older one, but the tag keeps it
    let v = support::json(
        &repo,
        &[],
        &[
            "forget",
            "--keep-last",
            "1",
            "--keep-tag",
            "pin",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(v["groups"][0]["remove"].as_array().unwrap().len(), 0, "{v}");
    let reasons = v["groups"][0]["keep"][1]["reasons"].to_string();
    assert!(reasons.contains("tag pin"), "{reasons}");
    // rewrite both without .env, forget the originals, gc: the secret's
    // bytes are in no pack any more (plaintext repository, raw search).
    let needle = &secret[1000..1064];
    let in_packs = |repo: &Path| {
        support::pack_files(repo)
            .iter()
            .any(|p| std::fs::read(p).unwrap().windows(64).any(|w| w == needle))
    };
    assert!(in_packs(&repo), "the secret is stored before the rewrite");
    let v = support::json(
        &repo,
        &[],
        &["rewrite", "--exclude", ".env", "--forget", "--json"],
    );
    let rewritten = v["snapshots"].as_array().unwrap();
    assert_eq!(rewritten.len(), 2);
    support::json(&repo, NOW, &["gc", "--json"]);
    assert!(
        !in_packs(&repo),
        "the secret is gone after rewrite --forget and gc"
    );
    let list = support::json(&repo, &[], &["snapshots", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let newest = list.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = restored(&repo, tmp.path(), &newest);
    assert!(!d.contains_key("app/.env"));
    assert_eq!(
        d["app/config.json"],
        *blake3::hash(b"{\"a\": 2}").as_bytes()
    );
    let _ = b;
}

#[test]
fn edge_cases_zeros_empty_chunk_limits_repeated_blobs_and_an_empty_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    let mut rng = Rng::new(13);
    write(&src.join("zeros.bin"), &vec![0u8; 5 << 20]);
    write(&src.join("empty"), b"");
    write(&src.join("min.bin"), &rng.bytes(64 << 10));
    write(&src.join("max.bin"), &rng.bytes(1 << 20));
    write(&src.join("twice-a.bin"), &rng.bytes(100_000));
    std::fs::copy(src.join("twice-a.bin"), src.join("twice-b.bin")).unwrap();
    let a = snap(&repo, &src, "2026-09-01 00:00:00");
    write(&src.join("extra.bin"), &rng.bytes(300_000));
    let b = snap(&repo, &src, "2026-09-02 00:00:00");
    support::ok(&repo, &[], &["forget", &a]);
    support::json(&repo, NOW, &["gc", "--max-unused", "0", "--json"]);
    assert_eq!(restored(&repo, tmp.path(), &b), support::digest(&src));
    // every snapshot forgotten: everything goes, the repository stays usable
    let o = support::run(&repo, &[], &["forget", "--keep-tag", "nothing-has-this"]);
    let line = one_line_error(&o, "a policy removing a whole group");
    assert!(line.contains("--allow-empty"), "{line}");
    support::ok(
        &repo,
        &[],
        &["forget", "--keep-tag", "nothing-has-this", "--allow-empty"],
    );
    let r = support::json(&repo, NOW, &["gc", "--json"]);
    assert_eq!(r["snapshots"], 0);
    assert_eq!(pack_count(&repo), 0, "{r}");
    let c = snap(&repo, &src, "2026-09-03 00:00:00");
    assert_eq!(restored(&repo, tmp.path(), &c), support::digest(&src));
}

/// A pack whose trailer lists the same blob twice (rustic once deleted such
/// packs): gc must keep the blob, rewriting the pack at most.
#[test]
fn a_pack_holding_one_blob_twice_is_repacked_not_lost() {
    use strata::blob::{BlobKind, Compression};
    use strata::id::BlobId;
    use strata::pack::writer::PackWriter;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let content = Rng::new(17).bytes(10_000);
    let id = BlobId::of(&content);
    let mut w = PackWriter::create(&repo.join("tmp"), BlobKind::Data, None, None).unwrap();
    w.add(id, content.len() as u32, Compression::None, &content)
        .unwrap();
    w.add(id, content.len() as u32, Compression::None, &content)
        .unwrap();
    w.finish(&strata::backend::LocalBackend::new(&repo))
        .unwrap();
    let src = tmp.path().join("src");
    write(&src.join("f.bin"), &content);
    let v = support::json(&repo, &[], &["snapshot", src.to_str().unwrap(), "--json"]);
    assert!(
        v["summary"]["bytes_added"].as_u64().unwrap() < 10_000,
        "the file was deduplicated against the crafted pack: {v}"
    );
    let s = v["id"].as_str().unwrap().to_string();
    let r = support::json(&repo, NOW, &["gc", "--max-unused", "0", "--json"]);
    assert_eq!(
        restored(&repo, tmp.path(), &s),
        support::digest(&src),
        "{r}"
    );
    let r = support::json(&repo, NOW, &["gc", "--max-unused", "0", "--json"]);
    assert_eq!(r["repacked"]["packs"], 0, "stable after one repack: {r}");
    assert_eq!(restored(&repo, tmp.path(), &s), support::digest(&src));
}

fn lock_file(repo: &Path, host: &str, pid: u32, age_secs: u64, exclusive: bool) -> PathBuf {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
    let body = serde_json::json!({
        "host": host, "pid": pid,
        "time": humantime::format_rfc3339_seconds(t).to_string(),
        "exclusive": exclusive,
    });
    let name = blake3::hash(format!("{host}{pid}{age_secs}").as_bytes())
        .to_hex()
        .to_string();
    let p = repo.join("locks").join(name);
    std::fs::write(&p, body.to_string()).unwrap();
    p
}

fn hostname() -> String {
    String::from_utf8(
        std::process::Command::new("uname")
            .arg("-n")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string()
}

#[test]
fn locks_exclude_wait_go_stale_and_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    write(&src.join("a"), b"a");
    let s = src.to_str().unwrap();
    // A live exclusive lock of another host blocks a snapshot: exit 11.
    let l = lock_file(&repo, "elsewhere", 4242, 0, true);
    let o = support::run(&repo, &[], &["snapshot", s]);
    assert_eq!(o.status.code(), Some(11));
    let line = one_line_error(&o, "snapshot against an exclusive lock");
    assert!(
        line.contains("elsewhere") && line.contains("4242"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_dir(repo.join("snapshots")).unwrap().count(),
        0
    );
    // ...and a shared lock blocks gc, but not another snapshot.
    std::fs::remove_file(&l).unwrap();
    let l = lock_file(&repo, "elsewhere", 4243, 0, false);
    support::ok(&repo, &[], &["snapshot", s]);
    assert_eq!(support::run(&repo, &[], &["gc"]).status.code(), Some(11));
    // --retry-lock waits until the lock goes away.
    let remover = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        std::fs::remove_file(&l).unwrap();
    });
    let t0 = std::time::Instant::now();
    support::ok(&repo, &[], &["gc", "--retry-lock", "20s"]);
    assert!(t0.elapsed() >= std::time::Duration::from_millis(1400));
    remover.join().unwrap();
    // Stale: not refreshed for 31 minutes, or a dead process on this host.
    let old = lock_file(&repo, "elsewhere", 1, 31 * 60, true);
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let gone = lock_file(&repo, &hostname(), dead_pid, 0, true);
    let o = support::run(&repo, &[], &["snapshot", s]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("removing stale lock") && err.contains("not refreshed"),
        "{err}"
    );
    assert!(
        err.contains(&format!("process {dead_pid} is gone")),
        "{err}"
    );
    assert!(!old.exists() && !gone.exists());
    // unlock keeps live locks, --remove-all removes them too.
    let live = lock_file(&repo, "elsewhere", 9, 0, false);
    let out = support::ok(&repo, &[], &["unlock"]);
    assert!(live.exists() && out.contains("kept"), "{out}");
    support::ok(&repo, &[], &["unlock", "--remove-all"]);
    assert!(!live.exists());
    // Read-only commands may skip the lock; writers may not.
    let l = lock_file(&repo, "elsewhere", 77, 0, true);
    support::ok(&repo, &[], &["--no-lock", "ls", "latest"]);
    one_line_error(
        &support::run(&repo, &[], &["--no-lock", "snapshot", s]),
        "--no-lock snapshot",
    );
    std::fs::remove_file(l).unwrap();
}

/// A process whose lock is removed under it (another host's `unlock`)
/// must not publish.
#[test]
fn a_snapshot_that_lost_its_lock_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let mut c = support::unlock_for(support::command(), &repo);
    c.arg("--repo")
        .arg(&repo)
        .args(["snapshot", "--stdin-from-command", "sleep 2; echo data"])
        .env("STRATA_LOCK_REFRESH", "300ms")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    support::ok(&repo, &[], &["unlock", "--remove-all"]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = one_line_error(&o, "snapshot without its lock");
    assert!(line.contains("lost the repository lock"), "{line}");
    assert_eq!(
        std::fs::read_dir(repo.join("snapshots")).unwrap().count(),
        0
    );
}

#[test]
fn gc_stops_on_an_unreadable_snapshot_and_dry_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    init(&repo, false);
    let src = tmp.path().join("src");
    write(&src.join("a.bin"), &Rng::new(1).bytes(500_000));
    let a = snap(&repo, &src, "2026-08-01 00:00:00");
    write(&src.join("a.bin"), &Rng::new(2).bytes(500_000));
    snap(&repo, &src, "2026-08-02 00:00:00");
    support::ok(&repo, &[], &["forget", &a]);
    let before = packs_size(&repo);
    let listing = |r: &Path| -> Vec<String> {
        let mut v: Vec<String> = walkdir(r);
        v.sort();
        v
    };
    let files_before = listing(&repo);
    let r = support::json(&repo, NOW, &["gc", "--dry-run", "--json"]);
    assert!(r["deleted"]["bytes"].as_u64().unwrap() >= 400_000, "{r}");
    assert_eq!(listing(&repo), files_before, "dry run wrote nothing");
    // A damaged manifest stops gc: it might need any blob.
    let bad = repo.join("snapshots").join("ab".repeat(32));
    std::fs::write(&bad, b"garbage").unwrap();
    let o = support::run(&repo, NOW, &["gc"]);
    let line = one_line_error(&o, "gc with a damaged manifest");
    assert!(line.contains("gc stopped"), "{line}");
    assert_eq!(packs_size(&repo), before);
}

fn walkdir(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().contains("index.sqlite") {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
