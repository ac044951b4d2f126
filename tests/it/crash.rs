//! Crash safety (format-spec/invariants.md): `kill -9` in 10 consecutive
//! backups of a ~35 MB tree into an encrypted repository with 1 MiB packs,
//! 5 with the index in the repository and 5 with the index and tree cache in
//! the cache directory (the default layout), each in a repository of its
//! own. On each layout two kills are aimed (`STRATA_KILL_AT`,
//! src/killpoint.rs: after the k-th pack is published and before its index
//! rows, and after the k-th pack's index commit, k seeded) and three land
//! at seeded random moments (early, mid-way, late), so kills land while
//! packs are written, between pack seals and index commits, and around the
//! snapshot write; at least 3 of the 5 must really kill the run.
//!
//! After every kill: the repository opens and lists exactly the snapshots that
//! were written; `check --read-data` passes (every blob of every pack, every
//! snapshot's trees); the snapshot the kill made, if any, and the one before
//! restore byte-identical to the source state they captured (every snapshot
//! does at the end); no pack file ever disappears and every pack file under a
//! final name is complete (its name is the BLAKE3 of its bytes and its trailer
//! parses). Then a snapshot run to completion succeeds, restores identically,
//! and reuses the complete packs the killed run left behind: no blob is
//! stored twice, and the data it adds is exactly what the source needs minus
//! what the killed run already sealed (files of at most 4 KiB are inline, in
//! their directories' trees, and need no data blob).
//!
//! Everything is seeded (`STRATA_CRASH_SEED=N` to replay another seed); the
//! seed and each kill's timing and outcome are printed (`--nocapture`).

use crate::support;

use crate::battery_kill::Layout;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use strata::blob::BlobKind;
use strata::chunker::Chunker;
use strata::repo::config::ChunkerParams;
use support::{Compare, Env, Manifest, Node, Rng};

const DEFAULT_SEED: u64 = 0x5EED_C0FF_EE00_0001;
const ITERATIONS: usize = 10;
const BIG_FILES: usize = 3;
const BIG_SIZE: usize = 8 << 20;
const SMALL_FILES: usize = 800;
const SMALL_DIRS: usize = 20;

// ---------------------------------------------------------------------------
// The source tree and its seeded mutations.

struct Source {
    dir: PathBuf,
    rng: Rng,
    serial: u64,
}

impl Source {
    fn write(&mut self, rel: &str, bytes: &[u8]) {
        // temp + rename: a rewritten file always gets a new inode and ctime,
        // so change detection sees it whatever the timestamp granularity
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        self.serial += 1;
        let tmp = p.with_file_name(format!(".new-{}", self.serial));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
    }

    fn small_content(&mut self) -> Vec<u8> {
        let n = 1 + self.rng.below(60_000) as usize;
        if self.rng.below(2) == 0 {
            self.rng.bytes(n)
        } else {
            self.rng.text(n)
        }
    }

    fn initial(&mut self) {
        for i in 0..BIG_FILES {
            let b = self.rng.bytes(BIG_SIZE);
            self.write(&format!("big/big{i}.bin"), &b);
        }
        for k in 0..SMALL_FILES {
            let c = self.small_content();
            self.write(&format!("d{:02}/f{k:04}", k % SMALL_DIRS), &c);
        }
        std::fs::create_dir_all(self.dir.join("empty-dir")).unwrap();
        std::os::unix::fs::symlink("d00/f0000", self.dir.join("link")).unwrap();
        let dup = std::fs::read(self.dir.join("d01/f0001")).unwrap();
        self.write("d02/dup-of-f0001", &dup);
    }

    fn small_files(&self) -> Vec<String> {
        support::list_files(&self.dir)
            .into_iter()
            .filter(|p| p.starts_with('d'))
            .collect()
    }

    /// Change the tree a bit; returns the bytes written.
    fn mutate(&mut self, iteration: usize) -> u64 {
        let mut written = 0u64;
        let big = format!("big/big{}.bin", self.rng.below(BIG_FILES as u64));
        if self.rng.below(3) == 0 {
            // append: the old chunks stay valid, only the tail is new
            let add = self.rng.bytes(4 << 20);
            let mut b = std::fs::read(self.dir.join(&big)).unwrap();
            b.extend_from_slice(&add);
            self.write(&big, &b);
            written += add.len() as u64;
        } else {
            let b = self.rng.bytes(BIG_SIZE);
            self.write(&big, &b);
            written += b.len() as u64;
        }
        let mut smalls = self.small_files();
        for _ in 0..60 {
            let f = smalls[self.rng.below(smalls.len() as u64) as usize].clone();
            let c = self.small_content();
            written += c.len() as u64;
            self.write(&f, &c);
        }
        for _ in 0..15 {
            let i = self.rng.below(smalls.len() as u64) as usize;
            let f = smalls.swap_remove(i);
            if f != "d00/f0000" {
                std::fs::remove_file(self.dir.join(f)).unwrap();
            }
        }
        for k in 0..20 {
            let c = self.small_content();
            written += c.len() as u64;
            let d = self.rng.below(SMALL_DIRS as u64);
            self.write(&format!("d{d:02}/new-{iteration}-{k}"), &c);
        }
        if iteration % 2 == 0 {
            // a new directory, and a copy of an existing file (dedup)
            for k in 0..10 {
                let c = self.small_content();
                written += c.len() as u64;
                self.write(&format!("d{iteration:02}x/g{k}"), &c);
            }
            let src = smalls[self.rng.below(smalls.len() as u64) as usize].clone();
            let b = std::fs::read(self.dir.join(src)).unwrap();
            self.write(&format!("d{iteration:02}x/copy"), &b);
        }
        written
    }
}

// ---------------------------------------------------------------------------
// What the repository holds, parsed pack by pack (only new packs are read).

/// A pack's blobs: id, raw length, kind.
type Blobs = Vec<([u8; 32], u32, BlobKind)>;

struct Packs {
    /// pack name -> (file length, blobs)
    known: BTreeMap<String, (u64, Blobs)>,
    /// The repository secret: packs are age files.
    secret: support::Secret,
}

impl Packs {
    /// Read packs not seen before; check every pack ever seen is still there
    /// unchanged in length (INV-5), and that a pack under a final name is
    /// complete (INV-1): name = BLAKE3(bytes), trailer parses, blobs decode.
    /// Returns the names of the new packs.
    fn refresh(&mut self, repo: &Path, when: &str) -> Vec<String> {
        let files = support::pack_files(repo);
        let on_disk: HashMap<String, PathBuf> = files
            .iter()
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    p.clone(),
                )
            })
            .collect();
        for (name, (len, _)) in &self.known {
            let p = on_disk
                .get(name)
                .unwrap_or_else(|| panic!("{when}: pack {name} disappeared"));
            assert_eq!(
                std::fs::metadata(p).unwrap().len(),
                *len,
                "{when}: pack {name} changed"
            );
        }
        let mut new = Vec::new();
        for (name, path) in on_disk {
            if self.known.contains_key(&name) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                blake3::hash(&bytes).to_hex().as_str(),
                name,
                "{when}: pack {name} is not complete (name != BLAKE3 of its bytes)"
            );
            let plain = self.secret.decrypt(&bytes);
            let entries = strata::pack::format::parse_pack(&plain, &name)
                .unwrap_or_else(|e| panic!("{when}: pack {name}: {e}"));
            let blobs = entries
                .iter()
                .map(|e| (e.id.0, e.raw_len, e.kind))
                .collect();
            self.known.insert(name.clone(), (bytes.len() as u64, blobs));
            new.push(name);
        }
        new.sort();
        new
    }

    fn blob_ids(&self) -> HashSet<[u8; 32]> {
        self.known
            .values()
            .flat_map(|(_, b)| b.iter().map(|x| x.0))
            .collect()
    }

    /// Raw bytes of (data, tree) blobs in `names`.
    fn raw_of(&self, names: &[String]) -> (u64, u64) {
        let (mut d, mut t) = (0, 0);
        for n in names {
            for (_, raw, kind) in &self.known[n].1 {
                match kind {
                    BlobKind::Data => d += u64::from(*raw),
                    BlobKind::Tree => t += u64::from(*raw),
                }
            }
        }
        (d, t)
    }

    /// No blob id in two packs: complete packs were reused, not rewritten.
    fn assert_no_duplicates(&self, when: &str) {
        let mut seen: HashMap<[u8; 32], &str> = HashMap::new();
        for (name, (_, blobs)) in &self.known {
            for (id, _, _) in blobs {
                if let Some(other) = seen.insert(*id, name) {
                    panic!(
                        "{when}: blob {} stored twice, in packs {other} and {name}",
                        strata::id::to_hex(id)
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What the source needs: data chunks of every file, cached by content hash.

struct Needs {
    chunker: Chunker,
    secret: support::Secret,
    cache: HashMap<[u8; 32], Vec<([u8; 32], u32)>>,
}

impl Needs {
    /// Raw bytes of the distinct data chunks of `manifest` not in `have`.
    fn missing(&mut self, src: &Path, manifest: &Manifest, have: &HashSet<[u8; 32]>) -> u64 {
        let mut need: HashMap<[u8; 32], u32> = HashMap::new();
        for (rel, entry) in manifest {
            let Node::File(len, h) = &entry.node else {
                continue;
            };
            if *len <= strata::snapshot::tree::INLINE_MAX {
                continue; // stored inline, in its directory's tree: no data blob
            }
            if !self.cache.contains_key(h) {
                let bytes = std::fs::read(src.join(rel)).unwrap();
                let mut chunks = Vec::new();
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let n = self.chunker.cut(rest);
                    chunks.push((self.secret.data_id(&rest[..n]), n as u32));
                    rest = &rest[n..];
                }
                self.cache.insert(*h, chunks);
            }
            for (id, len) in &self.cache[h] {
                if !have.contains(id) {
                    need.insert(*id, *len);
                }
            }
        }
        need.values().map(|&l| u64::from(l)).sum()
    }
}

// ---------------------------------------------------------------------------

fn snapshot_json(stdout: &[u8]) -> serde_json::Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "snapshot --json output: {e}: {}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// Restore snapshot `id` and compare the source `src` (an absolute path,
/// kept as such) with the state it captured.
fn check_restore(
    repo: &Path,
    env: Env,
    scratch: &Path,
    (id, src): (&str, &str),
    want: &Manifest,
    what: &str,
) {
    let target = scratch.join("restore");
    let _ = std::fs::remove_dir_all(&target);
    support::ok(
        repo,
        env,
        &["restore", &id[..16], "--target", target.to_str().unwrap()],
    );
    support::assert_matches_manifest(
        want,
        &support::under(&target, Path::new(src)),
        &Compare::default(),
        &format!("{what}: snapshot {}", &id[..8]),
    );
    std::fs::remove_dir_all(&target).unwrap();
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

#[test]
fn kill_9_during_backups_with_the_index_in_the_repository() {
    battery(
        Layout::Repository,
        ITERATIONS - ITERATIONS / 2,
        DEFAULT_SEED,
    );
}

#[test]
fn kill_9_during_backups_with_the_index_and_tree_cache_in_the_cache() {
    battery(Layout::Cache, ITERATIONS / 2, DEFAULT_SEED + 1);
}

/// How a run is killed.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// After a fraction in `lo..hi` of the estimated run time.
    Timer(f64, f64, &'static str),
    /// By itself, at the crash point (src/killpoint.rs), its k-th time.
    At(&'static str),
}

fn battery(layout: Layout, iterations: usize, default_seed: u64) {
    let started = Instant::now();
    let seed = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    println!("crash test {layout:?}: seed {seed} (replay with STRATA_CRASH_SEED={seed})");
    let env = layout.env(&[]);
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("repo");
    // Restores go to tmpfs when there is one: creating and deleting ~100 MB
    // of files dozens of times is slow on disks mounted with `discard`, and
    // where a restore is written does not matter to crash safety.
    let shm = Path::new("/dev/shm");
    let scratch_dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).ok()
    } else {
        None
    };
    let scratch = match &scratch_dir {
        Some(d) => d.path().to_path_buf(),
        None => root.join("scratch"),
    };
    std::fs::create_dir_all(&scratch).unwrap();
    let mut src = Source {
        dir: root.join("src/data"),
        rng: Rng::new(rng.next_u64()),
        serial: 0,
    };
    std::fs::create_dir_all(&src.dir).unwrap();
    src.initial();
    let src_arg = src.dir.to_str().unwrap().to_string();
    let initial = support::manifest(&src.dir);
    let total: u64 = initial
        .values()
        .map(|e| if let Node::File(l, _) = e.node { l } else { 0 })
        .sum();
    println!("source: {} entries, {}", initial.len(), mib(total));

    // Calibrate: how long a full and an empty snapshot take on this machine.
    let cal = root.join("calibration");
    support::ok(&cal, &env, &["init", "--pack-size-mib", "1"]);
    let t = Instant::now();
    support::ok(&cal, &env, &["snapshot", &src_arg]);
    let t_full = t.elapsed().as_secs_f64();
    let t = Instant::now();
    support::ok(&cal, &env, &["snapshot", &src_arg]);
    let t_empty = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&cal).unwrap();
    let per_byte = (t_full - t_empty).max(0.05) / total as f64;
    println!("calibration: full snapshot {t_full:.2}s, unchanged snapshot {t_empty:.2}s");

    support::ok(&repo, &env, &["init", "--pack-size-mib", "1"]);
    // The test reads the secret from the key file itself (keys.md), to
    // decrypt packs and compute the keyed chunk ids and seeded boundaries.
    let secret = support::Secret::read(&repo);
    let mut packs = Packs {
        known: BTreeMap::new(),
        secret: support::Secret::read(&repo),
    };
    let mut needs = Needs {
        chunker: Chunker::new(&ChunkerParams {
            seed: secret.seed,
            ..ChunkerParams::default()
        })
        .unwrap(),
        secret,
        cache: HashMap::new(),
    };
    // every snapshot written so far, with the state it captured
    let mut completed: Vec<(String, Manifest)> = Vec::new();

    // Kills: two aimed, and random ones stratified so that some land early,
    // some mid-way, some late or after the run finished, in a seeded order.
    let mut kills: Vec<Kill> = vec![
        Kill::At("pack-published"),
        Kill::At("index-committed"),
        Kill::Timer(0.0, 0.2, "early"),
        Kill::Timer(0.2, 1.0, "mid"),
        Kill::Timer(1.0, 3.0, "late"),
    ];
    while kills.len() < iterations {
        kills.push(kills[kills.len() % 5]);
    }
    kills.truncate(iterations);
    for i in (1..kills.len()).rev() {
        kills.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut outcomes: Vec<String> = Vec::new();
    let mut really_killed = 0;

    for (i, kill) in kills.iter().copied().enumerate() {
        let changed = if i == 0 { total } else { src.mutate(i) };
        let state = support::manifest(&src.dir);
        packs.refresh(&repo, "before the killed run");
        let have = packs.blob_ids();
        let needed = needs.missing(&src.dir, &state, &have);
        let estimate = t_empty + changed as f64 * per_byte;
        let snaps_before = support::snapshot_ids(&repo);

        // The run we kill.
        let mut aim = String::new();
        let mut run_env = env.clone();
        let (delay, how) = match kill {
            Kill::Timer(lo, hi, bucket) => {
                let f = lo + (hi - lo) * rng.unit();
                (
                    Some(Duration::from_secs_f64(f * estimate)),
                    format!("{bucket:5} f={f:.2}"),
                )
            }
            Kill::At(point) => {
                // the k-th pack of the run, k below the packs its new data fills
                let packs = (changed >> 20).max(1);
                aim = format!("{point}:{}", 1 + rng.below(packs.div_ceil(2)));
                (None, format!("at {aim}"))
            }
        };
        if !aim.is_empty() {
            run_env.push(("STRATA_KILL_AT", &aim));
        }
        let child = support::unlock_for(support::command(), &repo)
            .arg("--repo")
            .arg(&repo)
            .args(["snapshot", &src_arg, "--json"])
            .envs(run_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let mut child = child;
        if let Some(delay) = delay {
            std::thread::sleep(delay);
            let _ = child.kill(); // SIGKILL; a no-op if it already exited
        }
        let out = child.wait_with_output().unwrap();
        let killed_at = t0.elapsed();
        let when =
            format!("iteration {i} ({layout:?}, seed {seed}, {how}, killed at {killed_at:?})");
        let finished_before_kill = out.status.success();

        // The repository opens and lists exactly the snapshots written.
        let listed = support::json(&repo, &env, &["snapshots", "--json"]);
        let new_snaps: Vec<String> = support::snapshot_ids(&repo)
            .into_iter()
            .filter(|s| !snaps_before.contains(s))
            .collect();
        assert!(new_snaps.len() <= 1, "{when}: {new_snaps:?}");
        if out.status.success() {
            let v = snapshot_json(&out.stdout);
            assert_eq!(
                new_snaps,
                vec![v["id"].as_str().unwrap().to_string()],
                "{when}"
            );
        } else {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(9),
                "{when}: the run failed on its own: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if let Some(id) = new_snaps.first() {
            completed.push((id.clone(), state.clone()));
        }
        let mut listed_ids: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        listed_ids.sort();
        let mut want_ids: Vec<String> = completed.iter().map(|c| c.0.clone()).collect();
        want_ids.sort();
        assert_eq!(listed_ids, want_ids, "{when}: snapshots listed");

        // No pack lost, every pack complete.
        let left = packs.refresh(&repo, &format!("{when}, after the kill"));
        let (left_data, left_tree) = packs.raw_of(&left);

        // Every blob of every pack is intact and every snapshot's trees
        // name only blobs that are there; the snapshot the kill made, if
        // any, and the one before it restore to exactly what they captured.
        let o = support::run(&repo, &env, &["check", "--read-data"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{when}: check --read-data: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        let from = completed.len().saturating_sub(new_snaps.len() + 1);
        for (k, (id, m)) in completed.iter().enumerate().skip(from) {
            check_restore(
                &repo,
                &env,
                &scratch,
                (id, &src_arg),
                m,
                &format!("{when}, snapshot #{k}"),
            );
        }

        // The next snapshot, run to completion.
        let t = Instant::now();
        let out = support::run(&repo, &env, &["snapshot", &src_arg, "--json"]);
        assert!(
            out.status.success(),
            "{when}: the snapshot after the kill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let took = t.elapsed();
        let v = snapshot_json(&out.stdout);
        let id = v["id"].as_str().unwrap().to_string();
        let bytes_added = v["summary"]["bytes_added"].as_u64().unwrap();
        check_restore(
            &repo,
            &env,
            &scratch,
            (&id, &src_arg),
            &state,
            &format!("{when}, next run"),
        );
        completed.push((id, state));

        let added = packs.refresh(&repo, &format!("{when}, after the next run"));
        let (add_data, add_tree) = packs.raw_of(&added);
        packs.assert_no_duplicates(&when);
        // What the killed run sealed is reused; exactly the rest is added.
        assert_eq!(
            add_data,
            needed - left_data,
            "{when}: data added by the next run (needed {needed}, left by the killed run {left_data})"
        );
        assert_eq!(
            bytes_added,
            add_data + add_tree,
            "{when}: summary.bytes_added vs new packs"
        );
        if left_data > 0 {
            assert!(bytes_added < needed, "{when}: {bytes_added} >= {needed}");
        }

        if !finished_before_kill {
            really_killed += 1;
        }
        let outcome = if finished_before_kill {
            "finished before the kill"
        } else if !new_snaps.is_empty() {
            "killed after the snapshot was written"
        } else if left.is_empty() {
            "killed before sealing a pack"
        } else {
            "killed mid-way"
        };
        let line = format!(
            "#{i} {how} est {estimate:.2}s killed at {:>5} ms: {outcome}; left {} packs \
             ({} data, {} tree); next run added {} of {} needed in {:.2}s",
            killed_at.as_millis(),
            left.len(),
            mib(left_data),
            mib(left_tree),
            mib(add_data),
            mib(needed),
            took.as_secs_f64()
        );
        println!("{line}");
        outcomes.push(line);
    }
    // Every snapshot restores at the end.
    for (k, (id, m)) in completed.iter().enumerate() {
        check_restore(
            &repo,
            &env,
            &scratch,
            (id, &src_arg),
            m,
            &format!("{layout:?} at the end, snapshot #{k}"),
        );
    }
    println!(
        "{layout:?}: {} snapshots, {} packs, {really_killed} of {iterations} runs killed, {:.1}s in all",
        completed.len(),
        packs.known.len(),
        started.elapsed().as_secs_f64()
    );
    // Sanity: the loop really ran, the repository kept growing, and most
    // runs were really killed, not finished first.
    assert_eq!(outcomes.len(), iterations);
    assert!(completed.len() >= iterations);
    assert!(
        really_killed * 5 >= iterations * 3,
        "only {really_killed} of {iterations} runs were killed: {outcomes:#?}"
    );
}
