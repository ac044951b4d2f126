//! Restore at the speed of tar -x (issue 9): batches smaller than the tree
//! (hard links across batches, inline, empty, sparse and multi-chunk
//! files, over a fresh and an existing target), a non-root user restoring
//! over read-only directories, and `--delete` (dry run, never leaving the
//! target, refused with --include).

use crate::support;

use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::*;

/// Compare contents and every piece of metadata below the roots.
fn below_root() -> Compare {
    Compare {
        root_meta: false,
        ..Compare::default()
    }
}

/// `SNAPSHOT:PATH`.
fn spec(snapshot: &str, path: &Path) -> String {
    format!("{snapshot}:{}", path.display())
}

/// Every directory below `root` (and `root`), deepest last.
fn dirs_of(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    out.extend(
        list_tree(root)
            .into_iter()
            .filter(|p| p.ends_with('/'))
            .map(|p| root.join(p.trim_end_matches('/'))),
    );
    out
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// `lchown -R`.
fn chown_tree(root: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid)).unwrap();
    for p in list_tree(root) {
        std::os::unix::fs::lchown(root.join(p.trim_end_matches('/')), Some(uid), Some(gid))
            .unwrap();
    }
}

/// A tree of every kind of file a batch handles, spread over directories
/// so that with small batches hard-link groups, duplicates and big files
/// fall into different batches.
fn build_mixed(src: &Path) {
    let mut rng = Rng::new(9);
    for d in 0..4 {
        let dir = src.join(format!("d{d}"));
        fs::create_dir_all(dir.join("sub")).unwrap();
        for i in 0..6 {
            let n = rng.range(1, 4000) as usize;
            write_file(&dir.join(format!("small{i}.txt")), &rng.text(n));
        }
        write_file(&dir.join("empty"), b"");
        write_file(&dir.join("sub/empty2"), b"");
        // several chunks each (chunks of 4-16 KiB), the same bytes twice
        write_file(&dir.join("big.bin"), &random_bytes(100 + d, 150_000));
        write_file(&dir.join("sub/big-copy.bin"), &random_bytes(100, 150_000));
        std::os::unix::fs::symlink("../small0.txt", dir.join("sub/link")).unwrap();
    }
    // sparse: two data regions in 3 MiB
    let f = fs::File::create(src.join("d1/sparse")).unwrap();
    f.set_len(3 << 20).unwrap();
    f.write_all_at(&random_bytes(7, 40_000), 0).unwrap();
    f.write_all_at(&random_bytes(8, 70_000), 2 << 20).unwrap();
    drop(f);
    // hard links: a big file and a small one, names in the first and last
    // directories
    fs::hard_link(src.join("d0/big.bin"), src.join("d3/sub/big-link")).unwrap();
    fs::hard_link(src.join("d0/big.bin"), src.join("d2/big-link2")).unwrap();
    fs::hard_link(src.join("d0/small3.txt"), src.join("d3/small-link")).unwrap();
    fs::hard_link(src.join("d1/empty"), src.join("d3/sub/empty-link")).unwrap();
    mkfifo(&src.join("d2/fifo"), 0o640);
    for (i, p) in dirs_of(src).iter().enumerate() {
        if p != src {
            chmod(p, 0o750 - (i as u32 % 2) * 0o200);
        }
    }
    for (i, p) in list_files(src).iter().enumerate() {
        let p = src.join(p);
        if !fs::symlink_metadata(&p).unwrap().is_symlink() {
            set_mtime(&p, 1_600_000_000 + i as i64, i as u32 * 1000);
        }
    }
}

#[test]
fn batches_smaller_than_the_tree_restore_it_exactly() {
    let fx = Fixture::with_init(&[
        "--chunk-min",
        "4096",
        "--chunk-avg",
        "8192",
        "--chunk-max",
        "16384",
        "--pack-size-mib",
        "1",
    ]);
    let src = fx.mkdir("src");
    build_mixed(&src);
    fx.strata.snapshot(&[&src]);
    let restore = |target: &Path, batch: &str| {
        let out = fx
            .strata
            .cmd()
            .env("STRATA_RESTORE_BATCH", batch)
            .args(["restore", &spec("latest", &src), "--json", "--verify"])
            .arg("--target")
            .arg(target)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        parse_json(&out)
    };

    // a fresh target, batches of 7 (and of 1: every link in its own batch)
    for batch in ["7", "1"] {
        let out = fx.path(format!("out{batch}"));
        let r = restore(&out, batch);
        assert_same_tree_with(&src, &out, &below_root());
        assert_eq!(num(&r, "report/files"), 4 * 10 + 1, "{r}");
        assert_eq!(num(&r, "report/verified"), 4 * 10 + 1, "{r}");
        // 4 hard links, 4 symlinks, a fifo
        assert_eq!(num(&r, "report/other"), 9, "{r}");
    }

    // over an existing target whose files were changed, cut or replaced:
    // written under temp names and renamed into place, none left behind
    let out = fx.path("out7");
    fs::write(out.join("d0/big.bin"), b"changed").unwrap(); // and its links
    fs::write(out.join("d2/small1.txt"), b"changed too").unwrap();
    fs::remove_file(out.join("d1/sparse")).unwrap();
    fs::remove_file(out.join("d3/small-link")).unwrap();
    restore(&out, "7");
    assert_same_tree_with(&src, &out, &below_root());
    let leftovers: Vec<String> = list_tree(&out)
        .into_iter()
        .filter(|p| p.contains(".strata-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn include_and_exclude_across_batches_create_only_what_they_select() {
    let fx = Fixture::new();
    let src = fx.mkdir("src");
    build_mixed(&src);
    fx.strata.snapshot(&[&src]);
    let out = fx.path("out");
    fx.strata
        .cmd()
        .env("STRATA_RESTORE_BATCH", "2")
        .args(["restore", &spec("latest", &src), "--target"])
        .arg(&out)
        .args(["--include", "big*", "--exclude", "d1"])
        .assert()
        .success();
    assert_eq!(
        list_tree(&out),
        vec![
            "d0/",
            "d0/big.bin",
            "d0/sub/",
            "d0/sub/big-copy.bin",
            "d2/",
            "d2/big-link2",
            "d2/big.bin",
            "d2/sub/",
            "d2/sub/big-copy.bin",
            "d3/",
            "d3/big.bin",
            "d3/sub/",
            "d3/sub/big-copy.bin",
            "d3/sub/big-link",
        ]
    );
    assert_eq!(
        fs::read(out.join("d3/sub/big-link")).unwrap(),
        fs::read(src.join("d0/big.bin")).unwrap()
    );
}

/// A non-root owner restores over a tree whose directories are read-only
/// (0555): each directory is opened up (u+wx) before anything is written
/// into it and gets the snapshot's mode back at the end.
#[test]
fn non_root_restores_over_read_only_directories() {
    if !is_root() {
        support::skip(
            "STRATA_REQUIRE_ROOT_TESTS",
            "needs root (to run the restore as nobody)",
        );
        return;
    }
    const NOBODY: u32 = 65534;
    let fx = Fixture::with_init(&["--no-encryption"]);
    chmod(fx.dir(), 0o755);
    let src = fx.mkdir("src");
    build_mixed(&src);
    fs::remove_file(src.join("d2/fifo")).unwrap();
    chown_tree(&src, NOBODY, NOBODY);
    fx.strata.snapshot(&[&src]);
    let target = fx.path("target");
    fx.strata
        .restore(&spec("latest", &src), &target, &[] as &[&str]);
    assert_same_tree_with(&src, &target, &below_root());

    // new contents in the source, every directory of both trees 0555
    fs::write(src.join("d0/small2.txt"), b"new contents").unwrap();
    fs::write(src.join("d3/sub/big-copy.bin"), random_bytes(5, 90_000)).unwrap();
    write_file(&src.join("d1/sub/new.txt"), b"a new file");
    chown_tree(&src, NOBODY, NOBODY);
    for d in dirs_of(&src).iter().rev() {
        chmod(d, 0o555);
    }
    fx.strata.snapshot(&[&src]);
    chown_tree(&target, NOBODY, NOBODY);
    for d in dirs_of(&target).iter().rev() {
        chmod(d, 0o555);
    }
    chown_tree(fx.strata.repo(), NOBODY, NOBODY);

    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .env("STRATA_CACHE_DIR", "")
        .env_remove("STRATA_REPO")
        .env("HOME", "/nonexistent")
        .arg("--repo")
        .arg(fx.strata.repo())
        .args(["restore", &spec("latest", &src), "--json", "--target"])
        .arg(&target)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore as nobody: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = parse_json(&out.stdout);
    assert!(
        r["report"]["warnings"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert_same_tree_with(&src, &target, &below_root());
    for d in dirs_of(&target) {
        let m = fs::metadata(&d).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o555, "{d:?}");
        assert_eq!(m.uid(), NOBODY, "{d:?}");
    }
}

#[test]
fn delete_removes_what_the_snapshot_does_not_hold_and_never_leaves_the_target() {
    let fx = Fixture::new();
    let src = fx.mkdir("src");
    write_file(&src.join("a.txt"), b"alpha");
    write_file(&src.join("keep/b.txt"), &random_bytes(3, 20_000));
    write_file(&src.join("keep/deep/c.txt"), b"gamma");
    fx.strata.snapshot(&[&src]);
    let target = fx.path("target");
    fx.strata
        .restore(&spec("latest", &src), &target, &[] as &[&str]);

    // outside the target: must survive
    let outside = fx.mkdir("outside");
    write_file(&outside.join("precious.txt"), b"not yours");
    // extras: a file, a directory tree (one read-only), links out of the
    // target, a directory where the snapshot has a file
    write_file(&target.join("extra.txt"), b"x");
    write_file(&target.join("keep/old/one.txt"), b"1");
    write_file(&target.join("keep/old/ro/two.txt"), b"2");
    chmod(&target.join("keep/old/ro"), 0o555);
    std::os::unix::fs::symlink(outside.join("precious.txt"), target.join("keep/link-out")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("keep/deep/dir-out")).unwrap();
    fs::remove_file(target.join("a.txt")).unwrap();
    write_file(&target.join("a.txt/inner"), b"in the way");
    let extras = [
        "a.txt",
        "a.txt/inner",
        "extra.txt",
        "keep/deep/dir-out",
        "keep/link-out",
        "keep/old",
        "keep/old/one.txt",
        "keep/old/ro",
        "keep/old/ro/two.txt",
    ];
    let before = list_tree(&target);

    // refused with --include / --exclude, nothing touched
    for pat in ["--include", "--exclude"] {
        let o = fx
            .strata
            .cmd()
            .args(["restore", &spec("latest", &src), "--delete", pat, "*.txt"])
            .arg("--target")
            .arg(&target)
            .output()
            .unwrap();
        let line = one_line_error(&o, "--delete with a pattern");
        assert!(line.contains("--delete"), "{line}");
    }
    assert_eq!(list_tree(&target), before);

    // dry run: reported, nothing removed
    let r = fx
        .strata
        .restore(&spec("latest", &src), &target, &["--delete", "--dry-run"]);
    assert_eq!(num(&r, "report/deleted"), extras.len() as u64, "{r}");
    let mut listed: Vec<String> = r["report"]["deleted_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            Path::new(p.as_str().unwrap())
                .strip_prefix(&target)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    listed.sort();
    assert_eq!(listed, extras);
    assert_eq!(list_tree(&target), before);
    let text = fx
        .strata
        .cmd()
        .args(["restore", &spec("latest", &src), "--delete", "--dry-run"])
        .arg("--target")
        .arg(&target)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains(&format!("would delete {} paths", extras.len())),
        "{text}"
    );
    assert!(text.contains("keep/link-out"), "{text}");
    assert_eq!(list_tree(&target), before);

    // for real
    let r = fx
        .strata
        .restore(&spec("latest", &src), &target, &["--delete"]);
    assert_eq!(num(&r, "report/deleted"), extras.len() as u64, "{r}");
    assert_same_tree_with(&src, &target, &below_root());
    assert_eq!(
        fs::read(outside.join("precious.txt")).unwrap(),
        b"not yours"
    );
    assert_eq!(list_tree(&outside), vec!["precious.txt"]);
}
