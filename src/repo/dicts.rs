//! The dictionary files of a repository (format-spec/objects.md
//! "Dictionaries"): reading every `dicts/` file, decoding one, writing a new
//! one (INV-1, create-only). The dictionaries themselves, training and the
//! checks are `crate::dict`.

use crate::dict::{Dict, DictFile, Dicts, check};
use crate::error::{Error, Result};
use crate::object::ObjectKind;
use crate::repo::Repo;
use std::sync::Arc;

/// Decode and check a dictionary file's plaintext envelope.
pub fn decode(repo: &Repo, bytes: &[u8], name: &str) -> Result<Dict> {
    let object = format!("dicts/{name}");
    let (d, id): (DictFile, _) = repo.open_file(ObjectKind::Dict, bytes, &object)?;
    if crate::id::to_hex(&id) != name {
        return Err(Error::corrupt(
            object,
            "content does not match the file name",
        ));
    }
    check(d, name)
}

/// Read every `dicts/` file (a missing directory: none).
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

/// Write a dictionary file (INV-1, create-only); returns its name.
pub fn save(repo: &Repo, dict: Vec<u8>, samples: usize) -> Result<String> {
    let body = DictFile {
        created_unix_ns: crate::sys::now_ns(),
        samples: samples as u32,
        dict,
    };
    let (bytes, id) = repo.seal_file(ObjectKind::Dict, &body)?;
    let name = crate::id::to_hex(&id);
    repo.write_new(&format!("dicts/{name}"), &bytes)?;
    Ok(name)
}
