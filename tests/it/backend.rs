//! The backend contract (format-spec/backend.md), one suite run against
//! every implementation: a local directory, `memory://`, `file://`, the
//! fault wrapper with no faults, and S3 spoken over HTTP to a real
//! S3-compatible server (moto) that this test starts on 127.0.0.1. The S3
//! case is skipped with a message when moto is not installed, unless
//! `STRATA_REQUIRE_S3_TESTS=1` (set by `.ci/run`) makes that a failure.

use crate::support;

use strata::backend::{self, Backend, BackendError, FaultBackend, Listed, key};

fn hex(seed: u8) -> String {
    format!("{:02x}", seed).repeat(32)
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, BackendError>, key: &str) {
    match r {
        Err(e @ BackendError::NotFound { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(key), "error does not name the key: {msg}");
        }
        other => panic!("{key}: expected NotFound, got {other:?}"),
    }
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, BackendError>, what: &str) {
    assert!(
        matches!(r, Err(BackendError::InvalidKey { .. })),
        "{what}: expected InvalidKey, got {r:?}"
    );
}

/// The contract every backend keeps. `b` must be empty.
fn contract(b: &dyn Backend) {
    let name = b.name().to_string();
    assert!(b.list_all("").unwrap().is_empty(), "{name}: not empty");
    keys_and_stamps(b);
    assert!(b.list_all("").unwrap().is_empty(), "{name}: not empty");

    // round trip
    b.put_new(key::CONFIG, b"config bytes").unwrap();
    assert_eq!(&b.get(key::CONFIG).unwrap()[..], b"config bytes");
    assert_eq!(b.size(key::CONFIG).unwrap(), 12);
    assert!(b.exists(key::CONFIG).unwrap());
    assert!(!b.exists("snapshots/nope").unwrap());
    b.put_new("empty", b"").unwrap();
    assert_eq!(b.get("empty").unwrap().len(), 0);

    // not found names key and backend
    let missing = key::snapshot(&hex(9));
    assert_not_found(b.get(&missing), &missing);
    assert_not_found(b.size(&missing), &missing);
    assert_not_found(b.get_range(&missing, 0..1), &missing);
    assert!(b.get(&missing).unwrap_err().to_string().contains(&name));

    // ranged reads
    let pack_ab = key::pack(&hex(0xab));
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
    b.put_new(&pack_ab, &data).unwrap();
    assert_eq!(&b.get_range(&pack_ab, 10..20).unwrap()[..], &data[10..20]);
    assert_eq!(&b.get_range(&pack_ab, 0..1000).unwrap()[..], &data[..]);
    assert_eq!(&b.get_range(&pack_ab, 990..1000).unwrap()[..], &data[990..]);
    assert!(b.get_range(&pack_ab, 1000..1000).unwrap().is_empty());
    assert!(b.get_range(&pack_ab, 5..5).unwrap().is_empty());
    for r in [990..1001, 1000..1010, 2000..2010, 1001..1001] {
        match b.get_range(&pack_ab, r.clone()) {
            Err(BackendError::OutOfRange { size, range, .. }) => {
                assert_eq!((size, range), (1000, r.clone()))
            }
            other => panic!("{name}: range {r:?}: expected OutOfRange, got {other:?}"),
        }
    }

    // a ranged-read handle (packs): get_range's answers from one open object
    assert_not_found(b.open_ranged(&missing).map(|_| ()), &missing);
    let h = b.open_ranged(&pack_ab).unwrap();
    assert_eq!(h.size(), 1000, "{name}: handle size");
    assert_eq!(&h.read(10..20).unwrap()[..], &data[10..20]);
    assert_eq!(&h.read(0..1000).unwrap()[..], &data[..]);
    assert!(h.read(1000..1000).unwrap().is_empty());
    let mut buf = [0u8; 10];
    h.read_at(&mut buf, 990).unwrap();
    assert_eq!(&buf[..], &data[990..]);
    h.read_at(&mut buf, 3).unwrap();
    assert_eq!(&buf[..], &data[3..13]);
    for (off, len) in [(990u64, 11usize), (1000, 10), (2000, 10)] {
        let mut buf = vec![0u8; len];
        match h.read_at(&mut buf, off) {
            Err(BackendError::OutOfRange { size, .. }) => assert_eq!(size, 1000),
            other => panic!("{name}: read_at {off}+{len}: expected OutOfRange, got {other:?}"),
        }
    }
    match h.read(995..1005) {
        Err(BackendError::OutOfRange { size, .. }) => assert_eq!(size, 1000),
        other => panic!("{name}: read 995..1005: expected OutOfRange, got {other:?}"),
    }

    // create-only: the first content stays
    match b.put_new(&pack_ab, b"other bytes") {
        Err(e @ BackendError::AlreadyExists { .. }) => {
            assert!(e.is_already_exists());
            assert!(e.to_string().contains(&pack_ab), "{e}");
        }
        other => panic!("{name}: second put_new: {other:?}"),
    }
    assert_eq!(&b.get(&pack_ab).unwrap()[..], &data[..]);
    // put_new_bytes (sync's, without a copy): the same contract
    match b.put_new_bytes(&pack_ab, bytes::Bytes::from_static(b"other bytes")) {
        Err(e) if e.is_already_exists() => {}
        other => panic!("{name}: put_new_bytes over a key: {other:?}"),
    }
    assert_eq!(&b.get(&pack_ab).unwrap()[..], &data[..]);
    let handed = key::pack(&hex(0xba));
    b.put_new_bytes(&handed, bytes::Bytes::from(data.clone()))
        .unwrap();
    assert_eq!(&b.get(&handed).unwrap()[..], &data[..]);
    b.delete(&handed).unwrap();

    // replace
    let lock = key::lock(&hex(1));
    b.put_replace(&lock, b"lock v1").unwrap();
    assert_eq!(&b.get(&lock).unwrap()[..], b"lock v1");
    b.put_replace(&lock, b"lock, second version").unwrap();
    assert_eq!(&b.get(&lock).unwrap()[..], b"lock, second version");
    assert_eq!(b.size(&lock).unwrap(), 20);

    // a pack from a local file: consumed, create-only
    let scratch = tempfile::tempdir().unwrap();
    let dir = b
        .scratch_dir()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let pack_cd = key::pack(&hex(0xcd));
    let file = dir.join("upload.pack");
    std::fs::write(&file, b"pack from a file").unwrap();
    b.put_new_file(&pack_cd, &file).unwrap();
    assert!(!file.exists(), "{name}: the file was not consumed");
    assert_eq!(&b.get(&pack_cd).unwrap()[..], b"pack from a file");
    let other = scratch.path().join("other.pack");
    std::fs::write(&other, b"different").unwrap();
    assert!(
        b.put_new_file(&pack_cd, &other)
            .unwrap_err()
            .is_already_exists()
    );
    assert_eq!(&b.get(&pack_cd).unwrap()[..], b"pack from a file");
    assert_not_found(
        b.put_new_file(&key::pack(&hex(0xce)), &scratch.path().join("absent"))
            .map_err(|e| match e {
                BackendError::Io { backend, key, .. } => BackendError::NotFound { backend, key },
                e => e,
            }),
        "absent",
    );

    // list: prefixes end at `/`, fan-out directories are walked
    let pack_ab2 = key::pack(&format!("ab{}", "01".repeat(31)));
    b.put_new(&pack_ab2, b"xy").unwrap();
    // each entry with the time the storage says it was written: within
    // the minute (the S3 server and the files share this clock)
    let l = |p: &str| {
        let now = std::time::SystemTime::now();
        b.list_all(p)
            .unwrap()
            .into_iter()
            .map(|e| {
                let m = e
                    .modified
                    .unwrap_or_else(|| panic!("{name}: {e:?} has no time"));
                let age = now.duration_since(m).unwrap_or_default();
                assert!(age.as_secs() < 60, "{name}: {e:?} written {age:?} ago");
                Listed {
                    modified: None,
                    ..e
                }
            })
            .collect::<Vec<_>>()
    };
    let entry = |k: &str, size| Listed {
        key: k.to_string(),
        size,
        modified: None,
    };
    let mut all = vec![
        entry(key::CONFIG, 12),
        entry("empty", 0),
        entry(&lock, 20),
        entry(&pack_ab, 1000),
        entry(&pack_ab2, 2),
        entry(&pack_cd, 16),
    ];
    all.sort();
    assert_eq!(l(""), all, "{name}");
    let mut packs = vec![
        entry(&pack_ab, 1000),
        entry(&pack_ab2, 2),
        entry(&pack_cd, 16),
    ];
    packs.sort();
    assert_eq!(l("packs"), packs, "{name}");
    let mut ab = vec![entry(&pack_ab, 1000), entry(&pack_ab2, 2)];
    ab.sort();
    assert_eq!(l("packs/ab"), ab, "{name}");
    assert_eq!(l("packs/cd"), vec![entry(&pack_cd, 16)]);
    assert!(l("packs/a").is_empty(), "{name}: prefix is not at a `/`");
    assert!(l("snapshots").is_empty());
    assert!(l("config").is_empty(), "{name}: an object is no prefix");
    // the callback may call the backend (no runtime held)
    let mut sizes = 0;
    b.list("packs", &mut |x| sizes += b.size(&x.key).unwrap())
        .unwrap();
    assert_eq!(sizes, 1018);

    // delete
    b.delete(&pack_ab2).unwrap();
    assert_not_found(b.get(&pack_ab2), &pack_ab2);
    assert_not_found(b.delete(&pack_ab2), &pack_ab2);
    assert_not_found(b.delete("never-was"), "never-was");
    assert_eq!(l("packs/ab"), vec![entry(&pack_ab, 1000)]);

    // odd keys are refused before any I/O
    for k in [
        "",
        "/etc/passwd",
        "..",
        "../x",
        "packs/../config",
        "a//b",
        "a/",
        "tmp/x",
        "a b",
    ] {
        assert_invalid(b.get(k), k);
        assert_invalid(b.put_new(k, b"x"), k);
        assert_invalid(b.put_replace(k, b"x"), k);
        assert_invalid(b.delete(k), k);
        assert_invalid(b.size(k), k);
        assert_invalid(b.get_range(k, 0..1), k);
        assert_invalid(b.open_ranged(k).map(|_| ()), k);
    }
    assert_invalid(b.list_all("../"), "list ../");
    assert_invalid(b.list_all("/"), "list /");
    assert_eq!(l("").len(), 5, "{name}: an odd key left something behind");
}

/// `list_keys` lists the keys `list` does; a listing stamp, where the
/// backend has one, stays while nothing changes and changes with every
/// object added to its prefix or removed from it (status trusts it,
/// format-spec/repository.md "Status report (local)"). Changes are 20 ms
/// apart: within one clock tick a stamp may not move, which is why status
/// only saves one that is two seconds old.
fn keys_and_stamps(b: &dyn Backend) {
    let name = b.name().to_string();
    let tick = || std::thread::sleep(std::time::Duration::from_millis(20));
    let stamp = || b.listing_stamp("snapshots").unwrap().map(|(s, _)| s);
    let (one, two) = (key::snapshot(&hex(1)), key::snapshot(&hex(2)));
    b.put_new(&one, b"m1").unwrap();
    let s1 = stamp();
    tick();
    b.put_new(&two, b"m2").unwrap();
    let s2 = stamp();
    assert_eq!(stamp(), s2, "{name}: the stamp moved with nothing changed");
    let mut keys = Vec::new();
    b.list_keys("snapshots", &mut |k| keys.push(k.to_string()))
        .unwrap();
    keys.sort();
    let listed: Vec<String> = b
        .list_all("snapshots")
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, listed, "{name}: list_keys against list");
    assert_eq!(keys, vec![one.clone(), two.clone()], "{name}");
    tick();
    b.delete(&one).unwrap();
    let s3 = stamp();
    tick();
    b.delete(&two).unwrap();
    let s4 = stamp();
    if s1.is_some() {
        for (a, b2, what) in [
            (&s1, &s2, "an object added"),
            (&s2, &s3, "one removed"),
            (&s3, &s4, "the last removed"),
        ] {
            assert_ne!(a, b2, "{name}: the stamp did not change with {what}");
        }
    }
}

#[test]
fn local_directory() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("repo");
    let b = backend::open(root.to_str().unwrap()).unwrap();
    std::fs::create_dir_all(root.join("snapshots")).unwrap();
    assert!(
        b.listing_stamp("snapshots").unwrap().is_some(),
        "a local directory has a listing stamp"
    );
    contract(&*b);
    assert_eq!(
        b.remote_reads(),
        None,
        "a directory is read on the CPU pool"
    );
    // today's layout: files under their keys, tmp/ emptied and not listed
    assert!(root.join("packs/ab").join(hex(0xab)).is_file());
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    // a stray file in tmp/ is not an object
    std::fs::write(root.join("tmp/x.tmp"), b"x").unwrap();
    assert!(
        b.list_all("")
            .unwrap()
            .iter()
            .all(|l| !l.key.starts_with("tmp"))
    );
}

#[test]
fn memory() {
    let b = backend::open("memory://").unwrap();
    contract(&*b);
    assert_eq!(b.remote_reads(), Some(16));
}

#[test]
fn fault_wrapper_without_faults_is_transparent() {
    let b = FaultBackend::new(backend::open("memory://").unwrap());
    contract(&b);
    assert!(b.calls(backend::Op::PutNew) >= 4);
    // the handle's reads are GetRange calls, and can fail as such
    let pack = key::pack(&hex(0xab));
    let h = b.open_ranged(&pack).unwrap();
    let n = b.calls(backend::Op::GetRange);
    b.fail(backend::Op::GetRange, n + 1, backend::Fault::Transient);
    assert!(matches!(h.read(0..1), Err(BackendError::Injected { .. })));
    assert_eq!(
        &h.read(0..1).unwrap()[..],
        &b.get_range(&pack, 0..1).unwrap()[..]
    );
}

#[test]
fn file_url() {
    let d = tempfile::tempdir().unwrap();
    let url = format!("file://{}/repo", d.path().display());
    let b = backend::open(&url).unwrap();
    assert_eq!(b.name(), url);
    contract(&*b);
    assert!(d.path().join("repo/packs/ab").join(hex(0xab)).is_file());
}

#[test]
fn open_parses_repo_values() {
    let e = backend::open("ftp://host/x").unwrap_err();
    assert!(matches!(e, BackendError::InvalidUrl { .. }), "{e}");
    assert!(e.to_string().contains("ftp://host/x"), "{e}");
    assert!(backend::open("").is_err());
    // a plain path, relative or absolute, is a local directory
    assert_eq!(backend::open("some/dir").unwrap().name(), "some/dir");
    assert_eq!(backend::open("/abs/dir").unwrap().name(), "/abs/dir");
}

// ------------------------------------------------------------------ S3

#[test]
fn s3_against_moto() {
    let Some(s3) = support::S3::new("strata-test") else {
        return;
    };
    let env = s3.env();

    // under a prefix, and a second repository beside it stays apart
    let b = backend::open_with_env("s3://strata-test/repos/one", env.clone()).unwrap();
    assert_eq!(b.name(), "s3://strata-test/repos/one");
    contract(&*b);
    let b2 = backend::open_with_env("s3://strata-test/repos/two", env.clone()).unwrap();
    assert!(b2.list_all("").unwrap().is_empty());
    b2.put_new(key::CONFIG, b"two").unwrap();
    assert_eq!(&b.get(key::CONFIG).unwrap()[..], b"config bytes");

    // at the bucket's root
    let root = backend::open_with_env("s3://strata-test", env.clone()).unwrap();
    let keys: Vec<String> = root
        .list_all("repos")
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(keys.contains(&"repos/two/config".to_string()), "{keys:?}");

    // a missing bucket is a clear error naming the backend
    let none = backend::open_with_env("s3://no-such-bucket/x", env).unwrap();
    let e = none.get(key::CONFIG).unwrap_err();
    assert!(e.to_string().contains("s3://no-such-bucket/x"), "{e}");
}
