//! Library error type. Rules: corruption is its own variant, distinct from I/O;
//! every variant's message names the object or path it concerns and fits on one
//! line; nothing here panics on bad input.
//!
//! What a caller can match: not found ([`Error::NotFound`],
//! [`Error::SnapshotNotFound`], [`Error::NoRepository`], [`Error::is_not_found`]),
//! corrupt naming the object ([`Error::Corrupt`]), locked
//! ([`Error::Locked`], [`Error::RepoLocked`], [`Error::WrongKey`]), unlock
//! failed ([`Error::UnlockFailed`]), invalid input ([`Error::Invalid`]),
//! storage ([`Error::Backend`], [`Error::Io`], [`Error::is_transport_failure`])
//! and strata's own faults ([`Error::Internal`]).

use std::io;
use std::path::{Path, PathBuf};

/// Every error the engine returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A repository object failed a check: bad magic, hash mismatch, truncation…
    #[error("{object}: corrupt: {detail}")]
    Corrupt {
        /// What was being read, e.g. `pack 1a2b…` or `snapshots/…`.
        object: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No repository at the path.
    #[error("{}: repository does not exist (create it with `strata init`)", .0.display())]
    NoRepository(PathBuf),
    /// A path that exists but is not a repository.
    #[error("{}: not a strata repository ({reason})", path.display())]
    NotARepository {
        /// The path given.
        path: PathBuf,
        /// Why it is not one.
        reason: String,
    },
    /// The SQLite index failed.
    #[error("index.sqlite: {0}")]
    Index(#[from] rusqlite::Error),
    /// Bad input: an option, an argument, a value in a file the user gave,
    /// a request the repository cannot serve as asked.
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist: a key, a pack, a path in a
    /// snapshot, a file. (A snapshot is [`Error::SnapshotNotFound`], a
    /// repository [`Error::NoRepository`], a repository file the
    /// backend's `NotFound`.)
    #[error("{0}")]
    NotFound(String),
    /// Unlocking could not begin: the password command failed, a
    /// passphrase was empty or not confirmed, an identity file does not
    /// read. (A credential that opens no key is [`Error::WrongKey`]; none
    /// at all, [`Error::Locked`].)
    #[error("{0}")]
    UnlockFailed(String),
    /// A fault of strata itself or of its process, not of the input or
    /// the storage: a lock poisoned by a panic, a thread that would not
    /// start, no random source.
    #[error("{0}")]
    Internal(String),
    /// No snapshot matches.
    #[error("no snapshot matches {0}")]
    SnapshotNotFound(String),
    /// Packs that the index names are missing from the repository.
    #[error("missing pack {pack} (and {more} more); affected files: {files}")]
    MissingPack {
        /// The first missing pack.
        pack: String,
        /// How many other packs are missing.
        more: usize,
        /// Some affected file paths.
        files: String,
    },
    /// A blob that a snapshot references is not in the index.
    #[error("blob {blob} is not in the index (needed by {file})")]
    MissingBlob {
        /// The blob id.
        blob: String,
        /// A file that needs it.
        file: String,
    },
    /// The command behind `--stdin-from-command` failed.
    #[error("source command `{command}` failed ({status}); no snapshot saved")]
    SourceCommand {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
    },
    /// No key file opened with the given passphrase or identity.
    #[error("wrong passphrase or key ({0})")]
    WrongKey(String),
    /// An encrypted repository and no way to unlock it.
    #[error("{0}")]
    Locked(String),
    /// The repository is locked by another process, or this process lost
    /// its lock.
    #[error("{0}")]
    RepoLocked(String),
    /// The storage backend failed (format-spec/backend.md); names the
    /// backend and key.
    #[error(transparent)]
    Backend(#[from] crate::backend::error::BackendError),
    /// `restore --verify` found a difference.
    #[error("verify failed: {0}")]
    Verify(String),
    /// The storage presents something this machine must not accept: an
    /// unencrypted repository where an encrypted one is expected
    /// (threat-model.md "Downgrade"), or snapshots it saw that are gone
    /// (threat-model.md "Rollback and deletion"). Names the location and
    /// what changed.
    #[error("{0}")]
    Refused(String),
    /// The command needs what a write-only key does not hold (a full key:
    /// format-spec/write-only.md); the text names the command and the key.
    #[error("{0}")]
    NeedsFullKey(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A missing file: a local `NotFound`, or the backend's.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::Backend(b) => b.is_not_found(),
            _ => false,
        }
    }

    /// The object store failed (a `Store` error after its retries,
    /// format-spec/backend.md), here or inside a local I/O error that
    /// carries it (the age reader of an encrypted pack reads through
    /// `io::Read`): no verdict on the object being read.
    pub fn is_store_failure(&self) -> bool {
        self.backend_failure(|b| matches!(b, crate::backend::error::BackendError::Store { .. }))
    }

    /// The storage failed to deliver (an object store `Store` error, a
    /// fault injected by `FaultBackend`, or a backend I/O error such as
    /// EIO), here or inside an I/O error that carries it: no verdict on
    /// the bytes of the object, which a later read may deliver intact.
    /// `check` reports such a blob but does not record it as damaged
    /// (check.md "Damaged blobs").
    pub fn is_transport_failure(&self) -> bool {
        use crate::backend::error::BackendError as B;
        self.backend_failure(|b| matches!(b, B::Store { .. } | B::Injected { .. } | B::Io { .. }))
    }

    /// A backend error for which `pred` holds, here or inside an I/O error
    /// that carries it (possibly nested).
    fn backend_failure(&self, pred: fn(&crate::backend::error::BackendError) -> bool) -> bool {
        fn in_io(e: &io::Error, pred: fn(&crate::backend::error::BackendError) -> bool) -> bool {
            match e.get_ref() {
                Some(inner) => {
                    if let Some(b) = inner.downcast_ref::<crate::backend::error::BackendError>() {
                        pred(b)
                    } else if let Some(io) = inner.downcast_ref::<io::Error>() {
                        in_io(io, pred)
                    } else {
                        false
                    }
                }
                None => false,
            }
        }
        match self {
            Error::Backend(b) => pred(b),
            Error::Io { source, .. } => in_io(source, pred),
            _ => false,
        }
    }

    /// A corruption error on `object`.
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            detail: detail.into(),
        }
    }
}

/// Attach a path to an `io::Error`.
pub trait IoContext<T> {
    /// Wrap the error with `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
