//! A fault-injecting HTTP/1.1 proxy in front of the moto S3 server (issue
//! 11 "Faults"): plain `std::net` and one thread per client connection.
//! strata talks to it through `AWS_ENDPOINT_URL=http://127.0.0.1:PORT`
//! ([`FaultProxy::env`]), so the faults hit the very client users run.
//!
//! Each request is classified by [`Method`] (a bucket-level GET is a
//! [`Method::List`]); a [`Rule`] per method says when to inject
//! ([`When::Nth`] request, [`When::From`] the nth on, a seeded
//! [`When::Chance`], [`When::Always`]) and
//! which [`Fault`]s to choose from (uniformly, with the seeded generator).
//! A request without a fault is forwarded to moto on its own connection
//! and the answer relayed with the client's connection kept alive.
//!
//! What each fault does, and whether moto saw the request:
//!
//! | fault | forwarded | the client sees |
//! |---|---|---|
//! | `InternalError` | no | `500` with an S3 `InternalError` XML body |
//! | `Unavailable` | no | `503` with an S3 `ServiceUnavailable` XML body |
//! | `SlowDown` | no | `503` with an S3 `SlowDown` XML body |
//! | `Reset` | a PUT: no (half its body is read, then RST); else yes | others: the head and half the body (half the head when there is no body), then RST |
//! | `Stall` | no | nothing for [`FaultProxy::set_stall`] (10 s by default), then the connection closes |
//! | `Truncate` | yes | the full `Content-Length`, half the body (half the head when there is no body), then FIN |
//!
//! A forwarded `Reset` or `Truncate` of a PUT is a lost reply: the object
//! was written, and the client cannot tell.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::Rng;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request's kind, as the fault rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// GET of an object (whole or ranged).
    Get,
    /// PUT of an object (the bucket is created on moto directly).
    Put,
    /// HEAD of an object.
    Head,
    /// DELETE of an object.
    Delete,
    /// GET of the bucket: a LIST page.
    List,
    /// Anything else (POST: multipart, bulk delete).
    Other,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 6] = [
        Method::Get,
        Method::Put,
        Method::Head,
        Method::Delete,
        Method::List,
        Method::Other,
    ];
}

/// What goes wrong (module doc table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    InternalError,
    Unavailable,
    SlowDown,
    Reset,
    Stall,
    Truncate,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 6] = [
        Fault::InternalError,
        Fault::Unavailable,
        Fault::SlowDown,
        Fault::Reset,
        Fault::Stall,
        Fault::Truncate,
    ];
}

/// When a rule fires, counting the requests of its method from 1 (since
/// the rule was set).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum When {
    /// The `n`th request only.
    Nth(u64),
    /// The `n`th request and every later one: a persistent fault that
    /// starts mid-way.
    From(u64),
    /// Each request with this probability (the proxy's seeded generator).
    Chance(f64),
    /// Every request: a persistent fault.
    Always,
}

/// One method's rule: when, and which faults to choose from, for the
/// requests whose target contains `path` (all without one).
#[derive(Clone, Debug)]
pub struct Rule {
    pub when: When,
    pub faults: Vec<Fault>,
    pub path: Option<String>,
    seen: u64,
}

#[derive(Debug)]
struct State {
    rules: BTreeMap<Method, Rule>,
    rng: Rng,
    stall: Duration,
    requests: BTreeMap<Method, u64>,
    injected: BTreeMap<(Method, Fault), u64>,
}

impl State {
    /// Count a request of `m` and pick its fault, if any.
    fn decide(&mut self, m: Method, target: &str) -> Option<Fault> {
        *self.requests.entry(m).or_default() += 1;
        let rule = self.rules.get_mut(&m)?;
        if rule
            .path
            .as_ref()
            .is_some_and(|p| !target.contains(p.as_str()))
        {
            return None;
        }
        rule.seen += 1;
        let fire = match rule.when {
            When::Nth(n) => rule.seen == n,
            When::From(n) => rule.seen >= n,
            When::Chance(p) => self.rng.unit() < p,
            When::Always => true,
        };
        if !fire || rule.faults.is_empty() {
            return None;
        }
        let f = rule.faults[self.rng.below(rule.faults.len() as u64) as usize];
        *self.injected.entry((m, f)).or_default() += 1;
        Some(f)
    }
}

/// The proxy: listens on 127.0.0.1:[`FaultProxy::port`] until dropped.
pub struct FaultProxy {
    /// Its port on 127.0.0.1.
    pub port: u16,
    upstream: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// A proxy to 127.0.0.1:`upstream` with no faults yet; `seed` drives
    /// every random choice.
    pub fn start(upstream: u16, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            rules: BTreeMap::new(),
            rng: Rng::new(seed),
            stall: Duration::from_secs(10),
            requests: BTreeMap::new(),
            injected: BTreeMap::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, upstream, &st));
            }
        });
        FaultProxy {
            port,
            upstream,
            state,
            stop,
        }
    }

    /// Inject `faults` into requests of `method` `when` (replacing its rule).
    pub fn set(&self, method: Method, when: When, faults: &[Fault]) {
        self.set_rule(method, None, when, faults);
    }

    /// [`FaultProxy::set`] for the requests whose target contains `path`
    /// (`"/packs/"`); the others of `method` pass untouched and uncounted.
    pub fn set_on(&self, method: Method, path: &str, when: When, faults: &[Fault]) {
        self.set_rule(method, Some(path.to_string()), when, faults);
    }

    fn set_rule(&self, method: Method, path: Option<String>, when: When, faults: &[Fault]) {
        let rule = Rule {
            when,
            faults: faults.to_vec(),
            path,
            seen: 0,
        };
        self.state.lock().unwrap().rules.insert(method, rule);
    }

    /// [`FaultProxy::set`] for every method.
    pub fn set_all(&self, when: When, faults: &[Fault]) {
        for m in Method::ALL {
            self.set(m, when, faults);
        }
    }

    /// No more faults (the counts stay).
    pub fn heal(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// How long a [`Fault::Stall`] holds the connection before closing it.
    pub fn set_stall(&self, d: Duration) {
        self.state.lock().unwrap().stall = d;
    }

    /// Requests seen, per method.
    pub fn requests(&self) -> BTreeMap<Method, u64> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Faults injected, per method and fault.
    pub fn injected(&self) -> BTreeMap<(Method, Fault), u64> {
        self.state.lock().unwrap().injected.clone()
    }

    /// Faults injected, per fault over all methods.
    pub fn injected_by_fault(&self) -> BTreeMap<Fault, u64> {
        let mut out = BTreeMap::new();
        for ((_, f), n) in self.injected() {
            *out.entry(f).or_default() += n;
        }
        out
    }

    /// `moto_env` (from [`super::Moto::env`]) with the endpoint pointing
    /// here instead.
    pub fn env(&self, moto_env: &[(String, String)]) -> Vec<(String, String)> {
        moto_env
            .iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT_URL" {
                    (k.clone(), format!("http://127.0.0.1:{}", self.port))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    }

    /// The upstream (moto) port.
    pub fn upstream(&self) -> u16 {
        self.upstream
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

// ---------------------------------------------------------------- HTTP

/// A request or response head: the first line and the headers in order.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.get("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    /// The head as bytes, without hop-by-hop headers and without
    /// `Content-Length` unless `keep_length`, plus `extra` headers.
    fn encode(&self, keep_length: bool, extra: &[(&str, String)]) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.line);
        for (k, v) in &self.headers {
            let hop = [
                "connection",
                "keep-alive",
                "transfer-encoding",
                "proxy-connection",
            ]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h));
            if hop || (!keep_length && k.eq_ignore_ascii_case("content-length")) {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// Read a head; `None` at a clean end of the stream.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some(Head { line, headers }))
}

/// Read a chunked body (trailers dropped).
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let hex = size.trim().split(';').next().unwrap_or("");
        let n = usize::from_str_radix(hex, 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
        if n == 0 {
            // trailers up to the empty line
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + n, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

/// Read `n` body bytes.
fn read_n(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

fn classify(head: &Head) -> Method {
    let mut it = head.line.split_whitespace();
    let method = it.next().unwrap_or("");
    let target = it.next().unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments = path.split('/').filter(|s| !s.is_empty()).count();
    match method {
        "GET" if segments <= 1 || query.contains("list-type") => Method::List,
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "HEAD" => Method::Head,
        "DELETE" => Method::Delete,
        _ => Method::Other,
    }
}

/// Drop the connection with a TCP reset (SO_LINGER 0).
fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// An S3 error answer.
fn s3_error(status: u16, reason: &str, code: &str, head_only: bool) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n",
        if head_only { 0 } else { body.len() }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Send one request to moto on a fresh connection; the answer's head and
/// body (bodies de-chunked).
fn forward(
    upstream: u16,
    head: &Head,
    body: &[u8],
    is_head: bool,
) -> std::io::Result<(Head, Vec<u8>)> {
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = head.encode(
        false,
        &[
            ("Content-Length", body.len().to_string()),
            ("Connection", "close".into()),
        ],
    );
    req.extend_from_slice(body);
    up.write_all(&req)?;
    let mut r = BufReader::new(up);
    let resp = read_head(&mut r)?.ok_or_else(|| std::io::Error::other("moto closed"))?;
    let status: u16 = resp
        .line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if is_head || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if resp.chunked() {
        read_chunked(&mut r)?
    } else if let Some(n) = resp.content_length() {
        read_n(&mut r, n)?
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b)?;
        b
    };
    Ok((resp, body))
}

/// Serve one client connection until it closes or a fault ends it.
fn serve(client: TcpStream, upstream: u16, state: &Mutex<State>) {
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let mut r = BufReader::new(reader);
    let mut w = client;
    loop {
        let head = match read_head(&mut r) {
            Ok(Some(h)) => h,
            _ => return,
        };
        let method = classify(&head);
        let is_head = method == Method::Head;
        let (fault, stall) = {
            let mut s = state.lock().unwrap();
            let target = head.line.split_whitespace().nth(1).unwrap_or("");
            (s.decide(method, target), s.stall)
        };
        let body_len = head.content_length().unwrap_or(0);
        if fault == Some(Fault::Reset) && method == Method::Put && !head.chunked() {
            // half the body is read, then the connection is reset
            let _ = read_n(&mut r, body_len / 2);
            reset(w);
            return;
        }
        let body = if head.chunked() {
            read_chunked(&mut r)
        } else {
            read_n(&mut r, body_len)
        };
        let Ok(body) = body else { return };
        let out = match fault {
            Some(Fault::InternalError) => {
                s3_error(500, "Internal Server Error", "InternalError", is_head)
            }
            Some(Fault::Unavailable) => {
                s3_error(503, "Service Unavailable", "ServiceUnavailable", is_head)
            }
            Some(Fault::SlowDown) => s3_error(503, "Slow Down", "SlowDown", is_head),
            Some(Fault::Stall) => {
                std::thread::sleep(stall);
                let _ = w.shutdown(Shutdown::Both);
                return;
            }
            None | Some(Fault::Reset) | Some(Fault::Truncate) => {
                let Ok((resp, rbody)) = forward(upstream, &head, &body, is_head) else {
                    reset(w);
                    return;
                };
                let mut out = if is_head {
                    resp.encode(true, &[])
                } else {
                    resp.encode(false, &[("content-length", rbody.len().to_string())])
                };
                let head_len = out.len();
                out.extend_from_slice(&rbody);
                if let Some(f) = fault {
                    let cut = if rbody.is_empty() {
                        head_len / 2
                    } else {
                        head_len + rbody.len() / 2
                    };
                    let _ = w.write_all(&out[..cut]);
                    let _ = w.flush();
                    if f == Fault::Reset {
                        reset(w);
                    } else {
                        let _ = w.shutdown(Shutdown::Both);
                    }
                    return;
                }
                out
            }
        };
        if w.write_all(&out).is_err() {
            return;
        }
    }
}

/// One request straight to 127.0.0.1:`port` (moto, bypassing the
/// proxy): the status and the body.
pub fn direct(port: u16, method: &str, target: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = request(port, method, target, &[], &[]);
    (status, body)
}

/// One request straight to moto with extra `headers` and `body` (as a
/// client with the test credentials): status, response headers, body.
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut all: Vec<(String, String)> = vec![
        ("Host".into(), format!("127.0.0.1:{port}")),
        // moto checks no signature, but refuses anonymous object reads
        (
            "Authorization".into(),
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0"
                .into(),
        ),
    ];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let head = Head {
        line: format!("{method} {target} HTTP/1.1"),
        headers: all,
    };
    let (resp, out) = forward(port, &head, body, method == "HEAD").unwrap();
    let status = resp
        .line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, resp.headers, out)
}
