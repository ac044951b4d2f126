//! Fault battery items 3 and 8 (issue 10): seeded single-bit flips in the
//! packs of a repository holding two snapshots (sharing some files), 50 in
//! an unencrypted and 50 in an encrypted repository in CI
//! (`STRATA_BATTERY_ITERATIONS=N`: N in each). Every pack is hit in turn;
//! the positions cover, pack by pack, the plaintext header, the trailer
//! entries, the footer and the last byte (unencrypted), or the age header,
//! the STREAM nonce, a chunk's authentication tag and the last byte (the
//! final tag; encrypted), then uniformly random bits.
//!
//! After each flip: `check --read-data` exits 1 and a problem names the
//! pack and the blobs it damaged — in a plaintext pack exactly the blob
//! the flipped byte lies in, in an encrypted one exactly the blobs of the
//! flipped age chunk — and the snapshots and paths that use them: exactly
//! those, as a walk of every snapshot's trees made before the flips
//! (`cat --raw tree`, a file by its chunk list, a directory by its tree
//! and parts) finds them, never more; restoring an
//! affected snapshot fails with one `strata:` line and leaves no file with
//! wrong bytes; restoring it again with those paths excluded succeeds and
//! every other file is byte-identical to the source. The pack is then put
//! back and, at the end, VERIFY passes.

use crate::support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use support::{Rng, Taken};

/// Where in a pack a flip lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Spot {
    Header,
    Trailer,
    Footer,
    AgeHeader,
    Nonce,
    Tag,
    LastByte,
    Anywhere,
}

/// A byte offset of `spot` in `pack` (its original bytes).
fn offset(spot: Spot, pack: &[u8], name: &str, rng: &mut Rng) -> usize {
    let len = pack.len();
    match spot {
        Spot::Header => rng.below(8) as usize,
        Spot::Trailer | Spot::Footer => {
            let count = strata::pack::format::parse_pack(pack, name).unwrap().len();
            let footer = len - 44;
            if spot == Spot::Footer {
                footer + rng.below(44) as usize
            } else {
                footer - 52 * count + rng.below(52 * count as u64) as usize
            }
        }
        Spot::AgeHeader | Spot::Nonce | Spot::Tag => {
            // the header ends with the line "--- <mac>\n"; then a 16-byte
            // nonce; then chunks of 64 KiB + a 16-byte tag (keys.md "Packs")
            let mac = pack.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
            let hlen = mac + pack[mac..].iter().position(|&b| b == b'\n').unwrap() + 1;
            match spot {
                Spot::AgeHeader => rng.below(hlen as u64) as usize,
                Spot::Nonce => hlen + rng.below(16) as usize,
                _ => {
                    let chunks = (len - hlen - 16).div_ceil(65552);
                    let c = rng.below(chunks as u64) as usize;
                    let end = (hlen + 16 + (c + 1) * 65552).min(len);
                    end - 16 + rng.below(16) as usize
                }
            }
        }
        Spot::LastByte => len - 1,
        Spot::Anywhere => rng.below(len as u64) as usize,
    }
}

fn flip_bit(path: &Path, at: usize, bit: u8) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 1 << bit;
    fs::write(path, b).unwrap();
}

fn check_json(repo: &Path) -> (Option<i32>, Value) {
    let o = support::run(repo, &[], &["check", "--read-data", "--json"]);
    (o.status.code(), support::parse_json(&o.stdout))
}

/// Is `p` (absolute, as stored) `dir` or above it?
fn covers(p: &str, dir: &Path) -> bool {
    let d = dir.to_str().unwrap();
    p == "/" || d == p || d.starts_with(&format!("{p}/"))
}

/// The recorded manifest without `rel` and what is below it.
fn without(m: &support::Manifest, rels: &BTreeSet<String>) -> support::Manifest {
    m.iter()
        .filter(|(k, _)| {
            !rels
                .iter()
                .any(|r| *k == r || k.starts_with(&format!("{r}/")))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn build(root: &Path, init: &[&str], rng: &mut Rng) -> (PathBuf, Vec<Taken>) {
    let repo = root.join("repo");
    support::init_small(&repo, init);
    let mut taken = Vec::new();
    for k in 0..2 {
        let src = root.join(format!("src{k}"));
        support::write_file(&src.join("shared"), &support::random_bytes(7, 300_000));
        for i in 0..3 {
            let n = rng.range(100_000, 700_000) as usize;
            support::write_file(&src.join(format!("big{i}")), &rng.bytes(n));
        }
        for i in 0..8 {
            let n = rng.range(1, 4000) as usize;
            support::write_file(&src.join(format!("d{}/small{i}", i % 2)), &rng.text(n));
        }
        taken.push(support::take(&repo, &[], &src));
    }
    (repo, taken)
}

/// A (snapshot, path) that uses a blob.
type Use = (String, String);

/// A use of a blob and the tree blobs above it (the trees and parts of the
/// directories it lies in): `check` names a use only when none of those is
/// damaged too, since it cannot walk below a damaged directory (it names
/// that directory, whose contents went with it).
type Users = BTreeMap<String, Vec<(Use, Vec<String>)>>;

/// Who uses each blob (hex id), as `check` names them (format-spec/check.md):
/// a data blob by the files whose chunk list holds it, a tree blob (or a
/// part of one) by its directory; paths absolute. Found by walking every
/// snapshot's trees with `cat --raw`, before anything is damaged.
fn blob_users(repo: &Path, taken: &[Taken]) -> Users {
    fn walk(repo: &Path, snap: &str, tree: &str, path: &str, above: &[String], out: &mut Users) {
        let use_of = |p: &str| (snap.to_string(), p.to_string());
        out.entry(tree.to_string())
            .or_default()
            .push((use_of(path), above.to_vec()));
        let mut here = above.to_vec();
        here.push(tree.to_string());
        let t = support::json(repo, &[], &["cat", "--raw", "tree", tree]);
        let mut entries: Vec<(Value, Vec<String>)> = t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e.clone(), here.clone()))
            .collect();
        for part in t["parts"].as_array().unwrap() {
            let part = part.as_str().unwrap();
            out.entry(part.to_string())
                .or_default()
                .push((use_of(path), here.clone()));
            let mut in_part = here.clone();
            in_part.push(part.to_string());
            let p = support::json(repo, &[], &["cat", "--raw", "tree", part]);
            for e in p["entries"].as_array().unwrap() {
                entries.push((e.clone(), in_part.clone()));
            }
        }
        for (e, above) in entries {
            let name = e["name"].as_str().unwrap();
            let child = if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            };
            for c in e["content"].as_array().unwrap() {
                out.entry(c.as_str().unwrap().to_string())
                    .or_default()
                    .push((use_of(&child), above.clone()));
            }
            if let Some(sub) = e["subtree"].as_str() {
                walk(repo, snap, sub, &child, &above, out);
            }
        }
    }
    let mut out = Users::new();
    for t in taken {
        let s = support::json(repo, &[], &["cat", "--raw", "snapshot", &t.id]);
        walk(repo, &t.id, s["tree"].as_str().unwrap(), "/", &[], &mut out);
    }
    out
}

/// The blobs of a pack (hex id) with their plaintext byte ranges, from its
/// original bytes (decrypted with `secret` when encrypted), and where its
/// trailer begins in the plaintext (pack.md: entries of 52 bytes, then a
/// 44-byte footer).
fn blob_ranges(
    pack: &[u8],
    name: &str,
    secret: Option<&support::Secret>,
) -> (Vec<(String, usize, usize)>, usize) {
    let plain = match secret {
        Some(s) => s.decrypt(pack),
        None => pack.to_vec(),
    };
    let entries = strata::pack::format::parse_pack(&plain, name).unwrap();
    let trailer = plain.len() - 44 - 52 * entries.len();
    let ranges = entries
        .iter()
        .map(|e| {
            let (at, len) = (e.offset as usize, e.stored_len as usize);
            (e.id.to_hex(), at, at + len)
        })
        .collect();
    (ranges, trailer)
}

/// The blobs a flip of byte `at` must damage, when the test can say
/// exactly: in a plaintext pack the blob whose bytes hold `at` (none when
/// it lies in the header, trailer or footer: `None` then); in an encrypted
/// one every blob overlapping the plaintext of the flipped age chunk (a tag
/// or payload byte of chunk c covers plaintext bytes c*64 KiB up to
/// (c+1)*64 KiB), or every blob of the pack when that chunk holds the
/// pack's header or part of its trailer (an index rebuild could find none
/// of them again: "unreadable once the index is rebuilt"); `None` for the
/// age header and the nonce.
fn must_damage(
    (ranges, trailer): &(Vec<(String, usize, usize)>, usize),
    pack: &[u8],
    at: usize,
    encrypted: bool,
) -> Option<BTreeSet<String>> {
    if !encrypted {
        let hit: BTreeSet<String> = ranges
            .iter()
            .filter(|(_, a, b)| (*a..*b).contains(&at))
            .map(|(id, ..)| id.clone())
            .collect();
        return (!hit.is_empty()).then_some(hit);
    }
    let mac = pack.windows(5).position(|w| w == b"\n--- ").unwrap() + 5;
    let hlen = mac + pack[mac..].iter().position(|&b| b == b'\n').unwrap() + 1;
    if at < hlen + 16 {
        return None; // the header or the nonce: the whole pack
    }
    let c = (at - hlen - 16) / 65552;
    let (lo, hi) = (c * 65536, (c + 1) * 65536);
    // the pack's 8-byte header is in chunk 0, its trailer in the last ones
    let all = lo < 8 || hi > *trailer;
    Some(
        ranges
            .iter()
            .filter(|(_, a, b)| all || (*a < hi && *b > lo))
            .map(|(id, ..)| id.clone())
            .collect(),
    )
}

fn battery(init: &[&str], encrypted: bool, seed: u64) {
    let flips = support::battery_iterations(50);
    let tmp = support::scratch_tempdir();
    let root = tmp.path();
    let mut rng = Rng::new(seed);
    let (repo, taken) = build(root, init, &mut rng);
    support::verify(&repo, &[], &taken, root, "before the flips");
    let users = blob_users(&repo, &taken);
    let secret = encrypted.then(|| support::Secret::read(&repo));
    let packs = support::pack_files(&repo);
    let mut exact = 0;
    let spots: &[Spot] = if encrypted {
        &[Spot::AgeHeader, Spot::Tag, Spot::LastByte, Spot::Nonce]
    } else {
        &[Spot::Header, Spot::Trailer, Spot::LastByte, Spot::Footer]
    };
    let mut by_spot: BTreeMap<Spot, u32> = BTreeMap::new();
    let (mut restores_failed, mut restores_intact, mut files_restored_around) = (0, 0, 0);
    for i in 0..flips {
        let pack = &packs[i % packs.len()];
        let name = pack.file_name().unwrap().to_string_lossy().into_owned();
        let orig = fs::read(pack).unwrap();
        let spot = spots
            .get(i / packs.len())
            .copied()
            .unwrap_or(Spot::Anywhere);
        let at = offset(spot, &orig, &name, &mut rng);
        let bit = rng.below(8) as u8;
        let what = format!(
            "flip {i} ({}, seed {seed}): bit {bit} of byte {at} ({spot:?}) of pack {} ({} bytes)",
            if encrypted { "encrypted" } else { "plain" },
            &name[..12],
            orig.len()
        );
        *by_spot.entry(spot).or_default() += 1;
        flip_bit(pack, at, bit);

        let (code, v) = check_json(&repo);
        assert_eq!(code, Some(1), "{what}: check --read-data: {v}");
        let problems = v["problems"].as_array().unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p["pack"].as_str() == Some(name.as_str())),
            "{what}: no problem names the pack: {v}"
        );
        // snapshot -> paths using what the flip damaged
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut named: BTreeSet<Use> = BTreeSet::new();
        let mut damaged: BTreeSet<String> = BTreeSet::new();
        for p in problems {
            for u in p["used_by"].as_array().unwrap() {
                let (s, path) = (u["snapshot"].as_str().unwrap(), u["path"].as_str().unwrap());
                uses.entry(s.to_string())
                    .or_default()
                    .insert(path.to_string());
                named.insert((s.to_string(), path.to_string()));
            }
            for b in p["blobs"].as_array().unwrap() {
                damaged.insert(b["id"].as_str().unwrap().to_string());
            }
        }
        assert!(!uses.is_empty(), "{what}: no snapshot or path named: {v}");
        // the blobs named are the ones the flip damaged …
        let ranges = blob_ranges(&orig, &name, secret.as_ref());
        if let Some(want) = must_damage(&ranges, &orig, at, encrypted) {
            assert_eq!(damaged, want, "{what}: damaged blobs named by check: {v}");
            exact += 1;
        }
        let in_pack: BTreeSet<String> = ranges.0.iter().map(|(id, ..)| id.clone()).collect();
        assert!(
            damaged.is_subset(&in_pack),
            "{what}: blobs of other packs named damaged: {v}"
        );
        // … and the paths named are exactly their users
        let want: BTreeSet<Use> = damaged
            .iter()
            .flat_map(|b| users.get(b).into_iter().flatten())
            .filter(|(_, above)| !above.iter().any(|t| damaged.contains(t)))
            .map(|(u, _)| u.clone())
            .collect();
        assert_eq!(
            named, want,
            "{what}: the paths check names as affected: {v}"
        );

        // restore of an affected snapshot (one per flip, in turn)
        let k = i % uses.len();
        let (snap, paths) = uses.iter().nth(k).unwrap();
        let t = taken
            .iter()
            .find(|t| &t.id == snap)
            .unwrap_or_else(|| panic!("{what}: used by an unknown snapshot {snap}: {v}"));
        let target = root.join("target");
        let _ = fs::remove_dir_all(&target);
        let o = support::run(
            &repo,
            &[],
            &["restore", snap, "--target", target.to_str().unwrap()],
        );
        let dir = support::under(&target, &t.source);
        if o.status.success() {
            // the flip spared every blob this snapshot reads (a header,
            // trailer or footer: blobs are read by offset and each checked
            // against its id): then every byte must be right
            support::assert_matches_manifest(
                &t.manifest,
                &dir,
                &support::Compare::contents_only(),
                &format!("{what}: a restore that succeeded"),
            );
            restores_intact += 1;
        } else {
            support::one_line_error(&o, &what);
            restores_failed += 1;
            support::assert_no_wrong_bytes(t, &target, &what);
        }
        let _ = fs::remove_dir_all(&target);
        if !paths.iter().any(|p| covers(p, &t.source)) {
            let src = t.source.to_str().unwrap();
            let mut args = vec!["restore".to_string(), snap.clone(), "--target".into()];
            args.push(target.to_str().unwrap().into());
            let mut rels = BTreeSet::new();
            for p in paths {
                args.push("--exclude".into());
                args.push(p.clone());
                rels.insert(p.strip_prefix(&format!("{src}/")).unwrap().to_string());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = support::run(&repo, &[], &args);
            assert!(
                o.status.success(),
                "{what}: the restore around the damage failed: {}\ncheck said: {v}",
                String::from_utf8_lossy(&o.stderr)
            );
            let want = without(&t.manifest, &rels);
            support::assert_matches_manifest(
                &want,
                &dir,
                &support::Compare::contents_only(),
                &format!("{what}: the files it did not damage"),
            );
            files_restored_around += want.len();
            let _ = fs::remove_dir_all(&target);
        }
        fs::write(pack, &orig).unwrap();
    }
    support::verify(&repo, &[], &taken, root, "after the flips were undone");
    println!(
        "battery_flips ({}): {flips} flips in {} packs {by_spot:?}: each found by check --read-data \
         with pack, snapshot and path; {restores_failed} restores of an affected snapshot failed \
         with one line, {restores_intact} read only undamaged blobs and were byte-identical; \
         {files_restored_around} entries restored around the damage; 0 wrong bytes; \
         {exact} flips with the damaged blob set known exactly, all matched",
        if encrypted { "encrypted" } else { "plain" },
        packs.len()
    );
    assert!(exact > 0, "no flip with a damaged blob set known exactly");
}

#[test]
fn bit_flips_in_plain_packs_are_found_and_never_restored() {
    let seed = support::battery_seed("battery_flips plain", 0xF11B_0001);
    battery(&["--no-encryption"], false, seed);
}

#[test]
fn bit_flips_in_encrypted_packs_are_found_and_never_restored() {
    let seed = support::battery_seed("battery_flips encrypted", 0xF11B_0002);
    battery(&[], true, seed);
}
