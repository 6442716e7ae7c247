//! The escape-rate report: one row per exported release and one per exported
//! product, computed from the same [`Selection`] and [`formula`]s as the
//! gauges, so every number equals its sample on `/metrics`. Shared by the
//! `report` sub-command, `GET /api/v1/releases` and the summary page.

use chrono::SecondsFormat;
use serde::Serialize;

use super::collector::{ProductView, Selection, escaped};
use super::failing::{Failing, failing_stage};
use super::formula;
use super::regression::{self, Regression};
use crate::aggregate::{ReleaseAgg, rank_cmp};
use crate::config::{Bands, Config};
use crate::model::stage::Phase;
use crate::model::time::{format_rfc3339, now_ms};

/// Where an escape rate falls among a product's bands (docs/semantics.md):
/// a rate equal to a bound belongs to the lower band, except at `strong`
/// (exactly the strong bound is healthy), as the recording rules place it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Strong,
    Healthy,
    Attention,
    Leaking,
}

impl Band {
    /// The band of `rate` under `bands`.
    pub fn of(rate: f64, bands: &Bands) -> Self {
        if rate < bands.strong {
            Band::Strong
        } else if rate <= bands.healthy {
            Band::Healthy
        } else if rate <= bands.attention {
            Band::Attention
        } else {
            Band::Leaking
        }
    }

    /// The name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Strong => "strong",
            Band::Healthy => "healthy",
            Band::Attention => "attention",
            Band::Leaking => "leaking",
        }
    }
}

/// Defects of a release found at one configured stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageRow {
    pub stage: String,
    /// `pre_release` or `production`.
    pub phase: &'static str,
    pub defects: u64,
    /// The stage leak `L_k` (tracked pre-release stages that some defect
    /// reached); `null` otherwise.
    pub leak: Option<f64>,
}

/// One exported release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseRow {
    pub product: String,
    pub release: String,
    /// T(R).
    pub defects: u64,
    /// P(R).
    pub escaped: u64,
    /// E(R) = P/T; `null` when T = 0.
    pub escape_rate: Option<f64>,
    /// 95 % Wilson bounds of E(R); `null` when T = 0.
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The band of the point estimate E(R).
    pub band: Option<Band>,
    /// T below the product's `min_defects`: the band is not yet alerted on.
    pub small_sample: bool,
    /// Whether `band` is settled: not a small sample, and the whole 95 %
    /// interval lies in that band. Otherwise the band is only suggested.
    pub band_settled: bool,
    /// The band the release alerts act on: `attention` or `leaking` when
    /// T >= `min_defects` and the interval's lower bound lies above the
    /// healthy (resp. attention) band, the condition of
    /// `BugEscapeReleaseAttention` / `BugEscapeReleaseLeaking`; `null` otherwise.
    pub alert_band: Option<Band>,
    /// RFC 3339, when the release time is known.
    pub released_at: Option<String>,
    /// The tracked pre-release stage with the highest leak above 0 (the
    /// earliest on a tie); `null` when none leaked.
    pub leakiest_stage: Option<String>,
    pub leakiest_stage_leak: Option<f64>,
    pub leakiest_stage_owner: Option<String>,
    /// The failing stage (docs/semantics.md): the tracked pre-release stage
    /// whose leak is furthest above what is expected of it; `null` when no
    /// stage is worse than expected.
    pub failing_stage: Option<String>,
    /// Its leak `L_k(R)`.
    pub failing_stage_leak: Option<f64>,
    /// What was expected of it: its leak target, or its baseline.
    pub failing_stage_expected: Option<f64>,
    /// `target` or `baseline`: where the expectation came from.
    pub failing_stage_basis: Option<&'static str>,
    /// The failing stage's owner for this product.
    pub failing_stage_owner: Option<String>,
    /// Defects per configured stage, in pipeline order (the funnel).
    pub stages: Vec<StageRow>,
}

/// The upper bounds of a product's bands.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub strong: f64,
    pub healthy: f64,
    pub attention: f64,
}

/// One exported product: its pooled recent rate and data quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductRow {
    pub product: String,
    /// ΣT over the recent pool; `null` when the product has no data.
    pub recent_defects: Option<u64>,
    /// ΣP over the recent pool.
    pub recent_escaped: Option<u64>,
    /// ΣP/ΣT; `null` when ΣT = 0.
    pub recent_rate: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// The band of the pooled point estimate.
    pub band: Option<Band>,
    /// ΣT below `min_defects`: the band is not yet alerted on.
    pub small_sample: bool,
    /// Whether `band` is settled (as [`ReleaseRow::band_settled`]).
    pub band_settled: bool,
    /// The band the recent-rate alerts act on (as [`ReleaseRow::alert_band`]).
    pub alert_band: Option<Band>,
    pub thresholds: Thresholds,
    pub min_defects: u64,
    /// Valid defects with no release (all stages).
    pub unattributed: u64,
    /// Valid defects at a stage the configuration does not know.
    pub unknown_stage: u64,
    /// Valid defects with no stage.
    pub no_stage: u64,
    /// Releases with defects not in this report: beyond `max_releases` (as
    /// `bug_escape_releases_left_out`), or beyond `--releases N`.
    pub releases_left_out: usize,
}

#[cfg(test)]
impl ProductRow {
    /// A product without data under the default bands (5/10/20 %,
    /// `min_defects` 10): what tests of the report's readers start from.
    pub(crate) fn without_data(product: &str) -> Self {
        Self {
            product: product.into(),
            recent_defects: None,
            recent_escaped: None,
            recent_rate: None,
            lower: None,
            upper: None,
            band: None,
            small_sample: true,
            band_settled: false,
            alert_band: None,
            thresholds: Thresholds {
                strong: 0.05,
                healthy: 0.1,
                attention: 0.2,
            },
            min_defects: 10,
            unattributed: 0,
            unknown_stage: 0,
            no_stage: 0,
            releases_left_out: 0,
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Exported releases, product by product (export order), newest first.
    pub releases: Vec<ReleaseRow>,
    pub products: Vec<ProductRow>,
}

/// The report of `sel`, restricted to `product` when given.
pub fn build(config: &Config, sel: &Selection<'_>, product: Option<&str>) -> Report {
    let mut releases = Vec::new();
    let mut products = Vec::new();
    for p in sel.products() {
        if product.is_some_and(|want| want != p.name()) {
            continue;
        }
        let bands = config.bands(p.name());
        releases.extend(release_rows(
            config,
            p.name(),
            p.releases(),
            p.releases().len(),
        ));
        products.push(product_row(p, &bands));
    }
    Report { releases, products }
}

/// A product's stored releases, best first (those with defects, then newest),
/// each as `/metrics` would count it were it exported.
pub type Stored = (String, Vec<(String, ReleaseAgg)>);

/// The value of `report --releases` and `GET /api/v1/releases?releases=`:
/// `all` (`None`: every stored release) or a number of releases from 1
/// (the newest that many).
pub fn parse_releases(value: &str) -> Result<Option<usize>, String> {
    if value == "all" {
        return Ok(None);
    }
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(format!(
            "`{value}` is neither `all` nor a number of releases from 1"
        )),
    }
}

/// The report of `sel` (only `product` when given) showing, of each product,
/// the stored releases `stored` holds for it (see
/// `store::read::aggregates_and_history`) in place of its exported ones: the
/// same rows, from the same [`release_rows`]. A product's
/// `releases_left_out` is then the releases with defects not shown.
pub fn build_stored(
    config: &Config,
    sel: &Selection<'_>,
    product: Option<&str>,
    stored: &[Stored],
) -> Report {
    let mut releases = Vec::new();
    let mut products = Vec::new();
    for p in sel.products() {
        if product.is_some_and(|want| want != p.name()) {
            continue;
        }
        let mut own: Vec<(&str, &ReleaseAgg)> = stored
            .iter()
            .find(|(name, _)| name == p.name())
            .map(|(_, v)| v.iter().map(|(n, r)| (n.as_str(), r)).collect())
            .unwrap_or_default();
        // Newest first, as the exported releases are listed.
        own.sort_by(|a, b| rank_cmp((true, a.1.order_time(), a.0), (true, b.1.order_time(), b.0)));
        releases.extend(release_rows(config, p.name(), &own, own.len()));
        let mut row = product_row(p, &config.bands(p.name()));
        let with_data = p.agg().map_or(0, |a| {
            a.releases.values().filter(|r| r.total() > 0).count() as u64 + a.cold.with_data
        });
        let shown = own.iter().filter(|(_, r)| r.total() > 0).count() as u64;
        row.releases_left_out = with_data.saturating_sub(shown) as usize;
        products.push(row);
    }
    Report { releases, products }
}

/// One product of a [`Report`] with its own releases.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductReport {
    pub product: ProductRow,
    /// Its newest exported releases, newest first.
    pub releases: Vec<ReleaseRow>,
    /// Of those releases, the one that regressed most against the releases
    /// before it at the same age ([`regression`]).
    pub regression: Option<Regression>,
}

/// The rows of the products of `sel` (export order), each with its newest
/// `releases` releases: what a page of the summary shows (from
/// [`select_range`](super::collector::select_range)). Costs only the rows it
/// returns.
pub fn build_products(config: &Config, sel: &Selection<'_>, releases: usize) -> Vec<ProductReport> {
    product_rows(config, sel)
        .into_iter()
        .zip(sel.products())
        .map(|(row, p)| build_product(config, p, row, releases))
        .collect()
}

/// The product rows of `sel` (export order), without release rows: cheap
/// enough for every exported product (the summary orders them by these).
pub fn product_rows(config: &Config, sel: &Selection<'_>) -> Vec<ProductRow> {
    sel.products()
        .iter()
        .map(|p| product_row(p, &config.bands(p.name())))
        .collect()
}

/// The rows of the first `n` of a product's releases (`releases`, newest
/// first), each with its failing stage judged against the releases after it.
pub fn release_rows(
    config: &Config,
    product: &str,
    releases: &[(&str, &ReleaseAgg)],
    n: usize,
) -> Vec<ReleaseRow> {
    let bands = config.bands(product);
    let counts: Vec<&[u64]> = releases.iter().map(|(_, r)| r.stages()).collect();
    releases
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, (release, r))| {
            let failing = failing_stage(config, product, counts[i], &counts[i + 1..]);
            release_row(config, product, release, r, &bands, failing)
        })
        .collect()
}

/// Product `p` (whose row is `row`) with its newest `releases` releases and
/// the most regressed of them, now.
pub fn build_product(
    config: &Config,
    p: &ProductView<'_>,
    row: ProductRow,
    releases: usize,
) -> ProductReport {
    ProductReport {
        product: row,
        releases: release_rows(config, p.name(), p.releases(), releases),
        regression: regression::of_product(config, p, releases, now_ms()),
    }
}

/// The row of `product`'s release `release`.
fn release_row(
    config: &Config,
    product: &str,
    release: &str,
    r: &ReleaseAgg,
    bands: &Bands,
    failing: Option<Failing>,
) -> ReleaseRow {
    let stages = config.pipeline.stages();
    let (t, e) = (r.total(), escaped(config, r));
    let rate = formula::rate(e, t);
    let wilson = formula::wilson(e, t);
    let rows: Vec<StageRow> = stages
        .iter()
        .enumerate()
        .map(|(k, s)| StageRow {
            stage: s.name.clone(),
            phase: s.phase.as_str(),
            defects: r.stages()[k],
            leak: (s.phase == Phase::PreRelease && s.tracked)
                .then(|| formula::stage_leak(r.stages(), k))
                .flatten(),
        })
        .collect();
    let leakiest = rows
        .iter()
        .enumerate()
        .filter_map(|(k, s)| Some((k, s.leak?)))
        .filter(|(_, l)| *l > 0.0)
        .fold(None, |best: Option<(usize, f64)>, (k, l)| match best {
            Some((_, b)) if b >= l => best,
            _ => Some((k, l)),
        });
    ReleaseRow {
        product: product.to_owned(),
        release: release.to_owned(),
        defects: t,
        escaped: e,
        escape_rate: rate,
        lower: wilson.map(|w| w.0),
        upper: wilson.map(|w| w.1),
        band: rate.map(|x| Band::of(x, bands)),
        small_sample: t < bands.min_defects,
        band_settled: settled(wilson, t, bands),
        alert_band: alerted(wilson, t, bands),
        released_at: r
            .release_time
            .and_then(|t| format_rfc3339(t, SecondsFormat::AutoSi)),
        leakiest_stage: leakiest.map(|(k, _)| stages[k].name.clone()),
        leakiest_stage_leak: leakiest.map(|(_, l)| l),
        leakiest_stage_owner: leakiest.map(|(k, _)| config.stage_owner(product, k).to_owned()),
        failing_stage: failing.map(|f| stages[f.stage].name.clone()),
        failing_stage_leak: failing.map(|f| f.leak),
        failing_stage_expected: failing.map(|f| f.expected),
        failing_stage_basis: failing.map(|f| f.basis.as_str()),
        failing_stage_owner: failing.map(|f| config.stage_owner(product, f.stage).to_owned()),
        stages: rows,
    }
}

/// Whether a rate with interval `wilson` from `t` defects has a settled band:
/// enough defects, and both bounds in one band.
fn settled(wilson: Option<(f64, f64)>, t: u64, bands: &Bands) -> bool {
    t >= bands.min_defects
        && wilson.is_some_and(|(lo, hi)| Band::of(lo, bands) == Band::of(hi, bands))
}

/// The band the band alerts act on: the band of the lower bound when it is
/// `attention` or `leaking` and the sample is large enough.
fn alerted(wilson: Option<(f64, f64)>, t: u64, bands: &Bands) -> Option<Band> {
    let (lo, _) = wilson.filter(|_| t >= bands.min_defects)?;
    Some(Band::of(lo, bands)).filter(|b| matches!(b, Band::Attention | Band::Leaking))
}

/// The row of product `p`: its recent pool and data quality.
fn product_row(p: &ProductView<'_>, bands: &Bands) -> ProductRow {
    let pool = p.pool();
    let recent_rate = pool.and_then(|(e, t)| formula::rate(e, t));
    let wilson = pool.and_then(|(e, t)| formula::wilson(e, t));
    let agg = p.agg();
    ProductRow {
        product: p.name().to_owned(),
        recent_defects: pool.map(|(_, t)| t),
        recent_escaped: pool.map(|(e, _)| e),
        recent_rate,
        lower: wilson.map(|w| w.0),
        upper: wilson.map(|w| w.1),
        band: recent_rate.map(|x| Band::of(x, bands)),
        small_sample: pool.is_none_or(|(_, t)| t < bands.min_defects),
        band_settled: pool.is_some_and(|(_, t)| settled(wilson, t, bands)),
        alert_band: pool.and_then(|(_, t)| alerted(wilson, t, bands)),
        thresholds: Thresholds {
            strong: bands.strong,
            healthy: bands.healthy,
            attention: bands.attention,
        },
        min_defects: bands.min_defects,
        unattributed: agg.map_or(0, |a| a.unattributed.iter().sum()),
        unknown_stage: agg.map_or(0, |a| a.unknown_stage),
        no_stage: agg.map_or(0, |a| a.no_stage),
        releases_left_out: p.left_out(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{Aggregates, Class, Contribution};
    use crate::config::Settings;
    use crate::metrics::collector::{select, select_range};

    fn bands() -> Bands {
        Bands {
            strong: 0.05,
            healthy: 0.10,
            attention: 0.20,
            min_defects: 10,
        }
    }

    #[test]
    fn bands_follow_the_recording_rules_at_their_edges() {
        let b = bands();
        assert_eq!(Band::of(0.0, &b), Band::Strong);
        assert_eq!(Band::of(0.049_999, &b), Band::Strong);
        assert_eq!(Band::of(0.05, &b), Band::Healthy);
        assert_eq!(Band::of(0.10, &b), Band::Healthy);
        assert_eq!(Band::of(0.100_001, &b), Band::Attention);
        assert_eq!(Band::of(0.20, &b), Band::Attention);
        assert_eq!(Band::of(0.200_001, &b), Band::Leaking);
        assert_eq!(Band::of(1.0, &b), Band::Leaking);
    }

    #[test]
    fn a_band_is_settled_only_when_the_interval_lies_in_it_as_the_alerts_ask() {
        let b = bands();
        // 25 % of 12 (interval 8.9-53.2 %): suggested leaking, no alert.
        let w = formula::wilson(3, 12);
        assert!(!settled(w, 12, &b));
        assert_eq!(alerted(w, 12, &b), None);
        // 30 % of 1,000: settled leaking, the leaking alert's evidence.
        let w = formula::wilson(300, 1000);
        assert!(settled(w, 1000, &b));
        assert_eq!(alerted(w, 1000, &b), Some(Band::Leaking));
        // 18 % of 400: lower bound in attention, upper in leaking.
        let w = formula::wilson(72, 400);
        assert!(!settled(w, 400, &b));
        assert_eq!(alerted(w, 400, &b), Some(Band::Attention));
        // A narrow interval under 10 defects is still a small sample.
        assert!(!settled(formula::wilson(0, 9), 9, &b));
        assert_eq!(alerted(formula::wilson(9, 9), 9, &b), None);
    }

    fn config() -> Config {
        Config::from_settings(Settings::default()).unwrap()
    }

    fn add(agg: &mut Aggregates, product: &str, release: Option<&str>, stage: &str, n: usize) {
        let config = config();
        let k = config.pipeline.index(stage).unwrap();
        for i in 0..n {
            agg.add(&Contribution {
                product: product.into(),
                release: release.map(str::to_owned),
                class: Class::Stage(k),
                found_at: 1_000 + i as i64,
                cause: 0,
                detector: 0,
                severity: 0,
            });
        }
    }

    #[test]
    fn rows_carry_rates_bounds_bands_and_the_leakiest_stage() {
        let config = config();
        let mut agg = Aggregates::new(&config);
        // 2.0: development 6, code_review 2, automated_tests 2, qa 6,
        // production 2: E = 2/18. Leaks: development 12/18, code_review 10/12,
        // automated_tests 8/10, qa 2/8.
        for (stage, n) in [
            ("development", 6),
            ("code_review", 2),
            ("automated_tests", 2),
            ("qa", 6),
            ("production", 2),
        ] {
            add(&mut agg, "pay", Some("2.0"), stage, n);
        }
        add(&mut agg, "pay", None, "qa", 3);
        let sel = select(&config, &agg);
        let report = build(&config, &sel, None);
        let r = &report.releases[0];
        assert_eq!((r.defects, r.escaped), (18, 2));
        assert_eq!(r.escape_rate, Some(2.0 / 18.0));
        assert_eq!(r.band, Some(Band::Attention));
        let (lo, hi) = formula::wilson(2, 18).unwrap();
        assert_eq!((r.lower, r.upper), (Some(lo), Some(hi)));
        assert_eq!(r.leakiest_stage.as_deref(), Some("code_review"));
        assert_eq!(r.leakiest_stage_leak, Some(10.0 / 12.0));
        assert_eq!(
            r.leakiest_stage_owner.as_deref(),
            Some(config.stage_owner("pay", 1))
        );
        assert_eq!(r.stages[3].defects, 6);
        assert_eq!(r.stages[4].leak, None, "production has no leak");
        assert!(!r.small_sample);
        let p = &report.products[0];
        assert_eq!((p.recent_defects, p.recent_escaped), (Some(18), Some(2)));
        assert_eq!(p.unattributed, 3);
        assert_eq!(p.band, Some(Band::Attention));
        // Filtered to another product: nothing.
        let none = build(&config, &sel, Some("other"));
        assert!(none.releases.is_empty() && none.products.is_empty());
    }

    #[test]
    fn rows_name_the_failing_stage_against_the_releases_before_them() {
        let config = config();
        let mut agg = Aggregates::new(&config);
        // 1.0-3.0: qa lets 4 of 20 through; 4.0: 15 of 20 (baseline 0.2).
        for (release, qa, production) in [
            ("1.0", 16, 4),
            ("2.0", 16, 4),
            ("3.0", 16, 4),
            ("4.0", 5, 15),
        ] {
            for (stage, n) in [
                ("code_review", 10),
                ("automated_tests", 10),
                ("qa", qa),
                ("production", production),
            ] {
                add(&mut agg, "pay", Some(release), stage, n);
            }
        }
        let report = build(&config, &select(&config, &agg), None);
        let names: Vec<&str> = report.releases.iter().map(|r| r.release.as_str()).collect();
        assert_eq!(names, ["4.0", "3.0", "2.0", "1.0"]);
        let r = &report.releases[0];
        assert_eq!(r.failing_stage.as_deref(), Some("qa"));
        assert_eq!(
            (r.failing_stage_leak, r.failing_stage_expected),
            (Some(0.75), Some(0.2))
        );
        assert_eq!(r.failing_stage_basis, Some("baseline"));
        assert_eq!(r.failing_stage_owner.as_deref(), Some("qa"));
        // The others do as the ones before them (or have too few before them).
        assert!(
            report.releases[1..]
                .iter()
                .all(|r| r.failing_stage.is_none())
        );
    }

    #[test]
    fn ties_name_the_earliest_stage_and_no_data_gives_nulls() {
        let config = config();
        let mut agg = Aggregates::new(&config);
        add(&mut agg, "pay", Some("1.0"), "qa", 1);
        let sel = select(&config, &agg);
        let r = &build(&config, &sel, None).releases[0];
        // Everything caught at qa: qa leaked nothing, every earlier tracked
        // stage let it through (leak 1); on a tie the earliest is named
        // (development is untracked by default).
        assert_eq!(r.leakiest_stage.as_deref(), Some("code_review"));
        assert_eq!(r.leakiest_stage_leak, Some(1.0));
        assert_eq!(r.escape_rate, Some(0.0));
        assert_eq!(r.band, Some(Band::Strong));
        assert!(r.small_sample);
        let json = serde_json::to_value(build(&config, &sel, Some("pay"))).unwrap();
        assert_eq!(json["products"][0]["product"], "pay");
        let empty = Aggregates::new(&config);
        let sel = select(&config, &empty);
        let report = build(&config, &sel, None);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["products"][0]["recent_rate"].is_null(), "{json}");
        assert!(json["products"][0]["band"].is_null(), "{json}");
    }

    #[test]
    fn a_page_of_products_has_the_rows_of_the_whole_report() {
        let config = config();
        let mut agg = Aggregates::new(&config);
        for (i, product) in ["a", "b", "c", "d"].iter().enumerate() {
            for (release, n) in [("1.0", 1 + i), ("2.0", 2), ("3.0", 3)] {
                add(&mut agg, product, Some(release), "qa", n);
            }
            add(&mut agg, product, Some("3.0"), "production", i);
        }
        let full = build(&config, &select(&config, &agg), None);
        let page = select_range(&config, &agg, 1..3);
        assert_eq!(page.exported(), 4);
        assert_eq!(page.products().len(), 2);
        let rows = build_products(&config, &page, 2);
        for (k, row) in rows.iter().enumerate() {
            assert_eq!(row.product, full.products[k + 1]);
            let own: Vec<&ReleaseRow> = full
                .releases
                .iter()
                .filter(|r| r.product == row.product.product)
                .take(2)
                .collect();
            assert_eq!(row.releases.iter().collect::<Vec<_>>(), own);
        }
        let past = select_range(&config, &agg, 8..10);
        assert!(past.products().is_empty());
        assert_eq!(past.exported(), 4);
    }
}
