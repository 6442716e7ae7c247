//! The table of every escape-rate family in exposition order: each row's
//! name, help text and the [`Rows`] that says which labels it has and how a
//! sample's value is read from the aggregates.

use super::{Dim, Rows, escaped};
use crate::config::Config;
use crate::metrics::formula;

/// Every family, in exposition order: `(name, help, rows)`.
pub(super) static FAMILIES: &[(&str, &str, Rows)] = &[
    // Per release.
    (
        "bug_escape_rate_ratio",
        "Escape rate E(R) = P(R)/T(R) of a release",
        Rows::Release(|c, a| formula::rate(escaped(c.config, a), a.total())),
    ),
    (
        "bug_escape_rate_lower_ratio",
        "Lower bound of the 95% Wilson interval of E(R)",
        Rows::Release(|c, a| formula::wilson(escaped(c.config, a), a.total()).map(|w| w.0)),
    ),
    (
        "bug_escape_rate_upper_ratio",
        "Upper bound of the 95% Wilson interval of E(R)",
        Rows::Release(|c, a| formula::wilson(escaped(c.config, a), a.total()).map(|w| w.1)),
    ),
    (
        "bug_escape_release_defects",
        "T(R): valid defects introduced by the release",
        Rows::Release(|_, a| Some(a.total() as f64)),
    ),
    (
        "bug_escape_release_escaped_defects",
        "P(R): valid defects of the release found in production",
        Rows::Release(|c, a| Some(escaped(c.config, a) as f64)),
    ),
    (
        "bug_escape_release_timestamp_seconds",
        "When the release shipped, when known",
        Rows::Release(|_, a| a.release_time.map(|t| t as f64 / 1000.0)),
    ),
    (
        "bug_escape_release_rank",
        "Place of the release among its product's exported releases, 0 the newest",
        Rows::Rank,
    ),
    (
        "bug_escape_defects",
        "Valid defects of a release found at each stage",
        Rows::ReleaseBy(Dim::Stage, |_, a, i| Some(a.stages()[i] as f64)),
    ),
    (
        "bug_escape_stage_leak_ratio",
        "L_k(R): of the defects that reached a tracked pre-release stage, the share it did not catch",
        Rows::ReleaseBy(Dim::LeakStage, |_, a, k| formula::stage_leak(a.stages(), k)),
    ),
    (
        "bug_escape_escaped_defects_by_cause",
        "Production defects of a release by cause",
        Rows::ReleaseBy(Dim::Cause, |_, a, i| Some(a.causes()[i] as f64)),
    ),
    (
        "bug_escape_escaped_defects_by_detector",
        "Production defects of a release by who detected them",
        Rows::ReleaseBy(Dim::Detector, |_, a, i| Some(a.detectors()[i] as f64)),
    ),
    (
        "bug_escape_escaped_defects_by_severity",
        "Production defects of a release by severity",
        Rows::ReleaseBy(Dim::Severity, |_, a, i| Some(a.severities()[i] as f64)),
    ),
    (
        "bug_escape_rate_at_age_ratio",
        "E_age(R): escape rate counting only defects found up to that age after the release time",
        Rows::ReleaseBy(Dim::Age, |c, a, i| {
            if !c.matured(a, i) {
                return None;
            }
            let [total, production] = a.at_age(i);
            formula::rate(production, total)
        }),
    ),
    (
        "bug_escape_release_defects_at_age",
        "Valid defects of a release found up to that age after the release time, once it is that old",
        Rows::ReleaseBy(Dim::Age, |c, a, i| {
            c.matured(a, i).then(|| a.at_age(i)[0] as f64)
        }),
    ),
    (
        "bug_escape_escaped_defects_at_age_by_detector",
        "Production defects of a release found up to that age after the release time, by who detected them, once it is that old",
        Rows::ReleaseBy2(Dim::Age, Dim::Detector, |c, a, i, d| {
            c.matured(a, i).then(|| a.at_age_detectors(i)[d] as f64)
        }),
    ),
    (
        "bug_escape_release_failing_stage_info",
        "The failing stage of a release: the tracked pre-release stage whose leak is furthest above its target or baseline (value 1)",
        Rows::FailingStage,
    ),
    // Per product.
    (
        "bug_escape_recent_rate_ratio",
        "Pooled escape rate over the product's most recent releases",
        Rows::Product(|_, p| p.pool.and_then(|(e, t)| formula::rate(e, t))),
    ),
    (
        "bug_escape_recent_rate_lower_ratio",
        "Lower 95% Wilson bound of the pooled recent rate",
        Rows::Product(|_, p| p.pool.and_then(|(e, t)| formula::wilson(e, t)).map(|w| w.0)),
    ),
    (
        "bug_escape_recent_rate_upper_ratio",
        "Upper 95% Wilson bound of the pooled recent rate",
        Rows::Product(|_, p| p.pool.and_then(|(e, t)| formula::wilson(e, t)).map(|w| w.1)),
    ),
    (
        "bug_escape_recent_defects",
        "Defects pooled into the recent rate",
        Rows::Product(|_, p| p.pool.map(|(_, t)| t as f64)),
    ),
    (
        "bug_escape_unattributed_defects",
        "Valid defects with no release, by stage (left out of every rate)",
        Rows::ProductBy(Dim::Stage, |_, p, i| {
            Some(p.agg.map_or(0, |a| a.unattributed[i]) as f64)
        }),
    ),
    (
        "bug_escape_unclassified_defects",
        "Valid defects left out of every count because their stage is missing or not configured",
        Rows::ProductBy(Dim::Reason, |_, p, i| {
            let (unknown, none) = p.agg.map_or((0, 0), |a| (a.unknown_stage, a.no_stage));
            Some([unknown, none][i] as f64)
        }),
    ),
    (
        "bug_escape_linked_records",
        "Records folded into link groups: counted once, with the records they link to (by the product of the record)",
        Rows::Product(|c, p| Some(c.linked.get(p.name).copied().unwrap_or(0) as f64)),
    ),
    (
        "bug_escape_releases_left_out",
        "Releases of the product that have defects but are not exported (beyond max_releases)",
        Rows::Product(|_, p| Some(p.left_out as f64)),
    ),
    (
        "bug_escape_products_left_out",
        "Products not exported (beyond max_products)",
        Rows::Scalar(|c| c.sel.products_left_out as f64),
    ),
    // Configuration as data.
    (
        "bug_escape_stage_info",
        "Configured stages (value 1)",
        Rows::StageInfo,
    ),
    (
        "bug_escape_stage_owner_info",
        "Owner of each stage per product (value 1)",
        Rows::Owner(Dim::Stage, Config::stage_owner),
    ),
    (
        "bug_escape_cause_owner_info",
        "Owner of each cause per product (value 1)",
        Rows::Owner(Dim::Cause, Config::cause_owner),
    ),
    (
        "bug_escape_band_threshold_ratio",
        "Upper bound of each band per product",
        Rows::ProductBy(Dim::Band, |c, p, i| {
            let b = c.config.bands(p.name);
            Some([b.strong, b.healthy, b.attention][i])
        }),
    ),
    (
        "bug_escape_stage_leak_target_ratio",
        "Leak target of a stage per product, where set",
        Rows::ProductBy(Dim::LeakStage, |c, p, i| c.config.leak_target(p.name, i)),
    ),
    (
        "bug_escape_min_defects",
        "Minimum sample T(R) before band alerts apply, per product",
        Rows::Product(|c, p| Some(c.config.bands(p.name).min_defects as f64)),
    ),
    (
        "bug_escape_volume_drop_threshold_ratio",
        "Fraction of the trailing median defect volume at equal age below which a release counts as under-reported, per product",
        Rows::Product(|c, p| Some(c.config.under_reporting(p.name).drop_ratio)),
    ),
    (
        "bug_escape_volume_min_predecessors",
        "Earlier releases at the same age needed before a volume drop is judged, per product",
        Rows::Product(|c, p| Some(c.config.under_reporting(p.name).min_predecessors as f64)),
    ),
];
