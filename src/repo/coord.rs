//! The coordination files `coord/<id>` of a format-3 repository
//! (format-spec/write-only.md "How a write-only host gets what a backup
//! reads"): what a write-only host must know of gc and cannot read in the
//! gc state, i.e. the packs condemned (never deduplicate against them)
//! and the packs deleted. Written by every full-key writer of a gc state
//! file, before it and under the same name; encrypted to the repository
//! and coordination recipients and signed with the repository's signing
//! key, which only full keys hold. No blob, tree or snapshot id is in it.

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::repo::Repo;
use bincode::{Decode, Encode};
use std::collections::{BTreeMap, BTreeSet};

/// The largest coordination file read.
const MAX_COORD: usize = 64 << 20;

/// The signed body.
#[derive(Encode, Decode)]
struct Body {
    time_unix_ns: i64,
    /// Condemned packs and since when.
    condemned: Vec<(PackId, i64)>,
    /// Packs deleted (tombstones).
    deleted: Vec<PackId>,
}

/// The file's plaintext: the encoded body and its signature.
#[derive(Encode, Decode)]
struct File {
    body: Vec<u8>,
    signature: [u8; 64],
}

fn message(body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 16);
    m.extend_from_slice(b"strata coord v1\0");
    m.extend_from_slice(body);
    m
}

/// What the coordination files say, merged.
#[derive(Debug, Default)]
pub struct Coord {
    /// Condemned packs, since when (the earliest).
    pub condemned: BTreeMap<PackId, i64>,
    /// Deleted packs.
    pub deleted: BTreeSet<PackId>,
    /// Files that did not read or verify, one line each.
    pub unreadable: Vec<String>,
}

/// Write `coord/<name>` for the gc state file `gc/<name>` of time
/// `time_unix_ns`, with its condemned packs (and since when) and deleted
/// packs, durably and create-only, in a format-3 repository with a full
/// key; nothing otherwise.
pub fn save(
    repo: &Repo,
    name: &str,
    time_unix_ns: i64,
    condemned: Vec<(PackId, i64)>,
    deleted: Vec<PackId>,
) -> Result<()> {
    let Some(c) = repo.crypto() else {
        return Ok(());
    };
    if repo.config().version < 3 {
        return Ok(());
    }
    let body = Body {
        time_unix_ns,
        condemned,
        deleted,
    };
    let body = crate::object::encode_body(&body)?;
    let signature = c.repo_sign(&message(&body))?;
    let plain = crate::object::encode_body(&File { body, signature })?;
    repo.write_new(&format!("coord/{name}"), &c.encrypt_shared(&plain)?)?;
    Ok(())
}

/// Read every coordination file (with either key kind). One that does not
/// decrypt, decode or verify is reported in `unreadable` and ignored.
pub fn load(repo: &Repo) -> Result<Coord> {
    let mut out = Coord::default();
    let Some(c) = repo.crypto() else {
        return Ok(out);
    };
    for name in repo.list_names("coord")? {
        if crate::id::parse_hex32(&name).is_none() {
            continue;
        }
        let object = format!("coord/{name}");
        let Some(bytes) = repo.read_opt(&object)? else {
            continue; // removed by a gc meanwhile
        };
        let read = || -> Result<Body> {
            let plain = c.decrypt_shared(&bytes, &object, MAX_COORD)?;
            let f: File = crate::object::decode_body(&plain, &object)?;
            if !c.repo_verify(&message(&f.body), &f.signature) {
                return Err(Error::corrupt(
                    &object,
                    "the repository's signature does not verify",
                ));
            }
            crate::object::decode_body(&f.body, &object)
        };
        match read() {
            Ok(b) => {
                for (p, t) in b.condemned {
                    let e = out.condemned.entry(p).or_insert(t);
                    *e = (*e).min(t);
                }
                out.deleted.extend(b.deleted);
            }
            Err(e) => out.unreadable.push(e.to_string()),
        }
    }
    Ok(out)
}

/// Remove `coord/<name>` of each gc state file removed (GC-5).
pub fn remove(repo: &Repo, names: &[String]) -> Result<()> {
    if repo.config().version < 3 {
        return Ok(());
    }
    for n in names {
        repo.delete(&format!("coord/{n}"))?;
    }
    Ok(())
}
