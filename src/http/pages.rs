//! Landing page, health and readiness, and `/metrics`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::metrics::exposition::{CLASSIC, OPENMETRICS, to_classic, wants_openmetrics};

/// The landing page; `{metrics}` is replaced by the telemetry path.
const LANDING: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bug-escape-exporter</title></head>
<body>
<h1>bug-escape-exporter</h1>
<p>Prometheus exporter of the bug escape rate: the share of a release's defects that reached production.</p>
<ul>
<li><a href="{metrics}">Metrics</a></li>
<li><a href="healthz">Health</a></li>
<li><a href="readyz">Readiness</a></li>
</ul>
<p>Write API: <code>POST /api/v1/events</code>, <code>POST /api/v1/releases</code>.
Webhooks: <code>POST /webhooks/github</code>, <code>/webhooks/gitlab</code>,
<code>/webhooks/jira</code>, <code>/webhooks/sentry</code>.</p>
</body></html>
"#;

/// `GET /`. The links are relative (the exporter may sit under a path
/// prefix behind a proxy); the metrics link follows `telemetry_path`.
pub async fn landing(State(state): State<AppState>) -> Html<String> {
    let metrics = state.config.telemetry_path.trim_start_matches('/');
    Html(LANDING.replace("{metrics}", &html_attr(metrics)))
}

/// Escapes `&`, `<`, `>`, `"` and `'` for an HTML attribute.
fn html_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: whether the store takes a write now. Read from the writer's
/// state (its last transaction or disk probe), never queued behind writes, so
/// it answers at once under load.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.health().ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => {
            state.telemetry.store_error("readiness");
            let mut resp = super::edge::json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("store not writable: {why}"),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            resp
        }
    }
}

/// `GET /metrics`: OpenMetrics when asked for, else the classic text format.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let text = match state.metrics.openmetrics() {
        Ok(t) => t,
        Err(_) => {
            let body = serde_json::json!({"error": "encoding", "field": null, "reason": "encoding the metrics failed"});
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
        }
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, CLASSIC)], to_classic(&text)).into_response()
    }
}
