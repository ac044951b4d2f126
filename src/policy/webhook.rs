//! The optional webhook: `run` POSTs its JSON summary to the configured
//! URL. A failure is a warning for the caller to print, never a failed
//! backup. HTTP goes through reqwest, which the `cloud` feature already
//! builds for object storage (rustls for https), on a small tokio runtime
//! of its own; a build without `cloud` reports the webhook as unavailable.
//! A webhook URL often carries a secret token (in its path or query), so
//! logs and errors name only its scheme, host and port ([`shown`]).
//!
//! When (`webhook_on`): `change` (the default) POSTs failures and the first
//! success after a failure, so a webhook that fires means something;
//! `failure` only failures; `always` every run. What (`webhook_format`):
//! the run summary as JSON, or Slack's `{"text": …}` with one line per
//! problem. A POST is tried 3 times, 1 s and 4 s apart, 10 s each.

use super::config::{Webhook, WebhookFormat, WebhookOn};

/// Should a run that ended `ok`, after a previous run that `failed_before`,
/// be sent?
pub fn wanted(on: WebhookOn, ok: bool, failed_before: bool) -> bool {
    match on {
        WebhookOn::Always => true,
        WebhookOn::Failure => !ok,
        WebhookOn::Change => !ok || failed_before,
    }
}

/// The body for `format`: the summary itself, or a Slack text of `headline`
/// and one line per problem.
pub fn body(
    format: WebhookFormat,
    summary: &serde_json::Value,
    headline: &str,
    problems: &[String],
) -> serde_json::Value {
    match format {
        WebhookFormat::Json => summary.clone(),
        WebhookFormat::Slack => {
            let mut text = headline.to_string();
            for p in problems {
                text.push_str("\n• ");
                text.push_str(p);
            }
            serde_json::json!({ "text": text })
        }
    }
}

/// Delays before the second and third tries.
const RETRY_DELAYS: [std::time::Duration; 2] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(4),
];

/// POST `body` to the webhook, up to 3 times (10 s each, 1 s and 4 s
/// apart); `Err` is the last failure, naming the host only.
pub fn send(hook: &Webhook, body: &serde_json::Value) -> Result<u16, String> {
    let timeout = std::time::Duration::from_secs(10);
    let mut last = post(&hook.url, body, timeout);
    for d in RETRY_DELAYS {
        if last.is_ok() {
            break;
        }
        std::thread::sleep(d);
        last = post(&hook.url, body, timeout);
    }
    last.map_err(|e| format!("{e} (3 tries)"))
}

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
