//! Handlers of the generic write API.

use std::net::SocketAddr;

use super::json::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;

use super::AppState;
use super::body::{discard, parse_json_unique, require_json};
use super::error::AppError;
use super::write::{count_refusal, off_workers, read_body, record_generic};
use crate::ingest::generic;
use crate::model::event::Ingress;
use crate::model::time::now_ms;
use crate::store::Outcome;

/// Which generic endpoint a request is for.
#[derive(Clone, Copy)]
enum Endpoint {
    Events,
    Releases,
}

/// `POST /api/v1/events`.
pub async fn post_events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Outcome>, AppError> {
    handle(state, peer, headers, body, Endpoint::Events).await
}

/// `POST /api/v1/releases`.
pub async fn post_releases(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Outcome>, AppError> {
    handle(state, peer, headers, body, Endpoint::Releases).await
}

async fn handle(
    state: AppState,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
    endpoint: Endpoint,
) -> Result<Json<Outcome>, AppError> {
    let result = async {
        super::auth::check_writer(state.config.api_token.as_deref(), &headers, peer)?;
        require_json(&headers)?;
        let limit = state.config.max_body_bytes;
        let admitted = match state
            .write_queue
            .admit(&headers, limit, state.config.write_timeout)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                discard(body, limit).await;
                return Err(e);
            }
        };
        let now = now_ms();
        // The body and its JSON tree are dropped before the wait for the
        // writer: only the items stay queued. Events are read without a tree
        // when the body is flat objects (`parse_events_flat`). Large bodies are parsed off the
        // async workers, so probes and scrapes keep answering during a burst.
        let bytes = read_body(
            &admitted,
            &headers,
            body,
            limit,
            state.config.body_read_timeout,
        )
        .await?;
        let config = state.config.clone();
        let items = off_workers(bytes.len(), move || {
            let items = match endpoint {
                Endpoint::Events => match generic::parse_events_flat(&config, &bytes, now) {
                    Some(items) => items,
                    None => generic::parse_events(&config, &parse_json_unique(&bytes)?, now),
                },
                Endpoint::Releases => {
                    generic::parse_releases(&config, &parse_json_unique(&bytes)?, now)
                }
            }?;
            Ok::<_, AppError>(items)
        })
        .await?;
        record_generic(&state, admitted, items, now).await
    }
    .await;
    count_refusal(&state, Ingress::Generic, result).map(Json)
}
