//! The errors of the storage seam ([`BackendError`]) and the names of its
//! operations ([`Op`]): a leaf, which `crate::error` wraps, so that the
//! engine's error type needs nothing of the backends themselves.

use std::ops::Range;

/// Errors of the seam. Every variant names the backend (its URL or
/// directory) and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The key does not exist (get, get_range, size, delete).
    #[error("{backend}: {key}: not found")]
    NotFound {
        /// The backend's URL or directory.
        backend: String,
        /// The key asked for.
        key: String,
    },
    /// `put_new` found the key taken; what was there is unchanged.
    #[error("{backend}: {key}: already exists")]
    AlreadyExists {
        /// The backend's URL or directory.
        backend: String,
        /// The key written.
        key: String,
    },
    /// A ranged read reaching past the end of the object.
    #[error("{backend}: {key}: range {}..{} is past the end ({size} bytes)", range.start, range.end)]
    OutOfRange {
        /// The backend's URL or directory.
        backend: String,
        /// The key read.
        key: String,
        /// The range asked for.
        range: Range<u64>,
        /// The object's size.
        size: u64,
    },
    /// A key or prefix that is not a repository key (key.rs rules).
    #[error("invalid repository key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A `--repo` value that names no backend this build can open.
    #[error("{url}: {reason}")]
    InvalidUrl {
        /// The value given.
        url: String,
        /// Why it cannot be opened.
        reason: String,
    },
    /// A local I/O error.
    #[error("{backend}: {key}: {source}")]
    Io {
        /// The backend's directory.
        backend: String,
        /// The key (or local path) involved.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An object store error other than not-found / already-exists (after
    /// the bounded retries of `object::RetryBounds`). Shown on one line: an
    /// S3 XML error body in object_store's message is cut down to its code
    /// and message, and line breaks become spaces; an empty key (a listing
    /// of the whole repository) is left out, and a missing bucket or
    /// missing credentials get a hint (`object::hint`).
    #[error("{}{}{}", at(backend, key), one_line(source), hint(source))]
    Store {
        /// The backend's URL.
        backend: String,
        /// The key involved.
        key: String,
        /// The underlying error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// A request of the signed S3 layer (`signed.rs`: Object Lock,
    /// retention, versions) that the store refused or that failed.
    #[error("{backend}: {key}: HTTP {status}: {code}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Request {
        /// The backend's URL.
        backend: String,
        /// The key involved.
        key: String,
        /// The HTTP status (0: no answer).
        status: u16,
        /// S3's error code (`AccessDenied`, …).
        code: String,
        /// S3's message.
        message: String,
    },
    /// A write to a backend that is read-only: a point-in-time view
    /// (`--point-in-time`), or a lock operation of a store without Object
    /// Lock.
    #[error("{backend}: {key}: {why}")]
    Refused {
        /// The backend's URL.
        backend: String,
        /// The key involved.
        key: String,
        /// Why.
        why: String,
    },
    /// A fault injected by [`super::FaultBackend`].
    #[error("{backend}: {key}: injected fault ({op:?} call {call})")]
    Injected {
        /// The wrapped backend.
        backend: String,
        /// The key of the failed call (the prefix for `list`).
        key: String,
        /// The operation.
        op: Op,
        /// Which call of that operation it was, counting from 1.
        call: u64,
    },
}

impl BackendError {
    /// The key does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }

    /// `put_new` found the key taken.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, BackendError::AlreadyExists { .. })
    }

    /// The store refused the request for want of permission (or because
    /// the version is locked).
    pub fn is_access_denied(&self) -> bool {
        matches!(self, BackendError::Request { status: 403, .. })
    }
}

/// Result with [`BackendError`].
pub type BResult<T> = std::result::Result<T, BackendError>;

/// The operations of [`super::Backend`] that can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`super::Backend::get`]
    Get,
    /// [`super::Backend::get_range`]
    GetRange,
    /// [`super::Backend::size`] (also behind `exists`)
    Size,
    /// [`super::Backend::put_new`]
    PutNew,
    /// [`super::Backend::put_new_file`]
    PutNewFile,
    /// [`super::Backend::put_replace`]
    PutReplace,
    /// [`super::Backend::list`]
    List,
    /// [`super::Backend::delete`]
    Delete,
}

/// `e` as one line: object_store quotes an error answer's body, which on
/// S3 is an XML document over several lines; it is cut down to
/// `Code: Message`, and every run of white space becomes one space. The
/// innermost cause is added when the message does not show it (object_store
/// says "error sending request" for a timeout and a reset alike).
pub fn one_line(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut root: Option<&(dyn std::error::Error + 'static)> = None;
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        root = Some(s);
        src = s.source();
    }
    if let Some(r) = root.map(ToString::to_string) {
        if !r.is_empty() && !text.contains(&r) {
            text = format!("{text} ({r})");
        }
    }
    let start = text.find("<?xml").or_else(|| text.find("<Error>"));
    if let Some(start) = start {
        let end = text[start..]
            .find("</Error>")
            .map_or(text.len(), |i| start + i + "</Error>".len());
        let field = |name: &str| {
            let xml = &text[start..end];
            let open = format!("<{name}>");
            let a = xml.find(&open)? + open.len();
            let b = xml[a..].find(&format!("</{name}>"))? + a;
            Some(xml[a..b].to_string())
        };
        let brief = match (field("Code"), field("Message")) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c,
            _ => String::from("(an XML error document)"),
        };
        text.replace_range(start..end, &brief);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `backend: key: `, or `backend: ` for the empty key (a listing of the
/// whole repository).
pub fn at(backend: &str, key: &str) -> String {
    if key.is_empty() {
        format!("{backend}: ")
    } else {
        format!("{backend}: {key}: ")
    }
}

/// What a user can do about two store errors that name neither cause
/// plainly: a bucket that does not exist, and no credentials at all (the
/// AWS client then asks the instance metadata service at 169.254.169.254,
/// which refuses outside a cloud instance). Empty for anything else.
pub fn hint(e: &object_store::Error) -> &'static str {
    let text = one_line(e);
    if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
        " (the bucket does not exist: strata does not create buckets; create it first, e.g. \
         `aws s3 mb s3://BUCKET`, or check the name and the endpoint)"
    } else if text.contains("169.254.169.254") || text.contains("/latest/api/token") {
        " (no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
         AWS_PROFILE; a scheduled run gets them from the policy's environment_file)"
    } else {
        ""
    }
}
