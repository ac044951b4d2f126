//! The backup policy (issue 12): `strata.toml` validation and the README's
//! example, `strata run` with paths, command, sqlite, pg_dump and redis
//! sources, forget and gc from the policy, `status` (healthy, stale,
//! `--json`, `--prometheus`), the `pre-restore` safety snapshot,
//! `restore --to-command`, the webhook, and `schedule`.
//!
//! PostgreSQL and redis-server are real: the tests skip with a message
//! when they are not installed, unless `STRATA_REQUIRE_PG_TESTS=1` /
//! `STRATA_REQUIRE_REDIS_TESTS=1` (set by `.ci/run`) make that a failure.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Fixture, PASSPHRASE, parse_json, psql};

/// `strata` with this fixture's own cache directory and no `--repo`: the
/// repository comes from the config.
fn cmd(f: &Fixture) -> assert_cmd::Command {
    let mut c =
        assert_cmd::Command::from_std(support::unlock_for(support::command(), f.strata.repo()));
    c.env("STRATA_CACHE_DIR", f.path("cache"))
        .env_remove("STRATA_CONFIG")
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

/// `strata run --json --config CFG ARGS`, expecting `code`; its summary.
fn strata_run(f: &Fixture, cfg: &Path, args: &[&str], code: i32) -> Value {
    let out = cmd(f)
        .args(["run", "--json", "--config"])
        .arg(cfg)
        .args(args)
        .assert()
        .code(code)
        .get_output()
        .clone();
    parse_json(&out.stdout)
}

fn source<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == name)
        .unwrap_or_else(|| panic!("no source {name} in {summary}"))
}

/// A source's retention rules in `status --json`: (rule, kept, target).
fn retention_rules(source: &Value) -> Vec<(String, u64, String)> {
    source["retention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().into(),
                r["kept"].as_u64().unwrap(),
                r["target"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// Snapshot `dir` tagged `data`, dated `t`.
fn snapshot_data_at(f: &Fixture, dir: &Path, t: jiff::Timestamp) {
    f.strata.snapshot(&[
        dir.to_str().unwrap(),
        "--tag",
        "data",
        "--time",
        &t.to_string(),
    ]);
}

fn step<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {summary}"))
}

fn tagged(f: &Fixture, tag: &str) -> Vec<Value> {
    f.strata
        .snapshots()
        .into_iter()
        .filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag))
        .collect()
}

// ---------------------------------------------------------------- config

#[test]
fn config_errors_name_the_key_and_the_line() {
    let f = Fixture::uninit();
    let cases = [
        (
            "[retention]\nkeep_daily = 30\nkeep_daly = 3\n",
            "strata.toml:4: retention.keep_daly: ",
            "unknown field",
        ),
        (
            "[sources.db]\ncommand = \"pg_dump app\"\nname = \"db.sql\"\nevery = 5\n",
            "strata.toml:5: sources.db.every: ",
            "invalid type",
        ),
        (
            "[sources.db]\ncommand = \"pg_dump app\"\n",
            "strata.toml:3: sources.db.command: ",
            "needs `name`",
        ),
        (
            "passphrase = \"hunter2\"\n",
            "strata.toml:2: passphrase: ",
            "unknown field",
        ),
        (
            "[retention]\nkeep_monthly = -1\n",
            "strata.toml:3: retention.keep_monthly: ",
            "negative",
        ),
    ];
    for (body, want, what) in cases {
        let cfg = config(&f, body);
        let o = cmd(&f)
            .args(["run", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let line = support::one_line_error(&o, body);
        assert!(line.contains(want), "{body:?}: {line}");
        assert!(line.contains(what), "{body:?}: {line}");
        assert_eq!(o.status.code(), Some(1), "{line}");
    }
    // found through STRATA_CONFIG too
    let cfg = config(&f, "bogus = 1\n");
    let o = cmd(&f)
        .env("STRATA_CONFIG", &cfg)
        .arg("status")
        .output()
        .unwrap();
    assert!(support::one_line_error(&o, "STRATA_CONFIG").contains("strata.toml:2: bogus: "));
}

#[test]
fn readme_example_loads() {
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let text = support::fenced_block(&readme, "## Backup policy: `strata.toml`", "toml");
    let c = strata::policy::config::parse(&text, Path::new("/etc/strata/strata.toml"))
        .unwrap_or_else(|e| panic!("the README's strata.toml does not load: {e}"));
    let names: Vec<&str> = c.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["app-db", "config", "data", "postgres", "redis"]);
    use strata::policy::SourceKind;
    assert!(matches!(&c.source("postgres").unwrap().kind,
        SourceKind::Command { command, file } if command == "pg_dump --clean --if-exists --no-owner app" && file == "postgres.sql"));
    assert!(matches!(&c.source("redis").unwrap().kind,
        SourceKind::Command { command, .. } if command == "redis-cli --rdb -"));
    assert!(matches!(&c.source("app-db").unwrap().kind,
        SourceKind::Sqlite { file, .. } if file == "app.db"));
    let SourceKind::Paths { exclude, paths, .. } = &c.source("data").unwrap().kind else {
        panic!("data is a paths source")
    };
    assert_eq!(exclude, &["*.tmp", "*.log", "cache"]);
    assert_eq!(paths.len(), 3);
    assert_eq!(
        c.source("data").unwrap().every,
        Some(Duration::from_secs(300))
    );
    use strata::snapshot::retention::{Count, parse_span};
    assert_eq!(c.retention.within, Some(parse_span("24h").unwrap()));
    assert_eq!(
        (c.retention.daily, c.retention.weekly, c.retention.monthly),
        (Count::N(30), Count::N(12), Count::N(12))
    );
    assert!(c.offsite.as_deref().unwrap().starts_with("s3://"));
    assert!(c.webhook.is_some() && c.password_command.is_some() && c.verification.is_some());
    // every key of the example is in the README's key table
    for line in text.lines() {
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        assert!(
            readme.contains(&format!("`{}`", key.trim())),
            "README does not document `{key}`"
        );
    }
}

// ---------------------------------------------------------------- run

/// A directory set like the users' events/responses/status, with files
/// that the excludes drop.
fn data_dirs(f: &Fixture) -> PathBuf {
    let root = f.mkdir("srv");
    for d in ["events", "responses", "status"] {
        let dir = f.mkdir(format!("srv/{d}"));
        fs::write(dir.join("a.json"), format!("{{\"{d}\": 1}}")).unwrap();
        fs::write(dir.join("b.tmp"), "temp").unwrap();
        fs::write(dir.join("c.log"), "log").unwrap();
        fs::create_dir_all(dir.join("cache")).unwrap();
        fs::write(dir.join("cache/x"), "cached").unwrap();
    }
    root
}

#[test]
fn run_takes_due_sources_forgets_and_collects() {
    let f = Fixture::new();
    let srv = data_dirs(&f);
    let cfg = config(
        &f,
        &format!(
            "[sources.data]\npaths = [\"{0}/events\", \"{0}/responses\", \"{0}/status\"]\n\
             exclude = [\"*.tmp\", \"*.log\", \"cache\"]\nevery = \"1h\"\n\n\
             [sources.notes]\ncommand = \"echo hello; date +%N\"\nname = \"notes.txt\"\n\n\
             [sources.broken]\ncommand = \"echo partial; exit 3\"\nname = \"broken.txt\"\n\n\
             [retention]\nkeep_last = 2\n\n[gc]\nmin_forgotten = 1\ngrace = \"0s\"\n\n\
             [cadence]\ngc = \"0s\"\n",
            srv.display()
        ),
    );
    // A failing source does not stop the others; the exit code says so.
    let s = strata_run(&f, &cfg, &[], 4);
    assert_eq!(source(&s, "data")["status"], "ok", "{s}");
    assert_eq!(source(&s, "notes")["status"], "ok", "{s}");
    assert_eq!(source(&s, "broken")["status"], "failed", "{s}");
    assert!(
        source(&s, "broken")["detail"]
            .as_str()
            .unwrap()
            .contains("exit"),
        "{s}"
    );
    assert_eq!(s["ok"], false);
    assert_eq!(source(&s, "data")["files"], 3, "excludes applied: {s}");
    let data = tagged(&f, "data");
    assert_eq!(data.len(), 1);
    let listing = f
        .strata
        .cmd()
        .args(["ls", "-r", data[0]["id"].as_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let listing = String::from_utf8(listing).unwrap();
    assert!(
        listing.contains("events/a.json")
            && !listing.contains(".tmp")
            && !listing.contains("cache"),
        "{listing}"
    );
    assert!(
        !tagged(&f, "broken").iter().any(|_| true),
        "no snapshot of a failed command"
    );
    // the log file in the cache dir has a line per step
    let logs: Vec<PathBuf> = glob_files(&f.path("cache"), "run.log");
    assert_eq!(logs.len(), 1);
    let log = fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains(" snapshot data ok bytes="), "{log}");
    assert!(log.contains(" snapshot broken FAILED"), "{log}");
    assert!(log.contains(" forget - ok"), "{log}");

    // Second run: `data` is not due (every 1h), `notes` is (no `every`).
    let s = strata_run(&f, &cfg, &["data", "notes"], 0);
    assert_eq!(source(&s, "broken")["status"], "skipped");
    let s = strata_run(&f, &cfg, &[], 4);
    assert_eq!(source(&s, "data")["status"], "skipped", "{s}");
    assert_eq!(source(&s, "data")["detail"], "not due");
    assert_eq!(source(&s, "notes")["status"], "ok");
    // keep_last = 2 per source: notes had 3 snapshots, one was forgotten,
    // and gc (min_forgotten 1, grace 0) ran.
    assert_eq!(tagged(&f, "notes").len(), 2);
    assert_eq!(tagged(&f, "data").len(), 2);
    assert_eq!(step(&s, "forget")["status"], "ok", "{s}");
    assert_eq!(step(&s, "gc")["status"], "ok", "{s}");
    assert_eq!(step(&s, "sync")["status"], "skipped");
    // An unknown source is an error naming it.
    let o = cmd(&f)
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("nope")
        .output()
        .unwrap();
    assert!(support::one_line_error(&o, "unknown source").contains("no source named \"nope\""));
}

fn glob_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn run_unlocks_with_the_config_and_reports_hooks() {
    let f = Fixture::new();
    let pass = f.path("pass");
    fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let offsite = f.path("offsite");
    let cfg = config(
        &f,
        &format!(
            "password_command = \"cat {}\"\noffsite = \"{}\"\n\
             [sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n[verification]\nread_data_subset = \"5%\"\n",
            pass.display(),
            offsite.display()
        ),
    );
    let out = cmd(&f)
        .env_remove("STRATA_PASSWORD")
        .args(["run", "--json", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .get_output()
        .clone();
    let s = parse_json(&out.stdout);
    assert_eq!(source(&s, "n")["status"], "ok");
    // the offsite mirror holds the snapshot, and it reads back there
    assert_eq!(step(&s, "sync")["status"], "ok", "{s}");
    let listed = support::ok(&offsite, &[], &["snapshots", "--json"]);
    let id = source(&s, "n")["snapshot"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!id.is_empty() && listed.contains(&id), "{s}\n{listed}");
    // check: 5% of the packs (at least one), those never verified first
    let check = step(&s, "check");
    assert_eq!(check["status"], "ok", "{s}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .starts_with("no errors; read 1 of "),
        "{s}"
    );
    assert_eq!(step(&s, "forget")["status"], "skipped");
    // status reads what the check recorded
    let out = cmd(&f)
        .env_remove("STRATA_PASSWORD")
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let v = parse_json(&out.stdout);
    assert_eq!(v["check"]["last"]["errors"], 0, "{v}");
    assert_eq!(v["check"]["coverage"]["verified"], 1, "{v}");
}

/// Every command without `--repo` takes the repository and the unlocking
/// keys from the strata.toml it finds (STRATA_CONFIG, ./strata.toml), as
/// `run` does; an invalid one is an error, none at all says what to give.
#[test]
fn commands_take_the_repository_and_keys_from_strata_toml() {
    let f = Fixture::new();
    let home = f.mkdir("home");
    let dir = f.mkdir("policy");
    fs::write(dir.join("pass"), "from the file\n").unwrap();
    fs::write(
        dir.join("strata.toml"),
        "repository = \"repo\"\npassword_file = \"pass\"\n",
    )
    .unwrap();
    let data = f.mkdir("data");
    fs::write(data.join("a.txt"), "alpha").unwrap();
    let bare = || {
        let mut c = cmd(&f);
        c.env_remove("STRATA_PASSWORD")
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME");
        c
    };
    // ./strata.toml: init and snapshot there, with the passphrase of its file
    bare().current_dir(&dir).arg("init").assert().success();
    assert!(dir.join("repo/config").is_file());
    bare()
        .current_dir(&dir)
        .arg("snapshot")
        .arg(&data)
        .assert()
        .success();
    // STRATA_CONFIG from elsewhere
    let out = bare()
        .current_dir(&home)
        .env("STRATA_CONFIG", dir.join("strata.toml"))
        .args(["cat", &format!("latest:{}/a.txt", data.display())])
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(out.stdout, b"alpha");
    // the file's passphrase is the repository's: another one fails
    bare()
        .current_dir(&home)
        .env("STRATA_CONFIG", dir.join("strata.toml"))
        .env("STRATA_PASSWORD", "wrong")
        .args(["snapshots"])
        .assert()
        .failure();
    // an invalid config found is an error naming its line
    let bad = f.path("bad.toml");
    fs::write(&bad, "repository = \"repo\"\nreposit = 1\n").unwrap();
    let out = bare()
        .current_dir(&home)
        .env("STRATA_CONFIG", &bad)
        .arg("snapshots")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.toml:2: reposit"),
        "{err}"
    );
    // no config and no --repo
    let out = bare().current_dir(&home).arg("snapshots").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no repository given"),
        "{err}"
    );
}

// ---------------------------------------------------------------- webhook

#[test]
fn webhook_gets_the_summary_and_a_down_one_is_a_warning() {
    let f = Fixture::new();
    let (port, h) = support::http_receiver();
    let body = "[sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n";
    // every run (the default sends failures and recoveries only)
    let cfg = config(
        &f,
        &format!("webhook = \"http://127.0.0.1:{port}/hook\"\nwebhook_on = \"always\"\n{body}"),
    );
    let s = strata_run(&f, &cfg, &[], 0);
    let (first, got) = h.join().unwrap();
    assert_eq!(first, "POST /hook HTTP/1.1");
    let got: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(got["version"], 1);
    assert_eq!(got["ok"], true);
    assert_eq!(source(&got, "n")["snapshot"], source(&s, "n")["snapshot"]);

    let down = support::free_port();
    let cfg = config(
        &f,
        &format!("webhook = \"http://127.0.0.1:{down}/hook\"\nwebhook_on = \"always\"\n{body}"),
    );
    // a warning, and warnings exit 3 (README "Exit codes")
    let out = cmd(&f)
        .args(["run", "--config"])
        .arg(&cfg)
        .assert()
        .code(3)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strata: warning: webhook http://127.0.0.1:"),
        "{err}"
    );
}

// ---------------------------------------------------------------- status

#[test]
fn status_healthy_stale_json_and_prometheus() {
    let f = Fixture::new();
    let dir = f.mkdir("old");
    fs::write(dir.join("f"), "x").unwrap();
    let cfg = config(
        &f,
        &format!(
            "[sources.fresh]\ncommand = \"echo fresh\"\nname = \"fresh.txt\"\n\
             [sources.old]\npaths = [\"{}\"]\n[retention]\nkeep_daily = 30\nkeep_within = \"24h\"\n\
             [status]\nmax_age = \"1d\"\n",
            dir.display()
        ),
    );
    // `old` has one snapshot, 3 days old, tagged with its name.
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(72);
    f.strata.snapshot(&[
        dir.to_str().unwrap(),
        "--tag",
        "old",
        "--time",
        &t.to_string(),
    ]);
    strata_run(&f, &cfg, &["fresh"], 0);
    let prom = f.path("metrics/strata.prom");
    fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let out = cmd(&f)
        .args(["status", "--json", "--config"])
        .arg(&cfg)
        .arg("--prometheus")
        .arg(&prom)
        .assert()
        .code(5)
        .get_output()
        .clone();
    let v = parse_json(&out.stdout);
    assert_eq!(v["version"], 1);
    assert_eq!(v["healthy"], false);
    assert_eq!(v["max_age_seconds"], 86400);
    let old = source(&v, "old");
    assert_eq!(old["stale"], true);
    assert_eq!(old["snapshots"], 1);
    assert!(old["latest"]["age_seconds"].as_u64().unwrap() >= 72 * 3600 - 60);
    let fresh = source(&v, "fresh");
    assert_eq!(fresh["stale"], false);
    assert!(fresh["logical_bytes"].as_u64().unwrap() > 0);
    assert!(fresh["stored_bytes"].as_u64().is_some());
    assert!(fresh["last_run"]["success"].is_string());
    assert_eq!(
        retention_rules(fresh),
        [
            ("within".into(), 1, "24h".into()),
            ("daily".into(), 1, "30".into())
        ]
    );
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("old: latest snapshot is "),
        "{v}"
    );
    assert_eq!(v["check"]["available"], true);
    let text = fs::read_to_string(&prom).unwrap();
    assert!(text.contains("strata_healthy 0\n"), "{text}");
    assert!(
        text.contains("strata_source_stale{source=\"old\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("strata_source_retention_kept{source=\"fresh\",rule=\"daily\"} 1\n"),
        "{text}"
    );
    assert!(!glob_files(&f.path("metrics"), "strata.prom").is_empty());
    assert_eq!(
        fs::read_dir(f.path("metrics")).unwrap().count(),
        1,
        "no temp file left"
    );

    // with a longer max age it is healthy; the text form says so
    let out = cmd(&f)
        .args(["status", "--max-age", "7d", "--config"])
        .arg(&cfg)
        .assert()
        .code(0)
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("retention: within 24h: 1, daily 1/30"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("healthy"), "{text}");
}

/// The sizes of a source in `status` for these snapshots ids, and what
/// `stats` (a walk of every tree) says of the same snapshots.
fn status_and_stats_sizes(f: &Fixture, cfg: &Path, ids: &[String]) -> (Value, Value) {
    let out = cmd(f)
        .args(["status", "--json", "--config"])
        .arg(cfg)
        .assert()
        .get_output()
        .clone();
    let v = parse_json(&out.stdout);
    let s = source(&v, "data");
    assert_eq!(s["snapshots"].as_u64().unwrap() as usize, ids.len(), "{v}");
    assert_eq!(s["warnings"], serde_json::json!([]), "{v}");
    let status = serde_json::json!([
        s["logical_bytes"],
        s["raw_bytes"],
        s["stored_bytes"],
        s["dedup_ratio"]
    ]);
    let mut c = cmd(f);
    c.arg("--repo")
        .arg(f.strata.repo())
        .args(["stats", "--json"])
        .args(ids);
    let st = parse_json(&c.assert().success().get_output().stdout);
    let stats = serde_json::json!([
        st["restore_size"],
        st["raw_size"],
        st["stored_size"],
        st["dedup_ratio"]
    ]);
    (status, stats)
}

/// Issue 27: `status` reads each source's sizes from this machine's
/// status rows instead of walking every snapshot's tree on every call. The
/// figures must stay those of a walk (`stats` of the same snapshots) when
/// the cache is cold, warm, when a snapshot was added since (made with
/// another cache: only its new trees are walked, its pack indexed from
/// its fan-out directory without reconciling every pack), when
/// one was forgotten (its references taken away), and when the cache files are damaged
/// or deleted (rebuilt).
#[test]
fn status_sizes_from_the_cache_match_a_walk_as_snapshots_come_and_go() {
    let f = Fixture::new();
    let dir = f.mkdir("data");
    fs::write(
        dir.join("shared"),
        "the same in every snapshot\n".repeat(500),
    )
    .unwrap();
    let cfg = config(
        &f,
        &format!("[sources.data]\npaths = [\"{}\"]\n", dir.display()),
    );
    let snap = |n: usize| {
        fs::write(
            dir.join("changing"),
            format!("version {n}\n").repeat(300 + n),
        )
        .unwrap();
        fs::write(dir.join(format!("new{n}")), vec![n as u8; 5000 + n]).unwrap();
        f.strata.snapshot(&[dir.to_str().unwrap(), "--tag", "data"]);
    };
    let ids = |f: &Fixture| -> Vec<String> {
        tagged(f, "data")
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let check = |what: &str| {
        let (status, stats) = status_and_stats_sizes(&f, &cfg, &ids(&f));
        assert_eq!(status, stats, "{what}");
        assert!(status[0].as_u64().unwrap() > 0, "{what}: {status}");
    };
    snap(0);
    snap(1);
    check("cold cache");
    check("warm cache");
    let repo_id = fs::read_dir(f.path("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("status").is_dir())
        .expect("a status cache");
    let status_dir = repo_id.join("status");
    // the status rows (SQLite, its WAL checkpointed and removed on close)
    // and the flat report
    let mut names: Vec<String> = fs::read_dir(&status_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["report1", "rows4.sqlite"]);
    // A pack row in the status cache's index whose file does not exist:
    // a full reconcile with the packs would flag it missing. The packs of
    // the next snapshots (made with the test cache) must be indexed from
    // their fan-out directories alone (`Index::add_new_packs`).
    let index = fs::read_dir(repo_id.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path().join("index.sqlite"))
        .find(|p| p.is_file())
        .expect("the status cache's index");
    let planted = [0xabu8; 32];
    let missing = || -> i64 {
        let c = rusqlite::Connection::open(&index).unwrap();
        c.query_row(
            "SELECT missing FROM packs WHERE name = ?1",
            [&planted[..]],
            |r| r.get(0),
        )
        .unwrap()
    };
    rusqlite::Connection::open(&index)
        .unwrap()
        .execute(
            "INSERT INTO packs(name, kind, size, blob_count) VALUES (?1, 0, 1000, 0)",
            [&planted[..]],
        )
        .unwrap();
    assert_eq!(missing(), 0);
    snap(2);
    snap(3);
    // status alone (`stats`, below, reconciles the same index)
    status_at(&f, &cfg, &f.path("cache"));
    assert_eq!(missing(), 0, "status reconciled every pack");
    check("two snapshots added since");
    let oldest = ids(&f)[0].clone();
    forget(&f, &oldest);
    check("the oldest forgotten");
    // the report fails its checksum; the database is no longer one
    let report = status_dir.join("report1");
    let mut b = fs::read(&report).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    fs::write(&report, b).unwrap();
    let rows = status_dir.join("rows4.sqlite");
    let mut b = fs::read(&rows).unwrap();
    b[..16].copy_from_slice(b"not a database!\0");
    fs::write(&rows, b).unwrap();
    snap(4);
    check("damaged cache files");
    check("rebuilt cache files");
    fs::remove_dir_all(&status_dir).unwrap();
    let _ = fs::remove_file(repo_id.join("manifests2"));
    check("cache deleted");
}

/// The pack files of the repository.
fn pack_files(f: &Fixture) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    for d in fs::read_dir(f.strata.repo().join("packs")).unwrap() {
        for p in fs::read_dir(d.unwrap().path()).unwrap() {
            out.insert(p.unwrap().path());
        }
    }
    out
}

/// Issue 27: a forget costs status only the trees of the snapshots gone
/// (their blobs' references are taken away, format-spec/repository.md
/// "Status rows (local)"), not a count of every snapshot left. The packs
/// of a snapshot that stays are made unreadable (and the status cache's
/// trees removed) after status counted it: status after forgetting another
/// must still give the sizes of a walk taken before, with no warning;
/// counting the snapshots left again would read the damaged packs. When
/// the counts disagree with the trees, status counts the source again.
#[test]
fn status_after_a_forget_reads_only_the_trees_of_the_snapshots_gone() {
    let f = Fixture::new();
    let dir = f.mkdir("data");
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(
        dir.join("sub/deeper/shared"),
        "in every snapshot\n".repeat(900),
    )
    .unwrap();
    let cfg = config(
        &f,
        &format!("[sources.data]\npaths = [\"{}\"]\n", dir.display()),
    );
    // the same tree under two directories, the same content twice in one
    fs::create_dir_all(dir.join("dup/deeper")).unwrap();
    fs::write(
        dir.join("dup/deeper/shared"),
        "in every snapshot\n".repeat(900),
    )
    .unwrap();
    let mut written = Vec::new();
    for n in 0..5usize {
        let before = pack_files(&f);
        // the last snapshot is the one before again: the same root tree
        if n < 4 {
            fs::write(dir.join("sub/changing"), format!("v{n}\n").repeat(700 + n)).unwrap();
            for name in [format!("only{n}"), format!("copy{n}")] {
                fs::write(dir.join(name), vec![n as u8 + 1; 3000 + n]).unwrap();
            }
        }
        f.strata.snapshot(&[dir.to_str().unwrap(), "--tag", "data"]);
        written.push(
            pack_files(&f)
                .difference(&before)
                .cloned()
                .collect::<Vec<_>>(),
        );
    }
    // The root tree holds the directories above the source with their
    // metadata (objects.md, layout 1), /tmp among them: a test creating
    // its directory there between the last two snapshots changes it.
    // Then the last two are forgotten and taken again.
    let mut snaps = tagged(&f, "data");
    for _ in 0..20 {
        if snaps[3]["tree"] == snaps[4]["tree"] {
            break;
        }
        for s in &snaps[3..] {
            forget(&f, s["id"].as_str().unwrap());
        }
        for _ in 0..2 {
            f.strata.snapshot(&[dir.to_str().unwrap(), "--tag", "data"]);
        }
        snaps = tagged(&f, "data");
    }
    let ids: Vec<String> = snaps
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
    assert_eq!(snaps[3]["tree"], snaps[4]["tree"]);
    assert_ne!(snaps[2]["tree"], snaps[3]["tree"]);
    let cache = f.path("status-cache");
    let sizes = |v: &Value| {
        let s = source(v, "data");
        assert_eq!(s["warnings"], serde_json::json!([]), "{v}");
        serde_json::json!([
            s["logical_bytes"],
            s["raw_bytes"],
            s["stored_bytes"],
            s["dedup_ratio"]
        ])
    };
    let walk = |of: &[String]| {
        let mut c = cmd(&f);
        c.arg("--repo")
            .arg(f.strata.repo())
            .args(["stats", "--json"])
            .args(of);
        let st = parse_json(&c.assert().success().get_output().stdout);
        serde_json::json!([
            st["restore_size"],
            st["raw_size"],
            st["stored_size"],
            st["dedup_ratio"]
        ])
    };
    let (all, first_four) = (walk(&ids), walk(&ids[..4]));
    let (first_three, middle_two) = (walk(&ids[..3]), walk(&ids[1..3]));
    assert_ne!(all, first_four);
    assert_ne!(first_four, first_three);
    assert_ne!(
        first_three, middle_two,
        "the first snapshot has blobs of its own"
    );
    assert_eq!(sizes(&status_at(&f, &cfg, &cache)), all);
    // one of two snapshots of the same tree: only its reference goes
    forget(&f, &ids[4]);
    assert_eq!(
        sizes(&status_at(&f, &cfg, &cache)),
        first_four,
        "a root still referenced"
    );
    // the counts disagree with the trees (no row counted as a tree): the
    // last snapshot's root cannot be taken away; the source is counted
    // again
    let rows = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path().join("status/rows4.sqlite"))
        .find(|p| p.is_file())
        .expect("the status rows");
    let changed = rusqlite::Connection::open(&rows)
        .unwrap()
        .execute("UPDATE refs SET t = 0", [])
        .unwrap();
    assert!(changed > 0);
    forget(&f, &ids[3]);
    assert_eq!(
        sizes(&status_at(&f, &cfg, &cache)),
        first_three,
        "counted again"
    );
    // the packs the second snapshot wrote (its trees among them), damaged
    // in place (the fan-out directories unchanged), and no tree in the
    // status cache
    assert!(!written[1].is_empty());
    for p in &written[1] {
        let mut b = fs::read(p).unwrap();
        for x in b.iter_mut().skip(64) {
            *x ^= 0x5a;
        }
        fs::write(p, b).unwrap();
    }
    let trees = rows.parent().unwrap().parent().unwrap().join("trees2");
    assert!(trees.is_dir());
    fs::remove_dir_all(&trees).unwrap();
    forget(&f, &ids[0]);
    assert_eq!(
        sizes(&status_at(&f, &cfg, &cache)),
        middle_two,
        "after the forget"
    );
}

/// `strata forget ID` (with the fixture's cache), which must succeed.
fn forget(f: &Fixture, id: &str) {
    cmd(f)
        .arg("--repo")
        .arg(f.strata.repo())
        .args(["forget", id])
        .assert()
        .success();
}

/// What each retention rule keeps of source `data`, by status (rule name
/// -> kept) and by `forget --dry-run` with the same policy (its reasons
/// counted per rule, once per snapshot).
fn kept_by_status_and_forget(
    f: &Fixture,
    cfg: &Path,
    cache: &Path,
    flags: &[&str],
) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let v = status_at(f, cfg, cache);
    let by_status: BTreeMap<String, u64> = retention_rules(source(&v, "data"))
        .into_iter()
        .map(|(rule, kept, _)| (rule, kept))
        .collect();
    let out = cmd(f)
        .arg("--repo")
        .arg(f.strata.repo())
        .args(["forget", "--dry-run", "--json", "--tag", "data"])
        .args(flags)
        .assert()
        .success()
        .get_output()
        .clone();
    let plan = parse_json(&out.stdout);
    let mut by_forget: BTreeMap<String, u64> = by_status.keys().map(|k| (k.clone(), 0)).collect();
    for g in plan["groups"].as_array().unwrap() {
        for kept in g["keep"].as_array().unwrap() {
            let mut rules = std::collections::BTreeSet::new();
            for r in kept["reasons"].as_array().unwrap() {
                let r = r.as_str().unwrap();
                let r = r.strip_prefix("oldest ").unwrap_or(r);
                let first = r.split(' ').next().unwrap();
                rules.insert(if r.starts_with("within ") {
                    "within".to_string()
                } else if r.contains(" within ") {
                    format!("{first} within")
                } else {
                    first.to_string()
                });
            }
            for r in rules {
                *by_forget.entry(r).or_default() += 1;
            }
        }
    }
    (by_status, by_forget)
}

/// Issue 27: status decides retention from each group's runs (snapshots
/// per local hour or date) kept in its rows, not from every snapshot. Its
/// kept counts must be `forget --dry-run`'s for snapshots minutes to weeks
/// apart, under a policy with hourly rules (runs by the hour) and one
/// without (by the date), as snapshots are added and forgotten.
#[test]
fn status_retention_from_runs_matches_forget() {
    let f = Fixture::new();
    let dir = f.mkdir("data");
    let now = jiff::Timestamp::now();
    let mut minutes_ago: Vec<i64> = Vec::new();
    minutes_ago.extend((0..12).map(|i| 7 + 20 * i));
    minutes_ago.extend((0..10).map(|i| 300 + 7 * 60 * i));
    minutes_ago.extend((0..10).map(|i| 5000 + 150 * 60 * i));
    minutes_ago.extend((0..6).map(|i| 30000 + 11 * 24 * 60 * i));
    // the oldest day has three: its oldest is kept as `oldest <rule>`
    let oldest = 30000 + 11 * 24 * 60 * 5;
    minutes_ago.extend([oldest - 30, oldest - 60]);
    let snap = |n: usize, ago: i64| {
        fs::write(dir.join("changing"), format!("version {n}\n")).unwrap();
        snapshot_data_at(&f, &dir, now - jiff::SignedDuration::from_mins(ago));
    };
    for (n, ago) in minutes_ago.iter().enumerate() {
        snap(n, *ago);
    }
    let policies: [(&str, &[&str]); 2] = [
        (
            "keep_within = \"1d\"\nkeep_last = 4\nkeep_hourly = 6\nkeep_daily = 5\n\
             keep_weekly = 3\nkeep_monthly = 2\nkeep_within_daily = \"10d\"\n\
             keep_within_weekly = \"6w\"\n",
            &[
                "--keep-within",
                "1d",
                "--keep-last",
                "4",
                "--keep-hourly",
                "6",
                "--keep-daily",
                "5",
                "--keep-weekly",
                "3",
                "--keep-monthly",
                "2",
                "--keep-within-daily",
                "10d",
                "--keep-within-weekly",
                "6w",
            ],
        ),
        (
            "keep_within = \"3d\"\nkeep_daily = 8\nkeep_monthly = 12\n\
             keep_within_monthly = \"2m\"\n",
            &[
                "--keep-within",
                "3d",
                "--keep-daily",
                "8",
                "--keep-monthly",
                "12",
                "--keep-within-monthly",
                "2m",
            ],
        ),
    ];
    // each policy with its own cache: its rows are updated, not made again
    let check = |what: &str| {
        for (i, (retention, flags)) in policies.iter().enumerate() {
            let cache = f.path(format!("cache-{i}"));
            let cfg = config(
                &f,
                &format!(
                    "[sources.data]\npaths = [\"{}\"]\n[retention]\n{retention}",
                    dir.display()
                ),
            );
            let (status, forget) = kept_by_status_and_forget(&f, &cfg, &cache, flags);
            assert_eq!(status, forget, "{what}, policy {i}");
            assert!(
                status.values().any(|&n| n > 1),
                "{what}, policy {i}: {status:?}"
            );
        }
    };
    check("made");
    let ids: Vec<String> = tagged(&f, "data")
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    // forgotten: the oldest ten (their months' runs gone), two in the
    // middle of an hour's run, the newest
    let mut c = cmd(&f);
    c.arg("--repo").arg(f.strata.repo()).arg("forget");
    for i in (0..10).chain([30, 31, ids.len() - 1]) {
        c.arg(&ids[i]);
    }
    c.assert().success();
    check("thirteen forgotten");
    snap(100, 1);
    snap(101, 60 * 24 * 3 + 5);
    check("two added");
}

/// `status --json` with the cache directory `cache`, without what
/// depends on the moment of the call (`time`, each latest's age).
fn status_at(f: &Fixture, cfg: &Path, cache: &Path) -> Value {
    let out = cmd(f)
        .env("STRATA_CACHE_DIR", cache)
        .args(["status", "--json", "--config"])
        .arg(cfg)
        .assert()
        .get_output()
        .clone();
    let mut v = parse_json(&out.stdout);
    v.as_object_mut().unwrap().remove("time");
    for s in v["sources"].as_array_mut().unwrap() {
        if let Some(l) = s["latest"].as_object_mut() {
            l.remove("age_seconds");
        }
    }
    v
}

/// Issue 27: once `snapshots/` has been unchanged for two seconds, its
/// stamp (one stat of the directory, `Backend::listing_stamp`) is saved
/// with the report and a later status reads the report without listing
/// the directory. The stamp must never hide a change: a snapshot made, a
/// snapshot forgotten, each right after a status that used it, shows in
/// the next status, which matches a cold cache every time.
#[test]
fn status_from_a_settled_listing_stamp_sees_every_change() {
    let f = Fixture::new();
    let dir = f.mkdir("data");
    let cfg = config(
        &f,
        &format!(
            "[sources.data]\npaths = [\"{}\"]\n[retention]\nkeep_last = 5\n",
            dir.display()
        ),
    );
    let snap = |n: u32| {
        fs::write(dir.join("changing"), format!("version {n}\n")).unwrap();
        f.strata.snapshot(&[dir.to_str().unwrap(), "--tag", "data"]);
    };
    snap(0);
    snap(1);
    let warm = f.path("cache");
    let mut cold = 0;
    let mut check = |want: u64, what: &str| {
        let got = status_at(&f, &cfg, &warm);
        cold += 1;
        let fresh = status_at(&f, &cfg, &f.path(format!("cold-{cold}")));
        assert_eq!(got, fresh, "{what}");
        assert_eq!(source(&got, "data")["snapshots"], want, "{what}: {got}");
    };
    let settle = || std::thread::sleep(std::time::Duration::from_millis(2100));
    settle();
    check(2, "settled: computed, the stamp saved");
    check(2, "from the stamp");
    snap(2);
    check(3, "a snapshot made after the stamp was saved");
    settle();
    check(3, "settled again: the stamp saved again");
    check(3, "from the new stamp");
    let oldest = tagged(&f, "data")[0]["id"].as_str().unwrap().to_string();
    forget(&f, &oldest);
    check(2, "a snapshot forgotten after the stamp was saved");
}

/// Issue 27 ("flat status"): while the snapshots listed are those of the
/// last report, `status` reads each source's figures (count, latest,
/// retention's kept counts, sizes) from this machine's `status/report1`
/// without decoding a manifest. Its report must be the one a cold cache
/// gives (every manifest read again) when warm, after snapshots were
/// added, after one was forgotten, with a snapshot dated in the future
/// (retention then depends on now), and with the file damaged, truncated
/// or deleted (rebuilt, silently).
#[test]
fn status_from_the_flat_report_matches_a_cold_cache() {
    let f = Fixture::new();
    let dir = f.mkdir("data");
    let other = f.mkdir("other");
    fs::write(other.join("o"), "other source").unwrap();
    let cfg = config(
        &f,
        &format!(
            "[sources.data]\npaths = [\"{}\"]\n[sources.other]\npaths = [\"{}\"]\n\
             [sources.empty]\ncommand = \"echo e\"\nname = \"e.txt\"\n\
             [retention]\nkeep_within = \"24h\"\nkeep_last = 2\nkeep_daily = 3\nkeep_weekly = 2\n",
            dir.display(),
            other.display()
        ),
    );
    let now = jiff::Timestamp::now();
    let snap = |n: i64, hours_ago: i64| {
        fs::write(dir.join("changing"), format!("version {n}\n").repeat(50)).unwrap();
        snapshot_data_at(&f, &dir, now - jiff::SignedDuration::from_hours(hours_ago));
    };
    for (n, h) in [(0, 24 * 9), (1, 24 * 4), (2, 30), (3, 5)] {
        snap(n, h);
    }
    f.strata
        .snapshot(&[other.to_str().unwrap(), "--tag", "other"]);
    let warm = f.path("cache");
    let check = |what: &str| {
        let got = status_at(&f, &cfg, &warm);
        let cold_dir = f.path(format!("cold-{what}"));
        let want = status_at(&f, &cfg, &cold_dir);
        assert_eq!(got, want, "{what}");
        got
    };
    let first = check("cold");
    assert_eq!(source(&first, "data")["snapshots"], 4, "{first}");
    let report1 = fs::read_dir(&warm)
        .unwrap()
        .map(|e| e.unwrap().path().join("status").join("report1"))
        .find(|p| p.is_file())
        .expect("status/report1 written");
    let again = check("warm");
    assert_eq!(again, first);
    let kept = |v: &Value| -> Vec<u64> {
        retention_rules(source(v, "data"))
            .into_iter()
            .map(|(_, kept, _)| kept)
            .collect()
    };
    assert_eq!(
        kept(&again),
        [1, 2, 3, 2],
        "within, last, daily, weekly: {again}"
    );

    snap(4, 1);
    let added = check("one added");
    assert_eq!(source(&added, "data")["snapshots"], 5, "{added}");
    assert_ne!(kept(&added), kept(&again), "{added}");

    let oldest = tagged(&f, "data")[0]["id"].as_str().unwrap().to_string();
    forget(&f, &oldest);
    let forgot = check("oldest forgotten");
    assert_eq!(source(&forgot, "data")["snapshots"], 4, "{forgot}");

    // dated two hours ahead: kept as `future`, outside the other rules
    fs::write(dir.join("changing"), "from a fast clock").unwrap();
    let ahead = now + jiff::SignedDuration::from_hours(2);
    f.strata.snapshot_code(
        &[
            dir.to_str().unwrap(),
            "--tag",
            "data",
            "--time",
            &ahead.to_string(),
        ],
        0,
    );
    check("one in the future");
    check("one in the future, warm");

    let b = fs::read(&report1).unwrap();
    let mut flipped = b.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    fs::write(&report1, &flipped).unwrap();
    check("damaged");
    fs::write(&report1, &b[..b.len() / 2]).unwrap();
    check("truncated");
    fs::write(&report1, b"not a report").unwrap();
    check("garbage");
    fs::remove_file(&report1).unwrap();
    check("deleted");
    assert!(report1.is_file(), "written again");
}

// ---------------------------------------------------------------- restore

#[test]
fn restore_saves_a_pre_restore_snapshot_and_it_restores() {
    let f = Fixture::new();
    let app = f.mkdir("app");
    fs::write(app.join("a.txt"), "version 1").unwrap();
    fs::write(app.join("b.txt"), "only in v1").unwrap();
    let good = f.strata.snapshot(&[app.to_str().unwrap()]);
    // the application breaks the directory
    fs::write(app.join("a.txt"), "version 2 (broken)").unwrap();
    fs::remove_file(app.join("b.txt")).unwrap();
    fs::write(app.join("c.txt"), "new in v2").unwrap();
    let before = support::manifest(&app);

    let spec = format!("latest:{}", app.display());
    let r = f.strata.restore(&spec, &app, &["--delete"]);
    assert_eq!(r["snapshot"], good["id"], "latest is the good snapshot");
    let safety = r["safety_snapshot"]
        .as_str()
        .expect("a safety snapshot")
        .to_string();
    let pre = tagged(&f, "pre-restore");
    assert_eq!(pre.len(), 1);
    assert_eq!(pre[0]["id"], safety.as_str());
    assert_eq!(fs::read_to_string(app.join("a.txt")).unwrap(), "version 1");
    assert!(!app.join("c.txt").exists());

    // `latest` skips the pre-restore snapshot, though it is newer
    let again = f.strata.restore(&spec, &f.path("again"), &[] as &[&str]);
    assert_eq!(again["snapshot"], good["id"]);
    assert!(
        again["safety_snapshot"].is_null(),
        "empty target: nothing to save"
    );
    // ... unless asked for, and restoring it brings back the state before
    let undo = f.strata.restore(
        &spec,
        &app,
        &["--tag", "pre-restore", "--delete", "--no-safety-snapshot"],
    );
    assert_eq!(undo["snapshot"], safety.as_str());
    support::assert_matches_manifest(&before, &app, &support::Compare::contents_only(), "undo");
    assert_eq!(
        tagged(&f, "pre-restore").len(),
        1,
        "--no-safety-snapshot took none"
    );
}

// ---------------------------------------------------------------- sqlite

#[test]
fn sqlite_source_while_a_writer_commits() {
    let f = Fixture::new();
    let db = f.path("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT NOT NULL);")
        .unwrap();
    drop(conn);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (s2, c2, db2) = (stop.clone(), committed.clone(), db.clone());
    let writer = std::thread::spawn(move || {
        let mut c = rusqlite::Connection::open(&db2).unwrap();
        c.busy_timeout(Duration::from_secs(30)).unwrap();
        let mut n = 0i64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let tx = c.transaction().unwrap();
            // several statements per commit: a torn copy would show a gap
            for k in 0..5 {
                tx.execute(
                    "INSERT INTO rows (id, v) VALUES (?1, ?2)",
                    rusqlite::params![(n - 1) * 5 + k + 1, "x".repeat(200)],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            c2.store(n as u64 * 5, std::sync::atomic::Ordering::Relaxed);
        }
    });
    while committed.load(std::sync::atomic::Ordering::Relaxed) < 500 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cfg = config(&f, "[sources.app]\nsqlite = \"app.db\"\n");
    let s = strata_run(&f, &cfg, &[], 0);
    let s2_ = strata_run(&f, &cfg, &[], 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let total = committed.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(source(&s, "app")["files"], 1);
    for (i, snap) in [s, s2_].iter().enumerate() {
        let id = source(snap, "app")["snapshot"]
            .as_str()
            .unwrap()
            .to_string();
        let target = f.path(format!("restored{i}"));
        f.strata.restore(&id, &target, &[] as &[&str]);
        let c = rusqlite::Connection::open(target.join("app.db")).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let (n, max): (i64, Option<i64>) = c
            .query_row("SELECT count(*), max(id) FROM rows", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert!(n >= 500 && n as u64 <= total, "{n} rows, {total} committed");
        assert_eq!(max, Some(n), "the rows are a prefix 1..={n}");
        assert_eq!(n % 5, 0, "whole transactions only");
    }
}

// ---------------------------------------------------------------- postgres

fn pg_available() -> Result<(), String> {
    support::on_path("pg_dump")?;
    support::on_path("psql")?;
    psql("postgres", "SELECT 1").map(|_| ())
}

#[test]
fn run_with_pg_dump_and_restore_into_a_new_database() {
    if !support::service_or_skip("STRATA_REQUIRE_PG_TESTS", pg_available()) {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("strata_test_{}_{nanos}", std::process::id());
    let (src, dst) = (format!("{tag}_src"), format!("{tag}_dst"));
    struct Drop2(Vec<String>);
    impl Drop for Drop2 {
        fn drop(&mut self) {
            for db in &self.0 {
                let _ = psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
            }
        }
    }
    let _cleanup = Drop2(vec![src.clone(), dst.clone()]);
    psql("postgres", &format!("CREATE DATABASE {src}")).unwrap();
    psql(
        &src,
        "CREATE TABLE events (id serial PRIMARY KEY, body jsonb NOT NULL, at timestamptz NOT NULL);
         CREATE TABLE responses (id bigint PRIMARY KEY, event int REFERENCES events(id), status text);
         INSERT INTO events (body, at) SELECT jsonb_build_object('n', g, 's', md5(g::text)), \
             '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
         INSERT INTO responses SELECT g, g, CASE WHEN g % 7 = 0 THEN 'error' ELSE 'ok' END \
             FROM generate_series(1, 2500) g;",
    )
    .unwrap();
    let f = Fixture::new();
    let cfg = config(
        &f,
        &format!(
            "[sources.postgres]\ncommand = \"pg_dump --no-owner {src}\"\nname = \"postgres.sql\"\nevery = \"1d\"\n"
        ),
    );
    let s = strata_run(&f, &cfg, &[], 0);
    assert!(
        source(&s, "postgres")["bytes_read"].as_u64().unwrap() > 100_000,
        "{s}"
    );
    psql("postgres", &format!("CREATE DATABASE {dst}")).unwrap();
    cmd(&f)
        .args(["restore", "--source", "postgres", "latest", "--to-command"])
        .arg(format!("psql -X -q -v ON_ERROR_STOP=1 -d {dst} >/dev/null"))
        .env("STRATA_CONFIG", &cfg)
        .assert()
        .success();
    for t in ["events", "responses"] {
        let q = format!(
            "SELECT count(*) || ' ' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {t} t"
        );
        let (a, b) = (psql(&src, &q).unwrap(), psql(&dst, &q).unwrap());
        assert_eq!(a, b, "table {t}");
        assert!(
            a.starts_with(if t == "events" { "3000 " } else { "2500 " }),
            "{a}"
        );
    }
    // a failing restore command fails the restore
    let o = cmd(&f)
        .args([
            "restore",
            "--source",
            "postgres",
            "latest",
            "--to-command",
            "cat >/dev/null; exit 7",
        ])
        .env("STRATA_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(support::one_line_error(&o, "to-command fails").contains("failed"));
}

// ---------------------------------------------------------------- redis

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn start_redis(dir: &Path, dbfile: &str) -> Result<(Server, u16), String> {
    let port = support::free_port();
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(["--dbfilename", dbfile])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server: {e}"))?;
    let s = Server(child);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let ok = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG");
        if ok {
            return Ok((s, port));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("redis-server did not answer PING within 10 s".into())
}

#[test]
fn redis_rdb_source_loads_into_a_fresh_server() {
    let available = support::on_path("redis-server").and_then(|_| support::on_path("redis-cli"));
    if !support::service_or_skip("STRATA_REQUIRE_REDIS_TESTS", available) {
        return;
    }
    let f = Fixture::new();
    let (_src, port) = start_redis(&f.mkdir("redis-src"), "dump.rdb").unwrap();
    for i in 0..200 {
        redis_cli(port, &["SET", &format!("key:{i}"), &format!("value {i}")]);
    }
    redis_cli(port, &["RPUSH", "list", "a", "b", "c"]);
    let cfg = config(
        &f,
        &format!(
            "[sources.redis]\ncommand = \"redis-cli -h 127.0.0.1 -p {port} --rdb -\"\nname = \"redis.rdb\"\n"
        ),
    );
    let s = strata_run(&f, &cfg, &[], 0);
    assert!(
        source(&s, "redis")["bytes_read"].as_u64().unwrap() > 1000,
        "{s}"
    );
    let dir = f.mkdir("redis-dst");
    cmd(&f)
        .args(["restore", "--source", "redis", "latest", "--to-command"])
        .arg(format!("cat > {}/restored.rdb", dir.display()))
        .env("STRATA_CONFIG", &cfg)
        .assert()
        .success();
    let (_dst, port2) = start_redis(&dir, "restored.rdb").unwrap();
    assert_eq!(redis_cli(port2, &["DBSIZE"]), "201");
    assert_eq!(redis_cli(port2, &["GET", "key:123"]), "value 123");
    assert_eq!(redis_cli(port2, &["LRANGE", "list", "0", "-1"]), "a\nb\nc");
}

/// A `command` source that hangs is killed at its `command_timeout`, with
/// what it started: the source fails (nothing saved), the others are
/// taken, and the run ends instead of holding the run lock forever.
#[test]
fn a_hung_source_command_is_killed_at_its_timeout() {
    let f = Fixture::new();
    let data = f.mkdir("data");
    fs::write(data.join("a.txt"), b"a").unwrap();
    let pidfile = f.path("child.pid");
    let cfg = config(
        &f,
        &format!(
            "[sources.dump]\ncommand = \"head -c 1000; sh -c 'echo $$ > {}; exec sleep 600'\"\n\
             name = \"dump.sql\"\ncommand_timeout = \"1s\"\n\
             [sources.files]\npaths = [\"{}\"]\n",
            pidfile.display(),
            data.display()
        ),
    );
    let t = std::time::Instant::now();
    let s = strata_run(&f, &cfg, &[], 4);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert_eq!(source(&s, "files")["status"], "ok", "{s}");
    assert_eq!(source(&s, "dump")["status"], "failed", "{s}");
    assert!(
        s.to_string()
            .contains("killed after its command_timeout of 1s"),
        "{s}"
    );
    // the `sleep` its shell started is gone too
    assert!(
        support::process_gone(&pidfile),
        "the command's child outlived the timeout"
    );
    // nothing of the dump was saved
    let snaps = cmd(&f)
        .arg("--repo")
        .arg(f.strata.repo())
        .args(["snapshots", "--json", "--source", "dump"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&snaps.stdout).unwrap_or(Value::Null);
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
}

// ---------------------------------------------------------------- schedule

#[test]
fn schedule_prints_and_writes_nothing() {
    let f = Fixture::uninit();
    let cfg = config(
        &f,
        "[sources.data]\npaths = [\"/srv\"]\nevery = \"5m\"\n[sources.db]\ncommand = \"pg_dump app\"\nname = \"db.sql\"\nevery = \"1d\"\n",
    );
    let out = cmd(&f)
        .args(["schedule", "--print", "systemd", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("# /etc/systemd/system/strata.timer\n"),
        "{text}"
    );
    // one job at the shortest cadence: `run` knows when the daily dump
    // is due, so nothing fires twice at 03:00
    assert!(text.contains("OnCalendar=*-*-* *:00/5:00"), "{text}");
    assert_eq!(text.matches("OnCalendar=").count(), 1, "{text}");
    assert!(
        text.contains(&format!("run --config {}\n", cfg.display())),
        "{text}"
    );
    let out = cmd(&f)
        .args(["schedule", "--print", "cron", "--config"])
        .arg(&cfg)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("*/5 * * * * "), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(" run --config "))
            .count(),
        1,
        "{text}"
    );
}

// ---------------------------------------------------------------- offsite

#[test]
fn status_fails_when_the_offsite_copy_lacks_packs() {
    let f = Fixture::new();
    let offsite = f.path("offsite");
    let cfg = config(
        &f,
        &format!(
            "offsite = \"{}\"\n[status]\nmax_offsite_behind = 0\n\
             [sources.n]\ncommand = \"head -c 300000 /dev/urandom\"\nname = \"n.bin\"\n",
            offsite.display()
        ),
    );
    let s = strata_run(&f, &cfg, &[], 0);
    assert_eq!(step(&s, "sync")["status"], "ok", "{s}");
    let status = |code: i32| {
        let out = cmd(&f)
            .args(["status", "--json", "--config"])
            .arg(&cfg)
            .assert()
            .code(code)
            .get_output()
            .clone();
        parse_json(&out.stdout)
    };
    let v = status(0);
    assert_eq!(v["sync"]["behind_packs"], 0, "{v}");
    // a pack lost at the mirror: one pack behind, more than the 0 allowed
    let lost = support::pack_files(&offsite).into_iter().next().unwrap();
    fs::remove_file(&lost).unwrap();
    let v = status(5);
    assert_eq!(v["sync"]["behind_packs"], 1, "{v}");
    assert!(v["problems"].to_string().contains("lacks 1 packs"), "{v}");
    // the text report says so on its sync line
    let out = cmd(&f)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("sync: ")).unwrap_or("");
    assert!(line.contains("the offsite copy lacks 1 packs ("), "{text}");
}
