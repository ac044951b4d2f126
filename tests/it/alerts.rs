//! Backups that run themselves, and say so when they don't (issue 21):
//! one scheduled job and a second run that waits, credentials from the
//! policy's environment file, every failure recorded, sent and shown by
//! `status` (a run that cannot unlock, a failed source, a lost offsite
//! copy), the webhook's `webhook_on`, Slack body and retries, and the
//! Prometheus metrics; and a simulated day of the generated schedule
//! with one failure of each kind.

use crate::support;

use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Fixture, PASSPHRASE};

/// `strata` with this fixture's cache and the test passphrase, no
/// `--repo` (the policy names the repository).
fn cmd(f: &Fixture) -> Command {
    let mut c = support::unlock_for(support::command(), f.strata.repo());
    c.env("STRATA_CACHE_DIR", f.path("cache"))
        .env_remove("STRATA_CONFIG")
        .stdin(Stdio::null());
    c
}

/// Write the policy: `repository` and then `body`.
fn policy(f: &Fixture, body: &str) -> PathBuf {
    let p = f.path("strata.toml");
    fs::write(
        &p,
        format!("repository = \"{}\"\n{body}", f.strata.repo().display()),
    )
    .unwrap();
    p
}

fn run(f: &Fixture, cfg: &Path, extra: &[(&str, &str)]) -> Output {
    let mut c = cmd(f);
    c.args(["run", "--config"]).arg(cfg);
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn status(f: &Fixture, cfg: &Path, args: &[&str]) -> Output {
    cmd(f)
        .args(["status", "--config"])
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `status --json`: (exit code, report).
fn status_json(f: &Fixture, cfg: &Path) -> (i32, Value) {
    let o = status(f, cfg, &["--json"]);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", text(&o)));
    (o.status.code().unwrap(), v)
}

fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------- a webhook listener

/// An HTTP listener on 127.0.0.1 that records every request body and
/// answers each with the next status of `answers` (then 200).
pub(crate) struct Hook {
    port: u16,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Hook {
    pub(crate) fn start(answers: &[u16]) -> Hook {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (b, answers) = (bodies.clone(), Mutex::new(answers.to_vec()));
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                b.lock().unwrap().push(body);
                let code = {
                    let mut a = answers.lock().unwrap();
                    if a.is_empty() { 200 } else { a.remove(0) }
                };
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Hook { port, bodies }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/TOKEN", self.port)
    }

    pub(crate) fn received(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

// ---------------------------------------------------------------- scheduling

/// Two runs of the same policy at once: the second waits for the first
/// (`--retry-lock`, else `[cadence] lock_wait`), or gives up with exit 11
/// and a skip that is not an alert.
#[test]
fn a_second_run_waits_for_the_first_or_is_skipped() {
    let f = Fixture::new();
    let hook = Hook::start(&[]);
    let cfg = policy(
        &f,
        &format!(
            "webhook = \"{}\"\n[cadence]\nlock_wait = \"1s\"\n\
             [sources.slow]\ncommand = \"sleep 3; echo slow\"\nname = \"slow.txt\"\n\
             [sources.fast]\ncommand = \"echo fast\"\nname = \"fast.txt\"\n",
            hook.url()
        ),
    );
    let spawn = |args: &[&str]| {
        let mut c = cmd(&f);
        c.args(["run", "--config"]).arg(&cfg).args(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let first = spawn(&["slow"]);
    std::thread::sleep(Duration::from_millis(1200));
    // lock_wait = 1s: skipped, exit 11, no webhook
    let t = Instant::now();
    let skipped = spawn(&["fast"]).wait_with_output().unwrap();
    assert_eq!(skipped.status.code(), Some(11), "{}", text(&skipped));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(text(&skipped).contains("skipped"), "{}", text(&skipped));
    // --retry-lock 1m: waits for the first, then runs
    let waited = spawn(&["fast", "--retry-lock", "1m"])
        .wait_with_output()
        .unwrap();
    assert!(waited.status.success(), "{}", text(&waited));
    assert!(first.wait_with_output().unwrap().status.success());
    assert!(hook.received().is_empty(), "a skip or a success was sent");
    let (code, v) = status_json(&f, &cfg);
    assert_eq!(code, 0, "{v}");
    let log = fs::read_dir(f.path("cache").join("policy"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path().join("run.log")).unwrap_or_default())
        .collect::<String>();
    assert!(
        log.contains("run - skipped") && log.contains("another run"),
        "{log}"
    );
}

/// The environment file gives a run the credentials cron and systemd do
/// not: the generated cron line, run under `env -i`, syncs to S3.
#[test]
fn the_generated_cron_line_syncs_with_credentials_from_the_environment_file() {
    let Some(s3) = support::S3::new("strata-cron") else {
        return;
    };
    let moto = &s3.moto;
    let f = Fixture::new();
    let src = f.mkdir("src");
    fs::write(src.join("a"), b"alpha").unwrap();
    let env_file = f.path("env");
    let mut env_text = String::from("# credentials\n");
    for (k, v) in moto.env() {
        env_text.push_str(&format!("{k}={v}\n"));
    }
    env_text.push_str(&format!("STRATA_PASSWORD={PASSPHRASE}\n"));
    fs::write(&env_file, &env_text).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = policy(
        &f,
        &format!(
            "environment_file = \"{}\"\noffsite = \"s3://strata-cron/mirror\"\n\
             [sources.data]\npaths = [\"{}\"]\nevery = \"5m\"\n",
            env_file.display(),
            src.display()
        ),
    );
    let line = String::from_utf8(
        cmd(&f)
            .args(["schedule", "--print", "cron", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let job: Vec<&str> = line.lines().filter(|l| l.contains(" run ")).collect();
    assert_eq!(job.len(), 1, "{line}");
    // `*/5 * * * * USER COMMAND`
    let command = job[0].splitn(7, ' ').nth(6).unwrap().to_string();
    let cron = |what: &str| {
        let o = Command::new("env")
            .args(["-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent"])
            .arg(format!("STRATA_CACHE_DIR={}", f.path("cache").display()))
            .args(["sh", "-c", &command])
            .output()
            .unwrap();
        assert!(!text(&o).contains("panicked"), "{what}: {}", text(&o));
        o
    };
    // mode 0644: refused, and said so
    let o = cron("0644");
    assert!(!o.status.success());
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o600)).unwrap();
    let o = cron("0600");
    assert!(o.status.success(), "{}", text(&o));
    let objects = moto.list("strata-cron", "mirror/packs");
    assert!(!objects.is_empty(), "nothing synced");
    assert!(
        text(&o).contains("sync") && !text(&o).contains("FAILED"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------- failures alert

/// A run that cannot open or unlock the repository is recorded (run.log
/// under the policy, the start record), sent, and makes `status`
/// unhealthy; the next good run clears it.
#[test]
fn a_run_that_cannot_unlock_is_sent_and_makes_status_unhealthy() {
    let f = Fixture::new();
    let hook = Hook::start(&[]);
    let wrong = f.path("wrong-pass");
    fs::write(&wrong, "not the passphrase\n").unwrap();
    let cases = [
        (
            format!("password_file = \"{}\"\n", wrong.display()),
            "wrong passphrase",
        ),
        (
            format!("password_file = \"{}\"\n", f.path("missing").display()),
            "missing",
        ),
        ("password_command = \"false\"\n".to_string(), "failed"),
    ];
    for (i, (unlock, what)) in cases.iter().enumerate() {
        let cfg = policy(
            &f,
            &format!(
                "{unlock}webhook = \"{}\"\nwebhook_format = \"slack\"\n\
                 [sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n",
                hook.url()
            ),
        );
        let o = run(&f, &cfg, &[("STRATA_PASSWORD", "")]);
        assert!(!o.status.success(), "{what}: {}", text(&o));
        let got = hook.received();
        assert_eq!(got.len(), i + 1, "{what}: webhook calls {got:?}");
        let slack = got[i]["text"].as_str().unwrap();
        assert!(
            slack.contains("FAILED") && slack.contains("run:"),
            "{slack}"
        );
        let o = status(&f, &cfg, &[]);
        assert_eq!(o.status.code(), Some(5), "{what}: {}", text(&o));
        assert!(text(&o).contains("could not start"), "{what}: {}", text(&o));
    }
    let cfg = policy(
        &f,
        &format!(
            "webhook = \"{}\"\nwebhook_format = \"slack\"\n\
             [sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n",
            hook.url()
        ),
    );
    let o = run(&f, &cfg, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let got = hook.received();
    assert_eq!(got.len(), 4, "the first success after failures is sent");
    assert!(got[3]["text"].as_str().unwrap().contains(": ok"), "{got:?}");
    let (code, v) = status_json(&f, &cfg);
    assert_eq!(code, 0, "{v}");
    assert!(v["last_start"]["error"].is_null(), "{v}");
    let log = fs::read_dir(f.path("cache").join("policy"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path().join("run.log")).unwrap_or_default())
        .collect::<String>();
    assert_eq!(log.matches("run - FAILED").count(), 3, "{log}");
    assert!(!log.contains("TOKEN"), "{log}");
}

/// `status` that cannot open the repository says why, exits 5, and writes
/// `strata_healthy 0` for Prometheus.
#[test]
fn status_of_an_unreachable_repository_is_unhealthy_for_prometheus_too() {
    let f = Fixture::new();
    let cfg = policy(&f, "[sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n");
    assert!(run(&f, &cfg, &[]).status.success());
    let prom = f.path("strata.prom");
    let o = status(&f, &cfg, &["--prometheus", prom.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        fs::read_to_string(&prom)
            .unwrap()
            .contains("strata_healthy 1")
    );
    fs::rename(f.strata.repo(), f.path("moved")).unwrap();
    let o = status(&f, &cfg, &["--prometheus", prom.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("repository: cannot open it"),
        "{}",
        text(&o)
    );
    let p = fs::read_to_string(&prom).unwrap();
    assert!(
        p.contains("strata_healthy 0") && p.contains("strata_repository_reachable 0"),
        "{p}"
    );
}

/// A failed source is a problem in `status` until a later run of it
/// succeeds; the webhook (default `change`) gets the failure, the
/// recovery, and nothing in between or after.
#[test]
fn a_failed_source_is_unhealthy_until_it_succeeds_and_the_webhook_sends_changes() {
    let f = Fixture::new();
    let hook = Hook::start(&[]);
    let flag = f.path("dump-fails");
    fs::write(&flag, "").unwrap();
    let cfg = policy(
        &f,
        &format!(
            "webhook = \"{}\"\n[sources.db]\ncommand = \"test -e {} && exit 3; echo dump\"\n\
             name = \"db.sql\"\n[sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n",
            hook.url(),
            flag.display()
        ),
    );
    for _ in 0..2 {
        let o = run(&f, &cfg, &[]);
        assert_eq!(o.status.code(), Some(4), "{}", text(&o));
        let (code, v) = status_json(&f, &cfg);
        assert_eq!(code, 5, "{v}");
        assert!(
            problems(&v)
                .iter()
                .any(|p| p.starts_with("db: the last run failed")),
            "{v}"
        );
    }
    fs::remove_file(&flag).unwrap();
    for _ in 0..2 {
        assert!(run(&f, &cfg, &[]).status.success());
    }
    let (code, v) = status_json(&f, &cfg);
    assert_eq!(code, 0, "{v}");
    let got = hook.received();
    let oks: Vec<bool> = got.iter().map(|g| g["ok"].as_bool().unwrap()).collect();
    assert_eq!(
        oks,
        [false, false, true],
        "failures, then the first success"
    );
    // Prometheus: per source and per step
    let prom = f.path("p.prom");
    status(&f, &cfg, &["--prometheus", prom.to_str().unwrap()]);
    let p = fs::read_to_string(&prom).unwrap();
    for m in [
        "strata_source_last_run_success{source=\"db\"} 1",
        "strata_last_run_success 1",
        "strata_source_last_run_timestamp_seconds{source=\"n\"}",
        "strata_problems 0",
    ] {
        assert!(p.contains(m), "{m} in {p}");
    }
}

/// With `offsite` set, losing the offsite copy is unhealthy by default;
/// a manual `strata sync` counts as a sync.
#[test]
fn a_lost_offsite_copy_is_unhealthy_by_default_and_a_manual_sync_counts() {
    let f = Fixture::new();
    let offsite = f.path("offsite");
    let cfg = policy(
        &f,
        &format!(
            "offsite = \"{}\"\n[cadence]\nsync = \"1s\"\n\
             [sources.n]\ncommand = \"date +%N\"\nname = \"n.txt\"\n",
            offsite.display()
        ),
    );
    assert!(run(&f, &cfg, &[]).status.success());
    let (code, v) = status_json(&f, &cfg);
    assert_eq!(code, 0, "{v}");
    // the bucket emptied: packs missing, and older than twice the cadence
    fs::remove_dir_all(offsite.join("packs")).unwrap();
    fs::create_dir(offsite.join("packs")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (code, v) = status_json(&f, &cfg);
    assert_eq!(code, 5, "{v}");
    let p = problems(&v).join("\n");
    assert!(
        p.contains("lacks") && p.contains("no successful sync"),
        "{p}"
    );
    assert!(v["sync"]["behind_packs"].as_u64().unwrap() > 0, "{v}");
    // a manual sync to the configured offsite
    let o = cmd(&f)
        .args(["--repo"])
        .arg(f.strata.repo())
        .arg("sync")
        .arg(&offsite)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (code, v) = status_json(&f, &cfg);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["sync"]["behind_packs"], 0, "{v}");
    // `max_offsite_behind` replaces the rule
    let cfg2 = policy(
        &f,
        &format!(
            "offsite = \"{}\"\n[cadence]\nsync = \"1s\"\n[status]\nmax_offsite_behind = 1000\n\
             [sources.n]\ncommand = \"date +%N\"\nname = \"n.txt\"\n",
            offsite.display()
        ),
    );
    fs::remove_dir_all(offsite.join("packs")).unwrap();
    fs::create_dir(offsite.join("packs")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let (code, v) = status_json(&f, &cfg2);
    assert_eq!(code, 0, "{v}");
}

/// `webhook_on = "failure"` and `"always"`; a webhook that fails twice
/// gets the third try; one that never answers is a warning: exit 3.
#[test]
fn webhook_on_retries_and_an_unreachable_webhook_is_a_warning() {
    let f = Fixture::new();
    let body = "[sources.n]\ncommand = \"echo 1\"\nname = \"n.txt\"\n";
    let hook = Hook::start(&[500, 503]);
    let cfg = policy(
        &f,
        &format!(
            "webhook = \"{}\"\nwebhook_on = \"always\"\n{body}",
            hook.url()
        ),
    );
    let o = run(&f, &cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        hook.received().len(),
        3,
        "two failed tries, then a delivered one"
    );
    let quiet = Hook::start(&[]);
    let cfg = policy(
        &f,
        &format!(
            "webhook = \"{}\"\nwebhook_on = \"failure\"\n{body}",
            quiet.url()
        ),
    );
    assert!(run(&f, &cfg, &[]).status.success());
    assert!(quiet.received().is_empty());
    let down = support::free_port();
    let cfg = policy(
        &f,
        &format!(
            "webhook = \"http://127.0.0.1:{down}/hooks/TOKEN\"\nwebhook_on = \"always\"\n{body}"
        ),
    );
    let o = run(&f, &cfg, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("3 tries") && !text(&o).contains("TOKEN"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------- a simulated day

/// Fill the file system of `dir` but for `leave` bytes (a file `filler`).
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let s = rustix::fs::statvfs(dir).unwrap();
    let free = s.f_bavail * s.f_frsize;
    let p = dir.join("filler");
    let mut f = fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = free.saturating_sub(leave);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if f.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    p
}

/// Our users' policy (data every hour, a PostgreSQL dump daily at 03:00,
/// an S3 offsite copy, a webhook), run from its generated schedule at
/// every hour of a simulated day (`STRATA_FAKE_NOW`, debug builds), with
/// one failure of each kind injected: the dump fails, the passphrase is
/// wrong, the bucket is gone, the disk is full. Each reaches the webhook
/// and `status` at once (within one cadence), and clears at the next
/// success; no other hour sends anything.
#[test]
fn a_simulated_day_with_one_failure_of_each_kind() {
    let pg = support::on_path("pg_dump")
        .and_then(|_| support::on_path("psql"))
        .and_then(|_| support::psql("postgres", "SELECT 1").map(|_| ()));
    if !support::service_or_skip("STRATA_REQUIRE_PG_TESTS", pg) {
        return;
    }
    let root_ok = if support::is_root() {
        Ok(())
    } else {
        Err("not root: no tmpfs to fill".to_string())
    };
    if !support::service_or_skip("STRATA_REQUIRE_ROOT_TESTS", root_ok) {
        return;
    }
    let Some(s3) = support::S3::new("strata-day") else {
        return;
    };
    let moto = &s3.moto;
    let db = format!("strata_day_{}", std::process::id());
    let _ = support::psql("postgres", &format!("DROP DATABASE IF EXISTS {db}"));
    support::psql("postgres", &format!("CREATE DATABASE {db}")).unwrap();
    support::psql(&db, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g").unwrap();
    struct DropDb(String);
    impl Drop for DropDb {
        fn drop(&mut self) {
            let _ = support::psql("postgres", &format!("DROP DATABASE IF EXISTS {}", self.0));
        }
    }
    let _db = DropDb(db.clone());

    let f = Fixture::uninit();
    let disk = f.path("disk");
    let _fs = support::Tmpfs::mount(&disk, "24m").unwrap();
    let repo = disk.join("repo");
    support::unlock_for(support::command(), &repo)
        .env("STRATA_CACHE_DIR", f.path("cache"))
        .arg("--repo")
        .arg(&repo)
        .arg("init")
        .output()
        .unwrap();
    let src = f.mkdir("data");
    let dbname = f.path("dbname");
    fs::write(&dbname, &db).unwrap();
    let pass = f.path("pass");
    fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let env_file = f.path("env");
    let env: String = moto
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    fs::write(&env_file, env).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o600)).unwrap();
    let hook = Hook::start(&[]);
    let cfg = f.path("strata.toml");
    fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\npassword_file = \"{}\"\nenvironment_file = \"{}\"\n\
             offsite = \"s3://strata-day/offsite\"\nwebhook = \"{}\"\n\
             [sources.data]\npaths = [\"{}\"]\nevery = \"1h\"\n\
             [sources.postgres]\ncommand = \"pg_dump --no-owner -d $(cat {})\"\nname = \"postgres.sql\"\nevery = \"1d\"\n\
             [retention]\nkeep_within = \"24h\"\nkeep_daily = 7\n[cadence]\ndaily_at = \"03:00\"\n",
            repo.display(),
            pass.display(),
            env_file.display(),
            hook.url(),
            src.display(),
            dbname.display()
        ),
    )
    .unwrap();
    // the generated schedule: one job, every hour
    let cron = String::from_utf8(
        Command::new(support::bin())
            .args(["schedule", "--print", "cron", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        cron.lines().any(|l| l.starts_with("0 */1 * * * ")),
        "{cron}"
    );
    let day0 = 1_796_860_800i64; // 2026-12-10T00:00:00Z
    let at = |h: i64| (day0 + h * 3600).to_string();
    let job = |h: i64| {
        Command::new("env")
            .args([
                "-i",
                "PATH=/usr/bin:/bin:/usr/local/bin",
                "HOME=/nonexistent",
                "TZ=UTC",
            ])
            .arg(format!("STRATA_CACHE_DIR={}", f.path("cache").display()))
            .arg(format!("STRATA_FAKE_NOW={}", at(h)))
            .arg(support::bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let health = |h: i64| {
        let o = Command::new("env")
            .args([
                "-i",
                "PATH=/usr/bin:/bin:/usr/local/bin",
                "HOME=/nonexistent",
                "TZ=UTC",
            ])
            .arg(format!("STRATA_CACHE_DIR={}", f.path("cache").display()))
            .arg(format!("STRATA_FAKE_NOW={}", at(h)))
            .arg(support::bin())
            .args(["status", "--json", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("hour {h}: status --json: {e}: {}", text(&o)));
        (o.status.code().unwrap(), problems(&v).join("; "))
    };
    // The day before at 03:00: the first run takes every source, so the
    // dump is next due at 03:00 of the simulated day.
    let o = job(-21);
    assert!(o.status.success(), "the first run: {}", text(&o));
    assert!(hook.received().is_empty(), "a first success is no change");
    let mut filler = None;
    let mut sent = 0;
    for h in 0..24 {
        // inject
        let failing = match h {
            3 => {
                fs::write(&dbname, "no_such_database_here").unwrap();
                Some("postgres")
            }
            8 => {
                fs::write(&pass, "not the passphrase\n").unwrap();
                Some("could not start")
            }
            12 => {
                // the bucket and everything in it
                support::http(moto.port, "POST", "/moto-api/reset").unwrap();
                Some("sync")
            }
            16 => {
                fs::write(
                    src.join("big.bin"),
                    support::random_bytes(h as u64, 8 << 20),
                )
                .unwrap();
                filler = Some(fill(&disk, 2 << 20));
                Some("data")
            }
            _ => None,
        };
        // heal the previous hour's failure
        match h {
            4 => fs::write(&dbname, &db).unwrap(),
            9 => fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap(),
            13 => moto.create_bucket("strata-day"),
            17 => {
                if let Some(p) = filler.take() {
                    fs::remove_file(p).unwrap();
                }
                fs::remove_file(src.join("big.bin")).unwrap();
            }
            _ => {}
        }
        fs::write(src.join("hour.txt"), format!("hour {h}\n")).unwrap();
        let o = job(h);
        let got = hook.received();
        let (code, problems) = health(h);
        match failing {
            Some(kind) => {
                assert!(!o.status.success(), "hour {h}: {}", text(&o));
                assert_eq!(got.len(), sent + 1, "hour {h}: the failure was not sent");
                assert_eq!(got[sent]["ok"], false, "hour {h}");
                assert_eq!(code, 5, "hour {h}: status: {problems}");
                assert!(
                    problems.contains(kind),
                    "hour {h}: {kind} not in {problems}"
                );
            }
            None => {
                assert!(o.status.success(), "hour {h}: {}", text(&o));
                let recovery = [4, 9, 13, 17].contains(&h);
                assert_eq!(
                    got.len(),
                    sent + usize::from(recovery),
                    "hour {h}: webhook calls"
                );
                if recovery {
                    assert_eq!(got[sent]["ok"], true, "hour {h}");
                }
                assert_eq!(code, 0, "hour {h}: status: {problems}");
            }
        }
        sent = got.len();
    }
    assert_eq!(sent, 8, "4 failures and 4 recoveries");
}
