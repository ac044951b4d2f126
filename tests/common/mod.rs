//! Helpers shared by the integration tests: a `strata` command bound to a
//! repository, a temp-dir fixture, deterministic data, file-system helpers,
//! and an exact comparison of two directory trees.
//!
//! Each test binary uses a subset of these, hence `dead_code`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest any single `strata` invocation may take in a test.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Is this process running as root?
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `len` deterministic, incompressible bytes (BLAKE3 XOF of `seed`).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The `strata` binary bound to one repository path.
#[derive(Clone, Debug)]
pub struct Strata {
    repo: PathBuf,
}

/// The unlock environment lives in one place, `tests/support`.
#[path = "../support/mod.rs"]
mod support;

/// The cache directory of this test process (repositories are told apart
/// by id and path inside it), under the system temp dir rather than the
/// user's cache.
pub fn test_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("strata-test-cache-{}", std::process::id()))
}

/// `strata` as a plain `std::process::Command`: the test passphrase, no
/// other unlock source, no `STRATA_REPO`, this process's cache directory.
pub fn strata_command() -> std::process::Command {
    let mut c = support::command();
    c.env("STRATA_CACHE_DIR", test_cache_dir())
        .env_remove("STRATA_REPO");
    c
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

    /// `strata -r REPO` with a clean environment and a timeout; add the rest.
    pub fn cmd(&self) -> Command {
        let mut c = Command::from_std(strata_command());
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

/// Every path below `root`, relative, `/`-separated (lossy UTF-8), sorted;
/// directories end in `/`. `root` itself is not listed.
pub fn list_tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
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

/// What [`compare_trees`] checks.
#[derive(Clone, Debug)]
pub struct Compare {
    /// Compare the metadata of the two roots themselves (not only their contents).
    pub root_meta: bool,
    /// Compare uid/gid.
    pub owner: bool,
    /// Compare extended attributes.
    pub xattrs: bool,
    /// Bytes a copy of a file may allocate beyond the original's allocation.
    pub sparse_slack: u64,
}

impl Default for Compare {
    fn default() -> Self {
        Compare {
            root_meta: true,
            owner: true,
            xattrs: true,
            sparse_slack: 64 << 10,
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

type LinkMap = HashMap<(u64, u64), Vec<PathBuf>>;

/// Differences between trees `a` (original) and `b` (copy), as readable
/// lines (empty = identical): names, kinds, file bytes, symlink targets,
/// `mode & 0o7777`, mtime to the nanosecond (lstat, all kinds), size,
/// uid/gid, xattrs, hard-link groups, allocation (sparse files), rdev of
/// devices. Fifos are never opened.
pub fn compare_trees(a: &Path, b: &Path, opts: &Compare) -> Vec<String> {
    let mut diffs = Vec::new();
    let (mut la, mut lb) = (LinkMap::new(), LinkMap::new());
    compare_node(
        a,
        b,
        Path::new("."),
        opts,
        true,
        &mut diffs,
        &mut la,
        &mut lb,
    );
    // Hard links: every file must share its inode with the same set of paths.
    let groups = |m: LinkMap| -> BTreeMap<PathBuf, Vec<PathBuf>> {
        let mut out = BTreeMap::new();
        for mut g in m.into_values() {
            g.sort();
            for p in &g {
                out.insert(p.clone(), g.clone());
            }
        }
        out
    };
    let (ga, gb) = (groups(la), groups(lb));
    for (p, g) in &ga {
        if let Some(h) = gb.get(p) {
            if g != h {
                diffs.push(format!("{p:?}: hard-link group {g:?} became {h:?}"));
            }
        }
    }
    diffs
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

fn kind_name(ft: fs::FileType) -> &'static str {
    if ft.is_file() {
        "file"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "char device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

fn same_contents(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[allow(clippy::too_many_arguments)]
fn compare_node(
    a: &Path,
    b: &Path,
    rel: &Path,
    opts: &Compare,
    is_root: bool,
    diffs: &mut Vec<String>,
    la: &mut LinkMap,
    lb: &mut LinkMap,
) {
    let (ma, mb) = match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(ma), Ok(mb)) => (ma, mb),
        (Err(e), _) => {
            diffs.push(format!("{rel:?}: cannot stat original: {e}"));
            return;
        }
        (_, Err(e)) => {
            diffs.push(format!("{rel:?}: missing in copy ({e})"));
            return;
        }
    };
    let (ka, kb) = (kind_name(ma.file_type()), kind_name(mb.file_type()));
    if ka != kb {
        diffs.push(format!("{rel:?}: kind {ka} became {kb}"));
        return;
    }
    let mut d = |what: &str, x: String, y: String| {
        if x != y {
            diffs.push(format!("{rel:?}: {what} {x} became {y}"));
        }
    };
    if !is_root || opts.root_meta {
        d(
            "mode",
            format!("{:o}", ma.mode() & 0o7777),
            format!("{:o}", mb.mode() & 0o7777),
        );
        d(
            "mtime",
            format!("{}.{:09}", ma.mtime(), ma.mtime_nsec()),
            format!("{}.{:09}", mb.mtime(), mb.mtime_nsec()),
        );
        if opts.owner {
            d(
                "uid:gid",
                format!("{}:{}", ma.uid(), ma.gid()),
                format!("{}:{}", mb.uid(), mb.gid()),
            );
        }
        if opts.xattrs {
            d(
                "xattrs",
                format!("{:?}", xattr_map(a)),
                format!("{:?}", xattr_map(b)),
            );
        }
    }
    let ft = ma.file_type();
    if ft.is_file() {
        d("size", ma.size().to_string(), mb.size().to_string());
        match same_contents(a, b) {
            Ok(true) => {}
            Ok(false) => diffs.push(format!("{rel:?}: contents differ")),
            Err(e) => diffs.push(format!("{rel:?}: cannot read: {e}")),
        }
        let (aa, ab) = (ma.blocks() * 512, mb.blocks() * 512);
        if ab > aa + opts.sparse_slack {
            diffs.push(format!(
                "{rel:?}: allocates {ab} bytes, original {aa} (holes filled?)"
            ));
        }
        la.entry((ma.dev(), ma.ino()))
            .or_default()
            .push(rel.to_path_buf());
        lb.entry((mb.dev(), mb.ino()))
            .or_default()
            .push(rel.to_path_buf());
    } else if ft.is_symlink() {
        match (fs::read_link(a), fs::read_link(b)) {
            (Ok(x), Ok(y)) => d("target", format!("{x:?}"), format!("{y:?}")),
            (x, y) => diffs.push(format!("{rel:?}: readlink {x:?} / {y:?}")),
        }
    } else if ft.is_char_device() || ft.is_block_device() {
        d("rdev", ma.rdev().to_string(), mb.rdev().to_string());
    } else if ft.is_dir() {
        let list = |p: &Path| -> Vec<std::ffi::OsString> {
            let mut v: Vec<_> = fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            v.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
            v
        };
        let (na, nb) = (list(a), list(b));
        for n in &na {
            if !nb.contains(n) {
                diffs.push(format!("{:?}: missing in copy", rel.join(n)));
            }
        }
        for n in &nb {
            if !na.contains(n) {
                diffs.push(format!("{:?}: extra in copy", rel.join(n)));
            }
        }
        for n in na.iter().filter(|n| nb.contains(n)) {
            compare_node(
                &a.join(n),
                &b.join(n),
                &rel.join(n),
                opts,
                false,
                diffs,
                la,
                lb,
            );
        }
    }
}

/// Blobs physically stored in the repository's packs, `(data, tree)`,
/// counted from the pack trailers as `strata cat --raw pack` lists them
/// (packs are encrypted; the plaintext trailer layout is checked in
/// tests/vectors.rs), so a blob stored twice counts twice.
pub fn stored_blobs(repo: &Path) -> (u64, u64) {
    let (mut data, mut tree) = (0, 0);
    let st = Strata::new(repo);
    let packs = repo.join("packs");
    for fan in fs::read_dir(&packs).unwrap() {
        for p in fs::read_dir(fan.unwrap().path()).unwrap() {
            let name = p.unwrap().file_name().to_string_lossy().into_owned();
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
    }
    (data, tree)
}
