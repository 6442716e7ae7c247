//! The trends of the summary page as inline SVG (no JavaScript): the escape
//! rate of the shown releases, oldest to newest, against the product's band
//! thresholds; and a tiny one for the comparison table.

use std::fmt::Write;

use super::{html_attr, pct};
use crate::metrics::report::{ProductRow, ReleaseRow};

/// `(release, rate)` of the shown releases that have a rate, oldest first.
fn points(releases: &[ReleaseRow]) -> Vec<(&str, f64)> {
    releases
        .iter()
        .rev()
        .filter_map(|r| Some((r.release.as_str(), r.escape_rate?)))
        .collect()
}

/// Whether the shown release `release` is a small sample.
fn small(releases: &[ReleaseRow], release: &str) -> bool {
    releases
        .iter()
        .any(|r| r.release == release && r.small_sample)
}

/// The top of the rate axis: room for the highest rate and the attention
/// threshold, at most 100 %.
fn top(points: &[(&str, f64)], p: &ProductRow) -> f64 {
    let high = points.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    (high.max(p.thresholds.attention * 1.25) * 1.1).clamp(0.01, 1.0)
}

/// `x,y` of point `i` of `n` in a `w`×`h` box (`pad` on every side).
fn xy(i: usize, n: usize, rate: f64, top: f64, (w, h, pad): (f64, f64, f64)) -> (f64, f64) {
    let x = if n < 2 {
        w / 2.0
    } else {
        pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64
    };
    (x, pad + (h - 2.0 * pad) * (1.0 - (rate / top).min(1.0)))
}

/// The accessible description: every point, oldest first, and the bands.
fn describe(product: &str, pts: &[(&str, f64)], p: &ProductRow) -> String {
    let list: Vec<String> = pts
        .iter()
        .map(|(r, x)| format!("{r} {}", pct(*x)))
        .collect();
    html_attr(&format!(
        "Escape rate of the {} shown releases of {product}, oldest to newest: {}. \
         Band lines: strong below {}, healthy to {}, attention to {}, leaking above.",
        pts.len(),
        list.join(", "),
        pct(p.thresholds.strong),
        pct(p.thresholds.healthy),
        pct(p.thresholds.attention),
    ))
}

/// The trend of a product's shown releases (newest first in `releases`):
/// a polyline oldest → newest, one circle per release with a rate, dashed
/// lines at the band thresholds; nothing without a rate to draw.
pub fn trend(out: &mut String, p: &ProductRow, releases: &[ReleaseRow], regressed: Option<&str>) {
    let pts = points(releases);
    if pts.is_empty() {
        return;
    }
    let (w, h, pad) = (320.0, 90.0, 8.0);
    let top = top(&pts, p);
    let _ = write!(
        out,
        "<svg class=\"trend\" viewBox=\"0 0 {w} {h}\" role=\"img\" data-points=\"{n}\" \
         preserveAspectRatio=\"xMidYMid meet\"><title>{t}</title>",
        n = pts.len(),
        t = describe(&p.product, &pts, p),
    );
    let t = &p.thresholds;
    for (band, at) in [
        ("strong", t.strong),
        ("healthy", t.healthy),
        ("attention", t.attention),
    ] {
        if at < top {
            let (_, y) = xy(0, 1, at, top, (w, h, pad));
            let _ = write!(
                out,
                "<line class=\"threshold {band}\" x1=\"0\" x2=\"{w}\" y1=\"{y:.1}\" y2=\"{y:.1}\">\
                 <title>{band} up to {}</title></line>",
                pct(at)
            );
        }
    }
    let coords: Vec<(f64, f64)> = (0..pts.len())
        .map(|i| xy(i, pts.len(), pts[i].1, top, (w, h, pad)))
        .collect();
    polyline(out, &coords);
    for ((release, rate), (x, y)) in pts.iter().zip(&coords) {
        let small = small(releases, release);
        let class = match (regressed == Some(*release), small) {
            (true, _) => "point regressed",
            (false, true) => "point small",
            (false, false) => "point",
        };
        let _ = write!(
            out,
            "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" data-release=\"{r}\" \
             data-rate=\"{rate}\"><title>{r}: {}{s}</title></circle>",
            pct(*rate),
            r = html_attr(release),
            s = if small { " (small sample)" } else { "" },
        );
    }
    out.push_str("</svg>\n");
}

/// A polyline through `coords`.
fn polyline(out: &mut String, coords: &[(f64, f64)]) {
    let list: Vec<String> = coords
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(
        out,
        "<polyline class=\"line\" points=\"{}\"/>",
        list.join(" ")
    );
}

/// The comparison table's tiny trend: the polyline and the attention line.
pub fn spark(out: &mut String, p: &ProductRow, releases: &[ReleaseRow]) {
    let pts = points(releases);
    if pts.is_empty() {
        out.push('–');
        return;
    }
    let (w, h, pad) = (80.0, 22.0, 2.0);
    let top = top(&pts, p);
    let (_, y) = xy(0, 1, p.thresholds.attention, top, (w, h, pad));
    let _ = write!(
        out,
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" width=\"80\" height=\"22\" role=\"img\" \
         data-points=\"{n}\"><title>{t}</title><line class=\"threshold attention\" x1=\"0\" \
         x2=\"{w}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>",
        n = pts.len(),
        t = describe(&p.product, &pts, p),
    );
    let coords: Vec<(f64, f64)> = (0..pts.len())
        .map(|i| xy(i, pts.len(), pts[i].1, top, (w, h, pad)))
        .collect();
    polyline(out, &coords);
    if let Some((x, y)) = coords.last() {
        let _ = write!(out, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2\"/>");
    }
    out.push_str("</svg>");
}
