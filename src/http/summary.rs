//! The HTML of the summary page: its style, one section per product (the
//! pooled recent rate, the newest releases, the stage funnel of the newest
//! release, data quality), the paging line and the footer. Every name is
//! escaped; numbers also sit in `data-*` attributes at full precision.

use std::fmt::Write;

use super::pages::{PAGE_PRODUCTS, Paging};
use crate::metrics::regression::Regression;
use crate::metrics::report::{Band, ProductReport, ProductRow, ReleaseRow};
use crate::store::read::Escapes;

mod badge;
mod escapes;
mod svg;

use badge::{Evidence, badge, small_sample};

/// The page's style: no external asset, one column on a phone, no table
/// wider than the screen (secondary columns hide, names wrap).
const STYLE: &str = "
:root{color-scheme:light dark;--strong:#1a7f37;--healthy:#0969da;--attention:#9a6700;--leaking:#cf222e;--muted:#888}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:80rem;padding:1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{margin:0 0 .4rem;overflow-wrap:anywhere}h3{font-size:1rem;margin:1rem 0 .3rem}
.products{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,30rem),1fr));gap:1rem}
section.product{border:1px solid #8884;border-radius:.6rem;padding:1rem;min-width:0}
.scroll{max-width:100%;overflow-x:auto}
.recent{display:flex;flex-wrap:wrap;align-items:baseline;gap:.5rem}.big{font-size:2rem;font-weight:700}
.strong{--b:var(--strong)}.healthy{--b:var(--healthy)}.attention{--b:var(--attention)}.leaking{--b:var(--leaking)}
.badge{display:inline-block;border-radius:1rem;padding:0 .55rem;color:#fff;font-size:.85rem;white-space:nowrap;
background:var(--b,var(--muted));border:2px solid var(--b,var(--muted))}
.badge.uncertain{background:transparent;color:var(--b);border-style:dashed}
.alert{font-size:.8rem;color:var(--b);white-space:nowrap}.small-sample{color:var(--muted);white-space:nowrap}
.recent .big{color:var(--b,inherit)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #8883;vertical-align:top}td.n,th.n{text-align:right}
td.name{overflow-wrap:anywhere}td.n,td.date{white-space:nowrap}
tr.regressed td:first-child::after{content:' \\25B2';color:var(--leaking)}
.legend{border:1px solid #8884;border-radius:.6rem;padding:.4rem 1rem;margin:.8rem 0}
.legend dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem .8rem}
.glance{margin:.8rem 0 1.2rem}.glance small.date,td .small-sample,td .alert{display:block}
svg.trend{width:100%;max-width:32rem;height:auto;display:block}
svg .line{fill:none;stroke:currentColor;stroke-width:2}svg circle{fill:currentColor}svg circle.regressed{fill:var(--leaking)}svg circle.small{fill:Canvas;stroke:currentColor;stroke-width:1.5}
svg .threshold{stroke:var(--b);stroke-dasharray:4 3;stroke-width:1}
.regression{border-left:4px solid var(--leaking);padding-left:.6rem}
.funnel{list-style:none;padding:0;margin:0}.funnel li{display:grid;grid-template-columns:9rem 1fr 3rem;gap:.4rem;align-items:center}
.bar{height:.8rem;background:var(--healthy);border-radius:.2rem;min-width:1px}.funnel li.production .bar{background:var(--leaking)}
ul.escapes{margin:.2rem 0;padding-left:1.2rem}ul.escapes li{overflow-wrap:anywhere}
.muted,small{color:var(--muted)}dl.quality{display:grid;grid-template-columns:auto 1fr;gap:.1rem .8rem;margin:.4rem 0}dd{margin:0}
footer{margin-top:1.5rem;overflow-wrap:anywhere}
@media (max-width:40rem){body{padding:.5rem}table{font-size:.8rem}th,td{padding:.2rem .2rem}.opt{display:none}
.glance .badge{font-size:.75rem;padding:0 .35rem}
.funnel li{grid-template-columns:7.5rem 1fr 2rem}.legend dl{grid-template-columns:1fr}}
";

/// `0.1234` as `12.3 %`.
pub(super) fn pct(v: f64) -> String {
    format!("{:.1}\u{a0}%", v * 100.0)
}

/// A `data-*` attribute holding a number at full precision (the value on
/// `/metrics`); nothing when undefined.
fn data<T: std::fmt::Display>(name: &str, v: Option<T>) -> String {
    v.map_or_else(String::new, |v| format!(" data-{name}=\"{v}\""))
}

/// The summary page of `products` (one page of the report, worst first):
/// the legend, a comparison table of the page's products, then per product
/// the pooled recent rate, the trend and table of the newest releases with
/// the most regressed one, the funnel of the newest release and data
/// quality, and the escapes of that release (`escapes[i]` those of
/// `products[i]`, when read). Every name is escaped; numbers sit in `data-*`
/// attributes at full precision. Linear in what it shows.
pub fn summary_html(
    products: &[ProductReport],
    escapes: &[Option<Escapes>],
    metrics_href: &str,
    paging: Paging,
) -> String {
    let mut out = String::with_capacity(16 * 1024);
    page_head(&mut out, metrics_href, paging);
    if products.is_empty() && paging.page == 1 {
        out.push_str("<p>No product has data yet.</p>\n");
    } else if !products.is_empty() {
        glance(&mut out, products);
    }
    legend(&mut out);
    out.push_str("<main class=\"products\">\n");
    for (i, p) in products.iter().enumerate() {
        product_section(&mut out, i, p, escapes.get(i).and_then(Option::as_ref));
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
         production, with its 95&nbsp;% Wilson interval. Products worst first; the same \
         numbers as <a href=\"{m}\">the metrics</a>.</p></header>\n{paging}",
        m = e(metrics_href),
        paging = paging_html(paging),
    );
}

/// What the badges mean and what the alerts will do.
fn legend(out: &mut String) {
    out.push_str(
        "<details class=\"legend\" open><summary>What the badges mean</summary><dl>\
         <dt><span class=\"badge leaking settled\">leaking</span></dt><dd>Settled: at least \
         <code>min_defects</code> defects and the whole 95&nbsp;% interval above the attention \
         band. The <strong>Leaking</strong> alert fires (the interval's lower bound is above \
         the attention band).</dd>\
         <dt><span class=\"badge attention settled\">attention</span></dt><dd>Settled in the \
         attention band. The <strong>Attention</strong> alert fires (lower bound above the \
         healthy band); <span class=\"alert attention\">&#9873;&#xa0;attention alert</span> \
         marks it beside an uncertain badge.</dd>\
         <dt><span class=\"badge leaking uncertain\">leaking?</span></dt><dd>Uncertain: the \
         point estimate suggests the band, but the interval spans more than one band or there \
         are fewer than <code>min_defects</code> defects. No alert yet for that band \
         (&#9873; marks an attention alert that already fires); hover for the interval.</dd>\
         <dt><span class=\"badge healthy settled\">healthy</span> \
         <span class=\"badge strong settled\">strong</span></dt><dd>At or below the healthy \
         band; no alert.</dd>\
         <dt><small>small sample</small></dt><dd>Fewer than <code>min_defects</code> defects \
         behind the rate: never alerted on (a hollow point in a trend).</dd>\
         <dt>&#9650;</dt><dd>The shown release that regressed most against the releases \
         before it at the same age.</dd></dl><p class=\"muted\">Release alerts consider only \
         releases that can still be acted on: by default those shipped in the last 90 days, \
         or, when a release time is unknown, the newest 3 of the product (the mixin's \
         <code>releaseAlertWindow</code> and <code>releaseAlertNewest</code>). Older releases \
         keep their badges here and raise no alert.</p></details>\n",
    );
}

/// The comparison table: one row per product of the page, in page order.
fn glance(out: &mut String, products: &[ProductReport]) {
    out.push_str(
        "<section class=\"glance\"><h2>At a glance</h2><div class=\"scroll\">\
         <table class=\"glance\"><thead><tr><th>product</th><th class=\"n\">recent rate</th>\
         <th class=\"opt\">95&nbsp;% interval</th><th>band</th><th>newest release</th>\
         <th>failing stage</th><th class=\"opt\">trend</th></tr></thead><tbody>\n",
    );
    for (i, r) in products.iter().enumerate() {
        glance_row(out, i, r);
    }
    out.push_str("</tbody></table></div></section>\n");
}

/// One product's row of the comparison table.
fn glance_row(out: &mut String, i: usize, r: &ProductReport) {
    let e = html_attr;
    let p = &r.product;
    let newest = newest_with_defects(&r.releases);
    let rate = p.recent_rate.map_or("–".to_owned(), |x| {
        pct(x) + &small_sample(p.recent_defects.unwrap_or(0), p.min_defects)
    });
    let interval = match (p.lower, p.upper) {
        (Some(lo), Some(hi)) => format!("{}–{}", pct(lo), pct(hi)),
        _ => "–".to_owned(),
    };
    let release = newest.map_or("–".to_owned(), |n| {
        format!(
            "{}{}",
            e(&n.release),
            n.released_at.as_deref().map_or(String::new(), |t| {
                format!(" <small class=\"date\">{}</small>", e(date(t)))
            })
        )
    });
    let _ = write!(
        out,
        "<tr class=\"glance-row\" data-product=\"{name}\"{rate_attr}>\
         <td class=\"name\"><a href=\"#product-{i}\">{name}</a></td><td class=\"n\">{rate}</td>\
         <td class=\"opt n\">{interval}</td><td>{badge}</td><td class=\"name\">{release}</td>\
         <td class=\"name\">{failing}</td><td class=\"opt\">",
        name = e(&p.product),
        rate_attr = data("recent-rate", p.recent_rate),
        badge = badge(&Evidence::of_product(p)),
        failing = newest.map_or("–".to_owned(), failing_short),
    );
    svg::spark(out, p, &r.releases);
    out.push_str("</td></tr>\n");
}

/// The failing stage of a release with its owner, for the comparison table.
fn failing_short(r: &ReleaseRow) -> String {
    match (&r.failing_stage, &r.failing_stage_owner) {
        (Some(s), Some(o)) => format!(
            "<span data-stage=\"{s}\">{s}</span> <small>({o})</small>",
            s = html_attr(s),
            o = html_attr(o)
        ),
        (Some(s), None) => format!("<span data-stage=\"{s}\">{s}</span>", s = html_attr(s)),
        _ => "<span class=\"muted\">none</span>".to_owned(),
    }
}

/// The newest shown release with defects (the funnel's), else the newest.
fn newest_with_defects(releases: &[ReleaseRow]) -> Option<&ReleaseRow> {
    releases
        .iter()
        .find(|r| r.defects > 0)
        .or_else(|| releases.first())
}

/// The date of an RFC 3339 time.
fn date(rfc3339: &str) -> &str {
    rfc3339.get(..10).unwrap_or(rfc3339)
}

/// One product's section: its recent rate, the trend and table of its
/// newest releases, the most regressed one, the funnel of the newest release
/// with defects and its escapes, and its data quality.
fn product_section(out: &mut String, i: usize, r: &ProductReport, found: Option<&Escapes>) {
    let (p, releases) = (&r.product, &r.releases);
    recent_rate(out, i, p);
    let regressed = r.regression.as_ref().map(|g| g.release.as_str());
    if !releases.is_empty() {
        out.push_str("<h3>Newest releases</h3>\n");
        svg::trend(out, p, releases, regressed);
        regression(out, r.regression.as_ref());
        releases_table(out, p, releases, regressed);
    }
    if let Some(newest) = releases.iter().find(|r| r.defects > 0) {
        stage_funnel(out, newest);
        if let Some(found) = found.filter(|f| f.release == newest.release) {
            escapes::escapes(out, found);
        }
    }
    data_quality(out, p);
}

/// The most regressed release, or a line saying none is.
fn regression(out: &mut String, g: Option<&Regression>) {
    let Some(g) = g else {
        out.push_str(
            "<p class=\"muted no-regression\">No shown release is worse than the releases \
             before it at the same age.</p>\n",
        );
        return;
    };
    let _ = writeln!(
        out,
        "<p class=\"regression\" data-release=\"{r}\" data-age=\"{a}\" data-rate=\"{rate}\" \
         data-previous=\"{prev}\">&#9650; Regressed most: <strong>{r}</strong>, {} at {a} \
         against a mean of {} for the {n} releases before it at that age.</p>",
        pct(g.rate),
        pct(g.previous),
        r = html_attr(&g.release),
        a = html_attr(&g.age),
        rate = g.rate,
        prev = g.previous,
        n = g.previous_releases,
    );
}

/// The section's opening and the product's pooled recent rate with its
/// interval, band and sample.
fn recent_rate(out: &mut String, i: usize, p: &ProductRow) {
    let e = html_attr;
    let band = p.band.map_or("none", Band::as_str);
    let _ = write!(
        out,
        "<section class=\"product\" data-product=\"{name}\" id=\"product-{i}\">\n\
         <h2>{name}</h2>\n<div class=\"recent {band}\"{rate}{lower}{upper}{defects}{escaped} \
         data-band=\"{band}\" data-settled=\"{settled}\" data-small-sample=\"{small}\">",
        name = e(&p.product),
        rate = data("recent-rate", p.recent_rate),
        lower = data("recent-lower", p.lower),
        upper = data("recent-upper", p.upper),
        defects = data("recent-defects", p.recent_defects),
        escaped = data("recent-escaped", p.recent_escaped),
        settled = p.band_settled,
        small = p.small_sample && p.recent_rate.is_some(),
    );
    match (p.recent_rate, p.lower, p.upper) {
        (Some(r), Some(lo), Some(hi)) => {
            let _ = write!(
                out,
                "<span class=\"big\">{}</span> {}{} <span>recent rate: {} of {} defects \
                 (95&nbsp;%: {}–{})</span>",
                pct(r),
                badge(&Evidence::of_product(p)),
                small_sample(p.recent_defects.unwrap_or(0), p.min_defects),
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
                badge(&Evidence::of_product(p))
            );
        }
    }
    out.push_str("</div>\n");
}

/// The newest releases, one row each, newest first.
fn releases_table(
    out: &mut String,
    p: &ProductRow,
    releases: &[ReleaseRow],
    regressed: Option<&str>,
) {
    out.push_str(
        "<div class=\"scroll\"><table class=\"releases\"><thead><tr><th>release</th>\
         <th>released</th><th class=\"n\">rate</th><th class=\"opt\">95&nbsp;% interval</th>\
         <th class=\"n opt\">T</th><th class=\"n opt\">P</th><th>band</th></tr></thead><tbody>\n",
    );
    for r in releases {
        release_row(out, p, r, regressed == Some(r.release.as_str()));
    }
    out.push_str("</tbody></table></div>\n");
}

/// One release's row: date, rate, interval, defects (T), escaped (P), band.
fn release_row(out: &mut String, p: &ProductRow, r: &ReleaseRow, regressed: bool) {
    let e = html_attr;
    let band = r.band.map_or("none", Band::as_str);
    let _ = writeln!(
        out,
        "<tr class=\"release {band}{reg}\" data-release=\"{name}\"{rate}{lower}{upper}{at} \
         data-defects=\"{t}\" data-escaped=\"{p}\" data-band=\"{band}\" \
         data-settled=\"{settled}\"><td class=\"name\">{name}</td><td class=\"date\">{date}</td>\
         <td class=\"n\">{rate_text}{small}</td><td class=\"opt\">{interval}</td>\
         <td class=\"n opt\">{t}</td><td class=\"n opt\">{p}</td><td>{badge}</td></tr>",
        reg = if regressed { " regressed" } else { "" },
        name = e(&r.release),
        rate = data("rate", r.escape_rate),
        lower = data("lower", r.lower),
        upper = data("upper", r.upper),
        at = r
            .released_at
            .as_deref()
            .map_or(String::new(), |t| format!(" data-released-at=\"{}\"", e(t))),
        date = r
            .released_at
            .as_deref()
            .map_or("–".to_owned(), |t| e(date(t))),
        t = r.defects,
        p = r.escaped,
        settled = r.band_settled,
        rate_text = r.escape_rate.map_or("–".to_owned(), pct),
        small = if r.escape_rate.is_some() {
            small_sample(r.defects, p.min_defects)
        } else {
            String::new()
        },
        interval = match (r.lower, r.upper) {
            (Some(lo), Some(hi)) => format!("{}–{}", pct(lo), pct(hi)),
            _ => "–".to_owned(),
        },
        badge = badge(&Evidence::of_release(r, p)),
    );
}

/// The stage funnel of `newest` (a release with defects) and its failing
/// stage.
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
    failing_stage(out, newest);
}

/// The failing stage of `newest` (docs/semantics.md) with what was expected
/// of it and its owner, or a line saying no stage is worse than expected.
fn failing_stage(out: &mut String, newest: &ReleaseRow) {
    let e = html_attr;
    let Some(stage) = &newest.failing_stage else {
        out.push_str(
            "<p class=\"failing\">No tracked stage is failing (none leaks more than \
             expected of it).</p>\n",
        );
        return;
    };
    let leak = newest.failing_stage_leak;
    let expected = newest.failing_stage_expected;
    let owner = newest.failing_stage_owner.as_deref();
    let _ = writeln!(
        out,
        "<p class=\"failing\" data-stage=\"{s}\"{o}{l}{x}>Failing stage: <strong>{s}</strong>{lt}{xt}{ot}.</p>",
        s = e(stage),
        o = owner.map_or(String::new(), |o| format!(" data-owner=\"{}\"", e(o))),
        l = data("leak", leak),
        x = data("expected", expected),
        lt = leak.map_or(String::new(), |l| format!(" let {} through", pct(l))),
        xt = expected.map_or(String::new(), |x| format!(
            " against {} expected ({})",
            pct(x),
            newest.failing_stage_basis.unwrap_or("baseline")
        )),
        ot = owner.map_or(String::new(), |o| format!(
            "; owner <strong>{}</strong>",
            e(o)
        )),
    );
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
pub(super) fn html_attr(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
