//! [`App`], the router behind what every request gets, and the answers that
//! do not come from a handler, in the JSON shape of
//! [`AppError`](super::error::AppError) (`error`, `field`, `reason`): unknown
//! paths (404), unknown methods (405, with `Allow`), header sections over
//! [`MAX_HEADER_BYTES`] (431), and any empty or non-JSON error a layer answers
//! (tower-http's timeout 408, axum's own rejections).
//!
//! What stays out of reach: hyper answers a request head it cannot read —
//! larger than its read buffer (`max_buf_size`, 408 KiB by default) or with
//! more than 100 header fields (431), a URI over 64 KiB (414), a malformed
//! request line or header (400) — by itself, with a status line and an empty
//! body, and closes the connection. Hyper 1 offers no hook for that answer
//! (`proto::h1::role::Server::on_error` builds a head only and
//! `Conn::on_parse_error` writes it with no body), so those answers have no
//! JSON body. A header section small enough for hyper to read but larger than
//! [`MAX_HEADER_BYTES`] gets the JSON 431 here.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::json;
use tower_service::Service;
use tracing::Instrument;

/// The exporter's routes behind the checks every request gets, done once per
/// request here rather than as tower layers (axum wraps a layer around every
/// route and clones the whole stack per request; with four such layers
/// `/healthz` answered at about half a bare axum server's rate): the
/// header-size limit (431), a JSON body for any error answer without one,
/// the configured extra headers, a `debug` span per request and an `error`
/// line per 5xx answer.
#[derive(Clone)]
pub struct App {
    router: Router,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
}

impl App {
    /// `router` answers; `headers` are added to every answer.
    pub fn new(router: Router, headers: Vec<(HeaderName, HeaderValue)>) -> Self {
        Self {
            router,
            headers: Arc::new(headers),
        }
    }

    /// Answers one request.
    pub async fn answer(&self, req: Request) -> Response {
        let mut resp = match oversized_headers(&req) {
            Some(refusal) => refusal,
            None => {
                let method = req.method().clone();
                let uri = req.uri().clone();
                let span = tracing::debug_span!("http", method = %method, path = uri.path());
                let started = Instant::now();
                let mut router = self.router.clone();
                let resp = match router.call(req).instrument(span).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                if resp.status().is_server_error() {
                    tracing::error!(
                        method = %method,
                        path = uri.path(),
                        status = resp.status().as_u16(),
                        latency_ms = started.elapsed().as_millis() as u64,
                        "response failed"
                    );
                }
                json_error_body(resp).await
            }
        };
        for (name, value) in self.headers.iter() {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        resp
    }
}

/// [`App::answer`] as the `Result` hyper's services return.
pub async fn serve_one(app: App, req: Request) -> Result<Response, Infallible> {
    Ok(app.answer(req).await)
}

/// Largest header section accepted (every `name: value` line with its line
/// end), in bytes: the 32 KiB nginx accepts by default.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Longest error body of a layer read to become the `reason`.
const MAX_REASON_BYTES: u64 = 1024;

/// An error answer in the shape of `AppError`'s.
pub fn json_error(status: StatusCode, error: &str, reason: impl Into<String>) -> Response {
    let body = json!({ "error": error, "field": null, "reason": reason.into() });
    (status, super::json::Json(body)).into_response()
}

/// The router's fallback: no route has this path (404).
pub async fn not_found(uri: Uri) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for `{}`", uri.path()),
    )
}

/// A route exists but not for this method (405; axum adds `Allow`).
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "`{}` does not accept {method}; the Allow header lists what it does",
            uri.path()
        ),
    )
}

/// The refusal of a header section over [`MAX_HEADER_BYTES`] (431).
fn oversized_headers(req: &Request) -> Option<Response> {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (size > MAX_HEADER_BYTES).then(|| {
        json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's headers take {size} bytes; the limit is {MAX_HEADER_BYTES}"),
        )
    })
}

/// Gives every error answer without a JSON body one: its `error` from the
/// status, its `reason` from the text a layer wrote, else from the status.
/// Headers (`Allow`, `Retry-After`) are kept.
async fn json_error_body(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let small = axum::body::HttpBody::size_hint(resp.body())
        .upper()
        .is_some_and(|n| n <= MAX_REASON_BYTES);
    if is_json || !small {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = match body.collect().await {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).trim().to_owned(),
        Err(_) => String::new(),
    };
    let reason = if text.is_empty() {
        default_reason(status)
    } else {
        text
    };
    let body = super::json::body(
        &json!({ "error": error_label(status), "field": null, "reason": reason }),
    )
    .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The `error` of a status, in the vocabulary of `AppError::reason_label`.
fn error_label(status: StatusCode) -> String {
    match status {
        StatusCode::BAD_REQUEST => "malformed".into(),
        StatusCode::NOT_FOUND => "not_found".into(),
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".into(),
        StatusCode::REQUEST_TIMEOUT => "timeout".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "too_large".into(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type".into(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large".into(),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace([' ', '-'], "_")
            .replace(|c: char| !(c.is_ascii_alphanumeric() || c == '_'), ""),
    }
}

fn default_reason(status: StatusCode) -> String {
    match status {
        StatusCode::REQUEST_TIMEOUT => {
            "the answer was not ready within the request timeout; nothing was changed".into()
        }
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_app_error_and_fall_back_to_the_status() {
        assert_eq!(error_label(StatusCode::REQUEST_TIMEOUT), "timeout");
        assert_eq!(error_label(StatusCode::IM_A_TEAPOT), "im_a_teapot");
        assert_eq!(
            error_label(StatusCode::INTERNAL_SERVER_ERROR),
            "internal_server_error"
        );
    }
}
