//! [`ObjectStoreBackend`]: a repository on the `object_store` crate: S3 and
//! S3-compatible stores, GCS, Azure (feature `cloud`), `file://` (its
//! `LocalFileSystem`, with fsync on) and `memory://` (tests). Key `a/b` is
//! object `PREFIX/a/b`. The crate is async; this backend stays sync by
//! running each call on one private multi-threaded tokio runtime.
//! Create-only writes use `PutMode::Create` (S3: `If-None-Match: *`).
//! format-spec/backend.md "Object stores".

use super::{BResult, Backend, BackendError, Listed, check_key, check_prefix};
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
        #[cfg(feature = "cloud")]
        let env: Vec<(String, String)> = env.into_iter().collect();
        #[cfg(not(feature = "cloud"))]
        drop(env.into_iter());
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
                    .with_checksum_algorithm(Checksum::SHA256);
                let b = apply_env(b, &env, "AWS_", |b, k: AmazonS3ConfigKey, v| {
                    b.with_config(k, v)
                });
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            #[cfg(feature = "cloud")]
            ("gs", ObjectStoreScheme::GoogleCloudStorage) => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let b = GoogleCloudStorageBuilder::new().with_url(url);
                let b = apply_env(b, &env, "GOOGLE_", |b, k: GoogleConfigKey, v| {
                    b.with_config(k, v)
                });
                Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
            }
            #[cfg(feature = "cloud")]
            ("az", ObjectStoreScheme::MicrosoftAzure) => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let b = MicrosoftAzureBuilder::new().with_url(url);
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
        Ok(ObjectStoreBackend::new(store, path, url))
    }

    /// A backend over `store` under `prefix`, named `name` in errors.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: StorePath, name: &str) -> ObjectStoreBackend {
        ObjectStoreBackend {
            store,
            prefix,
            name: name.trim_end_matches('/').to_string(),
        }
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

    /// One PUT of `payload` under `key`, create-only. A store that cannot
    /// do create-only PUTs (object_store says `NotImplemented` or
    /// `NotSupported`, e.g. S3 with `AWS_CONDITIONAL_PUT=disabled`) gets a
    /// HEAD then a plain PUT: not atomic (backend.md "Create-only").
    fn put_create(&self, key: &str, payload: PutPayload) -> BResult<()> {
        let loc = self.location(key)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let r = self.block_on(key, self.store.put_opts(&loc, payload.clone(), opts))?;
        match r {
            Ok(_) => Ok(()),
            // S3 answers a failed If-None-Match with 412 (or 409 on a race)
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Err(BackendError::AlreadyExists {
                backend: self.name.clone(),
                key: key.to_string(),
            }),
            Err(
                object_store::Error::NotImplemented { .. }
                | object_store::Error::NotSupported { .. },
            ) => {
                if self.exists(key)? {
                    return Err(BackendError::AlreadyExists {
                        backend: self.name.clone(),
                        key: key.to_string(),
                    });
                }
                self.block_on(key, self.store.put(&loc, payload))?
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
        self.block_on(key, async {
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
        let r = self.block_on(key, async {
            let res = self.store.get_opts(&loc, opts).await?;
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

    fn size(&self, key: &str) -> BResult<u64> {
        let loc = self.location(key)?;
        self.block_on(key, self.store.head(&loc))?
            .map(|m| m.size)
            .map_err(|e| self.err(key, e))
    }

    /// One PUT with `PutMode::Create`; durable when it returns Ok.
    fn put_new(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        self.put_create(key, PutPayload::from(Bytes::copy_from_slice(bytes)))
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
        let r = self.put_create(key, PutPayload::from(bytes));
        if r.is_ok() || r.as_ref().is_err_and(BackendError::is_already_exists) {
            std::fs::remove_file(path).map_err(local)?;
        }
        r
    }

    /// One PUT with `PutMode::Overwrite` (atomic on every store).
    fn put_replace(&self, key: &str, bytes: &[u8]) -> BResult<()> {
        let loc = self.location(key)?;
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        self.block_on(key, self.store.put(&loc, payload))?
            .map(|_| ())
            .map_err(|e| self.err(key, e))
    }

    /// LIST (paged by the store), 1000 objects at a time; names
    /// that are not valid keys (another tool's files) are skipped.
    fn list(&self, prefix: &str, f: &mut dyn FnMut(Listed)) -> BResult<()> {
        check_prefix(prefix)?;
        let base = if prefix.is_empty() {
            self.prefix.clone()
        } else {
            self.join(prefix)
        };
        let strip = self.prefix.parts().count();
        let mut stream = if base.parts().count() == 0 {
            self.store.list(None)
        } else {
            self.store.list(Some(&base))
        }
        // polled again after its end when the last batch was short
        .fuse();
        loop {
            let batch = self.block_on(prefix, async {
                let mut batch = Vec::new();
                while batch.len() < LIST_BATCH {
                    match stream.next().await {
                        Some(Ok(m)) => batch.push(m),
                        Some(Err(e)) => return Err(e),
                        None => break,
                    }
                }
                Ok(batch)
            })?;
            let batch = match batch {
                Ok(b) => b,
                // file:// lists a missing directory as not found
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.err(prefix, e)),
            };
            if batch.is_empty() {
                break;
            }
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
                    f(Listed { key, size: m.size });
                }
            }
        }
        Ok(())
    }

    /// HEAD (for `NotFound`: S3's DELETE succeeds on a missing key), then
    /// DELETE.
    fn delete(&self, key: &str) -> BResult<()> {
        let loc = self.location(key)?;
        self.size(key)?;
        self.block_on(key, self.store.delete(&loc))?
            .map_err(|e| self.err(key, e))
    }
}
