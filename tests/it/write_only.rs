//! Write-only keys (format-spec/write-only.md, threat-model.md "Write-only
//! keys"): a host that can back up but cannot read, delete or poison its
//! history. Each test runs the real binary with two caches, the full
//! key's and the host's, as two machines would have.

use crate::support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;
use support::one_line_error;

/// The write-only host's passphrase.
const HOST_PASS: &str = "host passphrase, write only";

/// A repository with a write-only key, its source tree, and the two
/// machines' caches.
struct Wo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    src: PathBuf,
    full_cache: PathBuf,
    host_cache: PathBuf,
    key: String,
}

impl Wo {
    fn new() -> Wo {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = root.join("repo");
        let full_cache = root.join("full-cache");
        support::ok(
            &repo,
            &[("STRATA_CACHE_DIR", full_cache.to_str().unwrap())],
            &["init", "--pack-size-mib", "1"],
        );
        let src = root.join("src");
        std::fs::create_dir_all(src.join("events")).unwrap();
        let mut rng = support::Rng::new(25);
        std::fs::write(src.join("big.bin"), rng.bytes(3 << 20)).unwrap();
        for i in 0..40 {
            std::fs::write(src.join(format!("events/{i}.json")), rng.text(300)).unwrap();
        }
        std::fs::write(src.join("marker"), b"start").unwrap();
        let mut w = Wo {
            _tmp: tmp,
            full_cache,
            host_cache: root.join("host-cache"),
            root,
            repo,
            src,
            key: String::new(),
        };
        w.key = w.add_key("host1", HOST_PASS);
        w
    }

    /// `key add --write-only` by the full key; the new key's id.
    fn add_key(&self, label: &str, pass: &str) -> String {
        let out = support::ok(
            &self.repo,
            &[
                ("STRATA_NEW_PASSWORD", pass),
                ("STRATA_CACHE_DIR", self.full_cache.to_str().unwrap()),
            ],
            &["key", "add", "--write-only", "--label", label],
        );
        let id = out
            .strip_prefix("added write-only key ")
            .and_then(|r| r.get(..32))
            .unwrap_or_else(|| panic!("key add said {out:?}"));
        id.to_string()
    }

    /// `strata ARGS` with the full key and its cache.
    fn full(&self, args: &[&str]) -> Output {
        support::run(
            &self.repo,
            &[("STRATA_CACHE_DIR", self.full_cache.to_str().unwrap())],
            args,
        )
    }

    #[track_caller]
    fn full_ok(&self, args: &[&str]) -> String {
        let o = self.full(args);
        assert!(
            o.status.success(),
            "full key: strata {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// `strata ARGS` on the host: the write-only key's passphrase, its cache.
    fn host(&self, args: &[&str]) -> Output {
        support::command()
            .arg("--repo")
            .arg(&self.repo)
            .args(args)
            .env("STRATA_PASSWORD", HOST_PASS)
            .env("STRATA_CACHE_DIR", &self.host_cache)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// A snapshot of the source by the host (`extra` arguments added);
    /// its JSON summary.
    #[track_caller]
    fn host_snapshot(&self, extra: &[&str]) -> Value {
        let mut args = vec!["snapshot", self.src.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let o = self.host(&args);
        assert!(
            o.status.success(),
            "host snapshot failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        support::parse_json(&o.stdout)
    }

    /// Restore `id` with the full key and compare it with `want`.
    #[track_caller]
    fn assert_restores(&self, id: &str, want: &support::Digest, what: &str) {
        let target = self.root.join(format!("restore-{what}"));
        self.full_ok(&["restore", id, "--target", target.to_str().unwrap()]);
        let got = support::digest(&support::under(&target, &self.src));
        assert!(
            &got == want,
            "{what}: snapshot {id} does not restore the source"
        );
        std::fs::remove_dir_all(&target).unwrap();
    }

    fn marker(&self) -> PathBuf {
        self.src.join("marker")
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

fn added(v: &Value) -> u64 {
    support::num(v, "summary/bytes_added")
}

/// Issue 25: a write-only host snapshots three times, incrementally; every
/// reading or deleting command fails with one line naming the missing
/// capability and the key; the full key restores all three, identically,
/// and `key list` shows the kind.
#[test]
fn a_write_only_host_backs_up_and_reads_nothing() {
    let w = Wo::new();
    let mut taken = Vec::new();
    let first = w.host_snapshot(&[]);
    assert!(
        added(&first) > 3 << 20,
        "the first snapshot stores everything"
    );
    taken.push((id_of(&first), support::digest(&w.src)));
    // an unchanged source: nothing new is stored (dedup through the
    // host's record of what it wrote, the parent through its cache)
    let again = w.host_snapshot(&[]);
    // at most the directories above the source, whose times the test's
    // own files (the caches beside it) change
    assert!(
        added(&again) < 1024,
        "an unchanged source adds nothing but a directory entry ({} bytes)",
        added(&again)
    );
    std::fs::write(w.marker(), b"second").unwrap();
    std::fs::write(w.src.join("events/new.json"), b"{\"new\": true}").unwrap();
    let mut big = std::fs::read(w.src.join("big.bin")).unwrap();
    big[1 << 20] ^= 0xff;
    std::fs::write(w.src.join("big.bin"), &big).unwrap();
    let second = w.host_snapshot(&[]);
    assert!(
        added(&second) < 2 << 20,
        "only the changed chunk and small files are stored again ({} bytes)",
        added(&second)
    );
    taken.push((id_of(&second), support::digest(&w.src)));
    std::fs::remove_file(w.src.join("events/3.json")).unwrap();
    std::fs::write(w.marker(), b"third").unwrap();
    let third = w.host_snapshot(&[]);
    taken.push((id_of(&third), support::digest(&w.src)));

    let id = taken[0].0.clone();
    let dest = w.root.join("elsewhere");
    let target = w.root.join("target");
    let mnt = w.root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let cfg = w.root.join("strata.toml");
    std::fs::write(
        &cfg,
        format!(
            "repository = {:?}\n[sources.src]\npaths = [{:?}]\nevery = \"5m\"\n[cadence]\ndrill = \"1d\"\n",
            w.repo, w.src
        ),
    )
    .unwrap();
    let (t, m, d, c) = (
        target.to_str().unwrap(),
        mnt.to_str().unwrap(),
        dest.to_str().unwrap(),
        cfg.to_str().unwrap(),
    );
    let cat_spec = format!("{id}:{}", w.marker().display());
    let refused: Vec<Vec<&str>> = vec![
        vec!["restore", &id, "--target", t],
        vec!["ls", &id],
        vec!["cat", &cat_spec],
        vec!["mount", m, "--foreground"],
        vec!["diff", &id, &taken[1].0],
        vec!["find", "marker"],
        vec!["stats"],
        vec!["snapshots"],
        vec!["tag", &id, "--add", "x"],
        vec!["forget", "--keep-last", "1"],
        vec!["gc"],
        vec!["rewrite", "--exclude", "*.json", &id],
        vec!["repair", "snapshots"],
        vec!["check"],
        vec!["check", "--read-data"],
        vec!["rebuild-index"],
        vec!["unlock"],
        vec!["key", "list"],
        vec!["key", "add", "--write-only"],
        vec!["sync", d, "--delete"],
        vec!["drill", "--config", c],
        vec!["recover", "--all", "--config", c, "--dry-run"],
    ];
    for args in &refused {
        let o = w.host(args);
        let line = one_line_error(&o, &format!("{args:?}"));
        assert_eq!(o.status.code(), Some(12), "{args:?}: {line}");
        assert!(
            line.contains("needs a full key") && line.contains(&w.key),
            "{args:?}: {line}"
        );
    }
    assert!(!target.exists(), "nothing restored");
    assert!(!dest.join("snapshots").exists() || support::snapshot_ids(&dest).is_empty());

    for (i, (id, want)) in taken.iter().enumerate() {
        w.assert_restores(id, want, &format!("snapshot {i}"));
    }
    let list = w.full_ok(&["key", "list"]);
    let line = list.lines().find(|l| l.contains(&w.key)).unwrap();
    assert!(
        line.contains("write-only") && line.contains("host1"),
        "{line}"
    );
    // the manifests are signed by the key that wrote them
    let snaps = support::json(
        &w.repo,
        &[("STRATA_CACHE_DIR", w.full_cache.to_str().unwrap())],
        &["snapshots", "--json"],
    );
    assert_eq!(snaps.as_array().unwrap().len(), 4);
    assert!(
        snaps
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["writer"] == w.key.as_str()),
        "{snaps}"
    );
    w.full_ok(&["check", "--read-data"]);
}

/// Issue 25: gc by the full key while the host has a send record. Packs
/// gc deleted are dropped from the record (gone from `packs/`, tombstoned
/// in `coord/`), packs it condemned are not deduplicated against (the
/// coordination file says so): the host's next snapshot is complete and
/// restores after gc deleted what it condemned.
#[test]
fn gc_by_the_full_key_invalidates_the_hosts_send_record() {
    let w = Wo::new();
    let a = w.host_snapshot(&[]);
    // every snapshot of the host forgotten, its packs deleted
    w.full_ok(&["forget", &id_of(&a)]);
    w.full_ok(&["gc", "--grace", "0"]);
    assert!(
        support::pack_names(&w.repo).is_empty(),
        "everything deleted"
    );
    let b = w.host_snapshot(&[]);
    assert!(added(&b) > 3 << 20, "the host stored everything again");
    let want = support::digest(&w.src);
    w.assert_restores(&id_of(&b), &want, "after delete");

    // now only condemned: the forgotten tree protects its packs for a grace
    // period; past it, a gc condemns them and keeps them as long again
    w.full_ok(&["forget", &id_of(&b)]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    w.full_ok(&["gc", "--grace", "1s"]);
    let condemned = support::pack_names(&w.repo);
    assert!(!condemned.is_empty(), "condemned packs are kept");
    assert!(w.repo.join("coord").read_dir().unwrap().count() > 0);
    let c = w.host_snapshot(&[]);
    assert!(
        added(&c) > 3 << 20,
        "never deduplicated against a condemned pack ({} bytes added)",
        added(&c)
    );
    // gc deletes the condemned packs; the host's snapshot does not need them
    w.full_ok(&["gc", "--grace", "0"]);
    let left = support::pack_names(&w.repo);
    assert!(condemned.iter().all(|p| !left.contains(p)), "deleted");
    w.assert_restores(&id_of(&c), &want, "after condemn");
    w.full_ok(&["check", "--read-data"]);
}

/// Issue 25: poisoning. A write-only host stores garbage under the id of
/// real content. A full host's next backup of that content does not
/// reference it (packs of another key are not trusted until a full key
/// verified them), and `check --read-data` names the pack and the key.
/// A pack of the host that checks out becomes trusted for dedup.
#[test]
fn a_poisoned_pack_is_never_deduplicated_and_check_names_its_writer() {
    use strata::blob::{BlobKind, Compression};
    let w = Wo::new();
    // an honest snapshot first: its packs are verified below
    let honest = w.host_snapshot(&[]);
    // the victim: one chunk (below the chunker's minimum), not inline
    let victim_dir = w.root.join("victim");
    std::fs::create_dir_all(&victim_dir).unwrap();
    let content = support::Rng::new(99).bytes(60 << 10);
    std::fs::write(victim_dir.join("payroll.db"), &content).unwrap();
    let poisoned = {
        let repo = strata::Repo::open_with(&w.repo, &mut || {
            Ok(strata::repo::keys::Credential::Passphrase(
                age::secrecy::SecretString::from(HOST_PASS.to_string()),
            ))
        })
        .unwrap();
        assert!(repo.is_write_only());
        let id = repo.blob_id(BlobKind::Data, &content);
        let garbage = vec![0x5a; content.len()];
        let mut pw = repo.pack_writer(BlobKind::Data).unwrap();
        pw.add(id, content.len() as u32, Compression::None, &garbage)
            .unwrap();
        pw.finish(&**repo.store()).unwrap().id.to_hex()
    };
    let o = w.full_ok(&["snapshot", victim_dir.to_str().unwrap(), "--json"]);
    let v = support::parse_json(o.as_bytes());
    assert!(
        added(&v) >= content.len() as u64,
        "the full host stored the content itself"
    );
    let target = w.root.join("victim-back");
    w.full_ok(&["restore", &id_of(&v), "--target", target.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(support::under(&target, &victim_dir).join("payroll.db")).unwrap(),
        content
    );
    let check = w.full(&["check", "--read-data"]);
    assert!(!check.status.success(), "the poisoned pack is an error");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains(&poisoned[..16]))
        .unwrap_or_else(|| panic!("check does not name pack {poisoned}: {text}"));
    assert!(
        text.contains(&format!("written by write-only key {} \"host1\"", w.key)),
        "check does not name the key: {line}\n{text}"
    );
    // the honest packs were verified: a full backup of the same source now
    // deduplicates against the host's blobs
    assert!(w.repo.join("trust").read_dir().unwrap().count() >= 1);
    let full = support::parse_json(
        w.full_ok(&["snapshot", w.src.to_str().unwrap(), "--json"])
            .as_bytes(),
    );
    assert!(
        added(&full) < 64 << 10,
        "verified packs are deduplicated against ({} bytes added; the host added {})",
        added(&full),
        added(&honest)
    );
}

/// The plaintext of an encrypted repository file, with the repository's
/// identity (as `key export-identity` prints it).
fn identity(w: &Wo) -> age::x25519::Identity {
    let out = w.full_ok(&["key", "export-identity"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    line.parse().unwrap()
}

/// Rewrite manifest `id` with `edit` applied to its envelope body, as a
/// hostile storage or a compromised write-only host can (it holds the
/// recipient: it can encrypt); returns the new file's id.
fn forge(w: &Wo, id: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let ident = identity(w);
    let bytes = std::fs::read(w.repo.join("snapshots").join(id)).unwrap();
    let plain = strata::crypto::agefile::decrypt(&bytes, &[&ident], "manifest", 1 << 24).unwrap();
    assert_eq!(&plain[..8], b"STRATAS\x03", "a version-3 manifest");
    let mut body = plain[44..].to_vec();
    edit(&mut body);
    let mut h = blake3::Hasher::new();
    h.update(b"S\x03");
    h.update(&body);
    let new_id = *h.finalize().as_bytes();
    let mut out = plain[..8].to_vec();
    out.extend_from_slice(&new_id);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let enc = strata::crypto::agefile::encrypt(&[&ident.to_public()], &out).unwrap();
    let name = strata::id::to_hex(&new_id);
    std::fs::write(w.repo.join("snapshots").join(&name), enc).unwrap();
    name
}

/// The marker file's contents in `latest`, as the full key sees it.
fn latest_marker(w: &Wo) -> String {
    let spec = format!("latest:{}", w.marker().display());
    w.full_ok(&["cat", &spec])
}

/// Issue 25: a forged manifest, one with another key's id, and one signed
/// by a removed key are each refused (listed as unreadable, never
/// `latest`), while the manifests of the removed key made before its
/// removal stay valid; a future-dated snapshot is not `latest` either, and
/// `forget` shows who wrote each snapshot and groups by key.
#[test]
fn forged_and_removed_key_manifests_are_refused_and_never_latest() {
    let w = Wo::new();
    let soon = |min: i64| {
        let t = strata::sys::now_ns() / 1_000_000_000 + min * 60;
        strata::sys::rfc3339(t * 1_000_000_000)
    };
    std::fs::write(w.marker(), b"one").unwrap();
    let one = id_of(&w.host_snapshot(&["--time", &soon(10)]));
    // the writer's key id sits before the 64-byte signature
    let bad_sig = forge(&w, &one, |b| {
        let n = b.len();
        b[n - 1] ^= 1;
    });
    const HOST2_PASS: &str = "the second host's passphrase";
    let w2 = w.add_key("host2", HOST2_PASS);
    let other_key = forge(&w, &one, |b| {
        let n = b.len();
        b[n - 64 - 32..n - 64].copy_from_slice(w2.as_bytes());
    });
    // the second key snapshots, is removed, and is replayed by the storage
    let host2 = |args: &[&str]| {
        support::command()
            .arg("--repo")
            .arg(&w.repo)
            .args(args)
            .env("STRATA_PASSWORD", HOST2_PASS)
            .env("STRATA_CACHE_DIR", w.root.join("host2-cache"))
            .output()
            .unwrap()
    };
    std::fs::write(w.marker(), b"two").unwrap();
    let o = host2(&[
        "snapshot",
        w.src.to_str().unwrap(),
        "--time",
        &soon(20),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let two = id_of(&support::parse_json(&o.stdout));
    let key_file = w.repo.join("keys").join(&w2);
    let saved = std::fs::read(&key_file).unwrap();
    let saved_key = saved.clone();
    let info_file = w.repo.join("keys").join(format!("{w2}.info"));
    let saved_info = std::fs::read(&info_file).unwrap();
    w.full_ok(&["key", "remove", &w2]);
    assert!(w.repo.join("keys").join(format!("{w2}.removed")).exists());
    std::fs::write(&key_file, saved).unwrap();
    std::fs::write(w.marker(), b"three").unwrap();
    let o = host2(&[
        "snapshot",
        w.src.to_str().unwrap(),
        "--time",
        &soon(30),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let three = id_of(&support::parse_json(&o.stdout));
    std::fs::remove_file(&key_file).unwrap();
    // a snapshot of the first key two hours ahead
    std::fs::write(w.marker(), b"future").unwrap();
    let future = id_of(&w.host_snapshot(&["--time", &soon(120)]));

    // `snapshots` lists the readable ones and fails on the others
    let o = w.full(&["snapshots", "--json"]);
    one_line_error(&o, "snapshots with refused manifests");
    let listed: Vec<String> = support::parse_json(&o.stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    for (id, why) in [
        (&bad_sig, "does not verify"),
        // claims the second key, removed since: refused either way
        (&other_key, "signed by removed key"),
        (&three, "signed by removed key"),
    ] {
        assert!(!listed.contains(id), "{id} listed ({why})");
        let line = one_line_error(&w.full(&["ls", id]), "ls of a refused manifest");
        assert!(line.contains(why) && line.contains(&id[..16]), "{line}");
    }
    assert!(listed.contains(&one) && listed.contains(&two) && listed.contains(&future));
    // `latest` is the second key's last valid snapshot: not the forgeries,
    // not the removed key's later one, not the future-dated one
    assert_eq!(latest_marker(&w), "two");
    // gc (and forget by policy) refuse to run past the refused manifests;
    // `forget ID` removes them
    let gc = w.full(&["gc"]);
    one_line_error(&gc, "gc with refused manifests");
    w.full_ok(&["forget", &bad_sig, &other_key, &three]);
    // forget shows which key wrote what, and groups by key
    let out = w.full_ok(&[
        "forget",
        "--keep-last",
        "1",
        "--group-by",
        "key",
        "--dry-run",
    ]);
    assert!(out.contains(&format!("group: key {}", w.key)), "{out}");
    assert!(out.contains(&format!("group: key {w2}")), "{out}");
    assert!(out.contains(&format!("key {}", &w2[..8])), "{out}");
    w.full_ok(&["gc"]);
    assert_eq!(latest_marker(&w), "two");
    // the storage deletes the removal record and replays the key's files:
    // this machine saw the removal and keeps refusing the key
    std::fs::remove_file(w.repo.join("keys").join(format!("{w2}.removed"))).unwrap();
    std::fs::write(&info_file, saved_info).unwrap();
    std::fs::write(&key_file, saved_key).unwrap();
    let line = one_line_error(&w.full(&["ls", &two]), "a replayed removed key");
    assert!(line.contains("saw removed"), "{line}");
}

/// A write-only host trains a dictionary of its own, signs it and keeps
/// it in its cache (write-only.md "Dictionaries of write-only keys"): its
/// small files are compressed with it, a full key reads the signed file
/// and restores them, and the host does not train again next time.
#[test]
fn a_write_only_host_trains_and_signs_its_own_dictionary() {
    let w = Wo::new();
    let mut rng = support::Rng::new(7);
    for i in 0..600 {
        let mut text = format!("{{\"id\": {i}, \"type\": \"event\", \"body\": \"").into_bytes();
        text.extend(rng.text(800));
        text.extend_from_slice(b"\"}\n");
        std::fs::write(w.src.join(format!("events/e{i:03}.json")), text).unwrap();
    }
    let first = w.host_snapshot(&[]);
    let dicts = || std::fs::read_dir(w.repo.join("dicts")).map_or(0, |d| d.count());
    assert_eq!(dicts(), 1, "the host trained one dictionary");
    let want = support::digest(&w.src);
    std::fs::write(w.marker(), b"again").unwrap();
    let second = w.host_snapshot(&[]);
    assert_eq!(dicts(), 1, "and uses it again");
    w.assert_restores(&id_of(&first), &want, "with the host's dictionary");
    let want = support::digest(&w.src);
    w.assert_restores(&id_of(&second), &want, "second");
    w.full_ok(&["check", "--read-data"]);
    // a dictionary that does not verify is not used: the file is refused
    let name = std::fs::read_dir(w.repo.join("dicts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&name).unwrap();
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 20] ^= 1;
    std::fs::write(&name, bad).unwrap();
    let o = w.full(&[
        "restore",
        &id_of(&first),
        "--target",
        w.root.join("x").to_str().unwrap(),
    ]);
    assert!(
        !o.status.success(),
        "a damaged dictionary file fails the restore"
    );
    std::fs::write(&name, bytes).unwrap();
}

/// A mirror made before `key add --write-only` has the format-2 config:
/// the write-only host cannot tell it is the same repository and says
/// what to do (exit 12); after one sync with the full key it syncs.
#[test]
fn a_mirror_from_before_the_upgrade_needs_one_full_key_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, mirror, src) = (
        tmp.path().join("repo"),
        tmp.path().join("mirror"),
        tmp.path().join("src"),
    );
    support::write_file(&src.join("a"), b"a");
    let cache = tmp.path().join("cache");
    let env = [("STRATA_CACHE_DIR", cache.to_str().unwrap())];
    support::ok(&repo, &env, &["init"]);
    support::ok(&repo, &env, &["snapshot", src.to_str().unwrap()]);
    support::ok(&repo, &env, &["sync", mirror.to_str().unwrap()]);
    let host = [
        ("STRATA_CACHE_DIR", cache.to_str().unwrap()),
        ("STRATA_PASSWORD", HOST_PASS),
    ];
    support::ok(
        &repo,
        &[("STRATA_NEW_PASSWORD", HOST_PASS)],
        &["key", "add", "--write-only"],
    );
    support::ok(&repo, &host, &["snapshot", src.to_str().unwrap()]);
    let o = support::run(&repo, &host, &["sync", mirror.to_str().unwrap()]);
    let line = one_line_error(&o, "a write-only sync to an old mirror");
    assert_eq!(o.status.code(), Some(12), "{line}");
    assert!(line.contains("once with a full key"), "{line}");
    support::ok(&repo, &env, &["sync", mirror.to_str().unwrap()]);
    support::ok(&repo, &host, &["snapshot", src.to_str().unwrap()]);
    support::ok(&repo, &host, &["sync", mirror.to_str().unwrap()]);
    assert_eq!(support::snapshot_ids(&mirror), support::snapshot_ids(&repo));
}

/// The write-only host's `run`: forget, gc, check and drill are skipped
/// (not failures), sync copies without deleting, and `status` reports
/// this host's own state.
#[test]
fn run_on_a_write_only_key_skips_what_it_cannot_do() {
    let w = Wo::new();
    let offsite = w.root.join("offsite");
    let pw = w.root.join("host.pw");
    std::fs::write(&pw, HOST_PASS).unwrap();
    let cfg = w.root.join("strata.toml");
    std::fs::write(
        &cfg,
        format!(
            "repository = {:?}\npassword_file = {:?}\noffsite = {:?}\n\
             [sources.src]\npaths = [{:?}]\nevery = \"5m\"\n\
             [retention]\nkeep_daily = 7\n[cadence]\ncheck = \"1d\"\ngc = \"1d\"\n",
            w.repo, pw, offsite, w.src
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        support::command()
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .env_remove("STRATA_PASSWORD")
            .env("STRATA_CACHE_DIR", &w.host_cache)
            .output()
            .unwrap()
    };
    let o = run(&["run", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = support::parse_json(&o.stdout);
    assert_eq!(v["ok"], true, "{v}");
    for step in v["steps"].as_array().unwrap() {
        let name = step["step"].as_str().unwrap();
        let status = step["status"].as_str().unwrap();
        if name == "sync" {
            assert_eq!(status, "ok", "{step}");
        } else {
            assert_eq!(status, "skipped", "{step}");
            assert_eq!(step["detail"], "write-only key", "{step}");
        }
    }
    assert_eq!(
        support::snapshot_ids(&offsite),
        support::snapshot_ids(&w.repo),
        "the offsite copy has the snapshot"
    );
    let o = run(&["status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = support::parse_json(&o.stdout);
    assert_eq!(s["healthy"], true, "{s}");
    let src = &s["sources"][0];
    assert_eq!(
        src["latest"]["id"].as_str(),
        support::snapshot_ids(&w.repo).first().map(String::as_str),
        "{s}"
    );
}

/// Issue 27: `status` keeps its figures in a flat report (status/report1)
/// keyed on the listing and on the signers. A write-only key removed with
/// `key remove` keeps its manifests valid; once its removal record is gone
/// (this machine saw the removal), they are refused, though nothing in
/// `snapshots/` changed: status must stop counting them, not read the
/// figures it saved while they were valid.
#[test]
fn status_does_not_trust_its_flat_report_after_a_signer_change() {
    let w = Wo::new();
    const HOST2_PASS: &str = "the second host's passphrase";
    let w2 = w.add_key("host2", HOST2_PASS);
    std::fs::write(w.marker(), b"host2").unwrap();
    let o = support::command()
        .arg("--repo")
        .arg(&w.repo)
        .args([
            "snapshot",
            w.src.to_str().unwrap(),
            "--tag",
            "data",
            "--json",
        ])
        .env("STRATA_PASSWORD", HOST2_PASS)
        .env("STRATA_CACHE_DIR", w.root.join("host2-cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(w.marker(), b"host").unwrap();
    let mine = id_of(&w.host_snapshot(&["--tag", "data"]));
    w.full_ok(&["key", "remove", &w2]);
    let cfg = w.root.join("strata.toml");
    std::fs::write(
        &cfg,
        format!(
            "repository = {:?}\n[sources.data]\npaths = [{:?}]\n",
            w.repo, w.src
        ),
    )
    .unwrap();
    let status = || {
        let o = support::unlock_for(support::command(), &w.repo)
            .args(["status", "--json", "--config"])
            .arg(&cfg)
            .env("STRATA_CACHE_DIR", &w.full_cache)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        support::parse_json(&o.stdout)
    };
    let before = status();
    assert_eq!(before["sources"][0]["snapshots"], 2, "{before}");
    let again = status();
    assert_eq!(again["sources"][0]["snapshots"], 2, "{again}");
    let report = std::fs::read_dir(&w.full_cache)
        .unwrap()
        .map(|e| e.unwrap().path().join("status").join("report1"))
        .find(|p| p.is_file());
    assert!(report.is_some(), "a flat report was saved");
    std::fs::remove_file(w.repo.join("keys").join(format!("{w2}.removed"))).unwrap();
    let after = status();
    let data = &after["sources"][0];
    assert_eq!(data["snapshots"], 1, "{after}");
    assert_eq!(data["latest"]["id"], mine.as_str(), "{after}");
}
