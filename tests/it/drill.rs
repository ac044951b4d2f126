//! Restore drills (issue 24): `strata drill` restores each source's
//! latest snapshot, verified, into a scratch place or its drill_command,
//! times it, records it beside the run state; the sources stay as they
//! were, byte for byte; the README drill recipes (PostgreSQL, redis,
//! SQLite) against the real servers; a failed or slow drill is sent to
//! the webhook and is a problem in `status` and Prometheus; `[cadence]
//! drill` makes it a step of `run`, and an old drill a problem.

use crate::alerts::Hook;
use crate::support::{self, Fixture};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `strata` with this fixture's cache, the test passphrase and its own
/// TMPDIR (so the scratch directories can be seen to go).
fn cmd(f: &Fixture) -> Command {
    let mut c = support::unlock_for(support::command(), f.strata.repo());
    fs::create_dir_all(f.path("tmp")).unwrap();
    c.env("STRATA_CACHE_DIR", f.path("cache"))
        .env("TMPDIR", f.path("tmp"))
        .env_remove("STRATA_CONFIG")
        .stdin(Stdio::null());
    c
}

fn policy(f: &Fixture, body: &str) -> PathBuf {
    let p = f.path("strata.toml");
    fs::write(
        &p,
        format!("repository = \"{}\"\n{body}", f.strata.repo().display()),
    )
    .unwrap();
    p
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `strata ARGS --config CFG` with `env`, expecting `code`.
fn strata(f: &Fixture, cfg: &Path, args: &[&str], env: &[(&str, &str)], code: i32) -> Output {
    let o = cmd(f)
        .args(args)
        .arg("--config")
        .arg(cfg)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(code), "strata {args:?}: {}", text(&o));
    o
}

fn json(o: &Output) -> Value {
    support::parse_json(&o.stdout)
}

fn source<'a>(sum: &'a Value, name: &str) -> &'a Value {
    sum["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {sum}"))
}

fn readme_recipe(heading: &str, swaps: &[(&str, String)]) -> String {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut r = support::fenced_block(&readme, heading, "toml");
    for (from, to) in swaps {
        assert!(r.contains(from), "{heading}: no {from:?} in {r}");
        r = r.replace(from, to);
    }
    r
}

/// Every file under `dir` and its bytes, with modes and mtimes: what a
/// drill must not change.
fn exact(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let bytes = if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.push((
                p,
                bytes,
                m.mode(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
            ));
        }
    }
    out.sort();
    out
}

/// Files, a SQLite database (WAL) and a command source drilled: each
/// restored (verified) and timed, the SQLite recipe's integrity check
/// run on the restored copy; the sources unchanged byte for byte (mode
/// and mtime too), the scratch directories gone, the results in status
/// and Prometheus.
#[test]
fn drill_restores_every_source_elsewhere_and_changes_nothing() {
    if !support::service_or_skip("STRATA_REQUIRE_TOOLS", support::on_path("sqlite3")) {
        return;
    }
    let f = Fixture::new();
    let srv = f.mkdir("srv");
    let mut rng = support::Rng::new(24);
    for i in 0..40 {
        let n = rng.range(0, 200_000) as usize;
        support::write_file(&srv.join(format!("d{}/f{i}.bin", i % 5)), &rng.bytes(n));
    }
    let app = f.mkdir("app");
    let db = app.join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT i, hex(randomblob(30)) FROM n;",
    )
    .unwrap();
    let sqlite = readme_recipe(
        "#### Drill recipe: SQLite",
        &[("/srv/app", app.display().to_string())],
    );
    let cfg = policy(
        &f,
        &format!(
            "[sources.files]\npaths = [{srv:?}]\n\n{sqlite}\n[sources.notes]\ncommand = \"echo note one\"\nname = \"notes.txt\"\n\n[status]\nrto = \"5m\"\n"
        ),
    );
    strata(&f, &cfg, &["run"], &[], 0);
    let before = (exact(&srv), exact(&app));
    // the live database stays open, as a service holds it
    let live: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();

    let o = strata(&f, &cfg, &["drill", "--json"], &[], 0);
    let sum = json(&o);
    assert_eq!(sum["ok"], true, "{sum}");
    assert_eq!(sum["event"], "drill");
    for name in ["files", "app-db", "notes"] {
        let s = source(&sum, name);
        assert_eq!(s["ok"], true, "{s}");
        assert!(s["seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert_eq!(s["rto_seconds"], 300.0, "{s}");
    }
    let files = source(&sum, "files")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        files.contains("restored 40 files") && files.contains("40 verified"),
        "{files}"
    );
    let dbd = source(&sum, "app-db")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        dbd.contains("read back and compared") && dbd.contains("drill_command passed"),
        "{dbd}"
    );

    assert_eq!(
        (exact(&srv), exact(&app)),
        before,
        "a drill changed a source"
    );
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, live);
    assert_eq!(
        fs::read_dir(f.path("tmp")).unwrap().count(),
        0,
        "the scratch directories are removed"
    );
    // no snapshot was taken (no safety snapshot: nothing live replaced)
    assert_eq!(f.strata.snapshots().len(), 4, "3 sources and the policy");

    // status: each source's last drill, healthy; Prometheus
    let prom = f.path("strata.prom");
    let o = strata(
        &f,
        &cfg,
        &["status", "--json", "--prometheus", prom.to_str().unwrap()],
        &[],
        0,
    );
    let st = json(&o);
    for s in st["sources"].as_array().unwrap() {
        assert_eq!(s["drill"]["ok"], true, "{s}");
        assert!(s["drill"]["problem"].is_null(), "{s}");
        assert!(s["drill"]["seconds"].as_f64().unwrap() > 0.0);
    }
    let p = fs::read_to_string(&prom).unwrap();
    for m in [
        "strata_source_drill_ok{source=\"files\"} 1",
        "strata_source_drill_seconds{source=\"app-db\"} ",
        "strata_source_drill_timestamp_seconds{source=\"notes\"} ",
        "strata_source_drill_rto_seconds{source=\"notes\"} 300",
    ] {
        assert!(p.contains(m), "{m} in {p}");
    }
    let o = strata(&f, &cfg, &["status"], &[], 0);
    assert!(text(&o).contains("  drill: last at "), "{}", text(&o));
}

/// A drill that fails (the integrity check of a database that is not
/// one) or is slower than its rto: exit 1, the webhook gets it (Slack
/// lines), status and Prometheus call it a problem until a good drill.
#[test]
fn a_failed_or_slow_drill_is_sent_and_unhealthy() {
    let f = Fixture::new();
    let hook = Hook::start(&[]);
    let body = |rto: &str, check: &str| {
        format!(
            "webhook = \"{}\"\nwebhook_format = \"slack\"\n[sources.dump]\ncommand = \"echo not a database\"\nname = \"dump.db\"\ndrill_command = \"{check}\"\nrto = \"{rto}\"\n",
            hook.url()
        )
    };
    let cfg = policy(&f, &body("1h", "grep -q database"));
    strata(&f, &cfg, &["run"], &[], 0);
    strata(&f, &cfg, &["drill"], &[], 0);
    assert!(hook.received().is_empty(), "a good drill is not sent");

    policy(&f, &body("1h", "grep -q sqlite"));
    let o = strata(&f, &cfg, &["drill", "--json"], &[], 1);
    let sum = json(&o);
    let s = source(&sum, "dump");
    assert_eq!(
        (s["ok"].clone(), s["restored"].clone()),
        (false.into(), false.into())
    );
    assert!(s["detail"].as_str().unwrap().contains("failed"), "{s}");
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let t = got[0]["text"].as_str().unwrap();
    assert!(t.starts_with("strata drill FAILED on "), "{t}");
    assert!(t.contains("dump: "), "{t}");
    let prom = f.path("p.prom");
    let o = strata(
        &f,
        &cfg,
        &["status", "--json", "--prometheus", prom.to_str().unwrap()],
        &[],
        5,
    );
    let st = json(&o);
    let problems = st["problems"].to_string();
    assert!(
        problems.contains("dump: the last drill failed"),
        "{problems}"
    );
    assert!(
        fs::read_to_string(&prom)
            .unwrap()
            .contains("strata_source_drill_ok{source=\"dump\"} 0")
    );

    // restored, but slower than the rto (a drill_command that sleeps)
    policy(&f, &body("1s", "sleep 1.5; grep -q database"));
    let o = strata(&f, &cfg, &["drill", "--json"], &[], 1);
    let s = source(&json(&o), "dump").clone();
    assert_eq!(
        (s["ok"].clone(), s["restored"].clone()),
        (false.into(), true.into())
    );
    assert!(
        s["detail"]
            .as_str()
            .unwrap()
            .contains("more than the rto of 1s"),
        "{s}"
    );
    assert_eq!(hook.received().len(), 2);
    let st = json(&strata(&f, &cfg, &["status", "--json"], &[], 5));
    assert!(
        st["problems"]
            .to_string()
            .contains("more than the rto of 1s"),
        "{st}"
    );

    // a good drill clears it
    policy(&f, &body("1h", "grep -q database"));
    strata(&f, &cfg, &["drill"], &[], 0);
    strata(&f, &cfg, &["status"], &[], 0);
}

/// A drill_command that hangs is killed at its `drill_timeout` with what
/// it started, and fails the drill: both one that stops reading the file
/// fed to it (the feeder would block forever) and one that hangs after
/// the restore (a paths source).
#[test]
fn a_hung_drill_command_is_killed_at_its_timeout() {
    let f = Fixture::new();
    let data = f.mkdir("data");
    fs::write(data.join("a.txt"), b"a").unwrap();
    let pidfile = f.path("child.pid");
    let cfg = policy(
        &f,
        &format!(
            "[sources.dump]\ncommand = \"head -c 8000000 /dev/urandom\"\nname = \"dump.bin\"\n\
             drill_command = \"sleep 600\"\ndrill_timeout = \"1s\"\n\
             [sources.files]\npaths = [\"{}\"]\n\
             drill_command = \"sh -c 'echo $$ > {}; exec sleep 600'\"\ndrill_timeout = \"1s\"\n",
            data.display(),
            pidfile.display()
        ),
    );
    strata(&f, &cfg, &["run"], &[], 0);
    let t = Instant::now();
    let o = strata(&f, &cfg, &["drill", "--json"], &[], 1);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "the drill took {:?}",
        t.elapsed()
    );
    let sum = json(&o);
    for name in ["dump", "files"] {
        let s = source(&sum, name);
        assert_eq!(s["ok"], false, "{s}");
        assert!(
            s["detail"]
                .as_str()
                .unwrap()
                .contains("did not finish within 1s"),
            "{s}"
        );
    }
    // the `sleep` its shell started is gone too
    assert!(
        support::process_gone(&pidfile),
        "the command's child outlived the timeout"
    );
}

/// `[cadence] drill`: `run` drills when due (step `drill`), not again
/// before the cadence has passed; a drill older than twice the cadence is
/// a problem in status and fails the run's step, until the next drill.
#[test]
fn drill_cadence_in_run_and_status() {
    let f = Fixture::new();
    let srv = f.mkdir("srv");
    fs::write(srv.join("a.txt"), b"a\n").unwrap();
    let cfg = policy(
        &f,
        &format!("[sources.files]\npaths = [{srv:?}]\n[cadence]\ndrill = \"7d\"\n"),
    );
    let t0 = 1_800_000_000i64;
    let at = |days: i64| t0 + days * 86_400;
    let now = |t: i64| ("STRATA_FAKE_NOW", t.to_string());
    let step = |sum: &Value| {
        sum["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "drill")
            .unwrap()
            .clone()
    };
    let run = |t: i64, code: i32| {
        let (k, v) = now(t);
        json(&strata(&f, &cfg, &["run", "--json"], &[(k, &v)], code))
    };
    let status = |t: i64, code: i32| {
        let (k, v) = now(t);
        json(&strata(&f, &cfg, &["status", "--json"], &[(k, &v)], code))
    };
    // never drilled yet: a problem once the cadence is set
    let st = status(at(0), 5);
    assert!(
        st["problems"].to_string().contains("files: never drilled"),
        "{st}"
    );
    let s = run(at(0), 0);
    let d = step(&s);
    assert_eq!(d["status"], "ok", "{d}");
    assert!(
        d["detail"].as_str().unwrap().contains("1 sources restored"),
        "{d}"
    );
    status(at(0), 0);
    assert_eq!(step(&run(at(3), 0))["status"], "skipped");
    // due again after 7 days
    assert_eq!(step(&run(at(7), 0))["status"], "ok");
    // 15 days without a run: older than twice the cadence
    let st = status(at(22), 5);
    assert!(
        st["problems"]
            .to_string()
            .contains("files: the last drill is"),
        "{st}"
    );
    assert_eq!(step(&run(at(22), 0))["status"], "ok");
    status(at(22), 0);
}

// ---------------------------------------------------------------- PostgreSQL and redis

fn pg_available() -> Result<(), String> {
    for p in ["pg_dump", "psql", "createdb", "dropdb"] {
        support::on_path(p)?;
    }
    support::psql("postgres", "SELECT 1").map(|_| ())
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

/// A live redis-server of the test, shut down at the end.
struct Redis(u16);

impl Redis {
    fn start(port: u16, dir: &Path) -> Redis {
        let st = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .status()
            .unwrap();
        assert!(st.success());
        let t = Instant::now();
        while redis_cli(port, &["ping"]) != "PONG" {
            assert!(t.elapsed() < Duration::from_secs(10), "redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Redis(port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = redis_cli(self.0, &["shutdown", "nosave"]);
    }
}

/// Every key and value of the redis at `port`, sorted.
fn redis_keys(port: u16) -> Vec<String> {
    let mut keys: Vec<String> = redis_cli(port, &["--scan"])
        .lines()
        .map(|k| format!("{k}={}", redis_cli(port, &["GET", k])))
        .collect();
    keys.sort();
    keys
}

/// The databases of the server (to see a drill leave none behind).
fn databases() -> Vec<String> {
    let mut v: Vec<String> = support::psql("postgres", "SELECT datname FROM pg_database")
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// The README's PostgreSQL and redis drill recipes against the real
/// servers: the dump loads into a temporary database that is dropped, a
/// spare redis-server loads the RDB; the live database (by checksum) and
/// the live redis (every key) are unchanged, no database is left behind;
/// a dump that does not load fails the drill.
#[test]
fn drill_recipes_postgresql_and_redis() {
    if !support::service_or_skip("STRATA_REQUIRE_PG_TESTS", pg_available())
        || !support::service_or_skip("STRATA_REQUIRE_REDIS_TESTS", redis_available())
    {
        return;
    }
    let f = Fixture::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let db = format!("strata_drilltest_{}_{nanos}", std::process::id());
    support::psql("postgres", &format!("CREATE DATABASE {db}")).unwrap();
    struct Drop_(String);
    impl Drop for Drop_ {
        fn drop(&mut self) {
            let _ = support::psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0),
            );
        }
    }
    let _cleanup = Drop_(db.clone());
    support::psql(
        &db,
        "CREATE TABLE events (id serial PRIMARY KEY, body text NOT NULL);
         INSERT INTO events (body) SELECT md5(g::text) FROM generate_series(1, 5000) g;",
    )
    .unwrap();
    let sums = || {
        support::psql(
            &db,
            "SELECT count(*) || ' ' || md5(string_agg(body, ',' ORDER BY id)) FROM events",
        )
        .unwrap()
    };
    let live_port = support::free_port();
    let rdir = f.mkdir("redis");
    let _live = Redis::start(live_port, &rdir);
    for i in 0..200 {
        redis_cli(live_port, &["SET", &format!("k{i}"), &format!("v{i}")]);
    }
    let spare = support::free_port();
    let pg = readme_recipe(
        "#### Drill recipe: PostgreSQL",
        &[("--no-owner app", format!("--no-owner {db}"))],
    );
    let redis = readme_recipe(
        "#### Drill recipe: redis",
        &[("6379", live_port.to_string()), ("6390", spare.to_string())],
    );
    let cfg = policy(&f, &format!("{pg}\n{redis}"));
    strata(&f, &cfg, &["run"], &[], 0);
    let (want_pg, want_redis, want_dbs) = (sums(), redis_keys(live_port), databases());
    assert_eq!(want_redis.len(), 200);

    let sum = json(&strata(&f, &cfg, &["drill", "--json"], &[], 0));
    let pgd = source(&sum, "postgres");
    assert_eq!(pgd["ok"], true, "{sum}");
    assert!(
        pgd["detail"].as_str().unwrap().contains("1 tables"),
        "{pgd}"
    );
    let rd = source(&sum, "redis");
    assert_eq!(rd["ok"], true, "{sum}");
    assert!(rd["detail"].as_str().unwrap().contains("200 keys"), "{rd}");
    assert_eq!(sums(), want_pg, "the live database is unchanged");
    assert_eq!(
        redis_keys(live_port),
        want_redis,
        "the live redis is unchanged"
    );
    assert_eq!(databases(), want_dbs, "no temporary database is left");
    assert_ne!(
        redis_cli(spare, &["ping"]),
        "PONG",
        "the spare redis is stopped"
    );

    // a dump that does not load fails the drill, and still drops its database
    let broken = pg.replace(
        &format!("pg_dump --clean --if-exists --no-owner {db}"),
        "echo 'CREATE TABLE x (;'",
    );
    let cfg = policy(&f, &broken);
    strata(&f, &cfg, &["run", "postgres"], &[], 0);
    let sum = json(&strata(&f, &cfg, &["drill", "--json"], &[], 1));
    assert_eq!(source(&sum, "postgres")["restored"], false, "{sum}");
    assert_eq!(databases(), want_dbs, "no temporary database is left");
    assert_eq!(sums(), want_pg);
}
