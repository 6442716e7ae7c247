//! Sentry's issue API as the webhook uses it: an `issue` delivery does not
//! say the issue's first release, so the handler asks for it
//! (`firstRelease`) before writing, when an API token is configured.

use std::sync::OnceLock;

use serde_json::Value;

use crate::config::Config;
use crate::model::event::Ingress;
use crate::telemetry::Telemetry;

/// Sentry's `firstRelease` of an issue; `None` (logged, counted) on any failure,
/// which leaves the defect unattributed until an `error` webhook names it.
/// The issue id comes from the webhook: it is percent-encoded as one path
/// segment (`url`'s encoder, as `sync` does), no redirect is followed (the
/// token goes to `api_url` only), and the answer is read up to
/// `sync.max_response_bytes`.
pub async fn first_release(
    config: &Config,
    telemetry: &Telemetry,
    issue_id: &str,
) -> Option<String> {
    let s = &config.webhooks.sentry;
    let token = s.api_token.as_ref()?.iter().next()?;
    let token = String::from_utf8_lossy(token);
    let mut url = url::Url::parse(&s.api_url).ok()?;
    {
        let mut path = url.path_segments_mut().ok()?;
        path.pop_if_empty().extend(["api", "0"]);
        if let Some(org) = &s.organization {
            path.extend(["organizations", org.as_str()]);
        }
        path.extend(["issues", issue_id, ""]);
    }
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    let client = CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        })
        .as_ref()?;
    let limit = config.sync.max_response_bytes;
    let answer = async {
        let mut resp = client
            .get(url)
            .bearer_auth(token)
            .timeout(s.api_timeout)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!(
                "answered {} (redirects are not followed)",
                resp.status()
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(format!(
                    "answer larger than sync.max_response_bytes ({limit} bytes)"
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())
    }
    .await;
    match answer {
        Ok(v) => super::webhook::first_release(&v),
        Err(e) => {
            telemetry.source_api_error(Ingress::Sentry);
            // Errors without the URL or the headers: no token.
            tracing::warn!(target: "bug_escape_exporter::http::webhooks", error = %e, issue_id, "Sentry issue API failed; the defect stays unattributed");
            None
        }
    }
}
