//! CLI behaviour not covered elsewhere: generated completions and man page,
//! and a file rewritten while a snapshot reads it (a warning and exit 3,
//! never a crash or SIGBUS, and a snapshot that still restores and verifies).

use crate::support;

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{Fixture, random_bytes, write_file};

#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    let fx = Fixture::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = fx
            .strata
            .cmd()
            .args(["completions", shell])
            .assert()
            .success();
        let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
        assert!(
            text.contains("snapshot") && text.contains("stdin-from-command"),
            "{shell}"
        );
    }
    let out = fx.strata.cmd().arg("man").assert().success();
    let man = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH strata"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("restore"));
    fx.strata
        .cmd()
        .arg("completions")
        .arg("tcsh-nope")
        .assert()
        .code(2);
}

#[test]
fn file_rewritten_during_snapshot_warns_and_stays_valid() {
    let fx = Fixture::new();
    let src = fx.path("src/data");
    let big = src.join("big.bin");
    let full = random_bytes(7, 48 << 20);
    write_file(&big, &full);
    write_file(&src.join("small.txt"), b"small\n");
    let mut warned = 0;
    for attempt in 0..6 {
        // Shrink and regrow the file continuously while strata reads it.
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, big2, full2) = (stop.clone(), big.clone(), full.clone());
        let mutator = std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let f = OpenOptions::new().write(true).open(&big2).unwrap();
                f.set_len(((1 + n % 4) as u64) << 20).unwrap();
                let mut f = OpenOptions::new().append(true).open(&big2).unwrap();
                f.write_all(&full2[..(8 + n % 3) << 20]).unwrap();
                n += 1;
            }
        });
        let out = fx
            .strata
            .cmd()
            .args(["snapshot", "--json", "--force-rehash"])
            .arg(&src)
            .output()
            .unwrap();
        stop.store(true, Ordering::Relaxed);
        mutator.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "attempt {attempt}: {stderr}");
        let code = out
            .status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {:?}", out.status));
        assert!(
            code == 0 || code == 3,
            "attempt {attempt}: exit {code}: {stderr}"
        );
        if code == 3 {
            warned += 1;
            assert!(
                stderr.contains("big.bin") && stderr.contains("changed while being read"),
                "{stderr}"
            );
        }
        // Whatever was read is stored consistently: restore --verify passes.
        let target = fx.path(format!("out{attempt}"));
        let r = fx.strata.restore("latest", &target, &["--verify"]);
        assert_eq!(support::num(&r, "report/verified"), 2, "{r}");
        assert_eq!(
            std::fs::read(support::under(&target, &src).join("small.txt")).unwrap(),
            b"small\n"
        );
    }
    assert!(warned > 0, "no attempt observed the file changing");
}

/// Restoring over an existing tree writes each file under a temp name and
/// renames it into place when complete: when a blob turns out corrupt, the
/// files already there keep their good content and no temp file is left.
#[test]
fn failed_restore_over_existing_files_keeps_them() {
    let fx = Fixture::new();
    let src = fx.path("src/data");
    write_file(&src.join("doc.txt"), b"old content\n");
    fx.strata.snapshot(&[&src]);
    let target = fx.path("restored");
    fx.strata.restore("latest", &target, &[] as &[&str]);
    let packs_before = support::pack_files(fx.strata.repo());

    write_file(&src.join("doc.txt"), &random_bytes(3, 3 << 20));
    fx.strata.snapshot(&[&src]);
    // Corrupt the new data pack(s): one byte in the middle of each.
    for p in support::pack_files(fx.strata.repo()) {
        if packs_before.contains(&p) || p.metadata().unwrap().len() < 1 << 20 {
            continue;
        }
        let mut b = std::fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x55;
        std::fs::write(&p, b).unwrap();
    }
    let out = fx
        .strata
        .cmd()
        .args(["restore", "latest", "--overwrite", "always", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(
        std::fs::read(support::under(&target, &src).join("doc.txt")).unwrap(),
        b"old content\n"
    );
    let left: Vec<String> = support::list_tree(&target)
        .into_iter()
        .filter(|p| p.contains(".strata-restore"))
        .collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}

/// The repository is never backed up into itself: inside a source it is
/// skipped, and as a source it is refused.
#[test]
fn repository_inside_a_source_is_skipped() {
    let fx = Fixture::uninit();
    let src = fx.path("home");
    write_file(&src.join("notes.txt"), b"notes\n");
    let repo = src.join("backup-repo");
    let strata = support::Strata::new(&repo);
    strata.init(&[]);
    let v = strata.snapshot(&[&src]);
    assert_eq!(support::num(&v, "summary/warnings"), 0, "{v}");
    let out = fx.path("out");
    strata.restore("latest", &out, &[] as &[&str]);
    assert_eq!(
        support::list_tree(&support::under(&out, &src)),
        vec!["notes.txt".to_string()]
    );
    let o = strata.cmd().arg("snapshot").arg(&repo).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the repository itself"));
}

/// One damaged manifest does not block the next backup or `restore latest`:
/// both skip it with a warning (exit 3), and `snapshots` lists the readable
/// ones but fails naming the damaged file.
#[test]
fn damaged_old_manifest_does_not_block_backups() {
    let fx = Fixture::new();
    let src = fx.path("src/data");
    write_file(&src.join("a.txt"), b"one\n");
    let first = fx.strata.snapshot(&[&src]);
    let id1 = first["id"].as_str().unwrap().to_string();
    write_file(&src.join("a.txt"), b"two\n");
    fx.strata.snapshot(&[&src]);
    let manifest = fx.strata.repo().join("snapshots").join(&id1);
    let mut b = std::fs::read(&manifest).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&manifest, b).unwrap();

    let third = fx.strata.snapshot_code(&[&src], 3);
    assert!(
        third["warnings"][0].as_str().unwrap().contains(&id1),
        "{third}"
    );
    assert!(
        third["parent"].is_string(),
        "the readable latest snapshot is the parent"
    );

    let out = fx.path("out");
    let o = fx
        .strata
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read(support::under(&out, &src).join("a.txt")).unwrap(),
        b"two\n"
    );

    let o = fx.strata.cmd().arg("snapshots").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.matches("/src/data").count(), 2, "{stdout}");
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("snapshots/{id1}")));
}

/// Two snapshots running at once into one repository (shared data between
/// them, so both race to store the same blobs): both succeed and both
/// restore exactly. (The shared file may be stored by both: dedup across
/// concurrent processes is best effort; the index keeps one location.)
#[test]
fn concurrent_snapshots_both_succeed() {
    let fx = Fixture::new();
    let shared = random_bytes(11, 6 << 20);
    let (a, b) = (fx.path("src/a"), fx.path("src/b"));
    for (dir, seed) in [(&a, 1u64), (&b, 2)] {
        write_file(&dir.join("shared.bin"), &shared);
        for i in 0..200u64 {
            write_file(
                &dir.join(format!("f{i:03}")),
                &random_bytes(seed * 1000 + i, 20_000),
            );
        }
    }
    let children: Vec<_> = [&a, &b]
        .iter()
        .map(|dir| {
            support::unlock_for(support::strata_command(), fx.strata.repo())
                .arg("--repo")
                .arg(fx.strata.repo())
                .args(["snapshot", "--json"])
                .arg(dir)
                .output_async()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (dir, name) in [(&a, "a"), (&b, "b")] {
        let out = fx.path(format!("out-{name}"));
        fx.strata
            .cmd()
            .args(["restore", "latest", "--path"])
            .arg(dir)
            .arg("--target")
            .arg(&out)
            .assert()
            .success();
        support::assert_same_tree(dir, &support::under(&out, dir));
    }
    assert_eq!(fx.strata.snapshots().len(), 2);
}

trait SpawnPiped {
    fn output_async(&mut self) -> std::process::Child;
}

impl SpawnPiped for std::process::Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Trees that were read are kept in the local cache (`STRATA_CACHE_DIR`):
/// `ls` works from it even when the tree packs are gone, and a damaged
/// cache entry is never used (the pack is read again).
#[test]
fn tree_cache_serves_and_verifies_trees() {
    let fx = Fixture::new();
    let src = fx.path("src/data");
    write_file(&src.join("a/b.txt"), b"b\n");
    fx.strata.snapshot(&[&src]);
    let cache = fx.path("cache");
    let ls = |expect_ok: bool| {
        let o = fx
            .strata
            .cmd()
            .env("STRATA_CACHE_DIR", &cache)
            .args(["ls", "-r", "latest"])
            .output()
            .unwrap();
        assert_eq!(
            o.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let listing = ls(true);
    assert!(listing.contains("/data/a/b.txt"), "{listing}");
    let cached = support::list_tree(&cache)
        .into_iter()
        .filter(|p| p.len() > 64)
        .count();
    assert!(cached >= 3, "root, data and a trees cached: {cached}");
    // Move every pack away: the listing comes from the cache alone.
    let aside = fx.path("aside");
    std::fs::create_dir_all(&aside).unwrap();
    let mut moved = Vec::new();
    for p in support::pack_files(fx.strata.repo()) {
        let to = aside.join(p.file_name().unwrap());
        std::fs::rename(&p, &to).unwrap();
        moved.push((p, to));
    }
    assert!(!moved.is_empty());
    assert_eq!(ls(true), listing);
    // Damage every cache entry: they are ignored, and without packs ls fails.
    for rel in support::list_tree(&cache) {
        let p = cache.join(&rel);
        if p.is_file() {
            std::fs::write(&p, b"garbage").unwrap();
        }
    }
    ls(false);
    for (p, to) in moved {
        std::fs::rename(to, p).unwrap();
    }
    assert_eq!(ls(true), listing);
}
