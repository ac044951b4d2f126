//! Snapshot manifests (format-spec/objects.md "Snapshot body"), one file per
//! snapshot under `snapshots/<id>`, written last (INV-4).

use crate::error::{Error, Result};
use crate::id::{BlobId, SnapshotId};
use crate::object::ObjectKind;
use crate::repo::Repo;
use crate::repo::keys::Signers;
use bincode::{Decode, Encode};

/// Counters recorded with a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Summary {
    /// Files not in the parent.
    pub files_new: u64,
    /// Files in the parent whose metadata changed (re-read).
    pub files_changed: u64,
    /// Files reused from the parent without reading.
    pub files_unchanged: u64,
    /// Directories stored.
    pub dirs: u64,
    /// Symlinks, fifos, devices, sockets.
    pub other: u64,
    /// Logical bytes of all regular files.
    pub total_bytes: u64,
    /// Bytes read from the sources.
    pub bytes_read: u64,
    /// New blobs written.
    pub blobs_added: u64,
    /// Raw bytes of the new blobs.
    pub bytes_added: u64,
    /// Stored (compressed) bytes of the new blobs.
    pub stored_added: u64,
    /// Files skipped or changed while read.
    pub warnings: u64,
    /// Wall time.
    pub duration_ns: u64,
}

impl Summary {
    /// Regular files in the snapshot.
    pub fn files(&self) -> u64 {
        self.files_new + self.files_changed + self.files_unchanged
    }
}

/// A snapshot manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Start time, Unix nanoseconds.
    pub time_unix_ns: i64,
    /// Host name.
    pub host: String,
    /// User name.
    pub username: String,
    /// Source paths as given (raw bytes); "-" for stdin.
    pub paths: Vec<Vec<u8>>,
    /// Tags.
    pub tags: Vec<String>,
    /// Root tree.
    pub tree: BlobId,
    /// Parent used for change detection.
    pub parent: Option<SnapshotId>,
    /// Counters.
    pub summary: Summary,
    /// Program that wrote it.
    pub program: String,
    /// How sources sit in the root tree: [`Layout::ByName`] (manifest
    /// version 1) or [`Layout::Absolute`] (version 2).
    pub layout: u8,
    /// The write-only key that wrote and signed it (manifest version 3,
    /// format-spec/write-only.md); `None` for a full key's (MACed).
    pub writer: Option<crate::id::KeyId>,
}

/// A version-2 manifest body: every field of [`Snapshot`] but the writer.
#[derive(Encode, Decode)]
#[cfg_attr(test, derive(Clone))]
struct SnapshotV2 {
    time_unix_ns: i64,
    host: String,
    username: String,
    paths: Vec<Vec<u8>>,
    tags: Vec<String>,
    tree: BlobId,
    parent: Option<SnapshotId>,
    summary: Summary,
    program: String,
    layout: u8,
}

/// A version-3 manifest body (write-only.md "Manifests of write-only
/// keys"): the version-2 body, the writer's key id, and its ed25519
/// signature over [`signed_message`].
#[derive(Encode, Decode)]
struct SnapshotV3 {
    body: SnapshotV2,
    writer: String,
    signature: [u8; 64],
}

/// What a write-only key signs: the encoded version-2 body and its key id.
fn signed_message(body: &[u8], writer: &str) -> Vec<u8> {
    crate::crypto::signed_message(b"strata manifest v3\0", body, writer)
}

impl From<&Snapshot> for SnapshotV2 {
    fn from(s: &Snapshot) -> SnapshotV2 {
        SnapshotV2 {
            time_unix_ns: s.time_unix_ns,
            host: s.host.clone(),
            username: s.username.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            tree: s.tree,
            parent: s.parent,
            summary: s.summary.clone(),
            program: s.program.clone(),
            layout: s.layout,
        }
    }
}

impl SnapshotV2 {
    fn into_snapshot(self, writer: Option<crate::id::KeyId>) -> Snapshot {
        Snapshot {
            time_unix_ns: self.time_unix_ns,
            host: self.host,
            username: self.username,
            paths: self.paths,
            tags: self.tags,
            tree: self.tree,
            parent: self.parent,
            summary: self.summary,
            program: self.program,
            layout: self.layout,
            writer,
        }
    }
}

/// How a snapshot's sources sit in its root tree (objects.md "Snapshot body").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Format 1: one root entry per source, named by its last component
    /// (`/` as `root`); stdin as its `--stdin-name`.
    ByName = 0,
    /// Each source under its absolute path (`/srv/bridge` as `srv/bridge`,
    /// `/` as the root itself); stdin as a top-level `--stdin-name`.
    Absolute = 1,
}

/// A version-1 manifest (no `layout`: [`Layout::ByName`]).
#[derive(Decode)]
#[cfg_attr(test, derive(Encode))]
struct SnapshotV1 {
    time_unix_ns: i64,
    host: String,
    username: String,
    paths: Vec<Vec<u8>>,
    tags: Vec<String>,
    tree: BlobId,
    parent: Option<SnapshotId>,
    summary: Summary,
    program: String,
}

impl Snapshot {
    /// Check and decode a manifest's plaintext (any envelope version; its
    /// MAC under `crypto`, or for version 3 its signature by a key of
    /// `signers`). Returns the manifest and its id field.
    pub fn open(
        bytes: &[u8],
        object: &str,
        crypto: Option<&crate::crypto::Crypto>,
        signers: &Signers,
    ) -> Result<(Snapshot, [u8; 32])> {
        let (version, body, id) =
            crate::object::open_versioned(ObjectKind::Snapshot, bytes, object, crypto)?;
        Ok((decode(version, body, object, &id, signers)?, id))
    }

    /// The layout of its root tree.
    pub fn layout(&self) -> Layout {
        if self.layout == Layout::Absolute as u8 {
            Layout::Absolute
        } else {
            Layout::ByName
        }
    }

    /// Paths as display strings.
    pub fn path_strings(&self) -> Vec<String> {
        self.paths
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    /// Time as RFC 3339 (UTC, seconds).
    pub fn time_string(&self) -> String {
        crate::sys::rfc3339(self.time_unix_ns)
    }

    /// Write this manifest (INV-1, INV-4: call only after its index rows
    /// are committed). Create-only (INV-5): a file already under its name
    /// has the same content (the name is its id) and is left as it is.
    pub fn save(&self, repo: &Repo) -> Result<SnapshotId> {
        let body = SnapshotV2::from(self);
        let writer = repo.crypto().and_then(|c| c.writer().map(|w| (c, w)));
        let (bytes, id) = match writer {
            None => repo.seal_file(ObjectKind::Snapshot, &body)?,
            // write-only.md: a write-only key cannot MAC; it signs
            Some((c, w)) => {
                let encoded = crate::object::encode_body(&body)?;
                let key = w.key_id.to_string();
                let signature =
                    c.writer_sign(&signed_message(&encoded, &key))
                        .ok_or_else(|| {
                            Error::Internal("a write-only key without its signing key".into())
                        })?;
                let v3 = SnapshotV3 {
                    body,
                    writer: key,
                    signature,
                };
                let (plain, id) = crate::object::seal_as(ObjectKind::Snapshot, 3, &v3, None)?;
                (c.encrypt(&plain)?, id)
            }
        };
        let id = SnapshotId(id);
        repo.write_new(&format!("snapshots/{}", id.to_hex()), &bytes)?;
        crate::killpoint::reached("manifest-published");
        crate::repo::seen::added(repo, &[id]);
        Ok(id)
    }

    /// Read `snapshots/<id>` and check it.
    pub fn load(repo: &Repo, id: &SnapshotId) -> Result<Snapshot> {
        Ok(Snapshot::load_body(repo, id)?.0)
    }

    /// [`Snapshot::load`], with the checked envelope version and plaintext
    /// body it was decoded from (what `cache::ManifestCache` keeps).
    pub fn load_body(repo: &Repo, id: &SnapshotId) -> Result<(Snapshot, (u8, Vec<u8>))> {
        let object = format!("snapshots/{}", id.to_hex());
        let bytes = repo.read(&object)?;
        let signers = repo.signers()?;
        let ((s, body), got) =
            repo.open_file_versioned(ObjectKind::Snapshot, &bytes, &object, |v, body| {
                Ok((
                    decode(v, body, &object, &id.0, &signers)?,
                    (v, body.to_vec()),
                ))
            })?;
        if got != id.0 {
            return Err(Error::corrupt(
                object,
                "content does not match the file name",
            ));
        }
        Ok((s, body))
    }
}

/// Decode a manifest body of envelope version `version` (1, 2, or 3 whose
/// signature by its writer is checked against `signers`: a manifest
/// signed by an unknown or removed key, or with a bad signature, is
/// refused). `id` is the envelope's id field (a removed key's record
/// lists the ids that stay valid).
pub fn decode(
    version: u8,
    body: &[u8],
    object: &str,
    id: &[u8; 32],
    signers: &Signers,
) -> Result<Snapshot> {
    if version == 3 {
        let v: SnapshotV3 = crate::object::decode_body(body, object)?;
        let verifying = signers
            .verifier(&v.writer, id)
            .map_err(|why| Error::corrupt(object, format!("refused: {why}")))?;
        let encoded = crate::object::encode_body(&v.body)?;
        if !crate::crypto::verify(
            &verifying,
            &signed_message(&encoded, &v.writer),
            &v.signature,
        ) {
            return Err(Error::corrupt(
                object,
                format!(
                    "refused: the signature of key {} does not verify (forged?)",
                    v.writer
                ),
            ));
        }
        let writer = crate::id::KeyId::from_file_name(&v.writer)
            .ok_or_else(|| Error::corrupt(object, "the writer is not a key id"))?;
        return check_layout(v.body.into_snapshot(Some(writer)), object);
    }
    if version == 1 {
        let v: SnapshotV1 = crate::object::decode_body(body, object)?;
        return Ok(Snapshot {
            time_unix_ns: v.time_unix_ns,
            host: v.host,
            username: v.username,
            paths: v.paths,
            tags: v.tags,
            tree: v.tree,
            parent: v.parent,
            summary: v.summary,
            program: v.program,
            layout: Layout::ByName as u8,
            writer: None,
        });
    }
    let s: SnapshotV2 = crate::object::decode_body(body, object)?;
    check_layout(s.into_snapshot(None), object)
}

fn check_layout(s: Snapshot, object: &str) -> Result<Snapshot> {
    if s.layout > Layout::Absolute as u8 {
        return Err(Error::corrupt(
            object,
            format!("unknown layout {}", s.layout),
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::repo::InitOptions;
    use std::os::unix::fs::MetadataExt;

    fn snapshot() -> Snapshot {
        Snapshot {
            time_unix_ns: 1,
            host: "h".into(),
            username: "u".into(),
            paths: vec![b"/data".to_vec()],
            tags: Vec::new(),
            tree: BlobId::of(b"tree"),
            parent: None,
            summary: Summary::default(),
            program: "test".into(),
            layout: Layout::Absolute as u8,
            writer: None,
        }
    }

    /// INV-5: a snapshot file already under its name (same name = same
    /// bytes) is left as it is, never replaced, and no temp file stays
    /// behind. Replacing it would be a rename over it: a new inode.
    #[test]
    fn save_never_replaces_an_existing_snapshot_file() {
        let d = tempfile::tempdir().unwrap();
        let repo = Repo::init(&d.path().join("repo"), &InitOptions::default()).unwrap();
        let s = snapshot();
        let id = s.save(&repo).unwrap();
        let path = repo.root().join("snapshots").join(id.to_hex());
        let ino = std::fs::metadata(&path).unwrap().ino();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(s.save(&repo).unwrap(), id);
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino, "replaced");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(std::fs::read_dir(repo.tmp_dir()).unwrap().count(), 0);
        assert_eq!(Snapshot::load(&repo, &id).unwrap(), s);
    }

    /// objects.md "Layouts": a version 1 body is the by-name layout, a
    /// version 2 body carries its layout, and an unknown layout is refused
    /// (a reader must never guess where the sources are).
    #[test]
    fn layouts_decode_by_envelope_version_and_unknown_ones_are_refused() {
        let s = snapshot();
        let v1 = SnapshotV1 {
            time_unix_ns: s.time_unix_ns,
            host: s.host.clone(),
            username: s.username.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
            tree: s.tree,
            parent: s.parent,
            summary: s.summary.clone(),
            program: s.program.clone(),
        };
        let cfg = crate::object::bincode_config();
        let body = bincode::encode_to_vec(&v1, cfg).unwrap();
        let no = Signers::default();
        assert_eq!(
            decode(1, &body, "v1", &[0; 32], &no).unwrap().layout(),
            Layout::ByName
        );
        let body = bincode::encode_to_vec(SnapshotV2::from(&s), cfg).unwrap();
        assert_eq!(decode(2, &body, "v2", &[0; 32], &no).unwrap(), s);
        let odd = Snapshot { layout: 2, ..s };
        let body = bincode::encode_to_vec(SnapshotV2::from(&odd), cfg).unwrap();
        let e = decode(2, &body, "snapshots/x", &[0; 32], &no)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown layout 2") && e.contains("snapshots/x"),
            "{e}"
        );
    }
}
