//! Hostile storage (issue 18; threat-model.md "Attacks and results"): the
//! storage can read, replace, delete, roll back and add any file, but has
//! no passphrase or identity. Each test is an attack that succeeded before
//! the fix: a plaintext config that switched encryption off, hidden
//! manifests that made gc delete data and `restore latest` restore old
//! data silently, secrets in child processes, planted key files that
//! stalled unlocking, and one garbage manifest that stopped every gc.

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{PASSPHRASE, one_line_error};

/// An encrypted repository with a source tree and a cache directory of
/// its own (the machine's records: known repositories, seen snapshots).
struct Victim {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    src: PathBuf,
    cache: PathBuf,
}

impl Victim {
    fn new() -> Victim {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let v = Victim {
            repo: root.join("repo"),
            src: root.join("src"),
            cache: root.join("cache"),
            root,
            _tmp: tmp,
        };
        fs::create_dir_all(&v.src).unwrap();
        fs::write(
            v.src.join("secret.txt"),
            b"SECRET-CONTENTS-4711 ".repeat(400),
        )
        .unwrap();
        ok(v.run(&["init"]), "init");
        v
    }

    /// `strata --repo REPO ARGS` with the passphrase and this cache.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = support::command();
        c.env("STRATA_CACHE_DIR", &self.cache)
            .arg("--repo")
            .arg(&self.repo)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn snapshot(&self) -> String {
        let out = ok(
            self.run(&["snapshot", self.src.to_str().unwrap(), "--json"]),
            "snapshot",
        );
        support::parse_json(out.as_bytes())["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Every file of the repository with its bytes (what was written).
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = support::list_files(&self.repo)
            .into_iter()
            .filter(|p| !p.starts_with("locks/") && !p.starts_with("tmp/"))
            .map(|p| {
                let b = fs::read(self.repo.join(&p)).unwrap();
                (p, b)
            })
            .collect();
        v.sort();
        v
    }
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An unencrypted repository's plaintext config, made elsewhere.
fn plaintext_config(dir: &Path) -> Vec<u8> {
    let other = dir.join("plain-repo");
    ok(
        support::command()
            .env_remove("STRATA_PASSWORD")
            .arg("--repo")
            .arg(&other)
            .args(["init", "--no-encryption"])
            .output()
            .unwrap(),
        "init --no-encryption",
    );
    fs::read(other.join("config")).unwrap()
}

// ---------------------------------------------------------------- 1. downgrade

#[test]
fn a_plaintext_config_under_a_passphrase_is_refused_by_every_command() {
    for hide_old in [true, false] {
        let v = Victim::new();
        let first = v.snapshot();
        // the storage swaps in a plaintext config; with `hide_old` it also
        // hides the encrypted repository's other files
        let plain = plaintext_config(&v.root);
        fs::write(v.repo.join("config"), &plain).unwrap();
        if hide_old {
            for d in ["keys", "snapshots", "packs", "gc"] {
                fs::rename(v.repo.join(d), v.root.join(format!("hidden-{d}"))).unwrap();
                fs::create_dir(v.repo.join(d)).unwrap();
            }
        }
        let before = v.files();
        let target = v.root.join("target");
        let cfg = v.root.join("strata.toml");
        fs::write(
            &cfg,
            format!(
                "repository = \"{}\"\n[sources.data]\npaths = [\"{}\"]\n",
                v.repo.display(),
                v.src.display()
            ),
        )
        .unwrap();
        let mirror = v.root.join("mirror");
        let src = v.src.to_str().unwrap();
        let tgt = target.to_str().unwrap();
        let spec = first[..8].to_string();
        let attempts: Vec<(&str, Vec<&str>)> = vec![
            ("snapshot", vec!["snapshot", src]),
            (
                "restore",
                vec!["restore", "latest", "--target", tgt, "--verify"],
            ),
            ("restore id", vec!["restore", &spec, "--target", tgt]),
            ("sync", vec!["sync", mirror.to_str().unwrap()]),
            ("snapshots", vec!["snapshots"]),
        ];
        for (what, args) in attempts {
            let o = v.run(&args);
            let line = one_line_error(&o, what);
            assert!(
                line.contains(v.repo.to_str().unwrap()) && line.contains("not encrypted"),
                "{what} (hide_old {hide_old}): {line}"
            );
        }
        // `run`, with the repository and passphrase of strata.toml
        let o = support::command()
            .env("STRATA_CACHE_DIR", &v.cache)
            .args(["run", "--json", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!o.status.success(), "run: {}", stderr(&o));
        let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert!(all.contains("not encrypted"), "run: {all}");
        assert_eq!(
            v.files(),
            before,
            "hide_old {hide_old}: something was written"
        );
        assert!(!target.exists() && !mirror.join("config").exists());
    }
}

#[test]
fn a_plaintext_config_at_a_location_known_as_encrypted_is_refused_without_credentials() {
    let v = Victim::new();
    v.snapshot();
    let plain = plaintext_config(&v.root);
    fs::write(v.repo.join("config"), &plain).unwrap();
    // no passphrase given at all: only this machine's record can tell
    let o = v
        .cmd(&["snapshot", v.src.to_str().unwrap()])
        .env_remove("STRATA_PASSWORD")
        .output()
        .unwrap();
    let line = one_line_error(&o, "known location");
    assert!(
        line.contains("opened an encrypted repository") && line.contains("known"),
        "{line}"
    );
    // a forged plaintext repository at the victim's path, with a passphrase
    // in the environment: refused before anything is restored
    let forged = v.root.join("forged");
    ok(
        support::command()
            .env_remove("STRATA_PASSWORD")
            .arg("--repo")
            .arg(&forged)
            .args(["init", "--no-encryption"])
            .output()
            .unwrap(),
        "forged init",
    );
    let evil_src = v.root.join("evil");
    fs::create_dir_all(&evil_src).unwrap();
    fs::write(evil_src.join("secret.txt"), b"attacker bytes").unwrap();
    ok(
        support::command()
            .env_remove("STRATA_PASSWORD")
            .arg("--repo")
            .arg(&forged)
            .args(["snapshot", evil_src.to_str().unwrap()])
            .output()
            .unwrap(),
        "forged snapshot",
    );
    fs::remove_dir_all(&v.repo).unwrap();
    fs::rename(&forged, &v.repo).unwrap();
    let target = v.root.join("target");
    let o = v.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    one_line_error(&o, "forged repository");
    assert!(!target.exists(), "the attacker's bytes were restored");
    // `require_encryption = false` is the user's explicit opt-out
    let cfg = v.root.join("strata.toml");
    fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\nrequire_encryption = false\n",
            v.repo.display()
        ),
    )
    .unwrap();
    let o = support::command()
        .env("STRATA_CONFIG", &cfg)
        .env("STRATA_CACHE_DIR", "")
        .args(["snapshots"])
        .output()
        .unwrap();
    ok(o, "require_encryption = false");
}

// ---------------------------------------------------------------- 2. rollback

/// The storage hides the newest manifest after this machine saw it.
#[test]
fn a_hidden_manifest_stops_gc_and_forget_and_restore_latest_warns() {
    let v = Victim::new();
    let old = v.snapshot();
    fs::write(v.src.join("new.bin"), support::random_bytes(3, 300_000)).unwrap();
    let new = v.snapshot();
    ok(v.run(&["snapshots"]), "snapshots");
    let manifest = v.repo.join("snapshots").join(&new);
    let hidden = v.root.join("hidden-manifest");
    fs::rename(&manifest, &hidden).unwrap();
    let before = v.files();
    for args in [
        vec!["gc", "--grace", "0"],
        vec!["gc"],
        vec!["forget", "--keep-last", "1"],
        vec!["forget", &old[..8]],
    ] {
        let o = v.run(&args);
        let line = one_line_error(&o, &args.join(" "));
        assert!(
            line.contains("refused") && line.contains(&new[..8]),
            "{args:?}: {line}"
        );
        assert!(line.contains("--acknowledge-missing"), "{line}");
    }
    assert_eq!(v.files(), before, "gc or forget changed the repository");
    // restore latest restores the older snapshot, but says so: exit 3
    let target = v.root.join("target");
    let o = v.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "restore latest: {}", stderr(&o));
    assert!(stderr(&o).contains(&new[..8]), "{}", stderr(&o));
    // every listing warns again: the warning does not clear the record
    for _ in 0..2 {
        let o = v.run(&["snapshots"]);
        assert!(o.status.success());
        assert!(stderr(&o).contains(&new[..8]), "{}", stderr(&o));
    }
    // the manifest comes back: nothing was lost
    fs::rename(&hidden, &manifest).unwrap();
    ok(v.run(&["check", "--read-data"]), "check --read-data");
    let o = v.run(&["snapshots"]);
    assert!(!stderr(&o).contains("gone"), "{}", stderr(&o));
    ok(
        v.run(&["gc", "--grace", "0"]),
        "gc after the manifest is back",
    );
}

#[test]
fn acknowledging_the_loss_lets_gc_run_once_and_clears_the_record() {
    let v = Victim::new();
    v.snapshot();
    fs::write(v.src.join("more"), b"x").unwrap();
    let new = v.snapshot();
    fs::remove_file(v.repo.join("snapshots").join(&new)).unwrap();
    let o = v.run(&["gc", "--grace", "0", "--json", "--acknowledge-missing"]);
    let out = ok(o, "gc --acknowledge-missing");
    let r = support::parse_json(out.as_bytes());
    assert_eq!(r["acknowledged_missing"][0], new.as_str(), "{r}");
    ok(v.run(&["gc", "--grace", "0"]), "a later gc");
    let o = v.run(&["snapshots"]);
    assert!(!stderr(&o).contains(&new[..8]), "{}", stderr(&o));
}

/// Two hosts share a repository: a snapshot forgotten by one is not a
/// loss to the other, whose gc runs.
#[test]
fn a_snapshot_forgotten_by_another_host_does_not_stop_gc() {
    let v = Victim::new();
    let a = v.snapshot();
    fs::write(v.src.join("b"), support::random_bytes(5, 200_000)).unwrap();
    let b = v.snapshot();
    let other_cache = v.root.join("other-host-cache");
    let other = |args: &[&str]| {
        let mut c = v.cmd(args);
        c.env("STRATA_CACHE_DIR", &other_cache);
        c.output().unwrap()
    };
    ok(other(&["snapshots"]), "other host lists");
    ok(v.run(&["snapshots"]), "this host lists");
    // the other host forgets b and frees its data
    ok(other(&["forget", &b[..8]]), "other host forgets");
    // this host: no warning, gc runs and frees b's unique pack
    let o = v.run(&["snapshots", "--json"]);
    assert!(o.status.success());
    assert!(!stderr(&o).contains("gone"), "{}", stderr(&o));
    let packs = support::pack_files(&v.repo).len();
    ok(v.run(&["gc", "--grace", "0"]), "this host's gc");
    assert!(support::pack_files(&v.repo).len() < packs, "nothing freed");
    ok(v.run(&["check", "--read-data"]), "check");
    let snaps = ok(v.run(&["snapshots", "--json"]), "snapshots");
    assert!(snaps.contains(&a) && !snaps.contains(&b), "{snaps}");
}

/// One planted garbage manifest stops gc with a message naming the
/// command that removes it (format-spec/gc.md step 2); after it, gc frees
/// what it should.
#[test]
fn a_planted_garbage_manifest_stops_gc_with_the_command_that_removes_it() {
    let v = Victim::new();
    let keep = v.snapshot();
    fs::write(v.src.join("big.bin"), support::random_bytes(9, 500_000)).unwrap();
    let drop_me = v.snapshot();
    ok(v.run(&["forget", &drop_me[..8]]), "forget");
    let planted = "ab".repeat(32);
    fs::write(
        v.repo.join("snapshots").join(&planted),
        b"age-encryption.org/v1\n-> X25519 garbage\n",
    )
    .unwrap();
    let packs = support::pack_files(&v.repo).len();
    let o = v.run(&["gc", "--grace", "0"]);
    let line = one_line_error(&o, "gc with a garbage manifest");
    assert!(
        line.contains(&format!("strata forget {}", &planted[..16])),
        "{line}"
    );
    assert_eq!(support::pack_files(&v.repo).len(), packs);
    let o = v.run(&["forget", &planted[..16]]);
    ok(o, "forget the garbage manifest");
    assert!(!v.repo.join("snapshots").join(&planted).exists());
    ok(v.run(&["gc", "--grace", "0"]), "gc");
    assert!(support::pack_files(&v.repo).len() < packs, "nothing freed");
    ok(v.run(&["check", "--read-data"]), "check");
    let target = v.root.join("t");
    ok(
        v.run(&[
            "restore",
            &keep[..8],
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]),
        "restore",
    );
}

// ---------------------------------------------------------------- 3. secrets in children

fn assert_no_secret_vars(env_dump: &str, what: &str) {
    for line in env_dump.lines() {
        let name = line.split('=').next().unwrap_or("");
        assert!(
            !(name.starts_with("STRATA_") && name.contains("PASSWORD")),
            "{what} saw {name}"
        );
    }
    assert!(!env_dump.contains(PASSPHRASE), "{what} saw the passphrase");
}

#[test]
fn children_never_see_a_passphrase_variable() {
    let v = Victim::new();
    // a command source that runs `env`: what it prints is backed up
    let out = ok(
        v.cmd(&[
            "snapshot",
            "--stdin-from-command",
            "env",
            "--stdin-name",
            "env.txt",
            "--json",
        ])
        .env("STRATA_NEW_PASSWORD", "new-secret-1")
        .output()
        .unwrap(),
        "command source",
    );
    let id = support::parse_json(out.as_bytes())["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dump = ok(v.run(&["cat", &format!("{}:/env.txt", &id[..8])]), "cat");
    assert!(dump.contains("PATH="), "not an env dump: {dump}");
    assert_no_secret_vars(&dump, "the command source");
    assert!(!dump.contains("new-secret-1"));
    // restore --to-command
    let file = v.root.join("to-command-env");
    let cmd = format!("cat >/dev/null; env > {}", file.display());
    ok(
        v.run(&[
            "restore",
            &format!("{}:/env.txt", &id[..8]),
            "--to-command",
            &cmd,
        ]),
        "to-command",
    );
    assert_no_secret_vars(&fs::read_to_string(&file).unwrap(), "--to-command");
    // password_command: it prints the passphrase, and sees no other secret
    let file = v.root.join("password-command-env");
    let o = v
        .cmd(&["snapshots"])
        .env_remove("STRATA_PASSWORD")
        .env(
            "STRATA_PASSWORD_COMMAND",
            format!("env > {}; echo '{PASSPHRASE}'", file.display()),
        )
        .env("STRATA_NEW_PASSWORD", "new-secret-2")
        .output()
        .unwrap();
    ok(o, "password command");
    assert_no_secret_vars(&fs::read_to_string(&file).unwrap(), "password_command");
    // a `command` source of `strata run`
    let file = v.root.join("run-source-env");
    let cfg = v.root.join("strata.toml");
    fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\n[sources.envdump]\ncommand = \"env | tee {}\"\nname = \"e.txt\"\n",
            v.repo.display(),
            file.display()
        ),
    )
    .unwrap();
    ok(
        v.cmd(&[])
            .args(["run", "--config"])
            .arg(&cfg)
            .output()
            .unwrap(),
        "run",
    );
    assert_no_secret_vars(
        &fs::read_to_string(&file).unwrap(),
        "a run's command source",
    );
}

#[test]
fn the_run_log_names_the_webhook_host_never_its_token() {
    let v = Victim::new();
    let (port, h) = support::http_receiver();
    let cfg = v.root.join("strata.toml");
    fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\nwebhook = \"http://127.0.0.1:{port}/hook/TOKEN-s3cr3t?key=TOKEN-q\"\n\
             webhook_on = \"always\"\n\
             [sources.data]\npaths = [\"{}\"]\n",
            v.repo.display(),
            v.src.display()
        ),
    )
    .unwrap();
    let o = v
        .cmd(&[])
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let (first, _) = h.join().unwrap();
    assert!(
        first.contains("TOKEN-s3cr3t"),
        "the POST went elsewhere: {first}"
    );
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{all}");
    assert!(all.contains(&format!("127.0.0.1:{port}")), "{all}");
    assert!(!all.contains("TOKEN"), "the log shows the token: {all}");
    // a webhook that fails: the warning names the host only
    let dead = support::free_port();
    fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\nwebhook = \"http://127.0.0.1:{dead}/hook/TOKEN-s3cr3t\"\n\
             webhook_on = \"always\"\n\
             [sources.data]\npaths = [\"{}\"]\n",
            v.repo.display(),
            v.src.display()
        ),
    )
    .unwrap();
    let o = v
        .cmd(&[])
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(all.contains("webhook"), "{all}");
    assert!(!all.contains("TOKEN"), "the warning shows the token: {all}");
}

// ---------------------------------------------------------------- 4. unlocking

/// A copy of passphrase key file `from` with its scrypt work factor
/// rewritten to `log_n` (the header MAC no longer matches, which age only
/// finds after running scrypt), under a name sorted first.
fn plant_key(repo: &Path, from: &Path, log_n: u8, name: &str) {
    let bytes = fs::read(from).unwrap();
    let text = String::from_utf8_lossy(&bytes[..200]).into_owned();
    let line = text.lines().find(|l| l.starts_with("-> scrypt ")).unwrap();
    let parts: Vec<&str> = line.split(' ').collect();
    let new_line = format!("-> scrypt {} {log_n}", parts[2]);
    let mut out = Vec::new();
    let at = bytes
        .windows(line.len())
        .position(|w| w == line.as_bytes())
        .unwrap();
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(new_line.as_bytes());
    out.extend_from_slice(&bytes[at + line.len()..]);
    fs::write(repo.join("keys").join(name), out).unwrap();
}

fn key_files(repo: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    v.sort();
    v
}

#[test]
fn planted_key_files_cannot_stall_unlocking() {
    let v = Victim::new();
    v.snapshot();
    let real = key_files(&v.repo)[0].clone();
    plant_key(&v.repo, &real, 30, &"0".repeat(32));
    plant_key(&v.repo, &real, 20, &format!("{}1", "0".repeat(31)));
    // a machine that unlocked before tries its key first; a new machine
    // (no cache) refuses 2^30 without running it, and tries cheap keys
    // first: both are quick
    for cache in [Some(v.cache.clone()), None] {
        let start = Instant::now();
        let mut c = v.cmd(&["snapshots"]);
        if cache.is_none() {
            c.env("STRATA_CACHE_DIR", "");
        }
        ok(c.output().unwrap(), "unlock with planted key files");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "unlocking took {:?}",
            start.elapsed()
        );
    }
    // only the planted 2^30 key: refused at once, naming it
    fs::rename(&real, v.root.join("real-key")).unwrap();
    fs::remove_file(v.repo.join("keys").join(format!("{}1", "0".repeat(31)))).unwrap();
    let start = Instant::now();
    let o = v
        .cmd(&["snapshots"])
        .env("STRATA_CACHE_DIR", "")
        .output()
        .unwrap();
    let line = one_line_error(&o, "only a 2^30 key");
    assert!(
        line.contains("2^30") && line.contains(&"0".repeat(32)),
        "{line}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn key_passwd_keeps_the_keys_work_factor() {
    let v = Victim::new();
    let o = v
        .cmd(&["key", "add"])
        .env("STRATA_SCRYPT_LOG_N", "11")
        .env("STRATA_NEW_PASSWORD", "second passphrase")
        .output()
        .unwrap();
    ok(o, "key add 2^11");
    let o = v
        .cmd(&["key", "passwd"])
        .env_remove("STRATA_SCRYPT_LOG_N")
        .env("STRATA_PASSWORD", "second passphrase")
        .env("STRATA_NEW_PASSWORD", "third passphrase")
        .output()
        .unwrap();
    ok(o, "key passwd");
    let mut log_ns: Vec<String> = key_files(&v.repo)
        .iter()
        .map(|p| {
            let b = fs::read(p).unwrap();
            let t = String::from_utf8_lossy(&b[..200]).into_owned();
            let l = t
                .lines()
                .find(|l| l.starts_with("-> scrypt "))
                .unwrap()
                .to_string();
            l.rsplit(' ').next().unwrap().to_string()
        })
        .collect();
    log_ns.sort();
    // the first key (2^10, the tests' default) and the replaced 2^11 one
    assert_eq!(log_ns, ["10", "11"]);
    // above the limit: refused when the key is made, not when it is used
    let o = v
        .cmd(&["key", "add"])
        .env("STRATA_SCRYPT_LOG_N", "24")
        .env("STRATA_NEW_PASSWORD", "x")
        .output()
        .unwrap();
    let line = one_line_error(&o, "key add 2^24");
    assert!(line.contains("STRATA_SCRYPT_MAX_LOG_N"), "{line}");
}

// ---------------------------------------------------------------- local files

#[test]
fn an_index_inside_the_repository_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let v = Victim::new();
    let o = v
        .cmd(&["snapshot", v.src.to_str().unwrap()])
        .env("STRATA_CACHE_DIR", "")
        .output()
        .unwrap();
    ok(o, "snapshot without a cache");
    let mode = fs::metadata(v.repo.join("index.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "index.sqlite mode {mode:o}");
}
