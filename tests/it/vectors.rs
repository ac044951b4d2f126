//! Test vectors: a tiny repository written by strata and checked in under
//! `format-spec/vectors/repo/` (see `format-spec/vectors/README.md`).
//!
//! Every file is decoded twice: by hand, following `format-spec/*.md` byte by
//! byte with code independent of the library (no bincode, no strata types),
//! and by the library; both must agree. The repository is also restored with
//! the binary from a copy that has no `index.sqlite` (the index is a cache)
//! and compared with the contents spelled out below.
//!
//! `cargo test --test it vectors::regenerate_vectors -- --ignored` rewrites the
//! vector repository (new ids, new times): do it only on a format change, and
//! update the README's file list.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::{Compare, Manifest, Node};

/// The checked-in vector repository.
fn vec_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/repo")
}

/// Where the source tree lived when the vectors were made (recorded in the
/// snapshots' `paths`).
const SOURCE_DIR: &str = "/tmp/strata-vectors/tree";

const HELLO_1: &[u8] = b"hello, strata\n";
const HELLO_2: &[u8] = b"hello again, strata: the second snapshot\n";
const NESTED: &[u8] = b"nested file\n";
const LINK_TARGET: &[u8] = b"hello.txt";

/// About 3 KB of compressible text: several chunks at max 1024, zstd blobs.
fn lorem() -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0u32;
    while v.len() < 3000 {
        v.extend_from_slice(
            format!("line {i:04}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        i += 1;
    }
    v
}

/// 700 incompressible bytes: stored raw.
fn random_bin() -> Vec<u8> {
    let mut v = vec![0u8; 700];
    blake3::Hasher::new()
        .update(b"strata format vectors")
        .finalize_xof()
        .fill(&mut v);
    v
}

/// What each snapshot (1 = older) holds below its root entry `tree/`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Want {
    File(Vec<u8>),
    Dir,
    Link(Vec<u8>),
}

fn expected(snapshot: usize) -> BTreeMap<String, Want> {
    let mut m = BTreeMap::new();
    m.insert("tree".into(), Want::Dir);
    m.insert(
        "tree/hello.txt".into(),
        Want::File(if snapshot == 1 { HELLO_1 } else { HELLO_2 }.to_vec()),
    );
    m.insert("tree/lorem.txt".into(), Want::File(lorem()));
    m.insert("tree/random.bin".into(), Want::File(random_bin()));
    m.insert("tree/empty".into(), Want::File(Vec::new()));
    m.insert("tree/link".into(), Want::Link(LINK_TARGET.to_vec()));
    m.insert("tree/emptydir".into(), Want::Dir);
    m.insert("tree/sub".into(), Want::Dir);
    m.insert("tree/sub/nested.txt".into(), Want::File(NESTED.to_vec()));
    if snapshot == 2 {
        // same bytes as lorem.txt: deduplicated, no new data blobs
        m.insert("tree/sub/copy.txt".into(), Want::File(lorem()));
    }
    // More than 128 entries: stored as an index tree and its parts
    // (objects.md "Parts"); one file changes between the snapshots.
    m.insert("tree/many".into(), Want::Dir);
    for i in 0..150 {
        let body = if i == 77 && snapshot == 2 {
            format!("{i} changed\n")
        } else {
            format!("{i}\n")
        };
        m.insert(format!("tree/many/{i:03}"), Want::File(body.into_bytes()));
    }
    m
}

/// [`expected`] as a manifest of the restore target (root `.` a directory).
fn want_manifest(want: BTreeMap<String, Want>) -> Manifest {
    support::manifest_of(want.into_iter().map(|(p, w)| {
        let node = match w {
            Want::Dir => Node::Dir,
            Want::Link(t) => Node::Symlink(t),
            Want::File(b) => Node::File(b.len() as u64, *blake3::hash(&b).as_bytes()),
        };
        (p, node)
    }))
}

fn write_source(dir: &Path, want: BTreeMap<String, Want>) {
    for (path, want) in want {
        let p = dir.parent().unwrap().join(&path);
        match want {
            Want::Dir => std::fs::create_dir_all(&p).unwrap(),
            Want::File(b) => std::fs::write(&p, b).unwrap(),
            Want::Link(t) => {
                let _ = std::fs::remove_file(&p);
                std::os::unix::fs::symlink(std::str::from_utf8(&t).unwrap(), &p).unwrap()
            }
        }
    }
}

/// Make a vector repository at `out`: `strata init INIT`, then one
/// snapshot of `write_source(n)` per `n` in `snapshots`; copies every file
/// but the index, locks and temp files, and prints their names.
fn generate_vectors(
    out: &Path,
    init: &[&str],
    snapshots: &[usize],
    expected: &dyn Fn(usize) -> BTreeMap<String, Want>,
) {
    let (src, repo) = vector_init(init);
    for &n in snapshots {
        write_source(src, expected(n));
        support::ok(&repo, &[], &["snapshot", SOURCE_DIR]);
    }
    vector_copy(&repo, out);
}

/// A new vector repository beside the source tree ([`SOURCE_DIR`], made
/// empty): `strata init` with the smallest chunker and pack sizes and
/// `init`. Returns the source directory and the repository.
fn vector_init(init: &[&str]) -> (&'static Path, PathBuf) {
    let src = Path::new(SOURCE_DIR);
    let base = src.parent().unwrap();
    let _ = std::fs::remove_dir_all(base);
    std::fs::create_dir_all(src).unwrap();
    let repo = base.join("repo");
    let mut args = vec![
        "init",
        "--chunk-min",
        "64",
        "--chunk-avg",
        "256",
        "--chunk-max",
        "1024",
        "--pack-size-mib",
        "1",
    ];
    args.extend_from_slice(init);
    support::ok(&repo, &[], &args);
    (src, repo)
}

/// Copy the repository files of `repo` to `out` (not the local caches: the
/// index, a write-only key's send record; not locks or temp files), print
/// their names, and remove the source and repository.
fn vector_copy(repo: &Path, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    for rel in support::list_files(repo) {
        if rel.starts_with("index.sqlite")
            || rel.starts_with("sent-")
            || rel.starts_with("locks")
            || rel.starts_with("tmp")
        {
            continue;
        }
        let dest = out.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(&rel), dest).unwrap();
    }
    for f in support::list_files(out) {
        println!("{f}");
    }
    std::fs::remove_dir_all(repo.parent().unwrap()).unwrap();
}

#[test]
#[ignore = "rewrites format-spec/vectors/repo; run by hand on a format change"]
fn regenerate_vectors() {
    generate_vectors(
        &vec_repo(),
        &["--no-encryption", "--compression", "3"],
        &[1, 2],
        &expected,
    );
}

// ---------------------------------------------------------------------------
// Hand decoders, written from format-spec/ alone.

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}
fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap())
}

/// A pack trailer entry (pack.md "Trailer entry").
#[derive(Debug, Clone, PartialEq, Eq)]
struct HandEntry {
    id: [u8; 32],
    offset: u64,
    stored_len: u32,
    raw_len: u32,
    kind: u8,
    compression: u8,
}

/// Decode a whole pack by hand; returns the entries and each blob's raw bytes.
fn hand_decode_pack(bytes: &[u8]) -> Vec<(HandEntry, Vec<u8>)> {
    hand_decode_pack_ids(bytes, &|_, raw| *blake3::hash(raw).as_bytes(), &[])
}

/// The dictionary id a zstd frame names (RFC 8878 "Frame_Header"): the
/// descriptor's low two bits give its size (0, 1, 2 or 4 bytes); it follows
/// the window descriptor, which is absent when Single_Segment_flag (bit 5)
/// is set.
fn frame_dict_id_by_hand(frame: &[u8]) -> u32 {
    assert_eq!(&frame[..4], &[0x28, 0xB5, 0x2F, 0xFD], "zstd frame magic");
    let fhd = frame[4];
    let size = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let at = 5 + usize::from(fhd & 0x20 == 0);
    let mut id = [0u8; 4];
    id[..size].copy_from_slice(&frame[at..at + size]);
    u32::from_le_bytes(id)
}

/// A zstd dictionary's own id (magic `37 A4 30 EC`, then the id, LE).
fn dict_id_by_hand(dict: &[u8]) -> u32 {
    assert_eq!(
        &dict[..4],
        &[0x37, 0xA4, 0x30, 0xEC],
        "zstd dictionary magic"
    );
    le_u32(&dict[4..8])
}

/// [`hand_decode_pack`] with the blob id function `id(kind, raw)`, and the
/// repository's dictionaries for compression 2.
fn hand_decode_pack_ids(
    bytes: &[u8],
    id: &dyn Fn(u8, &[u8]) -> [u8; 32],
    dicts: &[Vec<u8>],
) -> Vec<(HandEntry, Vec<u8>)> {
    let len = bytes.len();
    assert!(len >= 8 + 44, "pack shorter than header + footer");
    // Header
    assert_eq!(&bytes[0..6], b"STRATA", "header magic");
    assert_eq!(bytes[6], b'P', "header kind");
    assert!(matches!(bytes[7], 1 | 2), "format version");
    // version 2 (pack.md "Version 2"): 96 bytes of authentication before the footer
    let auth = if bytes[7] == 2 { 96 } else { 0 };
    // Footer
    let footer = &bytes[len - 44..];
    assert_eq!(&footer[36..44], b"STRATEND", "footer magic");
    let count = le_u32(&footer[0..4]) as usize;
    let trailer_start = len - 44 - auth - 52 * count;
    assert!(8 + 52 * count + auth + 44 <= len);
    let trailer = &bytes[trailer_start..len - 44 - auth];
    assert_eq!(
        blake3::hash(trailer).as_bytes(),
        &footer[4..36],
        "trailer hash"
    );
    let mut next = 8u64;
    let mut out = Vec::new();
    for e in trailer.chunks_exact(52) {
        let entry = HandEntry {
            id: e[0..32].try_into().unwrap(),
            offset: le_u64(&e[32..40]),
            stored_len: le_u32(&e[40..44]),
            raw_len: le_u32(&e[44..48]),
            kind: e[48],
            compression: e[49],
        };
        assert_eq!(&e[50..52], &[0, 0], "reserved bytes");
        assert!(entry.kind <= 1, "blob kind");
        assert!(entry.compression <= 2, "compression");
        assert_eq!(entry.offset, next, "blobs contiguous from offset 8");
        next = entry.offset + u64::from(entry.stored_len);
        let stored = &bytes[entry.offset as usize..next as usize];
        let raw = if entry.compression == 0 {
            assert_eq!(entry.stored_len, entry.raw_len, "raw blob lengths");
            stored.to_vec()
        } else if entry.compression == 2 {
            // a zstd frame naming its dictionary (objects.md "Dictionaries")
            let want = frame_dict_id_by_hand(stored);
            let dict = dicts
                .iter()
                .find(|d| dict_id_by_hand(d) == want)
                .expect("the dictionary the frame names");
            zstd::bulk::Decompressor::with_dictionary(dict)
                .unwrap()
                .decompress(stored, entry.raw_len as usize)
                .unwrap()
        } else {
            // one zstd frame (magic 28 B5 2F FD) with the content size
            assert_eq!(&stored[..4], &[0x28, 0xB5, 0x2F, 0xFD], "zstd frame magic");
            let raw = zstd::stream::decode_all(stored).unwrap();
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(stored).unwrap(),
                Some(u64::from(entry.raw_len)),
                "frame carries its content size"
            );
            raw
        };
        assert_eq!(raw.len(), entry.raw_len as usize, "raw length");
        assert_eq!(id(entry.kind, &raw), entry.id, "blob id");
        out.push((entry, raw));
    }
    assert_eq!(
        next as usize, trailer_start,
        "last blob ends at the trailer"
    );
    out
}

/// A bincode 2 `config::standard()` reader, as spelled out in objects.md.
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cur { b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn varint(&mut self) -> u64 {
        match self.u8() {
            v @ 0..=250 => u64::from(v),
            251 => u64::from(u16::from_le_bytes(self.take(2).try_into().unwrap())),
            252 => u64::from(le_u32(self.take(4))),
            253 => le_u64(self.take(8)),
            t => panic!("varint tag {t}"),
        }
    }
    fn u32(&mut self) -> u32 {
        u32::try_from(self.varint()).unwrap()
    }
    fn zigzag(&mut self) -> i64 {
        let u = self.varint();
        ((u >> 1) as i64) ^ -((u & 1) as i64)
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.varint() as usize;
        self.take(n).to_vec()
    }
    fn string(&mut self) -> String {
        String::from_utf8(self.bytes()).unwrap()
    }
    fn arr32(&mut self) -> [u8; 32] {
        self.take(32).try_into().unwrap()
    }
    fn opt32(&mut self) -> Option<[u8; 32]> {
        match self.u8() {
            0 => None,
            1 => Some(self.arr32()),
            b => panic!("option byte {b}"),
        }
    }
    fn done(&self) {
        assert_eq!(self.pos, self.b.len(), "trailing bytes after the body");
    }
}

/// Check an object envelope by hand (objects.md); returns (id, body).
fn hand_envelope(bytes: &[u8], kind: u8) -> ([u8; 32], &[u8]) {
    hand_envelope_tag(bytes, kind, &|body| *blake3::hash(body).as_bytes())
}

/// [`hand_envelope`] with the id function `tag(body)` (a MAC in an
/// encrypted repository).
fn hand_envelope_tag<'a>(
    bytes: &'a [u8],
    kind: u8,
    tag: &dyn Fn(&[u8]) -> [u8; 32],
) -> ([u8; 32], &'a [u8]) {
    assert!(bytes.len() >= 44);
    assert_eq!(&bytes[0..6], b"STRATA", "envelope magic");
    assert_eq!(bytes[6], kind, "envelope kind");
    assert_eq!(bytes[7], 1, "format version");
    let id: [u8; 32] = bytes[8..40].try_into().unwrap();
    let n = le_u32(&bytes[40..44]) as usize;
    assert_eq!(bytes.len(), 44 + n, "file size = 44 + body length");
    let body = &bytes[44..];
    assert_eq!(tag(body), id, "id field = BLAKE3(body), or the MAC");
    (id, body)
}

#[derive(Debug)]
struct HandConfig {
    version: u32,
    repo_id: [u8; 32],
    min: u32,
    avg: u32,
    max: u32,
    normalization: u8,
    seed: u64,
    compression_level: i64,
    pack_target_size: u64,
    encryption: u8,
}

fn hand_config(body: &[u8]) -> HandConfig {
    let mut c = Cur::new(body);
    let h = HandConfig {
        version: c.u32(),
        repo_id: c.arr32(),
        min: c.u32(),
        avg: c.u32(),
        max: c.u32(),
        normalization: c.u8(),
        seed: c.varint(),
        compression_level: c.zigzag(),
        pack_target_size: c.varint(),
        encryption: c.u8(),
    };
    c.done();
    h
}

#[derive(Debug)]
struct HandSnapshot {
    time_unix_ns: i64,
    host: String,
    username: String,
    paths: Vec<Vec<u8>>,
    tags: Vec<String>,
    tree: [u8; 32],
    parent: Option<[u8; 32]>,
    summary: [u64; 12],
    program: String,
}

fn hand_snapshot(body: &[u8]) -> HandSnapshot {
    let mut c = Cur::new(body);
    let time_unix_ns = c.zigzag();
    let host = c.string();
    let username = c.string();
    let paths = (0..c.varint()).map(|_| c.bytes()).collect();
    let tags = (0..c.varint()).map(|_| c.string()).collect();
    let tree = c.arr32();
    let parent = c.opt32();
    let mut summary = [0u64; 12];
    for s in &mut summary {
        *s = c.varint();
    }
    let program = c.string();
    c.done();
    HandSnapshot {
        time_unix_ns,
        host,
        username,
        paths,
        tags,
        tree,
        parent,
        summary,
        program,
    }
}

#[derive(Debug, Clone)]
struct HandEntryT {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_sec: i64,
    mtime_nsec: u32,
    ctime_sec: i64,
    ctime_nsec: u32,
    inode: u64,
    device: u64,
    nlink: u64,
    size: u64,
    rdev: u64,
    content: Vec<[u8; 32]>,
    extents: Vec<(u64, u64)>,
    target: Vec<u8>,
    subtree: Option<[u8; 32]>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    inline: Vec<u8>,
}

/// Decode a tree blob by hand: (entries, parts). Format 2 (objects.md "Tree
/// body") starts `FF 02` and adds `inline` to each entry.
fn hand_tree(blob: &[u8]) -> (Vec<HandEntryT>, Vec<[u8; 32]>) {
    let (v2, body) = match blob {
        [0xFF, 0x02, rest @ ..] => (true, rest),
        _ => (false, blob),
    };
    let mut c = Cur::new(body);
    let n = c.varint();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(HandEntryT {
            name: c.bytes(),
            kind: c.u8(),
            mode: c.u32(),
            uid: c.u32(),
            gid: c.u32(),
            mtime_sec: c.zigzag(),
            mtime_nsec: c.u32(),
            ctime_sec: c.zigzag(),
            ctime_nsec: c.u32(),
            inode: c.varint(),
            device: c.varint(),
            nlink: c.varint(),
            size: c.varint(),
            rdev: c.varint(),
            content: (0..c.varint()).map(|_| c.arr32()).collect(),
            extents: (0..c.varint()).map(|_| (c.varint(), c.varint())).collect(),
            target: c.bytes(),
            subtree: c.opt32(),
            xattrs: (0..c.varint()).map(|_| (c.bytes(), c.bytes())).collect(),
            inline: if v2 { c.bytes() } else { Vec::new() },
        });
    }
    let parts: Vec<[u8; 32]> = (0..c.varint()).map(|_| c.arr32()).collect();
    c.done();
    assert!(out.is_empty() || parts.is_empty(), "entries and parts");
    // sorted by name bytes, unique, safe names
    for w in out.windows(2) {
        assert!(w[0].name < w[1].name, "entries sorted and unique");
    }
    for e in &out {
        assert!(!e.name.is_empty() && e.name != b"." && e.name != b"..");
        assert!(!e.name.contains(&b'/') && !e.name.contains(&0));
        assert!(e.kind <= 6);
        if !e.inline.is_empty() {
            assert!(e.kind == 0 && e.content.is_empty() && e.extents.is_empty());
            assert_eq!(e.size, e.inline.len() as u64, "inline size");
        }
    }
    (out, parts)
}

/// Every pack of the vector repository: (name, bytes).
fn vector_packs() -> Vec<(String, Vec<u8>)> {
    let packs = support::pack_files(&vec_repo());
    assert!(!packs.is_empty(), "no packs in {}", vec_repo().display());
    packs
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect()
}

/// Blob id -> (kind, raw bytes), decoded by hand from every pack.
fn hand_blobs() -> BTreeMap<[u8; 32], (u8, Vec<u8>)> {
    let mut m = BTreeMap::new();
    for (_, bytes) in vector_packs() {
        for (e, raw) in hand_decode_pack(&bytes) {
            m.insert(e.id, (e.kind, raw));
        }
    }
    m
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn vector_repository_has_the_documented_files() {
    let names = support::list_files(&vec_repo());
    assert!(names.contains(&"config".to_string()), "{names:?}");
    assert_eq!(support::snapshot_ids(&vec_repo()).len(), 2, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("index.sqlite")),
        "the index is a cache and must not be checked in: {names:?}"
    );
    // The README lists every file.
    let readme = std::fs::read_to_string(vec_repo().parent().unwrap().join("README.md")).unwrap();
    for n in &names {
        assert!(readme.contains(n.as_str()), "README.md does not list {n}");
    }
}

#[test]
fn pack_name_is_blake3_of_its_bytes() {
    for (name, bytes) in vector_packs() {
        assert_eq!(name, blake3::hash(&bytes).to_hex().as_str());
    }
    for p in support::pack_files(&vec_repo()) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
        assert_eq!(dir, &name[..2], "fan-out directory");
    }
}

#[test]
fn packs_decode_by_hand_and_match_the_library() {
    let mut kinds = std::collections::BTreeSet::new();
    let mut compressions = std::collections::BTreeSet::new();
    for (name, bytes) in vector_packs() {
        let hand = hand_decode_pack(&bytes);
        let lib = strata::pack::format::parse_pack(&bytes, &name).unwrap();
        assert_eq!(hand.len(), lib.len(), "pack {name}: entry count");
        for ((h, raw), l) in hand.iter().zip(&lib) {
            assert_eq!(h.id, l.id.0);
            assert_eq!(h.offset, l.offset);
            assert_eq!(h.stored_len, l.stored_len);
            assert_eq!(h.raw_len, l.raw_len);
            assert_eq!(h.kind, l.kind as u8);
            assert_eq!(h.compression, l.compression as u8);
            // the library's blob codec agrees with the hand decoding
            let stored = &bytes[h.offset as usize..(h.offset + u64::from(h.stored_len)) as usize];
            let lib_raw =
                strata::blob::decompress(stored, l.compression, l.raw_len as usize, &|| {
                    name.clone()
                })
                .unwrap();
            assert_eq!(&lib_raw, raw);
            kinds.insert(h.kind);
            compressions.insert(h.compression);
        }
        // data and tree blobs are never mixed in one pack (pack.md)
        let k: std::collections::BTreeSet<u8> = hand.iter().map(|(e, _)| e.kind).collect();
        assert_eq!(k.len(), 1, "pack {name} mixes blob kinds");
    }
    // the vectors exercise both kinds and both compressions
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(compressions.into_iter().collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn config_decodes_by_hand_and_matches_the_library() {
    let bytes = std::fs::read(vec_repo().join("config")).unwrap();
    let (_, body) = hand_envelope(&bytes, b'C');
    let h = hand_config(body);
    let lib = strata::repo::config::Config::from_bytes(&bytes, "config", None).unwrap();
    assert_eq!(h.version, 1);
    assert_eq!(h.version, lib.version);
    assert_eq!(h.repo_id, lib.repo_id);
    assert_eq!((h.min, h.avg, h.max), (64, 256, 1024), "smallest sizes");
    assert_eq!(
        (h.min, h.avg, h.max),
        (lib.chunker.min, lib.chunker.avg, lib.chunker.max)
    );
    assert_eq!(h.normalization, 1);
    assert_eq!(h.normalization, lib.chunker.normalization);
    assert_eq!(h.seed, 0);
    assert_eq!(h.seed, lib.chunker.seed);
    assert_eq!(h.compression_level, 3);
    assert_eq!(h.compression_level, i64::from(lib.compression_level));
    assert_eq!(h.pack_target_size, 1 << 20);
    assert_eq!(h.pack_target_size, lib.pack_target_size);
    assert_eq!(h.encryption, 0);
    assert_eq!(h.encryption, lib.encryption);
    // the config is never read as a snapshot
    let r = strata::snapshot::Snapshot::open(&bytes, "config", None, &Default::default());
    assert!(r.is_err());
}

#[test]
fn snapshots_decode_by_hand_and_match_the_library() {
    let repo = vec_repo();
    let blobs = hand_blobs();
    let mut snaps = Vec::new();
    for name in support::snapshot_ids(&repo) {
        let bytes = std::fs::read(repo.join("snapshots").join(&name)).unwrap();
        let (id, body) = hand_envelope(&bytes, b'S');
        assert_eq!(name, strata::id::to_hex(&id), "file name = hex(id)");
        let h = hand_snapshot(body);
        // envelope version 1: the by-name layout of format-spec/objects.md
        assert_eq!(bytes[7], 1, "{name}: envelope version");
        let (lib, lib_id) =
            strata::snapshot::Snapshot::open(&bytes, &name, None, &Default::default()).unwrap();
        assert_eq!(lib_id, id);
        assert_eq!(lib.layout(), strata::snapshot::Layout::ByName);
        assert_eq!(h.time_unix_ns, lib.time_unix_ns);
        assert_eq!(h.host, lib.host);
        assert_eq!(h.username, lib.username);
        assert_eq!(h.paths, lib.paths);
        assert_eq!(h.paths, vec![SOURCE_DIR.as_bytes().to_vec()]);
        assert_eq!(h.tags, lib.tags);
        assert_eq!(h.tree, lib.tree.0);
        assert_eq!(h.parent, lib.parent.map(|p| p.0));
        let s = &lib.summary;
        assert_eq!(
            h.summary,
            [
                s.files_new,
                s.files_changed,
                s.files_unchanged,
                s.dirs,
                s.other,
                s.total_bytes,
                s.bytes_read,
                s.blobs_added,
                s.bytes_added,
                s.stored_added,
                s.warnings,
                s.duration_ns
            ]
        );
        assert_eq!(h.program, lib.program);
        assert!(h.program.starts_with("strata "));
        // the root tree is a tree blob present in the packs (INV-4)
        assert_eq!(blobs.get(&h.tree).map(|b| b.0), Some(1), "root tree blob");
        // the wrong kind is rejected
        assert!(strata::repo::config::Config::from_bytes(&bytes, &name, None).is_err());
        snaps.push((name, h));
    }
    snaps.sort_by_key(|s| s.1.time_unix_ns);
    let [(first, s1), (_, s2)] = snaps.as_slice() else {
        panic!("expected two snapshots")
    };
    assert_eq!(s1.parent, None);
    assert_eq!(
        s2.parent.map(|p| strata::id::to_hex(&p)),
        Some(first.clone())
    );
    // snapshot 1 stored every file as new
    assert_eq!(
        s1.summary[0], 155,
        "files_new of snapshot 1 (5 + tree/many)"
    );
}

/// Restore a snapshot by hand from the hand-decoded blobs, checking each tree
/// against `strata::snapshot::tree::Tree::decode`.
fn hand_restore(
    blobs: &BTreeMap<[u8; 32], (u8, Vec<u8>)>,
    tree: &[u8; 32],
    prefix: &str,
    out: &mut BTreeMap<String, Want>,
) {
    for e in hand_listing(blobs, tree, true) {
        let path = format!("{prefix}{}", String::from_utf8(e.name.clone()).unwrap());
        match e.kind {
            0 => {
                assert!(e.extents.is_empty(), "dense files only in the vectors");
                let mut data = e.inline.clone();
                for c in &e.content {
                    let (k, raw) = blobs.get(c).expect("data blob present");
                    assert_eq!(*k, 0, "data blob kind");
                    data.extend_from_slice(raw);
                }
                assert_eq!(data.len() as u64, e.size, "{path}: size");
                out.insert(path, Want::File(data));
            }
            1 => {
                let sub = e.subtree.expect("dir has a subtree");
                out.insert(path.clone(), Want::Dir);
                hand_restore(blobs, &sub, &format!("{path}/"), out);
            }
            2 => {
                out.insert(path, Want::Link(e.target.clone()));
            }
            k => panic!("unexpected entry kind {k} at {path}"),
        }
    }
}

/// A directory's listing decoded by hand, joining parts (objects.md
/// "Parts"), each tree checked against the library's decoder.
fn hand_listing(
    blobs: &BTreeMap<[u8; 32], (u8, Vec<u8>)>,
    tree: &[u8; 32],
    parts_allowed: bool,
) -> Vec<HandEntryT> {
    let (kind, raw) = blobs.get(tree).expect("tree blob present");
    assert_eq!(*kind, 1, "tree blob kind");
    let (hand, parts) = hand_tree(raw);
    let lib =
        strata::snapshot::tree::Tree::decode(raw, &strata::BlobId(*tree)).expect("library decode");
    assert_eq!(parts, lib.parts.iter().map(|p| p.0).collect::<Vec<_>>());
    if !parts.is_empty() {
        assert!(parts_allowed, "parts are one level deep");
        let joined: Vec<HandEntryT> = parts
            .iter()
            .flat_map(|p| hand_listing(blobs, p, false))
            .collect();
        for w in joined.windows(2) {
            assert!(w[0].name < w[1].name, "parts in name order");
        }
        return joined;
    }
    assert!(!hand.is_empty() || parts_allowed, "a part holds entries");
    assert_eq!(hand.len(), lib.entries.len());
    for (h, l) in hand.iter().zip(&lib.entries) {
        assert_eq!(h.name, l.name);
        assert_eq!(h.kind, l.kind);
        assert_eq!(
            (h.mode, h.uid, h.gid, h.mtime_sec, h.mtime_nsec),
            (l.mode, l.uid, l.gid, l.mtime_sec, l.mtime_nsec)
        );
        assert_eq!(
            (h.ctime_sec, h.ctime_nsec, h.inode, h.device, h.nlink),
            (l.ctime_sec, l.ctime_nsec, l.inode, l.device, l.nlink)
        );
        assert_eq!((h.size, h.rdev), (l.size, l.rdev));
        assert_eq!(h.content, l.content.iter().map(|c| c.0).collect::<Vec<_>>());
        assert_eq!(
            h.extents,
            l.extents
                .iter()
                .map(|x| (x.offset, x.len))
                .collect::<Vec<_>>()
        );
        assert_eq!(h.target, l.target);
        assert_eq!(h.inline, l.inline);
        assert_eq!(h.subtree, l.subtree.map(|s| s.0));
        assert_eq!(
            h.xattrs,
            l.xattrs
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect::<Vec<_>>()
        );
    }
    hand
}

#[test]
fn trees_decode_by_hand_and_restore_by_hand() {
    let repo = vec_repo();
    let blobs = hand_blobs();
    let mut snaps: Vec<HandSnapshot> = support::snapshot_ids(&repo)
        .iter()
        .map(|n| {
            let bytes = std::fs::read(repo.join("snapshots").join(n)).unwrap();
            hand_snapshot(hand_envelope(&bytes, b'S').1)
        })
        .collect();
    snaps.sort_by_key(|s| s.time_unix_ns);
    for (i, s) in snaps.iter().enumerate() {
        let mut got = BTreeMap::new();
        hand_restore(&blobs, &s.tree, "", &mut got);
        assert_eq!(got, expected(i + 1), "snapshot {}", i + 1);
    }
    // lorem.txt spans several chunks (max 1024) and copy.txt reuses them
    let lorem_chunks = strata::chunker::Chunker::new(&strata::repo::config::ChunkerParams {
        min: 64,
        avg: 256,
        max: 1024,
        normalization: 1,
        seed: 0,
    })
    .unwrap();
    let mut n = 0;
    let data = lorem();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let len = lorem_chunks.cut(rest);
        assert!(blobs.contains_key(blake3::hash(&rest[..len]).as_bytes()));
        rest = &rest[len..];
        n += 1;
    }
    assert!(n >= 3, "lorem.txt is {n} chunks");
}

#[test]
fn binary_restores_vectors_without_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    // copy the checked-in files; git keeps no empty directories
    for rel in support::list_files(&vec_repo()) {
        let dest = repo.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(vec_repo().join(&rel), dest).unwrap();
    }
    for d in ["keys", "locks", "tmp"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    assert!(!repo.join("index.sqlite").exists());

    let list: serde_json::Value =
        serde_json::from_str(&support::ok(&repo, &[], &["snapshots", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for (i, s) in list.iter().enumerate() {
        let id = s["id"].as_str().unwrap();
        assert_eq!(s["paths"][0], SOURCE_DIR);
        let target = tmp.path().join(format!("restore{i}"));
        support::ok(
            &repo,
            &[],
            &[
                "restore",
                &id[..12],
                "--target",
                target.to_str().unwrap(),
                "--verify",
            ],
        );
        support::assert_matches_manifest(
            &want_manifest(expected(i + 1)),
            &target,
            &Compare::contents_only(),
            &format!("vector snapshot {}", i + 1),
        );
    }
    // the index was rebuilt from the packs (format-spec/index.md)
    assert!(repo.join("index.sqlite").exists());
    // the old (by-name) layout lists as it restores: `/tree/...`, the same
    // entries in the same order
    let listed = support::ok(&repo, &[], &["ls", "-r", "latest"]);
    let want: Vec<String> = support::list_tree(&tmp.path().join("restore1"))
        .iter()
        .map(|p| format!("/{}", p.trim_end_matches('/')))
        .collect();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);
    // and a restore of a subpath works too
    let target = tmp.path().join("sub");
    support::ok(
        &repo,
        &[],
        &[
            "restore",
            "latest:tree/sub",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(target.join("copy.txt")).unwrap(), lorem());
    // nothing failed: no stray output on a missing index
    let o = support::run(&repo, &[], &["snapshots"]);
    assert!(o.status.success());
}

// ---------------------------------------------------------------------------
// The encrypted vector repository (format-spec/keys.md): snapshot 1 of the
// same source, in a repository created with the test passphrase.

fn enc_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/encrypted")
}

#[test]
#[ignore = "rewrites format-spec/vectors/encrypted; run by hand on a format change"]
fn regenerate_encrypted_vectors() {
    generate_vectors(&enc_repo(), &["--label", "vectors"], &[1], &expected);
}

/// The derived keys of keys.md "Derived keys", from the hand-read secret.
struct HandKeys {
    data: [u8; 32],
    tree: [u8; 32],
    mac: [u8; 32],
}

fn hand_keys(secret: &support::Secret) -> HandKeys {
    HandKeys {
        data: blake3::derive_key("strata 2026-11-22 data chunk id", &secret.id_key),
        tree: blake3::derive_key("strata 2026-11-22 tree id", &secret.id_key),
        mac: blake3::derive_key("strata 2026-11-22 object mac", &secret.id_key),
    }
}

fn hand_mac(keys: &HandKeys, kind: u8, body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(&keys.mac);
    h.update(&[kind, 1]);
    h.update(body);
    *h.finalize().as_bytes()
}

#[test]
fn encrypted_vectors_decode_by_hand() {
    let repo = enc_repo();
    // the key file opens with the passphrase (support::Secret parses it by hand)
    let secret = support::Secret::read(&repo);
    let keys = hand_keys(&secret);
    let names = support::list_files(&repo);
    let readme = std::fs::read_to_string(repo.parent().unwrap().join("README.md")).unwrap();
    for n in &names {
        assert!(readme.contains(n.as_str()), "README.md does not list {n}");
        let bytes = std::fs::read(repo.join(n)).unwrap();
        assert!(
            bytes.starts_with(b"age-encryption.org/v1\n"),
            "{n} is an age file"
        );
    }
    // config: MACed, says encrypted, gear seed 0 (the secret holds the seed)
    let plain = secret.decrypt(&std::fs::read(repo.join("config")).unwrap());
    let (_, body) = hand_envelope_tag(&plain, b'C', &|b| hand_mac(&keys, b'C', b));
    let cfg = hand_config(body);
    assert_eq!((cfg.encryption, cfg.seed, cfg.version), (1, 0, 1));
    let lib = strata::repo::config::Config::from_bytes(&plain, "config", None);
    assert!(lib.is_err(), "without the MAC key the library refuses it");
    // key info: MACed, names its key
    let info = names.iter().find(|n| n.ends_with(".info")).unwrap();
    let plain = secret.decrypt(&std::fs::read(repo.join(info)).unwrap());
    let (_, body) = hand_envelope_tag(&plain, b'I', &|b| hand_mac(&keys, b'I', b));
    let key_id = &info["keys/".len()..info.len() - ".info".len()];
    assert_eq!(body[0] as usize, key_id.len(), "KeyInfo.id length");
    assert_eq!(&body[1..1 + key_id.len()], key_id.as_bytes(), "KeyInfo.id");
    // packs: named by the BLAKE3 of the ciphertext; blobs carry keyed ids
    let mut blobs = BTreeMap::new();
    for p in support::pack_files(&repo) {
        let bytes = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, blake3::hash(&bytes).to_hex().as_str(), "pack name");
        let plain = secret.decrypt(&bytes);
        let id = |kind: u8, raw: &[u8]| {
            let key = if kind == 0 { &keys.data } else { &keys.tree };
            *blake3::keyed_hash(key, raw).as_bytes()
        };
        for (e, raw) in hand_decode_pack_ids(&plain, &id, &[]) {
            blobs.insert(e.id, (e.kind, raw));
        }
    }
    // the snapshot: MACed, named by its MAC, restores by hand
    let ids = support::snapshot_ids(&repo);
    assert_eq!(ids.len(), 1);
    let plain = secret.decrypt(&std::fs::read(repo.join("snapshots").join(&ids[0])).unwrap());
    let (mac, body) = hand_envelope_tag(&plain, b'S', &|b| hand_mac(&keys, b'S', b));
    assert_eq!(strata::id::to_hex(&mac), ids[0], "snapshot name = its MAC");
    let snap = hand_snapshot(body);
    let mut got = BTreeMap::new();
    hand_restore(&blobs, &snap.tree, "", &mut got);
    assert_eq!(got, expected(1));
    // chunks follow the secret seed: lorem.txt's seeded chunks are stored
    let chunker = strata::chunker::Chunker::new(&strata::repo::config::ChunkerParams {
        min: 64,
        avg: 256,
        max: 1024,
        normalization: 1,
        seed: secret.seed,
    })
    .unwrap();
    let data = lorem();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let len = chunker.cut(rest);
        assert!(blobs.contains_key(blake3::keyed_hash(&keys.data, &rest[..len]).as_bytes()));
        rest = &rest[len..];
    }
}

#[test]
fn binary_restores_encrypted_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    for rel in support::list_files(&enc_repo()) {
        let dest = repo.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(enc_repo().join(&rel), dest).unwrap();
    }
    for d in ["locks", "tmp"] {
        std::fs::create_dir_all(repo.join(d)).unwrap();
    }
    let target = tmp.path().join("out");
    support::ok(
        &repo,
        &[],
        &[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ],
    );
    support::assert_matches_manifest(
        &want_manifest(expected(1)),
        &target,
        &Compare::contents_only(),
        "encrypted vectors",
    );
    let o = support::run(&repo, &[], &["--password-file", "/dev/null", "snapshots"]);
    assert!(!o.status.success());
}

// ---------------------------------------------------------------------------
// The gc state vector (format-spec/gc.md "Gc state files").

/// The gc state written to `format-spec/vectors/gc/`: fixed values, so the
/// file (and its name) never change.
fn gc_state_vector() -> strata::repo::gcstate::GcState {
    use strata::id::{BlobId, PackId, SnapshotId};
    use strata::repo::gcstate::{Forgotten, GcState, PackTime};
    let t = 1_764_547_200_000_000_000i64; // 2025-12-01T00:00:00Z
    GcState {
        time_unix_ns: t + 5,
        host: "vectors".into(),
        condemned: vec![
            PackTime {
                pack: PackId([0x11; 32]),
                unix_ns: t,
            },
            PackTime {
                pack: PackId([0x22; 32]),
                unix_ns: t + 1,
            },
        ],
        forgotten: vec![
            Forgotten {
                snapshot: SnapshotId([0x33; 32]),
                tree: Some(BlobId([0x44; 32])),
                since_unix_ns: t + 2,
            },
            Forgotten {
                snapshot: SnapshotId([0x55; 32]),
                tree: None,
                since_unix_ns: -3,
            },
        ],
        deleted: vec![PackTime {
            pack: PackId([0x66; 32]),
            unix_ns: t + 4,
        }],
    }
}

fn gc_vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/gc")
}

#[test]
#[ignore = "rewrites format-spec/vectors/gc; run by hand on a format change"]
fn regenerate_gc_state_vector() {
    use strata::object::{self, ObjectKind};
    let (bytes, id) = object::seal(ObjectKind::GcState, &gc_state_vector(), None).unwrap();
    let dir = gc_vector_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(strata::id::to_hex(&id)), bytes).unwrap();
}

#[test]
fn gc_state_vector_decodes_by_hand_and_matches_the_library() {
    use strata::object::{self, ObjectKind};
    use strata::repo::gcstate::GcState;
    let files: Vec<_> = std::fs::read_dir(gc_vector_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(&files[0]).unwrap();
    let (id, body) = hand_envelope(&bytes, b'G');
    assert_eq!(
        files[0].file_name().unwrap().to_str().unwrap(),
        strata::id::to_hex(&id),
        "name = id"
    );
    // By hand, following gc.md: time, host, condemned, forgotten, deleted.
    let mut c = Cur::new(body);
    let t = 1_764_547_200_000_000_000i64;
    assert_eq!(c.zigzag(), t + 5);
    assert_eq!(c.string(), "vectors");
    let pack_times = |c: &mut Cur| -> Vec<([u8; 32], i64)> {
        (0..c.varint()).map(|_| (c.arr32(), c.zigzag())).collect()
    };
    assert_eq!(
        pack_times(&mut c),
        vec![([0x11; 32], t), ([0x22; 32], t + 1)]
    );
    let n = c.varint();
    let forgotten: Vec<_> = (0..n).map(|_| (c.arr32(), c.opt32(), c.zigzag())).collect();
    assert_eq!(
        forgotten,
        vec![
            ([0x33; 32], Some([0x44; 32]), t + 2),
            ([0x55; 32], None, -3)
        ]
    );
    assert_eq!(pack_times(&mut c), vec![([0x66; 32], t + 4)]);
    c.done();
    // The library agrees, and writes the same bytes.
    let (lib, lib_id): (GcState, _) =
        object::open(ObjectKind::GcState, &bytes, "vector", None).unwrap();
    assert_eq!(lib, gc_state_vector());
    assert_eq!(lib_id, id);
    assert_eq!(
        object::seal(ObjectKind::GcState, &lib, None).unwrap().0,
        bytes
    );
}

// ---------------------------------------------------------------------------
// The format-2 vector repository (objects.md "Inline files", "Dictionaries"):
// 240 small JSON files (enough to train a dictionary), stored inline in
// their trees, a 6000-byte text file in chunks compressed with the
// dictionary, an empty file and a symlink.

fn vec_repo2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/repo2")
}

/// One event file of the format-2 vector source: ~600 bytes of JSON.
fn event_json(i: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "deploy", "build", "review", "merge", "status", "backup", "queue", "agent",
    ];
    let mut text = String::new();
    for k in 0..(60 + i % 40) {
        text.push_str(WORDS[(i * 7 + k * 3) % 8]);
        text.push(' ');
    }
    format!("{{\n  \"id\": \"evt-{i:05}\",\n  \"type\": \"task_completed\",\n  \"description\": \"{text}\"\n}}\n")
        .into_bytes()
}

fn expected2(_snapshot: usize) -> BTreeMap<String, Want> {
    let mut m = BTreeMap::new();
    m.insert("tree".into(), Want::Dir);
    m.insert("tree/events".into(), Want::Dir);
    for i in 0..240 {
        m.insert(
            format!("tree/events/{i:05}.json"),
            Want::File(event_json(i)),
        );
    }
    let mut big = lorem();
    big.extend(lorem());
    m.insert("tree/big.txt".into(), Want::File(big));
    m.insert("tree/empty".into(), Want::File(Vec::new()));
    m.insert("tree/link".into(), Want::Link(b"big.txt".to_vec()));
    m
}

#[test]
#[ignore = "rewrites format-spec/vectors/repo2; run by hand on a format change"]
fn regenerate_format2_vectors() {
    generate_vectors(
        &vec_repo2(),
        &["--no-encryption", "--compression", "3"],
        &[1],
        &expected2,
    );
}

#[test]
fn format2_vectors_decode_by_hand_and_restore() {
    let repo = vec_repo2();
    // config: version 2
    let cfg = std::fs::read(repo.join("config")).unwrap();
    let c = hand_config(hand_envelope(&cfg, b'C').1);
    assert_eq!(c.version, 2);
    // the dictionary file: envelope D; body created (zigzag), samples, dict
    let dict_files = support::list_files(&repo.join("dicts"));
    assert_eq!(dict_files.len(), 1, "{dict_files:?}");
    let db = std::fs::read(repo.join("dicts").join(&dict_files[0])).unwrap();
    let (id, body) = hand_envelope(&db, b'D');
    assert_eq!(strata::id::to_hex(&id), dict_files[0], "name = id");
    let mut cur = Cur::new(body);
    let created = cur.zigzag();
    let samples = cur.varint();
    let dict = cur.bytes();
    cur.done();
    assert!(created > 0 && samples >= 200, "{created} {samples}");
    let dict_id = dict_id_by_hand(&dict);
    // packs by hand, with the dictionary
    let mut blobs = BTreeMap::new();
    let mut with_dict = 0;
    for p in support::pack_files(&repo) {
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            p.file_name().unwrap().to_str().unwrap()
        );
        for (e, raw) in hand_decode_pack_ids(
            &bytes,
            &|_, raw| *blake3::hash(raw).as_bytes(),
            std::slice::from_ref(&dict),
        ) {
            if e.compression == 2 {
                let stored =
                    &bytes[e.offset as usize..(e.offset + u64::from(e.stored_len)) as usize];
                assert_eq!(frame_dict_id_by_hand(stored), dict_id);
                with_dict += 1;
            }
            blobs.insert(e.id, (e.kind, raw));
        }
    }
    assert!(
        with_dict >= 3,
        "tree parts and big.txt's chunks use the dictionary"
    );
    // the snapshot, restored by hand: format-2 trees, inline files
    let snaps = support::snapshot_ids(&repo);
    assert_eq!(snaps.len(), 1);
    let sb = std::fs::read(repo.join("snapshots").join(&snaps[0])).unwrap();
    let s = hand_snapshot(hand_envelope(&sb, b'S').1);
    let root = blobs.get(&s.tree).unwrap();
    assert_eq!(&root.1[..2], &[0xFF, 0x02], "a format-2 tree");
    let mut got = BTreeMap::new();
    hand_restore(&blobs, &s.tree, "", &mut got);
    assert_eq!(got, expected2(1));
    // ... and with the binary, from a copy without an index
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("repo");
    for rel in support::list_files(&repo) {
        let dest = copy.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(&rel), dest).unwrap();
    }
    for d in ["keys", "locks", "tmp"] {
        std::fs::create_dir_all(copy.join(d)).unwrap();
    }
    let target = tmp.path().join("out");
    support::ok(
        &copy,
        &[],
        &[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ],
    );
    support::assert_matches_manifest(
        &want_manifest(expected2(1)),
        &target,
        &Compare::contents_only(),
        "format-2 vector snapshot",
    );
}

// ---------------------------------------------------------------------------
// The write-only vector repository (format-spec/write-only.md, format 3):
// snapshot 1 by the full key, then a write-only key added (the upgrade to
// format 3 and its trust record), then snapshot 2 by the write-only key.

fn wo_repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("format-spec/vectors/write-only")
}

/// The write-only key's passphrase in the vectors.
const WO_PASS: &str = "write-only vectors";

#[test]
#[ignore = "rewrites format-spec/vectors/write-only; run by hand on a format change"]
fn regenerate_write_only_vectors() {
    let (src, repo) = vector_init(&["--label", "vectors"]);
    write_source(src, expected(1));
    support::ok(&repo, &[], &["snapshot", SOURCE_DIR]);
    support::ok(
        &repo,
        &[("STRATA_NEW_PASSWORD", WO_PASS)],
        &["key", "add", "--write-only", "--label", "vector host"],
    );
    write_source(src, expected(2));
    support::ok(
        &repo,
        &[("STRATA_PASSWORD", WO_PASS)],
        &["snapshot", SOURCE_DIR],
    );
    vector_copy(&repo, &wo_repo());
}

/// A version-2 manifest body by hand: version 1's, then `layout`, which
/// must be 1 (absolute).
fn hand_snapshot_v2(body: &[u8]) -> HandSnapshot {
    let (v1, layout) = body.split_at(body.len() - 1);
    assert_eq!(layout, [1], "layout: absolute");
    hand_snapshot(v1)
}

/// The plaintext of an age file encrypted to `pass` (scrypt).
fn scrypt_decrypt(bytes: &[u8], pass: &str) -> Vec<u8> {
    let mut id = age::scrypt::Identity::new(pass.to_string().into());
    id.set_max_work_factor(16);
    age::decrypt(&id, bytes).expect("decrypts with the passphrase")
}

/// An envelope of `kind` and `version` by hand, its id field checked with
/// `tag(kind, version, body)`; returns the id and body.
fn hand_env<'a>(
    bytes: &'a [u8],
    kind: u8,
    version: u8,
    tag: &dyn Fn(u8, &[u8]) -> [u8; 32],
) -> ([u8; 32], &'a [u8]) {
    assert_eq!(&bytes[0..6], b"STRATA", "envelope magic");
    assert_eq!((bytes[6], bytes[7]), (kind, version), "kind and version");
    let id: [u8; 32] = bytes[8..40].try_into().unwrap();
    assert_eq!(bytes.len(), 44 + le_u32(&bytes[40..44]) as usize);
    let body = &bytes[44..];
    assert_eq!(tag(version, body), id, "id field");
    (id, body)
}

/// An ed25519 signature check, written from RFC 8032 through the audited
/// crate (no strata code).
fn ed25519_ok(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(k) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
    k.verify_strict(msg, &sig).is_ok()
}

fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

#[test]
fn write_only_vectors_decode_by_hand() {
    let repo = wo_repo();
    let names = support::list_files(&repo);
    let readme = std::fs::read_to_string(repo.parent().unwrap().join("README.md")).unwrap();
    for n in &names {
        assert!(readme.contains(n.as_str()), "README.md does not list {n}");
    }
    // the two key files: the full key (version 1) and the write-only key (version 2)
    let key_files: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("keys/") && n.len() == "keys/".len() + 32)
        .collect();
    assert_eq!(key_files.len(), 2);
    let read = |n: &str| std::fs::read(repo.join(n)).unwrap();
    let (full, wo): (Vec<&String>, Vec<&String>) = key_files.into_iter().partition(|n| {
        age::decrypt(
            &{
                let mut id = age::scrypt::Identity::new(support::PASSPHRASE.to_string().into());
                id.set_max_work_factor(16);
                id
            },
            &read(n),
        )
        .is_ok()
    });
    let (full, wo) = (full[0].clone(), wo[0].clone());
    let full_plain = scrypt_decrypt(&read(&full), support::PASSPHRASE);
    assert_eq!(
        &full_plain[..8],
        b"STRATAK\x01",
        "the full key is version 1"
    );
    let tmp = tempfile::tempdir().unwrap();
    for rel in &names {
        let dest = tmp.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(repo.join(rel), dest).unwrap();
    }
    // support::Secret reads the first key file: give it only the full one
    let only_full = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(only_full.path().join("keys")).unwrap();
    std::fs::copy(repo.join(&full), only_full.path().join(&full)).unwrap();
    let secret = support::Secret::read(only_full.path());
    let keys = hand_keys(&secret);
    let mac = |kind: u8| {
        let m = keys.mac;
        move |version: u8, body: &[u8]| {
            let mut h = blake3::Hasher::new_keyed(&m);
            h.update(&[kind, version]);
            h.update(body);
            *h.finalize().as_bytes()
        }
    };
    // config: version 3
    let config_bytes = read("config");
    let plain = secret.decrypt(&config_bytes);
    let (_, body) = hand_env(&plain, b'C', 1, &mac(b'C'));
    assert_eq!(hand_config(body).version, 3, "format 3");

    // the write-only key file (write-only.md "Write-only key file")
    let plain = scrypt_decrypt(&read(&wo), WO_PASS);
    let (_, body) = hand_env(&plain, b'K', 2, &|_, b| *blake3::hash(b).as_bytes());
    let mut c = Cur::new(body);
    let repo_id = c.arr32();
    let recipient = c.string();
    assert_eq!(recipient, secret.identity.to_public().to_string());
    assert_eq!(c.arr32(), keys.data, "data_key");
    assert_eq!(c.arr32(), keys.tree, "tree_key");
    assert_eq!(c.varint(), secret.seed, "chunker seed");
    let coord = c.string();
    let coord_secret = blake3::derive_key("strata 2026-12 coordination", &secret.id_key);
    {
        use bech32::ToBase32;
        let want = bech32::encode(
            "age-secret-key-",
            coord_secret.to_base32(),
            bech32::Variant::Bech32,
        )
        .unwrap()
        .to_uppercase();
        assert_eq!(coord, want, "the coordination identity");
    }
    let repo_sign = blake3::derive_key("strata 2026-12 repository signing", &secret.id_key);
    assert_eq!(
        c.arr32(),
        ed25519_public(&repo_sign),
        "repository verifying key"
    );
    let signing_seed = c.arr32();
    let verifying = ed25519_public(&signing_seed);
    // the config copy (objects.md "Config body"), then the digest of the
    // config file it was taken from: that of format 3, as the key was made
    // right after the upgrade
    let rest = &c.b[c.pos..];
    let (copy, digest) = rest.split_at(rest.len() - 32);
    assert_eq!(hand_config(copy).repo_id, repo_id);
    assert_eq!(
        digest,
        blake3::hash(&config_bytes).as_bytes(),
        "config digest"
    );
    let wo_id = &wo["keys/".len()..];

    // its info: version 2, MACed, ends with the verifying key
    let plain = secret.decrypt(&read(&format!("{wo}.info")));
    let (_, body) = hand_env(&plain, b'I', 2, &mac(b'I'));
    let mut c = Cur::new(body);
    assert_eq!(c.string(), wo_id);
    assert_eq!(c.string(), "vector host");
    assert_eq!(c.string(), "write-only");
    assert_eq!(c.string(), "", "no recipient: a passphrase key");
    c.zigzag();
    c.string();
    c.string();
    assert_eq!(c.arr32(), verifying, "the key's verifying key");
    c.done();

    // packs: snapshot 1's are version 1; snapshot 2's version 2, signed
    let mut blobs = BTreeMap::new();
    let mut v1 = Vec::new();
    let mut v2 = 0;
    for p in support::pack_files(&repo) {
        let bytes = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let plain = secret.decrypt(&bytes);
        let id = |kind: u8, raw: &[u8]| {
            let key = if kind == 0 { &keys.data } else { &keys.tree };
            *blake3::keyed_hash(key, raw).as_bytes()
        };
        for (e, raw) in hand_decode_pack_ids(&plain, &id, &[]) {
            blobs.insert(e.id, (e.kind, raw));
        }
        if plain[7] == 1 {
            v1.push(strata::id::parse_hex32(&name).unwrap());
            continue;
        }
        v2 += 1;
        let len = plain.len();
        let auth = &plain[len - 44 - 96..len - 44];
        assert_eq!(auth[0], 2, "written by a write-only key");
        assert!(auth[1..16].iter().all(|b| *b == 0));
        assert_eq!(strata::id::to_hex(&auth[16..32]), wo_id, "its key id");
        let mut msg = b"strata pack v2\0".to_vec();
        msg.extend_from_slice(&plain[len - 40..len - 8]); // trailer hash
        msg.extend_from_slice(&plain[len - 44..len - 40]); // count
        msg.extend_from_slice(&auth[0..1]);
        msg.extend_from_slice(&auth[16..32]);
        assert!(
            ed25519_ok(&verifying, &msg, &auth[32..96]),
            "pack signature"
        );
    }
    assert!(!v1.is_empty() && v2 > 0);

    // the trust record of the upgrade names exactly the packs before it
    let trust: Vec<&String> = names.iter().filter(|n| n.starts_with("trust/")).collect();
    assert_eq!(trust.len(), 1);
    let plain = secret.decrypt(&read(trust[0]));
    let (tid, body) = hand_env(&plain, b'T', 1, &mac(b'T'));
    assert_eq!(trust[0]["trust/".len()..], strata::id::to_hex(&tid));
    let mut c = Cur::new(body);
    c.zigzag();
    assert_eq!(c.string(), "format 3");
    let mut packs: Vec<[u8; 32]> = (0..c.varint()).map(|_| c.arr32()).collect();
    c.done();
    packs.sort();
    v1.sort();
    assert_eq!(packs, v1);

    // the manifests: snapshot 1 MACed (version 2), snapshot 2 signed (version 3)
    let mut by_version = BTreeMap::new();
    for id in support::snapshot_ids(&repo) {
        let plain = secret.decrypt(&read(&format!("snapshots/{id}")));
        by_version.insert(plain[7], (id, plain));
    }
    let (id1, plain1) = &by_version[&2];
    let (mac1, body) = hand_env(plain1, b'S', 2, &mac(b'S'));
    assert_eq!(strata::id::to_hex(&mac1), *id1);
    assert_eq!(hand_snapshot_v2(body).parent, None);
    let (id2, plain2) = &by_version[&3];
    let (hash2, body) = hand_env(plain2, b'S', 3, &|v, b| {
        let mut h = blake3::Hasher::new();
        h.update(&[b'S', v]);
        h.update(b);
        *h.finalize().as_bytes()
    });
    assert_eq!(strata::id::to_hex(&hash2), *id2, "named by its plain hash");
    let n = body.len();
    let (v2_body, tail) = body.split_at(n - 97);
    assert_eq!(tail[0], 32, "writer: 32 hex digits");
    assert_eq!(&tail[1..33], wo_id.as_bytes());
    let mut msg = b"strata manifest v3\0".to_vec();
    msg.extend_from_slice(&(v2_body.len() as u64).to_le_bytes());
    msg.extend_from_slice(v2_body);
    msg.extend_from_slice(wo_id.as_bytes());
    assert!(
        ed25519_ok(&verifying, &msg, &tail[33..]),
        "manifest signature"
    );
    let snap = hand_snapshot_v2(v2_body);
    let mut got = BTreeMap::new();
    hand_restore(&blobs, &snap.tree, "", &mut got);
    // the absolute layout (objects.md "Layouts"): the source under its path
    let under = SOURCE_DIR
        .rsplit_once('/')
        .unwrap()
        .0
        .trim_start_matches('/');
    let got: BTreeMap<String, Want> = got
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&format!("{under}/"))?.to_string(), v)))
        .collect();
    assert_eq!(got, expected(2));

    // the binary, with the full key, restores the write-only key's snapshot
    let copy = tmp.path();
    for d in ["locks", "tmp"] {
        std::fs::create_dir_all(copy.join(d)).unwrap();
    }
    let target = copy.join("out");
    support::ok(
        copy,
        &[],
        &[
            "restore",
            id2,
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ],
    );
    support::assert_matches_manifest(
        &want_manifest(expected(2)),
        &target.join(under),
        &Compare::contents_only(),
        "write-only vectors",
    );
}
