//! Recovery as one command (issue 22): `latest:PATH` and `--source`, the
//! recovery key, restore declarations in strata.toml, `strata recover`
//! (plan, safety snapshots, verified restore, hooks, failures and the
//! webhook, undo), the policy that `run` stores, and the README recipes
//! (PostgreSQL, redis, SQLite, a Qdrant-like HTTP API) against the real
//! servers; and a whole bare-machine recovery from moto S3 with an empty
//! HOME and cache.
//!
//! PostgreSQL, redis, moto, sqlite3 and curl are real: the tests skip
//! (`support::skip`) when they are not installed, unless their
//! `STRATA_REQUIRE_*` (set by `./test.sh`) makes that a failure.

use crate::support::{self, Fixture, parse_json};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
        e.contains("/nowhere/at/all: no such file or directory in any of the 2 snapshots searched"),
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

// ---------------------------------------------------------------- README recipes

fn readme() -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The recipe block under `heading`, with `swaps` applied (service names,
/// ports, directories).
fn recipe(heading: &str, swaps: &[(&str, String)]) -> String {
    let mut r = support::fenced_block(&readme(), heading, "toml");
    for (from, to) in swaps {
        assert!(r.contains(from), "{heading}: no {from:?} in {r}");
        r = r.replace(from, to);
    }
    r
}

fn pg_available() -> Result<(), String> {
    support::on_path("pg_dump")?;
    support::on_path("psql")?;
    support::psql("postgres", "SELECT 1").map(|_| ())
}

/// A database of this test, dropped at the end.
struct PgDb(String);

impl PgDb {
    fn new(what: &str) -> PgDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("strata_recover_{what}_{}_{nanos}", std::process::id());
        support::psql("postgres", &format!("CREATE DATABASE {name}")).unwrap();
        PgDb(name)
    }

    /// Tables `events` and `responses`, with a foreign key.
    fn fill(&self) {
        support::psql(
            &self.0,
            "CREATE TABLE events (id serial PRIMARY KEY, body jsonb NOT NULL, at timestamptz NOT NULL);
             CREATE TABLE responses (id bigint PRIMARY KEY, event int REFERENCES events(id), status text);
             INSERT INTO events (body, at) SELECT jsonb_build_object('n', g, 's', md5(g::text)), \
                 '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
             INSERT INTO responses SELECT g, g, CASE WHEN g % 7 = 0 THEN 'error' ELSE 'ok' END \
                 FROM generate_series(1, 2500) g;",
        )
        .unwrap();
    }

    /// Row count and checksum of each table.
    fn sums(&self) -> Vec<String> {
        ["events", "responses"]
            .iter()
            .map(|t| {
                support::psql(
                    &self.0,
                    &format!(
                        "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {t} t"
                    ),
                )
                .unwrap_or_else(|e| e)
            })
            .collect()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = support::psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
        );
    }
}

fn pg_recipe(db: &str) -> String {
    recipe(
        "#### Recipe: PostgreSQL",
        &[
            ("--no-owner app", format!("--no-owner {db}")),
            ("-d app", format!("-d {db}")),
        ],
    )
}

/// The PostgreSQL recipe: the damaged database (rows changed, a table
/// dropped) is whole again, by checksum; a failing restore command fails
/// the recovery instead of reporting success.
#[test]
fn recipe_postgresql() {
    if !support::service_or_skip("STRATA_REQUIRE_PG_TESTS", pg_available()) {
        return;
    }
    let f = Fixture::new();
    let db = PgDb::new("pg");
    db.fill();
    let want = db.sums();
    let cfg = config(&f, &pg_recipe(&db.0));
    with_cfg(&f, &cfg, &["run"], 0);
    support::psql(
        &db.0,
        "UPDATE events SET body = '{}' WHERE id < 100; DROP TABLE responses;",
    )
    .unwrap();
    assert_ne!(db.sums(), want);
    let r = recover(&f, &cfg, &["postgres"], 0);
    assert_eq!(r["summary"]["ok"], true, "{r}");
    assert_eq!(db.sums(), want);
    // the damaged state was saved first, and restores (the undo)
    let safety = step(&r["summary"], "postgres", "safety")["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let out = f
        .strata
        .cmd()
        .args(["cat", &format!("{safety}:/postgres.sql")])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.contains("CREATE TABLE public.events")
            && !dump.contains("CREATE TABLE public.responses")
    );

    // a restore that fails in the middle changes nothing and fails
    let broken = pg_recipe(&db.0).replace(
        "name = \"postgres.sql\"",
        "name = \"postgres.sql\"\nbefore_restore = \"true\"",
    );
    let cfg = config(
        &f,
        &broken.replace(
            "--single-transaction -d",
            "--single-transaction -c 'SELECT 1/0' -d",
        ),
    );
    let r = recover(&f, &cfg, &["postgres", "--no-safety-snapshot"], 1);
    let s = step(&r["summary"], "postgres", "restore");
    assert_eq!(s["status"], "failed", "{r}");
    assert!(
        s["detail"].as_str().unwrap().contains("division by zero"),
        "{s}"
    );
    assert_eq!(db.sums(), want);
}

fn redis_available() -> Result<(), String> {
    support::on_path("redis-server").and_then(|_| support::on_path("redis-cli"))
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// How the test starts redis-server (the recipe's `systemctl start`),
/// daemonized, its pid in `dir/redis.pid`.
fn redis_start_cmd(port: u16, dir: &Path) -> String {
    format!(
        "redis-server --bind 127.0.0.1 --port {port} --dir {d} --dbfilename dump.rdb --save '' \
         --appendonly no --daemonize yes --pidfile {d}/redis.pid --logfile {d}/redis.log",
        d = dir.display()
    )
}

/// A redis-server started by the test or by a recovery in `dir`: shut
/// down at the end.
struct Redis(u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.0.to_string(),
                "shutdown",
                "nosave",
            ])
            .output();
    }
}

fn start_redis(port: u16, dir: &Path) -> Redis {
    let st = Command::new("sh")
        .arg("-c")
        .arg(redis_start_cmd(port, dir))
        .status()
        .unwrap();
    assert!(st.success());
    let t = Instant::now();
    while redis_cli(port, &["ping"]) != "PONG" {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Redis(port)
}

fn redis_recipe(port: u16, dir: &Path) -> String {
    recipe(
        "#### Recipe: redis",
        &[
            (
                "systemctl stop redis-server",
                "redis-cli -p 6379 shutdown nosave".to_string(),
            ),
            ("systemctl start redis-server", redis_start_cmd(port, dir)),
            ("6379", port.to_string()),
            ("/var/lib/redis", dir.display().to_string()),
        ],
    )
}

/// Every key and its value (strings and lists), sorted.
fn redis_keys(port: u16) -> Vec<String> {
    let mut keys: Vec<String> = redis_cli(port, &["--scan"])
        .lines()
        .map(String::from)
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let v = match redis_cli(port, &["TYPE", &k]).as_str() {
                "list" => redis_cli(port, &["LRANGE", &k, "0", "-1"]),
                _ => redis_cli(port, &["GET", &k]),
            };
            format!("{k}={v}")
        })
        .collect()
}

/// The redis recipe: stop the server, place dump.rdb, start it.
#[test]
fn recipe_redis() {
    if !support::service_or_skip("STRATA_REQUIRE_REDIS_TESTS", redis_available()) {
        return;
    }
    let f = Fixture::new();
    let dir = f.mkdir("redis");
    let port = support::free_port();
    let _server = start_redis(port, &dir);
    for i in 0..300 {
        redis_cli(port, &["SET", &format!("key:{i}"), &format!("value {i}")]);
    }
    redis_cli(port, &["RPUSH", "list", "a", "b", "c"]);
    let want = redis_keys(port);
    let cfg = config(&f, &redis_recipe(port, &dir));
    with_cfg(&f, &cfg, &["run"], 0);
    redis_cli(port, &["FLUSHALL"]);
    redis_cli(port, &["SET", "junk", "1"]);
    let r = recover(&f, &cfg, &["redis"], 0);
    assert_eq!(r["summary"]["ok"], true, "{r}");
    assert_eq!(redis_keys(port), want);
    assert_eq!(want.len(), 301);
}

/// The SQLite recipe (service commands replaced by a log).
#[test]
fn recipe_sqlite() {
    if !support::service_or_skip("STRATA_REQUIRE_TOOLS", support::on_path("sqlite3")) {
        return;
    }
    let f = Fixture::new();
    let dir = f.mkdir("app");
    let db = dir.join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000) INSERT INTO t SELECT i, hex(randomblob(20)) FROM n;").unwrap();
    let want: String = c
        .query_row("SELECT group_concat(v) FROM t", [], |r| r.get(0))
        .unwrap();
    drop(c);
    let log = f.path("service.log");
    let cfg = config(
        &f,
        &recipe(
            "#### Recipe: SQLite",
            &[
                ("/srv/app", dir.display().to_string()),
                (
                    "systemctl stop app",
                    format!("echo stop >> {}", log.display()),
                ),
                (
                    "systemctl start app",
                    format!("echo start >> {}", log.display()),
                ),
            ],
        ),
    );
    with_cfg(&f, &cfg, &["run"], 0);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute("DELETE FROM t WHERE id % 2 = 0", []).unwrap();
    drop(c);
    let r = recover(&f, &cfg, &["app-db"], 0);
    assert_eq!(r["summary"]["ok"], true, "{r}");
    assert_eq!(fs::read_to_string(&log).unwrap(), "stop\nstart\n");
    let c = rusqlite::Connection::open(&db).unwrap();
    let got: String = c
        .query_row("SELECT group_concat(v) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(got, want);
}

/// A stand-in for Qdrant's snapshot API on 127.0.0.1: create a snapshot
/// (`POST …/snapshots`, its name in JSON), download it, upload one
/// (`POST …/snapshots/upload`, multipart, which replaces the collection),
/// and the collection's status. The collection is bytes.
struct QdrantStub {
    port: u16,
    collection: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl QdrantStub {
    fn start(initial: Vec<u8>) -> QdrantStub {
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let collection = std::sync::Arc::new(std::sync::Mutex::new(initial));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (collection.clone(), stop.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            while !s.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(300) {
                match l.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let _ = qdrant_answer(conn, &c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        QdrantStub {
            port,
            collection,
            stop,
        }
    }
}

impl Drop for QdrantStub {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Read a request (Content-Length or chunked body; `Expect:
/// 100-continue` answered) and answer it.
fn qdrant_answer(
    conn: std::net::TcpStream,
    collection: &std::sync::Mutex<Vec<u8>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    let mut first = String::new();
    r.read_line(&mut first)?;
    let (mut len, mut chunked, mut boundary) = (0usize, false, String::new());
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or((&h, ""));
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => len = v.parse().unwrap_or(0),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            "expect" => w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?,
            "content-type" => {
                boundary = v
                    .split("boundary=")
                    .nth(1)
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string()
            }
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut part = vec![0u8; n + 2];
            r.read_exact(&mut part)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&part[..n]);
        }
    } else {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("").to_string();
    let (status, reply): (&str, Vec<u8>) = if first.starts_with("POST")
        && path.contains("/snapshots/upload")
    {
        let at = body
            .windows(4)
            .position(|x| x == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        let end_mark = format!("\r\n--{boundary}--");
        let end = body
            .windows(end_mark.len())
            .rposition(|x| x == end_mark.as_bytes())
            .unwrap_or(body.len());
        *collection.lock().unwrap() = body[at..end].to_vec();
        (
            "200 OK",
            br#"{"result":true,"status":"ok","time":0.01}"#.to_vec(),
        )
    } else if first.starts_with("POST") && path.ends_with("/collections/docs/snapshots") {
        ("200 OK", br#"{"result":{"name":"docs-1.snapshot","creation_time":"2026-12-06T03:00:00","size":1},"status":"ok","time":0.01}"#.to_vec())
    } else if path == "/collections/docs/snapshots/docs-1.snapshot" {
        ("200 OK", collection.lock().unwrap().clone())
    } else if path == "/collections/docs" {
        (
            "200 OK",
            br#"{"result":{"status":"green","points_count":3},"status":"ok"}"#.to_vec(),
        )
    } else {
        ("404 Not Found", b"{}".to_vec())
    };
    write!(
        w,
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reply.len()
    )?;
    w.write_all(&reply)
}

/// The Qdrant recipe against the stub: the collection downloaded by the
/// source's command, and uploaded back by `restore_command`.
#[test]
fn recipe_qdrant_against_a_stub() {
    if !support::service_or_skip("STRATA_REQUIRE_TOOLS", support::on_path("curl")) {
        return;
    }
    let f = Fixture::new();
    let original = support::random_bytes(22, 700_000);
    let stub = QdrantStub::start(original.clone());
    let cfg = config(
        &f,
        &recipe(
            "#### Recipe: a vector database (Qdrant)",
            &[("localhost:6333", format!("127.0.0.1:{}", stub.port))],
        ),
    );
    with_cfg(&f, &cfg, &["run"], 0);
    let stored = f
        .strata
        .cmd()
        .args(["cat", "--source", "qdrant", "latest:/docs.snapshot"])
        .output()
        .unwrap();
    assert!(
        stored.stdout == original,
        "the snapshot file is stored as downloaded"
    );
    *stub.collection.lock().unwrap() = b"a collection gone wrong".to_vec();
    let r = recover(&f, &cfg, &["qdrant"], 0);
    assert_eq!(r["summary"]["ok"], true, "{r}");
    assert!(
        *stub.collection.lock().unwrap() == original,
        "uploaded back byte for byte"
    );
    // the safety step saved what was there
    let safety = step(&r["summary"], "qdrant", "safety")["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let saved = f
        .strata
        .cmd()
        .args(["cat", &format!("{safety}:/docs.snapshot")])
        .output()
        .unwrap();
    assert_eq!(saved.stdout, b"a collection gone wrong");
}

// ---------------------------------------------------------------- a bare machine

/// The whole disaster: the repository on S3 (moto), files, PostgreSQL and
/// redis lost; a new machine with the services installed (an empty
/// database created, an empty redis running), an empty HOME and cache, no
/// strata.toml, no passphrase: only the bucket's credentials and the
/// recovery key. `recover --all --from s3://…` prints the stored policy
/// and its commands, runs nothing without --yes, then restores all:
/// files byte for byte, tables by checksum, redis keys.
#[test]
fn bare_machine_recovery_from_s3() {
    if !support::service_or_skip("STRATA_REQUIRE_PG_TESTS", pg_available())
        || !support::service_or_skip("STRATA_REQUIRE_REDIS_TESTS", redis_available())
    {
        return;
    }
    let Some(moto) = support::S3::new("strata-bare") else {
        return;
    };
    let url = "s3://strata-bare/prod";
    let f = Fixture::uninit();
    let s3 = |c: &mut assert_cmd::Command| {
        c.envs(moto.env());
    };
    let mut init = cmd(&f);
    s3(&mut init);
    init.args(["--repo", url, "init"]).assert().success();

    let srv = f.mkdir("srv/bridge");
    let mut rng = support::Rng::new(22);
    for i in 0..60 {
        let n = rng.range(0, 300_000) as usize;
        write(&srv.join(format!("d{}/f{i}.bin", i % 7)), &rng.bytes(n));
    }
    let db = PgDb::new("bare");
    db.fill();
    let rdir = f.mkdir("redis");
    let port = support::free_port();
    let server = start_redis(port, &rdir);
    for i in 0..500 {
        redis_cli(
            port,
            &["SET", &format!("session:{i}"), &format!("user {i}")],
        );
    }
    let body = format!(
        "[sources.files]\npaths = [{srv:?}]\n{}\n{}",
        pg_recipe(&db.0),
        redis_recipe(port, &rdir)
    );
    let cfg = f.path("strata.toml");
    fs::write(&cfg, format!("repository = \"{url}\"\n{body}")).unwrap();
    let mut run = cmd(&f);
    s3(&mut run);
    run.args(["run", "--config"]).arg(&cfg).assert().success();
    let mut ex = cmd(&f);
    s3(&mut ex);
    let rk = ex
        .args(["--repo", url, "key", "export-recovery"])
        .output()
        .unwrap();
    let rk_file = f.path("recovery.txt");
    fs::write(&rk_file, &rk.stdout).unwrap();
    let (want_files, want_pg, want_redis) = (support::contents(&srv), db.sums(), redis_keys(port));
    assert_eq!(want_redis.len(), 500);

    // the disaster, and a new machine with the services installed
    fs::remove_dir_all(f.path("srv")).unwrap();
    fs::remove_file(&cfg).unwrap();
    support::psql("postgres", &format!("DROP DATABASE {} WITH (FORCE)", db.0)).unwrap();
    support::psql("postgres", &format!("CREATE DATABASE {}", db.0)).unwrap();
    drop(server);
    let _ = fs::remove_file(rdir.join("dump.rdb"));
    let _fresh = start_redis(port, &rdir);
    assert_eq!(redis_cli(port, &["DBSIZE"]), "0");

    let (home, bare) = (f.mkdir("new-home"), f.mkdir("new-cwd"));
    let recover_from = |yes: bool| -> Output {
        let mut c = Command::new(support::bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &home)
            .envs(moto.env())
            .current_dir(&bare)
            .arg("--identity")
            .arg(&rk_file)
            .args(["recover", "--all", "--from", url]);
        if yes {
            c.arg("--yes");
        }
        c.stdin(Stdio::null()).output().unwrap()
    };
    let o = recover_from(false);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains(&format!("  | repository = \"{url}\"")),
        "{out}"
    );
    assert!(
        err.contains("check them, then run again with --yes"),
        "{err}"
    );
    assert!(!srv.exists(), "nothing restored without --yes");
    let t = Instant::now();
    let o = recover_from(true);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("recovered in "), "{out}");
    eprintln!(
        "bare-machine recovery: {:.1}s\n{out}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(support::contents(&srv), want_files, "files byte for byte");
    assert_eq!(db.sums(), want_pg, "PostgreSQL tables by checksum");
    assert_eq!(redis_keys(port), want_redis, "redis keys");
    assert!(
        fs::read_dir(&home).unwrap().count() > 0,
        "the cache went to the new HOME"
    );
}
