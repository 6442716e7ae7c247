//! The routes of the summary page (its HTML is written in `summary`),
//! health and readiness, and `/metrics`.

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::Semaphore;

use super::AppState;
use super::error::AppError;
pub use super::summary::summary_html;
use crate::ingest::FieldError;
use crate::metrics::collector::select;
use crate::metrics::exposition::{CLASSIC, OPENMETRICS, to_classic, wants_openmetrics};
use crate::metrics::report::{Band, ProductReport, ProductRow, build_product, product_rows};
use crate::store::read::Escapes;

/// Newest releases shown per product on the summary page.
const SUMMARY_RELEASES: usize = 10;

/// Escapes of its newest release with defects shown per product on the
/// summary page; the rest are counted and linked.
const SUMMARY_ESCAPES: usize = 5;

/// Products on one page of the summary (`?page=N` for the next ones): the
/// page stays small and quick however many products are exported; every
/// product is in `GET /api/v1/releases`.
pub const PAGE_PRODUCTS: usize = 50;

/// One summary page is built at a time, on the blocking pool: anonymous
/// requests for `/` queue here (asynchronously) and take one core at most,
/// so they never hold up the async workers that answer the probes.
static RENDERS: Semaphore = Semaphore::const_new(1);

/// Where one page sits among the exported products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based.
    pub page: usize,
    /// Products exported (at most `max_products`).
    pub exported: usize,
    /// Products beyond `max_products`, not exported at all.
    pub left_out: usize,
}

impl Paging {
    /// Pages holding the exported products (at least 1).
    pub fn pages(&self) -> usize {
        self.exported.div_ceil(PAGE_PRODUCTS).max(1)
    }

    /// Indexes (export order) of the products on this page.
    pub fn range(&self) -> std::ops::Range<usize> {
        Self::range_of(self.page, self.exported)
    }

    /// Indexes of the products on page `page` (1-based) of `exported`.
    fn range_of(page: usize, exported: usize) -> std::ops::Range<usize> {
        let start = page.saturating_sub(1).saturating_mul(PAGE_PRODUCTS);
        start.min(exported)..start.saturating_add(PAGE_PRODUCTS).min(exported)
    }
}

/// `GET /[?page=N]`: the live summary, [`PAGE_PRODUCTS`] products a page.
/// The links are relative (the exporter may sit under a path prefix behind a
/// proxy); the metrics link follows `telemetry_path`.
///
/// Products are in [`worst_first`] order, sorted before paging. The
/// aggregates are read-locked only to order the products (a cheap row
/// each) and copy this page's release rows; the HTML is written after the
/// lock is released, on the blocking pool, one page at a time (`RENDERS`).
pub async fn landing(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let page = page_param(query.as_deref())?;
    // The records of the escapes are the read API's data: listed for a
    // caller it would answer (the token, loopback), or behind basic auth.
    let records = state.config.web.basic_auth()
        || super::auth::check_writer(state.config.api_token.as_deref(), &headers, peer).is_ok();
    // Never closed; a failure would only refuse.
    let _permit = RENDERS
        .acquire()
        .await
        .map_err(|_| AppError::Busy("the summary page cannot be built now".into()))?;
    let built = tokio::task::spawn_blocking(move || {
        let (rows, paging) = {
            let agg = state
                .aggregates
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let sel = select(&state.config, &agg);
            let mut rows: Vec<Option<ProductRow>> = product_rows(&state.config, &sel)
                .into_iter()
                .map(Some)
                .collect();
            let order = worst_first(rows.iter().flatten());
            let paging = Paging {
                page,
                exported: sel.exported(),
                left_out: sel.products_left_out(),
            };
            let rows: Vec<_> = order[Paging::range_of(page, order.len())]
                .iter()
                .filter_map(|&i| {
                    let row = rows[i].take()?;
                    let view = &sel.products()[i];
                    Some(build_product(&state.config, view, row, SUMMARY_RELEASES))
                })
                .collect();
            (rows, paging)
        };
        let found = if records {
            escapes_of(&state.config, &rows)
        } else {
            vec![None; rows.len()]
        };
        let metrics = state.config.telemetry_path.trim_start_matches('/');
        summary_html(&rows, &found, metrics, paging)
    })
    .await;
    Ok(match built {
        Ok(html) => Html(html).into_response(),
        Err(_) => super::edge::json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "building the summary page failed",
        ),
    })
}

/// The first [`SUMMARY_ESCAPES`] escapes of the release each product's
/// funnel shows (its newest with defects), read from the store in one
/// snapshot; none when the store cannot be read (logged; the page still
/// shows the counts).
fn escapes_of(config: &crate::config::Config, rows: &[ProductReport]) -> Vec<Option<Escapes>> {
    let wanted: Vec<(usize, (String, String))> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let newest = r.releases.iter().find(|r| r.defects > 0)?;
            (newest.escaped > 0).then(|| (i, (r.product.product.clone(), newest.release.clone())))
        })
        .collect();
    let mut out = vec![None; rows.len()];
    if wanted.is_empty() {
        return out;
    }
    let keys: Vec<(String, String)> = wanted.iter().map(|(_, k)| k.clone()).collect();
    match crate::store::read::escapes_of(&config.db, config, &keys, 0, SUMMARY_ESCAPES) {
        Ok(found) => {
            for ((i, _), f) in wanted.into_iter().zip(found) {
                out[i] = f;
            }
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the summary page shows no escapes: the store cannot be read")
        }
    }
    out
}

/// How far a product is from healthy, 0 the furthest: settled leaking (or
/// the leaking alert's evidence), settled attention (or the attention
/// alert's), uncertain attention or leaking, healthy and strong (settled or
/// not), no data.
pub fn distress(p: &ProductRow) -> u8 {
    match (p.band, p.band_settled, p.alert_band) {
        (None, ..) => 4,
        (_, _, Some(Band::Leaking)) | (Some(Band::Leaking), true, _) => 0,
        (_, _, Some(Band::Attention)) | (Some(Band::Attention), true, _) => 1,
        (Some(Band::Leaking | Band::Attention), ..) => 2,
        _ => 3,
    }
}

/// The indexes of `rows` worst first: by [`distress`], then by recent rate
/// (highest first), then by name. The summary pages this order.
pub fn worst_first<'a>(rows: impl Iterator<Item = &'a ProductRow>) -> Vec<usize> {
    let mut keyed: Vec<(u8, f64, &str, usize)> = rows
        .enumerate()
        .map(|(i, p)| {
            (
                distress(p),
                p.recent_rate.unwrap_or(-1.0),
                p.product.as_str(),
                i,
            )
        })
        .collect();
    keyed.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(b.2))
    });
    keyed.into_iter().map(|k| k.3).collect()
}

/// `?page=N` (1-based, 1 when absent); any other parameter, a repeated one
/// or a page that is not a positive number is a 422 naming it.
fn page_param(query: Option<&str>) -> Result<usize, AppError> {
    let params = super::read::query_params(query, &["page"])?;
    let Some(raw) = params.get("page") else {
        return Ok(1);
    };
    raw.as_str()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| FieldError::new("page", "must be a whole number from 1").into())
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
            return (StatusCode::INTERNAL_SERVER_ERROR, super::json::Json(body)).into_response();
        }
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if wants_openmetrics(accept) {
        ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(header::CONTENT_TYPE, CLASSIC)], to_classic(&text)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::super::summary::paging_html;
    use super::*;

    fn paging(page: usize, exported: usize) -> Paging {
        Paging {
            page,
            exported,
            left_out: 0,
        }
    }

    #[test]
    fn pages_cover_every_exported_product_once() {
        assert_eq!((paging(1, 0).pages(), paging(1, 0).range()), (1, 0..0));
        assert_eq!(paging(1, 50).pages(), 1);
        assert_eq!(paging(2, 51).range(), 50..51);
        assert_eq!(paging(3, 120).range(), 100..120);
        assert_eq!(paging(4, 120).range(), 120..120);
        assert_eq!(paging(usize::MAX, 120).range(), 120..120);
    }

    #[test]
    fn the_paging_line_says_what_is_left_out_and_links_the_read_api() {
        assert_eq!(paging_html(paging(1, 50)), "");
        let middle = paging_html(paging(2, 120));
        for part in [
            "Products 51–100 of 120",
            "70 not shown here",
            "data-not-shown=\"70\"",
            "rel=\"prev\" href=\"?page=1\"",
            "rel=\"next\" href=\"?page=3\"",
            "href=\"api/v1/releases\"",
        ] {
            assert!(middle.contains(part), "{part}: {middle}");
        }
        let past = paging_html(paging(9, 120));
        assert!(past.contains("past the last page (3)"), "{past}");
        assert!(past.contains("href=\"?page=3\"") && !past.contains("rel=\"next\""));
        let html = summary_html(&[], &[], "metrics", paging(2, 120));
        assert!(!html.contains("No product has data yet"));
    }

    fn row(name: &str, rate: Option<f64>, band: Option<Band>, settled: bool) -> ProductRow {
        ProductRow {
            recent_defects: rate.map(|_| 100),
            recent_escaped: rate.map(|r| (r * 100.0) as u64),
            recent_rate: rate,
            band,
            small_sample: false,
            band_settled: settled,
            ..ProductRow::without_data(name)
        }
    }

    #[test]
    fn products_are_ordered_worst_first_then_by_rate_then_by_name() {
        use Band::*;
        let mut alerted = row("alerted", Some(0.19), Some(Leaking), false);
        alerted.alert_band = Some(Attention);
        let rows = [
            row("a-none", None, None, false),
            row("b-healthy", Some(0.08), Some(Healthy), true),
            row("c-maybe-leaking", Some(0.40), Some(Leaking), false),
            row("d-leaking", Some(0.25), Some(Leaking), true),
            row("e-strong", Some(0.01), Some(Strong), false),
            row("f-attention", Some(0.15), Some(Attention), true),
            alerted,
            row("g-leaking", Some(0.30), Some(Leaking), true),
            row("h-maybe-attention", Some(0.12), Some(Attention), false),
            row("a-leaking", Some(0.25), Some(Leaking), true),
        ];
        let order: Vec<&str> = worst_first(rows.iter())
            .into_iter()
            .map(|i| rows[i].product.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "g-leaking",
                "a-leaking",
                "d-leaking",
                "alerted",
                "f-attention",
                "c-maybe-leaking",
                "h-maybe-attention",
                "b-healthy",
                "e-strong",
                "a-none"
            ]
        );
        assert_eq!(distress(&rows[6]), 1, "the attention alert's evidence");
    }

    #[test]
    fn page_parameters_are_checked_by_name() {
        assert_eq!(page_param(None).unwrap(), 1);
        assert_eq!(page_param(Some("page=7")).unwrap(), 7);
        for bad in ["page=0", "page=", "page=a", "page=1&page=1", "other=1"] {
            assert_eq!(
                page_param(Some(bad)).unwrap_err().reason_label(),
                "invalid_field",
                "{bad}"
            );
        }
    }
}
