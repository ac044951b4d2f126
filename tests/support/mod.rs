//! The one helper module of the integration tests (`tests/it/main.rs`
//! says `mod support;`; one of each): the `strata` binary with the test
//! unlock environment ([`command`], the runner [`run`] / [`ok`] / [`json`]
//! taking an environment, or the [`Strata`] handle and [`Fixture`] temp
//! dir), one seeded generator ([`Rng`], [`random_bytes`]) and one generated
//! source tree ([`make_tree`]), one directory listing ([`list_tree`]) with
//! its views ([`list_files`], [`pack_files`], [`contents`], [`digest`]), one
//! tree comparison ([`compare_trees`], over [`Manifest`]s, with [`Compare`]
//! options), the shape of a one-line error, the repository secret read by
//! hand ([`Secret`]), one way to skip ([`skip`], recorded in
//! `target/strata-skips.txt`), and one S3 setup ([`S3`]: a real moto server
//! on 127.0.0.1 with a bucket) with a fault-injecting proxy to put in front
//! of it ([`proxy::FaultProxy`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod proxy;

use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------- the binary

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// The passphrase of test repositories.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// Longest any single `strata` invocation through [`Strata::cmd`] may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// `strata` with the test passphrase (scrypt 2^10) and no other unlock
/// source, no `STRATA_REPO`, and no local tree cache (every read goes to
/// the packs).
pub fn command() -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    c.env("STRATA_CACHE_DIR", "")
        .env_remove("STRATA_REPO")
        .env_remove("STRATA_PASSWORD_COMMAND")
        .env_remove("STRATA_IDENTITY")
        .env_remove("STRATA_NEW_PASSWORD")
        .env("STRATA_PASSWORD", PASSPHRASE)
        .env("STRATA_SCRYPT_LOG_N", "10");
    c
}

/// Give `c` the unlock sources `repo` takes: none for an existing local
/// repository whose config is not an age file, since strata refuses to
/// open an unencrypted repository when a passphrase is given
/// (threat-model.md "Downgrade"); else [`command`]'s passphrase.
pub fn unlock_for<C: std::borrow::BorrowMut<std::process::Command>>(
    mut c: C,
    repo: impl AsRef<Path>,
) -> C {
    let repo = repo.as_ref();
    let plain =
        fs::read(repo.join("config")).is_ok_and(|b| !b.starts_with(b"age-encryption.org/v1\n"));
    if plain {
        c.borrow_mut().env_remove("STRATA_PASSWORD");
    }
    c
}

/// The cache directory of this test process (repositories are told apart
/// by id and path inside it), under the system temp dir rather than the
/// user's cache.
pub fn test_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("strata-test-cache-{}", std::process::id()))
}

/// The index file of `repo` (format-spec/index.md "Where the index
/// lives"): in this process's test cache ([`test_cache_dir`]) when a
/// command with the cache made one there (found by its `location` file),
/// else `<repo>/index.sqlite` (commands without a cache, [`command`]).
pub fn index_path(repo: &Path) -> PathBuf {
    let want = fs::canonicalize(repo).unwrap_or_else(|_| repo.to_path_buf());
    let ids = fs::read_dir(test_cache_dir())
        .into_iter()
        .flatten()
        .flatten();
    for id in ids {
        let locs = fs::read_dir(id.path().join("index"))
            .into_iter()
            .flatten()
            .flatten();
        for loc in locs {
            if fs::read(loc.path().join("location")).ok().as_deref()
                == Some(want.as_os_str().as_bytes())
            {
                return loc.path().join("index.sqlite");
            }
        }
    }
    repo.join("index.sqlite")
}

/// [`index_path`] with its `-wal` and `-shm` files.
pub fn index_files(repo: &Path) -> [PathBuf; 3] {
    let p = index_path(repo);
    let with = |s: &str| {
        let mut o = p.clone().into_os_string();
        o.push(s);
        PathBuf::from(o)
    };
    [with("-wal"), with("-shm"), p]
}

/// Delete the index of `repo` and its WAL files, which must exist.
pub fn delete_index(repo: &Path) {
    let [wal, shm, db] = index_files(repo);
    assert!(db.exists(), "{} does not exist", db.display());
    for p in [wal, shm, db] {
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{}: {e}", p.display()),
            _ => {}
        }
    }
}

/// The environment of a command with this process's cache directory
/// ([`test_cache_dir`]): the layout users run, the index in the cache and
/// the tree cache on, for [`run`] and friends.
pub fn cache_env() -> Env<'static> {
    static ENV: std::sync::OnceLock<[(&'static str, &'static str); 1]> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let dir: &'static str = Box::leak(
            test_cache_dir()
                .to_str()
                .expect("a UTF-8 temp dir")
                .to_string()
                .into_boxed_str(),
        );
        [("STRATA_CACHE_DIR", dir)]
    })
}

/// [`command`] with this process's cache directory ([`test_cache_dir`]).
pub fn strata_command() -> std::process::Command {
    let mut c = command();
    c.env("STRATA_CACHE_DIR", test_cache_dir());
    c
}

/// An environment added to a command: `(name, value)` pairs.
pub type Env<'a> = &'a [(&'a str, &'a str)];

/// `strata --repo REPO ARGS` ([`command`]: no tree cache, so the index
/// lives in the repository) with `env` added and stdin closed: the one
/// command runner of the tests. `REPO` is a path or a URL.
pub fn run(repo: impl AsRef<OsStr>, env: Env, args: &[&str]) -> Output {
    unlock_for(command(), Path::new(repo.as_ref()))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run strata")
}

/// [`run`], which must exit 0; its stdout.
#[track_caller]
pub fn ok(repo: impl AsRef<OsStr>, env: Env, args: &[&str]) -> String {
    let o = run(repo, env, args);
    assert!(
        o.status.success(),
        "strata {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 stdout")
}

/// [`ok`] of a command that prints JSON (`--json` among `args`); the value.
#[track_caller]
pub fn json(repo: impl AsRef<OsStr>, env: Env, args: &[&str]) -> Value {
    parse_json(ok(repo, env, args).as_bytes())
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

/// Is this process running as root?
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Where the absolute path `abs` lands when a whole snapshot is restored
/// into `target`: snapshots keep each source under its absolute path, so
/// `/tmp/x/src` comes back as `TARGET/tmp/x/src`.
pub fn under(target: &Path, abs: &Path) -> PathBuf {
    target.join(abs.strip_prefix("/").unwrap_or(abs))
}

// ---------------------------------------------------------------- Strata, Fixture

/// The `strata` binary bound to one repository path.
#[derive(Clone, Debug)]
pub struct Strata {
    repo: PathBuf,
}

impl Strata {
    /// A handle for the repository at `repo` (not created).
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        Strata { repo: repo.into() }
    }

    /// The repository path.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// `strata -r REPO` ([`strata_command`]) with a timeout; add the rest.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::from_std(unlock_for(strata_command(), &self.repo));
        c.arg("--repo").arg(&self.repo).timeout(TIMEOUT);
        c
    }

    /// `strata init ARGS`, which must succeed.
    pub fn init(&self, args: &[&str]) {
        self.cmd().arg("init").args(args).assert().success();
    }

    /// `strata snapshot --json ARGS`, which must exit with `code`; its JSON.
    pub fn snapshot_code<S: AsRef<OsStr>>(&self, args: &[S], code: i32) -> Value {
        let out = self
            .cmd()
            .arg("snapshot")
            .arg("--json")
            .args(args)
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        parse_json(&out)
    }

    /// `strata snapshot --json ARGS`, which must succeed without warnings.
    pub fn snapshot<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        self.snapshot_code(args, 0)
    }

    /// `strata snapshots --json`: every snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<Value> {
        let out = self
            .cmd()
            .args(["snapshots", "--json"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        match parse_json(&out) {
            Value::Array(v) => v,
            v => panic!("snapshots --json printed {v}"),
        }
    }

    /// `strata restore SPEC --target TARGET --json ARGS`, which must succeed
    /// without warnings; its JSON.
    pub fn restore<S: AsRef<OsStr>>(&self, spec: &str, target: &Path, args: &[S]) -> Value {
        let out = self
            .cmd()
            .args(["restore", spec, "--json", "--target"])
            .arg(target)
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        parse_json(&out)
    }
}

/// Parse one JSON document printed by strata.
pub fn parse_json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// A `u64` field of a JSON object, by `/`-separated pointer (`summary/files_new`).
pub fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(&format!("/{pointer}"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {v}"))
}

/// A temporary directory holding a repository (`repo/`) and whatever the
/// test puts next to it. Read-only directories are made writable on drop so
/// the directory can always be removed.
pub struct Fixture {
    dir: tempfile::TempDir,
    /// The repository at `<dir>/repo`.
    pub strata: Strata,
}

impl Fixture {
    /// A fixture with a repository created with default options.
    pub fn new() -> Self {
        Self::with_init(&[])
    }

    /// A fixture with a repository created by `strata init ARGS`.
    pub fn with_init(args: &[&str]) -> Self {
        let f = Self::uninit();
        f.strata.init(args);
        f
    }

    /// A fixture whose repository is not created yet.
    pub fn uninit() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir()
            .unwrap();
        let strata = Strata::new(dir.path().join("repo"));
        Fixture { dir, strata }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/rel`.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `<dir>/rel`, created as an empty directory (with parents).
    pub fn mkdir(&self, rel: impl AsRef<Path>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        make_writable(self.dir.path());
    }
}

// ---------------------------------------------------------------- seeded data

/// xorshift64* (the generator of format-spec/chunker.md): the one seeded
/// generator of the tests, for choices and for data.
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
    /// Uniform in `lo..hi` (lo < hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// `n` pseudo-random bytes (BLAKE3 XOF keyed by the next state: fast even
    /// in debug builds, since dependencies are optimized). The bytes of a
    /// shorter call are a prefix of a longer one from the same state.
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

/// `len` deterministic, incompressible bytes: `Rng::new(seed).bytes(len)`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// What [`make_tree`] writes.
#[derive(Clone, Copy, Debug)]
pub struct Shape<'a> {
    /// The sizes of the incompressible files `data/f{seed}-{i}.bin`.
    pub big: &'a [usize],
    /// How many text files `notes/n{seed}-{i}.txt` (compressible; small
    /// ones are stored inline in their directory's tree).
    pub small: usize,
    /// Their length in bytes.
    pub small_len: usize,
}

/// Five 400 kB incompressible files (several 1 MiB packs) and 30 text
/// files of 2 000 bytes.
pub const FIVE_400K: Shape<'static> = Shape {
    big: &[400_000; 5],
    small: 30,
    small_len: 2000,
};

/// Write the tree `shape` describes below `dir`, different for each
/// `seed` (names and bytes, so trees of two seeds can share a directory);
/// the bytes written.
pub fn make_tree(dir: &Path, seed: u64, shape: Shape) -> u64 {
    let mut rng = Rng::new(seed);
    let mut total = 0;
    for (i, &n) in shape.big.iter().enumerate() {
        write_file(&dir.join(format!("data/f{seed}-{i}.bin")), &rng.bytes(n));
        total += n as u64;
    }
    for i in 0..shape.small {
        let n = shape.small_len;
        write_file(&dir.join(format!("notes/n{seed}-{i}.txt")), &rng.text(n));
        total += n as u64;
    }
    total
}

// ---------------------------------------------------------------- file system

/// Give every directory below `root` (not following symlinks) owner rwx.
pub fn make_writable(root: &Path) {
    let Ok(md) = fs::symlink_metadata(root) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    let _ = fs::set_permissions(root, fs::Permissions::from_mode(md.mode() | 0o700));
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            make_writable(&e.path());
        }
    }
}

/// Write `data` to `path`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

/// Set atime and mtime of `path` (not following a symlink).
pub fn set_mtime(path: &Path, sec: i64, nsec: u32) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps};
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.into(),
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {path:?}: {e}"));
}

/// Create a fifo at `path`.
pub fn mkfifo(path: &Path, mode: u32) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(mode),
        0,
    )
    .unwrap_or_else(|e| panic!("mkfifo {path:?}: {e}"));
}

/// Create a character (or block) device node (root only).
pub fn mknod_dev(path: &Path, block: bool, major: u32, minor: u32) {
    let ft = if block {
        rustix::fs::FileType::BlockDevice
    } else {
        rustix::fs::FileType::CharacterDevice
    };
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        rustix::fs::Mode::from_raw_mode(0o600),
        rustix::fs::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {path:?}: {e}"));
}

/// Does the file system holding `dir` accept `user.*` extended attributes?
pub fn user_xattrs_supported(dir: &Path) -> bool {
    let p = dir.join(".strata-xattr-probe");
    fs::write(&p, b"").unwrap();
    let ok = xattr::set(&p, "user.strata_probe", b"1").is_ok();
    fs::remove_file(&p).unwrap();
    ok
}

/// Disk usage of everything below `root` in bytes, like `du -s -B1`
/// (allocated blocks; each hard-linked inode counted once).
pub fn disk_usage(root: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(md) = fs::symlink_metadata(p) else {
            return 0; // vanished (e.g. a lock file)
        };
        let mut n = 0;
        if seen.insert((md.dev(), md.ino())) {
            n += md.blocks() * 512;
        }
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    n += walk(&e.path(), seen);
                }
            }
        }
        n
    }
    walk(root, &mut HashSet::new())
}

// ---------------------------------------------------------------- listings

/// Every path below `root`, relative, `/`-separated (lossy UTF-8), sorted
/// by name bytes, parents before children; directories end in `/`. `root`
/// itself is not listed; a `root` that cannot be read panics. The one
/// directory walk of the listings below.
pub fn list_tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let dir = root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read_dir {dir:?}: {e}"))
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for n in names {
            let r = rel.join(&n);
            let md = fs::symlink_metadata(root.join(&r)).unwrap();
            let s = r.to_string_lossy().into_owned();
            if md.is_dir() {
                out.push(format!("{s}/"));
                walk(root, &r, out);
            } else {
                out.push(s);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// [`list_tree`] of `abs` as a whole-snapshot restore into `target`
/// recreated it ([`under`]), after checking that nothing else is in
/// `target` but the directories leading to it.
pub fn list_under(target: &Path, abs: &Path) -> Vec<String> {
    let rel = abs.strip_prefix("/").unwrap_or(abs);
    let stored = format!("{}/", rel.to_string_lossy());
    let outside: Vec<String> = list_tree(target)
        .into_iter()
        .filter(|p| !p.starts_with(&stored) && !stored.starts_with(p.as_str()))
        .collect();
    assert!(outside.is_empty(), "restored outside {stored}: {outside:?}");
    list_tree(&under(target, abs))
}

/// [`list_tree`] without the directories: every non-directory below `root`.
pub fn list_files(root: &Path) -> Vec<String> {
    list_tree(root)
        .into_iter()
        .filter(|p| !p.ends_with('/'))
        .collect()
}

/// Bytes of every file below `dir`, by relative path; empty if `dir` does
/// not exist (a restore that failed before creating its target).
pub fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    if !dir.exists() {
        return BTreeMap::new();
    }
    list_files(dir)
        .into_iter()
        .map(|rel| {
            let b = fs::read(dir.join(&rel)).unwrap_or_default();
            (PathBuf::from(rel), b)
        })
        .collect()
}

/// Path -> BLAKE3 of every path below `root` ([`list_tree`]: directories
/// end in `/` and hash no bytes, symlinks are followed): two trees with
/// the same digest hold the same names and bytes.
pub type Digest = BTreeMap<String, [u8; 32]>;

/// The [`Digest`] of `root`.
pub fn digest(root: &Path) -> Digest {
    list_tree(root)
        .into_iter()
        .map(|rel| {
            let h = if rel.ends_with('/') {
                [0; 32]
            } else {
                *blake3::hash(&fs::read(root.join(&rel)).unwrap()).as_bytes()
            };
            (rel, h)
        })
        .collect()
}

/// Pack files of a repository: `REPO/packs/xx/<hex>` paths, sorted; empty
/// if there is no `packs/` directory.
pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let packs = repo.join("packs");
    if !packs.exists() {
        return Vec::new();
    }
    list_files(&packs)
        .into_iter()
        .map(|p| packs.join(p))
        .collect()
}

/// Pack names (the file names of [`pack_files`]), sorted.
pub fn pack_names(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = pack_files(repo)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Snapshot ids (file names under `snapshots/`), sorted.
pub fn snapshot_ids(repo: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(repo.join("snapshots"))
        .expect("snapshots dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Blobs physically stored in the repository's packs, `(data, tree)`,
/// counted from the pack trailers as `strata cat --raw pack` lists them
/// (packs are encrypted; the plaintext trailer layout is checked in
/// tests/it/vectors.rs), so a blob stored twice counts twice.
pub fn stored_blobs(repo: &Path) -> (u64, u64) {
    let (mut data, mut tree) = (0, 0);
    let st = Strata::new(repo);
    for name in pack_names(repo) {
        let out = st
            .cmd()
            .args(["cat", "--raw", "pack", &name])
            .assert()
            .success();
        let v = parse_json(&out.get_output().stdout);
        for b in v["blobs"].as_array().unwrap() {
            match b["kind"].as_str().unwrap() {
                "data" => data += 1,
                "tree" => tree += 1,
                k => panic!("blob kind {k} in a pack trailer"),
            }
        }
    }
    (data, tree)
}

// ---------------------------------------------------------------- tree comparison

/// What one path is, with its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file: its length and the BLAKE3 of its contents.
    File(u64, [u8; 32]),
    /// A directory.
    Dir,
    /// A symlink and its target bytes.
    Symlink(Vec<u8>),
    /// A fifo (never opened).
    Fifo,
    /// A character device and its `rdev`.
    CharDevice(u64),
    /// A block device and its `rdev`.
    BlockDevice(u64),
    /// A unix socket.
    Socket,
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::File(..) => "file",
            Node::Dir => "dir",
            Node::Symlink(_) => "symlink",
            Node::Fifo => "fifo",
            Node::CharDevice(_) => "char device",
            Node::BlockDevice(_) => "block device",
            Node::Socket => "socket",
        }
    }
}

/// Everything [`compare_trees`] can check about one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Kind and contents.
    pub node: Node,
    /// `mode & 0o7777`.
    pub mode: u32,
    /// mtime (lstat), seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// uid, gid.
    pub owner: (u32, u32),
    /// Extended attributes, name -> value.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Bytes allocated (`st_blocks * 512`).
    pub allocated: u64,
    /// `(dev, ino)` of a regular file, which makes hard-link groups; `None`
    /// for everything else and in hand-made manifests.
    pub inode: Option<(u64, u64)>,
    /// Why the path could not be read or listed, if it could not.
    pub error: Option<String>,
}

impl Entry {
    /// An entry with only a kind and contents (metadata zero, no inode): for
    /// manifests written by hand, compared with [`Compare::contents_only`].
    pub fn new(node: Node) -> Entry {
        Entry {
            node,
            mode: 0,
            mtime: (0, 0),
            owner: (0, 0),
            xattrs: BTreeMap::new(),
            allocated: 0,
            inode: None,
            error: None,
        }
    }
}

/// A tree as [`manifest`] records it: `"."` for the root, then every path
/// below it, relative and `/`-separated (lossy UTF-8).
pub type Manifest = BTreeMap<String, Entry>;

/// Record `root` and everything below it (symlinks not followed, fifos and
/// devices never opened, files hashed): a description that outlives
/// changes to the tree (tests/it/crash.rs records each snapshot's source).
pub fn manifest(root: &Path) -> Manifest {
    let mut out = Manifest::new();
    record(root, ".".to_string(), &mut out);
    out
}

/// A hand-made manifest: a root directory holding `nodes` (path -> node).
pub fn manifest_of(nodes: impl IntoIterator<Item = (String, Node)>) -> Manifest {
    let mut m = Manifest::new();
    m.insert(".".to_string(), Entry::new(Node::Dir));
    for (p, n) in nodes {
        m.insert(p, Entry::new(n));
    }
    m
}

fn record(path: &Path, key: String, out: &mut Manifest) {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) => panic!("cannot stat {path:?}: {e}"),
    };
    let ft = md.file_type();
    let mut error = None;
    let mut children = Vec::new();
    let node = if ft.is_file() {
        match hash_file(path) {
            Ok(h) => Node::File(md.size(), h),
            Err(e) => {
                error = Some(format!("cannot read: {e}"));
                Node::File(md.size(), [0; 32])
            }
        }
    } else if ft.is_dir() {
        match fs::read_dir(path) {
            Ok(rd) => children = rd.map(|e| e.unwrap().file_name()).collect(),
            Err(e) => error = Some(format!("cannot list: {e}")),
        }
        Node::Dir
    } else if ft.is_symlink() {
        Node::Symlink(fs::read_link(path).unwrap().as_os_str().as_bytes().to_vec())
    } else if ft.is_fifo() {
        Node::Fifo
    } else if ft.is_char_device() {
        Node::CharDevice(md.rdev())
    } else if ft.is_block_device() {
        Node::BlockDevice(md.rdev())
    } else if ft.is_socket() {
        Node::Socket
    } else {
        panic!("unknown file type at {path:?}")
    };
    out.insert(
        key.clone(),
        Entry {
            inode: ft.is_file().then(|| (md.dev(), md.ino())),
            node,
            mode: md.mode() & 0o7777,
            mtime: (md.mtime(), md.mtime_nsec()),
            owner: (md.uid(), md.gid()),
            xattrs: xattr_map(path),
            allocated: md.blocks() * 512,
            error,
        },
    );
    for n in children {
        let name = n.to_string_lossy();
        let k = if key == "." {
            name.into_owned()
        } else {
            format!("{key}/{name}")
        };
        record(&path.join(&n), k, out);
    }
}

fn hash_file(p: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = File::open(p)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(*h.finalize().as_bytes()),
            n => {
                h.update(&buf[..n]);
            }
        }
    }
}

fn xattr_map(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(names) = xattr::list(p) else {
        return out; // unsupported here
    };
    for n in names {
        let v = xattr::get(p, &n).ok().flatten().unwrap_or_default();
        out.insert(n.as_bytes().to_vec(), v);
    }
    out
}

/// What [`compare_trees`] checks besides names, kinds, contents (file
/// bytes, symlink targets, device numbers) and read errors, which it
/// always checks.
#[derive(Clone, Debug)]
pub struct Compare {
    /// Compare the metadata of the two roots themselves (not only their contents).
    pub root_meta: bool,
    /// Compare `mode & 0o7777`.
    pub mode: bool,
    /// Compare mtimes to the nanosecond.
    pub mtime: bool,
    /// Compare uid/gid.
    pub owner: bool,
    /// Compare extended attributes.
    pub xattrs: bool,
    /// Compare hard-link groups.
    pub links: bool,
    /// Bytes a copy of a file may allocate beyond the original's allocation
    /// (holes filled); `u64::MAX` does not check allocation.
    pub sparse_slack: u64,
}

impl Default for Compare {
    /// Everything.
    fn default() -> Self {
        Compare {
            root_meta: true,
            mode: true,
            mtime: true,
            owner: true,
            xattrs: true,
            links: true,
            sparse_slack: 64 << 10,
        }
    }
}

impl Compare {
    /// Names, kinds and contents only: for hand-made manifests.
    pub fn contents_only() -> Self {
        Compare {
            root_meta: false,
            mode: false,
            mtime: false,
            owner: false,
            xattrs: false,
            links: false,
            sparse_slack: u64::MAX,
        }
    }
}

/// Assert that trees `a` (original) and `b` (copy) are identical in every
/// respect [`Compare::default`] checks.
#[track_caller]
pub fn assert_same_tree(a: &Path, b: &Path) {
    assert_same_tree_with(a, b, &Compare::default());
}

/// [`assert_same_tree`] with explicit options.
#[track_caller]
pub fn assert_same_tree_with(a: &Path, b: &Path, opts: &Compare) {
    let d = compare_trees(a, b, opts);
    assert!(
        d.is_empty(),
        "trees differ: {a:?} vs {b:?}:\n  {}",
        d.join("\n  ")
    );
}

/// Assert that the tree at `got` is what `want` recorded (or says).
#[track_caller]
pub fn assert_matches_manifest(want: &Manifest, got: &Path, opts: &Compare, what: &str) {
    let d = compare_manifests(want, &manifest(got), opts);
    assert!(
        d.is_empty(),
        "{what}: {got:?} differs from what was recorded:\n  {}",
        d.join("\n  ")
    );
}

/// Differences between trees `a` (original) and `b` (copy), as readable
/// lines (empty = identical): [`compare_manifests`] of their manifests.
pub fn compare_trees(a: &Path, b: &Path, opts: &Compare) -> Vec<String> {
    compare_manifests(&manifest(a), &manifest(b), opts)
}

/// The parent key of a manifest key (`None` for the root).
fn parent_key(k: &str) -> Option<&str> {
    match k {
        "." => None,
        _ => Some(k.rsplit_once('/').map_or(".", |(p, _)| p)),
    }
}

/// Differences between `a` (original) and `b` (copy), as readable lines
/// (empty = identical): names, kinds, file sizes and bytes, symlink
/// targets, rdev of devices, read errors, and as `opts` says `mode &
/// 0o7777`, mtime to the nanosecond, uid/gid, xattrs, hard-link groups and
/// allocation (sparse files). Below a path missing on one side or of
/// another kind nothing more is reported.
pub fn compare_manifests(a: &Manifest, b: &Manifest, opts: &Compare) -> Vec<String> {
    // a path is compared when its parent is a directory on both sides
    let shown = |k: &str| match parent_key(k) {
        None => true,
        Some(p) => matches!(
            (a.get(p), b.get(p)),
            (Some(x), Some(y)) if x.node == Node::Dir && y.node == Node::Dir
        ),
    };
    let mut diffs = Vec::new();
    for (k, ea) in a {
        if !shown(k) {
            continue;
        }
        match b.get(k) {
            None => diffs.push(format!("{k}: missing in copy")),
            Some(eb) => compare_entry(k, ea, eb, opts, &mut diffs),
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) && shown(k) {
            diffs.push(format!("{k}: extra in copy"));
        }
    }
    if opts.links {
        // every file must share its inode with the same set of paths
        let groups = |m: &Manifest| -> BTreeMap<String, Vec<String>> {
            let mut by_inode: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
            for (k, e) in m {
                if let Some(i) = e.inode {
                    by_inode.entry(i).or_default().push(k.clone());
                }
            }
            let mut out = BTreeMap::new();
            for g in by_inode.into_values() {
                for p in &g {
                    out.insert(p.clone(), g.clone());
                }
            }
            out
        };
        let (ga, gb) = (groups(a), groups(b));
        for (p, g) in &ga {
            if let Some(h) = gb.get(p) {
                if g != h {
                    diffs.push(format!("{p}: hard-link group {g:?} became {h:?}"));
                }
            }
        }
    }
    diffs
}

fn compare_entry(k: &str, ea: &Entry, eb: &Entry, opts: &Compare, diffs: &mut Vec<String>) {
    for (side, e) in [("original", ea), ("copy", eb)] {
        if let Some(err) = &e.error {
            diffs.push(format!("{k}: {side}: {err}"));
        }
    }
    let (ka, kb) = (ea.node.kind(), eb.node.kind());
    if ka != kb {
        diffs.push(format!("{k}: kind {ka} became {kb}"));
        return;
    }
    let mut d = |what: &str, x: String, y: String| {
        if x != y {
            diffs.push(format!("{k}: {what} {x} became {y}"));
        }
    };
    if k != "." || opts.root_meta {
        if opts.mode {
            d("mode", format!("{:o}", ea.mode), format!("{:o}", eb.mode));
        }
        if opts.mtime {
            d(
                "mtime",
                format!("{}.{:09}", ea.mtime.0, ea.mtime.1),
                format!("{}.{:09}", eb.mtime.0, eb.mtime.1),
            );
        }
        if opts.owner {
            d(
                "uid:gid",
                format!("{}:{}", ea.owner.0, ea.owner.1),
                format!("{}:{}", eb.owner.0, eb.owner.1),
            );
        }
        if opts.xattrs {
            d(
                "xattrs",
                format!("{:?}", ea.xattrs),
                format!("{:?}", eb.xattrs),
            );
        }
    }
    match (&ea.node, &eb.node) {
        (Node::File(la, ha), Node::File(lb, hb)) => {
            d("size", la.to_string(), lb.to_string());
            if ha != hb {
                diffs.push(format!("{k}: contents differ"));
            }
            if eb.allocated > ea.allocated.saturating_add(opts.sparse_slack) {
                diffs.push(format!(
                    "{k}: allocates {} bytes, original {} (holes filled?)",
                    eb.allocated, ea.allocated
                ));
            }
        }
        (Node::Symlink(x), Node::Symlink(y)) => d(
            "target",
            format!("{:?}", OsStr::from_bytes(x)),
            format!("{:?}", OsStr::from_bytes(y)),
        ),
        (Node::CharDevice(x), Node::CharDevice(y))
        | (Node::BlockDevice(x), Node::BlockDevice(y)) => d("rdev", x.to_string(), y.to_string()),
        _ => {}
    }
}

// ---------------------------------------------------------------- the fault battery

/// How many iterations a fault-battery test runs (issue 10): its CI
/// default `ci`, or `STRATA_BATTERY_ITERATIONS` when set (each test's
/// header says what one iteration is).
pub fn battery_iterations(ci: usize) -> usize {
    std::env::var("STRATA_BATTERY_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ci)
}

/// The seed of a fault-battery test: `STRATA_BATTERY_SEED` when set,
/// else `default`; printed so that a failure can be replayed.
pub fn battery_seed(test: &str, default: u64) -> u64 {
    let seed = std::env::var("STRATA_BATTERY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    println!("{test}: seed {seed} (replay with STRATA_BATTERY_SEED={seed})");
    seed
}

/// Run the test `test` (`module::name`) again in a child process of this
/// test binary with `STRATA_CACHE_DIR` empty and `env`, for tests that call
/// the library in-process: nothing is then written to the user's cache,
/// and the library sees the environment the test needs (a test cannot set
/// its own environment: `unsafe` is forbidden). Returns true in the child,
/// which runs the test's body; in the parent, waits for the child, requires
/// that it ran exactly that one test and passed, and returns false.
pub fn in_child_without_cache(test: &str, env: &[(&str, &str)]) -> bool {
    if std::env::var_os("STRATA_TEST_CHILD").is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
            "--include-ignored",
        ])
        .env("STRATA_TEST_CHILD", "1")
        .env("STRATA_CACHE_DIR", "")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{test} failed in its child process ({})",
        out.status
    );
    // a name that matches no test runs nothing and succeeds: require that
    // exactly this one ran
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test}: the child process did not run exactly that one test"
    );
    false
}

/// A snapshot and what its source held when it was taken: the source's
/// absolute path and its [`manifest`] (every file hashed).
#[derive(Clone, Debug)]
pub struct Taken {
    /// Snapshot id (hex).
    pub id: String,
    /// The source directory, absolute (restored at [`under`] it).
    pub source: PathBuf,
    /// What the source held.
    pub manifest: Manifest,
}

/// `strata snapshot SRC` ([`run`] with `env`), which must exit 0; the
/// snapshot and the source's state. The source must not change meanwhile.
pub fn take(repo: &Path, env: Env, src: &Path) -> Taken {
    let v = json(repo, env, &["snapshot", "--json", src.to_str().unwrap()]);
    Taken {
        id: v["id"].as_str().unwrap().to_string(),
        source: src.to_path_buf(),
        manifest: manifest(src),
    }
}

/// VERIFY of the fault battery (issue 10): `strata check --read-data`
/// exits 0, and every snapshot of `taken` restores (into a fresh
/// directory below `scratch`, removed afterwards) to exactly the names,
/// kinds and bytes its source held. Through [`run`] with `env` (the
/// layout the repository is used with). `what` names the situation in
/// failures.
#[track_caller]
pub fn verify(repo: &Path, env: Env, taken: &[Taken], scratch: &Path, what: &str) {
    let o = run(repo, env, &["check", "--read-data", "--json"]);
    assert!(
        o.status.code() == Some(0),
        "{what}: check --read-data exited {:?}:\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for t in taken {
        let target = scratch.join(format!("verify-{}", &t.id[..12]));
        let _ = fs::remove_dir_all(&target);
        restore_matches(repo, env, t, &target, what);
        make_writable(&target);
        fs::remove_dir_all(&target).unwrap();
    }
}

/// `strata restore` ([`run`] with `env`) of the snapshot `t` into `target`, which
/// must succeed and give exactly the names, kinds and bytes its source held.
#[track_caller]
pub fn restore_matches(repo: &Path, env: Env, t: &Taken, target: &Path, what: &str) {
    let o = run(
        repo,
        env,
        &["restore", &t.id, "--target", target.to_str().unwrap()],
    );
    assert!(
        o.status.success(),
        "{what}: restore of snapshot {} failed: {}",
        &t.id[..12],
        String::from_utf8_lossy(&o.stderr)
    );
    assert_matches_manifest(
        &t.manifest,
        &under(target, &t.source),
        &Compare::contents_only(),
        &format!("{what}: snapshot {}", &t.id[..12]),
    );
}

/// After a restore of `t` into `target` that failed: every regular file
/// it left is one of the snapshot's files with exactly its bytes (a
/// failed restore may leave files out, never wrong ones).
#[track_caller]
pub fn assert_no_wrong_bytes(t: &Taken, target: &Path, what: &str) {
    let dir = under(target, &t.source);
    if !dir.exists() {
        return;
    }
    for (p, e) in manifest(&dir) {
        if let Node::File(..) = e.node {
            assert_eq!(
                Some(&e.node),
                t.manifest.get(&p).map(|w| &w.node),
                "{what}: a failed restore left {p} with wrong bytes"
            );
        }
    }
}

/// Options of `strata init` for a small repository whose commands write
/// several packs even for a few MiB: 1 MiB packs, 16/64/256 KiB chunks.
pub const SMALL_PACKS: [&str; 8] = [
    "--pack-size-mib",
    "1",
    "--chunk-min",
    "16384",
    "--chunk-avg",
    "65536",
    "--chunk-max",
    "262144",
];

/// `strata init` ([`command`]) of a repository with [`SMALL_PACKS`] and `extra`.
pub fn init_small(repo: &Path, extra: &[&str]) {
    let mut args = vec!["init"];
    args.extend(SMALL_PACKS);
    args.extend(extra);
    ok(repo, &[], &args);
}

/// A temporary directory on tmpfs (`/dev/shm`) when there is one, else in
/// the system temp dir: for tests that write and delete many files.
pub fn scratch_tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

/// Copy the tree at `from` to `to` (which must not exist): directories,
/// regular files (bytes only) and symlinks; the copy of a repository a
/// test then damages or runs a failing command on.
pub fn copy_tree(from: &Path, to: &Path) {
    let md = fs::symlink_metadata(from).unwrap();
    if md.is_dir() {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy_tree(&e.path(), &to.join(e.file_name()));
        }
    } else if md.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from).unwrap(), to).unwrap();
    } else if md.is_file() {
        fs::copy(from, to).unwrap();
    }
}

/// Every pack under a final name in an unencrypted repository is complete:
/// its name is the BLAKE3 of its bytes and its trailer verifies. Returns
/// how many there are.
#[track_caller]
pub fn assert_packs_complete(repo: &Path, what: &str) -> usize {
    let packs = pack_files(repo);
    for p in &packs {
        let bytes = fs::read(p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            name,
            "{what}: pack {name} is not complete"
        );
        strata::pack::format::parse_pack(&bytes, &name)
            .unwrap_or_else(|e| panic!("{what}: pack {name}: {e}"));
    }
    packs.len()
}

// ---------------------------------------------------------------- the secret

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

// ---------------------------------------------------------------- S3 (moto)

/// A moto S3 server on 127.0.0.1 (PyPI `moto[server]`), killed on drop.
/// The S3 tests speak S3 over HTTP to it through the code users run.
pub struct Moto {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- skips

/// Where [`skip`] records skipped tests: `target/strata-skips.txt` (found
/// from this test binary, `target/debug/deps/it-…`), which `./test.sh`
/// empties before `cargo test` and `.ci/run` prints afterwards.
pub fn skips_file() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap_or(Path::new("target"));
    target.join("strata-skips.txt")
}

/// Skip the running test because of `reason`, unless `require` (a
/// `STRATA_REQUIRE_*` variable: `./test.sh` sets them where it installed
/// what the test needs) is `1`, which makes it a failure instead. A skip
/// is printed and appended to [`skips_file`] as one line, `test<TAB>require
/// <TAB>reason`, so that nobody misses it: the caller then returns.
#[track_caller]
pub fn skip(require: &str, reason: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let at = std::panic::Location::caller();
    if std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{require}=1 but {test} cannot run: {reason}");
    }
    let line = format!(
        "{test}\t{require}\t{} ({}:{})\n",
        reason.replace(['\n', '\t'], " "),
        at.file(),
        at.line()
    );
    eprint!("SKIPPED {line}");
    let appended = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skips_file())
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = appended {
        panic!(
            "{test} is skipped ({reason}) and cannot record it in {:?}: {e}",
            skips_file()
        );
    }
}

/// Whether a test that needs an outside service (PostgreSQL, redis-server)
/// may run: true when `available` is `Ok`; otherwise the test is skipped
/// ([`skip`] with `require`) and false returned.
#[track_caller]
pub fn service_or_skip(require: &str, available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(why) => {
            skip(require, &why);
            false
        }
    }
}

/// Is `program` on `PATH`?
pub fn on_path(program: &str) -> Result<(), String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    if found {
        Ok(())
    } else {
        Err(format!("`{program}` is not installed"))
    }
}

/// The body of the first fenced code block of language `lang` (```lang)
/// in `text` after the line `heading`.
pub fn fenced_block(text: &str, heading: &str, lang: &str) -> String {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the text"));
    let rest = &text[start..];
    let open = format!("```{lang}\n");
    let b = rest
        .find(&open)
        .unwrap_or_else(|| panic!("no ```{lang} block after {heading:?}"))
        + open.len();
    let e = rest[b..].find("\n```").expect("closing fence") + b;
    rest[b..e + 1].to_string()
}

/// A one-shot HTTP server on 127.0.0.1: the port, and a thread that
/// accepts one request, answers `200 OK`, and returns the request's
/// first line and body.
pub fn http_receiver() -> (u16, std::thread::JoinHandle<(String, Vec<u8>)>) {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        // a POST that never comes fails the test instead of hanging it
        l.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "http_receiver: no request within 60 s"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("http_receiver: accept: {e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).unwrap();
        let mut s = s;
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        (first.trim_end().to_string(), body)
    });
    (port, h)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start moto (`moto_server`, else `python3 -m moto.server`); `Err` says
/// why it could not be.
pub fn start_moto() -> Result<Moto, String> {
    let tries: [&[&str]; 2] = [&["moto_server"], &["python3", "-m", "moto.server"]];
    start_moto_with(&tries, &[], "/")
}

/// Start moto with the first command of `tries` that runs (moto's
/// `-H 127.0.0.1 -p PORT` added), with `env` added to its environment;
/// it is up once it answers `GET probe` (`/` is S3's ListBuckets, which
/// counts as one request of an `INITIAL_NO_AUTH_ACTION_COUNT` window;
/// `/moto-api/reset-auth` answers 400 and counts for nothing).
pub fn start_moto_with(
    tries: &[&[&str]],
    env: &[(&str, &str)],
    probe: &str,
) -> Result<Moto, String> {
    let mut why = Vec::new();
    for cmd in tries {
        let port = free_port();
        let child = std::process::Command::new(cmd[0])
            .args(&cmd[1..])
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut moto = match child {
            Ok(child) => Moto { child, port },
            Err(e) => {
                why.push(format!("{}: {e}", cmd.join(" ")));
                continue;
            }
        };
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(status)) = moto.child.try_wait() {
                why.push(format!("{}: exited ({status})", cmd.join(" ")));
                break;
            }
            if http(port, "GET", probe).is_ok() {
                return Ok(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        why.push(format!("{}: not answering on port {port}", cmd.join(" ")));
    }
    Err(why.join("; "))
}

/// The S3 setup of every S3 test: a moto server ([`start_moto`]) and
/// one bucket in it.
pub struct S3 {
    /// The server.
    pub moto: Moto,
    /// The bucket created for the test.
    pub bucket: String,
}

impl S3 {
    /// Start moto and create `bucket`; `None` when moto cannot be started
    /// (the test is then skipped: [`skip`] with `STRATA_REQUIRE_S3_TESTS`,
    /// which `./test.sh` sets once it has installed moto).
    #[track_caller]
    pub fn new(bucket: &str) -> Option<S3> {
        match start_moto() {
            Ok(moto) => {
                moto.create_bucket(bucket);
                Some(S3 {
                    moto,
                    bucket: bucket.to_string(),
                })
            }
            Err(why) => {
                skip(
                    "STRATA_REQUIRE_S3_TESTS",
                    &format!("cannot start moto ({why}); pip install 'moto[server]'"),
                );
                None
            }
        }
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment that points `strata` at the server ([`Moto::env`]).
    pub fn env(&self) -> Vec<(String, String)> {
        self.moto.env()
    }
}

/// `pairs` as an [`Env`]'s elements (for [`run`] and friends).
pub fn env_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl Moto {
    /// The environment that points object_store (and so `strata`) at this
    /// server: the variables users set for their own S3.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Create bucket `name` (moto does not check signatures).
    pub fn create_bucket(&self, name: &str) {
        let status = http(self.port, "PUT", &format!("/{name}")).unwrap();
        assert_eq!(status, 200, "creating bucket {name}");
    }

    /// Create bucket `name` with S3 Object Lock enabled (which turns
    /// versioning on), and with `default_days` a default retention in
    /// `mode` (after which S3, and moto, refuse a PUT without Content-MD5).
    pub fn create_locked_bucket(&self, name: &str, default: Option<(&str, u32)>) {
        let (status, _, body) = proxy::request(
            self.port,
            "PUT",
            &format!("/{name}"),
            &[("x-amz-bucket-object-lock-enabled", "true")],
            &[],
        );
        assert_eq!(
            status,
            200,
            "creating bucket {name}: {}",
            String::from_utf8_lossy(&body)
        );
        if let Some((mode, days)) = default {
            let xml = format!(
                "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>\
                 <Mode>{mode}</Mode><Days>{days}</Days></DefaultRetention></Rule>\
                 </ObjectLockConfiguration>"
            );
            let (status, _, body) = proxy::request(
                self.port,
                "PUT",
                &format!("/{name}?object-lock="),
                &[("Content-MD5", &content_md5(xml.as_bytes()))],
                xml.as_bytes(),
            );
            assert_eq!(
                status,
                200,
                "object lock configuration: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// Every version and delete marker of `bucket` under `prefix`:
    /// (key, version id, is a delete marker), as moto lists them.
    pub fn versions(&self, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
        let (status, body) = proxy::direct(
            self.port,
            "GET",
            &format!("/{bucket}?versions=&prefix={prefix}"),
        );
        let xml = String::from_utf8(body).unwrap();
        assert_eq!(status, 200, "ListObjectVersions: {xml}");
        let mut out = Vec::new();
        for (tag, marker) in [("<Version>", false), ("<DeleteMarker>", true)] {
            for c in xml.split(tag).skip(1) {
                out.push((
                    xml_field(c, "Key").unwrap(),
                    xml_field(c, "VersionId").unwrap(),
                    marker,
                ));
            }
        }
        out.sort();
        out
    }

    /// A raw request to moto as a client with the test credentials:
    /// status, response headers, body.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        proxy::request(self.port, method, target, headers, body)
    }

    /// Every object of `bucket` under `prefix` (a LIST straight to moto,
    /// page by page): key and size, in key order.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut target = format!("/{bucket}?list-type=2&prefix={prefix}");
            if let Some(t) = &token {
                target.push_str("&continuation-token=");
                target.push_str(&url_escape(t));
            }
            let (status, body) = proxy::direct(self.port, "GET", &target);
            let xml = String::from_utf8(body).unwrap();
            assert_eq!(status, 200, "LIST {target}: {xml}");
            for c in xml.split("<Contents>").skip(1) {
                out.push((
                    xml_field(c, "Key").unwrap(),
                    xml_field(c, "Size").unwrap().parse().unwrap(),
                ));
            }
            token = xml_field(&xml, "NextContinuationToken");
            if token.is_none() {
                break;
            }
        }
        out.sort();
        out
    }

    /// Object `key` of `bucket`, straight from moto.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let (status, body) = proxy::direct(self.port, "GET", &format!("/{bucket}/{key}"));
        assert_eq!(status, 200, "GET {bucket}/{key}");
        body
    }
}

/// `Content-MD5` of `bytes` (base64 of the MD5), computed by `openssl`.
pub fn content_md5(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "openssl md5 -binary | base64"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The text of the first `<name>…</name>` in `xml`.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].to_string())
}

/// Percent-encode everything but unreserved characters (a query value).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port`; the status.
pub fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {resp:.80}")))
}

// ---------------------------------------------------------------- services

/// A tmpfs mounted for the test, unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (`mount -o size=`) at `dir`, created if
    /// missing; an error when not root or when mount fails.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("not running as root: cannot mount a small tmpfs".into());
        }
        fs::create_dir_all(dir).unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// `psql -d DB -c SQL` (as this user, over the local socket): its
/// output, or its error text.
pub fn psql(db: &str, sql: &str) -> Result<String, String> {
    let o = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            db,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "psql {db}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Wait up to 5 s for the process whose pid `pidfile` holds to be gone;
/// false if it still runs (a zombie waiting for a reaper counts as gone).
pub fn process_gone(pidfile: &Path) -> bool {
    let pid = fs::read_to_string(pidfile).unwrap_or_default();
    let stat = Path::new("/proc").join(pid.trim()).join("stat");
    let alive = || {
        fs::read_to_string(&stat)
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    };
    let t = std::time::Instant::now();
    while alive() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive()
}
