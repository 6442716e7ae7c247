//! The HTTP surface: [`router`] builds every route over the shared [`AppState`].

pub mod api;
pub mod auth;
pub mod body;
pub mod error;
pub mod pages;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Request;
use axum::routing::{get, post};
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
}

/// Every route of the exporter.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::landing))
        .route("/healthz", get(pages::healthz))
        .route("/readyz", get(pages::readyz))
        .route("/metrics", get(pages::metrics))
        .route("/api/v1/events", post(api::post_events))
        .route("/api/v1/releases", post(api::post_releases))
        .route("/webhooks/github", post(webhooks::post_github))
        .route("/webhooks/gitlab", post(webhooks::post_gitlab))
        .route("/webhooks/jira", post(webhooks::post_jira))
        .route("/webhooks/sentry", post(webhooks::post_sentry))
        // Bodies are read with our own limit (JSON 413); lift axum's default.
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let path = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("http", method = %req.method(), path)
            }),
        )
        .with_state(state)
}
