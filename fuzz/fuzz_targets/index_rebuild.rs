//! Any bytes as a pack file of a repository whose index is rebuilt
//! (`strata rebuild-index`, and the reconcile every command runs:
//! src/index/rebuild.rs, reconcile.rs, pack/reader.rs, crypto/agefile.rs).
//! The first byte picks the repository: plaintext (the bytes are the pack),
//! encrypted with the bytes as the pack's plaintext (the age layer is
//! valid, the pack inside is hostile), or encrypted with the bytes as the
//! file on storage (a hostile age header and stream). The rebuild must
//! return: it indexes the pack exactly as `parse_pack` reads it, or skips
//! it with a warning. Every blob it indexed is then read back: `Err` or
//! bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use strata::backend::Backend;
use strata::repo::rebuild::rebuild;
use strata::pack::format::parse_pack;
use strata::read::BlobReader;
use strata::{InitOptions, Repo};

struct Repos {
    plain: Repo,
    encrypted: Repo,
}

fn work_base() -> std::path::PathBuf {
    // tmpfs where there is one: each rebuild fsyncs a new index
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("strata-fuzz-rebuild-{}", std::process::id()))
}

fn repos() -> &'static Repos {
    static R: OnceLock<Repos> = OnceLock::new();
    R.get_or_init(|| {
        let base = work_base();
        let _ = std::fs::remove_dir_all(&base);
        let store = |_| -> Arc<dyn Backend> {
            Arc::from(strata::backend::open("memory://").expect("memory backend"))
        };
        let plain = Repo::init_on(store(0), &base.join("plain"), &InitOptions::default())
            .expect("init plaintext");
        let id = age::x25519::Identity::generate();
        let enc = InitOptions {
            key: Some(strata::repo::keys::NewKey::Recipient(
                id.to_public().to_string(),
            )),
            ..InitOptions::default()
        };
        let encrypted = Repo::init_on(store(1), &base.join("enc"), &enc).expect("init encrypted");
        Repos { plain, encrypted }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, pack)) = data.split_first() else {
        return;
    };
    let r = repos();
    let (repo, file) = match mode % 3 {
        0 => (&r.plain, pack.to_vec()),
        1 => {
            let c = r.encrypted.crypto().expect("encrypted");
            (&r.encrypted, c.encrypt(pack).expect("encrypt"))
        }
        _ => (&r.encrypted, pack.to_vec()),
    };
    let id = strata::PackId(*blake3::hash(&file).as_bytes());
    let key = strata::backend::key::pack(&id.to_hex());
    repo.store().put_new(&key, &file).expect("put");
    let rebuilt = rebuild(repo, false).expect("a rebuild over one pack returns");
    let rebuilt = rebuilt.expect("not only-if-damaged");
    let plaintext = match mode % 3 {
        2 => None,
        _ => Some(pack),
    };
    if rebuilt.packs == 1 {
        // accepted: then the bytes were a pack, and the rows say what
        // parse_pack says
        if let Some(p) = plaintext {
            let entries = parse_pack(p, "fuzz").expect("an indexed pack parses");
            assert!(rebuilt.blobs <= entries.len() as u64);
        }
        let reader = BlobReader::new(repo).expect("reader").without_cache();
        let mut blobs = Vec::new();
        reader
            .for_each_blob(&mut |b| blobs.push(b.id))
            .expect("rows");
        for b in &blobs {
            let _ = reader.read(b);
        }
    } else {
        assert_eq!(rebuilt.packs, 0);
        assert!(!rebuilt.warnings.is_empty(), "a skipped pack is reported");
        if let Some(p) = plaintext {
            assert!(parse_pack(p, "fuzz").is_err(), "a valid pack was skipped");
        }
    }
    repo.store().delete(&key).expect("delete");
});
