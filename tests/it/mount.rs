//! `strata mount`: the mounted tree equals the source (`diff -r`), `cat`
//! through the mount equals `strata cat`, random-offset reads are exact,
//! `latest`, `tags/` and `hosts/` resolve, and SIGTERM unmounts cleanly.
//!
//! Needs a usable /dev/fuse (root here; `.ci/run` installs fuse3). Where it
//! is missing the test fails and says so, unless STRATA_ALLOW_NO_FUSE=1 is
//! set, in which case it prints that it was skipped: it never pretends to pass.

use crate::support;

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Fixture, random_bytes, write_file};

fn mounted(mp: &Path) -> bool {
    let (m, p) = (
        std::fs::metadata(mp),
        std::fs::metadata(mp.parent().unwrap()),
    );
    matches!((m, p), (Ok(m), Ok(p)) if m.dev() != p.dev())
}

fn wait_for(mp: &Path, want: bool, child: &mut Child) {
    let start = Instant::now();
    while mounted(mp) != want {
        if let Ok(Some(st)) = child.try_wait() {
            if want {
                panic!("mount process exited early: {st}");
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "mount state never became {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn fuse_usable() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if !ok {
        if std::env::var("STRATA_ALLOW_NO_FUSE").as_deref() == Ok("1") {
            support::skip(
                "STRATA_REQUIRE_FUSE_TESTS",
                "/dev/fuse is not usable here (STRATA_ALLOW_NO_FUSE=1)",
            );
        } else {
            panic!(
                "/dev/fuse is not usable here: the mount test cannot run (set STRATA_ALLOW_NO_FUSE=1 to skip it)"
            );
        }
    }
    ok
}

#[test]
fn mounted_snapshots_equal_the_source() {
    if !fuse_usable() {
        return;
    }
    let fx = Fixture::new();
    let src = fx.path("src/data");
    let big = random_bytes(5, 5 << 20);
    write_file(&src.join("big.bin"), &big);
    write_file(
        &src.join("text/log.txt"),
        &b"line of text\n".repeat(100_000),
    );
    for i in 0..300 {
        write_file(
            &src.join(format!("events/{i:04}.json")),
            format!("{{\"i\":{i}}}\n").as_bytes(),
        );
    }
    write_file(&src.join("empty.txt"), b"");
    std::fs::create_dir_all(src.join("emptydir")).unwrap();
    std::os::unix::fs::symlink("big.bin", src.join("link")).unwrap();
    let sparse = src.join("sparse.img");
    {
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(b"middle", 4 << 20).unwrap();
    }
    fx.strata.snapshot(&[&src]);
    fx.strata
        .cmd()
        .args(["snapshot", "--tag", "daily", "--host", "web1", "--json"])
        .arg(&src)
        .assert()
        .success();

    let mp = fx.path("mnt");
    std::fs::create_dir_all(&mp).unwrap();
    let mut child = support::unlock_for(support::strata_command(), fx.strata.repo())
        .arg("--repo")
        .arg(fx.strata.repo())
        .args(["mount", "--foreground"])
        .arg(&mp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mp, true, &mut child);

    // a snapshot shows each source under its absolute path
    let rel = src.strip_prefix("/").unwrap();
    let latest = mp.join("latest").join(rel);
    let check = || {
        // the whole tree, symlinks compared as links
        let out = Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(&src)
            .arg(&latest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "diff -r: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // cat through the mount equals strata cat
        let via_mount = std::fs::read(latest.join("big.bin")).unwrap();
        let via_cat = fx
            .strata
            .cmd()
            .arg("cat")
            .arg(format!("latest:{}/big.bin", src.display()))
            .output()
            .unwrap()
            .stdout;
        assert!(via_mount == via_cat && via_mount == big);
        // random access
        let f = std::fs::File::open(latest.join("big.bin")).unwrap();
        for off in [
            0usize,
            1,
            65_535,
            1 << 20,
            (3 << 20) + 12_345,
            big.len() - 10,
        ] {
            let mut buf = vec![0u8; 10.min(big.len() - off)];
            f.read_exact_at(&mut buf, off as u64).unwrap();
            assert_eq!(buf, big[off..off + buf.len()], "offset {off}");
        }
        let sp = std::fs::read(latest.join("sparse.img")).unwrap();
        assert_eq!(sp, std::fs::read(&sparse).unwrap());
        // groups
        let snaps: Vec<String> = std::fs::read_dir(mp.join("snapshots"))
            .unwrap()
            .map(|d| d.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(snaps.len(), 2, "{snaps:?}");
        let tagged: Vec<_> = std::fs::read_dir(mp.join("tags/daily")).unwrap().collect();
        assert_eq!(tagged.len(), 1);
        assert!(
            mp.join("hosts/web1")
                .join(
                    std::fs::read_dir(mp.join("hosts/web1"))
                        .unwrap()
                        .next()
                        .unwrap()
                        .unwrap()
                        .file_name()
                )
                .join(rel)
                .join("big.bin")
                .is_file()
        );
        let latest = std::fs::read_link(mp.join("latest")).unwrap();
        assert!(latest.starts_with("snapshots"), "{latest:?}");
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));

    // SIGTERM unmounts cleanly
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(status.success(), "mount exited with {status}: {err}");
    assert!(!mounted(&mp), "still mounted after SIGTERM");
    assert!(err.contains("unmounted"), "{err}");
}
