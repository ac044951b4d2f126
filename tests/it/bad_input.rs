//! Bad input, damaged repositories and misuse: every failure is ONE line on
//! stderr starting with `strata: `, a non-zero exit code, no panic, the
//! offending object named, and nothing bad written (no garbage restored,
//! nothing in the repository overwritten).

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata::blob::{BlobKind, Compression};
use strata::pack::format::{PackEntry, parse_pack};
use support::one_line_error;

/// A temp dir with a repository `repo` (small packs) and a source dir `src/data`.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    src: PathBuf,
}

impl Fixture {
    /// An unencrypted repository: these tests corrupt bytes at offsets of
    /// the plaintext format. Tampering with encrypted repositories is
    /// tested in tests/it/encryption.rs.
    fn new(init_args: &[&str]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = root.join("repo");
        let mut args = vec!["init", "--no-encryption"];
        args.extend_from_slice(init_args);
        support::ok(&repo, &[], &args);
        let src = root.join("src/data");
        std::fs::create_dir_all(&src).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            repo,
            src,
        }
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Take a snapshot of `src/data`; returns (id, root tree id).
    fn snapshot(&self) -> (String, String) {
        let out = support::ok(
            &self.repo,
            &[],
            &["snapshot", self.src.to_str().unwrap(), "--json"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["tree"].as_str().unwrap().to_string(),
        )
    }

    fn target(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn restore(&self, spec: &str, target: &Path, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["restore", spec, "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        support::run(&self.repo, &[], &args)
    }

    /// Every pack with its parsed trailer (parsed by the library: the format
    /// itself is checked independently in tests/it/vectors.rs).
    fn packs(&self) -> Vec<(PathBuf, Vec<PackEntry>)> {
        support::pack_files(&self.repo)
            .into_iter()
            .map(|p| {
                let entries = parse_pack(&std::fs::read(&p).unwrap(), "pack").unwrap();
                (p, entries)
            })
            .collect()
    }

    fn packs_of_kind(&self, kind: BlobKind) -> Vec<(PathBuf, Vec<PackEntry>)> {
        self.packs()
            .into_iter()
            .filter(|(_, e)| e[0].kind == kind)
            .collect()
    }
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn flip_byte(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x5a;
    std::fs::write(path, b).unwrap();
}

fn text(n: usize, salt: u64) -> Vec<u8> {
    support::Rng::new(salt).text(n)
}

fn random(n: usize, salt: u64) -> Vec<u8> {
    support::Rng::new(salt).bytes(n)
}

// --- not a repository ------------------------------------------------------

#[test]
fn repository_that_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let target = tmp.path().join("never-written");
    for args in [
        vec!["snapshots"],
        vec!["snapshot", "/etc/hostname"],
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
    ] {
        let o = support::run(&missing, &[], &args);
        let line = one_line_error(&o, "missing repository");
        assert_eq!(o.status.code(), Some(10), "{args:?}: {line}");
        assert!(
            line.contains("nope") && line.contains("does not exist"),
            "{line}"
        );
    }
    assert!(!missing.exists(), "nothing was created");
    assert!(!target.exists());
}

#[test]
fn directory_that_is_not_a_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plain");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a repo").unwrap();
    for args in [vec!["snapshots"], vec!["snapshot", "/etc/hostname"]] {
        let o = support::run(&dir, &[], &args);
        let line = one_line_error(&o, "not a repository");
        assert_eq!(o.status.code(), Some(10), "{line}");
        assert!(line.contains("not a strata repository"), "{line}");
        assert!(line.contains("plain"), "{line}");
    }
    // nothing was added to the directory
    assert_eq!(support::list_tree(&dir), ["notes.txt"]);
}

#[test]
fn regular_file_given_as_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    std::fs::write(&file, b"not a repo").unwrap();
    let o = support::run(&file, &[], &["snapshots"]);
    let line = one_line_error(&o, "file as repository");
    assert!(line.contains("not a strata repository"), "{line}");
    assert_eq!(o.status.code(), Some(10), "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a repo");
}

// --- damaged config ----------------------------------------------------------

#[test]
fn truncated_config() {
    let f = Fixture::new(&[]);
    let cfg = f.repo.join("config");
    let good = std::fs::read(&cfg).unwrap();
    for len in [0, 10, 43, 44, good.len() - 1] {
        std::fs::write(&cfg, &good[..len]).unwrap();
        let o = support::run(&f.repo, &[], &["snapshots"]);
        let line = one_line_error(&o, &format!("config truncated to {len}"));
        assert!(line.contains("config"), "{line}");
        assert!(line.contains("corrupt"), "{line}");
        // the damaged file is reported, never rewritten
        assert_eq!(std::fs::read(&cfg).unwrap(), &good[..len]);
    }
    std::fs::write(&cfg, &good).unwrap();
    support::ok(&f.repo, &[], &["snapshots"]);
}

#[test]
fn snapshot_file_copied_over_config() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"a");
    let (id, _) = f.snapshot();
    let cfg = f.repo.join("config");
    std::fs::copy(f.repo.join("snapshots").join(&id), &cfg).unwrap();
    let o = support::run(&f.repo, &[], &["snapshots"]);
    let line = one_line_error(&o, "snapshot as config");
    assert!(line.contains("config"), "{line}");
    assert!(line.contains("kind"), "kind mismatch not reported: {line}");
}

// --- restore problems --------------------------------------------------------

/// Chunk ids of a file with the repository's default chunker (cut points
/// taken over the whole buffer, format-spec/chunker.md).
fn chunk_ids(bytes: &[u8]) -> Vec<[u8; 32]> {
    let c = strata::chunker::Chunker::new(&strata::repo::config::ChunkerParams::default()).unwrap();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = c.cut(rest);
        out.push(*blake3::hash(&rest[..n]).as_bytes());
        rest = &rest[n..];
    }
    out
}

#[test]
fn missing_pack_at_restore_names_pack_and_files_and_writes_nothing() {
    let f = Fixture::new(&["--pack-size-mib", "1"]);
    // Several data packs: the files are larger than the pack target.
    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("dir{i}/big{i}.bin"), random(1_500_000, 100 + i)))
        .chain([("small.txt".to_string(), text(5000, 7))])
        .collect();
    for (p, b) in &files {
        f.write(p, b);
    }
    f.snapshot();
    let data = f.packs_of_kind(BlobKind::Data);
    assert!(data.len() >= 3, "expected several data packs");
    let (victim, entries) = &data[1];
    let in_victim: std::collections::HashSet<[u8; 32]> = entries.iter().map(|e| e.id.0).collect();
    let affected: Vec<String> = files
        .iter()
        .filter(|(_, b)| chunk_ids(b).iter().any(|c| in_victim.contains(c)))
        .map(|(p, _)| format!("data/{p}"))
        .collect();
    assert!(!affected.is_empty());
    std::fs::remove_file(victim).unwrap();

    for extra in [&[][..], &["--verify"][..]] {
        let target = f.target("restore");
        let o = f.restore("latest", &target, extra);
        let line = one_line_error(&o, "missing pack");
        assert!(line.contains(&name_of(victim)), "pack id not named: {line}");
        for a in &affected {
            assert!(
                line.contains(a.as_str()),
                "affected file {a} not named: {line}"
            );
        }
        for (p, _) in &files {
            let p = format!("data/{p}");
            if !affected.contains(&p) {
                assert!(!line.contains(p.as_str()), "unaffected {p} named: {line}");
            }
        }
        assert!(!target.exists(), "restore wrote into the target");
    }
    // an existing, empty target stays empty
    let target = f.target("existing");
    std::fs::create_dir(&target).unwrap();
    let o = f.restore("latest", &target, &[]);
    one_line_error(&o, "missing pack, existing target");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn restore_target_that_is_a_regular_file() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"contents of a");
    f.snapshot();
    let target = f.target("file");
    std::fs::write(&target, b"precious").unwrap();
    let o = f.restore("latest", &target, &[]);
    let line = one_line_error(&o, "target is a file");
    assert!(line.contains("file"), "{line}");
    assert!(line.contains("not a directory"), "{line}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
}

/// Every restored file is, byte for byte, either the source's byte or an
/// unwritten zero: never bytes the source did not have.
/// `src_dir` is the source's absolute path, which a whole-snapshot restore
/// recreates below `target`.
fn assert_no_garbage(target: &Path, src_dir: &Path, src: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let stored = src_dir.strip_prefix("/").unwrap_or(src_dir);
    for (rel, got) in support::contents(target) {
        let rel_src = rel.strip_prefix(stored).unwrap_or(&rel).to_path_buf();
        let want = src
            .get(&rel_src)
            .unwrap_or_else(|| panic!("{what}: unexpected file {}", rel.display()));
        assert!(
            got.len() <= want.len(),
            "{what}: {} too long",
            rel.display()
        );
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                g == w || *g == 0,
                "{what}: {} byte {i} is {g:#x}, source has {w:#x}: garbage restored",
                rel.display()
            );
        }
    }
}

#[test]
fn flipped_byte_in_data_pack_is_reported_never_restored() {
    for compression in [Compression::Zstd, Compression::None] {
        for verify in [false, true] {
            let what = format!("{compression:?} blob, verify={verify}");
            let f = Fixture::new(&[]);
            f.write("text.txt", &text(30_000, 1));
            f.write("random.bin", &random(30_000, 2));
            f.write("sub/other.txt", &text(20_000, 3));
            let src = support::contents(&f.src);
            f.snapshot();
            let data = f.packs_of_kind(BlobKind::Data);
            assert_eq!(data.len(), 1, "{what}");
            let (pack, entries) = &data[0];
            let e = entries
                .iter()
                .find(|e| e.compression == compression)
                .unwrap_or_else(|| panic!("{what}: no such blob"));
            let at = e.offset + u64::from(e.stored_len) / 2;
            flip_byte(pack, at);
            let target = f.target("restore");
            let extra: &[&str] = if verify { &["--verify"] } else { &[] };
            let o = f.restore("latest", &target, extra);
            let line = one_line_error(&o, &what);
            assert!(line.contains("corrupt"), "{what}: {line}");
            assert!(
                line.contains(&name_of(pack)[..8]),
                "{what}: pack not named: {line}"
            );
            assert!(
                line.contains(&e.id.short()),
                "{what}: blob not named: {line}"
            );
            assert_no_garbage(&target, &f.src, &src, &what);
        }
    }
}

#[test]
fn flipped_byte_in_tree_pack_is_reported() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"alpha");
    f.write("sub/b.txt", b"bravo");
    let (_, root) = f.snapshot();
    let trees = f.packs_of_kind(BlobKind::Tree);
    assert_eq!(trees.len(), 1);
    let (pack, entries) = &trees[0];
    let e = entries.iter().find(|e| e.id.to_hex() == root).unwrap();
    flip_byte(pack, e.offset + u64::from(e.stored_len) / 2);
    for extra in [&[][..], &["--verify"][..]] {
        let target = f.target("restore");
        let o = f.restore("latest", &target, extra);
        let line = one_line_error(&o, "tree pack flipped");
        assert!(line.contains("corrupt"), "{line}");
        assert!(line.contains(&name_of(pack)[..8]), "pack not named: {line}");
        assert!(line.contains(&root[..8]), "tree blob not named: {line}");
        assert!(!target.exists(), "restore wrote into the target");
    }
    // the next snapshot does not silently build on the damaged parent
    // tree: it fails (one line), or what it saved restores exactly (it did
    // not reuse the damaged blob)
    let o = support::run(&f.repo, &[], &["snapshot", f.src.to_str().unwrap()]);
    if o.status.success() {
        let target = f.target("after");
        let r = f.restore("latest", &target, &[]);
        assert!(
            r.status.success(),
            "the snapshot after the damage does not restore: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(support::contents(&support::under(&target, &f.src)) == support::contents(&f.src));
    } else {
        one_line_error(&o, "snapshot over a damaged parent");
    }
}

// --- damaged snapshots -------------------------------------------------------

#[test]
fn flipped_byte_in_snapshot_manifest() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"alpha");
    let (id, _) = f.snapshot();
    let path = f.repo.join("snapshots").join(&id);
    let len = std::fs::metadata(&path).unwrap().len();
    // in the header (magic, kind, id, length) and in the body
    for at in [0, 6, 7, 20, 41, 44, len / 2, len - 1] {
        let good = std::fs::read(&path).unwrap();
        flip_byte(&path, at);
        let o = support::run(&f.repo, &[], &["snapshots"]);
        let line = one_line_error(&o, &format!("snapshot byte {at}"));
        assert!(line.contains(&format!("snapshots/{id}")), "{line}");
        assert!(line.contains("corrupt"), "{line}");
        let o = f.restore(&id[..10], &f.target("t"), &[]);
        one_line_error(&o, "restore of a damaged snapshot");
        assert!(!f.target("t").exists());
        std::fs::write(&path, good).unwrap();
    }
    support::ok(&f.repo, &[], &["snapshots"]);
}

#[test]
fn swapped_snapshot_files_are_detected() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"alpha");
    let (id1, _) = f.snapshot();
    f.write("a.txt", b"alpha, changed");
    let (id2, _) = f.snapshot();
    let dir = f.repo.join("snapshots");
    std::fs::rename(dir.join(&id1), dir.join("tmp-swap")).unwrap();
    std::fs::rename(dir.join(&id2), dir.join(&id1)).unwrap();
    std::fs::rename(dir.join("tmp-swap"), dir.join(&id2)).unwrap();
    let o = support::run(&f.repo, &[], &["snapshots"]);
    let line = one_line_error(&o, "swapped snapshots");
    assert!(
        line.contains(&id1) || line.contains(&id2),
        "file not named: {line}"
    );
    assert!(line.contains("does not match"), "{line}");
    for id in [&id1, &id2] {
        let o = f.restore(&id[..12], &f.target("t"), &[]);
        one_line_error(&o, "restore of a swapped snapshot");
        assert!(!f.target("t").exists());
    }
}

// --- snapshot ids --------------------------------------------------------------

#[test]
fn bad_snapshot_id_prefixes() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"alpha");
    let (id, _) = f.snapshot();
    let target = f.target("t");
    // not hex at all
    for spec in ["xyz", "latest-1", "12 34", "-"] {
        let o = f.restore(spec, &target, &[]);
        let line = one_line_error(&o, spec);
        assert!(line.contains("not a snapshot id"), "{spec}: {line}");
    }
    // hex that matches nothing
    let other = if id.starts_with('0') { "1111" } else { "0000" };
    let o = f.restore(other, &target, &[]);
    let line = one_line_error(&o, "unknown prefix");
    assert!(
        line.contains("no snapshot matches") && line.contains(other),
        "{line}"
    );
    // a full id with one digit changed
    let mut wrong = id.clone().into_bytes();
    wrong[63] = if wrong[63] == b'0' { b'1' } else { b'0' };
    let o = f.restore(std::str::from_utf8(&wrong).unwrap(), &target, &[]);
    one_line_error(&o, "wrong full id");
    // a subpath that is not in the snapshot
    let o = f.restore(&format!("{}:nope/nothing", &id[..8]), &target, &[]);
    let line = one_line_error(&o, "missing subpath");
    assert!(line.contains("nope"), "{line}");
    assert!(!target.exists());
    // `latest` in an empty repository
    let g = Fixture::new(&[]);
    let o = g.restore("latest", &target, &[]);
    let line = one_line_error(&o, "latest in an empty repository");
    assert!(line.contains("latest"), "{line}");
    assert!(!target.exists());
}

#[test]
fn ambiguous_snapshot_prefix() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"alpha");
    // 17 snapshots always share a first hex digit; usually 5 or 6 do.
    let mut seen: BTreeMap<char, String> = BTreeMap::new();
    let mut pair = None;
    for i in 0..17 {
        f.write("a.txt", format!("alpha {i}").as_bytes());
        let (id, _) = f.snapshot();
        let c = id.chars().next().unwrap();
        if let Some(prev) = seen.insert(c, id.clone()) {
            pair = Some((prev, id));
            break;
        }
    }
    let (a, b) = pair.expect("pigeonhole");
    let common: String = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x)
        .collect();
    let target = f.target("t");
    let o = f.restore(&common, &target, &[]);
    let line = one_line_error(&o, "ambiguous prefix");
    assert!(line.contains("ambiguous"), "{line}");
    assert!(!target.exists());
    // one more digit resolves it
    support::ok(
        &f.repo,
        &[],
        &[
            "restore",
            &a[..=common.len()],
            "--target",
            target.to_str().unwrap(),
        ],
    );
}

// --- init -----------------------------------------------------------------------

#[test]
fn init_on_an_existing_repository_refuses_and_changes_nothing() {
    let f = Fixture::new(&[]);
    f.write("a.txt", b"alpha");
    f.snapshot();
    let before = support::contents(&f.repo);
    for args in [
        vec!["init"],
        vec![
            "init",
            "--chunk-min",
            "4096",
            "--chunk-avg",
            "8192",
            "--chunk-max",
            "16384",
        ],
        vec!["init", "--compression", "0"],
    ] {
        let o = support::run(&f.repo, &[], &args);
        let line = one_line_error(&o, "init over a repository");
        assert!(line.contains("already exists"), "{line}");
        assert_eq!(support::contents(&f.repo), before, "repository changed");
    }
    support::ok(&f.repo, &[], &["snapshots"]);
    // a non-empty directory that is not a repository, and a regular file
    let dir = f.target("busy");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), b"keep").unwrap();
    let o = support::run(&dir, &[], &["init"]);
    let line = one_line_error(&o, "init in a non-empty directory");
    assert!(line.contains("not empty"), "{line}");
    assert_eq!(support::list_tree(&dir), ["keep.txt"]);
    let file = f.target("file");
    std::fs::write(&file, b"x").unwrap();
    let o = support::run(&file, &[], &["init"]);
    one_line_error(&o, "init on a file");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn invalid_init_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--chunk-min", "10"], "chunk"),
        (&["--chunk-min", "65536", "--chunk-avg", "16384"], "chunk"),
        (&["--chunk-avg", "1000001"], "chunk"),
        (
            &[
                "--chunk-min",
                "64",
                "--chunk-avg",
                "256",
                "--chunk-max",
                "512",
            ],
            "chunk",
        ),
        (&["--chunk-max", "4294967295"], "chunk"),
        (&["--compression", "23"], "compression"),
        (&["--compression=-1"], "compression"),
        (&["--pack-size-mib", "0"], "pack"),
        (&["--pack-size-mib", "4096"], "pack"),
    ];
    for (i, (args, word)) in cases.iter().enumerate() {
        let repo = tmp.path().join(format!("r{i}"));
        let mut a = vec!["init"];
        a.extend_from_slice(args);
        let o = support::run(&repo, &[], &a);
        let line = one_line_error(&o, &format!("init {args:?}"));
        assert!(line.to_lowercase().contains(word), "{args:?}: {line}");
        assert!(!repo.exists(), "{args:?}: repository directory created");
    }
}

#[test]
fn huge_pack_size_is_rejected_not_wrapped() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("r");
    // (2^44 + 1) << 20 wraps to 1 MiB in u64
    let o = support::run(&repo, &[], &["init", "--pack-size-mib", "17592186044417"]);
    one_line_error(&o, "huge pack size");
    assert!(!repo.exists());
}
