//! `strata sync` (issue 11, format-spec/sync.md), on real repositories made
//! by the CLI: a local mirror restores byte for byte and a second sync
//! copies nothing; local -> S3 (a moto server on 127.0.0.1) -> an empty
//! directory, the disaster-recovery path; an interrupted sync (a fault
//! injected after a few uploads) resumes with exactly the missing files;
//! another repository at the destination is refused; `--delete` removes
//! exactly what gc removed at the source and refuses a rolled-back or
//! emptied source; `--dry-run` changes nothing; a corrupt source pack is
//! reported and not copied.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use strata::backend::{self, Backend, Fault, FaultBackend, LocalBackend, Op};
use strata::sync::{self, SyncOptions};
use support::{Fixture, PASSPHRASE, num, one_line_error, parse_json};

/// `strata [--repo REPO] sync ARGS` with `env` and, unless `env` gives
/// one, no passphrase: copying must not need it.
fn sync_cmd(repo: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = support::command();
    c.env_remove("STRATA_PASSWORD");
    if let Some(r) = repo {
        c.arg("--repo").arg(r);
    }
    c.arg("sync").args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run strata")
}

/// [`sync_cmd`] with `--json`, which must succeed; its report.
fn sync_ok(repo: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let o = sync_cmd(repo, &all, env);
    assert!(
        o.status.success(),
        "sync {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    parse_json(&o.stdout)
}

/// `strata --repo REPO ARGS` (with the test passphrase), which must succeed.
fn strata_ok(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = support::unlock_for(support::command(), repo);
    c.arg("--repo").arg(repo).args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "strata {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Five 400 kB incompressible files (several 1 MiB packs) and small text files.
const SYNC_TREE: support::Shape = support::Shape {
    small: 20,
    small_len: 300,
    ..support::FIVE_400K
};

/// Snapshot `src` into `repo` at `time`; the snapshot id.
fn snapshot(repo: &Path, src: &Path, time: &str) -> String {
    let out = strata_ok(
        repo,
        &["snapshot", src.to_str().unwrap(), "--time", time, "--json"],
        &[],
    );
    parse_json(out.as_bytes())["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A repository (`--pack-size-mib 1`, `encrypted` or not) holding one
/// snapshot of a tree at `<fixture>/src`.
fn repo_with_snapshot(encrypted: bool) -> (Fixture, PathBuf) {
    let mut init = vec!["--pack-size-mib", "1"];
    if !encrypted {
        init.push("--no-encryption");
    }
    let fx = Fixture::with_init(&init);
    let src = fx.mkdir("src");
    support::make_tree(&src, 1, SYNC_TREE);
    snapshot(fx.strata.repo(), &src, "2026-01-01 00:00:00");
    (fx, src)
}

/// Every file sync copies (config, keys, dictionaries, packs, gc state,
/// manifests): repository-relative path -> bytes.
fn repo_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if root.join("config").is_file() {
        out.insert("config".to_string(), fs::read(root.join("config")).unwrap());
    }
    for dir in ["keys", "dicts", "packs", "gc", "snapshots"] {
        if !root.join(dir).is_dir() {
            continue;
        }
        for rel in support::list_files(&root.join(dir)) {
            let key = format!("{dir}/{rel}");
            out.insert(key, fs::read(root.join(dir).join(&rel)).unwrap());
        }
    }
    out
}

fn keys_of(files: &BTreeMap<String, Vec<u8>>, prefix: &str) -> BTreeSet<String> {
    files
        .keys()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect()
}

/// Restore `latest` from `repo` (no tree cache: everything from its packs)
/// and compare with `src`.
fn restore_matches(repo: &Path, src: &Path, target: &Path) {
    strata_ok(
        repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        &[],
    );
    support::assert_same_tree(src, &support::under(target, src));
}

#[test]
fn local_mirror_restores_and_a_second_sync_copies_nothing() {
    let (fx, src) = repo_with_snapshot(true);
    let repo = fx.strata.repo();
    let mirror = fx.path("mirror");
    let want = repo_files(repo);
    assert!(keys_of(&want, "packs/").len() >= 3, "{:?}", want.keys());

    let r = sync_ok(
        Some(repo),
        &[
            mirror.to_str().unwrap(),
            "--jobs",
            "3",
            "--limit-upload",
            "100M",
        ],
        &[],
    );
    assert_eq!(num(&r, "copied/objects"), want.len() as u64, "{r}");
    let bytes: usize = want.values().map(Vec::len).sum();
    assert_eq!(num(&r, "copied/bytes"), bytes as u64, "{r}");
    assert_eq!(
        (num(&r, "errors"), r["new_mirror"].as_bool()),
        (0, Some(true))
    );
    // identical bytes under the same names, and nothing else
    assert_eq!(repo_files(&mirror), want);
    assert!(!mirror.join("index.sqlite").exists());
    assert_eq!(fs::read_dir(mirror.join("locks")).unwrap().count(), 0);

    restore_matches(&mirror, &src, &fx.path("restored"));

    let again = sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    assert_eq!(num(&again, "copied/objects"), 0, "{again}");
    assert_eq!(num(&again, "skipped/objects"), want.len() as u64, "{again}");
    assert_eq!(again["new_mirror"].as_bool(), Some(false));
}

#[test]
fn encrypted_repository_to_s3_and_back_into_an_empty_directory() {
    let Some(s3) = support::S3::new("offsite") else {
        return;
    };
    let env_owned = s3.env();
    let env = support::env_refs(&env_owned);
    let (fx, src) = repo_with_snapshot(false);
    // a second, encrypted repository in the same bucket, under another prefix
    let enc = Fixture::with_init(&["--pack-size-mib", "1"]);
    snapshot(enc.strata.repo(), &src, "2026-01-02 00:00:00");

    for (repo, url, name) in [
        (fx.strata.repo(), "s3://offsite/plain", "plain"),
        (enc.strata.repo(), "s3://offsite/team/enc", "enc"),
    ] {
        let want = repo_files(repo);
        let up = sync_ok(Some(repo), &[url], &env);
        assert_eq!(num(&up, "copied/objects"), want.len() as u64, "{up}");
        assert_eq!(up["destination"].as_str(), Some(url));

        // disaster recovery: --from the bucket into an empty directory
        let local = fx.path(format!("recovered-{name}"));
        let down = sync_ok(None, &["--from", url, local.to_str().unwrap()], &env);
        assert_eq!(num(&down, "copied/objects"), want.len() as u64, "{down}");
        assert_eq!(repo_files(&local), want, "{name}");
        restore_matches(&local, &src, &fx.path(format!("restored-{name}")));

        let again = sync_ok(Some(repo), &[url], &env);
        assert_eq!(num(&again, "copied/objects"), 0, "{again}");
        assert_eq!(num(&again, "skipped/objects"), want.len() as u64, "{again}");
    }
    // the two mirrors are told apart
    let o = sync_cmd(Some(enc.strata.repo()), &["s3://offsite/plain"], &env);
    let line = one_line_error(&o, "encrypted repository onto the plain one");
    assert!(line.contains("another repository"), "{line}");
}

/// Library level: a destination whose uploads fail from the 3rd on; the
/// first run copies the config and one pack and stops before any
/// manifest, the second copies exactly the rest.
#[test]
fn an_interrupted_sync_resumes_with_exactly_the_missing_files() {
    let (fx, _src) = repo_with_snapshot(false);
    let src = LocalBackend::new(fx.strata.repo());
    let dst = FaultBackend::new(backend::open("memory://").unwrap());
    dst.fail(Op::PutNew, 3, Fault::Persistent);
    let want = repo_files(fx.strata.repo());
    let opts = SyncOptions {
        jobs: 4,
        ..SyncOptions::default()
    };

    let first = sync::run(
        &src,
        &dst,
        &opts,
        &mut strata::repo::no_credentials,
        &sync::Progress::default(),
    )
    .unwrap();
    assert_eq!(first.copied.objects, 2, "{first:?}");
    assert!(first.errors > 0, "{first:?}");
    assert!(
        first.error_messages[0].contains("injected fault"),
        "{first:?}"
    );
    assert!(first.stopped_before.is_some(), "{first:?}");
    assert!(
        dst.inner().list_all("snapshots").unwrap().is_empty(),
        "a manifest was copied although packs failed"
    );

    dst.heal();
    let second = sync::run(
        &src,
        &dst,
        &opts,
        &mut strata::repo::no_credentials,
        &sync::Progress::default(),
    )
    .unwrap();
    assert_eq!(second.errors, 0, "{second:?}");
    assert_eq!(second.copied.objects, want.len() as u64 - 2, "{second:?}");
    assert_eq!(second.skipped.objects, 2, "{second:?}");
    let got: BTreeMap<String, Vec<u8>> = dst
        .inner()
        .list_all("")
        .unwrap()
        .into_iter()
        .map(|l| {
            let b = dst.inner().get(&l.key).unwrap().to_vec();
            (l.key, b)
        })
        .collect();
    assert_eq!(got, want);
}

/// CLI: packs lost at the destination are copied again, exactly those; a
/// file there with another size is an error naming it, never overwritten.
#[test]
fn lost_packs_and_damaged_packs_are_copied_again_other_files_never_overwritten() {
    let (fx, _src) = repo_with_snapshot(false);
    let repo = fx.strata.repo();
    let mirror = fx.path("mirror");
    sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    let packs = support::pack_files(&mirror);
    let lost: Vec<&PathBuf> = packs.iter().take(2).collect();
    let lost_bytes: u64 = lost.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    for p in &lost {
        fs::remove_file(p).unwrap();
    }
    let r = sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    assert_eq!(num(&r, "copied/objects"), 2, "{r}");
    assert_eq!(num(&r, "copied/bytes"), lost_bytes, "{r}");
    assert_eq!(repo_files(&mirror), repo_files(repo));

    // a pack of another size at the destination is damaged there (its
    // name is the hash of its bytes): copied again from the source, whose
    // copy hashes to its name (issue 24)
    let victim = &packs[2];
    let len = fs::metadata(victim).unwrap().len();
    fs::write(victim, vec![0u8; 100]).unwrap();
    let r = sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    assert_eq!(num(&r, "replaced/objects"), 1, "{r}");
    assert_eq!(num(&r, "replaced/bytes"), len, "{r}");
    assert_eq!(repo_files(&mirror), repo_files(repo));

    // any other file of another size is never overwritten
    let manifest = fs::read_dir(mirror.join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::write(&manifest, vec![0u8; 100]).unwrap();
    let o = sync_cmd(Some(repo), &[mirror.to_str().unwrap()], &[]);
    let line = one_line_error(&o, "a manifest of another size at the destination");
    let name = manifest.file_name().unwrap().to_str().unwrap();
    assert!(
        line.contains(name) && line.contains("not overwritten"),
        "{line}"
    );
    assert_eq!(fs::metadata(&manifest).unwrap().len(), 100);
}

#[test]
fn a_destination_holding_another_repository_is_refused() {
    let (a, src) = repo_with_snapshot(false);
    let mirror = a.path("mirror");
    sync_ok(Some(a.strata.repo()), &[mirror.to_str().unwrap()], &[]);
    let before = repo_files(&mirror);

    let b = Fixture::with_init(&[]);
    snapshot(b.strata.repo(), &src, "2026-01-03 00:00:00");
    let pass = [("STRATA_PASSWORD", PASSPHRASE)];
    // b is encrypted, the mirror is not
    let o = sync_cmd(Some(b.strata.repo()), &[mirror.to_str().unwrap()], &pass);
    let line = one_line_error(&o, "encrypted onto unencrypted");
    assert!(line.contains("another repository"), "{line}");

    let c = Fixture::with_init(&["--no-encryption"]);
    snapshot(c.strata.repo(), &src, "2026-01-03 00:00:00");
    let o = sync_cmd(Some(c.strata.repo()), &[mirror.to_str().unwrap()], &[]);
    let line = one_line_error(&o, "another unencrypted repository");
    assert!(
        line.contains("another repository") && line.contains("repository id"),
        "{line}"
    );
    assert_eq!(repo_files(&mirror), before, "the mirror was changed");

    // two encrypted repositories: their configs differ as bytes in any
    // case, so the source is unlocked to compare ids
    let emirror = b.path("emirror");
    sync_ok(Some(b.strata.repo()), &[emirror.to_str().unwrap()], &[]);
    let d = Fixture::with_init(&[]);
    snapshot(d.strata.repo(), &src, "2026-01-04 00:00:00");
    let o = sync_cmd(Some(d.strata.repo()), &[emirror.to_str().unwrap()], &pass);
    let line = one_line_error(&o, "another encrypted repository");
    assert!(line.contains("another repository"), "{line}");
    // without a credential it cannot tell, and says so (exit 12)
    let o = sync_cmd(Some(d.strata.repo()), &[emirror.to_str().unwrap()], &[]);
    let line = one_line_error(&o, "another encrypted repository, no passphrase");
    assert_eq!(o.status.code(), Some(12), "{line}");
    assert!(line.contains("unlock"), "{line}");

    // a directory that is not empty and not a repository
    let junk = a.mkdir("junk");
    fs::write(junk.join("notes.txt"), b"mine").unwrap();
    let o = sync_cmd(Some(a.strata.repo()), &[junk.to_str().unwrap()], &[]);
    let line = one_line_error(&o, "a non-empty directory");
    assert!(line.contains("not empty"), "{line}");
    assert_eq!(fs::read_dir(&junk).unwrap().count(), 1);

    // itself
    let o = sync_cmd(
        Some(a.strata.repo()),
        &[a.strata.repo().to_str().unwrap()],
        &[],
    );
    one_line_error(&o, "onto itself");
}

#[test]
fn delete_removes_exactly_what_gc_removed_at_the_source() {
    let (fx, src) = repo_with_snapshot(false);
    let repo = fx.strata.repo();
    let first = parse_json(strata_ok(repo, &["snapshots", "--json"], &[]).as_bytes())[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // new data, a second snapshot, both synced
    fs::remove_dir_all(src.join("data")).unwrap();
    support::make_tree(&src, 2, SYNC_TREE);
    snapshot(repo, &src, "2026-01-02 00:00:00");
    let mirror = fx.path("mirror");
    sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    let mirror_before = repo_files(&mirror);

    let before = repo_files(repo);
    strata_ok(repo, &["forget", &first], &[]);
    strata_ok(repo, &["gc", "--grace", "0"], &[("STRATA_GC_GRACE", "0")]);
    let after = repo_files(repo);
    let gone: BTreeSet<String> = keys_of(&before, "packs/")
        .difference(&keys_of(&after, "packs/"))
        .cloned()
        .collect();
    assert!(!gone.is_empty(), "gc removed no pack");

    // dry run: lists exactly those packs and the manifest, changes nothing
    let dry = sync_ok(
        Some(repo),
        &[mirror.to_str().unwrap(), "--delete", "--dry-run"],
        &[],
    );
    let would: BTreeSet<String> = dry["planned"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["action"] == "delete")
        .map(|p| p["key"].as_str().unwrap().to_string())
        .collect();
    assert!(would.contains(&format!("snapshots/{first}")), "{dry}");
    let would_packs: BTreeSet<String> = would
        .iter()
        .filter(|k| k.starts_with("packs/"))
        .cloned()
        .collect();
    assert_eq!(would_packs, gone, "{dry}");
    assert_eq!(
        repo_files(&mirror),
        mirror_before,
        "the dry run changed the mirror"
    );

    let r = sync_ok(Some(repo), &[mirror.to_str().unwrap(), "--delete"], &[]);
    assert_eq!(num(&r, "errors"), 0, "{r}");
    assert_eq!(num(&r, "deleted/objects"), would.len() as u64, "{r}");
    let now = repo_files(&mirror);
    assert_eq!(now, after, "the mirror is not the source after --delete");
    let removed: BTreeSet<String> = keys_of(&mirror_before, "packs/")
        .difference(&keys_of(&now, "packs/"))
        .cloned()
        .collect();
    assert_eq!(removed, gone);
    restore_matches(&mirror, &src, &fx.path("restored"));
}

#[test]
fn delete_refuses_a_rolled_back_or_emptied_source() {
    // encrypted: the manifests' times need the key, so --delete unlocks
    let fx = Fixture::with_init(&["--pack-size-mib", "1"]);
    let repo = fx.strata.repo();
    let src = fx.mkdir("src");
    support::make_tree(&src, 1, SYNC_TREE);
    let old_id = snapshot(repo, &src, "2026-01-01 00:00:00");
    // the rollback image: the repository as it was after the first snapshot
    let old = fx.path("old");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(repo)
        .arg(&old)
        .status()
        .unwrap();
    assert!(cp.success());
    support::make_tree(&src, 2, SYNC_TREE);
    let new_id = snapshot(repo, &src, "2026-02-01 00:00:00");
    let mirror = fx.path("mirror");
    sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    let before = repo_files(&mirror);
    let pass = [("STRATA_PASSWORD", PASSPHRASE)];

    // without --delete the old source is harmless: nothing to copy
    let r = sync_ok(Some(&old), &[mirror.to_str().unwrap()], &[]);
    assert_eq!(num(&r, "copied/objects"), 0, "{r}");

    let o = sync_cmd(Some(&old), &[mirror.to_str().unwrap(), "--delete"], &pass);
    let line = one_line_error(&o, "--delete from a rolled-back source");
    assert!(
        line.contains(&new_id) && line.contains("newer") && line.contains("nothing deleted"),
        "{line}"
    );
    assert_eq!(repo_files(&mirror), before, "the mirror was changed");
    // the same as a dry run
    let o = sync_cmd(
        Some(&old),
        &[mirror.to_str().unwrap(), "--delete", "--dry-run"],
        &pass,
    );
    one_line_error(&o, "--delete --dry-run from a rolled-back source");

    // the times need the key: without one, exit 12 and nothing deleted
    let o = sync_cmd(Some(&old), &[mirror.to_str().unwrap(), "--delete"], &[]);
    let line = one_line_error(&o, "--delete without a passphrase");
    assert_eq!(o.status.code(), Some(12), "{line}");
    assert_eq!(repo_files(&mirror), before);

    // an emptied source: every snapshot forgotten (its new gc state file
    // is copied, as copies come first; nothing is deleted)
    strata_ok(&old, &["forget", &old_id], &[]);
    let o = sync_cmd(Some(&old), &[mirror.to_str().unwrap(), "--delete"], &pass);
    let line = one_line_error(&o, "--delete from an emptied source");
    assert!(line.contains("no snapshots"), "{line}");
    let now = repo_files(&mirror);
    for prefix in ["packs/", "snapshots/", "keys/", "config"] {
        assert_eq!(keys_of(&now, prefix), keys_of(&before, prefix), "{prefix}");
    }
}

#[test]
fn dry_run_changes_nothing() {
    let (fx, src) = repo_with_snapshot(false);
    let repo = fx.strata.repo();
    let mirror = fx.path("mirror");
    let n = repo_files(repo).len() as u64;
    let dry = sync_ok(Some(repo), &[mirror.to_str().unwrap(), "--dry-run"], &[]);
    assert_eq!(num(&dry, "copied/objects"), n, "{dry}");
    assert_eq!(dry["planned"].as_array().unwrap().len() as u64, n, "{dry}");
    assert!(!mirror.exists(), "the dry run created the destination");
    // the text form lists each file
    let o = sync_cmd(Some(repo), &[mirror.to_str().unwrap(), "--dry-run"], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("would copy config"), "{out}");
    assert!(!mirror.exists());

    sync_ok(Some(repo), &[mirror.to_str().unwrap()], &[]);
    let before = repo_files(&mirror);
    support::make_tree(&src, 3, SYNC_TREE);
    snapshot(repo, &src, "2026-01-05 00:00:00");
    let dry = sync_ok(Some(repo), &[mirror.to_str().unwrap(), "--dry-run"], &[]);
    let new = repo_files(repo).len() - before.len();
    assert_eq!(num(&dry, "copied/objects"), new as u64, "{dry}");
    assert_eq!(repo_files(&mirror), before);
}

#[test]
fn a_corrupt_source_pack_is_reported_and_not_copied() {
    let (fx, _src) = repo_with_snapshot(true);
    let repo = fx.strata.repo();
    // flip one byte of the largest pack (same size, so only its hash tells)
    let mut packs = support::pack_files(repo);
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let bad = packs.last().unwrap().clone();
    let mut bytes = fs::read(&bad).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&bad, &bytes).unwrap();
    let name = bad.file_name().unwrap().to_str().unwrap().to_string();

    let mirror = fx.path("mirror");
    let o = sync_cmd(Some(repo), &[mirror.to_str().unwrap(), "--json"], &[]);
    let line = one_line_error(&o, "a corrupt source pack");
    assert!(line.contains(&name) && line.contains("corrupt"), "{line}");
    let r = parse_json(&o.stdout);
    assert_eq!(num(&r, "errors"), 1, "{r}");
    assert_eq!(r["stopped_before"].as_str(), Some("gc state files"), "{r}");
    let got = repo_files(&mirror);
    assert!(
        !got.keys().any(|k| k.ends_with(&name)),
        "the corrupt pack was copied"
    );
    assert_eq!(keys_of(&got, "packs/").len(), packs.len() - 1);
    assert!(
        keys_of(&got, "snapshots/").is_empty(),
        "a manifest was copied"
    );
}

/// Library level: a mirror made before the source's format 1 -> 2 upgrade
/// holds the format-1 config; the next sync replaces it (the one replace
/// allowed) and goes on. The same id with other settings is refused.
#[test]
fn a_format_1_mirror_gets_the_upgraded_config() {
    use strata::object::{self, ObjectKind};
    use strata::repo::config::Config;
    let (fx, _src) = repo_with_snapshot(false);
    let src = LocalBackend::new(fx.strata.repo());
    let dst = backend::open("memory://").unwrap();
    let run = |dst: &dyn Backend| {
        sync::run(
            &src,
            dst,
            &SyncOptions::default(),
            &mut strata::repo::no_credentials,
            &sync::Progress::default(),
        )
    };
    let first = run(&*dst).unwrap();
    assert_eq!(first.errors, 0, "{first:?}");
    let ours = src.get("config").unwrap();
    let config = Config::from_bytes(&ours, "config", None).unwrap();
    assert_eq!(config.version, 2);

    let v1 = Config {
        version: 1,
        ..config.clone()
    };
    let (old, _) = object::seal(ObjectKind::Config, &v1, None).unwrap();
    dst.put_replace("config", &old).unwrap();
    let r = run(&*dst).unwrap();
    assert!(r.config_upgraded, "{r:?}");
    assert_eq!((r.errors, r.copied.objects), (0, 1), "{r:?}");
    assert_eq!(dst.get("config").unwrap(), ours);

    let other = Config {
        compression_level: config.compression_level + 1,
        ..config
    };
    let (odd, _) = object::seal(ObjectKind::Config, &other, None).unwrap();
    dst.put_replace("config", &odd).unwrap();
    let e = run(&*dst).unwrap_err().to_string();
    assert!(e.contains("other settings"), "{e}");
    assert_eq!(dst.get("config").unwrap(), odd, "replaced");
}
