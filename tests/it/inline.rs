//! Small files stored inline in their directories' trees, and trained zstd
//! dictionaries (format-spec/objects.md "Inline files", "Dictionaries"):
//! round trips with every kind of metadata, encrypted and not; files that
//! cross the 4 KiB threshold; unchanged inline files carried through many
//! incremental snapshots (with the local cache and without); a missing or
//! damaged dictionary named in the error; gc keeping dictionaries; and a
//! format-1 repository upgraded by its first new snapshot.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::{Rng, one_line_error, write_file};

/// The environment of a command with this process's cache directory
/// when `cache`, else none (the index in the repository, no tree cache).
fn layout(cache: bool) -> support::Env<'static> {
    if cache { support::cache_env() } else { &[] }
}

fn snap(repo: &Path, cache: bool, src: &Path) -> String {
    support::json(
        repo,
        layout(cache),
        &["snapshot", src.to_str().unwrap(), "--json"],
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// JSON-like text of `n` bytes: what dictionaries are good at.
fn event(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = format!(
        "{{\"id\": {}, \"type\": \"task_completed\", \"text\": \"",
        rng.below(1 << 30)
    )
    .into_bytes();
    v.extend(rng.text(n.saturating_sub(v.len() + 3)));
    v.extend_from_slice(b"\"}\n");
    v.truncate(n);
    v
}

/// The tree entry `name` of directory `path` in snapshot `id` (cat --raw).
fn raw_entry(repo: &Path, id: &str, dir: &Path, name: &str) -> Value {
    let snapv = support::json(repo, &[], &["cat", "--raw", "snapshot", id]);
    let mut tree = snapv["tree"].as_str().unwrap().to_string();
    for comp in dir.iter().skip(1).map(|c| c.to_str().unwrap()) {
        let t = support::json(repo, &[], &["cat", "--raw", "tree", &tree]);
        let e = t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == *comp)
            .unwrap()
            .clone();
        tree = e["subtree"].as_str().unwrap().to_string();
    }
    let t = support::json(repo, &[], &["cat", "--raw", "tree", &tree]);
    t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {t}"))
        .clone()
}

#[test]
fn inline_files_round_trip_with_every_kind_of_metadata() {
    for encrypted in [false, true] {
        let fx = support::Fixture::uninit();
        let repo = fx.path("repo");
        if encrypted {
            support::ok(&repo, &[], &["init"]);
        } else {
            support::ok(&repo, &[], &["init", "--no-encryption"]);
        }
        let src = fx.path("src");
        let mut rng = Rng::new(21);
        for n in [1usize, 17, 4095, 4096, 4097, 70_000] {
            write_file(&src.join(format!("f{n}")), &rng.bytes(n));
        }
        write_file(&src.join("empty"), b"");
        write_file(&src.join("ro.txt"), b"read-only and old\n");
        std::fs::set_permissions(src.join("ro.txt"), std::fs::Permissions::from_mode(0o444))
            .unwrap();
        support::set_mtime(&src.join("ro.txt"), 1_234_567_890, 123_456_789);
        std::fs::hard_link(src.join("f17"), src.join("f17-link")).unwrap();
        std::os::unix::fs::symlink("f17", src.join("sym")).unwrap();
        if support::user_xattrs_supported(&src) {
            xattr::set(src.join("f1"), "user.note", b"inline with xattr").unwrap();
        }
        let id = snap(&repo, false, &src);
        // 1..=4096 bytes inline, more chunked
        for (name, inline) in [("f1", 1), ("f4096", 4096), ("f4097", 0), ("empty", 0)] {
            let e = raw_entry(&repo, &id, &src, name);
            assert_eq!(e["inline"], inline, "{name}: {e}");
            assert_eq!(
                e["content"].as_array().unwrap().is_empty(),
                name != "f4097",
                "{name}: {e}"
            );
        }
        let out = fx.path("out");
        support::ok(
            &repo,
            &[],
            &[
                "restore",
                &id,
                "--target",
                out.to_str().unwrap(),
                "--verify",
            ],
        );
        support::assert_same_tree(&src, &support::under(&out, &src));
        // cat gives the bytes of an inline file
        let f = src.join("f4095");
        let o = support::run(
            &repo,
            support::cache_env(),
            &["cat", &format!("{id}:{}", f.display())],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, std::fs::read(&f).unwrap());
    }
}

#[test]
fn files_crossing_the_inline_threshold_across_snapshots() {
    let fx = support::Fixture::uninit();
    let repo = fx.path("repo");
    support::ok(&repo, support::cache_env(), &["init", "--no-encryption"]);
    let src = fx.path("src");
    let mut rng = Rng::new(5);
    let mut states = Vec::new();
    for n in [100usize, 5000, 100, 4096, 4097, 0, 3] {
        write_file(&src.join("grows"), &rng.bytes(n));
        write_file(&src.join("steady.txt"), b"unchanged");
        let id = snap(&repo, true, &src);
        states.push((id, support::digest(&src), n));
    }
    for (id, want, n) in &states {
        let out = fx.path(format!("out-{id}"));
        support::ok(
            &repo,
            support::cache_env(),
            &["restore", id, "--target", out.to_str().unwrap(), "--verify"],
        );
        assert_eq!(
            &support::digest(&support::under(&out, &src)),
            want,
            "snapshot with a {n}-byte file"
        );
    }
}

/// Unchanged inline files are reused from the parent's cached listing
/// without their bytes; when their part must be written again the bytes
/// come from the parent's tree. Five generations of a parted directory,
/// each changing a few files, all restore exactly, with the cache and
/// without it.
#[test]
fn unchanged_inline_files_survive_many_incremental_snapshots() {
    for cache in [true, false] {
        let fx = support::Fixture::uninit();
        let repo = fx.path("repo");
        support::ok(&repo, layout(cache), &["init"]);
        let src = fx.path("src");
        let mut rng = Rng::new(77);
        for i in 0..3000 {
            let n = 200 + rng.below(1500) as usize;
            write_file(
                &src.join(format!("events/{i:05}.json")),
                &event(&mut rng, n),
            );
        }
        let mut gens: Vec<(String, BTreeMap<String, [u8; 32]>)> = Vec::new();
        for g in 0..5 {
            for _ in 0..20 {
                let i = rng.below(3000);
                let p = src.join(format!("events/{i:05}.json"));
                if rng.below(4) == 0 {
                    let _ = std::fs::remove_file(&p);
                } else {
                    let n = 200 + rng.below(1500) as usize;
                    write_file(&p, &event(&mut rng, n));
                }
            }
            write_file(
                &src.join(format!("events/new-{g}.json")),
                &event(&mut rng, 900),
            );
            gens.push((snap(&repo, cache, &src), support::digest(&src)));
        }
        for (k, (id, want)) in gens.iter().enumerate() {
            let out = fx.path(format!("out-{k}"));
            support::ok(
                &repo,
                layout(cache),
                &["restore", id, "--target", out.to_str().unwrap(), "--verify"],
            );
            assert_eq!(
                &support::digest(&support::under(&out, &src)),
                want,
                "generation {k}, cache {cache}"
            );
        }
    }
}

fn dict_files(repo: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(repo.join("dicts")) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Compression kinds of every blob in the plaintext packs.
fn compressions(repo: &Path) -> BTreeMap<u8, usize> {
    let mut out = BTreeMap::new();
    for p in support::pack_files(repo) {
        let b = std::fs::read(&p).unwrap();
        for e in strata::pack::format::parse_pack(&b, "pack").unwrap() {
            *out.entry(e.compression as u8).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn a_dictionary_is_trained_used_and_named_when_missing_or_damaged() {
    let fx = support::Fixture::uninit();
    let repo = fx.path("repo");
    support::ok(&repo, &[], &["init", "--no-encryption"]);
    let src = fx.path("src");
    let mut rng = Rng::new(9);
    for d in 0..4 {
        for i in 0..300 {
            let n = 300 + rng.below(3000) as usize;
            write_file(&src.join(format!("d{d}/{i:04}.json")), &event(&mut rng, n));
        }
    }
    let id = snap(&repo, false, &src);
    let dicts = dict_files(&repo);
    assert_eq!(dicts.len(), 1, "one dictionary trained");
    let kinds = compressions(&repo);
    assert!(
        kinds.get(&2).copied().unwrap_or(0) > 10,
        "tree parts use it: {kinds:?}"
    );
    // A second snapshot trains no other dictionary.
    write_file(&src.join("d0/extra.json"), &event(&mut rng, 500));
    let id2 = snap(&repo, false, &src);
    assert_eq!(dict_files(&repo).len(), 1);
    let out = fx.path("out");
    support::ok(
        &repo,
        &[],
        &[
            "restore",
            &id2,
            "--target",
            out.to_str().unwrap(),
            "--verify",
        ],
    );
    support::assert_same_tree(&src, &support::under(&out, &src));

    // Without the dictionary, a restore fails naming blob and dictionary.
    let aside = fx.path("dict-aside");
    std::fs::rename(&dicts[0], &aside).unwrap();
    let o = support::run(
        &repo,
        &[],
        &[
            "restore",
            &id,
            "--target",
            fx.path("out2").to_str().unwrap(),
        ],
    );
    let line = one_line_error(&o, "restore without its dictionary");
    assert!(
        line.contains("blob") && line.contains("needs dictionary"),
        "{line}"
    );
    // A damaged dictionary file: the error names the file too.
    let mut b = std::fs::read(&aside).unwrap();
    let n = b.len();
    b[n / 2] ^= 0x40;
    std::fs::write(&dicts[0], &b).unwrap();
    let o = support::run(
        &repo,
        &[],
        &[
            "restore",
            &id,
            "--target",
            fx.path("out3").to_str().unwrap(),
        ],
    );
    let line = one_line_error(&o, "restore with a damaged dictionary");
    let name = dicts[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        line.contains("needs dictionary") && line.contains(&name),
        "{line}"
    );
    std::fs::rename(&aside, &dicts[0]).unwrap();

    // gc keeps the dictionary every remaining blob needs.
    support::ok(&repo, &[], &["forget", &id]);
    let grace = [("STRATA_GC_GRACE", "0")];
    let mut c = support::unlock_for(support::command(), &repo);
    c.arg("--repo").arg(&repo).args(["gc", "--max-unused", "0"]);
    for (k, v) in grace {
        c.env(k, v);
    }
    assert!(c.output().unwrap().status.success());
    assert_eq!(dict_files(&repo).len(), 1, "gc never deletes a dictionary");
    let out4 = fx.path("out4");
    support::ok(
        &repo,
        &[],
        &[
            "restore",
            &id2,
            "--target",
            out4.to_str().unwrap(),
            "--verify",
        ],
    );
    support::assert_same_tree(&src, &support::under(&out4, &src));
    // stats counts inline files and dictionary blobs
    let st = support::json(&repo, &[], &["stats", "--json"]);
    assert!(st["inline_files"].as_u64().unwrap() >= 1201, "{st}");
    assert!(st["dict_blobs"].as_u64().unwrap() > 10, "{st}");
    assert_eq!(st["dictionaries"], 1, "{st}");
}

/// A format-1 repository (the checked-in vectors) keeps restoring exactly
/// after strata upgrades it with a new snapshot, which is stored in format 2.
#[test]
fn a_format_1_repository_is_upgraded_by_its_next_snapshot() {
    let fx = support::Fixture::uninit();
    let repo = fx.path("repo");
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/repo");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&vectors)
        .arg(&repo)
        .status()
        .unwrap();
    assert!(st.success());
    for d in ["keys", "locks", "tmp"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    let before: Value = support::json(&repo, &[], &["snapshots", "--json"]);
    let old: Vec<String> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut restored = Vec::new();
    for id in &old {
        let out = fx.path(format!("old-{id}"));
        support::ok(
            &repo,
            &[],
            &["restore", id, "--target", out.to_str().unwrap()],
        );
        restored.push(out);
    }
    let src = fx.path("src");
    write_file(&src.join("a.txt"), b"new snapshot, format 2");
    let o = support::run(&repo, &[], &["snapshot", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("upgraded the repository to format 2"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg = support::json(&repo, &[], &["cat", "--raw", "config"]);
    assert_eq!(cfg["version"], 2);
    for (id, first) in old.iter().zip(&restored) {
        let out = fx.path(format!("again-{id}"));
        support::ok(
            &repo,
            &[],
            &["restore", id, "--target", out.to_str().unwrap()],
        );
        let opts = support::Compare {
            root_meta: false,
            ..support::Compare::default()
        };
        support::assert_same_tree_with(first, &out, &opts);
    }
    let out = fx.path("new");
    support::ok(
        &repo,
        &[],
        &[
            "restore",
            "latest",
            "--target",
            out.to_str().unwrap(),
            "--verify",
        ],
    );
    assert_eq!(
        std::fs::read(support::under(&out, &src).join("a.txt")).unwrap(),
        b"new snapshot, format 2"
    );
}

/// Regression (issue 19): `cat --raw pack` named the compression of blobs
/// stored with a dictionary (compression 2) "none". Every blob's
/// compression must match the pack's own trailer byte.
#[test]
fn cat_raw_pack_names_dictionary_compression() {
    let fx = support::Fixture::uninit();
    let repo = fx.path("repo");
    support::ok(&repo, &[], &["init", "--no-encryption"]);
    let src = fx.path("src");
    let mut rng = Rng::new(19);
    for i in 0..600 {
        let n = 300 + rng.below(3000) as usize;
        write_file(&src.join(format!("{i:04}.json")), &event(&mut rng, n));
    }
    snap(&repo, false, &src);
    let mut seen = BTreeMap::new();
    for p in support::pack_files(&repo) {
        let b = std::fs::read(&p).unwrap();
        let want: BTreeMap<String, u8> = strata::pack::format::parse_pack(&b, "pack")
            .unwrap()
            .iter()
            .map(|e| (e.id.to_hex(), e.compression as u8))
            .collect();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let v = support::json(&repo, &[], &["cat", "--raw", "pack", &name]);
        for blob in v["blobs"].as_array().unwrap() {
            let id = blob["id"].as_str().unwrap();
            let shown = blob["compression"].as_str().unwrap().to_string();
            let expected = match want[id] {
                0 => "none",
                1 => "zstd",
                2 => "zstd-dict",
                other => panic!("compression byte {other}"),
            };
            assert_eq!(shown, expected, "blob {id} of pack {name}");
            *seen.entry(shown).or_insert(0) += 1;
        }
    }
    assert!(
        seen.get("zstd-dict").copied().unwrap_or(0) > 10,
        "dictionary-compressed blobs listed: {seen:?}"
    );
}
