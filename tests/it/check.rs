//! `strata check`, `strata rebuild-index` and the index rebuilt on open
//! (issue 10, "Commands"), on real repositories through the CLI: a clean
//! repository passes; a flipped byte in a pack's middle, header, trailer or
//! last byte, a deleted and a truncated pack are each found, naming the
//! pack, the snapshot and the path (plain and encrypted); subsets cover
//! every pack once; `--max-age` skips what was verified; a deleted or
//! overwritten index is rebuilt and every snapshot restores identically.

use crate::support;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use support::{Fixture, Strata, contents, pack_files, parse_json, random_bytes, under};

/// A source tree: one file of several chunks (`big`), small files.
fn source(f: &Fixture, seed: u64) -> PathBuf {
    let src = f.mkdir(format!("src{seed}"));
    fs::write(src.join("big"), random_bytes(seed, 1_500_000)).unwrap();
    fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..20 {
        fs::write(
            src.join(format!("d/f{i}")),
            format!("small file {i} {seed}"),
        )
        .unwrap();
    }
    src
}

/// `check ARGS --json`, which must exit with `code`; its JSON.
fn check(s: &Strata, args: &[&str], code: i32) -> Value {
    let out = s
        .cmd()
        .arg("check")
        .args(args)
        .arg("--json")
        .assert()
        .code(code)
        .get_output()
        .stdout
        .clone();
    parse_json(&out)
}

/// The largest pack: the data pack holding `big`.
fn data_pack(repo: &Path) -> PathBuf {
    pack_files(repo)
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

fn flip(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    b[at] ^= 0x10;
    fs::write(p, b).unwrap();
}

/// A problem of `v` names `pack`, the snapshot `snap` and a path ending in
/// `suffix`.
fn names(v: &Value, pack: &Path, snap: &str, suffix: &str) -> bool {
    let pack = pack.file_name().unwrap().to_string_lossy().into_owned();
    v["problems"].as_array().unwrap().iter().any(|p| {
        p["pack"].as_str() == Some(pack.as_str())
            && p["used_by"].as_array().unwrap().iter().any(|u| {
                u["snapshot"].as_str() == Some(snap)
                    && u["path"].as_str().unwrap().ends_with(suffix)
            })
    })
}

fn snapshot(f: &Fixture, src: &Path) -> String {
    f.strata.snapshot(&[src])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_clean_repository_passes() {
    let f = Fixture::with_init(&["--no-encryption"]);
    let src = source(&f, 1);
    snapshot(&f, &src);
    let v = check(&f.strata, &[], 0);
    assert_eq!(v["ok"], true);
    assert!(v["problems"].as_array().unwrap().is_empty());
    let v = check(&f.strata, &["--read-data"], 0);
    let rd = &v["read_data"];
    assert_eq!(rd["packs_read"], v["packs"]);
    assert!(rd["mb_per_s"].as_f64().unwrap() > 0.0, "{v}");
    let text = f
        .strata
        .cmd()
        .args(["check", "--read-data"])
        .assert()
        .success();
    let out = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        out.contains("MB/s") && out.contains("no errors found"),
        "{out}"
    );
}

#[test]
fn flipped_bytes_name_pack_snapshot_and_path() {
    for init in [&["--no-encryption"][..], &[][..]] {
        let f = Fixture::with_init(init);
        let src = source(&f, 2);
        let snap = snapshot(&f, &src);
        let pack = data_pack(f.strata.repo());
        let orig = fs::read(&pack).unwrap();
        let len = orig.len();
        // middle, header (plaintext magic / age header), trailer, last byte
        for at in [len / 2, 2, 30, len - 20, len - 1] {
            flip(&pack, at);
            let v = check(&f.strata, &["--read-data"], 1);
            assert!(
                names(&v, &pack, &snap, "/big"),
                "{init:?}: flip at {at} of {len}: {v}"
            );
            fs::write(&pack, &orig).unwrap();
        }
        check(&f.strata, &["--read-data"], 0);
    }
}

#[test]
fn a_deleted_or_truncated_pack_is_named_with_the_paths_using_it() {
    let f = Fixture::new();
    let src = source(&f, 3);
    let snap = snapshot(&f, &src);
    let pack = data_pack(f.strata.repo());
    let orig = fs::read(&pack).unwrap();
    fs::remove_file(&pack).unwrap();
    let v = check(&f.strata, &[], 1);
    assert!(names(&v, &pack, &snap, "/big"), "{v}");
    let msg = v["problems"][0]["message"].as_str().unwrap();
    assert!(msg.contains("missing"), "{v}");
    fs::write(&pack, &orig[..orig.len() - 1]).unwrap();
    let v = check(&f.strata, &[], 1);
    assert!(names(&v, &pack, &snap, "/big"), "{v}");
    fs::write(&pack, &orig).unwrap();
    check(&f.strata, &["--read-data"], 0);
}

#[test]
fn subsets_cover_every_pack_once_and_max_age_skips_verified_packs() {
    let f = Fixture::with_init(&["--no-encryption", "--pack-size-mib", "1"]);
    for seed in 4..8 {
        let src = source(&f, seed);
        snapshot(&f, &src);
    }
    let mut all: Vec<String> = support::pack_names(f.strata.repo());
    all.sort();
    assert!(all.len() >= 6, "{} packs", all.len());
    let mut seen = Vec::new();
    for n in 1..=3 {
        let v = check(&f.strata, &["--read-data-subset", &format!("{n}/3")], 0);
        for p in v["read_data"]["packs"].as_array().unwrap() {
            seen.push(p.as_str().unwrap().to_string());
        }
    }
    seen.sort();
    assert_eq!(seen, all, "parts 1/3..3/3 read every pack exactly once");
    let v = check(&f.strata, &["--read-data-subset", "50%"], 0);
    assert_eq!(
        v["read_data"]["packs_read"].as_u64().unwrap(),
        (all.len() as u64).div_ceil(2)
    );
    // incremental: everything was verified just now
    let v = check(&f.strata, &["--read-data", "--max-age", "30d"], 0);
    assert_eq!(v["read_data"]["packs_read"], 0, "{v}");
    assert_eq!(
        v["read_data"]["packs_recent"].as_u64().unwrap(),
        all.len() as u64
    );
    // --max-age needs read-data
    f.strata
        .cmd()
        .args(["check", "--max-age", "30d"])
        .assert()
        .code(2);
}

#[test]
fn rebuild_index_after_deleting_it_restores_identically() {
    let f = Fixture::new();
    let a = source(&f, 8);
    let b = source(&f, 9);
    let sa = snapshot(&f, &a);
    let sb = snapshot(&f, &b);
    support::delete_index(f.strata.repo());
    let out = f
        .strata
        .cmd()
        .args(["rebuild-index", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v = parse_json(&out);
    assert_eq!(
        v["packs"].as_u64().unwrap(),
        pack_files(f.strata.repo()).len() as u64
    );
    for (snap, src) in [(&sa, &a), (&sb, &b)] {
        let target = f.path(format!("restore-{snap}"));
        f.strata.restore(snap, &target, &[] as &[&str]);
        assert_eq!(contents(&under(&target, src)), contents(src));
    }
    check(&f.strata, &["--read-data"], 0);
}

#[test]
fn an_index_of_random_bytes_is_rebuilt_on_the_next_command() {
    let f = Fixture::new();
    let src = source(&f, 10);
    snapshot(&f, &src);
    support::delete_index(f.strata.repo());
    let idx = support::index_path(f.strata.repo());
    assert_ne!(idx, f.strata.repo().join("index.sqlite"), "in the cache");
    fs::write(&idx, random_bytes(11, 40_000)).unwrap();
    let o = f
        .strata
        .cmd()
        .args(["ls", "-r", "latest"])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
    assert!(
        stderr.contains("index.sqlite is damaged") && stderr.contains("rebuilt"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.get_output().stdout).into_owned();
    assert!(stdout.contains("/big"), "{stdout}");
    // healthy again: no message, check clean
    let o = f.strata.cmd().args(["ls", "latest"]).assert().success();
    assert!(o.get_output().stderr.is_empty());
    check(&f.strata, &["--read-data"], 0);
}

#[test]
fn an_unreferenced_pack_is_listed_not_an_error() {
    let f = Fixture::with_init(&["--no-encryption"]);
    let other = Strata::new(f.path("other"));
    other.init(&["--no-encryption"]);
    let src = source(&f, 12);
    snapshot(&f, &src);
    let src2 = source(&f, 13);
    other.snapshot(&[&src2]);
    let stray = data_pack(other.repo());
    let rel = stray.strip_prefix(other.repo()).unwrap();
    fs::create_dir_all(f.strata.repo().join(rel).parent().unwrap()).unwrap();
    fs::copy(&stray, f.strata.repo().join(rel)).unwrap();
    let v = check(&f.strata, &["--read-data"], 0);
    let name = stray.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        v["unreferenced_packs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some(name.as_str())),
        "{v}"
    );
}

/// The index is local state (format-spec/index.md "Where the index lives"):
/// with a cache directory nothing of it is in the repository; a mirror
/// with the same id gets an index of its own; an index that an earlier
/// version left in the repository (made here by a command without a
/// cache) is moved into the cache on the first open with one, and every
/// command answers as before.
#[test]
fn the_index_lives_in_the_cache_and_an_old_one_is_adopted() {
    let f = Fixture::with_init(&["--no-encryption"]);
    let src = source(&f, 12);
    snapshot(&f, &src);
    let repo = f.strata.repo();
    let idx = support::index_path(repo);
    assert!(idx.exists() && idx.starts_with(support::test_cache_dir()));
    for (rel, _) in contents(repo) {
        assert!(
            !rel.to_string_lossy().contains("sqlite"),
            "{rel:?} in the repository"
        );
    }
    let ls = |cache: bool| {
        let c = if cache {
            support::strata_command()
        } else {
            support::command()
        };
        let mut c = support::unlock_for(c, repo);
        let o = c
            .arg("--repo")
            .arg(repo)
            .args(["ls", "-r", "latest"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let (want, _) = ls(true);
    // a mirror (same id, other location) has its own index
    let mirror = f.path("mirror");
    f.strata.cmd().arg("sync").arg(&mirror).assert().success();
    let o = support::unlock_for(support::strata_command(), &mirror)
        .arg("--repo")
        .arg(&mirror)
        .args(["ls", "-r", "latest"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(o.stdout).unwrap(), want);
    let mirror_idx = support::index_path(&mirror);
    assert!(mirror_idx.exists() && mirror_idx != idx, "{mirror_idx:?}");
    assert_eq!(
        mirror_idx.parent().unwrap().parent(),
        idx.parent().unwrap().parent()
    );

    // an earlier version's index in the repository, and none in the cache
    support::delete_index(repo);
    let (out, err) = ls(false);
    assert_eq!(out, want);
    assert!(err.contains("index.sqlite is missing: rebuilt"), "{err}");
    assert!(repo.join("index.sqlite").exists());
    let (out, err) = ls(true);
    assert_eq!(out, want);
    assert!(
        err.starts_with("strata: moved index.sqlite out of the repository into the cache: ")
            && err.lines().count() == 1,
        "{err}"
    );
    for name in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        assert!(!repo.join(name).exists(), "{name} left in the repository");
    }
    assert!(support::index_path(repo).exists());
    // adopted, not rebuilt: the next command is silent
    let (out, err) = ls(true);
    assert_eq!((out.as_str(), err.as_str()), (want.as_str(), ""));
    check(&f.strata, &["--read-data"], 0);
}
