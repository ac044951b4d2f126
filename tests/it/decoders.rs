//! Decoders never panic: random bytes, and valid files from
//! `format-spec/vectors/repo` with random mutations, go into every decoder of
//! repository bytes. Bad input must come back as `Err` (each test asserts
//! it for the inputs where it must hold); a mutation that fixes up the
//! checksums may decode, but must never panic, and what a tree decoder
//! accepts must be a valid tree.

use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;
use strata::BlobId;
use strata::object::{self, ObjectKind};
use strata::pack::format::parse_pack;
use strata::repo::config::Config;
use strata::snapshot::Snapshot;
use strata::snapshot::tree::Tree;

/// Valid inputs to mutate, read from the vector repository.
struct Seeds {
    config: Vec<u8>,
    snapshots: Vec<Vec<u8>>,
    packs: Vec<Vec<u8>>,
    trees: Vec<Vec<u8>>,
}

fn seeds() -> &'static Seeds {
    static S: OnceLock<Seeds> = OnceLock::new();
    S.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/repo");
        let config = std::fs::read(repo.join("config")).unwrap();
        let mut snapshots = Vec::new();
        for e in std::fs::read_dir(repo.join("snapshots")).unwrap() {
            snapshots.push(std::fs::read(e.unwrap().path()).unwrap());
        }
        let mut packs = Vec::new();
        for d in std::fs::read_dir(repo.join("packs")).unwrap() {
            for f in std::fs::read_dir(d.unwrap().path()).unwrap() {
                packs.push(std::fs::read(f.unwrap().path()).unwrap());
            }
        }
        let mut trees = Vec::new();
        for p in &packs {
            for e in parse_pack(p, "seed").unwrap() {
                if e.kind == strata::blob::BlobKind::Tree {
                    let stored = &p[e.offset as usize..e.offset as usize + e.stored_len as usize];
                    trees.push(
                        strata::blob::decompress(
                            stored,
                            e.compression,
                            e.raw_len as usize,
                            &|| "seed".into(),
                        )
                        .unwrap(),
                    );
                }
            }
        }
        assert!(!snapshots.is_empty() && !packs.is_empty() && !trees.is_empty());
        Seeds {
            config,
            snapshots,
            packs,
            trees,
        }
    })
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Overwrite 1..=9 bytes with a large varint-like value.
    Big(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, x)| Mutation::Set(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1..64usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), 251..=255u8).prop_map(|(i, t)| Mutation::Big(i, t)),
    ]
}

fn apply(mut b: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let len = b.len();
        match m {
            Mutation::Flip(i, x) if len > 0 => b[i % len] ^= x,
            Mutation::Set(i, x) if len > 0 => b[i % len] = *x,
            Mutation::Truncate(i) => b.truncate(i % (len + 1)),
            Mutation::Insert(i, v) => {
                let at = i % (len + 1);
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i % len;
                b.drain(at..(at + n).min(len));
            }
            Mutation::Big(i, t) if len > 0 => {
                let at = i % len;
                b[at] = *t;
                for x in b.iter_mut().skip(at + 1).take(8) {
                    *x = 0xff;
                }
            }
            _ => {}
        }
    }
    b
}

/// Re-seal an envelope whose body was mutated: correct id and length, so the
/// body decoder (bincode and the checks after it) is what gets exercised.
fn reseal(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"STRATA".to_vec();
    out.push(kind);
    out.push(1);
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Rewrite a pack's footer so it matches its (mutated) trailer region of
/// `count` entries, so entry decoding and the layout checks get exercised.
fn refooter(pack: &[u8], count: u32) -> Vec<u8> {
    let mut b = pack.to_vec();
    if b.len() < 44 {
        return b;
    }
    let n = b.len();
    let tlen = (count as usize) * 52;
    if tlen + 44 > n {
        return b;
    }
    let h = *blake3::hash(&b[n - 44 - tlen..n - 44]).as_bytes();
    b[n - 44..n - 40].copy_from_slice(&count.to_le_bytes());
    b[n - 40..n - 8].copy_from_slice(&h);
    b
}

/// Feed `bytes` to every decoder; returns which ones accepted it.
fn all_decoders(bytes: &[u8]) -> [bool; 9] {
    let id = BlobId::of(bytes);
    let identity = age::x25519::Identity::generate();
    [
        parse_pack(bytes, "fuzz").is_ok(),
        object::open::<Config>(ObjectKind::Config, bytes, "fuzz", None).is_ok(),
        Snapshot::open(bytes, "fuzz", None, &Default::default()).is_ok(),
        Tree::decode(bytes, &id).is_ok(),
        Config::from_bytes(bytes, "fuzz", None).is_ok(),
        strata::repo::keys::open_info(bytes, "fuzz", None).is_ok(),
        strata::crypto::agefile::decrypt(bytes, &[&identity], "fuzz", 1 << 16).is_ok(),
        object::open::<strata::repo::gcstate::GcState>(ObjectKind::GcState, bytes, "fuzz", None)
            .is_ok(),
        object::open::<strata::dict::DictFile>(ObjectKind::Dict, bytes, "fuzz", None).is_ok(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let ok = all_decoders(&bytes);
        // Without a valid checksum nothing with a checksum may be accepted.
        prop_assert!(!ok[0] && !ok[1] && !ok[2] && !ok[4] && !ok[5] && !ok[6] && !ok[7] && !ok[8], "{ok:?}");
        // A tree blob has no checksum of its own (its id is checked by the
        // reader): short random bytes can be a valid tree encoding (`00 00`
        // is the empty tree). Whatever is accepted must be a valid tree.
        if let Ok(t) = Tree::decode(&bytes, &BlobId::of(&bytes)) {
            assert_valid_tree(&t)?;
        }
    }

    #[test]
    fn random_bytes_behind_valid_headers_are_rejected(
        kind in prop_oneof![Just(b'C'), Just(b'S'), Just(b'P'), Just(b'I'), Just(b'K'), Just(b'G'), Just(b'D'), any::<u8>()],
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        // "STRATA", a kind, version 1, then random bytes where the id,
        // length and body go: the id cannot match, every decoder says Err
        let mut b = b"STRATA".to_vec();
        b.push(kind);
        b.push(1);
        b.extend_from_slice(&body);
        let ok = all_decoders(&b);
        prop_assert!(ok.iter().all(|&x| !x), "accepted by {ok:?}");
        // an age header line followed by garbage is rejected, not a panic
        let mut a = strata::crypto::agefile::AGE_MAGIC.to_vec();
        a.extend_from_slice(&body);
        let identity = age::x25519::Identity::generate();
        prop_assert!(strata::crypto::agefile::decrypt(&a, &[&identity], "fuzz", 1 << 16).is_err());
        // a pack-shaped file with a random tail: the footer magic is missing
        let mut p = b"STRATAP\x01".to_vec();
        p.extend_from_slice(&body);
        prop_assert!(parse_pack(&p, "fuzz").is_err());
    }

    #[test]
    fn random_bodies_in_sealed_envelopes_decode_only_as_their_kind(
        kind in prop_oneof![Just(b'C'), Just(b'S'), Just(b'P'), Just(b'I'), Just(b'K'), Just(b'G'), Just(b'D'), any::<u8>()],
        body in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        // A random body with a correct id and length: only the decoder of
        // that kind gets as far as the body, where a random body almost
        // always fails, but may be a valid encoding by chance (then it is
        // accepted, which is right). Every other decoder rejects it.
        let b = reseal(kind, &body);
        let ok = all_decoders(&b);
        let own = match kind {
            b'C' => Some(1),
            b'S' => Some(2),
            b'I' => Some(5),
            b'G' => Some(7),
            b'D' => Some(8),
            _ => None,
        };
        for (i, &accepted) in ok.iter().enumerate() {
            // Config::from_bytes (4) also decodes kind C, then validates
            let may = Some(i) == own || (kind == b'C' && i == 4);
            prop_assert!(!accepted || may, "kind {kind:#x}: accepted by decoder {i}: {ok:?}");
        }
    }

    #[test]
    fn mutated_envelopes_never_panic(
        which in any::<usize>(),
        ms in prop::collection::vec(mutation(), 1..6),
        fix in any::<bool>(),
    ) {
        let s = seeds();
        let (kind, orig) = if which % 3 == 0 {
            (b'C', &s.config)
        } else {
            (b'S', &s.snapshots[which % s.snapshots.len()])
        };
        let bytes = if fix && orig.len() >= 44 {
            let body = apply(orig[44..].to_vec(), &ms);
            reseal(kind, &body)
        } else {
            apply(orig.clone(), &ms)
        };
        let as_config = object::open::<Config>(ObjectKind::Config, &bytes, "fuzz", None);
        let as_snap = Snapshot::open(&bytes, "fuzz", None, &Default::default());
        let cfg = Config::from_bytes(&bytes, "fuzz", None);
        if !fix && bytes != *orig {
            prop_assert!(as_config.is_err() && as_snap.is_err() && cfg.is_err());
        }
        // a config is never a snapshot and vice versa
        prop_assert!(!(as_config.is_ok() && as_snap.is_ok()));
        for e in [as_config.err(), as_snap.err(), cfg.err()].into_iter().flatten() {
            let msg = e.to_string();
            prop_assert!(msg.contains("fuzz") && !msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn mutated_packs_never_panic(
        which in any::<usize>(),
        ms in prop::collection::vec(mutation(), 1..6),
        fix in any::<bool>(),
        count_delta in -2i64..=2,
    ) {
        let s = seeds();
        let orig = &s.packs[which % s.packs.len()];
        let mut bytes = apply(orig.clone(), &ms);
        if fix && bytes.len() >= 44 {
            let n = bytes.len();
            let count = u32::from_le_bytes(bytes[n - 44..n - 40].try_into().unwrap());
            let count = (i64::from(count) + count_delta).clamp(0, 1 << 20) as u32;
            bytes = refooter(&bytes, count);
        }
        match parse_pack(&bytes, "fuzz") {
            Ok(entries) => {
                // whatever is accepted describes the file exactly
                let mut next = 8u64;
                for e in &entries {
                    prop_assert_eq!(e.offset, next);
                    next += u64::from(e.stored_len);
                }
                prop_assert_eq!(next + 52 * entries.len() as u64 + 44, bytes.len() as u64);
                // reading each blob is checked, never a panic
                for e in &entries {
                    let stored = &bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
                    if let Ok(raw) = strata::blob::decompress(stored, e.compression, e.raw_len as usize, &|| "fuzz".into()) {
                        prop_assert_eq!(raw.len(), e.raw_len as usize);
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("fuzz")),
        }
    }

    #[test]
    fn mutated_trees_never_panic(
        which in any::<usize>(),
        ms in prop::collection::vec(mutation(), 1..6),
    ) {
        let s = seeds();
        let orig = &s.trees[which % s.trees.len()];
        let bytes = apply(orig.clone(), &ms);
        let id = BlobId::of(&bytes);
        if let Ok(t) = Tree::decode(&bytes, &id) {
            assert_valid_tree(&t)?;
        }
    }
}

/// What `Tree::decode` accepts is safe to restore: names sorted, unique and
/// valid, kinds known; and it can be encoded again.
fn assert_valid_tree(t: &Tree) -> Result<(), TestCaseError> {
    for w in t.entries.windows(2) {
        prop_assert!(w[0].name < w[1].name);
    }
    for e in &t.entries {
        prop_assert!(strata::snapshot::tree::valid_name(&e.name));
        prop_assert!(strata::snapshot::tree::EntryKind::from_u8(e.kind).is_some());
    }
    prop_assert!(t.encode().is_ok());
    Ok(())
}

#[test]
fn seeds_decode_unmutated() {
    // The mutation tests start from valid files: make sure they are.
    let s = seeds();
    assert!(Config::from_bytes(&s.config, "config", None).is_ok());
    for b in &s.snapshots {
        assert!(Snapshot::open(b, "s", None, &Default::default()).is_ok());
    }
    for p in &s.packs {
        assert!(parse_pack(p, "p").is_ok());
    }
    for t in &s.trees {
        assert!(Tree::decode(t, &BlobId::of(t)).is_ok());
    }
    // and a single flipped bit anywhere in an envelope is rejected
    for i in 0..s.config.len() {
        let mut b = s.config.clone();
        b[i] ^= 0x10;
        assert!(Config::from_bytes(&b, "config", None).is_err(), "byte {i}");
    }
}

#[test]
fn huge_length_prefixes_are_rejected() {
    // Vec lengths far beyond the input (and beyond the 64 MiB decoder limit)
    // must fail cleanly, not allocate or panic.
    let lens: Vec<Vec<u8>> = vec![
        vec![253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![253, 0, 0, 0, 0, 0, 0, 0, 1],
        vec![252, 0xff, 0xff, 0xff, 0x03], // just under 64 MiB
        vec![252, 0, 0, 0, 0x04],          // exactly 64 MiB
        vec![254, 1, 2, 3],                // the u128 tag
        vec![255],
    ];
    for l in &lens {
        let tree = l.clone();
        assert!(Tree::decode(&tree, &BlobId::of(&tree)).is_err(), "{l:?}");
        // a snapshot whose `host` string claims that length
        let mut body = vec![0u8]; // time 0
        body.extend_from_slice(l);
        body.extend_from_slice(b"host");
        let snap = reseal(b'S', &body);
        assert!(Snapshot::open(&snap, "s", None, &Default::default()).is_err());
        // a config whose chunker sizes are huge varints
        let mut body = vec![1u8];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(l);
        let cfg = reseal(b'C', &body);
        assert!(Config::from_bytes(&cfg, "c", None).is_err());
    }
    // an envelope whose length field claims more than the limit
    let mut b = reseal(b'S', b"");
    b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(Snapshot::open(&b, "s", None, &Default::default()).is_err());
    // a pack footer claiming u32::MAX entries
    let s = seeds();
    let mut p = s.packs[0].clone();
    let n = p.len();
    p[n - 44..n - 40].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(parse_pack(&p, "p").is_err());
}

// ------------------------------------------------- hostile values (issue 10)

/// `u64` as a bincode varint (objects.md "Bincode, spelled out").
fn varint(v: u64) -> Vec<u8> {
    match v {
        0..=250 => vec![v as u8],
        251..=0xffff => [&[251u8][..], &(v as u16).to_le_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[252u8][..], &(v as u32).to_le_bytes()].concat(),
        _ => [&[253u8][..], &v.to_le_bytes()].concat(),
    }
}

/// Length of the varint at the start of `b`.
fn varint_len(b: &[u8]) -> usize {
    match b[0] {
        251 => 3,
        252 => 5,
        253 => 9,
        254 => 17,
        _ => 1,
    }
}

/// Offset just past a length-prefixed byte string (String, Vec<u8>) at `at`.
fn skip_bytes(b: &[u8], at: usize) -> usize {
    let n = varint_len(&b[at..]);
    let len = match n {
        1 => u64::from(b[at]),
        3 => u64::from(u16::from_le_bytes(b[at + 1..at + 3].try_into().unwrap())),
        5 => u64::from(u32::from_le_bytes(b[at + 1..at + 5].try_into().unwrap())),
        _ => u64::from_le_bytes(b[at + 1..at + 9].try_into().unwrap()),
    };
    at + n + len as usize
}

/// `body` with the varint at `at` replaced by `v`.
fn with_varint(body: &[u8], at: usize, v: u64) -> Vec<u8> {
    let n = varint_len(&body[at..]);
    [&body[..at], &varint(v)[..], &body[at + n..]].concat()
}

/// An envelope like `orig` (same kind and version) around `body`.
fn reseal_like(orig: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = orig[..8].to_vec();
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

const MAX_LEN: u64 = u64::MAX; // a length of 2^64 - 1
const HUGE_COUNT: u64 = 1_000_000_000_000; // a count of 10^12

/// Hostile inputs made from the valid vectors: lengths of 2^64 - 1, counts
/// of 10^12, and pack entries whose offset + length runs past the end,
/// each with a correct checksum so that the decoder behind it is reached.
/// (There is no deep nesting to give a decoder: no format structure is
/// recursive; a directory names its subdirectories by id.) Each is `(fuzz
/// target, name, bytes)`: they are also the checked-in seeds
/// `fuzz/seeds/<target>/hostile-<name>`.
fn hostile_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let s = seeds();
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors");
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut env = |name: &str, b: Vec<u8>| out.push(("object_envelope", name.to_string(), b));

    // snapshot manifests: host length, paths count, tags count
    for (i, snap) in s.snapshots.iter().enumerate() {
        let body = &snap[44..];
        let host = varint_len(body); // after time_unix_ns
        let user = skip_bytes(body, host);
        let paths = skip_bytes(body, user);
        env(
            &format!("snapshot{i}-host-len-max"),
            reseal_like(snap, &with_varint(body, host, MAX_LEN)),
        );
        env(
            &format!("snapshot{i}-paths-count-1e12"),
            reseal_like(snap, &with_varint(body, paths, HUGE_COUNT)),
        );
        let mut tags = paths + varint_len(&body[paths..]);
        for _ in 0..body[paths] {
            tags = skip_bytes(body, tags); // single-byte count in the vectors
        }
        env(
            &format!("snapshot{i}-tags-count-1e12"),
            reseal_like(snap, &with_varint(body, tags, HUGE_COUNT)),
        );
        // the envelope's own length field claims 2^32 - 1 bytes
        let mut b = snap.clone();
        b[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        env(&format!("snapshot{i}-envelope-len-max"), b);
    }

    // config: chunk sizes and pack size of 2^64 - 1
    let cfg = &s.config;
    let body = &cfg[44..];
    let min = varint_len(body) + 32; // version, repo_id
    env(
        "config-chunk-min-max",
        reseal_like(cfg, &with_varint(body, min, MAX_LEN)),
    );
    let mut at = min;
    for _ in 0..3 {
        at += varint_len(&body[at..]); // min, avg, max
    }
    at += 1; // normalization
    at += varint_len(&body[at..]); // seed
    at += varint_len(&body[at..]); // compression_level
    env(
        "config-pack-size-max",
        reseal_like(cfg, &with_varint(body, at, MAX_LEN)),
    );

    // gc state: host length, condemned count
    for e in std::fs::read_dir(vectors.join("gc")).unwrap() {
        let g = std::fs::read(e.unwrap().path()).unwrap();
        let body = &g[44..];
        let host = varint_len(body);
        let condemned = skip_bytes(body, host);
        env(
            "gcstate-host-len-max",
            reseal_like(&g, &with_varint(body, host, MAX_LEN)),
        );
        env(
            "gcstate-condemned-count-1e12",
            reseal_like(&g, &with_varint(body, condemned, HUGE_COUNT)),
        );
    }

    // dictionary: its bytes claim 2^64 - 1
    for e in std::fs::read_dir(vectors.join("repo2/dicts")).unwrap() {
        let d = std::fs::read(e.unwrap().path()).unwrap();
        let body = &d[44..];
        let len = varint_len(body);
        let len = len + varint_len(&body[len..]); // created, samples
        env(
            "dict-len-max",
            reseal_like(&d, &with_varint(body, len, MAX_LEN)),
        );
    }

    // key info (its vectors are encrypted): an id, then a label of 2^64 - 1
    let body = [&[1u8, b'k'][..], &varint(MAX_LEN)[..], b"label"].concat();
    env("keyinfo-label-len-max", reseal(b'I', &body));

    // trees: entry count, first name length
    for (i, t) in s.trees.iter().enumerate().take(2) {
        let start = if t.starts_with(&[0xff, 0x02]) { 2 } else { 0 };
        let count = with_varint(t, start, HUGE_COUNT);
        out.push(("tree_decode", format!("tree{i}-count-1e12"), count));
        if t[start] > 0 {
            let name = start + varint_len(&t[start..]);
            let b = with_varint(t, name, MAX_LEN);
            out.push(("tree_decode", format!("tree{i}-name-len-max"), b));
        }
    }

    // packs: entry fields past the end, with the trailer hash fixed up
    let pack = &s.packs[0];
    let n = pack.len();
    let count = u32::from_le_bytes(pack[n - 44..n - 40].try_into().unwrap()) as usize;
    let first = n - 44 - 52 * count;
    let entry = |field: std::ops::Range<usize>, value: &[u8], which: usize| {
        let mut b = pack.clone();
        let at = first + 52 * which + field.start;
        b[at..at + field.len()].copy_from_slice(value);
        refooter(&b, count as u32)
    };
    let mut packs = vec![
        (
            "entry-offset-max",
            entry(32..40, &u64::MAX.to_le_bytes(), 0),
        ),
        (
            "entry-stored-len-max",
            entry(40..44, &u32::MAX.to_le_bytes(), 0),
        ),
        (
            "entry-raw-len-max",
            entry(44..48, &u32::MAX.to_le_bytes(), 0),
        ),
        ("last-entry-past-trailer", {
            // stored and raw length one more (equal for a raw blob)
            let last = count - 1;
            let at = first + 52 * last + 40;
            let len = |at: usize| u32::from_le_bytes(pack[at..at + 4].try_into().unwrap()) + 1;
            let both = [len(at).to_le_bytes(), len(at + 4).to_le_bytes()].concat();
            entry(40..48, &both, last)
        }),
    ];
    let mut b = pack.clone();
    b[n - 44..n - 40].copy_from_slice(&u32::MAX.to_le_bytes());
    packs.push(("footer-count-max", b));
    let mut b = pack.clone();
    b[n - 44..n - 40].copy_from_slice(&((count + 1) as u32).to_le_bytes());
    packs.push(("footer-count-one-more", refooter(&b, count as u32 + 1)));
    for (name, b) in packs {
        out.push(("pack_trailer", format!("pack-{name}"), b.clone()));
        // index_rebuild: a first byte 0 picks the plaintext repository
        out.push((
            "index_rebuild",
            format!("pack-{name}"),
            [&[0u8][..], &b].concat(),
        ));
    }
    out
}

#[test]
fn hostile_values_give_bounded_errors() {
    let all = hostile_inputs();
    assert!(all.len() >= 25, "{}", all.len());
    for (target, name, b) in &all {
        let bytes = if *target == "index_rebuild" {
            &b[1..]
        } else {
            &b[..]
        };
        let started = std::time::Instant::now();
        let mut ok = all_decoders(bytes);
        if name == "config-pack-size-max" {
            // a u64 field holds 2^64 - 1: the bare envelope decoder (1)
            // takes it, the config decoder the repository uses (4) checks it
            assert!(ok[1]);
            ok[1] = false;
        }
        assert!(ok.iter().all(|&x| !x), "{name}: accepted by {ok:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{name}: {:?}",
            started.elapsed()
        );
        // the errors are one line and name the object
        if *target == "pack_trailer" {
            let e = parse_pack(bytes, "hostile").unwrap_err().to_string();
            assert!(e.contains("hostile") && !e.contains('\n'), "{name}: {e}");
        }
    }
    // the unpatched vectors behind them decode (the patches are the cause)
    seeds_decode_unmutated();
}

/// The hostile inputs are checked in as fuzz seeds, byte for byte;
/// `STRATA_WRITE_FUZZ_SEEDS=1 cargo test --test it decoders::fuzz_seeds` writes
/// them after a change.
#[test]
fn fuzz_seeds_hold_the_hostile_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let write = std::env::var_os("STRATA_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, b) in hostile_inputs() {
        let p = root.join(target).join(format!("hostile-{name}"));
        if write {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &b).unwrap();
        }
        let on_disk = std::fs::read(&p).unwrap_or_default();
        assert!(
            on_disk == b,
            "{} differs from its generator: run STRATA_WRITE_FUZZ_SEEDS=1 cargo test --test it decoders::fuzz_seeds",
            p.display()
        );
    }
}
