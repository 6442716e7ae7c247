//! The summary page, health and readiness, and `/metrics`.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::Semaphore;

use super::AppState;
use super::error::AppError;
use crate::ingest::FieldError;
use crate::metrics::collector::select_range;
use crate::metrics::exposition::{CLASSIC, OPENMETRICS, to_classic, wants_openmetrics};
use crate::metrics::report::{Band, ProductReport, build_products};

/// Newest releases shown per product on the summary page.
const SUMMARY_RELEASES: usize = 10;

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

/// The page's style: no external asset, one column on a phone.
const STYLE: &str = "
:root{color-scheme:light dark;--strong:#1a7f37;--healthy:#0969da;--attention:#9a6700;--leaking:#cf222e;--muted:#888}
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:72rem;padding:1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{margin:0 0 .4rem}h3{font-size:1rem;margin:1rem 0 .3rem}
.products{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr));gap:1rem}
section.product{border:1px solid #8884;border-radius:.6rem;padding:1rem;overflow-x:auto}
.recent{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5rem}.big{font-size:2rem;font-weight:700}
.badge{display:inline-block;border-radius:1rem;padding:0 .6rem;color:#fff;font-size:.85rem;background:var(--muted)}
.strong .badge,.badge.strong{background:var(--strong)}.healthy .badge,.badge.healthy{background:var(--healthy)}
.attention .badge,.badge.attention{background:var(--attention)}.leaking .badge,.badge.leaking{background:var(--leaking)}
.recent.strong .big{color:var(--strong)}.recent.healthy .big{color:var(--healthy)}
.recent.attention .big{color:var(--attention)}.recent.leaking .big{color:var(--leaking)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #8883;white-space:nowrap}td.n,th.n{text-align:right}
.funnel{list-style:none;padding:0;margin:0}.funnel li{display:grid;grid-template-columns:9rem 1fr 3rem;gap:.4rem;align-items:center}
.bar{height:.8rem;background:var(--healthy);border-radius:.2rem;min-width:1px}.funnel li.production .bar{background:var(--leaking)}
.muted,small{color:var(--muted)}dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .8rem;margin:.4rem 0}dd{margin:0}
footer{margin-top:1.5rem}
@media (max-width:30rem){body{padding:.5rem}table{font-size:.8rem}th,td{padding:.2rem .2rem}.funnel li{grid-template-columns:7.5rem 1fr 2rem}}
";

/// `0.1234` as `12.3 %`.
fn pct(v: f64) -> String {
    format!("{:.1}\u{a0}%", v * 100.0)
}

/// A `data-*` attribute holding a number at full precision (the value on
/// `/metrics`); nothing when undefined.
fn data<T: std::fmt::Display>(name: &str, v: Option<T>) -> String {
    v.map_or_else(String::new, |v| format!(" data-{name}=\"{v}\""))
}

/// The band badge of a rate, or a dash.
fn badge(band: Option<Band>) -> String {
    band.map_or_else(
        || "<span class=\"badge\">no data</span>".to_owned(),
        |b| format!("<span class=\"badge {0}\">{0}</span>", b.as_str()),
    )
}

/// The summary page of `products` (one page of the report): per product the
/// pooled recent rate, the newest releases, the funnel of the newest release
/// and data quality. Every name is escaped; numbers sit in `data-*`
/// attributes at full precision. Linear in what it shows.
pub fn summary_html(products: &[ProductReport], metrics_href: &str, paging: Paging) -> String {
    use std::fmt::Write;
    let e = html_attr;
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>bug-escape-exporter</title><style>{STYLE}</style></head>\n<body>\n\
         <header><h1>bug-escape-exporter</h1>\
         <p class=\"muted\">Bug escape rate: the share of a release's defects found in \
         production. Rates come with their 95&nbsp;% Wilson interval; the band follows the \
         product's thresholds. The same numbers as <a href=\"{m}\">the metrics</a>.</p></header>\n\
         {paging}<main class=\"products\">\n",
        m = e(metrics_href),
        paging = paging_html(paging),
    );
    if products.is_empty() && paging.page == 1 {
        out.push_str("<p>No product has data yet.</p>\n");
    }
    for ProductReport {
        product: p,
        releases,
    } in products
    {
        let band = p.band.map_or("none", Band::as_str);
        let _ = write!(
            out,
            "<section class=\"product\" data-product=\"{name}\">\n<h2>{name}</h2>\n\
             <div class=\"recent {band}\"{rate}{lower}{upper}{defects}{escaped} data-band=\"{band}\">",
            name = e(&p.product),
            rate = data("recent-rate", p.recent_rate),
            lower = data("recent-lower", p.lower),
            upper = data("recent-upper", p.upper),
            defects = data("recent-defects", p.recent_defects),
            escaped = data("recent-escaped", p.recent_escaped),
        );
        match (p.recent_rate, p.lower, p.upper) {
            (Some(r), Some(lo), Some(hi)) => {
                let _ = write!(
                    out,
                    "<span class=\"big\">{}</span> {} <span>recent rate: {} of {} defects \
                     (95&nbsp;%: {}–{})</span>",
                    pct(r),
                    badge(p.band),
                    p.recent_escaped.unwrap_or(0),
                    p.recent_defects.unwrap_or(0),
                    pct(lo),
                    pct(hi)
                );
            }
            _ => {
                let _ = write!(
                    out,
                    "<span class=\"big\">–</span> {} <span>no defects in recent releases</span>",
                    badge(None)
                );
            }
        }
        out.push_str("</div>\n");
        if !releases.is_empty() {
            out.push_str(
                "<h3>Newest releases</h3>\n<table class=\"releases\"><thead><tr><th>release</th>\
                 <th class=\"n\">rate</th><th>95&nbsp;% interval</th><th class=\"n\">T</th>\
                 <th class=\"n\">P</th><th>band</th></tr></thead><tbody>\n",
            );
        }
        for r in releases {
            let band = r.band.map_or("none", Band::as_str);
            let _ = writeln!(
                out,
                "<tr class=\"release {band}\" data-release=\"{name}\"{rate}{lower}{upper} \
                 data-defects=\"{t}\" data-escaped=\"{p}\" data-band=\"{band}\">\
                 <td>{name}</td><td class=\"n\">{rate_text}</td><td>{interval}</td>\
                 <td class=\"n\">{t}</td><td class=\"n\">{p}</td><td>{badge}{small}</td></tr>",
                name = e(&r.release),
                rate = data("rate", r.escape_rate),
                lower = data("lower", r.lower),
                upper = data("upper", r.upper),
                t = r.defects,
                p = r.escaped,
                rate_text = r.escape_rate.map_or("–".to_owned(), pct),
                interval = match (r.lower, r.upper) {
                    (Some(lo), Some(hi)) => format!("{}–{}", pct(lo), pct(hi)),
                    _ => "–".to_owned(),
                },
                badge = badge(r.band),
                small = if r.small_sample && r.band.is_some() {
                    " <small>small sample</small>"
                } else {
                    ""
                },
            );
        }
        if !releases.is_empty() {
            out.push_str("</tbody></table>\n");
        }
        if let Some(newest) = releases.iter().find(|r| r.defects > 0) {
            let _ = write!(
                out,
                "<h3>Stage funnel of {}</h3>\n<ol class=\"funnel\" data-release=\"{}\">\n",
                e(&newest.release),
                e(&newest.release)
            );
            for s in &newest.stages {
                let width = (s.defects as f64 / newest.defects as f64 * 100.0).round();
                let _ = writeln!(
                    out,
                    "<li class=\"{phase}\" data-stage=\"{name}\" data-defects=\"{n}\"{leak}>\
                     <span>{name}</span><span class=\"bar\" style=\"width:{width}%\"></span>\
                     <span class=\"n\">{n}</span></li>",
                    phase = s.phase,
                    name = e(&s.stage),
                    n = s.defects,
                    leak = data("leak", s.leak),
                );
            }
            out.push_str("</ol>\n");
            match (
                &newest.leakiest_stage,
                &newest.leakiest_stage_owner,
                newest.leakiest_stage_leak,
            ) {
                (Some(stage), Some(owner), Some(leak)) => {
                    let _ = writeln!(
                        out,
                        "<p class=\"leakiest\" data-stage=\"{s}\" data-owner=\"{o}\" \
                         data-leak=\"{leak}\">Leakiest stage: <strong>{s}</strong> let \
                         {} through; owner <strong>{o}</strong>.</p>",
                        pct(leak),
                        s = e(stage),
                        o = e(owner),
                    );
                }
                _ => out.push_str("<p class=\"leakiest\">No tracked stage leaked.</p>\n"),
            }
        }
        let unclassified = p.unknown_stage + p.no_stage;
        let _ = write!(
            out,
            "<h3>Data quality</h3>\n<dl class=\"quality\" data-unattributed=\"{u}\" \
             data-unclassified=\"{unclassified}\" data-left-out=\"{l}\">\
             <dt>unattributed (no release)</dt><dd>{u}</dd>\
             <dt>unclassified (stage missing or unknown)</dt><dd>{unclassified}</dd>\
             <dt>releases left out (beyond max_releases)</dt><dd>{l}</dd></dl>\n</section>\n",
            u = p.unattributed,
            l = p.releases_left_out,
        );
    }
    let _ = write!(
        out,
        "</main>\n<footer class=\"muted\"><p data-products-left-out=\"{left_out}\">\
         Products left out (beyond max_products): {left_out}.</p>\n<ul>\
         <li><a href=\"{m}\">Metrics</a></li><li><a href=\"healthz\">Health</a></li>\
         <li><a href=\"readyz\">Readiness</a></li>\
         <li><a href=\"api/v1/openapi.json\">HTTP API (OpenAPI)</a></li></ul>\n\
         <p>Documentation: <code>README.md</code> and <code>docs/</code> (metrics, semantics, \
         configuration, runbook) beside the source. Write API: <code>POST /api/v1/events</code>, \
         <code>POST /api/v1/releases</code>; webhooks under <code>/webhooks/</code>.</p>\
         </footer>\n</body></html>\n",
        m = e(metrics_href),
        left_out = paging.left_out,
    );
    out
}

/// The line saying which products this page shows, with links to the pages
/// around it and to the read API; nothing when one page holds them all.
fn paging_html(p: Paging) -> String {
    let range = p.range();
    let pages = p.pages();
    if pages == 1 && p.page == 1 {
        return String::new();
    }
    let shown = range.len();
    let not_shown = p.exported - shown;
    let place = if shown == 0 {
        format!("Page {} is past the last page ({pages}).", p.page)
    } else {
        format!(
            "Products {}–{} of {} ({PAGE_PRODUCTS} a page): {not_shown} not shown here.",
            range.start + 1,
            range.end,
            p.exported
        )
    };
    let link =
        |page: usize, text: &str| format!(" <a rel=\"{text}\" href=\"?page={page}\">{text}</a>");
    let mut nav = String::new();
    if p.page > 1 {
        nav.push_str(&link((p.page - 1).min(pages), "prev"));
    }
    if p.page < pages {
        nav.push_str(&link(p.page + 1, "next"));
    }
    format!(
        "<p class=\"paging\" data-page=\"{page}\" data-pages=\"{pages}\" \
         data-products=\"{exported}\" data-shown=\"{shown}\" data-not-shown=\"{not_shown}\">\
         {place}{nav} Every product: <a href=\"api/v1/releases\">api/v1/releases</a> \
         (JSON, the write API's credentials).</p>\n",
        page = p.page,
        exported = p.exported,
    )
}

/// `GET /[?page=N]`: the live summary, [`PAGE_PRODUCTS`] products a page.
/// The links are relative (the exporter may sit under a path prefix behind a
/// proxy); the metrics link follows `telemetry_path`.
///
/// The aggregates are read-locked only to choose the products (what a
/// scrape does) and copy this page's rows; the HTML is written after the
/// lock is released, on the blocking pool, one page at a time (`RENDERS`).
pub async fn landing(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let page = page_param(query.as_deref())?;
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
            let sel = select_range(&state.config, &agg, Paging::range_of(page, usize::MAX));
            let paging = Paging {
                page,
                exported: sel.exported(),
                left_out: sel.products_left_out(),
            };
            let rows = build_products(&state.config, &sel, SUMMARY_RELEASES);
            (rows, paging)
        };
        let metrics = state.config.telemetry_path.trim_start_matches('/');
        summary_html(&rows, metrics, paging)
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

#[cfg(test)]
mod tests {
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
        let html = summary_html(&[], "metrics", paging(2, 120));
        assert!(!html.contains("No product has data yet"));
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
