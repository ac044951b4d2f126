//! The dictionary files of a repository (format-spec/objects.md
//! "Dictionaries"): reading every `dicts/` file, decoding one, writing a new
//! one (INV-1, create-only). The dictionaries themselves, training and the
//! checks are `crate::dict`.

use crate::dict::{Dict, DictFile, Dicts, check};
use crate::error::{Error, Result};
use crate::object::ObjectKind;
use crate::repo::Repo;
use std::sync::Arc;

/// A dictionary file of a write-only key (envelope version 2,
/// write-only.md "Dictionaries of write-only keys"): the dictionary, the
/// key id and its ed25519 signature over [`signed_message`].
#[derive(bincode::Encode, bincode::Decode)]
struct SignedDict {
    dict: DictFile,
    writer: String,
    signature: [u8; 64],
}

/// What a write-only key signs: the encoded dictionary body and its key id.
fn signed_message(body: &[u8], writer: &str) -> Vec<u8> {
    crate::crypto::signed_message(b"strata dict v2\0", body, writer)
}

/// Decode and check a dictionary file's plaintext envelope: MACed
/// (version 1), or signed by a write-only key, live or removed (version 2:
/// a removed key's dictionaries stay readable, as its manifests from
/// before the removal do; a dictionary cannot make a blob decode to the
/// wrong bytes, since every blob is checked against its id).
pub fn decode(repo: &Repo, bytes: &[u8], name: &str) -> Result<Dict> {
    let object = format!("dicts/{name}");
    let (d, id) = repo.open_file_versioned(ObjectKind::Dict, bytes, &object, |v, body| {
        if v == 1 {
            return crate::object::decode_body::<DictFile>(body, &object);
        }
        let s: SignedDict = crate::object::decode_body(body, &object)?;
        let verifying = repo.signers()?.any_verifier(&s.writer).ok_or_else(|| {
            Error::corrupt(&object, format!("signed by unknown key {}", s.writer))
        })?;
        let encoded = crate::object::encode_body(&s.dict)?;
        if !crate::crypto::verify(
            &verifying,
            &signed_message(&encoded, &s.writer),
            &s.signature,
        ) {
            return Err(Error::corrupt(
                &object,
                format!("the signature of key {} does not verify", s.writer),
            ));
        }
        Ok(s.dict)
    })?;
    if crate::id::to_hex(&id) != name {
        return Err(Error::corrupt(
            object,
            "content does not match the file name",
        ));
    }
    check(d, name)
}

/// Read every `dicts/` file (a missing directory: none). A write-only key
/// reads none of them: its own dictionaries come from its cache
/// ([`load_own`]).
pub fn load(repo: &Repo) -> Result<Dicts> {
    let mut out = Dicts::default();
    let names: Vec<String> = repo
        .list_names("dicts")?
        .into_iter()
        .filter(|n| crate::id::parse_hex32(n).is_some())
        .collect();
    for name in names {
        let Some(bytes) = repo.read_opt(&format!("dicts/{name}"))? else {
            continue;
        };
        match decode(repo, &bytes, &name) {
            Ok(d) => out.add(Arc::new(d)),
            Err(e) => out.unreadable.push(e),
        }
    }
    Ok(out)
}

/// Write a dictionary file (INV-1, create-only); returns its name. A
/// write-only key signs it (version 2) and keeps the plaintext in its
/// cache ([`load_own`]), before the repository file: a blob compressed
/// with it is only written after both.
pub fn save(repo: &Repo, dict: Vec<u8>, samples: usize) -> Result<String> {
    let body = DictFile {
        created_unix_ns: crate::sys::now_ns(),
        samples: samples as u32,
        dict,
    };
    let writer = repo.crypto().and_then(|c| c.writer().map(|w| (c, w)));
    let (bytes, id) = match writer {
        None => repo.seal_file(ObjectKind::Dict, &body)?,
        Some((c, w)) => {
            let encoded = crate::object::encode_body(&body)?;
            let key = w.key_id.to_string();
            let signature = c
                .writer_sign(&signed_message(&encoded, &key))
                .ok_or_else(|| {
                    Error::Internal("a write-only key without its signing key".into())
                })?;
            let signed = SignedDict {
                dict: body.clone(),
                writer: key,
                signature,
            };
            let (plain, id) = crate::object::seal_as(ObjectKind::Dict, 2, &signed, None)?;
            let name = crate::id::to_hex(&id);
            let dir = own_dir(repo).ok_or_else(|| {
                Error::Invalid(
                    "a write-only key trains a dictionary only with a cache directory".into(),
                )
            })?;
            if !crate::cache::write_private(&dir.join(&name), &encoded) {
                return Err(Error::Invalid(format!(
                    "{}: cannot write the dictionary",
                    dir.display()
                )));
            }
            (c.encrypt(&plain)?, id)
        }
    };
    let name = crate::id::to_hex(&id);
    repo.write_new(&format!("dicts/{name}"), &bytes)?;
    Ok(name)
}

/// Where a write-only key keeps the plaintext of the dictionaries it
/// trained: `<cache>/<repo id>/write-only/<key id>/dicts/`.
fn own_dir(repo: &Repo) -> Option<std::path::PathBuf> {
    let w = repo.crypto()?.writer()?;
    Some(
        crate::cache::base_dir()?
            .join(repo.config().repo_id.to_hex())
            .join("write-only")
            .join(w.key_id.as_str())
            .join("dicts"),
    )
}

/// A write-only key's own dictionaries, from its cache (write-only.md):
/// the ones it trained and published. A file that does not decode is
/// skipped; all of them lost means a new one is trained, which is correct.
pub fn load_own(repo: &Repo) -> Dicts {
    let mut out = Dicts::default();
    let Some(dir) = own_dir(repo) else {
        return out;
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if crate::id::parse_hex32(&name).is_none() {
            continue;
        }
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let d = crate::object::decode_body::<DictFile>(&bytes, &name).and_then(|d| check(d, &name));
        if let Ok(d) = d {
            out.add(Arc::new(d));
        }
    }
    out
}
