//! The S3 requests object_store 0.14 cannot make (format-spec/backend.md
//! "Object Lock"): a PUT carrying Object Lock headers and `Content-MD5`,
//! PutObjectRetention, a HEAD that reads the retention, ListObjectVersions,
//! and GET and DELETE of one version. Each is signed by object_store's own
//! SigV4 signer (`Signer::signed_url_opts`, which folds extra headers and
//! query parameters into the signature, with the credentials, region and
//! endpoint the store was built with) and sent through reqwest (already
//! built by feature `cloud`). The functions are async: the object store
//! backend runs them on its runtime.

use super::lock::{LockMode, ObjectLock, Retention, parse_s3_date, s3_date};
use base64::Engine;
use bytes::Bytes;
use md5::{Digest, Md5};
use object_store::aws::AmazonS3;
use object_store::path::Path as StorePath;
use object_store::signer::{SignedUrlOptions, Signer};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// How long a signed URL is valid: each is used at once.
const EXPIRES: Duration = Duration::from_secs(15 * 60);
/// Tries of one request (first included) on 5xx, 429 and transport errors.
const TRIES: usize = 6;

/// An S3 request that failed: the HTTP status (0 when none came) and S3's
/// error code and message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// HTTP status, 0 without an answer.
    pub status: u16,
    /// S3's `<Code>` (`AccessDenied`, `PreconditionFailed`, …) or a short
    /// description.
    pub code: String,
    /// S3's `<Message>` or the transport error.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "{}: {}", self.code, self.message)
        } else {
            write!(f, "HTTP {}: {}: {}", self.status, self.code, self.message)
        }
    }
}

/// One version of an object (or a delete marker), as ListObjectVersions
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The object's full path in the bucket.
    pub path: String,
    /// Its version id (`null` for an object written before versioning).
    pub version_id: String,
    /// Last-Modified, unix seconds (S3 keeps whole seconds).
    pub modified: i64,
    /// Its size (0 for a delete marker).
    pub size: u64,
    /// A delete marker, not an object.
    pub delete_marker: bool,
}

/// The signed-request client of one S3 store.
#[derive(Debug, Clone)]
pub struct S3Requests {
    s3: Arc<AmazonS3>,
    http: reqwest::Client,
    bucket_path: StorePath,
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    HeaderValue::from_str(value)
        .map(|v| (HeaderName::from_static(name), v))
        .map_err(|e| local("bad header", e))
}

fn local(code: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        status: 0,
        code: code.to_string(),
        message: e.to_string(),
    }
}

/// `Content-MD5` of `bytes` (base64 of the MD5 digest).
fn content_md5(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// The text of the first `<name>…</name>` in `xml`, unescaped.
pub fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// The versions and delete markers of one ListObjectVersions page, in
/// the order listed (each key's newest first), and the markers of the next
/// page if it is truncated.
pub fn parse_versions(xml: &str) -> (Vec<Version>, Option<(String, String)>) {
    let mut out = Vec::new();
    let mut rest = xml;
    loop {
        let v = rest.find("<Version>");
        let d = rest.find("<DeleteMarker>");
        let (at, marker, close) = match (v, d) {
            (Some(v), Some(d)) if d < v => (d, true, "</DeleteMarker>"),
            (Some(v), _) => (v, false, "</Version>"),
            (None, Some(d)) => (d, true, "</DeleteMarker>"),
            (None, None) => break,
        };
        let tail = &rest[at..];
        let end = tail.find(close).map_or(tail.len(), |e| e + close.len());
        let body = &tail[..end];
        rest = &tail[end..];
        if let (Some(path), Some(version_id), Some(modified)) = (
            xml_text(body, "Key"),
            xml_text(body, "VersionId"),
            xml_text(body, "LastModified").and_then(|d| parse_s3_date(&d)),
        ) {
            out.push(Version {
                path,
                version_id,
                modified,
                size: xml_text(body, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                delete_marker: marker,
            });
        }
    }
    let next = match xml_text(xml, "IsTruncated").as_deref() {
        Some("true") => Some((
            xml_text(xml, "NextKeyMarker").unwrap_or_default(),
            xml_text(xml, "NextVersionIdMarker").unwrap_or_default(),
        )),
        _ => None,
    };
    (out, next)
}

impl S3Requests {
    /// Requests to the bucket of `s3`.
    pub fn new(s3: Arc<AmazonS3>, timeout: Duration) -> Result<S3Requests, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(S3Requests {
            s3,
            http,
            bucket_path: StorePath::default(),
        })
    }

    /// Sign and send one request; retried on 5xx, 429 and transport errors.
    async fn send(
        &self,
        method: Method,
        path: &StorePath,
        query: &[(&str, &str)],
        signed: &[(HeaderName, HeaderValue)],
        unsigned: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Failure> {
        let mut opts = SignedUrlOptions::default().with_query(query.iter().copied());
        for (k, v) in signed {
            opts = opts.with_signed_header(k.clone(), v.clone());
        }
        let mut last = local("no try", "");
        for n in 1..=TRIES {
            if n > 1 {
                // 100 ms doubling, as the backend's own retries
                tokio::time::sleep(Duration::from_millis(100 << (n - 2).min(5))).await;
            }
            let url = self
                .s3
                .signed_url_opts(method.clone(), path, EXPIRES, &opts)
                .await
                .map_err(|e| local("signing", e))?;
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in signed.iter().chain(unsigned) {
                req = req.header(k.clone(), v.clone());
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = local("transport", e);
                    continue;
                }
            };
            let (status, headers) = (resp.status(), resp.headers().clone());
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = local("transport", e);
                    continue;
                }
            };
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                last = failure(status, &bytes);
                continue;
            }
            return Ok((status, headers, bytes));
        }
        Err(last)
    }

    /// PUT `bytes` at `path` with a retention of `lock` from now and
    /// `Content-MD5`; with `create`, `If-None-Match: *`. `Ok(false)`: the
    /// key was taken (412 or 409) and nothing was written.
    pub async fn put_locked(
        &self,
        path: &StorePath,
        bytes: Bytes,
        lock: &ObjectLock,
        create: bool,
    ) -> Result<bool, Failure> {
        let until = s3_date(lock.until(crate::sys::now_ns() / 1_000_000_000));
        let mut signed = vec![
            header("content-md5", &content_md5(&bytes))?,
            header("x-amz-object-lock-mode", lock.mode.s3())?,
            header("x-amz-object-lock-retain-until-date", &until)?,
        ];
        if create {
            signed.push(header("if-none-match", "*")?);
        }
        let (status, _, body) = self
            .send(Method::PUT, path, &[], &signed, &[], Some(bytes))
            .await?;
        match status {
            s if s.is_success() => Ok(true),
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT if create => Ok(false),
            s => Err(failure(s, &body)),
        }
    }

    /// PutObjectRetention: retain the current version of `path` until
    /// `until` (unix seconds) in `mode`.
    pub async fn put_retention(
        &self,
        path: &StorePath,
        mode: LockMode,
        until: i64,
    ) -> Result<(), Failure> {
        let xml = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{}</RetainUntilDate></Retention>",
            mode.s3(),
            s3_date(until)
        );
        let signed = [header("content-md5", &content_md5(xml.as_bytes()))?];
        let (status, _, body) = self
            .send(
                Method::PUT,
                path,
                &[("retention", "")],
                &signed,
                &[],
                Some(Bytes::from(xml)),
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(failure(status, &body))
        }
    }

    /// The retention of the current version of `path` (a HEAD); `None`
    /// when it has none. A missing object is a 404 [`Failure`].
    pub async fn retention(&self, path: &StorePath) -> Result<Option<Retention>, Failure> {
        let (status, headers, body) = self.send(Method::HEAD, path, &[], &[], &[], None).await?;
        if !status.is_success() {
            return Err(failure(status, &body));
        }
        let text = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let mode = text("x-amz-object-lock-mode").and_then(|m| LockMode::parse(m).ok());
        let until = text("x-amz-object-lock-retain-until-date").and_then(parse_s3_date);
        Ok(mode
            .zip(until)
            .map(|(mode, until)| Retention { mode, until }))
    }

    /// Every version and delete marker under `prefix` (a full path prefix
    /// ending in `/`, or empty), page by page.
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<Version>, Failure> {
        let mut out = Vec::new();
        let mut next: Option<(String, String)> = None;
        loop {
            let mut query = vec![("versions", ""), ("prefix", prefix)];
            if let Some((k, v)) = &next {
                query.push(("key-marker", k.as_str()));
                if !v.is_empty() {
                    query.push(("version-id-marker", v.as_str()));
                }
            }
            let (status, _, body) = self
                .send(Method::GET, &self.bucket_path, &query, &[], &[], None)
                .await?;
            if !status.is_success() {
                return Err(failure(status, &body));
            }
            let xml = String::from_utf8_lossy(&body);
            let (page, more) = parse_versions(&xml);
            out.extend(page);
            match more {
                Some(m) if Some(&m) != next.as_ref() => next = Some(m),
                _ => return Ok(out),
            }
        }
    }

    /// GET version `version` of `path`, whole or `range`; with the
    /// object's total size.
    pub async fn get_version(
        &self,
        path: &StorePath,
        version: &str,
        range: Option<Range<u64>>,
    ) -> Result<(Bytes, Option<u64>), Failure> {
        let mut unsigned = Vec::new();
        if let Some(r) = &range {
            let value = format!("bytes={}-{}", r.start, r.end.saturating_sub(1));
            unsigned.push(
                HeaderValue::from_str(&value)
                    .map(|v| (reqwest::header::RANGE, v))
                    .map_err(|e| local("bad header", e))?,
            );
        }
        let (status, headers, body) = self
            .send(
                Method::GET,
                path,
                &[("versionId", version)],
                &[],
                &unsigned,
                None,
            )
            .await?;
        if !status.is_success() {
            return Err(failure(status, &body));
        }
        let total = match headers
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
        {
            Some(cr) => cr.rsplit('/').next().and_then(|t| t.parse().ok()),
            None => Some(body.len() as u64),
        };
        Ok((body, total))
    }

    /// DELETE version `version` of `path` (removes it for good; S3 refuses
    /// with 403 AccessDenied while it is locked).
    pub async fn delete_version(&self, path: &StorePath, version: &str) -> Result<(), Failure> {
        let (status, _, body) = self
            .send(
                Method::DELETE,
                path,
                &[("versionId", version)],
                &[],
                &[],
                None,
            )
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(failure(status, &body))
        }
    }
}

/// A non-2xx answer: its status and S3's error code and message.
fn failure(status: StatusCode, body: &[u8]) -> Failure {
    let xml = String::from_utf8_lossy(body);
    Failure {
        status: status.as_u16(),
        code: xml_text(&xml, "Code")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string()),
        message: xml_text(&xml, "Message").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_listing_page_parses() {
        let xml = "<?xml version=\"1.0\"?><ListVersionsResult><IsTruncated>true</IsTruncated>\
            <NextKeyMarker>p/b</NextKeyMarker><NextVersionIdMarker>v2</NextVersionIdMarker>\
            <DeleteMarker><Key>p/a</Key><VersionId>v9</VersionId>\
            <IsLatest>true</IsLatest><LastModified>2026-12-06T19:50:00.000Z</LastModified>\
            </DeleteMarker><Version><ETag>&quot;x&quot;</ETag><Size>5</Size><Key>p/a</Key>\
            <VersionId>v1</VersionId><IsLatest>false</IsLatest>\
            <LastModified>2026-12-06T19:49:48.000Z</LastModified></Version></ListVersionsResult>";
        let (v, next) = parse_versions(xml);
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[1].path.as_str(), v[1].size, v[1].delete_marker),
            ("p/a", 5, false)
        );
        assert!(v[0].delete_marker);
        assert_eq!(v[0].modified - v[1].modified, 12);
        assert_eq!(next, Some(("p/b".into(), "v2".into())));
        assert_eq!(content_md5(b"data1"), "idkDvDXe3nJP1SxRQ3/1/Q==");
    }
}
