//! Paths as users expect them (issue 9): each source under its absolute
//! path, `snapshot /` on a chroot-like tree, two sources with the same last
//! name, subpath restores, stdin as a top-level name, non-UTF-8 names
//! through `ls` -> `cat` -> `restore`, and restic's glob rules through
//! `snapshot --exclude`, `restore --include/--exclude` and `find`.

use crate::support;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use support::*;

/// `strata ls TARGET ARGS`, which must succeed: its lines.
fn ls(st: &Strata, target: impl AsRef<OsStr>, args: &[&str]) -> Vec<String> {
    let out = st
        .cmd()
        .arg("ls")
        .arg(target)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .expect("ls prints UTF-8 (names escaped)")
        .lines()
        .map(str::to_string)
        .collect()
}

fn spec(snapshot: &str, path: &Path) -> OsString {
    let mut s = OsString::from(format!("{snapshot}:"));
    s.push(path);
    s
}

#[test]
fn sources_keep_their_absolute_paths_and_subpaths_restore_their_contents() {
    let fx = Fixture::new();
    // two sources with the same last name, in different places
    let a = fx.mkdir("srv/app/config");
    let b = fx.mkdir("etc/app/config");
    write_file(&a.join("a.toml"), b"a = 1\n");
    write_file(&b.join("b.toml"), b"b = 2\n");
    write_file(&a.join("deep/x.txt"), &random_bytes(1, 70_000));
    fx.strata.snapshot(&[&a, &b]);
    let paths: Vec<String> = fx.strata.snapshots()[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let mut want = vec![
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
    ];
    want.sort();
    assert_eq!(paths, want, "recorded paths are the absolute sources");

    // the whole snapshot: each source under its absolute path
    let out = fx.path("out");
    fx.strata.restore("latest", &out, &[] as &[&str]);
    assert_eq!(contents(&under(&out, &a)), contents(&a));
    assert_eq!(contents(&under(&out, &b)), contents(&b));
    // nothing but the sources and the directories above them
    let top: Vec<String> = list_tree(&out)
        .into_iter()
        .filter(|p| p.matches('/').count() == 1)
        .collect();
    assert_eq!(
        top,
        vec![format!(
            "{}/",
            a.components().nth(1).unwrap().as_os_str().to_string_lossy()
        )]
    );

    // a subpath: the directory's contents go into the target
    let sub = fx.path("sub");
    fx.strata
        .cmd()
        .arg("restore")
        .arg(spec("latest", &a))
        .arg("--target")
        .arg(&sub)
        .assert()
        .success();
    assert_eq!(contents(&sub), contents(&a));
    // a single file: under its own name
    let one = fx.path("one");
    fx.strata
        .cmd()
        .arg("restore")
        .arg(spec("latest", &a.join("deep/x.txt")))
        .arg("--target")
        .arg(&one)
        .assert()
        .success();
    assert_eq!(list_tree(&one), vec!["x.txt"]);
    assert_eq!(
        std::fs::read(one.join("x.txt")).unwrap(),
        random_bytes(1, 70_000)
    );

    // ls and cat speak the same paths
    let listing = ls(&fx.strata, spec("latest", &a), &["-r"]);
    let deep = a.join("deep/x.txt").to_string_lossy().into_owned();
    assert!(listing.contains(&deep), "{listing:?}");
    let cat = fx
        .strata
        .cmd()
        .arg("cat")
        .arg(spec("latest", &b.join("b.toml")))
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, b"b = 2\n");
    // the directories above a source carry their own metadata
    let above = ls(&fx.strata, spec("latest", a.parent().unwrap()), &["--json"]);
    assert_eq!(
        above.len(),
        1,
        "only the entries that lead to sources: {above:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&above[0]).unwrap();
    assert_eq!(v["path"], a.to_string_lossy().as_ref());
    assert_eq!(v["type"], "dir");
}

#[test]
fn nested_sources_are_refused_and_stdin_is_a_top_level_name() {
    let fx = Fixture::new();
    let d = fx.mkdir("data");
    write_file(&d.join("f"), b"f");
    let o = fx
        .strata
        .cmd()
        .arg("snapshot")
        .arg(&d)
        .arg(d.join("f"))
        .output()
        .unwrap();
    let line = one_line_error(&o, "nested sources");
    assert!(line.contains("inside"), "{line}");

    fx.strata
        .cmd()
        .args(["snapshot", "--json", "-", "--stdin-name", "db.sql"])
        .arg(&d)
        .write_stdin("CREATE TABLE t;\n")
        .assert()
        .success();
    let v = &fx.strata.snapshots()[0];
    let paths: Vec<&str> = v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/db.sql"), "{paths:?}");
    let cat = fx
        .strata
        .cmd()
        .args(["cat", "latest:/db.sql"])
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, b"CREATE TABLE t;\n");
    let top = ls(&fx.strata, "latest", &[]);
    assert!(top.contains(&"/db.sql".to_string()), "{top:?}");
    let out = fx.path("out");
    fx.strata.restore("latest", &out, &[] as &[&str]);
    assert_eq!(
        std::fs::read(out.join("db.sql")).unwrap(),
        b"CREATE TABLE t;\n"
    );
    assert_eq!(contents(&under(&out, &d)), contents(&d));
}

#[test]
fn the_parent_is_the_last_snapshot_of_the_same_absolute_paths() {
    let fx = Fixture::new();
    let a = fx.mkdir("one/data");
    let b = fx.mkdir("two/data");
    for i in 0..20 {
        write_file(&a.join(format!("{i}.txt")), format!("a{i}").as_bytes());
        write_file(&b.join(format!("{i}.txt")), format!("b{i}").as_bytes());
    }
    fx.strata.snapshot(&[&a]);
    // same last name, other absolute path: not a parent
    let s = fx.strata.snapshot(&[&b]);
    assert_eq!(num(&s, "summary/files_unchanged"), 0, "{s}");
    let s = fx.strata.snapshot(&[&a]);
    assert_eq!(num(&s, "summary/files_unchanged"), 20, "{s}");
    // spelled differently, same normalised path: same parent
    let mut odd = a.clone().into_os_string();
    odd.push("/./../data/");
    let s = fx.strata.snapshot(&[&odd]);
    assert_eq!(num(&s, "summary/files_unchanged"), 20, "{s}");
}

/// The dynamic libraries `bin` needs, as absolute paths (ldd's output).
fn shared_libraries(bin: &Path) -> Option<Vec<PathBuf>> {
    let o = std::process::Command::new("ldd").arg(bin).output().ok()?;
    let text = String::from_utf8(o.stdout).ok()?;
    Some(
        text.split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(PathBuf::from)
            .collect(),
    )
}

#[test]
fn snapshot_of_slash_holds_the_roots_contents_at_the_top() {
    if !is_root() {
        support::skip("STRATA_REQUIRE_ROOT_TESTS", "chroot needs root");
        return;
    }
    let fx = Fixture::new();
    let root = fx.mkdir("chroot");
    write_file(&root.join("etc/hosts"), b"127.0.0.1 localhost\n");
    write_file(&root.join("root/.profile"), b"export PS1='# '\n");
    write_file(&root.join("srv/bridge/events/1.json"), b"{\"id\":1}\n");
    std::os::unix::fs::symlink("../etc/hosts", root.join("srv/hosts")).unwrap();
    // the binary and its libraries, excluded from the snapshot
    let Some(libs) = shared_libraries(&bin()) else {
        support::skip("STRATA_REQUIRE_ROOT_TESTS", "no ldd");
        return;
    };
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(bin(), root.join("bin/strata")).unwrap();
    for l in &libs {
        let dst = under(&root, l);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(l, &dst).unwrap();
    }
    let mut excludes = vec!["/bin".to_string(), "/cache".to_string()];
    for l in &libs {
        let top = l.components().nth(1).unwrap().as_os_str().to_string_lossy();
        excludes.push(format!("/{top}"));
    }
    let chroot = |args: &[&str]| {
        let o = std::process::Command::new("chroot")
            .arg(&root)
            .args(["/bin/strata", "--repo", "/repo"])
            .args(args)
            // an unencrypted repository: no passphrase (refused with one)
            .env("STRATA_CACHE_DIR", "/cache")
            .env_remove("STRATA_PASSWORD")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "chroot strata {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    chroot(&["init", "--no-encryption"]);
    let mut args = vec!["snapshot", "/"];
    for e in &excludes {
        args.extend(["--exclude", e.as_str()]);
    }
    chroot(&args);

    // From outside: the repository (inside the chroot) was skipped, and the
    // root's contents sit at the top: /etc/hosts, not /root/etc/hosts.
    let outside = Strata::new(root.join("repo"));
    let top = ls(&outside, "latest", &[]);
    assert_eq!(top, ["/etc", "/root", "/srv"]);
    let cat = outside
        .cmd()
        .args(["cat", "latest:/etc/hosts"])
        .assert()
        .success();
    assert_eq!(cat.get_output().stdout, b"127.0.0.1 localhost\n");
    let out = fx.path("out");
    outside.restore("latest", &out, &[] as &[&str]);
    for rel in ["etc/hosts", "root/.profile", "srv/bridge/events/1.json"] {
        assert_eq!(
            std::fs::read(out.join(rel)).unwrap(),
            std::fs::read(root.join(rel)).unwrap(),
            "{rel}"
        );
    }
    assert_eq!(
        std::fs::read_link(out.join("srv/hosts")).unwrap(),
        PathBuf::from("../etc/hosts")
    );
    assert!(!out.join("bin").exists() && !out.join("repo").exists());
}

#[test]
fn non_utf8_names_go_through_ls_cat_and_restore() {
    let fx = Fixture::new();
    let d = fx.mkdir("data");
    let name = OsStr::from_bytes(b"caf\xe9 \\ \x01.txt");
    let dir = OsStr::from_bytes(b"d\xff");
    write_file(&d.join(name), b"latin-1 name\n");
    write_file(&d.join(dir).join("inner.txt"), b"inner\n");
    fx.strata.snapshot(&[&d]);

    // printed escaped, one line each, never lossy
    let printed = ls(&fx.strata, spec("latest", &d), &[]);
    let base = d.to_string_lossy();
    let want_file = format!("{base}/caf\\xe9 \\\\ \\x01.txt");
    let want_dir = format!("{base}/d\\xff");
    assert_eq!(printed, vec![want_file.clone(), want_dir.clone()]);
    // --json uses the same spelling
    let json = ls(&fx.strata, spec("latest", &d), &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(v["path"], want_file.as_str());
    assert_eq!(v["name"], "caf\\xe9 \\\\ \\x01.txt");

    // the printed name is accepted back, and so are the raw bytes
    for arg in [
        OsString::from(format!("latest:{want_file}")),
        spec("latest", &d.join(name)),
    ] {
        let cat = fx.strata.cmd().arg("cat").arg(&arg).assert().success();
        assert_eq!(cat.get_output().stdout, b"latin-1 name\n", "{arg:?}");
    }
    let inner = ls(&fx.strata, format!("latest:{want_dir}"), &[]);
    assert_eq!(inner, vec![format!("{want_dir}/inner.txt")]);

    // restore of an escaped subpath, and of everything
    let out = fx.path("out");
    fx.strata
        .cmd()
        .arg("restore")
        .arg(format!("latest:{want_dir}"))
        .arg("--target")
        .arg(&out)
        .assert()
        .success();
    assert_eq!(std::fs::read(out.join("inner.txt")).unwrap(), b"inner\n");
    let all = fx.path("all");
    fx.strata.restore("latest", &all, &[] as &[&str]);
    assert_eq!(contents(&under(&all, &d)), contents(&d));
    let names: Vec<Vec<u8>> = std::fs::read_dir(under(&all, &d))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_vec())
        .collect();
    assert!(names.contains(&name.as_bytes().to_vec()), "{names:?}");

    // find prints the same spelling
    let found = fx
        .strata
        .cmd()
        .args(["find", "*.txt"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let found = String::from_utf8(found).unwrap();
    assert!(found.contains(&want_file), "{found}");
    assert!(found.contains(&format!("{want_dir}/inner.txt")), "{found}");
    // a name that does not exist, escaped or not, is one clear error
    let o = fx
        .strata
        .cmd()
        .arg("cat")
        .arg(format!("latest:{base}/caf\\xe8.txt"))
        .output()
        .unwrap();
    let line = one_line_error(&o, "missing escaped name");
    assert!(
        line.contains("caf\\xe8.txt") && line.contains("no such file"),
        "{line}"
    );
}

/// A tree for the glob cases: logs and temp files at several depths.
fn glob_tree(fx: &Fixture) -> PathBuf {
    let d = fx.mkdir("g");
    for rel in [
        "a.log",
        "a.txt",
        "keep/b.log",
        "keep/deep/c.log",
        "keep/deep/c.txt",
        "cache/x.bin",
        "sub/cache/y.bin",
        "cached/z.bin",
        "t.tmp",
        "keep/deep/t.tmp",
    ] {
        write_file(&d.join(rel), rel.as_bytes());
    }
    d
}

fn files_below(root: &Path) -> Vec<String> {
    list_files(root)
}

#[test]
fn glob_rules_for_snapshot_exclude() {
    let fx = Fixture::new();
    let d = glob_tree(&fx);
    let base = d.to_string_lossy().into_owned();
    // `*` stays in one component; anchored patterns start at the root;
    // unanchored ones match at any depth; a directory takes its contents.
    fx.strata.snapshot(&[
        d.as_os_str(),
        OsStr::new("--exclude"),
        OsStr::new(&format!("{base}/*.log")),
        OsStr::new("--exclude"),
        OsStr::new("*.tmp"),
        OsStr::new("--exclude"),
        OsStr::new("cache"),
    ]);
    let out = fx.path("out");
    fx.strata
        .restore(&format!("latest:{base}"), &out, &[] as &[&str]);
    assert_eq!(
        files_below(&out),
        vec![
            "a.txt",
            "cached/z.bin",
            "keep/b.log",
            "keep/deep/c.log",
            "keep/deep/c.txt"
        ]
    );
    // `**` crosses directories
    fx.strata.snapshot(&[
        d.as_os_str(),
        OsStr::new("--exclude"),
        OsStr::new(&format!("{base}/keep/**/*.log")),
    ]);
    let out2 = fx.path("out2");
    fx.strata
        .restore(&format!("latest:{base}"), &out2, &[] as &[&str]);
    let got = files_below(&out2);
    assert!(!got.contains(&"keep/b.log".to_string()), "{got:?}");
    assert!(!got.contains(&"keep/deep/c.log".to_string()), "{got:?}");
    assert!(got.contains(&"a.log".to_string()), "{got:?}");
    assert!(got.contains(&"keep/deep/c.txt".to_string()), "{got:?}");
}

#[test]
fn glob_rules_for_restore_and_find() {
    let fx = Fixture::new();
    let d = glob_tree(&fx);
    let base = d.to_string_lossy().into_owned();
    fx.strata.snapshot(&[&d]);

    // include: the stored path, whatever part is restored
    let out = fx.path("inc");
    fx.strata.restore(
        &format!("latest:{base}/keep"),
        &out,
        &["--include", &format!("{base}/keep/*.log")],
    );
    assert_eq!(files_below(&out), vec!["b.log"]);
    let out = fx.path("inc2");
    fx.strata
        .restore(&format!("latest:{base}"), &out, &["--include", "*.log"]);
    assert_eq!(
        files_below(&out),
        vec!["a.log", "keep/b.log", "keep/deep/c.log"]
    );
    let out = fx.path("inc3");
    fx.strata
        .restore(&format!("latest:{base}"), &out, &["--include", "deep"]);
    assert_eq!(
        files_below(&out),
        vec!["keep/deep/c.log", "keep/deep/c.txt", "keep/deep/t.tmp"]
    );
    // exclude with ** and an anchored directory
    let out = fx.path("exc");
    fx.strata.restore(
        &format!("latest:{base}"),
        &out,
        &[
            "--exclude",
            &format!("{base}/**/deep"),
            "--exclude",
            &format!("{base}/cache"),
        ],
    );
    assert_eq!(
        files_below(&out),
        vec![
            "a.log",
            "a.txt",
            "cached/z.bin",
            "keep/b.log",
            "sub/cache/y.bin",
            "t.tmp"
        ]
    );

    // find: entries whose own path matches
    let find = |pats: &[&str]| -> Vec<String> {
        let o = fx
            .strata
            .cmd()
            .arg("find")
            .args(pats)
            .arg("--json")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let mut v: Vec<String> = String::from_utf8(o)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["path"]
                    .as_str()
                    .unwrap()
                    .strip_prefix(&base)
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        find(&["*.log"]),
        vec!["/a.log", "/keep/b.log", "/keep/deep/c.log"]
    );
    assert_eq!(find(&[&format!("{base}/*.log")]), vec!["/a.log"]);
    assert_eq!(
        find(&[&format!("{base}/**/*.log")]),
        vec!["/a.log", "/keep/b.log", "/keep/deep/c.log"]
    );
    assert_eq!(find(&["cache"]), vec!["/cache", "/sub/cache"]);
    assert_eq!(
        find(&["keep/*/c.*"]),
        vec!["/keep/deep/c.log", "/keep/deep/c.txt"]
    );
    assert_eq!(
        find(&["*.tmp", "x.bin"]),
        vec!["/cache/x.bin", "/keep/deep/t.tmp", "/t.tmp"]
    );
    // a bad pattern is one clear error
    let o = fx.strata.cmd().args(["find", "/[a"]).output().unwrap();
    let line = one_line_error(&o, "bad glob");
    assert!(line.contains("[a"), "{line}");
}
