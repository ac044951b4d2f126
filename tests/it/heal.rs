//! An offsite copy that heals (issue 24), against moto: a byte flipped in
//! a pack of the S3 copy and one in another pack here; one `run` with its
//! cadences due checks both ends, finds both, and heals both from the
//! other end's intact copy: `check --read-data` is clean at both ends
//! afterwards and nothing was salvaged. Then the same by hand: `check` of
//! the mirror keeps its own record, `sync` copies the damaged pack again,
//! `repair packs --from` takes the mirror's copy, and `sync --from` the
//! mirror replaces a pack damaged here.

use crate::support::{self, Fixture};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use strata::backend::{self, Backend};

fn cmd(f: &Fixture, s3: &support::S3) -> Command {
    let mut c = support::unlock_for(support::command(), f.strata.repo());
    c.env("STRATA_CACHE_DIR", f.path("cache"))
        .env_remove("STRATA_CONFIG")
        .envs(s3.env())
        .stdin(Stdio::null());
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn strata(
    f: &Fixture,
    s3: &support::S3,
    args: &[&str],
    env: &[(&str, String)],
    code: i32,
) -> Value {
    let o = cmd(f, s3)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(code), "strata {args:?}: {}", text(&o));
    if args.contains(&"--json") {
        support::parse_json(&o.stdout)
    } else {
        Value::Null
    }
}

fn step<'a>(sum: &'a Value, name: &str) -> &'a Value {
    sum["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {sum}"))
}

/// The local packs, by name.
fn local_packs(repo: &Path) -> BTreeSet<String> {
    support::pack_names(repo).into_iter().collect()
}

/// Every pack at `b`, by name, with a check that it hashes to its name.
fn intact(b: &dyn Backend) -> BTreeSet<String> {
    let mut keys = Vec::new();
    b.list("packs", &mut |l| keys.push(l.key)).unwrap();
    keys.into_iter()
        .map(|k| {
            let bytes = b.get(&k).unwrap();
            let name = k.rsplit('/').next().unwrap().to_string();
            assert_eq!(
                blake3::hash(&bytes).to_hex().as_str(),
                name,
                "{k} at {}",
                b.name()
            );
            name
        })
        .collect()
}

fn pack_key(name: &str) -> String {
    format!("packs/{}/{name}", &name[..2])
}

/// Flip the byte in the middle of pack `name` at `b`.
fn flip_at(b: &dyn Backend, name: &str) {
    let key = pack_key(name);
    let mut bytes = b.get(&key).unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    b.put_replace(&key, &bytes).unwrap();
}

/// Flip the byte in the middle of a local pack file.
fn flip_file(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(p).unwrap().permissions().mode();
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = fs::read(p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(p, &bytes).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The two largest local packs (data packs), largest first.
fn two_data_packs(repo: &Path) -> (PathBuf, PathBuf) {
    let mut packs = support::pack_files(repo);
    packs.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    assert!(packs.len() >= 2, "{packs:?}");
    (packs[0].clone(), packs[1].clone())
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn one_run_finds_and_heals_damage_at_both_ends() {
    let Some(s3) = support::S3::new("strata-heal") else {
        return;
    };
    let url = s3.url("mirror");
    let f = Fixture::new();
    let repo = f.strata.repo().to_path_buf();
    let srv = f.mkdir("srv");
    let cfg = f.path("strata.toml");
    fs::write(
        &cfg,
        format!(
            "repository = \"{}\"\noffsite = \"{url}\"\n[sources.files]\npaths = [{srv:?}]\nevery = \"30d\"\n\
             [verification]\nread_data_subset = \"100%\"\noffsite_read_data_subset = \"100%\"\n\
             [cadence]\ncheck = \"1d\"\noffsite_check = \"1d\"\n",
            repo.display()
        ),
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap().to_string();
    let t0 = 1_800_000_000i64;
    let at = |h: i64| vec![("STRATA_FAKE_NOW", (t0 + h * 3600).to_string())];
    let mut rng = support::Rng::new(2424);
    // three runs, three sets of new data: several packs (`run files`: the
    // source is taken now; the later runs take no snapshot, whose
    // ancestors' times (/tmp) would add a tree)
    for round in 0..3 {
        for i in 0..4 {
            let n = rng.range(200_000, 600_000) as usize;
            support::write_file(&srv.join(format!("r{round}/f{i}.bin")), &rng.bytes(n));
        }
        let sum = strata(
            &f,
            &s3,
            &["run", "--json", "--config", &cfg_s],
            &at(round),
            0,
        );
        assert_eq!(step(&sum, "sync")["status"], "ok", "{sum}");
        if round == 0 {
            assert_eq!(step(&sum, "offsite-check")["status"], "ok", "{sum}");
        }
        assert_eq!(step(&sum, "heal")["status"], "skipped", "{sum}");
    }
    let s3b = backend::open_with_env(&url, s3.env()).unwrap();
    let before = local_packs(&repo);
    assert_eq!(intact(&*s3b), before, "the mirror has every pack");
    let snaps = f.strata.snapshots().len();

    // damage: one pack on S3, another one here
    let (a, b) = two_data_packs(&repo);
    let (remote_bad, local_bad) = (name_of(&a), name_of(&b));
    flip_at(&*s3b, &remote_bad);
    flip_file(&b);

    // one run, a day later: check and offsite-check due
    let sum = strata(&f, &s3, &["run", "--json", "--config", &cfg_s], &at(25), 1);
    let check = step(&sum, "check");
    assert_eq!(check["status"], "failed", "{sum}");
    assert!(
        check["detail"].as_str().unwrap().contains(&local_bad),
        "{check}"
    );
    let off = step(&sum, "offsite-check");
    assert_eq!(off["status"], "failed", "{sum}");
    assert!(
        off["detail"].as_str().unwrap().contains(&remote_bad),
        "{off}"
    );
    let heal = step(&sum, "heal");
    assert_eq!(heal["status"], "ok", "{sum}");
    let d = heal["detail"].as_str().unwrap();
    assert!(
        d.contains("1 of 1 damaged packs here replaced by the intact copies"),
        "{d}"
    );
    assert!(d.contains("1 damaged packs at s3://"), "{d}");

    // both ends whole, every pack hashing to its name; nothing salvaged:
    // the same packs, the same snapshots
    assert_eq!(intact(&*s3b), before);
    let here = backend::open(repo.to_str().unwrap()).unwrap();
    assert_eq!(intact(&*here), before);
    assert_eq!(local_packs(&repo), before, "no salvaged pack, none deleted");
    assert_eq!(f.strata.snapshots().len(), snaps);
    let local = strata(
        &f,
        &s3,
        &[
            "--repo",
            repo.to_str().unwrap(),
            "check",
            "--read-data",
            "--json",
        ],
        &[],
        0,
    );
    assert_eq!(local["problems"].as_array().unwrap().len(), 0, "{local}");
    let remote = strata(
        &f,
        &s3,
        &["--repo", &url, "check", "--read-data", "--json"],
        &[],
        0,
    );
    assert_eq!(remote["problems"].as_array().unwrap().len(), 0, "{remote}");

    // the next run is clean, and status says the offsite copy is whole
    let sum = strata(&f, &s3, &["run", "--json", "--config", &cfg_s], &at(50), 0);
    assert_eq!(step(&sum, "heal")["status"], "skipped", "{sum}");
    assert_eq!(local_packs(&repo), before, "{sum}");
    let st = strata(
        &f,
        &s3,
        &["status", "--json", "--config", &cfg_s],
        &at(50),
        0,
    );
    let c = &st["sync"]["check"];
    assert_eq!(c["damaged_packs"].as_array().unwrap().len(), 0, "{st}");
    assert_eq!(c["coverage"]["fraction"], 1.0, "{st}");
    assert!(c["last"]["time"].is_string(), "{st}");

    // by hand: the mirror's check keeps its own record (not the
    // primary's), status names the damaged pack, sync copies it again
    flip_at(&*s3b, &local_bad);
    strata(&f, &s3, &["--repo", &url, "check", "--read-data"], &[], 1);
    let st = strata(
        &f,
        &s3,
        &["status", "--json", "--config", &cfg_s],
        &at(50),
        5,
    );
    assert_eq!(
        st["sync"]["check"]["damaged_packs"][0],
        local_bad.as_str(),
        "{st}"
    );
    assert_eq!(
        st["check"]["last"]["errors"], 0,
        "the primary's record is its own: {st}"
    );
    let o = cmd(&f, &s3)
        .args(["--repo", repo.to_str().unwrap(), "sync", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("copied again over damaged copies at the destination: 1 files"),
        "{}",
        text(&o)
    );
    assert_eq!(intact(&*s3b), before);
    strata(&f, &s3, &["--repo", &url, "check", "--read-data"], &[], 0);

    // repair packs --from: the mirror's intact copy, nothing salvaged
    let p = support::pack_files(&repo)
        .into_iter()
        .find(|p| name_of(p) == remote_bad)
        .unwrap();
    flip_file(&p);
    strata(
        &f,
        &s3,
        &["--repo", repo.to_str().unwrap(), "check", "--read-data"],
        &[],
        1,
    );
    let r = strata(
        &f,
        &s3,
        &[
            "--repo",
            repo.to_str().unwrap(),
            "repair",
            "packs",
            "--from",
            &url,
            "--json",
        ],
        &[],
        0,
    );
    assert_eq!(r["packs"][0]["restored_from"], url.as_str(), "{r}");
    assert_eq!(r["packs"][0]["salvaged"], 0, "{r}");
    assert_eq!(local_packs(&repo), before, "{r}");
    strata(
        &f,
        &s3,
        &["--repo", repo.to_str().unwrap(), "check", "--read-data"],
        &[],
        0,
    );

    // sync --from the mirror into this repository replaces a pack that
    // a check here found damaged (it said "already there")
    flip_file(&p);
    strata(
        &f,
        &s3,
        &["--repo", repo.to_str().unwrap(), "check", "--read-data"],
        &[],
        1,
    );
    let o = cmd(&f, &s3)
        .args(["sync", "--from", &url, repo.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r = support::parse_json(&o.stdout);
    assert_eq!(r["replaced"]["objects"], 1, "{r}");
    assert_eq!(intact(&*here), before);
    strata(
        &f,
        &s3,
        &["--repo", repo.to_str().unwrap(), "check", "--read-data"],
        &[],
        0,
    );
}
