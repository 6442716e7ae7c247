//! The read API, behind the write API's authentication: the report from the
//! live aggregates, a stored defect (through a read-only SQLite connection,
//! never the writer's queue), and a defect's deletion through the normal
//! write path. Also the OpenAPI document.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::json::Json;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::AppState;
use super::auth::check_writer;
use super::error::AppError;
use super::write::{count_refusal, record_generic};
use crate::ingest::{FieldError, generic};
use crate::metrics::collector::select;
use crate::metrics::report::{Report, build, build_stored, parse_releases};
use crate::model::event::Ingress;
use crate::model::time::now_ms;
use crate::store::Outcome;
use crate::store::read::{DEFAULT_ESCAPES, MAX_ESCAPES};

/// The OpenAPI 3.1 document of every route ([`super::ROUTES`]).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The query parameters of `query`, refusing names not in `known` and
/// repeated names (422 naming the parameter).
pub(super) fn query_params(
    query: Option<&str>,
    known: &[&str],
) -> Result<Map<String, Value>, AppError> {
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !known.contains(&k.as_ref()) {
            return Err(FieldError::new(
                k.as_ref(),
                format!(
                    "unknown query parameter; known: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .into());
        }
        if out
            .insert(k.to_string(), Value::String(v.into_owned()))
            .is_some()
        {
            return Err(FieldError::new(k.as_ref(), "given more than once").into());
        }
    }
    Ok(out)
}

/// The report of the live aggregates (only `product` when given).
pub fn live_report(state: &AppState, product: Option<&str>) -> Report {
    // A panic in the writer poisons the lock; the writer then rebuilds the
    // aggregates, so reading them is always safe.
    let agg = state
        .aggregates
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    build(&state.config, &select(&state.config, &agg), product)
}

/// `GET /api/v1/releases[?product=][&releases=all|N]`: the report, as
/// `report --format json`; with `releases`, each product's stored releases
/// (all, or the newest N) read from the store in place of its exported ones.
pub async fn get_releases(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Report>, AppError> {
    check_writer(state.config.api_token.as_deref(), &headers, peer)?;
    let params = query_params(query.as_deref(), &["product", "releases"])?;
    let product = params.get("product").and_then(Value::as_str);
    let Some(shown) = params.get("releases").and_then(Value::as_str) else {
        return Ok(Json(live_report(&state, product)));
    };
    let n = parse_releases(shown)
        .map_err(|reason| AppError::MalformedField(FieldError::new("releases", reason)))?;
    let names: Vec<String> = {
        let agg = state
            .aggregates
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        select(&state.config, &agg)
            .products()
            .iter()
            .map(|p| p.name().to_owned())
            .filter(|p| product.is_none_or(|want| want == p))
            .collect()
    };
    let config = state.config.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let conn = crate::store::read::open(&config.db)?;
        // One read transaction: every release from one snapshot.
        conn.execute_batch("BEGIN")?;
        let stored = crate::store::read::history(&conn, &config, &names, n)?;
        conn.execute_batch("COMMIT")?;
        anyhow::Ok(stored)
    })
    .await
    .map_err(|e| AppError::StoreUnavailable(e.to_string()))?
    .map_err(|e| AppError::StoreUnavailable(format!("{e:#}")))?;
    let agg = state
        .aggregates
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sel = select(&state.config, &agg);
    Ok(Json(build_stored(&state.config, &sel, product, &stored)))
}

/// `GET /api/v1/defects/{source}/{id}`: what is stored, tombstones included.
pub async fn get_defect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((source, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    check_writer(state.config.api_token.as_deref(), &headers, peer)?;
    query_params(query.as_deref(), &[])?;
    let db = state.config.db.clone();
    let (s, i) = (source.clone(), id.clone());
    let found = tokio::task::spawn_blocking(move || {
        let conn = crate::store::read::open(&db)?;
        crate::store::read::defect(&conn, &s, &i)
    })
    .await
    .map_err(|e| AppError::StoreUnavailable(e.to_string()))?
    .map_err(|e| AppError::StoreUnavailable(format!("{e:#}")))?;
    Ok(match found {
        Some(d) => Json(d).into_response(),
        None => super::edge::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no defect `{id}` of source `{source}` is stored"),
        ),
    })
}

/// `GET /api/v1/releases/{product}/{release}/escapes[?limit=N][&offset=N]`:
/// the release's escapes, each link group with its records, earliest found
/// first, one page of at most [`MAX_ESCAPES`] (default [`DEFAULT_ESCAPES`]),
/// read through a read-only connection in one snapshot.
pub async fn get_escapes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((product, release)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    check_writer(state.config.api_token.as_deref(), &headers, peer)?;
    let params = query_params(query.as_deref(), &["limit", "offset"])?;
    let number = |name: &str, default: usize, range: std::ops::RangeInclusive<usize>| {
        let Some(v) = params.get(name).and_then(Value::as_str) else {
            return Ok(default);
        };
        v.parse::<usize>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                AppError::from(FieldError::new(
                    name,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                ))
            })
    };
    let limit = number("limit", DEFAULT_ESCAPES, 1..=MAX_ESCAPES)?;
    let offset = number("offset", 0, 0..=i64::MAX as usize)?;
    let config = state.config.clone();
    let key = [(product, release)];
    let (found, key) = tokio::task::spawn_blocking(move || {
        let found = crate::store::read::escapes_of(&config.db, &config, &key, offset, limit);
        (found, key)
    })
    .await
    .map_err(|e| AppError::StoreUnavailable(e.to_string()))?;
    let found = found.map_err(|e| AppError::StoreUnavailable(format!("{e:#}")))?;
    Ok(match found.into_iter().next().flatten() {
        Some(f) => Json(f).into_response(),
        None => super::edge::json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            crate::store::read::no_release(&key[0].0, &key[0].1),
        ),
    })
}

/// Room a deletion takes in the write queue (it has no body).
const DELETE_BYTES: usize = 1024;

/// `DELETE /api/v1/defects/{source}/{id}[?updated_at=]`: the event
/// `{"source", "id", "deleted": true, "updated_at"}` through the generic
/// parser and the one write path, so every rule of `POST /api/v1/events`
/// applies (ordering, tombstones, namespaces, future times).
pub async fn delete_defect(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((source, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<Outcome>, AppError> {
    let result = async {
        check_writer(state.config.api_token.as_deref(), &headers, peer)?;
        let mut event = query_params(query.as_deref(), &["updated_at"])?;
        event.insert("source".into(), Value::String(source));
        event.insert("id".into(), Value::String(id));
        event.insert("deleted".into(), Value::Bool(true));
        let now = now_ms();
        let items = generic::parse_events(&state.config, &Value::Object(event), now)?;
        let deadline = Instant::now() + state.config.write_timeout.max(Duration::from_millis(1));
        let admitted = state
            .write_queue
            .admit_until(DELETE_BYTES, deadline)
            .await?;
        record_generic(&state, admitted, items, now).await
    }
    .await;
    count_refusal(&state, Ingress::Generic, result).map(Json)
}

/// `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 document (no
/// authentication: it describes, it does not read data).
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
