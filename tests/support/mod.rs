//! Small helpers shared by `tests/crash.rs`, `tests/bad_input.rs` and
//! `tests/vectors.rs`: run the real `strata` binary, describe directory trees
//! as manifests (path -> kind and BLAKE3 of contents), a seeded RNG.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// The passphrase of test repositories (also in `tests/common`).
pub const PASSPHRASE: &str = "correct horse battery staple";

/// `strata` with the test passphrase (scrypt 2^10) and no other unlock
/// source, and no local tree cache (every read goes to the packs).
pub fn command() -> Command {
    let mut c = Command::new(bin());
    c.env("STRATA_CACHE_DIR", "")
        .env_remove("STRATA_PASSWORD_COMMAND")
        .env_remove("STRATA_IDENTITY")
        .env_remove("STRATA_NEW_PASSWORD")
        .env("STRATA_PASSWORD", PASSPHRASE)
        .env("STRATA_SCRYPT_LOG_N", "10");
    c
}

/// `strata -r REPO ARGS...`, stdin closed.
pub fn strata(repo: &Path, args: &[&str]) -> Output {
    command()
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strata")
}

/// Run and require exit 0; returns stdout.
pub fn strata_ok(repo: &Path, args: &[&str]) -> String {
    let o = strata(repo, args);
    assert!(
        o.status.success(),
        "strata {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 stdout")
}

/// What one path in a tree is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file: its length and the BLAKE3 of its contents.
    File(u64, [u8; 32]),
    /// A directory.
    Dir,
    /// A symlink and its target bytes.
    Symlink(Vec<u8>),
}

/// Path (relative, `/`-separated) -> node, for everything below `root`.
pub type Manifest = BTreeMap<String, Node>;

/// Describe everything below `root` (not `root` itself).
pub fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Manifest) {
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let e = e.expect("dir entry");
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .expect("below root")
            .to_string_lossy()
            .into_owned();
        let ft = e.file_type().expect("file type");
        if ft.is_dir() {
            out.insert(rel, Node::Dir);
            walk(root, &path, out);
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&path).expect("read_link");
            out.insert(rel, Node::Symlink(t.as_os_str().as_bytes().to_vec()));
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).expect("read file");
            out.insert(
                rel,
                Node::File(bytes.len() as u64, *blake3::hash(&bytes).as_bytes()),
            );
        } else {
            panic!("unexpected file type at {}", path.display());
        }
    }
}

/// Assert two manifests are equal, listing the first differences.
pub fn assert_same(expected: &Manifest, got: &Manifest, what: &str) {
    if expected == got {
        return;
    }
    let mut diffs = Vec::new();
    for (k, v) in expected {
        match got.get(k) {
            None => diffs.push(format!("missing {k}")),
            Some(g) if g != v => diffs.push(format!("differs {k}: {v:?} vs {g:?}")),
            _ => {}
        }
    }
    for k in got.keys() {
        if !expected.contains_key(k) {
            diffs.push(format!("extra {k}"));
        }
    }
    diffs.truncate(10);
    panic!(
        "{what}: restored tree differs from the source:\n{}",
        diffs.join("\n")
    );
}

/// Every file below `dir`, relative, sorted (recursively).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).expect("below").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Pack files of a repository: `packs/xx/<hex>` paths, sorted.
pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    files_below(&repo.join("packs"))
        .into_iter()
        .map(|p| repo.join("packs").join(p))
        .collect()
}

/// Snapshot ids (file names under `snapshots/`), sorted.
pub fn snapshot_ids(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .expect("snapshots dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// xorshift64* (the generator of format-spec/chunker.md), for seeded choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator; a zero seed is replaced (xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` pseudo-random bytes (BLAKE3 XOF keyed by the next state: fast even
    /// in debug builds, since dependencies are optimized).
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        let seed = self.next_u64().to_le_bytes();
        let mut h = blake3::Hasher::new();
        h.update(b"strata test data");
        h.update(&seed);
        h.finalize_xof().fill(&mut v);
        v
    }
    /// Compressible text-like bytes.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ", "golf ", "hotel ",
            "india ", "juliet\n", "kilo ", "lima ",
        ];
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(WORDS[self.below(WORDS.len() as u64) as usize].as_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Check the shape of a failing command: non-zero exit, one line on stderr
/// starting with `strata: `, no panic. Returns the line.
pub fn one_line_error(o: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "{what}: expected failure, got {:?}; stderr: {stderr}",
        o.status
    );
    assert!(!stderr.contains("panicked"), "{what}: panicked: {stderr}");
    assert!(
        o.status.code().is_some(),
        "{what}: killed by a signal: {:?}",
        o.status
    );
    let line = stderr.strip_suffix('\n').unwrap_or(&stderr);
    assert!(
        !line.is_empty() && !line.contains('\n'),
        "{what}: expected exactly one line on stderr, got {stderr:?}"
    );
    assert!(
        line.starts_with("strata: "),
        "{what}: stderr does not start with `strata: `: {line:?}"
    );
    line.to_string()
}

/// Bytes of every file under `dir`, by relative path.
pub fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_below(dir)
        .into_iter()
        .map(|rel| {
            let b = std::fs::read(dir.join(&rel)).unwrap_or_default();
            (rel, b)
        })
        .collect()
}

/// The secret of an encrypted test repository, read the way
/// format-spec/keys.md describes it, independently of the library: the key
/// file is decrypted with the passphrase by the age crate and its bincode
/// body parsed by hand.
pub struct Secret {
    /// The data identity (decrypts packs, manifests, config).
    pub identity: age::x25519::Identity,
    /// The 32-byte id key.
    pub id_key: [u8; 32],
    /// The chunker's gear seed.
    pub seed: u64,
}

impl Secret {
    /// Read the first key file of `repo` with the test passphrase.
    pub fn read(repo: &Path) -> Secret {
        let dir = repo.join("keys");
        let mut keys: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none())
            .collect();
        keys.sort();
        let bytes = std::fs::read(&keys[0]).unwrap();
        let mut id = age::scrypt::Identity::new(PASSPHRASE.to_string().into());
        id.set_max_work_factor(16);
        let plain = age::decrypt(&id, &bytes).expect("the key file decrypts with the passphrase");
        // envelope: "STRATA" 'K' version, 32-byte checksum, u32 length, body
        assert_eq!(&plain[..8], b"STRATAK\x01");
        assert_eq!(blake3::hash(&plain[44..]).as_bytes(), &plain[8..40]);
        let body = &plain[44..];
        // body: repo_id [u8; 32], identity (varint length + UTF-8), id_key [u8; 32], seed varint
        let mut at = 32;
        let (len, n) = varint(&body[at..]);
        at += n;
        let identity: age::x25519::Identity = std::str::from_utf8(&body[at..at + len as usize])
            .unwrap()
            .parse()
            .unwrap();
        at += len as usize;
        let id_key: [u8; 32] = body[at..at + 32].try_into().unwrap();
        at += 32;
        let (seed, n) = varint(&body[at..]);
        assert_eq!(at + n, body.len(), "key body length");
        Secret {
            identity,
            id_key,
            seed,
        }
    }

    /// The key of data chunk ids (keys.md "Derived keys").
    pub fn data_key(&self) -> [u8; 32] {
        blake3::derive_key("strata 2026-11-22 data chunk id", &self.id_key)
    }

    /// The keyed id of a data chunk.
    pub fn data_id(&self, chunk: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.data_key(), chunk).as_bytes()
    }

    /// Decrypt an age file of the repository (a pack, a manifest).
    pub fn decrypt(&self, bytes: &[u8]) -> Vec<u8> {
        age::decrypt(&self.identity, bytes).expect("decrypts with the data identity")
    }
}

/// bincode 2 varint: returns the value and the bytes used.
fn varint(b: &[u8]) -> (u64, usize) {
    match b[0] {
        x @ 0..=250 => (u64::from(x), 1),
        251 => (
            u64::from(u16::from_le_bytes(b[1..3].try_into().unwrap())),
            3,
        ),
        252 => (
            u64::from(u32::from_le_bytes(b[1..5].try_into().unwrap())),
            5,
        ),
        253 => (u64::from_le_bytes(b[1..9].try_into().unwrap()), 9),
        x => panic!("varint tag {x}"),
    }
}
