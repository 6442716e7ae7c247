//! The summary page, health and readiness, and `/metrics`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use crate::metrics::collector::select;
use crate::metrics::exposition::{CLASSIC, OPENMETRICS, to_classic, wants_openmetrics};
use crate::metrics::report::{Band, Report, build};

/// Newest releases shown per product on the summary page.
const SUMMARY_RELEASES: usize = 10;

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

/// The summary page of `report`: per product the pooled recent rate, the
/// newest releases, the funnel of the newest release and data quality. Every
/// name is escaped; numbers sit in `data-*` attributes at full precision.
pub fn summary_html(report: &Report, metrics_href: &str, products_left_out: usize) -> String {
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
         <main class=\"products\">\n",
        m = e(metrics_href)
    );
    if report.products.is_empty() {
        out.push_str("<p>No product has data yet.</p>\n");
    }
    for p in &report.products {
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
        let releases: Vec<_> = report
            .releases
            .iter()
            .filter(|r| r.product == p.product)
            .take(SUMMARY_RELEASES)
            .collect();
        if !releases.is_empty() {
            out.push_str(
                "<h3>Newest releases</h3>\n<table class=\"releases\"><thead><tr><th>release</th>\
                 <th class=\"n\">rate</th><th>95&nbsp;% interval</th><th class=\"n\">T</th>\
                 <th class=\"n\">P</th><th>band</th></tr></thead><tbody>\n",
            );
        }
        for r in &releases {
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
        "</main>\n<footer class=\"muted\"><p data-products-left-out=\"{products_left_out}\">\
         Products left out (beyond max_products): {products_left_out}.</p>\n<ul>\
         <li><a href=\"{m}\">Metrics</a></li><li><a href=\"healthz\">Health</a></li>\
         <li><a href=\"readyz\">Readiness</a></li>\
         <li><a href=\"api/v1/openapi.json\">HTTP API (OpenAPI)</a></li></ul>\n\
         <p>Documentation: <code>README.md</code> and <code>docs/</code> (metrics, semantics, \
         configuration, runbook) beside the source. Write API: <code>POST /api/v1/events</code>, \
         <code>POST /api/v1/releases</code>; webhooks under <code>/webhooks/</code>.</p>\
         </footer>\n</body></html>\n",
        m = e(metrics_href)
    );
    out
}

/// `GET /`: the live summary. The links are relative (the exporter may sit
/// under a path prefix behind a proxy); the metrics link follows
/// `telemetry_path`.
pub async fn landing(State(state): State<AppState>) -> Html<String> {
    let (report, left_out) = {
        let agg = state
            .aggregates
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sel = select(&state.config, &agg);
        (build(&state.config, &sel, None), sel.products_left_out())
    };
    let metrics = state.config.telemetry_path.trim_start_matches('/');
    Html(summary_html(&report, metrics, left_out))
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
