//! The optional webhook: `run` POSTs its JSON summary to the configured
//! URL. A failure is a warning for the caller to print, never a failed
//! backup. HTTP goes through reqwest, which the `cloud` feature already
//! builds for object storage (rustls for https), on a small tokio runtime
//! of its own; a build without `cloud` reports the webhook as unavailable.
//! A webhook URL often carries a secret token (in its path or query), so
//! logs and errors name only its scheme, host and port ([`shown`]).

/// What logs and errors show of a webhook URL: `scheme://host[:port]`,
/// never its path, query or credentials, which often hold a token.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(an invalid URL)".into(),
    }
}

/// POST `body` (JSON) to `url`, giving up after `timeout`. `Err` is a
/// one-line description naming the URL.
#[cfg(feature = "cloud")]
pub fn post(
    url: &str,
    body: &serde_json::Value,
    timeout: std::time::Duration,
) -> Result<u16, String> {
    let shown = shown(url);
    let fail = |e: &dyn std::fmt::Display| format!("webhook {shown}: {e}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(&e))?;
    let bytes = serde_json::to_vec(body).map_err(|e| fail(&e))?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| fail(&e))?;
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("user-agent", concat!("strata/", env!("CARGO_PKG_VERSION")))
            .body(bytes)
            .send()
            .await
            // reqwest's message names the whole URL
            .map_err(|e| fail(&e.without_url()))?;
        let status = resp.status();
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(fail(&format!("HTTP {status}")))
        }
    })
}

/// Without the `cloud` feature there is no HTTP client in the build.
#[cfg(not(feature = "cloud"))]
pub fn post(
    url: &str,
    _body: &serde_json::Value,
    _timeout: std::time::Duration,
) -> Result<u16, String> {
    Err(format!(
        "webhook {}: not available in this build (built without the `cloud` feature)",
        shown(url)
    ))
}
