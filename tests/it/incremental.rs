//! Incremental snapshots (change detection, parents), stdin sources,
//! problem sources, exclusion, and the options of `restore`.

use crate::support;

use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{
    Compare, Fixture, assert_same_tree, assert_same_tree_with, is_root, list_tree, num,
    random_bytes, set_mtime, write_file,
};

const NO_ARGS: &[&str] = &[];

/// `n` files of assorted sizes under `root` (some nested); returns their paths.
fn make_files(root: &Path, n: u64) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = root.join(format!("d{}/f{i}.bin", i % 3));
            write_file(&p, &random_bytes(i, 1000 + (i as usize * 7919) % 200_000));
            p
        })
        .collect()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn snapshot_count(fx: &Fixture) -> usize {
    fs::read_dir(fx.strata.repo().join("snapshots"))
        .unwrap()
        .count()
}

#[test]
fn unchanged_files_are_not_reread() {
    let fx = Fixture::new();
    let src = fx.path("src/data");
    let files = make_files(&src, 20);
    let s1 = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&s1, "summary/files_new"), 20);
    let total = num(&s1, "summary/total_bytes");
    assert_eq!(num(&s1, "summary/bytes_read"), total);

    let s2 = fx.strata.snapshot(&[&src]);
    assert_eq!(s2["parent"].as_str(), Some(id(&s1).as_str()));
    assert_eq!(num(&s2, "summary/files_unchanged"), 20, "{s2}");
    assert_eq!(num(&s2, "summary/files_new"), 0);
    assert_eq!(num(&s2, "summary/files_changed"), 0);
    assert_eq!(num(&s2, "summary/bytes_read"), 0);
    assert_eq!(num(&s2, "summary/total_bytes"), total);

    // a new mtime: re-read that file only
    let touched = &files[7];
    set_mtime(touched, 1_700_000_000, 1);
    let s3 = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&s3, "summary/files_changed"), 1, "{s3}");
    assert_eq!(num(&s3, "summary/files_unchanged"), 19);
    assert_eq!(
        num(&s3, "summary/bytes_read"),
        fs::metadata(touched).unwrap().len()
    );

    // new content of the same size with the old mtime put back: the ctime
    // still gives it away
    let victim = &files[3];
    let md = fs::metadata(victim).unwrap();
    let (sec, nsec) = (
        std::os::unix::fs::MetadataExt::mtime(&md),
        std::os::unix::fs::MetadataExt::mtime_nsec(&md) as u32,
    );
    fs::write(victim, random_bytes(999, md.len() as usize)).unwrap();
    set_mtime(victim, sec, nsec);
    let s4 = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&s4, "summary/files_changed"), 1, "{s4}");
    assert_eq!(num(&s4, "summary/bytes_read"), md.len());

    // one more file
    write_file(&src.join("d1/new.txt"), b"brand new");
    let s5 = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&s5, "summary/files_new"), 1, "{s5}");
    assert_eq!(num(&s5, "summary/files_unchanged"), 20);
    assert_eq!(num(&s5, "summary/bytes_read"), 9);

    // what was reused restores exactly
    let target = fx.path("restored");
    fx.strata.restore("latest", &target, NO_ARGS);
    assert_same_tree(&src, &support::under(&target, &src));
}

#[test]
fn parent_is_the_latest_snapshot_of_the_same_host_and_paths() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    let other = fx.path("src/other");
    make_files(&data, 5);
    make_files(&other, 4);

    let a = fx.strata.snapshot(&[&data]);
    assert!(a["parent"].is_null());
    // a different set of paths has no parent
    let b = fx.strata.snapshot(&[&data, &other]);
    assert!(b["parent"].is_null(), "{b}");
    assert_eq!(num(&b, "summary/files_new"), 9);
    // same set in another order: b
    let c = fx.strata.snapshot(&[&other, &data]);
    assert_eq!(c["parent"].as_str(), Some(id(&b).as_str()));
    assert_eq!(num(&c, "summary/files_unchanged"), 9);
    // another host: no parent
    let d = fx
        .strata
        .snapshot(&[data.as_os_str(), "--host".as_ref(), "h2".as_ref()]);
    assert!(d["parent"].is_null(), "{d}");
    assert_eq!(
        num(&d, "summary/bytes_read"),
        num(&d, "summary/total_bytes")
    );
    // the same path spelled relative, or with a trailing slash: a
    let out = fx
        .strata
        .cmd()
        .current_dir(fx.dir())
        .args(["snapshot", "--json", "src/data"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let e = support::parse_json(&out);
    assert_eq!(e["parent"].as_str(), Some(id(&a).as_str()), "{e}");
    let mut slash = data.clone().into_os_string();
    slash.push("/");
    let f = fx.strata.snapshot(&[&slash]);
    assert_eq!(f["parent"].as_str(), Some(id(&e).as_str()), "{f}");
    assert_eq!(num(&f, "summary/files_unchanged"), 5);
}

#[test]
fn explicit_parent() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    let other = fx.path("src/other");
    make_files(&data, 5);
    make_files(&other, 4);
    let a = fx.strata.snapshot(&[&data]);
    let a_id = id(&a);
    let s = fx.strata.snapshot(&[
        data.as_os_str(),
        other.as_os_str(),
        "--parent".as_ref(),
        OsStr::new(&a_id[..12]),
    ]);
    assert_eq!(s["parent"].as_str(), Some(a_id.as_str()));
    assert_eq!(num(&s, "summary/files_unchanged"), 5, "{s}");
    assert_eq!(num(&s, "summary/files_new"), 4);

    let l = fx.strata.snapshot(&[
        data.as_os_str(),
        "--host".as_ref(),
        "elsewhere".as_ref(),
        "--parent".as_ref(),
        "latest".as_ref(),
    ]);
    assert_eq!(l["parent"].as_str(), Some(id(&s).as_str()));
    assert_eq!(num(&l, "summary/files_unchanged"), 5, "{l}");

    let before = snapshot_count(&fx);
    let out = fx
        .strata
        .cmd()
        .arg("snapshot")
        .arg(&data)
        .args(["--parent", "abcdef0123"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("abcdef0123"),
        "{out:?}"
    );
    assert_eq!(snapshot_count(&fx), before);
}

#[test]
fn stdin_is_stored_as_one_file() {
    let fx = Fixture::new();
    let dump = random_bytes(5, 3_000_000);
    let out = fx
        .strata
        .cmd()
        .args(["snapshot", "--json", "-", "--stdin-name", "db.sql"])
        .write_stdin(dump.clone())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s = support::parse_json(&out);
    assert_eq!(num(&s, "summary/files_new"), 1);
    assert_eq!(num(&s, "summary/total_bytes"), dump.len() as u64);
    // recorded as restic does, `/NAME`
    assert_eq!(
        fx.strata.snapshots()[0]["paths"],
        serde_json::json!(["/db.sql"])
    );

    let t = fx.path("t");
    fx.strata.restore("latest", &t, NO_ARGS);
    assert_eq!(list_tree(&t), ["db.sql"]);
    assert!(fs::read(t.join("db.sql")).unwrap() == dump);
    let t2 = fx.path("t2");
    fx.strata.restore("latest:db.sql", &t2, NO_ARGS);
    assert!(fs::read(t2.join("db.sql")).unwrap() == dump);

    // stdin next to a directory
    let data = fx.path("src/data");
    make_files(&data, 2);
    fx.strata
        .cmd()
        .args(["snapshot", "-", "--stdin-name", "x.sql"])
        .arg(&data)
        .write_stdin(&b"select 1;"[..])
        .assert()
        .success();
    let t3 = fx.path("t3");
    fx.strata.restore("latest", &t3, NO_ARGS);
    assert_eq!(fs::read(t3.join("x.sql")).unwrap(), b"select 1;");
    assert_same_tree(&data, &support::under(&t3, &data));
}

#[test]
fn failing_stdin_command_saves_nothing() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    make_files(&data, 2);
    fx.strata.snapshot(&[&data]);
    let packs = support::pack_files(fx.strata.repo());
    for cmd in [
        "printf abc; exit 3",
        "head -c 3000000 /dev/urandom; exit 1",
        "exec /does/not/exist",
    ] {
        let out = fx
            .strata
            .cmd()
            .args(["snapshot", "--stdin-from-command", cmd])
            .assert()
            .code(4)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(cmd), "stderr names the command: {err}");
        assert_eq!(snapshot_count(&fx), 1, "no snapshot saved for `{cmd}`");
        // nor any pack: what was read stayed below the pack size, and the
        // open pack is dropped, not sealed
        assert_eq!(
            support::pack_files(fx.strata.repo()),
            packs,
            "packs saved for `{cmd}`"
        );
        assert_eq!(
            fs::read_dir(fx.strata.repo().join("tmp")).unwrap().count(),
            0,
            "temp files left by `{cmd}`"
        );
    }

    // a succeeding command is stored and restores exactly
    let payload = random_bytes(77, 2_500_000);
    let file = fx.path("payload.bin");
    fs::write(&file, &payload).unwrap();
    let cmd = format!("cat '{}'", file.display());
    let s = fx.strata.snapshot(&[
        "--stdin-from-command",
        cmd.as_str(),
        "--stdin-name",
        "dump.bin",
    ]);
    assert_eq!(num(&s, "summary/total_bytes"), payload.len() as u64);
    assert_eq!(snapshot_count(&fx), 2);
    let t = fx.path("t");
    fx.strata.restore("latest", &t, NO_ARGS);
    assert_eq!(list_tree(&t), ["dump.bin"]);
    assert!(fs::read(t.join("dump.bin")).unwrap() == payload);
}

#[test]
fn missing_source_path_fails_clearly() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    make_files(&data, 2);
    let missing = fx.path("src/not-there");
    for args in [vec![missing.clone()], vec![data.clone(), missing.clone()]] {
        let out = fx
            .strata
            .cmd()
            .arg("snapshot")
            .args(&args)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("not-there"), "{err}");
        assert_eq!(snapshot_count(&fx), 0);
    }
}

#[test]
fn fifos_are_stored_never_opened() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    make_files(&data, 2);
    support::mkfifo(&data.join("pipe"), 0o644);
    support::mkfifo(&data.join("locked-pipe"), 0o000);
    // no writer: opening either would block until the timeout
    let out = fx
        .strata
        .cmd()
        .args(["snapshot", "--json"])
        .arg(&data)
        .timeout(Duration::from_secs(20))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let s = support::parse_json(&out);
    assert_eq!(num(&s, "summary/other"), 2, "{s}");
    assert_eq!(num(&s, "summary/files_new"), 2);
    let t = fx.path("t");
    fx.strata.restore("latest", &t, NO_ARGS);
    assert_same_tree(&data, &support::under(&t, &data));
}

#[test]
fn unreadable_file_is_skipped_with_a_warning() {
    if is_root() {
        support::skip(
            "STRATA_REQUIRE_NONROOT_TESTS",
            "running as root, every file is readable",
        );
        return;
    }
    let fx = Fixture::new();
    let data = fx.path("src/data");
    make_files(&data, 2);
    let secret = data.join("secret");
    fs::write(&secret, b"x").unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let s = fx.strata.snapshot_code(&[&data], 3);
    assert_eq!(num(&s, "summary/warnings"), 1, "{s}");
    assert!(s["warnings"][0].as_str().unwrap().contains("secret"), "{s}");
    let t = fx.path("t");
    fx.strata.restore("latest", &t, NO_ARGS);
    assert!(!support::under(&t, &secret).exists());
    assert!(support::under(&t, &data).join("d0/f0.bin").exists());
}

#[test]
fn exclude_globs_and_markers() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    for f in [
        "keep.txt",
        "a.log",
        "sub/b.log",
        "sub/keep.txt",
        "sub/build/out.o",
        "build/out.o",
        "cache/.nobackup",
        "cache/big.bin",
        "sub/cache2/.nobackup",
        "sub/cache2/x",
    ] {
        write_file(&data.join(f), f.as_bytes());
    }
    let build = data.join("build");
    let s = fx.strata.snapshot(&[
        data.as_os_str(),
        "--exclude".as_ref(),
        "*.log".as_ref(),
        "--exclude".as_ref(),
        build.as_os_str(),
        "--exclude-if-present".as_ref(),
        ".nobackup".as_ref(),
    ]);
    assert_eq!(num(&s, "summary/files_new"), 3, "{s}");
    let t = fx.path("t");
    fx.strata.restore("latest", &t, NO_ARGS);
    assert_eq!(
        support::list_under(&t, &data),
        [
            "keep.txt",
            "sub/",
            "sub/build/",
            "sub/build/out.o",
            "sub/keep.txt",
        ]
    );
}

/// A tree for the restore tests: `data/{top.txt, a.log, sub/{x.txt, y.log,
/// deep/z.txt}, other/w.txt}` with distinct mtimes.
fn restore_fixture() -> (Fixture, PathBuf) {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    for (i, f) in [
        "top.txt",
        "a.log",
        "sub/x.txt",
        "sub/y.log",
        "sub/deep/z.txt",
        "other/w.txt",
    ]
    .iter()
    .enumerate()
    {
        let p = data.join(f);
        write_file(&p, format!("content of {f}").as_bytes());
        set_mtime(&p, 1_600_000_000 + i as i64, 1000 * i as u32);
    }
    fx.strata.snapshot(&[&data]);
    (fx, data)
}

#[test]
fn restore_subpath() {
    let (fx, data) = restore_fixture();
    let t = fx.path("t");
    let sub = format!("latest:{}/sub", data.display());
    fx.strata.restore(&sub, &t, NO_ARGS);
    assert_eq!(list_tree(&t), ["deep/", "deep/z.txt", "x.txt", "y.log"]);
    let no_root = Compare {
        root_meta: false,
        ..Compare::default()
    };
    assert_same_tree_with(&data.join("sub"), &t, &no_root);

    let t2 = fx.path("t2");
    let z = format!("latest:{}/sub/deep/z.txt", data.display());
    fx.strata.restore(&z, &t2, NO_ARGS);
    assert_eq!(list_tree(&t2), ["z.txt"]);
    assert_same_tree(&data.join("sub/deep/z.txt"), &t2.join("z.txt"));

    let out = fx
        .strata
        .cmd()
        .arg("restore")
        .arg(format!("latest:{}/nope", data.display()))
        .arg("--target")
        .arg(fx.path("t3"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    assert!(!fx.path("t3").exists());
}

#[test]
fn restore_include_and_exclude() {
    let (fx, data) = restore_fixture();
    let t = fx.path("t");
    fx.strata.restore("latest", &t, &["--include", "data/sub"]);
    assert_eq!(
        support::list_under(&t, &data),
        [
            "sub/",
            "sub/deep/",
            "sub/deep/z.txt",
            "sub/x.txt",
            "sub/y.log",
        ]
    );
    assert_same_tree(&data.join("sub"), &support::under(&t, &data).join("sub"));

    let t2 = fx.path("t2");
    fx.strata.restore("latest", &t2, &["--include", "**/*.txt"]);
    assert_eq!(
        support::list_under(&t2, &data),
        [
            "other/",
            "other/w.txt",
            "sub/",
            "sub/deep/",
            "sub/deep/z.txt",
            "sub/x.txt",
            "top.txt",
        ]
    );

    let t3 = fx.path("t3");
    fx.strata.restore(
        "latest",
        &t3,
        &["--exclude", "**/*.log", "--exclude", "data/other"],
    );
    assert_eq!(
        support::list_under(&t3, &data),
        [
            "sub/",
            "sub/deep/",
            "sub/deep/z.txt",
            "sub/x.txt",
            "top.txt",
        ]
    );
    for f in ["top.txt", "sub/x.txt", "sub/deep/z.txt"] {
        assert_same_tree(&data.join(f), &support::under(&t3, &data).join(f));
    }
}

#[test]
fn restore_overwrite_modes() {
    let (fx, data) = restore_fixture();
    let t = fx.path("t");
    let d = support::under(&t, &data);
    let read = |f: &str| fs::read_to_string(d.join(f)).unwrap();
    // prepare the target: same size and mtime but other bytes (top.txt),
    // another size (a.log), untouched (sub/x.txt), missing (other/w.txt)
    let prepare = || {
        fx.strata.restore("latest", &t, NO_ARGS);
        let top = d.join("top.txt");
        let md = fs::metadata(&top).unwrap();
        fs::write(&top, "CONTENT OF TOP.TXT").unwrap();
        set_mtime(
            &top,
            std::os::unix::fs::MetadataExt::mtime(&md),
            std::os::unix::fs::MetadataExt::mtime_nsec(&md) as u32,
        );
        fs::write(d.join("a.log"), "changed").unwrap();
        fs::remove_file(d.join("other/w.txt")).unwrap();
    };

    prepare();
    let r = fx.strata.restore("latest", &t, &["--overwrite", "never"]);
    assert_eq!(read("top.txt"), "CONTENT OF TOP.TXT");
    assert_eq!(read("a.log"), "changed");
    assert_eq!(read("other/w.txt"), "content of other/w.txt");
    assert_eq!(num(&r, "report/skipped"), 5, "{r}");
    assert_eq!(num(&r, "report/files"), 1, "{r}");

    prepare();
    let r = fx
        .strata
        .restore("latest", &t, &["--overwrite", "if-changed"]);
    assert_eq!(
        read("top.txt"),
        "CONTENT OF TOP.TXT",
        "size and mtime match"
    );
    assert_eq!(read("a.log"), "content of a.log");
    assert_eq!(read("other/w.txt"), "content of other/w.txt");
    assert_eq!(num(&r, "report/skipped"), 4, "{r}");
    assert_eq!(num(&r, "report/files"), 2, "{r}");

    prepare();
    let r = fx.strata.restore("latest", &t, &["--overwrite", "always"]);
    assert_eq!(num(&r, "report/skipped"), 0, "{r}");
    assert_eq!(num(&r, "report/files"), 6, "{r}");
    assert_same_tree(&data, &d);
}

/// Overwriting replaces a file; it never writes through an existing hard
/// link or symlink (to a file outside the target), and the result has the
/// snapshot's metadata only (no stale xattrs).
#[test]
fn restore_overwrite_replaces_instead_of_writing_through() {
    let (fx, data) = restore_fixture();
    let t = fx.path("t");
    let outside = fx.path("outside.txt");
    let outside2 = fx.path("outside2.txt");
    let xattrs = support::user_xattrs_supported(fx.dir());
    for mode in ["always", "if-changed"] {
        fx.strata.restore("latest", &t, NO_ARGS);
        fs::write(&outside, "OUTSIDE, 23 bytes long!").unwrap();
        fs::write(&outside2, "OUTSIDE 2").unwrap();
        let d = support::under(&t, &data);
        let top = d.join("top.txt");
        fs::remove_file(&top).unwrap();
        fs::hard_link(&outside, &top).unwrap();
        let y = d.join("sub/y.log");
        fs::remove_file(&y).unwrap();
        std::os::unix::fs::symlink(&outside2, &y).unwrap();
        let x = d.join("sub/x.txt");
        fs::write(&x, "changed x").unwrap();
        if xattrs {
            xattr::set(&x, "user.stale", b"1").unwrap();
        }
        fx.strata.restore("latest", &t, &["--overwrite", mode]);
        assert_eq!(
            fs::read_to_string(&outside).unwrap(),
            "OUTSIDE, 23 bytes long!",
            "--overwrite {mode} wrote through a hard link"
        );
        assert_eq!(fs::read_to_string(&outside2).unwrap(), "OUTSIDE 2");
        assert_same_tree(&data, &d);
    }
}

/// A missing name of a hard-linked file is linked to the name already in
/// place when that one is unchanged (`if-changed`), not made a copy.
#[test]
fn restore_if_changed_keeps_hard_links() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    write_file(&data.join("a/f"), &random_bytes(1, 100_000));
    fs::create_dir(data.join("b")).unwrap();
    fs::hard_link(data.join("a/f"), data.join("b/g")).unwrap();
    fs::hard_link(data.join("a/f"), data.join("h")).unwrap();
    write_file(&data.join("c.txt"), b"c");
    fx.strata.snapshot(&[&data]);
    let t = fx.path("t");
    fx.strata.restore("latest", &t, NO_ARGS);
    let d = support::under(&t, &data);
    assert_same_tree(&data, &d);
    fs::remove_file(d.join("b/g")).unwrap();
    fs::remove_file(d.join("h")).unwrap();
    let r = fx
        .strata
        .restore("latest", &t, &["--overwrite", "if-changed"]);
    assert_eq!(num(&r, "report/skipped"), 2, "{r}");
    assert_same_tree(&data, &d);
}

#[test]
fn restore_dry_run_writes_nothing() {
    let (fx, data) = restore_fixture();
    let t = fx.path("t");
    let r = fx.strata.restore("latest", &t, &["--dry-run"]);
    assert_eq!(r["dry_run"], true);
    assert_eq!(num(&r, "report/files"), 6, "{r}");
    // data, sub, deep, other, and the directories leading to data
    let ancestors = data.components().count() as u64 - 2;
    assert_eq!(num(&r, "report/dirs"), 4 + ancestors, "{r}");
    assert!(!t.exists(), "dry run created the target");

    fs::create_dir(&t).unwrap();
    let top = support::under(&t, &data).join("top.txt");
    write_file(&top, b"mine");
    let before = list_tree(&t);
    fx.strata.restore("latest", &t, &["--dry-run"]);
    assert_eq!(list_tree(&t), before);
    assert_eq!(fs::read(&top).unwrap(), b"mine");
}

#[test]
fn restore_into_a_file_fails() {
    let (fx, data) = restore_fixture();
    let t = fx.path("target-file");
    fs::write(&t, b"precious").unwrap();
    let out = fx
        .strata
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&t)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("target-file"), "{err}");
    assert_eq!(fs::read(&t).unwrap(), b"precious");

    // a symlink to a file is no better; a symlink to a directory is fine
    let link = fx.path("link-to-file");
    std::os::unix::fs::symlink(&t, &link).unwrap();
    fx.strata
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&link)
        .assert()
        .code(1);
    assert_eq!(fs::read(&t).unwrap(), b"precious");
    let dir = fx.mkdir("real-dir");
    let link = fx.path("link-to-dir");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    fx.strata.restore("latest", &link, NO_ARGS);
    assert_same_tree(&data, &support::under(&dir, &data));
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
}

#[test]
fn latest_honours_host_and_tag() {
    let fx = Fixture::new();
    let data = fx.path("src/data");
    let file = data.join("version.txt");
    let snap = |v: &str, extra: &[&str]| {
        write_file(&file, v.as_bytes());
        let mut args: Vec<&OsStr> = vec![data.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        fx.strata.snapshot(&args);
    };
    snap("v1", &["--host", "h1", "--tag", "daily"]);
    snap("v2", &["--host", "h2", "--tag", "weekly", "--tag", "daily"]);
    snap("v3", &["--host", "h1"]);

    let restored = |name: &str, args: &[&str]| -> String {
        let t = fx.path(name);
        fx.strata.restore("latest", &t, args);
        fs::read_to_string(support::under(&t, &file)).unwrap()
    };
    assert_eq!(restored("a", &[]), "v3");
    assert_eq!(restored("b", &["--host", "h2"]), "v2");
    assert_eq!(restored("c", &["--host", "h1"]), "v3");
    assert_eq!(restored("d", &["--tag", "daily"]), "v2");
    assert_eq!(restored("e", &["--host", "h1", "--tag", "daily"]), "v1");
    assert_eq!(restored("f", &["--tag", "daily", "--tag", "weekly"]), "v2");

    let out = fx
        .strata
        .cmd()
        .args([
            "restore", "latest", "--host", "h1", "--tag", "weekly", "--target",
        ])
        .arg(fx.path("g"))
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no snapshot matches"),
        "{out:?}"
    );
    assert!(!fx.path("g").exists());
}
