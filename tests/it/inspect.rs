//! The read-only inspection commands: `ls`, `cat` (and `cat --raw`), `find`,
//! `diff` and `stats`, checked against the source trees they were taken from
//! (a walk of the source, the original bytes, `diff -rq`, plain arithmetic).

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use support::{Fixture, Rng, Strata, list_tree, num, random_bytes, set_mtime, write_file};

// ---------------------------------------------------------------- helpers

/// Run `strata ARGS`, which must succeed; its stdout.
fn out(s: &Strata, args: &[&str]) -> String {
    let o = s.cmd().args(args).assert().success();
    String::from_utf8(o.get_output().stdout.clone()).unwrap()
}

/// Run `strata ARGS`, which must succeed; its stdout as bytes.
fn out_bytes(s: &Strata, args: &[&str]) -> Vec<u8> {
    s.cmd()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone()
}

/// Run `strata ARGS`, which must fail with exit code 1, print nothing on
/// stdout and exactly one `strata: ...` line on stderr; that line.
#[track_caller]
fn one_line_error(s: &Strata, args: &[&str]) -> String {
    let o = s.cmd().args(args).assert().code(1);
    let o = o.get_output();
    assert!(o.stdout.is_empty(), "{args:?}: stdout {:?}", o.stdout);
    assert!(
        std::str::from_utf8(&o.stderr).is_ok(),
        "{args:?}: stderr not UTF-8"
    );
    support::one_line_error(o, &format!("{args:?}"))
}

/// Every line of a `--json` output, parsed.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// A string field of a JSON object.
fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

/// `text` with every `/data` replaced by `data`, the absolute path of the
/// source directory that the tests call `/data` (a snapshot keeps each
/// source under its absolute path).
fn at(data: &Path, text: &str) -> String {
    text.replace("/data", &data.display().to_string())
}

/// The directories above `p`, outermost first, without the root: what
/// `ls -r` lists before a source (`/tmp`, `/tmp/x`, ...).
fn ancestors(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = p
        .ancestors()
        .skip(1)
        .filter(|a| a.parent().is_some())
        .map(|a| a.display().to_string())
        .collect();
    v.reverse();
    v
}

/// Snapshot `paths`; the new snapshot's id.
fn snap(st: &Strata, paths: &[&Path]) -> String {
    let v = st.snapshot(paths);
    assert_eq!(num(&v, "summary/warnings"), 0, "{v}");
    s(&v, "id").to_string()
}

/// Create a sparse file of `len` bytes holding `regions` (offset, length)
/// of random data and holes everywhere else; its exact contents.
fn sparse_file(path: &Path, len: u64, regions: &[(u64, usize)], seed: u64) -> Vec<u8> {
    let f = fs::File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut want = vec![0u8; len as usize];
    for (i, &(off, n)) in regions.iter().enumerate() {
        let data = random_bytes(seed ^ i as u64, n);
        f.write_all_at(&data, off).unwrap();
        want[off as usize..off as usize + n].copy_from_slice(&data);
    }
    want
}

/// The entries of tree blob `id` as `cat --raw tree` prints them, following
/// the parts of a large directory.
fn raw_tree_entries(st: &Strata, id: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(&out(st, &["cat", "--raw", "tree", id])).unwrap();
    let mut entries = v["entries"].as_array().unwrap().clone();
    for p in v["parts"].as_array().unwrap() {
        entries.extend(raw_tree_entries(st, p.as_str().unwrap()));
    }
    entries
}

/// The entry named `name` in tree blob `id`.
fn raw_entry(st: &Strata, id: &str, name: &str) -> Value {
    raw_tree_entries(st, id)
        .into_iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name:?} in tree {id}"))
}

/// The subtree id of directory `dir` (an absolute source path) in the
/// snapshot whose root tree is `root`.
fn subtree_of(st: &Strata, root: &str, dir: &Path) -> String {
    let mut tree = root.to_string();
    for comp in dir.iter().skip(1) {
        tree = s(&raw_entry(st, &tree, comp.to_str().unwrap()), "subtree").to_string();
    }
    tree
}

/// Spawn `strata ARGS` with piped stdout, read `n` bytes, close the pipe;
/// assert the bytes, exit code 0 and an empty stderr.
fn closed_pipe_is_quiet(st: &Strata, args: &[&str], want_prefix: &[u8]) {
    let mut child = support::unlock_for(support::strata_command(), st.repo())
        .env_remove("STRATA_REPO")
        .arg("--repo")
        .arg(st.repo())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = vec![0u8; want_prefix.len()];
    stdout.read_exact(&mut head).unwrap();
    assert_eq!(head, want_prefix, "{args:?}: first bytes");
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?} after the pipe closed: {:?}, stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{args:?}: stderr {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// ---------------------------------------------------------------- ls

#[test]
fn ls_lists_exactly_the_backed_up_tree() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/data");
    write_file(&src.join("a.txt"), b"hello\n");
    write_file(&src.join("with space.txt"), b"spaces");
    write_file(&src.join("\u{fc}n\u{ef}c\u{f6}d\u{e9}.md"), b"utf-8 name");
    write_file(&src.join("-dash"), b"");
    write_file(&src.join("a*b?[c]"), b"glob chars");
    write_file(&src.join("sub/deep/deeper/x.json"), b"{}");
    write_file(&src.join("sub/mid.bin"), &random_bytes(1, 70_000));
    write_file(&src.join("exec.sh"), b"#!/bin/sh\n");
    write_file(&src.join("setuid"), b"s");
    // a directory large enough to be stored in parts (> 128 entries)
    for i in 0..150 {
        write_file(
            &src.join(format!("many/f{i:03}")),
            format!("{i}").as_bytes(),
        );
    }
    fs::create_dir_all(src.join("empty")).unwrap();
    fs::create_dir_all(src.join("sticky")).unwrap();
    symlink("a.txt", src.join("link")).unwrap();
    symlink("does/not/exist", src.join("sub/dangling")).unwrap();
    let chmod = |rel: &str, mode: u32| {
        fs::set_permissions(src.join(rel), fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod("a.txt", 0o644);
    chmod("exec.sh", 0o755);
    chmod("setuid", 0o4755);
    chmod("sticky", 0o1777);
    chmod("empty", 0o700);
    set_mtime(&src.join("a.txt"), 1_600_000_000, 123_456_789);
    let id = snap(st, &[&src]);

    // -r: the directories leading to the source, then exactly the source
    // walk, in the same (pre-, byte-) order
    let mut want = ancestors(&src);
    want.push(at(&src, "/data"));
    want.extend(
        list_tree(&src)
            .iter()
            .map(|p| at(&src, &format!("/data/{}", p.trim_end_matches('/')))),
    );
    for spec in ["latest", id.as_str(), &id[..8], "latest:/", "latest:"] {
        let got: Vec<String> = out(st, &["ls", "-r", spec])
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(got, want, "ls -r {spec}");
    }
    let long_form: Vec<String> = out(st, &["ls", "--recursive", "latest"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(long_form, want);

    // without -r: one level only
    assert_eq!(
        out(st, &["ls", "latest"]),
        format!("{}\n", ancestors(&src)[0])
    );
    let top: Vec<String> = out(st, &["ls", &at(&src, "latest:/data")])
        .lines()
        .map(String::from)
        .collect();
    let want_top: Vec<String> = list_tree(&src)
        .iter()
        .filter(|p| !p.trim_end_matches('/').contains('/'))
        .map(|p| at(&src, &format!("/data/{}", p.trim_end_matches('/'))))
        .collect();
    assert_eq!(top, want_top);
    // a subdirectory with -r, with and without the leading slash
    let relative = format!("latest:{}/sub", src.strip_prefix("/").unwrap().display());
    for spec in [
        at(&src, "latest:/data/sub"),
        relative,
        at(&src, "latest:/data/sub/"),
    ] {
        assert_eq!(
            out(st, &["ls", "-r", &spec]),
            at(
                &src,
                "/data/sub/dangling\n/data/sub/deep\n/data/sub/deep/deeper\n\
                 /data/sub/deep/deeper/x.json\n/data/sub/mid.bin\n"
            ),
            "{spec}"
        );
    }
    // a file: that file; an empty directory: nothing
    assert_eq!(
        out(st, &["ls", &at(&src, "latest:/data/a.txt")]),
        at(&src, "/data/a.txt\n")
    );
    assert_eq!(out(st, &["ls", "-r", &at(&src, "latest:/data/empty")]), "");
    // the parted directory lists all its entries
    assert_eq!(
        out(st, &["ls", &at(&src, "latest:/data/many")])
            .lines()
            .count(),
        150
    );

    // -l: mode strings, symlink targets, sizes, mtimes
    let long = out(st, &["ls", "-l", "-r", "latest"]);
    assert_eq!(long.lines().count(), want.len());
    let line_of = |path: &str| -> &str {
        let path = at(&src, path);
        long.lines()
            .find(|l| l.ends_with(&format!(" {path}")) || l.contains(&format!(" {path} -> ")))
            .unwrap_or_else(|| panic!("no {path} in ls -l:\n{long}"))
    };
    let a = line_of("/data/a.txt");
    assert!(a.starts_with("-rw-r--r-- "), "{a}");
    assert!(
        a.contains(&at(&src, " 6 2020-09-13T12:26:40Z /data/a.txt")),
        "{a}"
    );
    assert!(line_of("/data/exec.sh").starts_with("-rwxr-xr-x "));
    assert!(line_of("/data/setuid").starts_with("-rwsr-xr-x "));
    assert!(line_of("/data/sticky").starts_with("drwxrwxrwt "));
    assert!(line_of("/data/empty").starts_with("drwx------ "));
    assert!(line_of("/data/sub").starts_with("drwxr-xr-x "));
    let l = line_of("/data/link");
    assert!(l.starts_with("lrwxrwxrwx "), "{l}");
    assert!(l.ends_with(&at(&src, " /data/link -> a.txt")), "{l}");
    assert!(line_of("/data/sub/dangling").ends_with(" -> does/not/exist"));
    let mid = line_of("/data/sub/mid.bin");
    assert!(mid.contains(" 70000 "), "{mid}");

    // --json: one object per line, matching the source's lstat
    let lines = json_lines(&out(st, &["ls", "-r", "--json", "latest"]));
    let paths: Vec<&str> = lines.iter().map(|v| s(v, "path")).collect();
    assert_eq!(paths, want);
    // the directories above the source are listed as directories; their
    // metadata is what it was then (other tests change /tmp's mtime)
    for v in &lines[..ancestors(&src).len()] {
        assert_eq!(s(v, "type"), "dir", "{v}");
    }
    for v in &lines[ancestors(&src).len()..] {
        let local = PathBuf::from(s(v, "path"));
        let md = fs::symlink_metadata(&local).unwrap();
        let name = local.file_name().unwrap().to_str().unwrap();
        assert_eq!(s(v, "name"), name, "{v}");
        let ty = if md.is_dir() {
            "dir"
        } else if md.file_type().is_symlink() {
            "symlink"
        } else {
            "file"
        };
        assert_eq!(s(v, "type"), ty, "{v}");
        assert_eq!(s(v, "mode"), format!("{:o}", md.mode() & 0o7777), "{v}");
        assert_eq!(v["uid"], md.uid(), "{v}");
        assert_eq!(v["gid"], md.gid(), "{v}");
        let ns = i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec());
        assert_eq!(v["mtime_unix_ns"].to_string(), ns.to_string(), "{v}");
        assert!(s(v, "mtime").ends_with('Z'), "{v}");
        if ty == "file" {
            assert_eq!(v["size"], md.len(), "{v}");
        }
        if ty == "symlink" {
            let t = fs::read_link(&local).unwrap();
            assert_eq!(s(v, "target"), t.to_str().unwrap(), "{v}");
        } else {
            assert!(v.get("target").is_none(), "{v}");
        }
    }
    let a = lines
        .iter()
        .find(|v| v["path"] == at(&src, "/data/a.txt").as_str())
        .unwrap();
    assert_eq!(s(a, "mtime"), "2020-09-13T12:26:40Z");
    assert_eq!(num(a, "mtime_unix_ns"), 1_600_000_000_123_456_789);

    // missing paths: one line on stderr, exit 1
    let e = one_line_error(st, &["ls", &at(&src, "latest:/data/nope")]);
    assert!(e.contains(&at(&src, "/data/nope")), "{e}");
    let e = one_line_error(st, &["ls", "-r", &at(&src, "latest:/data/sub/nope/deeper")]);
    assert!(e.contains(&at(&src, "/data/sub/nope")), "{e}");
    let e = one_line_error(st, &["ls", &at(&src, "latest:/data/a.txt/below")]);
    assert!(e.contains(&at(&src, "/data/a.txt")), "{e}");
    one_line_error(st, &["ls", "-l", "latest:/nope"]);
    one_line_error(st, &["ls", "--json", &at(&src, "00000000:/data")]);
}

// ---------------------------------------------------------------- cat

#[test]
fn cat_prints_every_file_exactly_and_raw_objects_decode() {
    let fx = Fixture::with_init(&[
        "--chunk-min",
        "16384",
        "--chunk-avg",
        "65536",
        "--chunk-max",
        "262144",
    ]);
    let st = &fx.strata;
    let src = fx.path("src/data");
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |rel: &str, data: Vec<u8>| {
        write_file(&src.join(rel), &data);
        files.insert(rel.to_string(), data);
    };
    put("empty.bin", Vec::new());
    put("one.bin", vec![0x5a]);
    // above the 4 KiB inline limit, below the 16 KiB minimum chunk: one chunk
    put("small.txt", b"a small file, one chunk\n".repeat(200));
    put(
        "tiny.txt",
        b"inline: stored in its directory's tree\n".to_vec(),
    );
    let big = random_bytes(2, (2 << 20) + 654_321);
    put("big.bin", big.clone());
    let block = random_bytes(3, 700_000);
    put(
        "repeated.bin",
        [&block[..], &block[..], &block[..]].concat(),
    );
    put("zeros.bin", vec![0u8; 1_500_000]);
    // a seeded random tree of files of various sizes
    let mut rng = Rng::new(0x1a2b_3c4d);
    let mut dirs = vec![String::new()];
    for i in 0..24 {
        if rng.below(4) == 0 {
            let d = format!("{}d{i}/", dirs[rng.below(dirs.len() as u64) as usize]);
            dirs.push(d);
        }
        let dir = dirs[rng.below(dirs.len() as u64) as usize].clone();
        let len = match rng.below(10) {
            0 => 0,
            1..=5 => rng.range(1, 5_000),
            6..=8 => rng.range(5_000, 300_000),
            _ => rng.range(1_100_000, 2_600_000),
        };
        put(
            &format!("{dir}f{i}.dat"),
            random_bytes(rng.next_u64(), len as usize),
        );
    }
    // sparse files: holes between, before and after data; all holes; a
    // data tail ending at an odd size
    fs::create_dir_all(src.join("sparse")).unwrap();
    let sparse = [
        (
            "sparse/mid.bin",
            6 << 20,
            vec![(0, 10_000), (3_000_000, 50_000)],
        ),
        (
            "sparse/lead.bin",
            4 << 20,
            vec![(2 << 20, 70_000), ((4 << 20) - 1, 1)],
        ),
        ("sparse/holes.bin", 5 << 20, vec![]),
        ("sparse/tail.bin", 3_000_003, vec![(2_999_990, 13)]),
    ];
    for (i, (rel, len, regions)) in sparse.iter().enumerate() {
        let want = sparse_file(&src.join(rel), *len, regions, 100 + i as u64);
        files.insert(rel.to_string(), want);
    }
    // a hard link reads like its first name
    fs::hard_link(src.join("small.txt"), src.join("hardlink.txt")).unwrap();
    files.insert("hardlink.txt".into(), files["small.txt"].clone());
    symlink("small.txt", src.join("link")).unwrap();
    let snap_json = st.snapshot(&[&src]);
    let id = s(&snap_json, "id").to_string();
    let root_tree = s(&snap_json, "tree").to_string();

    // cat of every file equals the original bytes
    for (rel, want) in &files {
        let got = out_bytes(st, &["cat", &at(&src, &format!("latest:/data/{rel}"))]);
        assert!(
            got == *want,
            "cat {rel}: {} bytes, want {}",
            got.len(),
            want.len()
        );
    }
    assert_eq!(
        out_bytes(
            st,
            &[
                "cat",
                &format!(
                    "{}:{}/big.bin",
                    &id[..8],
                    src.strip_prefix("/").unwrap().display()
                )
            ]
        ),
        big
    );

    // directories (and the root) are errors that point at `ls`
    for spec in ["latest:/data", "latest:/data/sparse", "latest:/", "latest:"] {
        let spec = &at(&src, spec);
        let e = one_line_error(st, &["cat", spec]);
        assert!(e.contains("strata ls"), "cat {spec}: {e}");
    }
    one_line_error(st, &["cat", &at(&src, "latest:/data/nope")]);

    // a closed pipe (`| head -c 10`) exits 0 quietly
    closed_pipe_is_quiet(st, &["cat", &at(&src, "latest:/data/big.bin")], &big[..10]);
    closed_pipe_is_quiet(st, &["cat", &at(&src, "latest:/data/sparse/mid.bin")], &[]);

    // --raw config: the chunker parameters given to init
    let config: Value = serde_json::from_str(&out(st, &["cat", "--raw", "config"])).unwrap();
    assert_eq!(num(&config, "chunker/min"), 16384, "{config}");
    assert_eq!(num(&config, "chunker/avg"), 65536, "{config}");
    assert_eq!(num(&config, "chunker/max"), 262_144, "{config}");
    assert_eq!(num(&config, "version"), 2, "{config}");

    // --raw snapshot: its tree id, by full id and by prefix
    for spec in [id.as_str(), &id[..10]] {
        let v: Value = serde_json::from_str(&out(st, &["cat", "--raw", "snapshot", spec])).unwrap();
        assert_eq!(s(&v, "id"), id, "{v}");
        assert_eq!(s(&v, "tree"), root_tree, "{v}");
        assert_eq!(v["paths"][0], src.to_str().unwrap(), "{v}");
    }

    // --raw tree: from the root, one directory per component of the
    // source's absolute path (and nothing beside it) leads to `data`, whose
    // subtree lists the files
    let mut data_tree = root_tree.clone();
    for comp in src.iter().skip(1) {
        let entries = raw_tree_entries(st, &data_tree);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0]["name"], comp.to_str().unwrap());
        assert_eq!(entries[0]["type"], "dir");
        data_tree = s(&entries[0], "subtree").to_string();
    }
    let names: BTreeSet<String> = raw_tree_entries(st, &data_tree)
        .iter()
        .map(|e| s(e, "name").to_string())
        .collect();
    let want_names: BTreeSet<String> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, want_names);
    let tiny = raw_entry(st, &data_tree, "tiny.txt");
    assert_eq!(
        num(&tiny, "inline"),
        files["tiny.txt"].len() as u64,
        "{tiny}"
    );
    assert!(tiny["content"].as_array().unwrap().is_empty(), "{tiny}");
    let small = raw_entry(st, &data_tree, "small.txt");
    assert_eq!(num(&small, "size"), files["small.txt"].len() as u64);
    assert_eq!(num(&small, "inline"), 0, "{small}");
    let small_chunks = small["content"].as_array().unwrap();
    assert_eq!(small_chunks.len(), 1, "{small}");
    let small_chunk = small_chunks[0].as_str().unwrap().to_string();
    assert_eq!(raw_entry(st, &data_tree, "link")["target"], "small.txt");
    let big_entry = raw_entry(st, &data_tree, "big.bin");
    let big_chunks: Vec<String> = big_entry["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(big_chunks.len() > 4, "{big_entry}");
    // a sparse source file (if the file system made holes) has extents
    let sparse_tree = s(&raw_entry(st, &data_tree, "sparse"), "subtree").to_string();
    let mid_md = fs::metadata(src.join("sparse/mid.bin")).unwrap();
    if mid_md.blocks() * 512 < mid_md.len() {
        let mid = raw_entry(st, &sparse_tree, "mid.bin");
        assert!(!mid["extents"].as_array().unwrap().is_empty(), "{mid}");
    }

    // --raw blob: a single-chunk file's chunk is the file; big.bin's chunks
    // concatenated are big.bin
    assert_eq!(
        out_bytes(st, &["cat", "--raw", "blob", &small_chunk]),
        files["small.txt"]
    );
    let mut joined = Vec::new();
    for c in &big_chunks {
        joined.extend(out_bytes(st, &["cat", "--raw", "blob", c]));
    }
    assert!(joined == big, "big.bin's chunks do not concatenate to it");
    closed_pipe_is_quiet(st, &["cat", "--raw", "blob", &big_chunks[0]], &big[..10]);

    // --raw pack: every pack file lists its blobs; together they hold the
    // root tree and all of big.bin's chunks
    let mut in_packs: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut pack_files = 0;
    for p in support::pack_files(st.repo()) {
        let pid = p.file_name().unwrap().to_str().unwrap().to_string();
        let v: Value = serde_json::from_str(&out(st, &["cat", "--raw", "pack", &pid])).unwrap();
        assert_eq!(s(&v, "id"), pid);
        assert_eq!(num(&v, "size"), fs::metadata(&p).unwrap().len(), "{v}");
        let blobs = v["blobs"].as_array().unwrap();
        assert!(!blobs.is_empty(), "{v}");
        for b in blobs {
            assert_eq!(s(b, "id").len(), 64, "{b}");
            assert!(["data", "tree"].contains(&s(b, "kind")), "{b}");
            in_packs.insert(
                s(b, "id").to_string(),
                (s(b, "kind").to_string(), num(b, "raw_len")),
            );
        }
        pack_files += 1;
    }
    assert!(pack_files >= 2, "expected data and tree packs");
    assert_eq!(in_packs[&root_tree].0, "tree");
    assert_eq!(in_packs[&small_chunk].0, "data");
    let mut raw_sum = 0;
    for c in &big_chunks {
        let (kind, raw_len) = &in_packs[c];
        assert_eq!(kind, "data");
        raw_sum += raw_len;
    }
    assert_eq!(raw_sum, big.len() as u64);
}

// ---------------------------------------------------------------- diff

/// Snapshot-side paths of everything at and below `local` (which is
/// `snap_path` in the snapshot).
fn everything_below(local: &Path, snap_path: &str, out: &mut BTreeSet<String>) {
    out.insert(snap_path.to_string());
    if fs::symlink_metadata(local).unwrap().is_dir() {
        for p in list_tree(local) {
            out.insert(format!("{snap_path}/{}", p.trim_end_matches('/')));
        }
    }
}

/// `strata diff A B --json`: (marker, path) per change, and the totals.
fn diff_json(st: &Strata, a: &str, b: &str) -> (Vec<(String, String)>, Value) {
    let lines = json_lines(&out(st, &["diff", a, b, "--json"]));
    let (totals, changes) = lines.split_last().expect("no totals line");
    let totals = totals["totals"].clone();
    assert!(totals.is_object(), "last line is not the totals: {totals}");
    let changes: Vec<(String, String)> = changes
        .iter()
        .map(|v| (s(v, "change").to_string(), s(v, "path").to_string()))
        .collect();
    for (key, marker) in [
        ("added", "+"),
        ("removed", "-"),
        ("modified", "M"),
        ("type_changed", "T"),
        ("metadata", "m"),
    ] {
        let n = changes.iter().filter(|(c, _)| c == marker).count() as u64;
        assert_eq!(num(&totals, key), n, "{key} in {totals}");
    }
    // the text form says the same
    let text = out(st, &["diff", a, b]);
    let text_changes: Vec<(String, String)> = text
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let (c, p) = l.split_once(' ').unwrap();
            (c.to_string(), p.trim_start().to_string())
        })
        .collect();
    assert_eq!(text_changes, changes, "text and --json differ:\n{text}");
    assert!(
        text.trim_end().lines().last().unwrap().contains(&format!(
            "{} added, {} removed, {} modified, {} type changed, {} metadata only",
            num(&totals, "added"),
            num(&totals, "removed"),
            num(&totals, "modified"),
            num(&totals, "type_changed"),
            num(&totals, "metadata"),
        )),
        "{text}"
    );
    (changes, totals)
}

fn with_marker(changes: &[(String, String)], marker: &str) -> BTreeSet<String> {
    changes
        .iter()
        .filter(|(c, _)| c == marker)
        .map(|(_, p)| p.clone())
        .collect()
}

/// A service's data directory as it is on `day`, built by this test alone
/// (a chat bridge's events, responses, status files, logs and config):
/// day 0 creates it; day 1 ages it as a live service does, with new
/// events in a new directory, some old events deleted, a whole directory
/// of them removed, status files rewritten, logs appended and rotated.
fn service_day(data: &Path, day: u64) {
    let mut rng = Rng::new(0x5EED_0000 + day);
    let event = |rng: &mut Rng, i: u64| {
        let n = 200 + rng.below(3000) as usize;
        let mut v = format!("{{\"id\": \"evt-{day:03}-{i:05}\", \"text\": \"").into_bytes();
        v.extend(rng.text(n));
        v.extend_from_slice(b"\"}\n");
        v
    };
    if day == 0 {
        for d in 0..3 {
            for i in 0..40 {
                let sub = if i % 3 == 0 { "responses" } else { "events" };
                let b = event(&mut rng, d * 100 + i);
                write_file(&data.join(format!("{sub}/{d:03}/{i:05}.json")), &b);
            }
        }
        for name in ["bridge", "queue", "health"] {
            write_file(&data.join(format!("status/{name}.json")), &rng.text(300));
        }
        write_file(&data.join("logs/app.log"), &rng.text(20_000));
        write_file(&data.join("config/bridge.toml"), b"[bridge]\nport = 8080\n");
        write_file(&data.join("blobs/attachment.bin"), &rng.bytes(300_000));
        return;
    }
    // new events in a new directory
    for i in 0..25 {
        let b = event(&mut rng, 1000 + i);
        write_file(&data.join(format!("events/{day:03}/{i:05}.json")), &b);
    }
    // some old events deleted, and one whole directory of responses
    for i in [1, 4, 13, 22] {
        fs::remove_file(data.join(format!("events/001/{i:05}.json"))).unwrap();
    }
    fs::remove_dir_all(data.join("responses/002")).unwrap();
    // status rewritten, the log rotated and a new one begun
    for name in ["bridge", "queue"] {
        write_file(&data.join(format!("status/{name}.json")), &rng.text(310));
    }
    fs::rename(data.join("logs/app.log"), data.join("logs/app.log.1")).unwrap();
    write_file(&data.join("logs/app.log"), &rng.text(5_000));
    // an attachment changed in place, in its middle
    let f = fs::OpenOptions::new()
        .write(true)
        .open(data.join("blobs/attachment.bin"))
        .unwrap();
    f.write_all_at(&rng.bytes(4096), 150_000).unwrap();
}

#[test]
fn diff_agrees_with_diff_rq_on_an_aged_service_tree() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let data = fx.path("src/data");
    let old = fx.path("old");
    service_day(&data, 0);
    let id0 = snap(st, &[&data]);
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&old)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a");
    service_day(&data, 1);
    let id1 = snap(st, &[&data]);

    let o = std::process::Command::new("diff")
        .arg("-rq")
        .arg(&old)
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "diff -rq found no differences?");
    let (old_s, new_s) = (old.to_str().unwrap(), data.to_str().unwrap());
    let (mut want_m, mut want_add, mut want_del) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        if let Some(rest) = line.strip_prefix(&format!("Files {old_s}/")) {
            let (rel, _) = rest.split_once(" and ").unwrap();
            want_m.insert(at(&data, &format!("/data/{rel}")));
        } else if let Some(rest) = line.strip_prefix("Only in ") {
            let (dir, name) = rest.split_once(": ").unwrap();
            let local = Path::new(dir).join(name);
            let (root, set) = if dir.starts_with(old_s) {
                (&old, &mut want_del)
            } else {
                assert!(dir.starts_with(new_s), "{line}");
                (&data, &mut want_add)
            };
            let rel = local.strip_prefix(root).unwrap().to_str().unwrap();
            everything_below(&local, &at(&data, &format!("/data/{rel}")), set);
        } else {
            panic!("unexpected diff -rq line: {line}");
        }
    }
    assert!(
        !want_m.is_empty() && !want_add.is_empty() && !want_del.is_empty(),
        "day 1 should modify, add and delete files"
    );

    let (changes, totals) = diff_json(st, &id0, &id1);
    assert_eq!(with_marker(&changes, "M"), want_m, "M");
    assert_eq!(with_marker(&changes, "+"), want_add, "+");
    assert_eq!(with_marker(&changes, "-"), want_del, "-");
    assert!(with_marker(&changes, "T").is_empty(), "T: {changes:?}");
    // `m` only for what diff -rq does not see (metadata), never twice
    let paths: Vec<&String> = changes.iter().map(|(_, p)| p).collect();
    let unique: BTreeSet<&String> = paths.iter().copied().collect();
    assert_eq!(unique.len(), paths.len(), "a path reported twice");
    for p in with_marker(&changes, "m") {
        assert!(!want_m.contains(&p) && !want_add.contains(&p) && !want_del.contains(&p));
    }
    // byte totals: the added files' sizes
    let added_bytes: u64 = want_add
        .iter()
        .map(PathBuf::from)
        .filter_map(|p| fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum::<u64>()
        + want_m
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum::<u64>();
    assert_eq!(num(&totals, "added_bytes"), added_bytes, "{totals}");
    assert_eq!(s(&totals, "from"), id0);
    assert_eq!(s(&totals, "to"), id1);
}

#[test]
fn diff_reports_type_metadata_and_content_changes() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/data");
    for (rel, body) in [
        ("content", "old content"),
        ("d/x", "x"),
        ("d/y/z", "z"),
        ("e/inside", "i"),
        ("f", "f"),
        ("g", "g"),
        ("h", "h"),
        ("keep/k", "k"),
        ("t", "t"),
        ("same", "same"),
    ] {
        write_file(&src.join(rel), body.as_bytes());
    }
    symlink("g", src.join("s")).unwrap();
    let a = snap(st, &[&src]);

    // content
    fs::write(src.join("content"), b"new content, other size").unwrap();
    // a directory with contents becomes a file
    fs::remove_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d"), b"now a file").unwrap();
    // mode of a directory
    fs::set_permissions(src.join("e"), fs::Permissions::from_mode(0o700)).unwrap();
    // a file becomes a symlink
    fs::remove_file(src.join("f")).unwrap();
    symlink("g", src.join("f")).unwrap();
    // mode of a file
    fs::set_permissions(src.join("g"), fs::Permissions::from_mode(0o600)).unwrap();
    // a file becomes a directory with contents
    fs::remove_file(src.join("h")).unwrap();
    write_file(&src.join("h/inner"), b"inner");
    // only a directory's mtime changes: not a change
    write_file(&src.join("keep/tmp"), b"tmp");
    fs::remove_file(src.join("keep/tmp")).unwrap();
    set_mtime(&src.join("keep"), 1_500_000_000, 0);
    // only a file's mtime changes
    set_mtime(&src.join("t"), 1_500_000_000, 1);
    let b = snap(st, &[&src]);

    let want = [
        ("M", "/data/content"),
        ("T", "/data/d"),
        ("-", "/data/d/x"),
        ("-", "/data/d/y"),
        ("-", "/data/d/y/z"),
        ("m", "/data/e"),
        ("T", "/data/f"),
        ("m", "/data/g"),
        ("T", "/data/h"),
        ("+", "/data/h/inner"),
        ("m", "/data/t"),
    ];
    let want: Vec<(&str, String)> = want.iter().map(|&(c, p)| (c, at(&src, p))).collect();
    let (changes, totals) = diff_json(st, &a, &b);
    let got: Vec<(&str, String)> = changes
        .iter()
        .map(|(c, p)| (c.as_str(), p.clone()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(num(&totals, "added_bytes"), 23 + 10 + 5, "{totals}");
    assert_eq!(
        num(&totals, "removed_bytes"),
        11 + 1 + 1 + 1 + 1,
        "{totals}"
    );

    // the other way round: + and - swap, the rest stays
    let (back, _) = diff_json(st, &b, &a);
    let swapped: Vec<(&str, String)> = want
        .iter()
        .map(|(c, p)| {
            let c = match *c {
                "+" => "-",
                "-" => "+",
                c => c,
            };
            (c, p.clone())
        })
        .collect();
    let got_back: Vec<(&str, String)> = back.iter().map(|(c, p)| (c.as_str(), p.clone())).collect();
    assert_eq!(got_back, swapped);

    // a snapshot against itself: nothing
    let (none, totals) = diff_json(st, &b, "latest");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(num(&totals, "added_bytes"), 0);
}

// ---------------------------------------------------------------- find

#[test]
fn find_locates_a_file_deleted_two_snapshots_ago() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/data");
    write_file(&src.join("f"), b"the file we lose");
    write_file(&src.join("f2"), b"not f");
    write_file(&src.join("sub/g"), b"g");
    write_file(&src.join("sub/deep/x.json"), b"{}");
    let id1 = snap(st, &[&src]);
    fs::remove_file(src.join("f")).unwrap();
    let id2 = snap(st, &[&src]);
    let id3 = snap(st, &[&src]);
    assert!(id1 != id2 && id2 != id3);

    // all snapshots: only the first has it
    let text = out(st, &["find", "f"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with(&id1[..8]), "{text}");
    assert!(lines[0].ends_with(&at(&src, " /data/f")), "{text}");
    assert!(lines[0].contains(" 16 "), "size: {text}");

    // the newest two: nothing (exit 0, empty stdout)
    assert_eq!(out(st, &["find", "f", "--newest", "2"]), "");
    assert_eq!(out(st, &["find", "f", "--newest", "2", "--json"]), "");
    assert_eq!(out(st, &["find", "f", "--newest", "3"]).lines().count(), 1);

    // --snapshot
    let one = out(st, &["find", "f", "--snapshot", &id1]);
    assert_eq!(one, text);
    assert_eq!(out(st, &["find", "f", "--snapshot", &id1[..8]]), text);
    assert_eq!(
        out(st, &["find", "f", "--snapshot", &id2, "--snapshot", &id3]),
        ""
    );

    // --json
    let v = json_lines(&out(st, &["find", "f", "--json"]));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(s(&v[0], "snapshot"), id1);
    assert_eq!(s(&v[0], "path"), at(&src, "/data/f"));
    assert_eq!(s(&v[0], "name"), "f");
    assert_eq!(s(&v[0], "type"), "file");
    assert_eq!(num(&v[0], "size"), 16);

    // name globs and path globs
    let count = |args: &[&str]| out(st, args).lines().count();
    assert_eq!(count(&["find", "f*"]), 1 + 3, "f in 1, f2 in 3");
    assert_eq!(count(&["find", "g"]), 3);
    assert_eq!(count(&["find", "sub"]), 3);
    assert_eq!(count(&["find", "*.json"]), 3);
    assert_eq!(count(&["find", &at(&src, "/data/f")]), 1);
    assert_eq!(count(&["find", &at(&src, "/data/**/x.json")]), 3);
    assert_eq!(count(&["find", "/**/data/**/x.json"]), 3);
    assert_eq!(count(&["find", "data/sub/*/x.json"]), 3, "unanchored");
    assert_eq!(count(&["find", "data/*/x.json"]), 0, "* stays in a name");
    assert_eq!(
        count(&["find", &at(&src, "/data/sub/deep/x.json"), "--newest", "1"]),
        1
    );
    assert_eq!(count(&["find", "/f"]), 0, "path globs start at the root");
    let all = json_lines(&out(st, &["find", "*", "--json", "--snapshot", &id3]));
    let paths: BTreeSet<String> = all.iter().map(|v| s(v, "path").to_string()).collect();
    let mut want: BTreeSet<String> = [
        "/data",
        "/data/f2",
        "/data/sub",
        "/data/sub/g",
        "/data/sub/deep",
        "/data/sub/deep/x.json",
    ]
    .iter()
    .map(|p| at(&src, p))
    .collect();
    want.extend(ancestors(&src));
    assert_eq!(paths, want);
    assert!(all.iter().all(|v| v["snapshot"] == id3.as_str()));
}

// ---------------------------------------------------------------- stats

#[test]
fn stats_count_two_snapshots_of_one_tree() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/data");
    let mut rng = Rng::new(77);
    let mut total = 0u64;
    let mut n_files = 0u64;
    for i in 0..12 {
        let len = match i % 4 {
            0 => rng.range(0, 100),
            1 => rng.range(1_000, 50_000),
            2 => rng.range(100_000, 400_000),
            _ => rng.range(600_000, 1_500_000),
        };
        let dir = ["", "a/", "a/b/", "c/"][i % 4];
        write_file(
            &src.join(format!("{dir}f{i}")),
            &random_bytes(1000 + i as u64, len as usize),
        );
        total += len;
        n_files += 1;
    }
    fs::create_dir_all(src.join("empty")).unwrap();
    symlink("f0", src.join("link")).unwrap();
    // the source, its subdirectories, and the directories above it
    let n_dirs = 1
        + list_tree(&src).iter().filter(|p| p.ends_with('/')).count() as u64
        + ancestors(&src).len() as u64;
    let id1 = snap(st, &[&src]);
    let id2 = snap(st, &[&src]);

    let stats = |args: &[&str]| -> Value {
        let mut a = vec!["stats", "--json"];
        a.extend_from_slice(args);
        serde_json::from_str(out(st, &a).trim_end()).unwrap()
    };
    let one = stats(&[&id1]);
    let both = stats(&[]);
    assert_eq!(stats(&[&id1, &id2]), both);
    assert_eq!(num(&one, "snapshots"), 1);
    assert_eq!(num(&both, "snapshots"), 2);
    assert_eq!(num(&one, "files"), n_files, "{one}");
    assert_eq!(num(&both, "files"), 2 * n_files, "{both}");
    assert_eq!(num(&one, "dirs"), n_dirs, "{one}");
    assert_eq!(num(&both, "dirs"), 2 * n_dirs, "{both}");
    assert_eq!(num(&one, "restore_size"), total, "{one}");
    assert_eq!(num(&both, "restore_size"), 2 * total, "{both}");
    assert_eq!(
        num(&both, "data_blobs"),
        num(&one, "data_blobs"),
        "{one} vs {both}"
    );
    // The second snapshot adds no data. It adds a root tree only if the
    // mtime of /tmp (above the source) changed in between, as other tests
    // create temp dirs there: at most one tree blob, in at most one pack.
    let new_trees = num(&both, "tree_blobs") - num(&one, "tree_blobs");
    assert!(new_trees <= 1, "{one} vs {both}");
    assert!(
        num(&both, "packs") <= num(&one, "packs") + new_trees,
        "{one} vs {both}"
    );
    if new_trees == 0 {
        for k in ["raw_size", "stored_size", "packs"] {
            assert_eq!(num(&both, k), num(&one, k), "{k}: {one} vs {both}");
        }
    }
    // every data blob in the packs is referenced, once
    let (stored_data, _) = support::stored_blobs(st.repo());
    assert_eq!(num(&one, "data_blobs"), stored_data, "{one}");
    let ratio = |v: &Value| v["dedup_ratio"].as_f64().unwrap();
    assert!((ratio(&one) - 1.0).abs() < 0.1, "{one}");
    assert!((ratio(&both) - 2.0).abs() < 0.2, "{both}");
    assert!(both["compression_ratio"].as_f64().unwrap() > 0.5, "{both}");

    let text = out(st, &["stats"]);
    assert!(
        text.starts_with("2 snapshots: ") && text.contains("restore size"),
        "{text}"
    );
    let text = out(st, &["stats", "--mode", "raw-data"]);
    // the totals, and a line on small files (the smallest are inline)
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("small files: "),
        "{text}"
    );
    assert!(text.contains("dedup ratio 2.0"), "{text}");
    let text = out(st, &["stats", "--mode", "raw-data", &id1[..8]]);
    assert!(text.contains("dedup ratio 1.0"), "{text}");
}

/// A source of small files only: their bytes live inline in the trees, and
/// the dedup ratio counts them (logical bytes against the distinct content),
/// so two snapshots of it deduplicate 2:1 as data blobs would.
#[test]
fn stats_dedup_ratio_counts_inline_files() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/small");
    for i in 0..40 {
        write_file(
            &src.join(format!("e{i}.json")),
            format!("{{\"event\": {i}, \"body\": \"{}\"}}", "x".repeat(i * 7)).as_bytes(),
        );
    }
    let id1 = snap(st, &[&src]);
    snap(st, &[&src]);
    let stats = |args: &[&str]| -> Value {
        let mut a = vec!["stats", "--json", "--mode", "raw-data"];
        a.extend_from_slice(args);
        serde_json::from_str(out(st, &a).trim_end()).unwrap()
    };
    let (one, both) = (stats(&[&id1]), stats(&[]));
    assert_eq!(num(&one, "data_blobs"), 0, "all inline: {one}");
    assert_eq!(num(&one, "inline_files"), 40, "{one}");
    let ratio = |v: &Value| v["dedup_ratio"].as_f64().unwrap();
    assert!((ratio(&one) - 1.0).abs() < 1e-9, "{one}");
    assert!((ratio(&both) - 2.0).abs() < 1e-9, "{both}");
}

// ---------------------------------------------------------------- the index is a cache

/// format-spec/index.md: every command that reads blobs first reconciles
/// the index with the packs. With `index.sqlite` (and its `-wal`, `-shm`)
/// deleted before each command, and no tree cache, `ls`, `find`, `cat`
/// (plain and `--raw tree|blob`), `diff` and `stats` print exactly what
/// they printed with the index, with one line on stderr saying the index
/// was rebuilt (issue 10: a missing index is rebuilt on open, with a
/// message). (They used to fail with a missing blob, or count nothing.)
#[test]
fn inspect_commands_work_after_the_index_is_deleted() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/data");
    write_file(&src.join("a.txt"), b"alpha\n");
    write_file(&src.join("sub/b.bin"), &random_bytes(9, 300_000));
    // above the 4 KiB inline limit: a data blob of its own
    write_file(&src.join("sub/keep.txt"), &b"kept\n".repeat(1000));
    let v1 = st.snapshot(&[&src]);
    let (id1, tree1) = (s(&v1, "id").to_string(), s(&v1, "tree").to_string());
    write_file(&src.join("a.txt"), b"alpha, changed\n");
    write_file(&src.join("sub/c.txt"), b"new");
    let id2 = snap(st, &[&src]);
    // a data blob: the one chunk of sub/keep.txt in the first snapshot
    let data1 = subtree_of(st, &tree1, &src);
    let sub1 = s(&raw_entry(st, &data1, "sub"), "subtree").to_string();
    let chunk = raw_entry(st, &sub1, "keep.txt")["content"][0]
        .as_str()
        .unwrap()
        .to_string();

    let a_old = at(&src, &format!("{id1}:/data/a.txt"));
    let (sub_glob, b_bin) = (at(&src, "/data/sub/*"), at(&src, "latest:/data/sub/b.bin"));
    let commands: Vec<Vec<&str>> = vec![
        vec!["ls", "-r", "--json", &id1],
        vec!["ls", "-l", "-r", "latest"],
        vec!["find", "*.txt"],
        vec!["find", &sub_glob, "--json"],
        vec!["cat", &b_bin],
        vec!["cat", &a_old],
        vec!["cat", "--raw", "tree", &tree1],
        vec!["cat", "--raw", "blob", &chunk],
        vec!["diff", &id1, &id2, "--json"],
        vec!["diff", &id2, &id1],
        vec!["stats", "--json"],
        vec!["stats", "--mode", "raw-data", &id1],
    ];
    // no local tree cache: every tree read goes through the index
    let run = |args: &[&str]| {
        st.cmd()
            .env("STRATA_CACHE_DIR", "")
            .args(args)
            .output()
            .unwrap()
    };
    let want: Vec<Vec<u8>> = commands
        .iter()
        .map(|args| {
            let o = run(args);
            assert!(o.status.success(), "{args:?} with the index: {o:?}");
            o.stdout
        })
        .collect();
    // the reference outputs are right, as far as the source tells
    let ls = String::from_utf8(want[0].clone()).unwrap();
    assert_eq!(ls.lines().count(), ancestors(&src).len() + 5, "{ls}");
    assert_eq!(want[4], fs::read(src.join("sub/b.bin")).unwrap());
    assert_eq!(want[5], b"alpha\n");
    assert_eq!(want[7], b"kept\n".repeat(1000));
    assert!(String::from_utf8_lossy(&want[8]).contains(&at(&src, "/data/sub/c.txt")));

    for (args, want) in commands.iter().zip(&want) {
        // (without a cache the index is in the repository: index.md)
        for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            let p = st.repo().join(f);
            if p.exists() {
                fs::remove_file(&p).unwrap();
            }
        }
        let o = run(args);
        assert!(
            o.status.success(),
            "{args:?} without the index: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stdout == *want,
            "{args:?} without the index printed:\n{}\nwith it:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(want)
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.starts_with("strata: index.sqlite is missing: rebuilt it from the trailers of ")
                && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
        assert!(st.repo().join("index.sqlite").exists(), "{args:?}");
    }
}

// ---------------------------------------------------------------- bugs

#[test]
fn ls_and_find_show_mtimes_before_1970() {
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = fx.path("src/data");
    write_file(&src.join("moon"), b"1969");
    set_mtime(&src.join("moon"), -14_182_940, 0); // 1969-07-20T20:17:40Z
    snap(st, &[&src]);
    let v = json_lines(&out(st, &["ls", "--json", &at(&src, "latest:/data/moon")]));
    assert_eq!(v[0]["mtime_unix_ns"], -14_182_940_000_000_000i64, "{v:?}");
    assert_eq!(s(&v[0], "mtime"), "1969-07-20T20:17:40Z", "{v:?}");
    let l = out(st, &["ls", "-l", &at(&src, "latest:/data/moon")]);
    assert!(
        l.contains(&at(&src, " 1969-07-20T20:17:40Z /data/moon")),
        "{l}"
    );
    let f = out(st, &["find", "moon"]);
    assert!(
        f.contains(&at(&src, " 1969-07-20T20:17:40Z  /data/moon")),
        "{f}"
    );
}

/// A temp dir on a file system that keeps the mtime `sec` as given (tmpfs
/// does; ext4 clamps to 2446).
fn dir_keeping_mtime(sec: i64) -> Option<tempfile::TempDir> {
    for base in [std::env::temp_dir(), PathBuf::from("/dev/shm")] {
        let Ok(d) = tempfile::Builder::new()
            .prefix("strata-mtime-")
            .tempdir_in(&base)
        else {
            continue;
        };
        let p = d.path().join("probe");
        fs::write(&p, b"").unwrap();
        set_mtime(&p, sec, 0);
        let kept = fs::metadata(&p).unwrap().mtime() == sec;
        fs::remove_file(&p).unwrap();
        if kept {
            return Some(d);
        }
    }
    None
}

#[test]
fn ls_and_find_survive_mtimes_after_year_9999() {
    let far = 300_000_000_000i64; // year 11476
    let Some(dir) = dir_keeping_mtime(far) else {
        support::skip(
            "STRATA_REQUIRE_FAR_MTIME_TESTS",
            "no file system here keeps an mtime after 9999 (try tmpfs)",
        );
        return;
    };
    let fx = Fixture::new();
    let st = &fx.strata;
    let src = dir.path().join("data");
    write_file(&src.join("far"), b"future");
    set_mtime(&src.join("far"), far, 0);
    snap(st, &[&src]);
    let (far_spec, data_spec) = (at(&src, "latest:/data/far"), at(&src, "latest:/data"));
    for args in [
        &["ls", "-l", &far_spec][..],
        &["ls", "--json", &data_spec],
        &["find", "far"],
        &["find", "far", "--json"],
    ] {
        let o = st.cmd().args(args).assert();
        let o = o.get_output();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains(&at(&src, "/data/far")), "{args:?}: {text}");
    }
}
