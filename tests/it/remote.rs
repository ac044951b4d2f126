//! Repositories on object storage (issue 11): every command with
//! `--repo s3://bucket/prefix` against a real S3-compatible server (moto on
//! 127.0.0.1, started here; skipped with a message without moto unless
//! `STRATA_REQUIRE_S3_TESTS=1`): init, snapshot, restore byte for byte,
//! ls, forget, gc, the index rebuilt from the packs in an empty cache, and
//! two processes snapshotting into one repository at once.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{S3, assert_same_tree, under, write_file};

struct Remote {
    s3: S3,
    url: String,
    cache: tempfile::TempDir,
    /// An unencrypted repository: no passphrase is given (strata refuses
    /// to open one with a passphrase, threat-model.md "Downgrade").
    plain: bool,
}

impl Remote {
    fn new(bucket: &str) -> Option<Remote> {
        let s3 = support::S3::new(bucket)?;
        Some(Remote {
            url: s3.url("repos/one"),
            s3,
            cache: tempfile::tempdir().unwrap(),
            plain: false,
        })
    }

    fn unencrypted(self) -> Remote {
        Remote {
            plain: true,
            ..self
        }
    }

    fn cmd(&self, cache: &Path) -> Command {
        let mut c = support::command();
        if self.plain {
            c.env_remove("STRATA_PASSWORD");
        }
        c.env("STRATA_CACHE_DIR", cache)
            .envs(self.s3.env())
            .arg("--repo")
            .arg(&self.url)
            .stdin(Stdio::null());
        c
    }

    fn run_in(&self, cache: &Path, args: &[&str]) -> Output {
        self.cmd(cache).args(args).output().unwrap()
    }

    fn ok_in(&self, cache: &Path, args: &[&str]) -> String {
        let o = self.run_in(cache, args);
        assert!(
            o.status.success(),
            "strata {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(self.cache.path(), args)
    }
}

/// Small files (inline), medium ones (a blob each) and one of several chunks.
const REMOTE_TREE: support::Shape = support::Shape {
    big: &[200_000, 200_000, 200_000, 200_000, 200_000, 5 << 20],
    small: 300,
    small_len: 1500,
};

fn snapshot_id(out: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn round_trip(encrypted: bool) {
    let name = if encrypted {
        "s3_encrypted"
    } else {
        "s3_plain"
    };
    let Some(r) = Remote::new(&format!("strata-{}", name.replace('_', "-"))) else {
        return;
    };
    let r = if encrypted { r } else { r.unencrypted() };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    support::make_tree(&src, 1, REMOTE_TREE);
    let init: &[&str] = if encrypted {
        &["init"]
    } else {
        &["init", "--no-encryption"]
    };
    r.ok(init);
    let first = snapshot_id(&r.ok(&["snapshot", "--json", src.to_str().unwrap()]));
    // a second snapshot after a change: incremental against the parent
    write_file(&src.join("events/new.json"), b"{\"new\": true}");
    let second = snapshot_id(&r.ok(&["snapshot", "--json", src.to_str().unwrap()]));
    assert_ne!(first, second);

    let out = tmp.path().join("out");
    r.ok(&[
        "restore",
        &second,
        "--target",
        out.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_tree(&src, &under(&out, &src));
    let listing = r.ok(&["ls", "-r", &second]);
    assert!(listing.contains("data/f1-5.bin"), "{listing}");

    // An empty cache (another machine): the index is rebuilt from the
    // packs' trailers, and everything restores the same.
    let fresh = tempfile::tempdir().unwrap();
    let out2 = tmp.path().join("out2");
    r.ok_in(
        fresh.path(),
        &[
            "restore",
            &second,
            "--target",
            out2.to_str().unwrap(),
            "--verify",
        ],
    );
    assert_same_tree(&src, &under(&out2, &src));

    // forget + gc on the bucket, then the kept snapshot still restores
    r.ok(&["forget", &first]);
    r.ok(&["gc", "--grace", "0s"]);
    let out3 = tmp.path().join("out3");
    r.ok(&["restore", &second, "--target", out3.to_str().unwrap()]);
    assert_same_tree(&src, &under(&out3, &src));

    // a repository is never created twice
    let o = r.run_in(r.cache.path(), init);
    let line = support::one_line_error(&o, "init over an existing repository");
    assert!(line.contains("already exists"), "{line}");
}

#[test]
fn s3_repository_round_trip_unencrypted() {
    round_trip(false);
}

#[test]
fn s3_repository_round_trip_encrypted() {
    round_trip(true);
}

/// `init` into a bucket that does not exist says so, in one line, and
/// leaves nothing behind; created, the same command works.
#[test]
fn s3_init_into_a_missing_bucket_says_so() {
    let Some(s3) = support::S3::new("strata-present") else {
        return;
    };
    let moto = &s3.moto;
    let cache = tempfile::tempdir().unwrap();
    let init = || {
        support::command()
            .env("STRATA_CACHE_DIR", cache.path())
            .envs(moto.env())
            .args(["--repo", "s3://strata-absent/repo", "init"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = init();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("s3://strata-absent/repo: cannot write there")
            && err.contains("does the bucket (or container) exist?"),
        "{err}"
    );
    moto.create_bucket("strata-absent");
    assert!(moto.list("strata-absent", "").is_empty());
    let o = init();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn two_processes_snapshot_into_one_s3_repository() {
    let Some(r) = Remote::new("strata-two") else {
        return;
    };
    let r = r.unencrypted();
    let tmp = tempfile::tempdir().unwrap();
    r.ok(&["init", "--no-encryption"]);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    support::make_tree(&a, 2, REMOTE_TREE);
    support::make_tree(&b, 3, REMOTE_TREE);
    // separate caches: two machines
    let (ca, cb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spawn = |src: &Path, cache: &Path| {
        r.cmd(cache)
            .args(["snapshot", "--json", src.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a, ca.path()), spawn(&b, cb.path()));
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    for o in [&oa, &ob] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (ia, ib) = (
        snapshot_id(&String::from_utf8_lossy(&oa.stdout)),
        snapshot_id(&String::from_utf8_lossy(&ob.stdout)),
    );
    for (id, src, n) in [(&ia, &a, "ra"), (&ib, &b, "rb")] {
        let out = tmp.path().join(n);
        r.ok(&["restore", id, "--target", out.to_str().unwrap(), "--verify"]);
        assert_same_tree(src, &under(&out, src));
    }
}
