//! The band badge of a rate, in the one band language of the report and
//! the alerts (docs/semantics.md, "How a band is shown"): solid when
//! settled, dashed with `?` when only the point estimate suggests it, the
//! alert that fires, and the small-sample marker.

use std::fmt::Write;

use super::pct;
use crate::config::Bands;
use crate::metrics::report::{Band, ProductRow, ReleaseRow, Thresholds};

/// What a badge rests on: the rate's band, whether it is settled, its
/// interval and sample, the product's bands.
pub(super) struct Evidence {
    band: Option<Band>,
    settled: bool,
    alert: Option<Band>,
    interval: Option<(f64, f64)>,
    defects: u64,
    bands: Bands,
}

impl Evidence {
    pub(super) fn of_product(p: &ProductRow) -> Self {
        Self {
            band: p.band,
            settled: p.band_settled,
            alert: p.alert_band,
            interval: p.lower.zip(p.upper),
            defects: p.recent_defects.unwrap_or(0),
            bands: bands(&p.thresholds, p.min_defects),
        }
    }

    pub(super) fn of_release(r: &ReleaseRow, p: &ProductRow) -> Self {
        Self {
            band: r.band,
            settled: r.band_settled,
            alert: r.alert_band,
            interval: r.lower.zip(r.upper),
            defects: r.defects,
            bands: bands(&p.thresholds, p.min_defects),
        }
    }
}

fn bands(t: &Thresholds, min_defects: u64) -> Bands {
    Bands {
        strong: t.strong,
        healthy: t.healthy,
        attention: t.attention,
        min_defects,
    }
}

/// The band badge: solid when settled, dashed with `?` when only the point
/// estimate suggests it (the title says why); the alert that fires when it
/// is not the settled band's; `no data` without a rate.
pub(super) fn badge(e: &Evidence) -> String {
    let Some(band) = e.band else {
        return "<span class=\"badge\" data-band=\"none\">no data</span>".to_owned();
    };
    let b = band.as_str();
    let mut html = if e.settled {
        let why = e.interval.map_or(String::new(), |(lo, hi)| {
            format!(
                "settled: the whole 95 % interval ({}–{}) lies in the {b} band",
                pct(lo),
                pct(hi)
            )
        });
        format!(
            "<span class=\"badge {b} settled\" data-band=\"{b}\" data-settled=\"true\" \
             title=\"{why}\">{b}</span>"
        )
    } else {
        let why = uncertain_why(band, e);
        format!(
            "<span class=\"badge {b} uncertain\" data-band=\"{b}\" data-settled=\"false\" \
             title=\"{why}\" aria-label=\"{b}? {why}\">{b}?</span>"
        )
    };
    if let Some(a) = e.alert.filter(|a| !(e.settled && *a == band)) {
        let a = a.as_str();
        let _ = write!(
            html,
            " <span class=\"alert {a}\" data-alert=\"{a}\" title=\"the {a} alert fires: the \
             interval's lower bound is above the band below {a}\">&#9873;&#xa0;{a} alert</span>"
        );
    }
    html
}

/// Why a band is uncertain: too few defects, or an interval over several bands.
fn uncertain_why(band: Band, e: &Evidence) -> String {
    let b = band.as_str();
    let mut why = format!("uncertain: the point estimate suggests {b}");
    if e.defects < e.bands.min_defects {
        let _ = write!(
            why,
            "; {} defects, fewer than min_defects ({})",
            e.defects, e.bands.min_defects
        );
    }
    if let Some((lo, hi)) = e.interval {
        let (from, to) = (Band::of(lo, &e.bands), Band::of(hi, &e.bands));
        let _ = write!(why, "; the 95 % interval spans {}–{}", pct(lo), pct(hi));
        if from != to {
            let _ = write!(why, " ({} to {})", from.as_str(), to.as_str());
        }
    }
    match e.alert {
        Some(a) if a == band => {
            let _ = write!(
                why,
                "; the {b} alert fires (the lower bound is past the band below)"
            );
        }
        Some(a) => {
            let _ = write!(why, "; the {} alert fires, no {b} alert yet", a.as_str());
        }
        None => why.push_str("; no alert yet"),
    }
    why
}

/// The small-sample marker of a rate from `defects` defects, when fewer
/// than `min_defects`.
pub(super) fn small_sample(defects: u64, min_defects: u64) -> String {
    if defects >= min_defects {
        return String::new();
    }
    format!(
        " <small class=\"small-sample\" title=\"{defects} defects, fewer than min_defects \
         ({min_defects}): no alert yet\">small sample</small>"
    )
}
