//! The HTML of the summary page: its style, one section per product (the
//! pooled recent rate, the newest releases, the stage funnel of the newest
//! release, data quality), the paging line and the footer. Every name is
//! escaped; numbers also sit in `data-*` attributes at full precision.

use std::fmt::Write;

use super::pages::{PAGE_PRODUCTS, Paging};
use crate::metrics::report::{Band, ProductReport, ProductRow, ReleaseRow};

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
    let mut out = String::with_capacity(16 * 1024);
    page_head(&mut out, metrics_href, paging);
    if products.is_empty() && paging.page == 1 {
        out.push_str("<p>No product has data yet.</p>\n");
    }
    for ProductReport { product, releases } in products {
        product_section(&mut out, product, releases);
    }
    page_foot(&mut out, metrics_href, paging.left_out);
    out
}

/// The document head (with the style), the page header and the paging line.
fn page_head(out: &mut String, metrics_href: &str, paging: Paging) {
    let e = html_attr;
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
}

/// One product's section: its recent rate, its newest releases, the funnel
/// of the newest release with defects, and its data quality.
fn product_section(out: &mut String, p: &ProductRow, releases: &[ReleaseRow]) {
    recent_rate(out, p);
    releases_table(out, releases);
    if let Some(newest) = releases.iter().find(|r| r.defects > 0) {
        stage_funnel(out, newest);
    }
    data_quality(out, p);
}

/// The section's opening and the product's pooled recent rate with its
/// interval and band.
fn recent_rate(out: &mut String, p: &ProductRow) {
    let e = html_attr;
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
}

/// The newest releases, one row each; nothing when there is none.
fn releases_table(out: &mut String, releases: &[ReleaseRow]) {
    if releases.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Newest releases</h3>\n<table class=\"releases\"><thead><tr><th>release</th>\
         <th class=\"n\">rate</th><th>95&nbsp;% interval</th><th class=\"n\">T</th>\
         <th class=\"n\">P</th><th>band</th></tr></thead><tbody>\n",
    );
    for r in releases {
        release_row(out, r);
    }
    out.push_str("</tbody></table>\n");
}

/// One release's row: rate, interval, defects (T), escaped (P) and band.
fn release_row(out: &mut String, r: &ReleaseRow) {
    let e = html_attr;
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

/// The stage funnel of `newest` (a release with defects) and its leakiest
/// tracked stage with the stage's owner.
fn stage_funnel(out: &mut String, newest: &ReleaseRow) {
    let e = html_attr;
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

/// The product's data quality, and the end of its section.
fn data_quality(out: &mut String, p: &ProductRow) {
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

/// The footer: products left out, the other routes, the documentation.
fn page_foot(out: &mut String, metrics_href: &str, left_out: usize) {
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
        m = html_attr(metrics_href),
    );
}

/// The line saying which products this page shows, with links to the pages
/// around it and to the read API; nothing when one page holds them all.
pub(super) fn paging_html(p: Paging) -> String {
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

/// Escapes `&`, `<`, `>`, `"` and `'` for an HTML attribute.
fn html_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
