//! Snapshot then restore random trees holding every kind of metadata strata
//! records, and compare the copy with the original exactly.

use crate::support;

use proptest::prelude::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use support::{Fixture, assert_same_tree, is_root, num, random_bytes, set_mtime};

/// One node of a generated tree.
#[derive(Clone, Debug)]
enum Kind {
    /// A dense file of random bytes.
    File {
        len: usize,
        seed: u64,
    },
    /// A file of logical size `len` with data only in `regions` (offset, len).
    Sparse {
        len: u64,
        regions: Vec<(u64, usize)>,
        seed: u64,
    },
    Dir,
    Symlink(Vec<u8>),
    /// Another name for an earlier file (index taken modulo the files so far).
    HardLink(usize),
    Fifo,
    /// A char (or block) device as root; a fifo otherwise.
    Device {
        block: bool,
    },
}

#[derive(Clone, Debug)]
struct Spec {
    /// Parent directory (index modulo the directories so far; 0 = root).
    parent: usize,
    stem: usize,
    kind: Kind,
    mode_pick: usize,
    mtime: (i64, u32),
    xattrs: Vec<(usize, Vec<u8>)>,
    owner: (u32, u32),
}

const STEMS: &[&[u8]] = &[
    b"f",
    b"d",
    b"\xff\xfe",
    b"caf\xc3\xa9",
    b"with space",
    b".hidden",
    b"x.txt",
    b"latin1-\xe9",
    b"-dash",
    b"a*b?[c]",
];
const FILE_MODES: &[u32] = &[
    0o644, 0o640, 0o600, 0o755, 0o444, 0o4755, 0o2750, 0o700, 0o664, 0o1644,
];
const DIR_MODES: &[u32] = &[0o755, 0o700, 0o2775, 0o1777, 0o555, 0o750, 0o2755];
const FIFO_MODES: &[u32] = &[0o644, 0o600, 0o620, 0o666];
const XATTR_NAMES: &[&str] = &[
    "user.a",
    "user.mime_type",
    "user.x.y.z",
    "user.\u{e9}t\u{e9}",
];
const UIDS: &[u32] = &[0, 1000, 65534, 12345];

fn kind_strategy() -> impl Strategy<Value = Kind> {
    let file_len = prop_oneof![
        2 => Just(0usize),
        4 => 1usize..5_000,
        2 => 5_000usize..300_000,
        1 => 1_100_000usize..2_600_000,
    ];
    let sparse = (64u64 << 10..8 << 20)
        .prop_flat_map(|len| {
            (
                Just(len),
                prop::collection::vec((0..len, 1usize..20_000), 0..4),
                any::<u64>(),
            )
        })
        .prop_map(|(len, regions, seed)| Kind::Sparse { len, regions, seed });
    let target = prop_oneof![
        Just(b"does/not/exist".to_vec()),
        Just(b"../f_0".to_vec()),
        Just(b"/etc/hostname".to_vec()),
        Just(b"\xff\xfe-target".to_vec()),
        Just(b".".to_vec()),
        prop::collection::vec(1u8..=255, 1..300).prop_map(|v| v
            .into_iter()
            .map(|b| if b == b'/' { b'_' } else { b })
            .collect()),
    ];
    prop_oneof![
        6 => (file_len, any::<u64>()).prop_map(|(len, seed)| Kind::File { len, seed }),
        2 => sparse,
        5 => Just(Kind::Dir),
        2 => target.prop_map(Kind::Symlink),
        2 => any::<usize>().prop_map(Kind::HardLink),
        1 => Just(Kind::Fifo),
        1 => any::<bool>().prop_map(|block| Kind::Device { block }),
    ]
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        any::<usize>(),
        0..STEMS.len(),
        kind_strategy(),
        any::<usize>(),
        (
            prop_oneof![9 => 1_000_000_000i64..2_000_000_000, 1 => -2_000_000_000i64..0],
            0u32..1_000_000_000,
        ),
        prop::collection::vec(
            (
                0..XATTR_NAMES.len(),
                prop::collection::vec(any::<u8>(), 0..64),
            ),
            0..3,
        ),
        (0..UIDS.len(), 0..UIDS.len()),
    )
        .prop_map(
            |(parent, stem, kind, mode_pick, mtime, xattrs, (u, g))| Spec {
                parent,
                stem,
                kind,
                mode_pick,
                mtime,
                xattrs,
                owner: (UIDS[u], UIDS[g]),
            },
        )
}

/// What [`build`] made.
struct Built {
    /// Nodes with their specs, in creation order (hard links excluded: they
    /// share the metadata of their first name).
    nodes: Vec<(PathBuf, Spec)>,
}

/// Create the tree `specs` describe under `root` (which must exist), then
/// set xattrs, owners (as root), modes and finally mtimes, deepest first.
fn build(root: &Path, specs: &[Spec], xattrs: bool) -> Built {
    let as_root = is_root();
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut files: Vec<PathBuf> = Vec::new();
    let mut nodes: Vec<(PathBuf, Spec)> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let parent = dirs[s.parent % dirs.len()].clone();
        let mut name = STEMS[s.stem].to_vec();
        name.extend_from_slice(format!("_{i}").as_bytes());
        let path = parent.join(OsStr::from_bytes(&name));
        match &s.kind {
            Kind::File { len, seed } => {
                fs::write(&path, random_bytes(*seed, *len)).unwrap();
                files.push(path.clone());
            }
            Kind::Sparse { len, regions, seed } => {
                let f = fs::File::create(&path).unwrap();
                f.set_len(*len).unwrap();
                for (j, &(off, n)) in regions.iter().enumerate() {
                    let n = n.min((*len - off) as usize);
                    f.write_all_at(&random_bytes(seed ^ j as u64, n), off)
                        .unwrap();
                }
                files.push(path.clone());
            }
            Kind::Dir => {
                fs::create_dir(&path).unwrap();
                dirs.push(path.clone());
            }
            Kind::Symlink(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), &path).unwrap(),
            Kind::HardLink(k) => {
                if files.is_empty() {
                    fs::write(&path, b"not a link after all").unwrap();
                    files.push(path.clone());
                } else {
                    fs::hard_link(&files[k % files.len()], &path).unwrap();
                    continue;
                }
            }
            Kind::Fifo => support::mkfifo(&path, 0o644),
            Kind::Device { block } => {
                if as_root {
                    support::mknod_dev(&path, *block, if *block { 7 } else { 1 }, 3);
                } else {
                    support::mkfifo(&path, 0o644);
                }
            }
        }
        nodes.push((path, s.clone()));
    }
    for (path, s) in &nodes {
        let md = fs::symlink_metadata(path).unwrap();
        let ft = md.file_type();
        if xattrs && (ft.is_file() || ft.is_dir()) {
            for (n, v) in &s.xattrs {
                xattr::set(path, XATTR_NAMES[*n], v).unwrap();
            }
        }
        if as_root {
            std::os::unix::fs::lchown(path, Some(s.owner.0), Some(s.owner.1)).unwrap();
        }
        // after chown, which clears set-id bits
        if !ft.is_symlink() {
            let modes = if ft.is_dir() {
                DIR_MODES
            } else if ft.is_file() {
                FILE_MODES
            } else {
                FIFO_MODES
            };
            let mode = modes[s.mode_pick % modes.len()];
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    // mtimes: everything but directories, then directories children first
    // (a directory is always created after its parent), then the root.
    for (path, s) in nodes.iter().filter(|(_, s)| !matches!(s.kind, Kind::Dir)) {
        set_mtime(path, s.mtime.0, s.mtime.1);
    }
    for (path, s) in nodes
        .iter()
        .rev()
        .filter(|(_, s)| matches!(s.kind, Kind::Dir))
    {
        set_mtime(path, s.mtime.0, s.mtime.1);
    }
    set_mtime(root, 1_600_000_000, 123_456_789);
    Built { nodes }
}

/// Snapshot `<fixture>/src/data`, restore it, compare; returns the restore report.
fn roundtrip(fx: &Fixture, restore_args: &[&str]) -> serde_json::Value {
    let src = fx.path("src/data");
    let snap = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&snap, "summary/warnings"), 0, "{snap}");
    let target = fx.path("restored");
    let report = fx.strata.restore("latest", &target, restore_args);
    assert_same_tree(&src, &support::under(&target, &src));
    report
}

fn xattrs_supported(fx: &Fixture) -> bool {
    let ok = support::user_xattrs_supported(fx.dir());
    if !ok {
        println!(
            "note: {} does not support user.* xattrs; not testing them",
            fx.dir().display()
        );
    }
    ok
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_trees_roundtrip_exactly(specs in prop::collection::vec(spec_strategy(), 1..28)) {
        let fx = Fixture::new();
        let src = fx.mkdir("src/data");
        let xattrs = xattrs_supported(&fx);
        build(&src, &specs, xattrs);
        roundtrip(&fx, &[]);
    }
}

/// A fixed tree with one of everything, restored with `--verify`.
fn every_kind() -> Vec<Spec> {
    let s = |parent: usize, kind: Kind, mode_pick: usize, sec: i64, nsec: u32| Spec {
        parent,
        stem: 0,
        kind,
        mode_pick,
        mtime: (sec, nsec),
        xattrs: vec![(0, b"value".to_vec()), (3, vec![0, 255, 7])],
        owner: (1000, 65534),
    };
    vec![
        s(0, Kind::Dir, 2, 1_500_000_000, 1),           // 1: setgid dir
        s(0, Kind::Dir, 0, 1_500_000_001, 999_999_999), // 2: stays empty
        s(1, Kind::File { len: 0, seed: 1 }, 1, 1_400_000_000, 5),
        s(
            1,
            Kind::File {
                len: 3_000_000,
                seed: 2,
            },
            3,
            1_400_000_001,
            6,
        ),
        s(1, Kind::File { len: 777, seed: 3 }, 5, 1_400_000_002, 7),
        s(
            0,
            Kind::Sparse {
                len: 16 << 20,
                regions: vec![(0, 4096), (5 << 20, 70_000), ((16 << 20) - 100, 100)],
                seed: 4,
            },
            0,
            1_300_000_000,
            8,
        ),
        s(
            0,
            Kind::Sparse {
                len: 1 << 20,
                regions: vec![],
                seed: 5,
            },
            0,
            1_300_000_001,
            9,
        ),
        s(1, Kind::HardLink(1), 0, 0, 0),
        s(0, Kind::HardLink(1), 0, 0, 0),
        s(1, Kind::Symlink(b"f_3".to_vec()), 0, 1_200_000_000, 10),
        s(
            0,
            Kind::Symlink(b"dangling/nowhere".to_vec()),
            0,
            1_200_000_001,
            11,
        ),
        s(0, Kind::Fifo, 1, 1_100_000_000, 12),
        s(1, Kind::Device { block: false }, 0, 1_100_000_001, 13),
        s(1, Kind::Device { block: true }, 0, 1_100_000_002, 14),
        Spec {
            stem: 2, // non-UTF-8 name
            ..s(1, Kind::File { len: 10, seed: 6 }, 0, -1_000, 15)
        },
        s(0, Kind::Dir, 4, 1_000_000_000, 16), // read-only dir with content
        s(3, Kind::File { len: 100, seed: 7 }, 4, 1_000_000_001, 17),
    ]
}

#[test]
fn every_kind_roundtrips_with_verify() {
    let fx = Fixture::new();
    let src = fx.mkdir("src/data");
    let xattrs = xattrs_supported(&fx);
    let built = build(&src, &every_kind(), xattrs);
    assert!(built.nodes.len() >= 15);
    let report = roundtrip(&fx, &["--verify"]);
    let files = num(&report, "report/files");
    assert_eq!(files, 7, "{report}"); // hard links count as `other`
    assert_eq!(num(&report, "report/verified"), files, "{report}");
    // the sparse file kept its holes (compare_trees checks allocation too)
    let sparse = support::under(&fx.path("restored"), &src).join("f_5");
    let md = fs::metadata(&sparse).unwrap();
    assert_eq!(md.len(), 16 << 20);
    assert!(
        std::os::unix::fs::MetadataExt::blocks(&md) * 512 < 1 << 20,
        "sparse file allocated {} blocks",
        std::os::unix::fs::MetadataExt::blocks(&md)
    );
}

/// Restoring into a target that already holds an older restore gives the
/// same exact tree (metadata re-applied, directories' mtimes set last).
#[test]
fn restore_over_previous_restore_is_exact() {
    let fx = Fixture::new();
    let src = fx.mkdir("src/data");
    let xattrs = xattrs_supported(&fx);
    build(&src, &every_kind(), xattrs);
    roundtrip(&fx, &[]);
    // as non-root too: read-only directories of the first restore get u+w
    // while they are written into, and their mode back at the end
    roundtrip(&fx, &["--overwrite", "always"]);
}

/// A unix socket is recorded but restored as nothing, without warnings.
#[test]
fn sockets_are_skipped_quietly() {
    let fx = Fixture::new();
    let src = fx.mkdir("src/data");
    fs::create_dir(src.join("s")).unwrap();
    let _l = std::os::unix::net::UnixListener::bind(src.join("s/sock")).unwrap();
    fs::write(src.join("s/file"), b"x").unwrap();
    let snap = fx.strata.snapshot(&[&src]);
    assert_eq!(num(&snap, "summary/other"), 1, "{snap}");
    let target = fx.path("restored");
    let report = fx.strata.restore("latest", &target, &[] as &[&str]);
    assert_eq!(
        report.pointer("/report/warnings").unwrap(),
        &serde_json::json!([]),
        "{report}"
    );
    assert_eq!(support::list_under(&target, &src), ["s/", "s/file"]);
}
