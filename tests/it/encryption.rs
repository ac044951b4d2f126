//! Encrypted repositories (format-spec/keys.md, threat-model.md): round
//! trips, wrong keys, tampering, forgeries, key management, interop with the
//! stock `age` CLI, and secret chunk ids and boundaries.
//!
//! The `age` and `ssh-keygen` binaries are required (`.ci/run` installs
//! them); set STRATA_ALLOW_MISSING_TOOLS=1 to skip the checks that need them.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{PASSPHRASE, Secret, one_line_error};

/// A temp dir with an encrypted repository `repo` (1 MiB packs) and a
/// source tree `src`.
struct Enc {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    src: PathBuf,
}

impl Enc {
    fn new() -> Enc {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let repo = root.join("repo");
        support::ok(&repo, &[], &["init", "--pack-size-mib", "1"]);
        let src = root.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        let mut rng = support::Rng::new(7);
        std::fs::write(src.join("random.bin"), rng.bytes(3 << 20)).unwrap();
        let mut text = b"SECRET-MARKER-7f3a9 ".repeat(1000);
        text.extend(rng.text(1 << 20));
        std::fs::write(src.join("sub/confidential-name.txt"), text).unwrap();
        std::fs::write(src.join("small"), b"tiny").unwrap();
        Enc {
            _tmp: tmp,
            root,
            repo,
            src,
        }
    }

    /// Take a snapshot; returns its JSON.
    fn snapshot(&self) -> Value {
        let out = support::ok(
            &self.repo,
            &[],
            &["snapshot", self.src.to_str().unwrap(), "--json"],
        );
        serde_json::from_str(&out).unwrap()
    }

    fn restore(&self, id: &str, target: &Path) -> Output {
        support::run(
            &self.repo,
            &[],
            &["restore", id, "--target", target.to_str().unwrap()],
        )
    }

    fn restored_src(&self, target: &Path) -> PathBuf {
        support::under(target, &self.src)
    }
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

/// No regular file below `target` (if it exists) differs from its original
/// below `src`.
fn assert_no_garbage(target: &Path, src: &Path, what: &str) {
    if !target.exists() {
        return;
    }
    for rel in support::list_files(target) {
        let got = std::fs::read(target.join(&rel)).unwrap();
        let rel_src = Path::new(&rel)
            .strip_prefix(src.strip_prefix("/").unwrap())
            .unwrap();
        let want = std::fs::read(src.join(rel_src)).unwrap();
        assert!(got == want, "{what}: {rel} restored with wrong bytes");
    }
}

fn tool_available(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("STRATA_ALLOW_MISSING_TOOLS").is_some(),
            "`{name}` is not installed (apt-get install age openssh-client, or run \
             ./test.sh), or set STRATA_ALLOW_MISSING_TOOLS=1 to skip this check"
        );
        support::skip(
            "STRATA_REQUIRE_TOOLS",
            &format!("`{name}` is not installed (STRATA_ALLOW_MISSING_TOOLS=1)"),
        );
    }
    found
}

/// `strata` with a given passphrase (or none) instead of the test one.
fn with_pass(repo: &Path, pass: Option<&str>, args: &[&str]) -> Output {
    with_env(repo, pass, &[], args)
}

/// [`with_pass`] with more environment variables set.
fn with_env(repo: &Path, pass: Option<&str>, env: &[(&str, &OsStr)], args: &[&str]) -> Output {
    let mut c = support::command();
    c.env_remove("STRATA_PASSWORD");
    if let Some(p) = pass {
        c.env("STRATA_PASSWORD", p);
    }
    c.envs(env.iter().copied())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn succeeded(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn key_list(repo: &Path, pass: &str) -> Vec<Value> {
    let out = succeeded(
        with_pass(repo, Some(pass), &["key", "list", "--json"]),
        "key list",
    );
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `cat --raw pack`: blob id -> (kind, raw length).
fn pack_blobs(repo: &Path, pack: &str) -> Vec<(String, String, u64)> {
    let v: Value =
        serde_json::from_str(&support::ok(repo, &[], &["cat", "--raw", "pack", pack])).unwrap();
    v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                b["kind"].as_str().unwrap().to_string(),
                b["raw_len"].as_u64().unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn round_trip_is_identical_and_the_repository_holds_no_plaintext() {
    let e = Enc::new();
    let v = e.snapshot();
    let id = v["id"].as_str().unwrap();
    let target = e.root.join("out");
    succeeded(e.restore(id, &target), "restore");
    support::assert_same_tree(&e.src, &e.restored_src(&target));
    // Every repository file except the local index is an age file, and no
    // file holds the contents or names of the source.
    for (rel, bytes) in support::contents(&e.repo) {
        let name = rel.to_string_lossy();
        if name.starts_with("index.sqlite") {
            continue;
        }
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{name} is not an age file"
        );
    }
    for (rel, bytes) in support::contents(&e.repo) {
        for needle in [
            &b"SECRET-MARKER-7f3a9"[..],
            b"confidential-name",
            b"random.bin",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} contains {:?} in plaintext",
                rel.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn wrong_passphrase_is_one_line_and_writes_nothing() {
    let e = Enc::new();
    let id = e.snapshot()["id"].as_str().unwrap().to_string();
    let before = support::contents(&e.repo);
    let target = e.root.join("never");
    let src = e.src.to_str().unwrap();
    let t = target.to_str().unwrap();
    for args in [
        vec!["snapshots"],
        vec!["snapshot", src],
        vec!["restore", &id, "--target", t],
        vec!["ls", &id],
        vec!["key", "add"],
        vec!["key", "export-identity"],
    ] {
        let o = with_pass(&e.repo, Some("not the passphrase"), &args);
        let line = one_line_error(&o, &format!("{args:?}"));
        assert!(line.contains("wrong passphrase or key"), "{args:?}: {line}");
        assert!(line.contains("keys/"), "names the key files tried: {line}");
        assert_eq!(o.status.code(), Some(12), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?} printed something");
        // No passphrase source at all, and no terminal: a clear error.
        let o = with_pass(&e.repo, None, &args);
        let line = one_line_error(&o, &format!("{args:?} without a passphrase"));
        assert!(line.contains("STRATA_PASSWORD"), "{line}");
        assert_eq!(o.status.code(), Some(12));
    }
    assert!(!target.exists(), "nothing restored");
    assert!(
        support::contents(&e.repo) == before,
        "the repository is unchanged"
    );
}

#[test]
fn flipped_bytes_fail_authentication_and_name_the_file() {
    let e = Enc::new();
    let v = e.snapshot();
    let id = v["id"].as_str().unwrap().to_string();
    let snap_path = e.repo.join("snapshots").join(&id);
    let mut n = 0;

    // Packs: in the age header, in the middle, in the last byte.
    for pack in support::pack_files(&e.repo) {
        let name = pack.file_name().unwrap().to_string_lossy().into_owned();
        let len = std::fs::metadata(&pack).unwrap().len() as usize;
        for at in [40, len / 2, len - 1] {
            flip(&pack, at);
            n += 1;
            let target = e.root.join(format!("t{n}"));
            let o = e.restore(&id, &target);
            if o.status.success() {
                // Seen once in CI (a 2.36 MB pack flipped in the middle,
                // restore exit 0), not reproduced since: say what the pack
                // holds and what was restored, to find which bytes no
                // restore reads.
                flip(&pack, at);
                let listing = support::run(&e.repo, &[], &["cat", "--raw", "pack", &name]);
                panic!(
                    "pack {name} ({len} bytes) flipped at {at}: restore succeeded\n\
                     pack: {}\nall packs: {:?}\nrestored: {:?}\nsource: {:?}",
                    String::from_utf8_lossy(&listing.stdout),
                    support::pack_files(&e.repo)
                        .iter()
                        .map(|p| (
                            p.file_name().unwrap().to_owned(),
                            p.metadata().unwrap().len()
                        ))
                        .collect::<Vec<_>>(),
                    support::list_files(&target),
                    support::list_files(&e.src),
                );
            }
            let line = one_line_error(&o, &format!("pack {name} flipped at {at}"));
            assert!(line.contains(&name[..16]), "names the pack: {line}");
            assert!(line.contains("authentication failed"), "{line}");
            assert_no_garbage(&target, &e.src, &line);
            flip(&pack, at);
        }
    }
    // The manifest.
    let len = std::fs::metadata(&snap_path).unwrap().len() as usize;
    for at in [30, len / 2, len - 1] {
        flip(&snap_path, at);
        n += 1;
        let o = e.restore(&id, &e.root.join(format!("t{n}")));
        let line = one_line_error(&o, &format!("manifest flipped at {at}"));
        assert!(line.contains(&format!("snapshots/{id}")), "{line}");
        assert!(line.contains("authentication failed"), "{line}");
        flip(&snap_path, at);
    }
    // The config.
    let cfg = e.repo.join("config");
    let len = std::fs::metadata(&cfg).unwrap().len() as usize;
    flip(&cfg, len - 3);
    let line = one_line_error(
        &support::run(&e.repo, &[], &["snapshots"]),
        "config flipped",
    );
    assert!(
        line.contains("config") && line.contains("authentication failed"),
        "{line}"
    );
    flip(&cfg, len - 3);
    // The key file: in its payload (authentication error) and in its
    // header (indistinguishable from a wrong passphrase; the file is named).
    let key = support::list_files(&e.repo.join("keys"))
        .into_iter()
        .find(|p| !p.contains('.'))
        .unwrap();
    let key_path = e.repo.join("keys").join(&key);
    let len = std::fs::metadata(&key_path).unwrap().len() as usize;
    for at in [len - 5, 60] {
        flip(&key_path, at);
        let line = one_line_error(&support::run(&e.repo, &[], &["snapshots"]), "key flipped");
        assert!(line.contains(&format!("keys/{key}")), "{line}");
        flip(&key_path, at);
    }
    // Everything restored, untouched.
    let target = e.root.join("final");
    succeeded(e.restore(&id, &target), "restore after undoing the flips");
    support::assert_same_tree(&e.src, &e.restored_src(&target));
}

#[test]
fn stock_age_decrypts_a_pack_and_a_manifest() {
    let e = Enc::new();
    let id = e.snapshot()["id"].as_str().unwrap().to_string();
    let o = support::run(&e.repo, &[], &["key", "export-identity"]);
    let exported = succeeded(o.clone(), "export-identity");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("WARNING"),
        "warns"
    );
    assert!(exported.contains("AGE-SECRET-KEY-1"), "{exported}");
    let id_file = e.root.join("identity.txt");
    std::fs::write(&id_file, &exported).unwrap();
    if !tool_available("age") {
        return;
    }
    let age_d = |file: &Path| {
        let o = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&id_file)
            .arg(file)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "age -d {}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    for pack in support::pack_files(&e.repo) {
        let plain = age_d(&pack);
        assert_eq!(&plain[..8], b"STRATAP\x01");
        let entries = strata::pack::format::parse_pack(&plain, "pack").unwrap();
        assert!(!entries.is_empty());
    }
    let manifest = age_d(&e.repo.join("snapshots").join(&id));
    // envelope version 2: a manifest with a `layout` field (objects.md)
    assert_eq!(&manifest[..8], b"STRATAS\x02");
    // The id field is the MAC, which is also the file name.
    assert_eq!(strata::id::to_hex(&manifest[8..40]), id);
}

#[test]
fn keys_add_list_remove_passwd_and_recipients() {
    let e = Enc::new();
    let repo = &e.repo;
    e.snapshot();
    let first = key_list(repo, PASSPHRASE);
    assert_eq!(first.len(), 1);
    let first_id = first[0]["id"].as_str().unwrap().to_string();
    assert_eq!(first[0]["kind"], "passphrase");

    // add: both open
    let o = with_env(
        repo,
        Some(PASSPHRASE),
        &[("STRATA_NEW_PASSWORD", OsStr::new("second pass"))],
        &["key", "add", "--label", "laptop"],
    );
    succeeded(o, "key add");
    let list = key_list(repo, "second pass");
    assert_eq!(list.len(), 2);
    let second = list.iter().find(|k| k["label"] == "laptop").unwrap();
    assert_eq!(second["kind"], "passphrase");
    assert!(second["created_unix_ns"].as_i64().unwrap() > 0);
    assert!(!second["host"].as_str().unwrap().is_empty());
    succeeded(
        with_pass(repo, Some(PASSPHRASE), &["snapshots"]),
        "first key",
    );
    succeeded(
        with_pass(repo, Some("second pass"), &["snapshots"]),
        "second key",
    );

    // remove the first: only the second opens
    succeeded(
        with_pass(
            repo,
            Some("second pass"),
            &["key", "remove", &first_id[..8]],
        ),
        "key remove",
    );
    let o = with_pass(repo, Some(PASSPHRASE), &["snapshots"]);
    assert!(one_line_error(&o, "removed key").contains("wrong passphrase or key"));
    succeeded(
        with_pass(repo, Some("second pass"), &["snapshots"]),
        "second key",
    );

    // the last key is never removed
    let last = key_list(repo, "second pass")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = with_pass(repo, Some("second pass"), &["key", "remove", &last]);
    assert!(one_line_error(&o, "remove last").contains("last key"));
    succeeded(
        with_pass(repo, Some("second pass"), &["snapshots"]),
        "still opens",
    );

    // passwd: the old passphrase fails, the new one works
    let o = with_env(
        repo,
        Some("second pass"),
        &[("STRATA_NEW_PASSWORD", OsStr::new("third pass"))],
        &["key", "passwd"],
    );
    succeeded(o, "key passwd");
    let o = with_pass(repo, Some("second pass"), &["snapshots"]);
    assert!(one_line_error(&o, "old passphrase").contains("wrong passphrase or key"));
    succeeded(
        with_pass(repo, Some("third pass"), &["snapshots"]),
        "new passphrase",
    );
    assert_eq!(
        key_list(repo, "third pass")[0]["label"],
        "laptop",
        "label kept"
    );

    // other passphrase sources: --password-file wins over STRATA_PASSWORD;
    // STRATA_PASSWORD_COMMAND
    let pf = e.root.join("pass");
    std::fs::write(&pf, "third pass\n").unwrap();
    succeeded(
        with_pass(
            repo,
            Some("wrong"),
            &["--password-file", pf.to_str().unwrap(), "snapshots"],
        ),
        "--password-file",
    );
    let o = with_env(
        repo,
        None,
        &[("STRATA_PASSWORD_COMMAND", OsStr::new("echo 'third pass'"))],
        &["snapshots"],
    );
    succeeded(o, "STRATA_PASSWORD_COMMAND");

    // an age recipient key, unlocked with --identity and STRATA_IDENTITY
    let ident = age::x25519::Identity::generate();
    let ident_file = e.root.join("age-key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(
            &ident_file,
            format!("{}\n", ident.to_string().expose_secret()),
        )
        .unwrap();
    }
    let recipient = ident.to_public().to_string();
    succeeded(
        with_pass(
            repo,
            Some("third pass"),
            &["key", "add", "--recipient", &recipient, "--label", "age"],
        ),
        "key add --recipient",
    );
    succeeded(
        with_pass(
            repo,
            None,
            &["--identity", ident_file.to_str().unwrap(), "snapshots"],
        ),
        "--identity",
    );
    let o = with_env(
        repo,
        None,
        &[("STRATA_IDENTITY", ident_file.as_os_str())],
        &["snapshots"],
    );
    succeeded(o, "STRATA_IDENTITY");
    let other = age::x25519::Identity::generate();
    let other_file = e.root.join("other-key.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&other_file, other.to_string().expose_secret().as_bytes()).unwrap();
    }
    let o = with_pass(
        repo,
        None,
        &["--identity", other_file.to_str().unwrap(), "snapshots"],
    );
    assert!(one_line_error(&o, "other identity").contains("wrong passphrase or key"));
    let list = key_list(repo, "third pass");
    let age_key = list.iter().find(|k| k["label"] == "age").unwrap();
    assert_eq!(age_key["kind"], "age");
    assert_eq!(age_key["recipient"], recipient.as_str());

    // ssh-ed25519 and ssh-rsa keys
    for kind in ["ed25519", "rsa"] {
        if !tool_available("ssh-keygen") {
            break;
        }
        let ssh = e.root.join(format!("id_{kind}"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(&ssh)
            .status()
            .unwrap();
        assert!(st.success());
        let pubkey = format!("{}.pub", ssh.display());
        succeeded(
            with_pass(
                repo,
                Some("third pass"),
                &["key", "add", "--recipient", &pubkey],
            ),
            "key add ssh",
        );
        succeeded(
            with_pass(
                repo,
                None,
                &["--identity", ssh.to_str().unwrap(), "snapshots"],
            ),
            "ssh identity",
        );
        let kinds: BTreeSet<String> = key_list(repo, "third pass")
            .iter()
            .map(|k| k["kind"].as_str().unwrap().to_string())
            .collect();
        assert!(kinds.contains(&format!("ssh-{kind}")), "{kinds:?}");
    }
    // a bad recipient is refused and adds nothing
    let before = key_list(repo, "third pass").len();
    let o = with_pass(
        repo,
        Some("third pass"),
        &["key", "add", "--recipient", "nonsense"],
    );
    one_line_error(&o, "bad recipient");
    assert_eq!(key_list(repo, "third pass").len(), before);
}

/// Write `keys/<id>.info` anew, validly MACed and encrypted with the
/// repository secret (read by hand), saying the key is of `kind`.
fn plant_key_info(repo: &Path, id: &str, kind: &str) {
    use age::secrecy::ExposeSecret;
    let secret = Secret::read(repo);
    let crypto = strata::crypto::Crypto::from_secret(
        secret.identity.to_string().expose_secret(),
        &secret.id_key,
        secret.seed,
        "test",
    )
    .unwrap();
    let info = strata::repo::keys::KeyInfo {
        id: id.to_string(),
        label: "planted".into(),
        kind: kind.into(),
        recipient: String::new(),
        created_unix_ns: 1,
        host: "h".into(),
        username: "u".into(),
        verifying_key: None,
    };
    let path = repo.join("keys").join(format!("{id}.info"));
    std::fs::write(path, info.seal(&crypto).unwrap()).unwrap();
}

/// keys.md "Key commands": `key passwd` goes by the key's info file. It
/// refuses a key whose info is unreadable (it used to go ahead and give
/// the new key the label "(info unreadable: …)") or says the key is not a
/// passphrase key (it used to look only at the key file's age header), and
/// then changes nothing.
#[test]
fn key_passwd_refuses_unreadable_info_and_non_passphrase_info() {
    let e = Enc::new();
    let repo = &e.repo;
    let id = key_list(repo, PASSPHRASE)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let info = repo.join("keys").join(format!("{id}.info"));
    let good = std::fs::read(&info).unwrap();
    let passwd = || {
        with_env(
            repo,
            Some(PASSPHRASE),
            &[("STRATA_NEW_PASSWORD", OsStr::new("new pass"))],
            &["key", "passwd"],
        )
    };
    let unchanged = |what: &str, before: &std::collections::BTreeMap<PathBuf, Vec<u8>>| {
        assert!(
            &support::contents(&repo.join("keys")) == before,
            "{what}: keys/ changed"
        );
        succeeded(with_pass(repo, Some(PASSPHRASE), &["snapshots"]), what);
        let o = with_pass(repo, Some("new pass"), &["snapshots"]);
        one_line_error(&o, &format!("{what}: the new passphrase opens nothing"));
    };

    // unreadable: damaged, then missing
    let len = good.len();
    flip(&info, len - 3);
    let before = support::contents(&repo.join("keys"));
    let line = one_line_error(&passwd(), "passwd, damaged info");
    assert!(line.contains(&format!("keys/{id}.info")), "{line}");
    assert!(line.contains("unreadable"), "{line}");
    unchanged("damaged info", &before);
    std::fs::remove_file(&info).unwrap();
    let before = support::contents(&repo.join("keys"));
    let line = one_line_error(&passwd(), "passwd, missing info");
    assert!(line.contains(&format!("keys/{id}.info")), "{line}");
    unchanged("missing info", &before);

    // readable, but says the key is an age key
    plant_key_info(repo, &id, "age");
    let listed = key_list(repo, PASSPHRASE);
    assert_eq!(listed[0]["kind"], "age", "the planted info is read");
    let before = support::contents(&repo.join("keys"));
    let line = one_line_error(&passwd(), "passwd, info says age");
    assert!(line.contains("not a passphrase key"), "{line}");
    assert!(line.contains(&format!("keys/{id}.info")), "{line}");
    unchanged("info says age", &before);

    // with its real info back, passwd works and keeps the label
    std::fs::write(&info, &good).unwrap();
    succeeded(passwd(), "passwd with good info");
    let listed = key_list(repo, "new pass");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["label"], "initial key");
    assert_eq!(listed[0]["kind"], "passphrase");
}

#[test]
fn forged_manifests_planted_blobs_and_swapped_packs_are_rejected() {
    let e = Enc::new();
    let v = e.snapshot();
    let id = v["id"].as_str().unwrap().to_string();
    let secret = Secret::read(&e.repo);
    let recipient = secret.identity.to_public();
    let snaps = e.repo.join("snapshots");

    // 1. A manifest made by someone holding only the public recipient: a
    //    real manifest with its host changed, the id field recomputed as
    //    plain BLAKE3 (the attacker has no MAC key), encrypted with age.
    let mut plain = secret.decrypt(&std::fs::read(snaps.join(&id)).unwrap());
    let body_at = 44;
    let pos = plain[body_at..]
        .windows(2)
        .position(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_lowercase())
        .unwrap()
        + body_at;
    plain[pos] = b'x';
    let fake_id = *blake3::hash(&plain[44..]).as_bytes();
    plain[8..40].copy_from_slice(&fake_id);
    let fake_name = strata::id::to_hex(&fake_id);
    let forged = age::encrypt(&recipient, &plain).unwrap();
    std::fs::write(snaps.join(&fake_name), &forged).unwrap();
    let o = e.restore(&fake_name, &e.root.join("f1"));
    let line = one_line_error(&o, "forged manifest");
    assert!(line.contains(&format!("snapshots/{fake_name}")), "{line}");
    assert!(line.contains("MAC"), "{line}");
    assert!(!e.root.join("f1").exists());
    // `snapshots` lists only the real one and warns about the forgery.
    let o = support::run(&e.repo, &[], &["snapshots", "--json"]);
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&fake_name[..16]));
    std::fs::remove_file(snaps.join(&fake_name)).unwrap();

    // 2. A data blob planted by backing up a crafted file, then copied (as
    //    the attacker can only do: encrypted to the recipient) into
    //    snapshots/.
    std::fs::write(e.src.join("crafted"), &plain).unwrap();
    e.snapshot();
    std::fs::write(
        snaps.join(&fake_name),
        age::encrypt(&recipient, &plain).unwrap(),
    )
    .unwrap();
    let o = e.restore(&fake_name, &e.root.join("f2"));
    let line = one_line_error(&o, "planted blob");
    assert!(
        line.contains(&format!("snapshots/{fake_name}")) && line.contains("MAC"),
        "{line}"
    );
    std::fs::remove_file(snaps.join(&fake_name)).unwrap();
    std::fs::remove_file(e.src.join("crafted")).unwrap();

    // 3. A pack copied into snapshots/ (decrypts: same recipient).
    let pack = support::pack_files(&e.repo)[0].clone();
    let pname = pack.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::copy(&pack, snaps.join(&pname)).unwrap();
    let o = e.restore(&pname, &e.root.join("f3"));
    let line = one_line_error(&o, "pack as manifest");
    assert!(line.contains(&format!("snapshots/{pname}")), "{line}");
    std::fs::remove_file(snaps.join(&pname)).unwrap();

    // 4. A data blob asked for as a tree.
    let data = support::pack_names(&e.repo)
        .into_iter()
        .flat_map(|p| pack_blobs(&e.repo, &p))
        .find(|b| b.1 == "data")
        .unwrap();
    let o = support::run(&e.repo, &[], &["cat", "--raw", "tree", &data.0]);
    let line = one_line_error(&o, "data blob as tree");
    assert!(line.contains(&data.0[..8]), "{line}");

    // 5. Two data packs swapped under each other's names.
    let data_packs: Vec<PathBuf> = support::pack_files(&e.repo)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            pack_blobs(&e.repo, &n)[0].1 == "data"
        })
        .collect();
    assert!(data_packs.len() >= 2, "need two data packs");
    let (a, b) = (&data_packs[0], &data_packs[1]);
    let tmp = e.root.join("swap");
    std::fs::rename(a, &tmp).unwrap();
    std::fs::rename(b, a).unwrap();
    std::fs::rename(&tmp, b).unwrap();
    let target = e.root.join("f5");
    let o = e.restore(&id, &target);
    let line = one_line_error(&o, "swapped packs");
    assert!(line.contains("pack "), "{line}");
    let names: Vec<String> = [a, b]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy()[..8].to_string())
        .collect();
    assert!(names.iter().any(|n| line.contains(n.as_str())), "{line}");
    assert_no_garbage(&target, &e.src, &line);
}

/// Content ids of `name` in the root tree of snapshot `v`, and the raw
/// length of each.
fn chunks_of(repo: &Path, v: &Value, name: &str) -> Vec<(String, u64)> {
    let tree = v["tree"].as_str().unwrap();
    let t: Value =
        serde_json::from_str(&support::ok(repo, &[], &["cat", "--raw", "tree", tree])).unwrap();
    let entry = t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()
        .clone();
    let lens: HashMap<String, u64> = support::pack_names(repo)
        .into_iter()
        .flat_map(|p| pack_blobs(repo, &p))
        .map(|b| (b.0, b.2))
        .collect();
    entry["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let c = c.as_str().unwrap().to_string();
            let l = lens[&c];
            (c, l)
        })
        .collect()
}

#[test]
fn chunk_ids_and_boundaries_are_secret_per_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::Rng::new(11).text(6 << 20);
    let backup = |repo: &Path, init: &[&str]| -> Vec<(String, u64)> {
        let mut args = vec!["init"];
        args.extend_from_slice(init);
        support::ok(repo, &[], &args);
        let mut c = support::unlock_for(support::command(), repo);
        let mut child = c
            .arg("--repo")
            .arg(repo)
            .args(["snapshot", "-", "--stdin-name", "f", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        chunks_of(repo, &v, "f")
    };
    let enc1 = backup(&tmp.path().join("e1"), &[]);
    let enc2 = backup(&tmp.path().join("e2"), &[]);
    let plain = backup(&tmp.path().join("p"), &["--no-encryption"]);
    for c in [&enc1, &enc2, &plain] {
        assert_eq!(c.iter().map(|x| x.1).sum::<u64>(), data.len() as u64);
        assert!(c.len() >= 10, "{} chunks", c.len());
    }
    // Unencrypted: plain BLAKE3 of the default FastCDC chunks.
    let chunker =
        strata::chunker::Chunker::new(&strata::repo::config::ChunkerParams::default()).unwrap();
    let mut want = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let n = chunker.cut(rest);
        want.push((blake3::hash(&rest[..n]).to_hex().to_string(), n as u64));
        rest = &rest[n..];
    }
    assert_eq!(plain, want, "unencrypted ids are plain BLAKE3");
    // Encrypted: keyed ids, seeded boundaries, different per repository.
    let ids = |c: &Vec<(String, u64)>| c.iter().map(|x| x.0.clone()).collect::<BTreeSet<_>>();
    let lens = |c: &Vec<(String, u64)>| c.iter().map(|x| x.1).collect::<Vec<_>>();
    assert!(
        ids(&enc1).is_disjoint(&ids(&enc2)),
        "ids differ between repositories"
    );
    assert!(ids(&enc1).is_disjoint(&ids(&plain)));
    assert_ne!(
        lens(&enc1),
        lens(&enc2),
        "boundaries differ between repositories"
    );
    assert_ne!(lens(&enc1), lens(&plain));
    // and they are what keys.md says: keyed BLAKE3 of the seeded chunks
    let secret = Secret::read(&tmp.path().join("e1"));
    let chunker = strata::chunker::Chunker::new(&strata::repo::config::ChunkerParams {
        seed: secret.seed,
        ..Default::default()
    })
    .unwrap();
    let mut want = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let n = chunker.cut(rest);
        want.push((strata::id::to_hex(&secret.data_id(&rest[..n])), n as u64));
        rest = &rest[n..];
    }
    assert_eq!(enc1, want, "encrypted ids follow keys.md");
}

#[test]
fn a_file_with_a_trees_bytes_is_never_confused_with_the_tree() {
    // A file whose bytes are exactly an (empty) tree's encoding, then a
    // directory holding an empty directory. Unencrypted, both are the same
    // blob (plain BLAKE3), stored once as data: reading it as a tree must
    // still work. Encrypted, the ids differ (keyed per kind).
    let empty_tree = strata::snapshot::tree::Tree::default().encode().unwrap();
    for init in [&["--no-encryption"][..], &[][..]] {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let mut args = vec!["init"];
        args.extend_from_slice(init);
        support::ok(&repo, &[], &args);
        let a = tmp.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("looks-like-a-tree"), &empty_tree).unwrap();
        support::ok(&repo, &[], &["snapshot", a.to_str().unwrap()]);
        let b = tmp.path().join("b");
        std::fs::create_dir_all(b.join("empty")).unwrap();
        support::ok(&repo, &[], &["snapshot", b.to_str().unwrap()]);
        for (spec, src) in [
            ("latest", &b),
            (&*support::ok(&repo, &[], &["snapshots", "--json"]), &a),
        ] {
            let spec = if spec == "latest" {
                "latest".to_string()
            } else {
                let v: Value = serde_json::from_str(spec).unwrap();
                v[0]["id"].as_str().unwrap().to_string()
            };
            let target = tmp.path().join(format!(
                "out-{}",
                src.file_name().unwrap().to_string_lossy()
            ));
            support::ok(
                &repo,
                &[],
                &["restore", &spec, "--target", target.to_str().unwrap()],
            );
            let d = support::compare_trees(
                src,
                &support::under(&target, src),
                &support::Compare::default(),
            );
            assert!(d.is_empty(), "{init:?} {spec}: {d:?}");
        }
    }
}

#[test]
fn a_substituted_repository_is_refused_by_its_first_user() {
    // The storage replaces config and key files with its own repository,
    // encrypted to the user's public recipient key: consistent, MACed under
    // the attacker's secret. Only the local record of the repository's id
    // and recipient (threat-model.md "Substitution") can tell.
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let ident = age::x25519::Identity::generate();
    let ident_file = tmp.path().join("me.txt");
    {
        use age::secrecy::ExposeSecret;
        std::fs::write(&ident_file, ident.to_string().expose_secret().as_bytes()).unwrap();
    }
    let me = ident.to_public().to_string();
    let run = |repo: &Path, cache: Option<&Path>, args: &[&str]| {
        let cache = cache.map(Path::as_os_str).unwrap_or_default();
        let env = [
            ("STRATA_CACHE_DIR", cache),
            ("STRATA_IDENTITY", ident_file.as_os_str()),
        ];
        with_env(repo, None, &env, args)
    };
    let victim = tmp.path().join("victim");
    succeeded(
        run(&victim, Some(&cache), &["init", "--recipient", &me]),
        "init",
    );
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"mine").unwrap();
    succeeded(
        run(&victim, Some(&cache), &["snapshot", src.to_str().unwrap()]),
        "snapshot",
    );
    // the attacker's repository, for the same public key
    let evil = tmp.path().join("evil");
    succeeded(
        run(&evil, None, &["init", "--recipient", &me]),
        "attacker init",
    );
    std::fs::remove_dir_all(victim.join("keys")).unwrap();
    std::fs::rename(evil.join("keys"), victim.join("keys")).unwrap();
    std::fs::copy(evil.join("config"), victim.join("config")).unwrap();
    for d in ["snapshots", "packs"] {
        std::fs::remove_dir_all(victim.join(d)).unwrap();
        std::fs::create_dir_all(victim.join(d)).unwrap();
    }
    // (the index is in the cache, keyed by the repository id)
    assert!(!victim.join("index.sqlite").exists());
    let o = run(&victim, Some(&cache), &["snapshot", src.to_str().unwrap()]);
    let line = one_line_error(&o, "substituted repository");
    assert!(line.contains("not the repository"), "{line}");
    // without the local record the substitution is not detectable: the
    // next snapshot would be readable by the attacker
    succeeded(
        run(&victim, None, &["snapshot", src.to_str().unwrap()]),
        "no record",
    );
}
