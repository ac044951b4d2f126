//! Fault battery item 7 (issue 10): sources that misbehave during a
//! snapshot.
//!
//! - Files that grow, shrink and vanish (removed and created again) while
//!   `snapshot --force-rehash` reads them: a thread keeps changing them, and
//!   every state it leaves is a prefix of one fixed byte string, so any
//!   consistent read is a prefix of it. Up to 10 snapshots
//!   (`STRATA_BATTERY_ITERATIONS=N`: N) until both a "changed while being
//!   read" and a vanished-file warning were seen. Each snapshot exits 0 or
//!   3 (warnings), each warning names a file that was being changed, `check
//!   --read-data` passes, and every restored file that was left alone
//!   matches its recorded hash while every changed one is a prefix of its
//!   byte string, except that a file warned about may hold zeros where a
//!   read raced a truncation, and only in a range that was truncated away
//!   during that snapshot (the kernel's doing; never foreign bytes).
//! - Unreadable files and directories (mode 000). Root reads them anyway,
//!   so as root the snapshot runs as `nobody` through `setpriv` (skipped
//!   with a message where there is no `setpriv`). Each is named in the
//!   warnings (exit 3), the snapshot is valid (VERIFY of what could be
//!   read), and the rest restores byte-identical.

use crate::support;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use support::{Node, Rng};

const CHANGING: usize = 6;

/// The byte ranges a shrink cut off one file: `(new length, old length)`.
type Cuts = Vec<(usize, usize)>;

#[test]
fn files_growing_shrinking_and_vanishing_during_a_snapshot() {
    let attempts = support::battery_iterations(10);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo = root.join("repo");
    support::ok(&repo, &[], &["init", "--no-encryption"]);
    let src = root.join("src");
    let mut rng = Rng::new(0x5041);
    // files left alone
    for i in 0..20 {
        let n = rng.range(1, 300_000) as usize;
        support::write_file(&src.join(format!("still/f{i}")), &rng.bytes(n));
    }
    // files a thread changes: each always a prefix of its byte string
    let full: Vec<Vec<u8>> = (0..CHANGING).map(|_| rng.bytes(6 << 20)).collect();
    for (i, b) in full.iter().enumerate() {
        support::write_file(&src.join(format!("moving/m{i}")), &b[..3 << 20]);
    }
    let still = support::manifest(&src.join("still"));
    let mut seen_changed = 0;
    let mut seen_vanished = 0;
    let mut runs = 0;
    for attempt in 0..attempts {
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, dir, full2) = (stop.clone(), src.join("moving"), full.clone());
        // per file, every byte range a shrink cut off during this snapshot
        let truncated: Arc<Mutex<Vec<Cuts>>> = Arc::new(Mutex::new(vec![Vec::new(); CHANGING]));
        let truncated2 = truncated.clone();
        let mutator = std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let i = n % CHANGING;
                let p = dir.join(format!("m{i}"));
                let len = fs::metadata(&p).map(|m| m.len() as usize).unwrap_or(0);
                // each file takes every change in turn
                match (n / CHANGING) % 3 {
                    0 => {
                        // grow
                        let to = (len + (1 << 20)).min(full2[i].len());
                        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
                        f.write_all(&full2[i][len..to]).unwrap();
                    }
                    1 => {
                        // shrink
                        let f = OpenOptions::new().write(true).open(&p).unwrap();
                        truncated2.lock().unwrap()[i].push((len / 2, len));
                        f.set_len((len / 2) as u64).unwrap();
                    }
                    _ => {
                        // vanish, then come back
                        fs::remove_file(&p).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        fs::write(&p, &full2[i][..2 << 20]).unwrap();
                    }
                }
                n += 1;
            }
        });
        let o = support::run(
            &repo,
            &[],
            &[
                "snapshot",
                "--json",
                "--force-rehash",
                src.to_str().unwrap(),
            ],
        );
        stop.store(true, Ordering::Relaxed);
        mutator.join().unwrap();
        runs += 1;
        let what = format!("attempt {attempt}");
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        let code = o.status.code().unwrap();
        assert!(code == 0 || code == 3, "{what}: exit {code}: {stderr}");
        let v = support::parse_json(&o.stdout);
        for w in v["warnings"].as_array().unwrap() {
            let w = w.as_str().unwrap();
            assert!(
                w.contains("/moving/m"),
                "{what}: a warning about a file left alone: {w}"
            );
            if w.contains("changed while being read") {
                seen_changed += 1;
            } else if w.contains("No such file") {
                seen_vanished += 1;
            } else {
                panic!("{what}: unexpected warning {w}");
            }
        }
        // the snapshot is valid; what it holds is consistent
        let id = v["id"].as_str().unwrap();
        let c = support::run(&repo, &[], &["check", "--read-data"]);
        assert_eq!(
            c.status.code(),
            Some(0),
            "{what}: {}",
            String::from_utf8_lossy(&c.stdout)
        );
        let target = root.join("t");
        let _ = fs::remove_dir_all(&target);
        support::ok(
            &repo,
            &[],
            &["restore", id, "--target", target.to_str().unwrap()],
        );
        let back = support::under(&target, &src);
        support::assert_matches_manifest(
            &still,
            &back.join("still"),
            &support::Compare::contents_only(),
            &what,
        );
        let warned = |i: usize| {
            v["warnings"].as_array().unwrap().iter().any(|w| {
                let w = w.as_str().unwrap();
                w.contains(&format!("/moving/m{i}:")) && w.contains("changed while being read")
            })
        };
        let truncated = truncated.lock().unwrap().clone();
        let cut = |i: usize, at: usize| truncated[i].iter().any(|&(lo, hi)| (lo..hi).contains(&at));
        for (i, b) in full.iter().enumerate() {
            let p = back.join(format!("moving/m{i}"));
            if let Ok(got) = fs::read(&p) {
                assert!(got.len() <= b.len(), "{what}: m{i} longer than ever");
                // A read racing a truncation can return the truncated
                // range as zeros (the kernel zeroes the page-cache folio
                // that a concurrent read() then copies): that is what was
                // read, the file is in the warnings, and the zeros lie in a
                // range a shrink cut off. Any other byte is the file's own,
                // at its own offset.
                let foreign = got
                    .iter()
                    .zip(b.iter())
                    .enumerate()
                    .position(|(at, (x, y))| x != y && (*x != 0 || !warned(i) || !cut(i, at)));
                assert!(
                    foreign.is_none(),
                    "{what}: m{i} restored with bytes that were never in the file \
                     ({} bytes, the first at {foreign:?}; warned: {})",
                    got.len(),
                    warned(i)
                );
            }
        }
        fs::remove_dir_all(&target).unwrap();
        if seen_changed > 0 && seen_vanished > 0 {
            break;
        }
    }
    println!(
        "battery_sources: {runs} snapshots of changing files: {seen_changed} 'changed while being read' \
         and {seen_vanished} vanished-file warnings; every snapshot valid, 0 torn files"
    );
    assert!(seen_changed > 0, "no snapshot saw a file change");
    if seen_vanished == 0 {
        println!("note: no snapshot met a file between its listing and its opening");
    }
}

#[test]
fn unreadable_files_and_directories_are_warnings_and_the_rest_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let as_nobody = support::is_root();
    if as_nobody && support::on_path("setpriv").is_err() {
        support::skip(
            "STRATA_REQUIRE_ROOT_TESTS",
            "running as root (reads every file) and there is no setpriv to drop to nobody",
        );
        return;
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    let repo = root.join("repo");
    support::ok(&repo, &[], &["init", "--no-encryption"]);
    let src = root.join("src");
    let mut rng = Rng::new(0x0000);
    for i in 0..6 {
        let n = rng.range(1, 200_000) as usize;
        support::write_file(&src.join(format!("ok/f{i}")), &rng.bytes(n));
    }
    support::write_file(&src.join("secret-file"), b"cannot read me");
    support::write_file(&src.join("secret-dir/inside"), b"nor me");
    let readable = support::manifest(&src.join("ok"));
    fs::set_permissions(src.join("secret-file"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("secret-dir"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = support::command();
    if as_nobody {
        // the repository belongs to nobody for this snapshot
        let st = std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&repo)
            .status()
            .unwrap();
        assert!(st.success());
        c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(support::bin())
            .env("STRATA_CACHE_DIR", "")
            .env_remove("STRATA_PASSWORD");
    }
    let o = c
        .arg("--repo")
        .arg(&repo)
        .args(["snapshot", "--json", src.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "exit: {stderr}");
    let v = support::parse_json(&o.stdout);
    let warnings: BTreeSet<String> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    for name in ["secret-file", "secret-dir"] {
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(name) && w.contains("Permission denied")),
            "{name} not in the warnings: {warnings:?}"
        );
    }
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    let taken = support::Taken {
        id: v["id"].as_str().unwrap().to_string(),
        source: src.join("ok"),
        manifest: readable,
    };
    // VERIFY: the readable part (restored under its absolute path)
    support::verify(
        &repo,
        &[],
        std::slice::from_ref(&taken),
        root,
        "unreadable sources",
    );
    let target = root.join("t");
    support::ok(
        &repo,
        &[],
        &["restore", &taken.id, "--target", target.to_str().unwrap()],
    );
    let back = support::under(&target, &src);
    assert!(
        !back.join("secret-file").exists(),
        "an unreadable file was restored"
    );
    let m = support::manifest(&back);
    assert!(
        !m.keys().any(|k| k.starts_with("secret-dir/")),
        "something below the unlistable directory was restored"
    );
    assert!(matches!(
        m.get("ok/f0").map(|e| &e.node),
        Some(Node::File(..))
    ));
    fs::set_permissions(src.join("secret-dir"), fs::Permissions::from_mode(0o755)).unwrap();
    println!(
        "unreadable sources ({}): warnings {warnings:?}; the rest restores byte-identical",
        if as_nobody {
            "snapshot as nobody"
        } else {
            "as this user"
        }
    );
}
