//! Deep nesting (issue 10 "Hostile values"): no decoder structure is
//! recursive, but a repository can hold a chain of directories nested far
//! deeper than any file system allows. Every command that walks trees must
//! answer such a crafted snapshot with a bounded, one-line error (or do its
//! job), never overflow the stack or hang.

use crate::support;

use std::os::unix::process::ExitStatusExt;
use strata::Repo;
use strata::backup::saver::BlobSaver;
use strata::snapshot::Snapshot;
use strata::snapshot::tree::{Entry, EntryKind, Tree};
use support::Fixture;

/// A snapshot of `/d/d/…/d/f` with `depth` directories, written through
/// the library into the repository of `f`.
fn deep_snapshot(f: &Fixture, depth: usize) {
    let repo = Repo::open(f.strata.repo()).unwrap();
    let saver = BlobSaver::new(&repo).unwrap();
    let mut file = Entry::new(b"f".to_vec(), EntryKind::File);
    file.inline = b"bottom".to_vec();
    file.size = 6;
    file.mode = 0o644;
    let mut id = saver
        .save_tree(&Tree {
            entries: vec![file],
            parts: vec![],
        })
        .unwrap();
    for _ in 0..depth {
        let mut d = Entry::new(b"d".to_vec(), EntryKind::Dir);
        d.mode = 0o755;
        d.subtree = Some(id);
        id = saver
            .save_tree(&Tree {
                entries: vec![d],
                parts: vec![],
            })
            .unwrap();
    }
    saver.finish().unwrap();
    Snapshot {
        time_unix_ns: 1_700_000_000_000_000_000,
        host: "deep".into(),
        username: "u".into(),
        paths: vec![b"/d".to_vec()],
        tags: vec![],
        tree: id,
        parent: None,
        summary: Default::default(),
        program: "tests/it/deep_trees.rs".into(),
        layout: 1,
        writer: None,
    }
    .save(&repo)
    .unwrap();
}

/// Each command ends by itself, with exit 0 or a one-line error, and no
/// signal (a stack overflow aborts with SIGABRT or SIGSEGV).
fn assert_bounded(f: &Fixture, args: &[&str]) -> std::process::Output {
    let started = std::time::Instant::now();
    let o = support::run(f.strata.repo(), &[], args);
    assert!(
        o.status.signal().is_none(),
        "{args:?}: killed by signal {:?}\n{}",
        o.status.signal(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "{args:?}: {:?}",
        started.elapsed()
    );
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err.lines().last().unwrap_or("");
        assert!(last.starts_with("strata: "), "{args:?}: {err}");
    }
    o
}

#[test]
fn a_chain_of_5000_directories_gives_bounded_errors() {
    // 5000: deeper than MAX_DEPTH (1024), and deep enough that `find` and
    // `restore` overflowed their stack before the limit
    let f = Fixture::with_init(&["--no-encryption"]);
    deep_snapshot(&f, 5000);
    let target = f.path("target");
    let t = target.to_str().unwrap();
    // walks that go down every directory stop at the limit, naming a tree
    for args in [
        &["ls", "-r", "latest"][..],
        &["find", "f"],
        &["stats", "latest"],
        &["restore", "latest", "--target", t],
    ] {
        let o = assert_bounded(&f, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("nested deeper than 1024 levels"),
            "{args:?}: {err}"
        );
    }
    // the others (gc's and check's walks are not recursive) do their job
    for args in [
        &["ls", "latest"][..],
        &["check", "--read-data"],
        &["gc"],
        &["diff", "latest", "latest"],
    ] {
        let o = assert_bounded(&f, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_chain_of_200_directories_restores() {
    // deep, but within what a file system holds: restored, and checked
    let f = Fixture::with_init(&["--no-encryption"]);
    deep_snapshot(&f, 200);
    let target = f.path("target");
    let o = assert_bounded(
        &f,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(o.status.success());
    let mut p = target.clone();
    for _ in 0..200 {
        p.push("d");
    }
    assert_eq!(std::fs::read(p.join("f")).unwrap(), b"bottom");
    assert!(
        assert_bounded(&f, &["check", "--read-data"])
            .status
            .success()
    );
}

/// A real source nested deeper than the limit: `snapshot` skips what lies
/// below 1024 levels with a warning (exit 3) instead of overflowing its
/// stack, and the rest, 900 levels down included, restores.
#[test]
fn a_source_deeper_than_the_limit_is_skipped_below_it_and_the_rest_restores() {
    let f = Fixture::with_init(&["--no-encryption"]);
    let src = f.path("deep");
    let mut p = src.clone();
    for i in 0..1100 {
        p.push("d");
        if i == 899 {
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("mid"), b"at 900").unwrap();
        }
    }
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("bottom"), b"at 1100").unwrap();
    let o = support::run(f.strata.repo(), &[], &["snapshot", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("nested deeper than 1024 levels"), "{err}");
    let out = f.path("out");
    let o = support::run(
        f.strata.repo(),
        &[],
        &["restore", "latest", "--target", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut mid = out.join(src.strip_prefix("/").unwrap());
    for _ in 0..900 {
        mid.push("d");
    }
    assert_eq!(std::fs::read(mid.join("mid")).unwrap(), b"at 900");
}
