//! Immutable offsite copies (issue 26, format-spec/sync.md "Object Lock",
//! backend.md "Point-in-time views") against a real moto server with
//! Object Lock enabled on the bucket (versioning turns on with it): locked
//! uploads with Content-MD5 on a bucket whose default retention makes
//! moto refuse a PUT without it; retention on PUT and HEAD; a locked
//! version refused deletion (AccessDenied) and governance bypass; retention
//! extended by a later sync; delete markers, GET by version id and
//! ListObjectVersions through `--point-in-time`; and the attack: a host
//! that deletes everything it can, overwrites the latest manifest and adds
//! a forged newer snapshot, after which the offsite copy alone, read at a
//! point in time, restores the last good state byte for byte.
//!
//! moto lets a COMPLIANCE retention be shortened, which real S3 refuses;
//! nothing here relies on that (README "Immutable offsite copies").

use crate::support;

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use support::{Fixture, S3, env_refs, parse_json};

/// One day in seconds.
const DAY: i64 = 86400;
/// The passphrase of the host's write-only key.
const HOST_PASS: &str = "the host's write-only key";

/// moto, a bucket with Object Lock enabled (and a default retention in
/// `default`), and its environment, with a cache directory under `cache`
/// (the work directory of an s3:// repository).
fn locked_s3(
    bucket: &str,
    default: Option<(&str, u32)>,
    cache: &Path,
) -> Option<(S3, Vec<(String, String)>)> {
    let s3 = S3::new("unused-plain-bucket")?;
    s3.moto.create_locked_bucket(bucket, default);
    let mut env = s3.env();
    env.push(("STRATA_CACHE_DIR".into(), cache.to_str().unwrap().into()));
    Some((
        S3 {
            bucket: bucket.into(),
            ..s3
        },
        env,
    ))
}

fn run(repo: &str, env: &[(String, String)], args: &[&str]) -> Output {
    support::run(repo, &env_refs(env), args)
}

#[track_caller]
fn ok(repo: &str, env: &[(String, String)], args: &[&str]) -> String {
    support::ok(repo, &env_refs(env), args)
}

#[track_caller]
fn json(repo: &str, env: &[(String, String)], args: &[&str]) -> Value {
    support::json(repo, &env_refs(env), args)
}

/// The response header `name` of a raw request.
fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Unix seconds of an S3 date.
fn unix(date: &str) -> i64 {
    date.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The retention (mode, until) of the current version of `key`.
fn retention(s3: &S3, key: &str) -> (String, i64) {
    let (status, h, _) = s3
        .moto
        .request("HEAD", &format!("/{}/{key}", s3.bucket), &[], &[]);
    assert_eq!(status, 200, "HEAD {key}");
    (
        header(&h, "x-amz-object-lock-mode").unwrap().to_string(),
        unix(header(&h, "x-amz-object-lock-retain-until-date").unwrap()),
    )
}

/// A repository with one snapshot of a tree at `<fixture>/src`.
fn repo_with_snapshot() -> (Fixture, std::path::PathBuf, String) {
    let fx = Fixture::with_init(&["--pack-size-mib", "1"]);
    let src = fx.mkdir("src");
    support::make_tree(&src, 7, support::FIVE_400K);
    let repo = fx.strata.repo().to_str().unwrap().to_string();
    ok(&repo, &[], &["snapshot", src.to_str().unwrap(), "--json"]);
    (fx, src, repo)
}

#[test]
fn locked_uploads_carry_retention_that_blocks_deletion_and_a_later_sync_extends() {
    let (fx, _src, repo) = repo_with_snapshot();
    let Some((s3, env)) = locked_s3("lockedup", Some(("GOVERNANCE", 1)), &fx.path("cache")) else {
        return;
    };
    let dest = s3.url("mirror");

    // the bucket's default retention makes S3 (and moto) refuse a PUT
    // without Content-MD5: object_store's plain PUT fails
    let o = run(&repo, &env, &["sync", &dest]);
    let err = support::one_line_error(&o, "sync without --object-lock");
    assert!(err.contains("config"), "{err}");

    let r = json(
        &repo,
        &env,
        &[
            "sync",
            &dest,
            "--object-lock",
            "30d",
            "--lock-mode",
            "governance",
            "--json",
        ],
    );
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["copied"]["objects"].as_u64().unwrap() > 5, "{r}");
    let locks = &r["locks"];
    assert_eq!(locks["extended"], 0, "{r}");
    assert_eq!(locks["unlocked"], 0, "{r}");
    let earliest = locks["earliest_expiry"].as_i64().unwrap();
    assert!((earliest - (now() + 30 * DAY)).abs() < 120, "{r}");

    // a local directory has no versions: --point-in-time refuses it rather
    // than show its present
    let pit = ["--point-in-time", "2026-01-01T00:00:00Z"];
    let fresh = fx.path("fresh").to_str().unwrap().to_string();
    for (at, cmd) in [(&repo, "snapshots"), (&fresh, "init")] {
        let mut a = pit.to_vec();
        a.push(cmd);
        let err = support::one_line_error(&run(at, &env, &a), "point in time, local");
        assert!(err.contains("--point-in-time"), "{err}");
    }
    assert!(!fx.path("fresh").exists());

    // every object carries the retention: mode and date on HEAD
    let listed = s3.moto.list(&s3.bucket, "mirror/");
    let pack = listed
        .iter()
        .map(|(k, _)| k.clone())
        .find(|k| k.starts_with("mirror/packs/"))
        .unwrap();
    for (key, _) in &listed {
        let (mode, until) = retention(&s3, key);
        assert_eq!(mode, "GOVERNANCE", "{key}");
        assert!((until - (now() + 30 * DAY)).abs() < 120, "{key}: {until}");
    }

    // the locked version cannot be deleted; a plain DELETE only adds a
    // delete marker; governance retention yields to the bypass header
    let versions = s3.moto.versions(&s3.bucket, &pack);
    assert_eq!(versions.len(), 1, "{versions:?}");
    let vid = versions[0].1.clone();
    let target = format!("/{}/{pack}?versionId={vid}", s3.bucket);
    let (status, _, body) = s3.moto.request("DELETE", &target, &[], &[]);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));

    // shorten one retention (governance, with the bypass) to 2 days: the
    // next sync with the lock finds it under half the period and extends it
    let short = now() + 2 * DAY;
    let xml = format!(
        "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>GOVERNANCE</Mode>\
         <RetainUntilDate>{}</RetainUntilDate></Retention>",
        jiff::Timestamp::from_second(short)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
    );
    let md5 = support::content_md5(xml.as_bytes());
    let (status, _, body) = s3.moto.request(
        "PUT",
        &format!("/{}/{pack}?retention=", s3.bucket),
        &[
            ("Content-MD5", md5.as_str()),
            ("x-amz-bypass-governance-retention", "true"),
        ],
        xml.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!((retention(&s3, &pack).1 - short).abs() < 5);
    let r = json(
        &repo,
        &env,
        &[
            "sync",
            &dest,
            "--object-lock",
            "30d",
            "--lock-mode",
            "governance",
            "--json",
        ],
    );
    assert_eq!(r["copied"]["objects"], 0, "{r}");
    assert_eq!(r["locks"]["extended"], 1, "{r}");
    assert!((retention(&s3, &pack).1 - (now() + 30 * DAY)).abs() < 120);

    // governance bypass deletes the version for good
    let (status, _, body) = s3.moto.request(
        "DELETE",
        &target,
        &[("x-amz-bypass-governance-retention", "true")],
        &[],
    );
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
    assert!(s3.moto.versions(&s3.bucket, &pack).is_empty());
}

#[test]
fn offsite_lock_in_the_policy_locks_run_s_sync_and_status_shows_the_expiry() {
    let fx = Fixture::with_init(&["--pack-size-mib", "1"]);
    let Some((s3, env)) = locked_s3("policylock", None, &fx.path("cache")) else {
        return;
    };
    let src = fx.mkdir("src");
    support::make_tree(&src, 3, support::FIVE_400K);
    let repo = fx.strata.repo().to_str().unwrap().to_string();
    let offsite = s3.url("off");
    let toml = fx.path("strata.toml");
    std::fs::write(
        &toml,
        format!(
            "repository = {repo:?}\noffsite = {offsite:?}\n\
             offsite_lock = {{ mode = \"compliance\", days = 3 }}\n\
             [sources.files]\npaths = [{:?}]\n",
            src.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = toml.to_str().unwrap();
    let o = run(&repo, &env, &["run", "--config", cfg, "--json"]);
    assert!(
        o.status.success() || o.status.code() == Some(3),
        "run: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let listed = s3.moto.list(&s3.bucket, "off/");
    assert!(
        listed.iter().any(|(k, _)| k.starts_with("off/snapshots/")),
        "{listed:?}"
    );
    for (key, _) in &listed {
        let (mode, until) = retention(&s3, key);
        assert_eq!(mode, "COMPLIANCE", "{key}");
        assert!((until - (now() + 3 * DAY)).abs() < 120, "{key}");
    }
    // 3 days of retention: less than a week away, a problem
    let o = run(&repo, &env, &["status", "--config", cfg, "--json"]);
    let st = parse_json(&o.stdout);
    let expiry = st["sync"]["lock_expiry"]
        .as_str()
        .unwrap_or_else(|| panic!("{st}"));
    assert!((unix(expiry) - (now() + 3 * DAY)).abs() < 120, "{st}");
    let problems = st["problems"].to_string();
    assert!(problems.contains("less than a week away"), "{problems}");
}

/// The attack of issue 26: a host backing up with a write-only key
/// (`key add --write-only`) and syncing with its own credentials is
/// compromised; with them it deletes every object it can, overwrites the
/// latest manifest and adds a forged newer snapshot (signed by its own
/// write-only key); the offsite copy alone, read by the full key at a
/// point in time before the attack, gives back the real snapshots byte for
/// byte, and `forget --keep-within` keeps them.
#[test]
fn a_compromised_host_cannot_destroy_the_locked_offsite_copy() {
    let fx = Fixture::with_init(&["--pack-size-mib", "1"]);
    let Some((s3, env)) = locked_s3("attacked", Some(("COMPLIANCE", 1)), &fx.path("cache")) else {
        return;
    };
    let src = fx.mkdir("src");
    support::make_tree(&src, 11, support::FIVE_400K);
    let repo = fx.strata.repo().to_str().unwrap().to_string();
    let t1 = jiff::Timestamp::from_second(now() - 7200)
        .unwrap()
        .to_string();
    let t2 = jiff::Timestamp::from_second(now() - 3600)
        .unwrap()
        .to_string();
    let s = src.to_str().unwrap();
    // the host's key: write-only, added by the full key; the host's cache
    // holds its record of what it sent
    let new_pass = [("STRATA_NEW_PASSWORD".to_string(), HOST_PASS.to_string())];
    ok(
        &repo,
        &new_pass,
        &["key", "add", "--write-only", "--label", "host"],
    );
    let mut host = env.clone();
    host.push(("STRATA_PASSWORD".into(), HOST_PASS.into()));
    host.retain(|(k, _)| k != "STRATA_CACHE_DIR");
    host.push((
        "STRATA_CACHE_DIR".into(),
        fx.path("host-cache").to_str().unwrap().into(),
    ));
    let snap = |t: &str| {
        let a = ["snapshot", s, "--tag", "files", "--time", t, "--json"];
        json(&repo, &host, &a)["id"].clone()
    };
    let real1 = snap(&t1);
    std::fs::write(
        src.join("notes/late.txt"),
        b"written between the two snapshots",
    )
    .unwrap();
    let real2 = snap(&t2);
    let reference = fx.path("reference");
    let cp = std::process::Command::new("cp")
        .args(["-a", s, reference.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    let dest = s3.url("host");
    let lock = ["--object-lock", "30d", "--lock-mode", "compliance"];
    let mut args = vec!["sync", dest.as_str()];
    args.extend(lock);
    ok(&repo, &host, &args);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let good_time = jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));

    // the attack, with the host's credentials
    // 3. a forged newer snapshot, synced as the host's run would
    let evil = fx.mkdir("evil");
    std::fs::write(evil.join("ransom.txt"), b"pay up").unwrap();
    let future = jiff::Timestamp::from_second(now() + 7 * DAY)
        .unwrap()
        .to_string();
    let e = evil.to_str().unwrap();
    let forged = ["snapshot", e, "--tag", "files", "--time", &future, "--json"];
    json(&repo, &host, &forged);
    ok(&repo, &host, &args);
    // the write-only key reads nothing, not even the list of snapshots
    let o = run(&repo, &host, &["snapshots"]);
    assert_eq!(
        o.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // 1. delete every object it can: each version by id (refused: locked),
    // then each key (a delete marker)
    let versions = s3.moto.versions(&s3.bucket, "host/");
    assert!(versions.len() > 10);
    for (key, vid, _) in &versions {
        let target = format!("/{}/{key}?versionId={vid}", s3.bucket);
        let (status, _, body) = s3.moto.request("DELETE", &target, &[], &[]);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 403, "{key} {vid}: {body}");
        assert!(body.contains("AccessDenied"), "{body}");
        let bypass = [("x-amz-bypass-governance-retention", "true")];
        let (status, _, _) = s3.moto.request("DELETE", &target, &bypass, &[]);
        assert_eq!(
            status, 403,
            "compliance ignores the governance bypass: {key}"
        );
    }
    for (key, _) in s3.moto.list(&s3.bucket, "host/") {
        let (status, h, _) = s3
            .moto
            .request("DELETE", &format!("/{}/{key}", s3.bucket), &[], &[]);
        assert_eq!(status, 204, "{key}");
        assert_eq!(header(&h, "x-amz-delete-marker"), Some("true"));
    }
    assert!(s3.moto.list(&s3.bucket, "host/").is_empty());
    // 2. overwrite the latest manifest
    let latest = format!("host/snapshots/{}", real2.as_str().unwrap());
    let junk = b"not a manifest any more";
    let md5 = support::content_md5(junk);
    let (status, _, body) = s3.moto.request(
        "PUT",
        &format!("/{}/{latest}", s3.bucket),
        &[("Content-MD5", md5.as_str())],
        junk,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // and the host's own repository is gone with the host
    drop(std::fs::remove_dir_all(&repo));
    let current = run(&dest, &env, &["snapshots", "--json"]);
    assert!(!current.status.success(), "the current state is wrecked");

    // recovery, with the full key, from the offsite copy alone
    let pit = ["--point-in-time", good_time.as_str()];
    let mut a = pit.to_vec();
    a.extend(["snapshots", "--json"]);
    let listed = json(&dest, &env, &a);
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![real1.as_str().unwrap(), real2.as_str().unwrap()];
    want.sort();
    assert_eq!(ids, want, "{listed}");
    // a read-only view: writing commands are refused
    let mut a = pit.to_vec();
    a.extend(["forget", "--keep-last", "1"]);
    let o = run(&dest, &env, &a);
    let err = support::one_line_error(&o, "forget at a point in time");
    assert!(err.contains("read-only"), "{err}");

    // sync --from the offsite at that time into an empty directory
    let back = fx.path("back");
    let back_s = back.to_str().unwrap().to_string();
    let o = support::command()
        .args([
            "sync",
            &back_s,
            "--from",
            &dest,
            "--point-in-time",
            &good_time,
            "--json",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(&back_s, &[], &["check", "--read-data"]);
    let target = fx.path("restored");
    ok(
        &back_s,
        &[],
        &[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ],
    );
    // byte for byte, with every attribute, as the source stood at the
    // last real snapshot (untouched since)
    support::assert_same_tree(&src, &support::under(&target, &src));
    // keep_within (relative to the newest snapshot) keeps the real ones:
    // the forged one of next week is not in this view
    let f = json(&back_s, &[], &["forget", "--keep-within", "1d", "--json"]);
    let kept = ok(&back_s, &[], &["snapshots", "--json"]);
    let kept = parse_json(kept.as_bytes());
    assert_eq!(kept.as_array().unwrap().len(), 2, "{f}\n{kept}");
    // restore straight from the view too
    let target2 = fx.path("restored2");
    let mut a = pit.to_vec();
    a.extend(["restore", "latest", "--target", target2.to_str().unwrap()]);
    ok(&dest, &env, &a);
    support::assert_same_tree(&src, &support::under(&target2, &src));

    // and `recover --from … --point-in-time` puts the source back in place
    std::fs::remove_dir_all(&src).unwrap();
    let toml = fx.path("strata.toml");
    std::fs::write(&toml, format!("[sources.files]\npaths = [{s:?}]\n")).unwrap();
    let mut a = pit.to_vec();
    let cfg = toml.to_str().unwrap();
    a.extend(["recover", "files", "--from", &dest, "--config", cfg]);
    a.extend(["--yes", "--no-safety-snapshot", "--json"]);
    let o = support::command()
        .args(&a)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "recover: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // (recover restores into the source's directory: its own mtime is
    // that of the restore)
    let contents = support::Compare {
        root_meta: false,
        ..Default::default()
    };
    support::assert_same_tree_with(&reference, &src, &contents);
}

/// The requests `moto_iam.py setup` makes (its `SETUP_REQUESTS`): moto's
/// `INITIAL_NO_AUTH_ACTION_COUNT` window, after which every request is
/// authenticated and checked against the caller's IAM policies.
const SETUP_REQUESTS: &str = "7";

/// tests/support/moto_iam.py: boto3 calls, and moto's server.
fn moto_iam() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/moto_iam.py").to_string()
}

/// `python3 moto_iam.py ARGS` with `env` (endpoint and keys): its JSON.
#[track_caller]
fn boto(env: &[(String, String)], args: &[&str]) -> Value {
    let o = std::process::Command::new("python3")
        .arg(moto_iam())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "moto_iam.py {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    parse_json(&o.stdout)
}

/// `env` with the access key `key` ([id, secret]) instead of its own.
fn with_keys(env: &[(String, String)], key: &Value) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY")
        .cloned()
        .collect();
    e.push(("AWS_ACCESS_KEY_ID".into(), key[0].as_str().unwrap().into()));
    e.push((
        "AWS_SECRET_ACCESS_KEY".into(),
        key[1].as_str().unwrap().into(),
    ));
    e
}

/// The put-only policy of README "Immutable offsite copies", as printed
/// there (for the bucket `backups` and the prefix `bridge/`).
fn readme_put_only_policy() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("**Put-only credentials for the server.**")
        .unwrap();
    let rest = &readme[at..];
    let b = rest.find("```json\n").unwrap() + "```json\n".len();
    let e = rest[b..].find("```").unwrap() + b;
    let doc = rest[b..e].to_string();
    let v: Value = serde_json::from_str(&doc).unwrap();
    let actions = v.to_string();
    assert!(
        actions.contains("s3:PutObject") && !actions.contains("Delete"),
        "{doc}"
    );
    doc
}

/// README "Put-only credentials for the server", against moto enforcing
/// IAM: an S3 user with nothing but the README's policy runs the host's
/// `run` with a full key (backup, sync with `offsite_lock`, the read-only
/// check of the mirror), `status`, and a later backup's sync; it cannot
/// delete what the administrator's user can; and the lock extension it
/// cannot do (403) ends the pass, the sync still succeeding, after which
/// the administrator's sync extends.
#[test]
fn put_only_credentials_run_sync_and_check_the_mirror_but_cannot_delete_or_extend() {
    let fx = Fixture::with_init(&["--pack-size-mib", "1"]);
    let script = moto_iam();
    let tries: [&[&str]; 1] = [&["python3", script.as_str(), "server"]];
    let log = fx.path("iam.log");
    let log_s = log.to_str().unwrap();
    let window = [
        ("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_REQUESTS),
        ("MOTO_IAM_LOG", log_s),
    ];
    let moto = match support::start_moto_with(&tries, &window, "/moto-api/reset-auth") {
        Ok(m) => m,
        Err(why) => {
            support::skip(
                "STRATA_REQUIRE_S3_TESTS",
                &format!("cannot start moto ({why}); pip install 'moto[server]'"),
            );
            return;
        }
    };
    // in the window: the bucket (Object Lock) and the users `admin` and
    // `host` (the README's policy); the script then checks that moto
    // refuses unknown keys (the window is closed)
    let base = moto.env();
    let keys = boto(&base, &["setup", "backups", &readme_put_only_policy()]);
    assert_eq!(keys["unknown"]["code"], "InvalidAccessKeyId", "{keys}");
    let admin = with_keys(&base, &keys["admin"]);
    let mut host = with_keys(&base, &keys["host"]);
    // the test's default keys are refused now
    let o = run(&s3_dest(), &base, &["snapshots"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("InvalidAccessKeyId"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // the host's run with the full key and the put-only credential:
    // backup, sync (locked), the check of the mirror (no lock taken there)
    let src = fx.mkdir("src");
    support::make_tree(&src, 5, support::FIVE_400K);
    let repo = fx.strata.repo().to_str().unwrap().to_string();
    let toml = fx.path("strata.toml");
    std::fs::write(
        &toml,
        format!(
            "repository = {repo:?}\noffsite = {:?}\n\
             offsite_lock = {{ mode = \"governance\", days = 30 }}\n\
             [sources.files]\npaths = [{:?}]\n\
             [verification]\noffsite_read_data_subset = \"100%\"\n",
            s3_dest(),
            src.to_str().unwrap()
        ),
    )
    .unwrap();
    let cfg = toml.to_str().unwrap();
    host.push((
        "STRATA_CACHE_DIR".into(),
        fx.path("host-cache").to_str().unwrap().into(),
    ));
    let sum = json(&repo, &host, &["run", "--config", cfg, "--json"]);
    for s in ["sync", "offsite-check"] {
        let st = sum["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["step"] == s)
            .unwrap_or_else(|| panic!("no step {s}: {sum}"));
        assert_eq!(st["status"], "ok", "{s}: {sum}");
    }
    let versions = boto(&admin, &["versions", "backups", "bridge/"]);
    let objects = versions.as_array().unwrap().len();
    assert!(objects > 5, "{versions}");
    for v in versions.as_array().unwrap() {
        let key = v[0].as_str().unwrap();
        assert!(!key.contains("/locks/"), "no lock file offsite: {key}");
        let r = boto(&admin, &["retention", "backups", key]);
        assert_eq!(r["mode"], "GOVERNANCE", "{key}");
        assert!((r["until"].as_i64().unwrap() - (now() + 30 * DAY)).abs() < 120);
    }
    // status with the put-only credential reads the mirror's expiry
    let o = run(&repo, &host, &["status", "--config", cfg, "--json"]);
    let st = parse_json(&o.stdout);
    let expiry = st["sync"]["lock_expiry"]
        .as_str()
        .unwrap_or_else(|| panic!("{st}"));
    assert!((unix(expiry) - (now() + 30 * DAY)).abs() < 120, "{st}");
    assert!(!st.to_string().contains("Denied"), "{st}");

    // DELETE: refused to the host, of a locked object and of one it just
    // wrote unlocked (IAM, not the lock), plain or by version; the
    // administrator's user deletes that one
    let probe = boto(&host, &["put", "backups", "bridge/probe"]);
    let vid = probe["version"].as_str().unwrap();
    let config = versions
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v[0] == "bridge/config")
        .unwrap_or_else(|| panic!("{versions}"));
    let config_vid = config[1].as_str().unwrap();
    for args in [
        ["delete", "backups", "bridge/probe", vid],
        ["delete", "backups", "bridge/config", config_vid],
    ] {
        for a in [&args[..3], &args[..]] {
            let r = boto(&host, a);
            assert_eq!(r["status"], 403, "{a:?}: {r}");
            assert_eq!(r["code"], "AccessDenied", "{a:?}: {r}");
        }
    }
    let r = boto(&admin, &["delete", "backups", "bridge/probe", vid]);
    assert_eq!(r["status"], 204, "{r}");
    assert_eq!(
        boto(&admin, &["versions", "backups", "bridge/"])
            .as_array()
            .unwrap()
            .len(),
        objects,
        "every version of the mirror is still there"
    );

    // the lock extension: one pack's retention shortened to 2 days (the
    // administrator, governance bypass); the host's next backup and sync
    // cannot extend it. moto authorizes PutObjectRetention as
    // s3:PutObject (real S3 refuses it: the policy lacks
    // s3:PutObjectRetention), so a deny of that one existing, create-only
    // key stands for it here
    let pack = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_str().unwrap())
        .find(|k| k.starts_with("bridge/packs/"))
        .unwrap()
        .to_string();
    boto(
        &admin,
        &["shorten", "backups", &pack, &(2 * DAY).to_string()],
    );
    let deny = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": ["s3:PutObjectRetention", "s3:PutObject"],
        "Resource": format!("arn:aws:s3:::backups/{pack}")}]});
    boto(&admin, &["deny", "host", "retention", &deny.to_string()]);
    std::fs::write(src.join("notes/late.txt"), b"after the first run").unwrap();
    let s = src.to_str().unwrap();
    json(&repo, &host, &["snapshot", s, "--tag", "files", "--json"]);
    let dest = s3_dest();
    let lock = [
        "--object-lock",
        "30d",
        "--lock-mode",
        "governance",
        "--json",
    ];
    let mut args = vec!["sync", dest.as_str()];
    args.extend(lock);
    let r = json(&repo, &host, &args);
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["copied"]["objects"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["locks"]["extended"], 0, "{r}");
    let why = r["locks"]["not_extended"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(why.contains("AccessDenied"), "{r}");
    assert!(why.contains("put-only credential"), "{r}");
    let until = boto(&admin, &["retention", "backups", &pack])["until"]
        .as_i64()
        .unwrap();
    assert!((until - (now() + 2 * DAY)).abs() < 120, "not extended");
    // the text output says so too, and the sync exits 0
    let text = ok(&repo, &host, &args[..args.len() - 1]);
    assert!(text.contains("not extended: "), "{text}");
    // the administrator's credential (and the full key) extends it
    let mut adm = admin.clone();
    adm.push((
        "STRATA_CACHE_DIR".into(),
        fx.path("admin-cache").to_str().unwrap().into(),
    ));
    let r = json(&repo, &adm, &args);
    assert_eq!(r["locks"]["extended"], 1, "{r}");
    assert!(r["locks"]["not_extended"].is_null(), "{r}");
    let until = boto(&admin, &["retention", "backups", &pack])["until"]
        .as_i64()
        .unwrap();
    assert!((until - (now() + 30 * DAY)).abs() < 120, "extended");

    // moto ignores the policy's Condition (StringLike on s3:prefix): its
    // log of the requests it let through shows that every LIST of the
    // host's stayed under bridge/, as real S3 requires of it
    let host_id = keys["host"][0].as_str().unwrap();
    let mut lists = 0;
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if r["key"] != host_id || !r["action"].as_str().unwrap().starts_with("s3:List") {
            continue;
        }
        lists += 1;
        let path = r["path"].as_str().unwrap();
        let prefix = path
            .split_once('?')
            .map(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("prefix=")))
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            prefix.is_some_and(|p| p.starts_with("bridge%2F")),
            "a LIST outside bridge/*: {line}"
        );
    }
    assert!(lists > 3, "{lists} LISTs");
}

/// The offsite copy of the IAM test.
fn s3_dest() -> String {
    "s3://backups/bridge".to_string()
}
