//! Any bytes as a `config`, snapshot, key-info or gc state file
//! (format-spec/objects.md, keys.md, gc.md), or as an age file (what an encrypted repository reads), and the
//! same bytes as an envelope *body* behind a valid header and id, so the
//! bincode decoder and the config checks are reached, not only the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata::object::{self, ObjectKind};
use strata::repo::config::Config;
use strata::repo::gcstate::GcState;
use strata::snapshot::Snapshot;

fn reseal(kind: u8, body: &[u8]) -> Vec<u8> {
    reseal_v(kind, 1, body)
}

fn reseal_v(kind: u8, version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"STRATA".to_vec();
    out.push(kind);
    out.push(version);
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fuzz_target!(|data: &[u8]| {
    let c = object::open::<Config>(ObjectKind::Config, data, "fuzz", None);
    let s = Snapshot::open(data, "fuzz", None, &Default::default());
    assert!(!(c.is_ok() && s.is_ok()), "one file, two kinds");
    let _ = Config::from_bytes(data, "fuzz", None);
    for kind in [b'C', b'S'] {
        let env = reseal(kind, data);
        if let Ok(cfg) = Config::from_bytes(&env, "fuzz", None) {
            // what is accepted re-encodes and re-opens
            let again = Config::from_bytes(
                &object::seal(ObjectKind::Config, &cfg, None)
                    .expect("encode")
                    .0,
                "fuzz",
                None,
            );
            assert_eq!(again.ok(), Some(cfg));
        }
        let _ = Snapshot::open(&env, "fuzz", None, &Default::default());
    }
    // manifests have two body versions (objects.md "Snapshot body")
    if let Ok((s, _)) = Snapshot::open(&reseal_v(b'S', 2, data), "fuzz", None, &Default::default()) {
        assert!(s.layout <= 1, "unknown layout accepted");
    }
    let env = reseal(b'I', data);
    let _ = strata::repo::keys::open_info(&env, "fuzz", None);
    let env = reseal(b'D', data);
    let _ = object::open::<strata::dict::DictFile>(ObjectKind::Dict, &env, "fuzz", None);
    let env = reseal(b'G', data);
    if let Ok((st, _)) = object::open::<GcState>(ObjectKind::GcState, &env, "fuzz", None) {
        // what is accepted re-encodes and re-opens to the same value
        let again = object::seal(ObjectKind::GcState, &st, None)
            .expect("encode")
            .0;
        let back = object::open::<GcState>(ObjectKind::GcState, &again, "fuzz", None);
        assert_eq!(back.ok().map(|(v, _)| v), Some(st));
    }
    let mut age_file = strata::crypto::agefile::AGE_MAGIC.to_vec();
    age_file.extend_from_slice(data);
    let identity = age::x25519::Identity::generate();
    let _ = strata::crypto::agefile::decrypt(&age_file, &[&identity], "fuzz", 1 << 16);
});
