//! Fault battery item 6 (issue 10): path traversal on restore from a
//! crafted repository. The trees are written with the library's own tree
//! encoder and blob saver (which, like an attacker's tool, do not check
//! names: only decoding does), each in a snapshot of its own:
//!
//! - entries named `../x`, `..`, an absolute path (`/etc/x` and one into a
//!   directory the test watches), `a/../../x`, `.`, the empty name and a
//!   name containing NUL: the restore is refused with one `strata:` line;
//! - a symlink `l -> <outside>` followed by a directory `l` holding `f`, in
//!   two parts of one large directory (each part is valid on its own);
//! - a symlink `l -> <outside>` restored first, then a snapshot whose `l`
//!   is a directory holding `f` restored into the same target;
//! - a symlink planted in the target beforehand, where the snapshot has a
//!   directory (`d -> <outside>`) and where it has a file (`f ->
//!   <outside>/victim`).
//!
//! In every case nothing outside the target is created or changed: the
//! watched directory (holding a victim file) and the target's parent are
//! compared before and after, and `/etc/x` does not appear.

use crate::support;

use std::fs;
use std::path::Path;
use strata::blob::BlobKind;
use strata::snapshot::tree::{Entry, EntryKind, Tree};

fn file(name: &[u8], data: &[u8]) -> Entry {
    Entry {
        inline: data.to_vec(),
        size: data.len() as u64,
        mode: 0o644,
        ..Entry::new(name.to_vec(), EntryKind::File)
    }
}

fn symlink(name: &[u8], target: &Path) -> Entry {
    Entry {
        target: target.to_str().unwrap().as_bytes().to_vec(),
        mode: 0o777,
        ..Entry::new(name.to_vec(), EntryKind::Symlink)
    }
}

fn dir(name: &[u8], tree: strata::BlobId) -> Entry {
    Entry {
        subtree: Some(tree),
        mode: 0o755,
        ..Entry::new(name.to_vec(), EntryKind::Dir)
    }
}

/// Writes crafted trees and snapshots into an unencrypted repository.
struct Crafter {
    repo: strata::Repo,
}

impl Crafter {
    /// Save trees with `f` (given a tree saver), then a snapshot whose
    /// root is the tree `f` returns; its id.
    fn snapshot(
        &self,
        f: impl FnOnce(&dyn Fn(Tree) -> strata::BlobId) -> strata::BlobId,
    ) -> String {
        let saver = strata::backup::saver::BlobSaver::new(&self.repo).unwrap();
        let save = |t: Tree| saver.save(BlobKind::Tree, &t.encode().unwrap()).unwrap();
        let root = f(&save);
        saver.finish().unwrap();
        let snap = strata::snapshot::Snapshot {
            time_unix_ns: strata::sys::now_ns(),
            host: "crafted".into(),
            username: "attacker".into(),
            paths: vec![b"/crafted".to_vec()],
            tags: vec![],
            tree: root,
            parent: None,
            summary: Default::default(),
            program: "battery_traversal".into(),
            layout: strata::snapshot::Layout::Absolute as u8,
            writer: None,
        };
        snap.save(&self.repo).unwrap().to_hex()
    }
}

/// Names and bytes of everything below `dir` (symlinks not followed).
fn state(dir: &Path) -> support::Manifest {
    support::manifest(dir)
}

#[test]
fn crafted_names_and_symlinks_never_reach_outside_the_target() {
    if !support::in_child_without_cache(
        "battery_traversal::crafted_names_and_symlinks_never_reach_outside_the_target",
        &[],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repo_dir = root.join("repo");
    support::ok(&repo_dir, &[], &["init", "--no-encryption"]);
    let outside = root.join("outside");
    support::write_file(&outside.join("victim"), b"do not touch");
    let c = Crafter {
        repo: strata::Repo::open(&repo_dir).unwrap(),
    };
    let escaped = outside.join("escaped");
    let etc_x = Path::new("/etc/x");
    let etc_x_before = etc_x.exists();

    // names a tree must never hold
    let bad: Vec<(String, Vec<u8>)> = vec![
        ("../x".into(), b"../x".to_vec()),
        ("..".into(), b"..".to_vec()),
        ("/etc/x".into(), b"/etc/x".to_vec()),
        (
            "absolute into the watched dir".into(),
            escaped.to_str().unwrap().as_bytes().to_vec(),
        ),
        ("a/../../x".into(), b"a/../../x".to_vec()),
        (".".into(), b".".to_vec()),
        ("empty".into(), b"".to_vec()),
        ("NUL".into(), b"x\0y".to_vec()),
    ];
    // what, the snapshots restored in order, and the error the last restore
    // must fail with (None: it may succeed, replacing the symlink)
    let mut cases: Vec<(String, Vec<String>, Option<&str>)> = Vec::new();
    for (what, name) in &bad {
        // the bad name in the root, and one level down
        let top = c.snapshot(|save| {
            save(Tree {
                entries: vec![file(name, b"evil")],
                parts: vec![],
            })
        });
        cases.push((
            format!("{what} at the top"),
            vec![top],
            Some("unsafe entry name"),
        ));
        let nested = c.snapshot(|save| {
            let sub = save(Tree {
                entries: vec![file(name, b"evil")],
                parts: vec![],
            });
            save(Tree {
                entries: vec![dir(b"a", sub)],
                parts: vec![],
            })
        });
        cases.push((
            format!("{what} below a directory"),
            vec![nested],
            Some("unsafe entry name"),
        ));
    }
    // a symlink then a directory of the same name, in two parts
    let parts = c.snapshot(|save| {
        let p1 = save(Tree {
            entries: vec![symlink(b"l", &outside)],
            parts: vec![],
        });
        let inner = save(Tree {
            entries: vec![file(b"f", b"evil")],
            parts: vec![],
        });
        let p2 = save(Tree {
            entries: vec![dir(b"l", inner)],
            parts: vec![],
        });
        save(Tree {
            entries: vec![],
            parts: vec![p1, p2],
        })
    });
    // refused when the directory is read: its parts must hold names in
    // strictly increasing order (README "Restore safety")
    cases.push((
        "symlink l then directory l/f in two parts".into(),
        vec![parts],
        Some("parts not in name order"),
    ));
    // the symlink restored first, the directory in a second restore
    let link_only = c.snapshot(|save| {
        save(Tree {
            entries: vec![symlink(b"l", &outside)],
            parts: vec![],
        })
    });
    let dir_l = c.snapshot(|save| {
        let inner = save(Tree {
            entries: vec![file(b"f", b"evil"), file(b"victim", b"evil")],
            parts: vec![],
        });
        save(Tree {
            entries: vec![dir(b"l", inner)],
            parts: vec![],
        })
    });
    cases.push((
        "symlink l restored, then l/f".into(),
        vec![link_only, dir_l.clone()],
        None,
    ));
    // symlinks planted in the target beforehand
    let file_f = c.snapshot(|save| {
        save(Tree {
            entries: vec![file(b"f", b"evil")],
            parts: vec![],
        })
    });
    let dir_d = c.snapshot(|save| {
        let inner = save(Tree {
            entries: vec![file(b"g", b"evil"), file(b"victim", b"evil")],
            parts: vec![],
        });
        save(Tree {
            entries: vec![dir(b"d", inner)],
            parts: vec![],
        })
    });

    // what must not change: the watched directory, and the names beside
    // the target and beside its parent
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let watched = |case: &Path| {
        let beside: Vec<String> = names(case).into_iter().filter(|n| n != "t").collect();
        (state(&outside), names(root), beside)
    };
    let mut refused = 0;
    let run = |what: &str, target: &Path, snaps: &[String]| -> Vec<std::process::Output> {
        snaps
            .iter()
            .map(|s| {
                support::run(
                    &repo_dir,
                    &[],
                    &["restore", s, "--target", target.to_str().unwrap()],
                )
            })
            .inspect(|o| {
                assert!(
                    !String::from_utf8_lossy(&o.stderr).contains("panicked"),
                    "{what}: panic"
                )
            })
            .collect()
    };
    for (i, (what, snaps, must_fail_with)) in cases.iter().enumerate() {
        let case = root.join("targets").join(i.to_string());
        fs::create_dir_all(&case).unwrap();
        let target = case.join("t");
        let before = watched(&case);
        let outs = run(what, &target, snaps);
        let last = outs.last().unwrap();
        if let Some(why) = must_fail_with {
            let line = support::one_line_error(last, what);
            assert!(line.contains(why), "{what}: {line}");
            refused += 1;
        }
        assert_eq!(
            watched(&case),
            before,
            "{what}: something outside the target changed"
        );
        if last.status.success() {
            // `l` became a directory of the target: the symlink was replaced
            let md = fs::symlink_metadata(target.join("l")).unwrap();
            assert!(md.is_dir(), "{what}: l is not a directory of the target");
            assert_eq!(fs::read(target.join("l/f")).unwrap(), b"evil");
        }
        assert_eq!(etc_x.exists(), etc_x_before, "{what}: /etc/x");
        println!(
            "{what}: exit {:?} {}",
            last.status.code(),
            String::from_utf8_lossy(&last.stderr).trim()
        );
    }
    for (what, name, snap, planted) in [
        (
            "planted symlink d -> outside, snapshot has directory d",
            "d",
            &dir_d,
            outside.clone(),
        ),
        (
            "planted symlink f -> outside/victim, snapshot has file f",
            "f",
            &file_f,
            outside.join("victim"),
        ),
    ] {
        let case = root.join("targets").join(name);
        let target = case.join("t");
        fs::create_dir_all(&target).unwrap();
        let before = watched(&case);
        std::os::unix::fs::symlink(&planted, target.join(name)).unwrap();
        let outs = run(what, &target, std::slice::from_ref(snap));
        assert_eq!(
            watched(&case),
            before,
            "{what}: something outside the target changed"
        );
        let o = &outs[0];
        println!(
            "{what}: exit {:?} {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
        if o.status.success() {
            // replaced, never written through
            let md = fs::symlink_metadata(target.join(name)).unwrap();
            assert!(
                !md.file_type().is_symlink(),
                "{what}: the planted symlink is still there after a successful restore"
            );
        } else {
            support::one_line_error(o, what);
        }
    }
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"do not touch");
    println!(
        "battery_traversal: {refused} crafted trees refused, {} symlink cases, nothing outside the target touched",
        cases.len() - refused + 2
    );
}
