//! The HTTP surface: [`router`] builds every route over the shared [`AppState`].

pub mod api;
pub mod auth;
pub mod body;
pub mod edge;
pub mod error;
pub mod json;
pub mod pages;
pub mod read;
mod summary;
pub mod webhooks;
pub mod write;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;

use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// What every handler shares: one reference-counted [`Shared`], so the
/// clones axum makes per request (each layer, route and `State` extractor)
/// are one atomic increment each instead of one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `shared` with every handler.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles behind [`AppState`].
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub telemetry: Arc<Telemetry>,
    pub metrics: Arc<Metrics>,
    /// The live aggregates (the read API and the summary page read them).
    pub aggregates: Arc<RwLock<Aggregates>>,
    /// The bound on write requests waiting for the store.
    pub write_queue: write::WriteQueue,
    /// The bound on webhook bytes read before their signature is checked.
    pub unauthenticated: write::Unauthenticated,
}

/// Every route the exporter serves, as `(method, path)` in the spelling of
/// the OpenAPI document (`src/http/openapi.json`); `/metrics` stands for the
/// configured `telemetry_path`. [`router`] serves exactly these (each one's
/// handler is chosen by `endpoint`), and `tests/api/openapi.rs` checks the
/// document against this list and a live server.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/releases"),
    ("POST", "/api/v1/releases"),
    ("GET", "/api/v1/releases/{product}/{release}/escapes"),
    ("GET", "/api/v1/defects/{source}/{id}"),
    ("DELETE", "/api/v1/defects/{source}/{id}"),
    ("GET", "/api/v1/openapi.json"),
    ("POST", "/webhooks/github"),
    ("POST", "/webhooks/gitlab"),
    ("POST", "/webhooks/jira"),
    ("POST", "/webhooks/sentry"),
];

/// Reads may be cut off by a timeout; writes are not, once their transaction
/// started (see `write`): they enforce their own deadline before that point,
/// so a 408 never follows a commit.
fn timed(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ))
}

/// The handler of one entry of [`ROUTES`]; `None` for a pair not in it.
fn endpoint(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("GET", "/") => timed(get(pages::landing)),
        ("GET", "/healthz") => timed(get(pages::healthz)),
        ("GET", "/readyz") => timed(get(pages::readyz)),
        // Gzip for clients that accept it, on this route only: the others
        // stream or answer small, and the JSON error middleware reads
        // uncompressed bodies.
        ("GET", "/metrics") => timed(get(pages::metrics).layer(CompressionLayer::new().gzip(true))),
        ("POST", "/api/v1/events") => post(api::post_events),
        ("GET", "/api/v1/releases") => timed(get(read::get_releases)),
        ("POST", "/api/v1/releases") => post(api::post_releases),
        ("GET", "/api/v1/releases/{product}/{release}/escapes") => timed(get(read::get_escapes)),
        ("GET", "/api/v1/defects/{source}/{id}") => timed(get(read::get_defect)),
        ("DELETE", "/api/v1/defects/{source}/{id}") => delete(read::delete_defect),
        ("GET", "/api/v1/openapi.json") => timed(get(read::openapi)),
        ("POST", p) if p.starts_with("/webhooks/") => return webhooks::route(p),
        _ => return None,
    })
}

/// Every route of the exporter (those of [`ROUTES`]) behind the checks every
/// request gets ([`edge::App`]).
pub fn router(state: AppState) -> edge::App {
    let web = state.config.web.clone();
    let mut routes: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for &(method, path) in ROUTES {
        let Some(handler) = endpoint(method, path) else {
            // A constant list: `tests::every_route_has_a_handler` keeps it whole.
            tracing::error!(method, path, "a route of ROUTES has no handler");
            continue;
        };
        let path = if path == "/metrics" {
            state.config.telemetry_path.as_str()
        } else {
            path
        };
        match routes.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
            None => routes.push((path, handler)),
        }
    }
    let mut app = Router::new();
    for (path, handler) in routes {
        app = app.route(path, handler);
    }
    let mut app = app
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
        .with_state(state);
    edge::App::new(app, web.headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler_and_appears_once() {
        for (i, &(method, path)) in ROUTES.iter().enumerate() {
            assert!(endpoint(method, path).is_some(), "{method} {path}");
            assert!(
                !ROUTES[..i].contains(&(method, path)),
                "{method} {path} listed twice"
            );
        }
        assert!(endpoint("GET", "/nowhere").is_none());
    }
}
