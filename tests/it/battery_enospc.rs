//! Fault battery item 5 (issue 10): a full disk. The repository lives on a
//! 20 MiB tmpfs that the test mounts (as root; otherwise the test is
//! skipped through `support::skip`, a failure when
//! `STRATA_REQUIRE_ROOT_TESTS=1`, as `./test.sh` sets it for root), unmounted at the end even when the
//! test fails. A filler file leaves too little room for what `snapshot`,
//! `gc` (repacking) and `restore` (target on the same tmpfs) must write.
//! Each fails with one `strata:` line saying the device is full, publishes
//! nothing (no new snapshot, every pack complete, the snapshots as before,
//! no restored file with wrong bytes), and once the filler is removed
//! VERIFY passes and the same command succeeds.

use crate::support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Rng, Taken};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !support::is_root() {
            return Err("not running as root: cannot mount a small tmpfs".into());
        }
        fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
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
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Bytes free on the file system holding `dir`.
fn available(dir: &Path) -> u64 {
    let s = rustix::fs::statvfs(dir).unwrap();
    s.f_bavail * s.f_frsize
}

/// Fill the file system of `dir` until `leave` bytes are free; the filler.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let p = dir.join("filler");
    let mut f = fs::File::create(&p).unwrap();
    let mut todo = available(dir).saturating_sub(leave);
    let buf = vec![0xA5u8; 64 << 10];
    while todo > 0 {
        let n = todo.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).unwrap();
        todo -= n as u64;
    }
    f.sync_all().unwrap();
    p
}

const NOW: support::Env = &[("STRATA_GC_GRACE", "0")];

/// The failure is one line saying the device is full.
fn full_disk_error(o: &std::process::Output, what: &str) -> String {
    let line = support::one_line_error(o, what);
    assert!(
        line.contains("No space left on device") || line.contains("disk is full"),
        "{what}: not a full-disk error: {line}"
    );
    line
}

#[test]
fn a_full_disk_fails_snapshot_gc_and_restore_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    let fs_guard = match Tmpfs::mount(&mnt, "20m") {
        Ok(m) => m,
        Err(why) => {
            support::skip("STRATA_REQUIRE_ROOT_TESTS", &why);
            return;
        }
    };
    let repo = mnt.join("repo");
    support::init_small(&repo, &["--no-encryption"]);
    let mut rng = Rng::new(0xD15C);
    let mut taken: Vec<Taken> = Vec::new();
    // two snapshots sharing a file: forgetting the first leaves packs that
    // are partly used, which gc repacks
    for k in 0..2 {
        let src = tmp.path().join(format!("src{k}"));
        // shared and own files alternate, so packs mix them
        for i in 0..3 {
            support::write_file(
                &src.join(format!("f{i}a-shared")),
                &support::random_bytes(5 + i, 400_000),
            );
            let n = rng.range(300_000, 500_000) as usize;
            support::write_file(&src.join(format!("f{i}b-own")), &rng.bytes(n));
        }
        for i in 0..5 {
            support::write_file(&src.join(format!("d/s{i}")), &rng.text(2000));
        }
        taken.push(support::take(&repo, &[], &src));
    }
    let scratch = tmp.path().join("scratch");
    support::verify(&repo, &[], &taken, &scratch, "before the disk fills");
    let mut lines = Vec::new();

    // 1. snapshot: 6 MB of new data, 1 MB free
    let big = tmp.path().join("src-big");
    support::write_file(&big.join("huge"), &rng.bytes(6 << 20));
    let filler = fill(&mnt, 1 << 20);
    let before = support::snapshot_ids(&repo);
    let o = support::run(&repo, NOW, &["snapshot", big.to_str().unwrap()]);
    lines.push(("snapshot", full_disk_error(&o, "snapshot on a full disk")));
    assert_eq!(support::snapshot_ids(&repo), before, "snapshot published");
    support::assert_packs_complete(&repo, "snapshot on a full disk");
    fs::remove_file(&filler).unwrap();
    support::verify(&repo, &[], &taken, &scratch, "after the snapshot failed");
    taken.push(support::take(&repo, &[], &big));

    // 2. gc: forget the first snapshot; repacking needs room
    let o = support::run(&repo, NOW, &["forget", &taken[0].id]);
    assert!(o.status.success());
    let kept: Vec<Taken> = taken[1..].to_vec();
    let filler = fill(&mnt, 64 << 10);
    let o = support::run(&repo, NOW, &["gc", "--max-unused", "0"]);
    if o.status.success() {
        panic!(
            "gc with 64 KiB free succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    lines.push(("gc", full_disk_error(&o, "gc on a full disk")));
    assert_eq!(support::snapshot_ids(&repo).len(), kept.len());
    support::assert_packs_complete(&repo, "gc on a full disk");
    fs::remove_file(&filler).unwrap();
    support::verify(&repo, &[], &kept, &scratch, "after gc failed");
    let o = support::run(&repo, NOW, &["gc", "--max-unused", "0"]);
    assert!(
        o.status.success(),
        "gc with room: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    support::verify(&repo, &[], &kept, &scratch, "after gc with room");

    // 3. restore onto the full tmpfs
    let target = mnt.join("target");
    let t = &kept[kept.len() - 1];
    let filler = fill(&mnt, 2 << 20);
    let o = support::run(
        &repo,
        NOW,
        &["restore", &t.id, "--target", target.to_str().unwrap()],
    );
    lines.push(("restore", full_disk_error(&o, "restore onto a full disk")));
    support::assert_no_wrong_bytes(t, &target, "restore onto a full disk");
    fs::remove_dir_all(&target).unwrap();
    fs::remove_file(&filler).unwrap();
    support::verify(&repo, &[], &kept, &scratch, "after the restore failed");
    for (cmd, line) in &lines {
        println!("{cmd} on a full disk: {line}");
    }
    drop(fs_guard);
}
