//! Recovery as one command (issue 22): `latest:PATH` and `--source`, the
//! recovery key, restore declarations in strata.toml, `strata recover`
//! (plan, safety snapshots, verified restore, hooks, failures and the
//! webhook, undo), the policy that `run` stores, and the README recipes
//! (PostgreSQL, redis, SQLite, a Qdrant-like HTTP API) against the real
//! servers; and a whole bare-machine recovery from moto S3 with an empty
//! HOME and cache.
//!
//! PostgreSQL, redis and moto are real: the tests skip with a message
//! when they are not installed, unless `STRATA_REQUIRE_PG_TESTS=1`,
//! `STRATA_REQUIRE_REDIS_TESTS=1` or `STRATA_REQUIRE_S3_TESTS=1` (set by
//! `.ci/run`) make that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{Fixture, parse_json};

/// `strata` with this fixture's own cache directory.
fn cmd(f: &Fixture) -> assert_cmd::Command {
    let mut c =
        assert_cmd::Command::from_std(support::unlock_for(support::command(), f.strata.repo()));
    c.env("STRATA_CACHE_DIR", f.path("cache"))
        .env_remove("STRATA_CONFIG")
        .current_dir(f.dir())
        .timeout(support::TIMEOUT);
    c
}

/// Write `strata.toml` into the fixture: `repository` and then `body`.
fn config(f: &Fixture, body: &str) -> PathBuf {
    let p = f.path("strata.toml");
    fs::write(
        &p,
        format!("repository = \"{}\"\n{body}", f.strata.repo().display()),
    )
    .unwrap();
    p
}

/// `strata ARGS --config CFG`, expecting `code`.
fn with_cfg(f: &Fixture, cfg: &Path, args: &[&str], code: i32) -> Output {
    let out = cmd(f).args(args).arg("--config").arg(cfg).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "strata {args:?}: stdout {}\nstderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `recover --json ARGS` with `cfg`: its `{plan, summary}`.
fn recover(f: &Fixture, cfg: &Path, args: &[&str], code: i32) -> Value {
    let mut a = vec!["recover", "--json"];
    a.extend_from_slice(args);
    parse_json(&with_cfg(f, cfg, &a, code).stdout)
}

fn step<'a>(sum: &'a Value, source: &str, step: &str) -> &'a Value {
    sum["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == source && s["step"] == step)
        .unwrap_or_else(|| panic!("no step {source}/{step} in {sum}"))
}

fn tagged(f: &Fixture, tag: &str) -> Vec<Value> {
    f.strata
        .snapshots()
        .into_iter()
        .filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag))
        .collect()
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

// ---------------------------------------------------------------- latest:PATH, --source

/// `latest:PATH` takes the newest snapshot that holds PATH: a database
/// dumped after the files no longer hides them (the README recipe failed
/// with `/srv: no such file or directory in the snapshot`).
#[test]
fn latest_path_skips_newer_snapshots_of_other_sources() {
    let f = Fixture::new();
    let srv = f.mkdir("srv/bridge");
    write(&srv.join("a.txt"), b"files of bridge\n");
    f.strata
        .snapshot(&[srv.to_str().unwrap(), "--tag", "bridge"]);
    let dump = f.path("dump.sql");
    write(&dump, b"CREATE TABLE t ();\n");
    f.strata.snapshot(&[
        "--stdin-name",
        "postgres.sql",
        "--tag",
        "postgres",
        "--stdin-from-command",
        &format!("cat {}", dump.display()),
    ]);
    let spec = format!("latest:{}", srv.display());
    let out = f.path("out");
    f.strata.restore(&spec, &out, &["--verify"]);
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"files of bridge\n");
    let ls = f.strata.cmd().args(["ls", &spec]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains("a.txt"),
        "{ls:?}"
    );
    let cat = f
        .strata
        .cmd()
        .arg("cat")
        .arg(format!("latest:{}/a.txt", srv.display()))
        .output()
        .unwrap();
    assert_eq!(cat.stdout, b"files of bridge\n");

    // a path no snapshot holds: how many were searched, and the newest
    let o = f
        .strata
        .cmd()
        .args(["ls", "latest:/nowhere/at/all"])
        .output()
        .unwrap();
    let e = support::one_line_error(&o, "ls of a missing path");
    assert!(
        e.contains("/nowhere/at/all: no such path in any of the 2 snapshots searched"),
        "{e}"
    );
    let newest = f.strata.snapshots().last().unwrap()["id"].as_str().unwrap()[..8].to_string();
    assert!(e.contains(&format!("(the newest: {newest} of ")), "{e}");
    let o = f
        .strata
        .cmd()
        .args(["ls", "--source", "bridge", "latest:/nowhere"])
        .output()
        .unwrap();
    let e = support::one_line_error(&o, "ls --source of a missing path");
    assert!(
        e.contains("of the 1 snapshots searched (tag bridge)"),
        "{e}"
    );
}

/// `--source NAME` on ls, cat, find, diff, stats and snapshots.
#[test]
fn source_filters_every_inspecting_command() {
    let f = Fixture::new();
    let a = f.mkdir("a");
    write(&a.join("one.txt"), b"one\n");
    f.strata.snapshot(&[a.to_str().unwrap(), "--tag", "files"]);
    write(&a.join("two.txt"), b"two\n");
    f.strata.snapshot(&[a.to_str().unwrap(), "--tag", "files"]);
    f.strata.snapshot(&[
        "--stdin-name",
        "db.sql",
        "--tag",
        "db",
        "--stdin-from-command",
        "echo dump",
    ]);
    let run = |args: &[&str]| -> String {
        let o = f.strata.cmd().args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let snaps: Value =
        serde_json::from_str(&run(&["snapshots", "--json", "--source", "files"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert!(run(&["ls", "--source", "db", "latest"]).contains("db.sql"));
    assert!(run(&["ls", "--source", "files", "-r", "latest"]).contains("two.txt"));
    assert_eq!(run(&["cat", "--source", "db", "latest:/db.sql"]), "dump\n");
    let found = run(&["find", "--source", "files", "*.txt"]);
    assert_eq!(found.lines().count(), 3, "{found}");
    assert_eq!(run(&["find", "--source", "db", "*.txt"]), "");
    let diff = run(&[
        "diff",
        "--source",
        "files",
        &snaps[0]["id"].as_str().unwrap()[..8],
        "latest",
    ]);
    assert!(
        diff.contains("two.txt") && !diff.contains("db.sql"),
        "{diff}"
    );
    let st: Value = serde_json::from_str(&run(&["stats", "--json", "--source", "files"])).unwrap();
    assert_eq!(st["snapshots"], 2, "{st}");
}

// ---------------------------------------------------------------- recovery key

/// The exported recovery key alone opens the repository and restores,
/// with every key file gone and no passphrase; a typo and another
/// repository's key are refused in one line.
#[test]
fn recovery_key_alone_restores() {
    let f = Fixture::new();
    let src = f.mkdir("src");
    for i in 0..20 {
        write(
            &src.join(format!("f{i}")),
            &support::random_bytes(i, 30_000),
        );
    }
    f.strata.snapshot(&[src.to_str().unwrap()]);
    let o = f
        .strata
        .cmd()
        .args(["key", "export-recovery"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let rk = f.path("recovery.txt");
    fs::write(&rk, &o.stdout).unwrap();
    for k in fs::read_dir(f.strata.repo().join("keys")).unwrap() {
        fs::remove_file(k.unwrap().path()).unwrap();
    }
    let bare = |args: &[&str]| {
        let mut c = Command::new(support::bin());
        c.env("STRATA_CACHE_DIR", "")
            .env_remove("STRATA_PASSWORD")
            .env_remove("STRATA_PASSWORD_COMMAND")
            .env_remove("STRATA_IDENTITY")
            .env_remove("STRATA_REPO")
            .arg("--repo")
            .arg(f.strata.repo())
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let out = f.path("out");
    let o = bare(&[
        "--identity",
        rk.to_str().unwrap(),
        "restore",
        "latest",
        "--verify",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    support::assert_same_tree(&src, &support::under(&out, &src));
    // still an age identity file: stock age decrypts a snapshot with it
    if support::on_path("age").is_ok() {
        let snap = fs::read_dir(f.strata.repo().join("snapshots"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let a = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&rk)
            .arg(&snap)
            .output()
            .unwrap();
        assert!(
            a.status.success() && a.stdout.starts_with(b"STRATA"),
            "{}",
            String::from_utf8_lossy(&a.stderr)
        );
    }
    // one mistyped digit of the id key
    let good = fs::read_to_string(&rk).unwrap();
    let line = good
        .lines()
        .find(|l| l.starts_with("# strata-recovery-1 "))
        .unwrap();
    let mut fields: Vec<String> = line.split(' ').map(String::from).collect();
    let k = &mut fields[3];
    let c = if k.starts_with('0') { "1" } else { "0" };
    k.replace_range(0..1, c);
    let typo = f.path("typo.txt");
    fs::write(&typo, good.replace(line, &fields.join(" "))).unwrap();
    let o = bare(&["--identity", typo.to_str().unwrap(), "snapshots"]);
    let e = support::one_line_error(&o, "a mistyped recovery key");
    assert!(e.contains("check digits do not match"), "{e}");
    // another repository's recovery key
    let g = Fixture::new();
    let o = g
        .strata
        .cmd()
        .args(["key", "export-recovery"])
        .output()
        .unwrap();
    let other = f.path("other.txt");
    fs::write(&other, &o.stdout).unwrap();
    let o = bare(&["--identity", other.to_str().unwrap(), "snapshots"]);
    assert_eq!(o.status.code(), Some(12));
    let e = support::one_line_error(&o, "another repository's recovery key");
    assert!(e.contains("does not open this repository"), "{e}");
}

// ---------------------------------------------------------------- recover, locally

/// A paths, a sqlite and a command source, with hooks that log.
fn three_sources(f: &Fixture) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let srv = f.mkdir("srv/app");
    write(&srv.join("keep.txt"), b"the original\n");
    write(&srv.join("sub/x.bin"), &support::random_bytes(7, 200_000));
    let db = f.path("data/app.db");
    fs::create_dir_all(db.parent().unwrap()).unwrap();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) INSERT INTO t SELECT i, 'row ' || i FROM n;").unwrap();
    drop(c);
    let notes = f.path("notes.txt");
    write(&notes, b"notes v1\n");
    let log = f.path("hooks.log");
    (srv, db, notes, log)
}

fn three_config(f: &Fixture, srv: &Path, db: &Path, notes: &Path, log: &Path) -> PathBuf {
    config(
        f,
        &format!(
            "[sources.files]\npaths = [{srv:?}]\nbefore_restore = \"echo before files >> {log}\"\n\
             after_restore = \"echo after files >> {log}\"\nhealth_check = \"test -f {srv}/keep.txt\"\n\
             [sources.db]\nsqlite = {db:?}\n\
             [sources.notes]\ncommand = \"cat {notes}\"\nname = \"notes.txt\"\n\
             restore_command = \"cat > {notes}.new && mv {notes}.new {notes}\"\n",
            srv = srv.display(),
            db = db.display(),
            notes = notes.display(),
            log = log.display(),
        ),
    )
}

fn rows(db: &Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*), sum(length(v)) FROM t", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// Plan, dry run, recover everything (byte for byte, hooks in order, a
/// safety snapshot per source), then undo one source with its
/// `pre-restore` snapshot.
#[test]
fn recover_restores_every_source_and_undoes() {
    let f = Fixture::new();
    let (srv, db, notes, log) = three_sources(&f);
    let cfg = three_config(&f, &srv, &db, &notes, &log);
    with_cfg(&f, &cfg, &["run"], 0);
    let files_before = support::contents(&srv);
    let rows_before = rows(&db);
    // the damage
    write(&srv.join("keep.txt"), b"overwritten by mistake\n");
    write(&srv.join("new.txt"), b"made after the backup\n");
    fs::remove_file(srv.join("sub/x.bin")).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM t WHERE id > 100", [])
        .unwrap();
    write(&notes, b"notes v2\n");
    let damaged = support::contents(&srv);

    let dry = recover(&f, &cfg, &["--all", "--dry-run"], 0);
    assert!(dry["summary"].is_null());
    let plan = &dry["plan"];
    assert_eq!(plan["sources"].as_array().unwrap().len(), 3, "{plan}");
    assert_eq!(plan["problems"].as_array().unwrap().len(), 0);
    let files = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "files")
        .unwrap();
    assert_eq!(files["targets"][0], srv.to_str().unwrap());
    assert!(files["age_seconds"].as_u64().unwrap() < 600);
    assert_eq!(support::contents(&srv), damaged, "a dry run writes nothing");
    // the plan first, in text
    let o = with_cfg(&f, &cfg, &["recover", "--all", "--dry-run"], 0);
    let (out, err) = text(&o);
    assert!(out.starts_with("recovery plan ("), "{out}");
    assert!(
        out.contains("restore: stream the stored file into `cat >"),
        "{out}"
    );
    assert!(err.contains("dry run: nothing was run"), "{err}");

    let r = recover(&f, &cfg, &["--all"], 0);
    let sum = &r["summary"];
    assert_eq!(sum["ok"], true, "{sum}");
    assert!(sum["duration_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(
        support::contents(&srv),
        files_before,
        "files byte for byte, new.txt removed"
    );
    assert_eq!(rows(&db), rows_before);
    assert_eq!(fs::read(&notes).unwrap(), b"notes v1\n");
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "before files\nafter files\n"
    );
    let order: Vec<String> = sum["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["source"].as_str().unwrap(),
                s["step"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            "db/safety",
            "db/restore",
            "files/before_restore",
            "files/safety",
            "files/restore",
            "files/after_restore",
            "files/health_check",
            "notes/safety",
            "notes/restore",
        ]
    );
    assert!(
        step(sum, "files", "restore")["detail"]
            .as_str()
            .unwrap()
            .contains("verified")
    );
    assert_eq!(tagged(&f, "pre-restore").len(), 3);

    // undo the files source: its pre-restore snapshot holds the damage
    let safety = step(sum, "files", "safety")["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let u = recover(
        &f,
        &cfg,
        &["files", "--snapshot", &safety[..10], "--no-safety-snapshot"],
        0,
    );
    assert_eq!(u["summary"]["ok"], true, "{u}");
    assert_eq!(support::contents(&srv), damaged);
}

/// A command source without restore_command is a problem of the plan:
/// exit 1 before anything runs.
#[test]
fn recover_runs_nothing_when_a_source_cannot_be_restored() {
    let f = Fixture::new();
    let (srv, db, notes, log) = three_sources(&f);
    let cfg = three_config(&f, &srv, &db, &notes, &log);
    let body = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        format!("{body}[sources.raw]\ncommand = \"echo raw\"\nname = \"raw.txt\"\n"),
    )
    .unwrap();
    with_cfg(&f, &cfg, &["run"], 0);
    let r = recover(&f, &cfg, &["--all"], 1);
    assert!(r["summary"].is_null());
    let problems = r["plan"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{r}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .starts_with("raw: a command source without restore_command")
    );
    assert!(!log.exists(), "before_restore did not run");
    assert!(tagged(&f, "pre-restore").is_empty());
    let o = with_cfg(&f, &cfg, &["recover", "--all"], 1);
    let (out, err) = text(&o);
    assert!(
        out.contains("PROBLEM: raw: a command source without restore_command"),
        "{out}"
    );
    assert!(err.contains("nothing was run"), "{err}");
    // the others alone recover; an unknown name is one line
    recover(&f, &cfg, &["files", "notes"], 0);
    let o = with_cfg(&f, &cfg, &["recover", "nope"], 1);
    assert!(support::one_line_error(&o, "unknown source").contains("no source named \"nope\""));
}

/// A failing step stops the recovery: the steps after it are listed as
/// not run, the exit code is 1 and the webhook gets the summary. A safety
/// dump that fails stops before anything is restored, unless
/// --no-safety-snapshot.
#[test]
fn recover_failures_stop_report_and_call_the_webhook() {
    let f = Fixture::new();
    let svc = f.path("svc.txt");
    write(&svc, b"service state\n");
    let other = f.mkdir("other");
    write(&other.join("o.txt"), b"o\n");
    let log = f.path("hooks.log");
    let cfg = config(
        &f,
        &format!(
            "[sources.svc]\ncommand = \"cat {svc}\"\nname = \"svc.txt\"\n\
             restore_command = \"cat > {svc}\"\nafter_restore = \"echo started >> {log}\"\n\
             health_check = \"sleep 5\"\nhealth_timeout = \"1s\"\n\
             [sources.zzz]\npaths = [{other:?}]\n",
            svc = svc.display(),
            log = log.display(),
        ),
    );
    with_cfg(&f, &cfg, &["run"], 0);
    let (port, hook) = support::http_receiver();
    let body = fs::read_to_string(&cfg).unwrap();
    let hooked = body.replacen(
        "[sources.svc]",
        &format!("webhook = \"http://127.0.0.1:{port}/hook\"\n[sources.svc]"),
        1,
    );
    fs::write(&cfg, hooked).unwrap();
    let t = Instant::now();
    let r = recover(&f, &cfg, &["--all"], 1);
    assert!(t.elapsed() < Duration::from_secs(30));
    let sum = &r["summary"];
    assert_eq!(sum["ok"], false);
    let h = step(sum, "svc", "health_check");
    assert_eq!(h["status"], "failed");
    assert!(
        h["detail"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1s"),
        "{h}"
    );
    assert_eq!(
        sum["not_run"],
        serde_json::json!(["zzz/safety", "zzz/restore"])
    );
    assert_eq!(fs::read_to_string(&log).unwrap(), "started\n");
    let (first, got) = hook.join().unwrap();
    assert_eq!(first, "POST /hook HTTP/1.1");
    let got: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(got["event"], "recover");
    assert_eq!(got["ok"], false);
    assert_eq!(got["not_run"], sum["not_run"]);

    // the live state cannot be dumped: nothing is restored
    fs::remove_file(&svc).unwrap();
    fs::write(&cfg, &body).unwrap();
    let r = recover(&f, &cfg, &["svc"], 1);
    let s = step(&r["summary"], "svc", "safety");
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .starts_with("the safety snapshot failed, nothing was restored"),
        "{s}"
    );
    assert_eq!(step(&r["summary"], "svc", "restore")["status"], "not_run");
    assert!(!svc.exists());
    let o = with_cfg(&f, &cfg, &["recover", "svc", "--no-safety-snapshot"], 1);
    assert!(
        text(&o).0.contains("health_check    FAILED"),
        "{}",
        text(&o).0
    );
    assert_eq!(fs::read(&svc).unwrap(), b"service state\n");
}

/// `run` stores its strata.toml (once per change, never forgotten), and
/// `recover --from` with no local policy uses it: it prints the policy and
/// every command, and runs none without --yes.
#[test]
fn run_stores_the_policy_and_recover_from_uses_it() {
    let f = Fixture::new();
    let (srv, db, notes, log) = three_sources(&f);
    let cfg = three_config(&f, &srv, &db, &notes, &log);
    let body = fs::read_to_string(&cfg).unwrap();
    fs::write(&cfg, format!("{body}[retention]\nkeep_last = 1\n")).unwrap();
    with_cfg(&f, &cfg, &["run"], 0);
    with_cfg(&f, &cfg, &["run"], 0);
    assert_eq!(
        tagged(&f, "strata-policy").len(),
        1,
        "unchanged: stored once"
    );
    fs::write(&cfg, format!("{body}[retention]\nkeep_last = 2\n")).unwrap();
    let o = with_cfg(&f, &cfg, &["run", "--json"], 0);
    let s = parse_json(&o.stdout);
    let p = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["step"] == "policy")
        .unwrap();
    assert!(p["detail"].as_str().unwrap().starts_with("stored "), "{p}");
    with_cfg(&f, &cfg, &["run"], 0);
    assert_eq!(
        tagged(&f, "strata-policy").len(),
        2,
        "never forgotten by run"
    );
    let stored = tagged(&f, "strata-policy");
    let id = stored.last().unwrap()["id"].as_str().unwrap();
    let cat = f
        .strata
        .cmd()
        .args(["cat", &format!("{id}:/strata.toml")])
        .output()
        .unwrap();
    assert_eq!(cat.stdout, fs::read(&cfg).unwrap());

    // a bare machine: no strata.toml, an empty HOME
    write(&srv.join("keep.txt"), b"damaged\n");
    let home = f.mkdir("home");
    let bare = f.mkdir("bare");
    let from = |args: &[&str], code: i32| -> Output {
        let o = cmd(&f)
            .current_dir(&bare)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .arg("recover")
            .arg("--from")
            .arg(f.strata.repo())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(code), "{:?}", text(&o));
        o
    };
    let (out, err) = text(&from(&["--all"], 1));
    assert!(out.contains("using the one stored in snapshot"), "{out}");
    assert!(out.contains("  | [sources.files]"), "{out}");
    assert!(
        out.contains(&format!("before:  echo before files >> {}", log.display())),
        "{out}"
    );
    assert!(
        err.contains("runs the 5 commands listed above; check them, then run again with --yes"),
        "{err}"
    );
    assert!(!log.exists(), "no command ran");
    assert_eq!(fs::read(srv.join("keep.txt")).unwrap(), b"damaged\n");
    let o = from(&["--all", "--yes"], 0);
    assert!(text(&o).0.contains("recovered in "), "{}", text(&o).0);
    assert_eq!(fs::read(srv.join("keep.txt")).unwrap(), b"the original\n");
}
