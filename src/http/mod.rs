//! The HTTP surface: [`router`] builds every route over the shared [`AppState`].

pub mod api;
pub mod auth;
pub mod body;
pub mod edge;
pub mod error;
pub mod pages;
pub mod webhooks;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::metrics::telemetry::Telemetry;
use crate::store::Store;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub telemetry: Arc<Telemetry>,
    pub metrics: Arc<Metrics>,
    /// The bound on write requests waiting for the store.
    pub write_queue: write::WriteQueue,
    /// The bound on webhook bytes read before their signature is checked.
    pub unauthenticated: write::Unauthenticated,
}

/// Adds `http_server_config.headers` to every answer.
async fn add_headers(
    axum::extract::State(headers): axum::extract::State<
        Arc<Vec<(axum::http::HeaderName, axum::http::HeaderValue)>>,
    >,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    for (name, value) in headers.iter() {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

/// Every route of the exporter.
pub fn router(state: AppState) -> Router {
    let web = state.config.web.clone();
    // Reads may be cut off by a timeout; writes are not, once their
    // transaction started (see `write`): they enforce their own deadline
    // before that point, so a 408 never follows a commit.
    let reads = Router::new()
        .route("/", get(pages::landing))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        // Gzip for clients that accept it, on this route only: the others
        // stream or answer small, and the JSON error middleware reads
        // uncompressed bodies.
        .route(
            &state.config.telemetry_path,
            get(pages::metrics).layer(CompressionLayer::new().gzip(true)),
        )
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ));
    let mut app = Router::new()
        .route("/api/v1/events", post(api::post_events))
        .route("/api/v1/releases", post(api::post_releases))
        .route("/webhooks/github", post(webhooks::post_github))
        .route("/webhooks/gitlab", post(webhooks::post_gitlab))
        .route("/webhooks/jira", post(webhooks::post_jira))
        .route("/webhooks/sentry", post(webhooks::post_sentry))
        .merge(reads)
        // After every route: each gets the JSON 405 (axum adds `Allow`).
        .method_not_allowed_fallback(edge::method_not_allowed)
        .fallback(edge::not_found);
    if web.basic_auth() {
        // Every path, unknown ones too, but the webhooks, the write API and
        // the probes (`auth::open_to_all`).
        let auth = Arc::new(auth::BasicAuth::new(web.basic_auth_users.clone()));
        app = app.layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_basic_auth,
        ));
    }
    let app = app
        // Bodies are read with our own limit (JSON 413); lift axum's default.
        .layer(DefaultBodyLimit::disable())
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let path = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("http", method = %req.method(), path)
            }),
        )
        .layer(axum::middleware::from_fn(edge::limit_headers))
        // Outermost: an error any layer answers without a JSON body gets one.
        .layer(axum::middleware::from_fn(edge::json_error_bodies))
        .with_state(state);
    if web.headers.is_empty() {
        app
    } else {
        app.layer(axum::middleware::from_fn_with_state(
            Arc::new(web.headers),
            add_headers,
        ))
    }
}
