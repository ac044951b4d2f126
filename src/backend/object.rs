//! [`ObjectStoreBackend`]: a repository on the `object_store` crate: S3 and
//! S3-compatible stores, GCS, Azure (feature `cloud`), `file://` (its
//! `LocalFileSystem`, with fsync on) and `memory://` (tests). Key `a/b` is
//! object `PREFIX/a/b`. The crate is async; this backend stays sync by
//! running each call on one private multi-threaded tokio runtime.
//! Create-only writes use `PutMode::Create` (S3: `If-None-Match: *`).
//! Retries ([`RetryBounds`]): object_store's per request, and this
//! backend's per call for the transport errors object_store gives up on
//! (a response body cut off, a create-only PUT timed out or reset); a
//! replayed create-only PUT that finds its key taken by the same bytes
//! is the earlier try's success. format-spec/backend.md "Object stores".

use super::lock::ObjectLock;
#[cfg(feature = "cloud")]
use super::lock::{LockMode, Retention};
use super::{BResult, Backend, BackendError, Listed, RangedRead, check_key, check_prefix};
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, ObjectStoreScheme, PutMode, PutOptions,
    PutPayload,
};
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// How many listed objects are fetched per step of [`Backend::list`]
/// (S3 pages hold 1000); the callback runs between steps, outside the
/// runtime, so it may call the backend.
const LIST_BATCH: usize = 1000;

/// A repository under a prefix of an object store.
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    name: String,
    retry: RetryBounds,
    /// S3's signed requests (Object Lock, versions): `s3://` only.
    #[cfg(feature = "cloud")]
    s3: Option<super::signed::S3Requests>,
    /// Write every object with this retention (`s3://` only).
    lock: Option<ObjectLock>,
}

/// How far failed requests are retried (format-spec/backend.md
/// "Retries"). Both layers use the same bounds: object_store retries each
/// request (5xx, 429, SlowDown, and errors before an answer arrives, with
/// exponential backoff); this backend retries each call once more for the
/// transport errors object_store does not retry (a body cut off or reset
/// mid-way, the timeout or reset of a create-only PUT). No retry of either
/// layer starts after `retry_timeout`, so a call gives up after at most
/// about twice that plus one request timeout (`AWS_TIMEOUT`, 30 s by
/// default, per request including its body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBounds {
    /// Retries after the first try (`STRATA_STORE_MAX_RETRIES`, default 10).
    pub max_retries: usize,
    /// No retry starts later than this after the first try
    /// (`STRATA_STORE_RETRY_TIMEOUT`, a duration such as `90s` or `3m`;
    /// default 3 minutes).
    pub retry_timeout: Duration,
}

impl Default for RetryBounds {
    /// object_store's defaults: 10 retries, 3 minutes.
    fn default() -> Self {
        RetryBounds {
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
        }
    }
}

impl RetryBounds {
    /// The defaults, overridden by `STRATA_STORE_MAX_RETRIES` and
    /// `STRATA_STORE_RETRY_TIMEOUT` in `env`.
    pub fn from_env<'a>(
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<RetryBounds, String> {
        let mut b = RetryBounds::default();
        for (k, v) in env {
            match k {
                "STRATA_STORE_MAX_RETRIES" => {
                    b.max_retries = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("{k}={v}: not a number of retries"))?;
                }
                "STRATA_STORE_RETRY_TIMEOUT" => {
                    b.retry_timeout =
                        humantime::parse_duration(v.trim()).map_err(|e| format!("{k}={v}: {e}"))?;
                }
                _ => {}
            }
        }
        Ok(b)
    }

    /// object_store's form of these bounds.
    #[cfg(feature = "cloud")]
    fn config(&self) -> object_store::RetryConfig {
        object_store::RetryConfig {
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
            ..Default::default()
        }
    }

    /// The pause before strata's retry number `n` (from 1): 100 ms,
    /// doubling, at most 5 s.
    fn backoff(n: usize) -> Duration {
        let doublings = n.saturating_sub(1).min(6) as u32;
        Duration::from_millis(100u64 << doublings).min(Duration::from_secs(5))
    }
}

/// Whether `e` comes from the HTTP transport (a timeout, a connection
/// reset, a body cut off) rather than from an answer of the store: those
/// are worth another try of the call. Not a failure to connect: object_store
/// retries those itself, so a server that is down or a wrong endpoint is
/// reported after its retries, not after ours on top.
fn is_transport(e: &object_store::Error) -> bool {
    #[cfg(feature = "cloud")]
    {
        use object_store::client::{HttpError, HttpErrorKind};
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = src {
            if let Some(h) = s.downcast_ref::<HttpError>() {
                return !matches!(h.kind(), HttpErrorKind::Connect);
            }
            src = s.source();
        }
        false
    }
    #[cfg(not(feature = "cloud"))]
    {
        let _ = e;
        false
    }
}

/// The runtime every object store call runs on, built on first use.
fn runtime() -> Result<&'static Runtime, String> {
    static RT: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-object-store")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the object store runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Apply the environment variables that start with `prefix` (`AWS_`,
/// `GOOGLE_`, `AZURE_`) as configuration keys of a builder, as
/// object_store's own `from_env` does, but from `env`.
#[cfg(feature = "cloud")]
fn apply_env<B, K: std::str::FromStr>(
    mut builder: B,
    env: &[(String, String)],
    prefix: &str,
    with: impl Fn(B, K, &str) -> B,
) -> B {
    for (k, v) in env {
        if k.starts_with(prefix) {
            if let Ok(key) = k.to_ascii_lowercase().parse::<K>() {
                builder = with(builder, key, v);
            }
        }
    }
    builder
}

impl ObjectStoreBackend {
    /// Open `url` (see [`super::open`]); cloud settings and credentials
    /// come from `env` only.
    pub fn open(
        url: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> BResult<ObjectStoreBackend> {
        let bad = |reason: String| BackendError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let (scheme, path) = if parsed.scheme() == "memory" {
            // `memory://` has an empty host, which ObjectStoreScheme refuses
            let path = StorePath::from_url_path(parsed.path()).map_err(|e| bad(e.to_string()))?;
            (ObjectStoreScheme::Memory, path)
        } else {
            ObjectStoreScheme::parse(&parsed).map_err(|e| bad(e.to_string()))?
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let retry = RetryBounds::from_env(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(bad)?;
        let store: Arc<dyn ObjectStore> = match (parsed.scheme(), scheme) {
            ("file", ObjectStoreScheme::Local) => Arc::new(
                // fsync of files and of the directories they are linked or
                // renamed into (off by default in object_store)
                object_store::local::LocalFileSystem::new().with_fsync(true),
            ),
            ("memory", ObjectStoreScheme::Memory) => {
                Arc::new(object_store::memory::InMemory::new())
            }
            #[cfg(feature = "cloud")]
            ("s3", ObjectStoreScheme::AmazonS3) => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, Checksum};
                let b = AmazonS3Builder::new()
                    .with_url(url)
                    // x-amz-checksum-sha256 on every PUT: the store rejects
                    // a body that arrives altered
                    .with_checksum_algorithm(Checksum::SHA256)
                    .with_retry(retry.config());
                let b = apply_env(b, &env, "AWS_", |b, k: AmazonS3ConfigKey, v| {
                    b.with_config(k, v)
                });
                let s3 = Arc::new(b.build().map_err(|e| bad(e.to_string()))?);
                let timeout = env
                    .iter()
                    .find(|(k, _)| k == "AWS_TIMEOUT")
                    .and_then(|(_, v)| humantime::parse_duration(v.trim()).ok())
                    .unwrap_or(Duration::from_secs(30));
                let requests = super::signed::S3Requests::new(s3.clone(), timeout).map_err(bad)?;
                let mut b = ObjectStoreBackend::new(s3, path, url).with_retry(retry);
                b.s3 = Some(requests);
                return Ok(b);
            }
            #[cfg(feature = "cloud")]
            ("gs", ObjectStoreScheme::GoogleCloudStorage) => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let b = GoogleCloudStorageBuilder::new()
                    .with_url(url)
                    .with_retry(retry.config());
                let b = apply_env(b, &env, "GOOGLE_", |b, k: GoogleConfigKey, v| {
                    b.with_config(k, v)
                });
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            #[cfg(feature = "cloud")]
            ("az", ObjectStoreScheme::MicrosoftAzure) => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let b = MicrosoftAzureBuilder::new()
                    .with_url(url)
                    .with_retry(retry.config());
                let b = apply_env(b, &env, "AZURE_", |b, k: AzureConfigKey, v| {
                    b.with_config(k, v)
                });
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            (s, _) => {
                return Err(bad(format!(
                    "unsupported scheme {s}:// (this build knows {})",
                    if cfg!(feature = "cloud") {
                        "s3://, gs://, az://, file://, memory:// and plain paths"
                    } else {
                        "file://, memory:// and plain paths; build with feature `cloud` for s3://, gs://, az://"
                    }
                )));
            }
        };
        Ok(ObjectStoreBackend::new(store, path, url).with_retry(retry))
    }

    /// A backend over `store` under `prefix`, named `name` in errors.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: StorePath, name: &str) -> ObjectStoreBackend {
        ObjectStoreBackend {
            store,
            prefix,
            name: name.trim_end_matches('/').to_string(),
            retry: RetryBounds::default(),
            #[cfg(feature = "cloud")]
            s3: None,
            lock: None,
        }
    }

    /// The same backend writing every object with the retention of
    /// `lock` (a signed PUT with Object Lock headers and `Content-MD5`):
    /// `s3://` only, on a bucket created with Object Lock enabled.
    pub fn with_object_lock(mut self, lock: ObjectLock) -> BResult<ObjectStoreBackend> {
        self.s3_requests("")?;
        self.lock = Some(lock);
        Ok(self)
    }

    /// Run one signed S3 request about `key` (`""`: the repository's
    /// prefix) on the runtime: `f` gets the client and the object's path.
    #[cfg(feature = "cloud")]
    pub(super) fn signed<T, Fut>(
        &self,
        key: &str,
        f: impl FnOnce(super::signed::S3Requests, StorePath) -> Fut,
    ) -> BResult<T>
    where
        Fut: Future<Output = Result<T, super::signed::Failure>>,
    {
        let s3 = self.s3_requests(key)?.clone();
        let loc = if key.is_empty() {
            self.prefix.clone()
        } else {
            self.location(key)?
        };
        self.block_on(key, f(s3, loc))?
            .map_err(|e| self.failed(key, e))
    }

    /// The full path prefix of the repository's objects: `""` or
    /// `prefix/` (a listing prefix).
    #[cfg(feature = "cloud")]
    pub(super) fn key_of_prefix(&self) -> String {
        let p = self.prefix.as_ref();
        if p.is_empty() {
            String::new()
        } else {
            format!("{p}/")
        }
    }

    /// The repository's key of an object's full path in the bucket, if it
    /// is one (under the prefix, a valid key).
    #[cfg(feature = "cloud")]
    pub(super) fn key_of(&self, path: &str) -> Option<String> {
        let prefix = self.prefix.as_ref();
        let key = if prefix.is_empty() {
            path
        } else {
            path.strip_prefix(prefix)?.strip_prefix('/')?
        };
        check_key(key).ok().map(|()| key.to_string())
    }

    /// The signed-request client, or `Refused` naming what needed it.
    #[cfg(feature = "cloud")]
    fn s3_requests(&self, key: &str) -> BResult<&super::signed::S3Requests> {
        self.s3.as_ref().ok_or_else(|| self.no_s3(key))
    }

    #[cfg(not(feature = "cloud"))]
    fn s3_requests(&self, key: &str) -> BResult<&()> {
        Err(self.no_s3(key))
    }

    fn no_s3(&self, key: &str) -> BackendError {
        BackendError::Refused {
            backend: self.name.clone(),
            key: key.to_string(),
            why: "Object Lock, retention and object versions need an s3:// repository".into(),
        }
    }

    /// A failed signed request as the seam's error (404: `NotFound`).
    #[cfg(feature = "cloud")]
    fn failed(&self, key: &str, f: super::signed::Failure) -> BackendError {
        if f.status == 404 {
            return BackendError::NotFound {
                backend: self.name.clone(),
                key: key.to_string(),
            };
        }
        BackendError::Request {
            backend: self.name.clone(),
            key: key.to_string(),
            status: f.status,
            code: f.code,
            message: f.message,
        }
    }

    /// The same backend retrying its calls within `retry` (the store's own
    /// retries are set when it is built).
    pub fn with_retry(mut self, retry: RetryBounds) -> ObjectStoreBackend {
        self.retry = retry;
        self
    }

    /// Run the request `f` makes, again while it fails with a transport
    /// error, within [`RetryBounds`]; `f` gets the try number (from 1).
    fn call<T, Fut>(
        &self,
        key: &str,
        mut f: impl FnMut(usize) -> Fut,
    ) -> BResult<Result<T, object_store::Error>>
    where
        Fut: Future<Output = Result<T, object_store::Error>>,
    {
        let start = Instant::now();
        let mut n = 1;
        loop {
            match self.block_on(key, f(n))? {
                Err(e) if self.may_retry(&e, n, start) => {
                    std::thread::sleep(RetryBounds::backoff(n));
                    n += 1;
                }
                r => return Ok(r),
            }
        }
    }

    /// Another try after `tries` that began at `start` and ended in `e`?
    fn may_retry(&self, e: &object_store::Error, tries: usize, start: Instant) -> bool {
        is_transport(e)
            && tries <= self.retry.max_retries
            && start.elapsed() < self.retry.retry_timeout
    }

    fn location(&self, key: &str) -> BResult<StorePath> {
        check_key(key)?;
        Ok(self.join(key))
    }

    /// `key` (already checked; its characters need no escaping) under the prefix.
    fn join(&self, key: &str) -> StorePath {
        self.prefix
            .parts()
            .chain(key.split('/').map(object_store::path::PathPart::from))
            .collect()
    }

    /// Run `fut` to completion on the runtime. Refuses (rather than panics)
    /// when called from inside a tokio runtime.
    fn block_on<T>(&self, key: &str, fut: impl Future<Output = T>) -> BResult<T> {
        let rt = runtime().map_err(|e| self.other(key, e))?;
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(self.other(
                key,
                "called from inside an async runtime; the backend is synchronous".into(),
            ));
        }
        Ok(rt.block_on(fut))
    }

    fn other(&self, key: &str, msg: String) -> BackendError {
        BackendError::Store {
            backend: self.name.clone(),
            key: key.to_string(),
            source: Box::new(object_store::Error::Generic {
                store: "strata",
                source: msg.into(),
            }),
        }
    }

    fn err(&self, key: &str, e: object_store::Error) -> BackendError {
        let (backend, key) = (self.name.clone(), key.to_string());
        match e {
            object_store::Error::NotFound { .. } => BackendError::NotFound { backend, key },
            object_store::Error::AlreadyExists { .. } => {
                BackendError::AlreadyExists { backend, key }
            }
            e => BackendError::Store {
                backend,
                key,
                source: Box::new(e),
            },
        }
    }

    /// A create-only PUT of `bytes` found `key` taken: the same bytes are
    /// success (an earlier try of this call landed), other bytes
    /// `AlreadyExists`.
    fn taken_by(&self, key: &str, bytes: &Bytes) -> BResult<()> {
        let taken = || BackendError::AlreadyExists {
            backend: self.name.clone(),
            key: key.to_string(),
        };
        match self.get(key) {
            Ok(there) if there == *bytes => Ok(()),
            Ok(_) => Err(taken()),
            Err(e) if e.is_not_found() => Err(taken()),
            Err(e) => Err(e),
        }
    }

    /// One PUT of `bytes` under `key`, create-only. A store that cannot
    /// do create-only PUTs (object_store says `NotImplemented` or
    /// `NotSupported`, e.g. S3 with `AWS_CONDITIONAL_PUT=disabled`) gets a
    /// HEAD then a plain PUT: not atomic (backend.md "Create-only").
    ///
    /// A try that fails in transport may have been carried out, its answer
    /// lost; the next try then finds the key taken (object_store replays
    /// some such requests itself, inside one try). So a taken key is read
    /// back: the same bytes are this call's success (whoever wrote them,
    /// the caller could not tell the difference), other bytes are
    /// `AlreadyExists`. Legitimately taken keys are rare (content-addressed
    /// names written twice, random names never), so the read costs little.
    fn put_create(&self, key: &str, bytes: Bytes) -> BResult<()> {
        let loc = self.location(key)?;
        #[cfg(feature = "cloud")]
        if let (Some(lock), Some(s3)) = (self.lock, &self.s3) {
            let wrote = self
                .block_on(key, s3.put_locked(&loc, bytes.clone(), &lock, true))?
                .map_err(|f| self.failed(key, f))?;
            return if wrote {
                Ok(())
            } else {
                self.taken_by(key, &bytes)
            };
        }
        let r = self.call(key, |_| {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            self.store
                .put_opts(&loc, PutPayload::from(bytes.clone()), opts)
        })?;
        let taken = || BackendError::AlreadyExists {
            backend: self.name.clone(),
            key: key.to_string(),
        };
        match r {
            Ok(_) => Ok(()),
            // S3 answers a failed If-None-Match with 412 (or 409 on a race);
            // object_store may have replayed a lost PUT inside one try
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => self.taken_by(key, &bytes),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                if self.exists(key)? {
                    return Err(taken());
                }
                self.call(key, |_| {
                    self.store.put(&loc, PutPayload::from(bytes.clone()))
                })?
                .map(|_| ())
                .map_err(|e| self.err(key, e))
            }
            Err(e) => Err(self.err(key, e)),
        }
    }
}

impl Backend for ObjectStoreBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &str) -> BResult<Bytes> {
        let loc = self.location(key)?;
        self.call(key, |_| async {
            self.store
                .get_opts(&loc, GetOptions::default())
                .await?
                .bytes()
                .await
        })?
        .map_err(|e| self.err(key, e))
    }

    /// One ranged GET; the size the store reports with it (or a HEAD after
    /// a refused range) tells a range past the end from other errors.
    fn get_range(&self, key: &str, range: Range<u64>) -> BResult<Bytes> {
        let loc = self.location(key)?;
        let out_of_range = |size| BackendError::OutOfRange {
            backend: self.name.clone(),
            key: key.to_string(),
            range: range.clone(),
            size,
        };
        if range.start >= range.end {
            // an HTTP range cannot be empty: check the object and the bound
            let size = self.size(key)?;
            if range.start > range.end || range.end > size {
                return Err(out_of_range(size));
            }
            return Ok(Bytes::new());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..Default::default()
        };
        let r = self.call(key, |_| async {
            let res = self.store.get_opts(&loc, opts.clone()).await?;
            let size = res.meta.size;
            Ok::<_, object_store::Error>((size, res.bytes().await?))
        })?;
        match r {
            Ok((size, bytes)) => {
                if range.end > size || bytes.len() as u64 != range.end - range.start {
                    return Err(out_of_range(size));
                }
                Ok(bytes)
            }
            Err(object_store::Error::NotFound { .. }) => Err(BackendError::NotFound {
                backend: self.name.clone(),
                key: key.to_string(),
            }),
            Err(e) => {
                // a start past the end is refused by the store (416 on S3;
                // object_store reports it variously): look at the size
                match self.size(key) {
                    Ok(size) if range.end > size => Err(out_of_range(size)),
                    _ => Err(self.err(key, e)),
                }
            }
        }
    }

    fn open_ranged(&self, key: &str) -> BResult<Box<dyn RangedRead>> {
        let size = self.size(key)?;
        Ok(Box::new(StoreRanged {
            store: self.clone(),
            key: key.to_string(),
            size,
        }))
    }

    fn remote_reads(&self) -> Option<usize> {
        Some(REMOTE_READS)
    }

    fn size(&self, key: &str) -> BResult<u64> {
        let loc = self.location(key)?;
        self.call(key, |_| self.store.head(&loc))?
            .map(|m| m.size)
            .map_err(|e| self.err(key, e))
    }

    /// One PUT with `PutMode::Create`; durable when it returns Ok.
    fn put_new(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        self.put_create(key, Bytes::copy_from_slice(bytes))
    }

    /// [`Self::put_new`] without the copy.
    fn put_new_bytes(&self, key: &str, bytes: Bytes) -> BResult<()> {
        self.put_create(key, bytes)
    }

    /// The file is read once into memory and sent as one create-only PUT
    /// (up to 5 GiB on S3; packs are far smaller), then removed.
    fn put_new_file(&self, key: &str, path: &Path) -> BResult<()> {
        check_key(key)?;
        let local = |e: std::io::Error| BackendError::Io {
            backend: self.name.clone(),
            key: format!("{key} (from {})", path.display()),
            source: e,
        };
        let bytes = std::fs::read(path).map_err(local)?;
        let r = self.put_create(key, Bytes::from(bytes));
        if r.is_ok() || r.as_ref().is_err_and(BackendError::is_already_exists) {
            std::fs::remove_file(path).map_err(local)?;
        }
        r
    }

    /// One PUT with `PutMode::Overwrite` (atomic on every store).
    fn put_replace(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        let loc = self.location(key)?;
        let bytes = Bytes::copy_from_slice(bytes);
        #[cfg(feature = "cloud")]
        if let (Some(lock), Some(s3)) = (self.lock, &self.s3) {
            self.block_on(key, s3.put_locked(&loc, bytes, &lock, false))?
                .map_err(|f| self.failed(key, f))?;
            return Ok(());
        }
        self.call(key, |_| {
            self.store.put(&loc, PutPayload::from(bytes.clone()))
        })?
        .map(|_| ())
        .map_err(|e| self.err(key, e))
    }

    /// LIST (paged by the store), 1000 objects at a time; names
    /// that are not valid keys (another tool's files) are skipped. A
    /// listing cut off by a transport error resumes after the last object
    /// received ([`RetryBounds`]).
    fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()> {
        check_prefix(prefix)?;
        let base = if prefix.is_empty() {
            self.prefix.clone()
        } else {
            self.join(prefix)
        };
        let strip = self.prefix.parts().count();
        // a listing cut off by a transport error resumes after the last
        // object received: the HTTP stores list in key order
        let open = |after: Option<&StorePath>| {
            let base = (base.parts().count() > 0).then_some(&base);
            match after {
                Some(a) => self.store.list_with_offset(base, a),
                None => self.store.list(base),
            }
            // polled again after its end when the last batch was short
            .fuse()
        };
        let mut stream = open(None);
        let mut last: Option<StorePath> = None;
        let (start, mut tries) = (Instant::now(), 1);
        loop {
            let (batch, failed) = self.block_on(prefix, async {
                let mut batch = Vec::new();
                while batch.len() < LIST_BATCH {
                    match stream.next().await {
                        Some(Ok(m)) => batch.push(m),
                        Some(Err(e)) => return (batch, Some(e)),
                        None => break,
                    }
                }
                (batch, None)
            })?;
            let done = batch.is_empty() && failed.is_none();
            for m in batch {
                let parts: Vec<String> = m
                    .location
                    .parts()
                    .skip(strip)
                    .map(|p| p.as_ref().to_string())
                    .collect();
                let key = parts.join("/");
                // (file:// lists a file given as the prefix as itself)
                let under = prefix.is_empty()
                    || key
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'));
                if under && check_key(&key).is_ok() {
                    f(Listed {
                        key,
                        size: m.size,
                        modified: Some(m.last_modified.into()),
                    });
                }
                last = Some(m.location);
            }
            match failed {
                None if done => break,
                None => {}
                // file:// lists a missing directory as not found
                Some(object_store::Error::NotFound { .. }) => break,
                Some(e) if self.may_retry(&e, tries, start) => {
                    std::thread::sleep(RetryBounds::backoff(tries));
                    tries += 1;
                    stream = open(last.as_ref());
                }
                Some(e) => return Err(self.err(prefix, e)),
            }
        }
        Ok(())
    }

    #[cfg(feature = "cloud")]
    fn retention(&self, key: &str) -> BResult<Option<Retention>> {
        let loc = self.location(key)?;
        let s3 = self.s3_requests(key)?;
        self.block_on(key, s3.retention(&loc))?
            .map_err(|f| self.failed(key, f))
    }

    #[cfg(feature = "cloud")]
    fn set_retention(&self, key: &str, mode: LockMode, until: i64) -> BResult<()> {
        let loc = self.location(key)?;
        let s3 = self.s3_requests(key)?;
        self.block_on(key, s3.put_retention(&loc, mode, until))?
            .map_err(|f| self.failed(key, f))
    }

    fn object_lock(&self) -> Option<ObjectLock> {
        self.lock
    }

    /// HEAD (for `NotFound`: S3's DELETE succeeds on a missing key), then
    /// DELETE.
    fn delete(&self, key: &str) -> BResult<()> {
        let loc = self.location(key)?;
        self.size(key)?;
        self.call(key, |_| self.store.delete(&loc))?
            .map_err(|e| self.err(key, e))
    }
}

/// Reads kept in flight on an object store ([`Backend::remote_reads`]):
/// restore's read threads, the packs an index rebuild reads at once.
pub const REMOTE_READS: usize = 16;

/// A key of an object store opened for ranged reads: one ranged GET per
/// read, with the backend's retries ([`Backend::get_range`]).
#[derive(Debug)]
struct StoreRanged {
    store: ObjectStoreBackend,
    key: String,
    size: u64,
}

impl RangedRead for StoreRanged {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> BResult<()> {
        let b = self.read(offset..offset.saturating_add(buf.len() as u64))?;
        buf.copy_from_slice(&b);
        Ok(())
    }

    fn read(&self, range: Range<u64>) -> BResult<Bytes> {
        self.store.get_range(&self.key, range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::error::{hint, one_line};

    #[test]
    fn a_missing_bucket_and_missing_credentials_say_what_to_do() {
        let nsb = object_store::Error::Generic {
            store: "S3",
            source: "Error performing LIST http://127.0.0.1:5000/hbbucket?list-type=2 in 1ms - \
                Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?>\n\
                <Error><Code>NoSuchBucket</Code><Message>The specified bucket does not \
                exist</Message></Error>"
                .into(),
        };
        let e = super::super::BackendError::Store {
            backend: "s3://hbbucket/strata".into(),
            key: String::new(),
            source: Box::new(nsb),
        }
        .to_string();
        assert!(
            e.starts_with("s3://hbbucket/strata: Generic S3 error"),
            "{e}"
        );
        assert!(!e.contains("strata: s3://"), "{e}");
        assert!(e.contains("strata does not create buckets"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let creds = object_store::Error::Generic {
            store: "S3",
            source: "Error performing PUT http://169.254.169.254/latest/api/token in 1ms - \
                Server returned non-2xx status code: 403 Forbidden"
                .into(),
        };
        assert!(hint(&creds).contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn store_errors_are_one_line_without_the_xml_document() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: "Error performing GET http://h/b/k in 1s  - Server returned non-2xx \
                     status code: 503 Service Unavailable: <?xml version=\"1.0\"?>\n<Error>\
                     <Code>SlowDown</Code>\n<Message>Please reduce your request rate.</Message>\
                     <RequestId>1</RequestId></Error>\n"
                .into(),
        };
        assert_eq!(
            one_line(&e),
            "Generic S3 error: Error performing GET http://h/b/k in 1s - Server returned \
             non-2xx status code: 503 Service Unavailable: SlowDown: Please reduce your \
             request rate."
        );
    }

    #[test]
    fn retry_bounds_from_the_environment() {
        let b = RetryBounds::from_env([
            ("STRATA_STORE_MAX_RETRIES", "3"),
            ("STRATA_STORE_RETRY_TIMEOUT", "20s"),
            ("AWS_TIMEOUT", "1s"),
        ])
        .unwrap();
        assert_eq!((b.max_retries, b.retry_timeout.as_secs()), (3, 20));
        assert_eq!(RetryBounds::from_env([]).unwrap(), RetryBounds::default());
        let e = RetryBounds::from_env([("STRATA_STORE_MAX_RETRIES", "many")]).unwrap_err();
        assert!(e.contains("STRATA_STORE_MAX_RETRIES"), "{e}");
        assert!(RetryBounds::from_env([("STRATA_STORE_RETRY_TIMEOUT", "soon")]).is_err());
        assert_eq!(RetryBounds::backoff(1), Duration::from_millis(100));
        assert_eq!(RetryBounds::backoff(3), Duration::from_millis(400));
        assert_eq!(RetryBounds::backoff(50), Duration::from_secs(5));
    }
}
