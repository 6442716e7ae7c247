//! Encodes the aggregates as the gauges of docs/metrics.md on every scrape. Work here is
//! proportional to the series exported: it reads counts, never defects.
//!
//! Every family is one row of `families::FAMILIES`: its name, help and a
//! `Rows` that says which labels it has and how each sample's value is read.

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::aggregate::{Aggregates, ProductAgg, ReleaseAgg};
use crate::config::Config;
use crate::model::event::DETECTORS;
use crate::model::stage::Phase;
use crate::model::time::{Millis, now_ms};
use families::FAMILIES;

/// The scrape-time collector of the escape-rate gauges.
#[derive(Debug)]
pub struct EscapeCollector {
    config: Arc<Config>,
    aggregates: Arc<RwLock<Aggregates>>,
}

impl EscapeCollector {
    /// A collector over `aggregates`.
    pub fn new(config: Arc<Config>, aggregates: Arc<RwLock<Aggregates>>) -> Self {
        Self { config, aggregates }
    }
}

/// One exported product: its releases, newest first, capped.
pub struct ProductView<'a> {
    name: &'a str,
    agg: Option<&'a ProductAgg>,
    releases: Vec<(&'a str, &'a ReleaseAgg)>,
    /// Releases with defects that were not exported.
    left_out: usize,
    /// `(ΣP, ΣT)` of the recent pool, when the product has aggregates.
    pool: Option<(u64, u64)>,
}

/// Products and releases chosen for export, with the counts left out.
pub struct Selection<'a> {
    products: Vec<ProductView<'a>>,
    products_left_out: usize,
    /// Products exported: all of `products`, or more when [`select_range`]
    /// built the views of some of them only.
    exported: usize,
}

impl<'a> Selection<'a> {
    /// The exported products, in export order (pinned first).
    pub fn products(&self) -> &[ProductView<'a>] {
        &self.products
    }

    /// Products not exported (beyond `max_products`).
    pub fn products_left_out(&self) -> usize {
        self.products_left_out
    }

    /// Products exported (those of [`Selection::products`] and, after
    /// [`select_range`], those outside its range).
    pub fn exported(&self) -> usize {
        self.exported
    }
}

impl<'a> ProductView<'a> {
    /// The product's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Its counts, when it has any (a product known only from the
    /// configuration has none).
    pub fn agg(&self) -> Option<&'a ProductAgg> {
        self.agg
    }

    /// The exported releases, newest first.
    pub fn releases(&self) -> &[(&'a str, &'a ReleaseAgg)] {
        &self.releases
    }

    /// Releases with defects that were not exported.
    pub fn left_out(&self) -> usize {
        self.left_out
    }

    /// `(ΣP, ΣT)` of the recent pool, when the product has aggregates.
    pub fn pool(&self) -> Option<(u64, u64)> {
        self.pool
    }
}

/// Newest first: by release time, else first defect found; then by name.
fn newest_first(a: &(&str, &ReleaseAgg), b: &(&str, &ReleaseAgg)) -> std::cmp::Ordering {
    b.1.order_time()
        .cmp(&a.1.order_time())
        .then_with(|| b.0.cmp(a.0))
}

/// `(ΣP, ΣT)` over the first `n` of `releases` (newest first, with defects).
fn pooled<'a>(
    config: &Config,
    releases: impl IntoIterator<Item = &'a (&'a str, &'a ReleaseAgg)>,
    n: usize,
) -> (u64, u64) {
    releases.into_iter().take(n).fold((0, 0), |(e, t), (_, r)| {
        (e + escaped(config, r), t + r.total())
    })
}

/// A product's exported releases in rank order (defects first, then newest):
/// the first `max_releases`, read from its resident releases, which always
/// hold the first `keep` of them.
fn ranked<'a>(config: &Config, p: &'a ProductAgg) -> Vec<(&'a str, &'a ReleaseAgg)> {
    p.releases
        .first_ranked(config.max_releases.max(config.recent_releases))
}

/// The order products are exported in: pinned first (in their configured
/// order), then by their newest release with defects, then by the newest of
/// their exported releases (so a product known only by release times never
/// displaces one with data), then by name.
type ProductKey<'a> = (
    usize,
    std::cmp::Reverse<Option<Millis>>,
    std::cmp::Reverse<Option<Millis>>,
    &'a str,
);

/// Chooses what is exported: pinned products first, then the most recently
/// active, up to `max_products`. Of each product, the newest `max_releases`
/// releases that have defects; slots they leave free go to the newest releases
/// known only by their release time (so their timestamps can annotate graphs),
/// which never displace a release with defects. Work is proportional to the
/// resident releases and products, never to the stored history.
pub fn select<'a>(config: &'a Config, agg: &'a Aggregates) -> Selection<'a> {
    select_range(config, agg, 0..usize::MAX)
}

/// Like [`select`], building the views (releases, pool) of the exported
/// products at `range` of the export order only: a page of the summary costs
/// the ordering of the products, not a view of each.
pub fn select_range<'a>(
    config: &'a Config,
    agg: &'a Aggregates,
    range: std::ops::Range<usize>,
) -> Selection<'a> {
    // One pass over the products computing only their sort keys (no
    // allocation per product): a scrape with 150,000 products stays cheap.
    let key = |name: &'a str, p: Option<&'a ProductAgg>| -> ProductKey<'a> {
        let pinned = config.pinned_products.iter().position(|q| q == name);
        let (latest_data, latest) = p.map_or((None, None), |p| p.times(config.max_releases));
        (
            pinned.unwrap_or(usize::MAX),
            std::cmp::Reverse(latest_data),
            std::cmp::Reverse(latest),
            name,
        )
    };
    let mut keyed: Vec<(ProductKey, Option<&ProductAgg>)> = agg
        .products
        .iter()
        .map(|(name, p)| (key(name, Some(p)), Some(p)))
        .collect();
    // Configured products without data, each once (a set, not a scan of
    // `keyed` per name: thousands of configured products stay linear).
    let mut configured = std::collections::HashSet::new();
    for p in config.products.keys().chain(&config.pinned_products) {
        if !agg.products.contains_key(p.as_str()) && configured.insert(p.as_str()) {
            keyed.push((key(p, None), None));
        }
    }
    if keyed.is_empty() {
        keyed.push((key(&config.default_product, None), None));
    }
    let products_left_out = keyed.len().saturating_sub(config.max_products);
    if keyed.len() > config.max_products && config.max_products > 0 {
        keyed.select_nth_unstable_by(config.max_products - 1, |a, b| a.0.cmp(&b.0));
    }
    keyed.truncate(config.max_products);
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let exported = keyed.len();
    let products = keyed
        .into_iter()
        .skip(range.start)
        .take(range.end.saturating_sub(range.start))
        .map(|(key, p)| {
            let name = key.3;
            let mut releases = p.map(|p| ranked(config, p)).unwrap_or_default();
            let with_data = releases.partition_point(|(_, r)| r.total() > 0);
            let pool = p.map(|_| pooled(config, &releases[..with_data], config.recent_releases));
            let all_with_data = p.map_or(0, |p| {
                p.releases.values().filter(|r| r.total() > 0).count() as u64 + p.cold.with_data
            });
            let left_out = all_with_data.saturating_sub(config.max_releases as u64) as usize;
            releases.truncate(config.max_releases);
            releases.sort_by(newest_first);
            ProductView {
                name,
                agg: p,
                releases,
                left_out,
                pool,
            }
        })
        .collect();
    Selection {
        products,
        products_left_out,
        exported,
    }
}

/// `(ΣP, ΣT)` over a product's newest `n` releases that have defects.
pub fn recent_pool(config: &Config, p: &ProductAgg, n: usize) -> (u64, u64) {
    let releases = ranked(config, p);
    let with_data = releases.partition_point(|(_, r)| r.total() > 0);
    pooled(config, &releases[..with_data], n)
}

/// P(R): valid defects found in production stages.
pub fn escaped(config: &Config, r: &ReleaseAgg) -> u64 {
    r.stages()
        .iter()
        .enumerate()
        .filter(|(i, _)| config.pipeline.is_production(*i))
        .map(|(_, n)| n)
        .sum()
}

/// A label value written with the escapes of the text formats (`\\`, `\"`,
/// `\n`): `prometheus-client` writes `&str` values as they are, and release or
/// product names come from users.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        let mut rest = self.0;
        while let Some(i) = rest.find(['\\', '"', '\n']) {
            encoder.write_str(&rest[..i])?;
            encoder.write_str(match rest.as_bytes()[i] {
                b'\\' => "\\\\",
                b'"' => "\\\"",
                _ => "\\n",
            })?;
            rest = &rest[i + 1..];
        }
        encoder.write_str(rest)
    }
}

/// A label whose values come from the configuration: each value with the index
/// the aggregates keep its counts under.
#[derive(Debug, Clone, Copy)]
enum Dim {
    /// Every configured stage, `stage`.
    Stage,
    /// Tracked pre-release stages, `stage`.
    LeakStage,
    /// Configured causes, `cause`.
    Cause,
    /// Detectors and `unknown`, `detected_by`.
    Detector,
    /// Configured severities and `unknown`, `severity`.
    Severity,
    /// Configured maturity ages, `age`.
    Age,
    /// `unknown_stage`, `no_stage`: `reason`.
    Reason,
    /// `strong`, `healthy`, `attention`: `band`.
    Band,
}

impl Dim {
    fn key(self) -> &'static str {
        match self {
            Dim::Stage | Dim::LeakStage => "stage",
            Dim::Cause => "cause",
            Dim::Detector => "detected_by",
            Dim::Severity => "severity",
            Dim::Age => "age",
            Dim::Reason => "reason",
            Dim::Band => "band",
        }
    }
}

/// How a family's samples are laid out and read; values of `None` are left out.
enum Rows {
    /// `{product, release}` for each exported release.
    Release(fn(&Ctx, &ReleaseAgg) -> Option<f64>),
    /// `{product, release}` = the release's place in its product's export
    /// order (0 the newest: by release time, else first defect found).
    Rank,
    /// `{product, release, <dim>}` for each exported release and value of the dim.
    ReleaseBy(Dim, fn(&Ctx, &ReleaseAgg, usize) -> Option<f64>),
    /// `{product, release, <dim>, <dim>}` for each exported release and pair of values.
    ReleaseBy2(Dim, Dim, fn(&Ctx, &ReleaseAgg, usize, usize) -> Option<f64>),
    /// `{product}` for each exported product.
    Product(fn(&Ctx, &ProductView) -> Option<f64>),
    /// `{product, <dim>}` for each exported product and value of the dim.
    ProductBy(Dim, fn(&Ctx, &ProductView, usize) -> Option<f64>),
    /// `{product, <dim>, owner}` = 1: the owner of each value of the dim.
    Owner(Dim, for<'c> fn(&'c Config, &str, usize) -> &'c str),
    /// `{stage, phase, order, tracked}` = 1 for each configured stage.
    StageInfo,
    /// `{product, release, stage, owner, basis}` = 1 for each exported
    /// release that has a failing stage ([`failing`](super::failing)).
    FailingStage,
    /// One sample without labels.
    Scalar(fn(&Ctx) -> f64),
}

/// What every row reads during one scrape.
struct Ctx<'a> {
    config: &'a Config,
    sel: Selection<'a>,
    /// Records folded into link groups, by product.
    linked: &'a std::collections::BTreeMap<String, u64>,
    now: Millis,
    /// `(label value, index)` per [`Dim`], in the order of the `Dim` variants.
    dims: [Vec<(&'a str, usize)>; 8],
    /// Pipeline positions as label values.
    orders: Vec<String>,
}

impl<'a> Ctx<'a> {
    fn new(config: &'a Config, agg: &'a Aggregates) -> Self {
        let stages = config.pipeline.stages();
        let indexed = |names: Vec<&'a str>| names.into_iter().zip(0..).collect::<Vec<_>>();
        let stage_names = || stages.iter().map(|s| s.name.as_str());
        Self {
            config,
            sel: select(config, agg),
            linked: &agg.linked,
            now: now_ms(),
            dims: [
                indexed(stage_names().collect()),
                stage_names()
                    .zip(0..)
                    .filter(|(_, i)| stages[*i].phase == Phase::PreRelease && stages[*i].tracked)
                    .collect(),
                indexed(config.causes.iter().map(|(c, _)| c.as_str()).collect()),
                indexed(DETECTORS.iter().copied().chain(["unknown"]).collect()),
                indexed(
                    config
                        .severities
                        .iter()
                        .map(String::as_str)
                        .chain(["unknown"])
                        .collect(),
                ),
                indexed(
                    config
                        .maturity_ages
                        .iter()
                        .map(|(l, _)| l.as_str())
                        .collect(),
                ),
                indexed(vec!["unknown_stage", "no_stage"]),
                indexed(vec!["strong", "healthy", "attention"]),
            ],
            orders: (0..stages.len()).map(|i| i.to_string()).collect(),
        }
    }

    fn dim(&self, d: Dim) -> &[(&'a str, usize)] {
        &self.dims[d as usize]
    }

    /// Whether the release is at least maturity age `i` old (its release
    /// time is known and that long ago): its at-age counts are final enough
    /// to export.
    fn matured(&self, a: &ReleaseAgg, i: usize) -> bool {
        a.release_time
            .is_some_and(|t| self.now >= t + self.config.maturity_ages[i].1.as_millis() as Millis)
    }

    fn releases(&self) -> impl Iterator<Item = (&'a str, &'a str, &'a ReleaseAgg)> + '_ {
        self.sel
            .products
            .iter()
            .flat_map(|p| p.releases.iter().map(move |(r, a)| (p.name, *r, *a)))
    }
}

/// Writes one gauge family from `(label values, value)` samples, the label
/// names given once; a family with no samples is left out, as the Go client does.
fn family<'v, const N: usize>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    keys: [&str; N],
    samples: impl Iterator<Item = ([&'v str; N], f64)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (values, value) in samples {
        let labels: [(&str, Escaped); N] = std::array::from_fn(|i| (keys[i], Escaped(values[i])));
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The samples of [`Rows::StageInfo`]: each configured stage with its phase,
/// its place in the pipeline and whether it is tracked, at 1.
fn stage_info<'c>(c: &'c Ctx) -> impl Iterator<Item = ([&'c str; 4], f64)> {
    let stages = c.config.pipeline.stages().iter().zip(&c.orders);
    stages.map(|(s, order)| {
        let tracked = if s.tracked { "true" } else { "false" };
        (
            [s.name.as_str(), s.phase.as_str(), order.as_str(), tracked],
            1.0,
        )
    })
}

/// The samples of [`Rows::FailingStage`]: each exported release's failing
/// stage, with its owner and the basis of its expectation, at 1.
fn failing_info<'c>(c: &'c Ctx) -> Vec<([&'c str; 5], f64)> {
    let stages = c.config.pipeline.stages();
    let mut out = Vec::new();
    for p in &c.sel.products {
        let counts: Vec<&[u64]> = p.releases.iter().map(|(_, a)| a.stages()).collect();
        let failing = super::failing::failing_stages(c.config, p.name, &counts);
        for ((release, _), f) in p.releases.iter().zip(failing) {
            if let Some(f) = f {
                let owner = c.config.stage_owner(p.name, f.stage);
                let labels = [p.name, *release, stages[f.stage].name.as_str(), owner];
                out.push((
                    [labels[0], labels[1], labels[2], labels[3], f.basis.as_str()],
                    1.0,
                ));
            }
        }
    }
    out
}

/// Writes the [`Rows::FailingStage`] family.
fn failing_family(
    enc: &mut DescriptorEncoder,
    c: &Ctx,
    name: &str,
    help: &str,
) -> Result<(), std::fmt::Error> {
    let keys = ["product", "release", "stage", "owner", "basis"];
    family(enc, name, help, keys, failing_info(c).into_iter())
}

/// The samples of [`Rows::Rank`]: each exported release's place in its
/// product's export order, 0 the newest.
fn ranks<'c>(c: &'c Ctx) -> impl Iterator<Item = ([&'c str; 2], f64)> {
    c.sel.products.iter().flat_map(|p| {
        (p.releases.iter().zip(0u32..)).map(|((r, _), i)| ([p.name, *r], f64::from(i)))
    })
}

/// Writes the family of one row of [`FAMILIES`](families::FAMILIES).
fn encode_rows(
    enc: &mut DescriptorEncoder,
    c: &Ctx,
    name: &str,
    help: &str,
    rows: &Rows,
) -> Result<(), std::fmt::Error> {
    let products = || c.sel.products.iter();
    match *rows {
        Rows::Release(f) => family(
            enc,
            name,
            help,
            ["product", "release"],
            c.releases()
                .filter_map(|(p, r, a)| Some(([p, r], f(c, a)?))),
        ),
        Rows::Rank => family(enc, name, help, ["product", "release"], ranks(c)),
        Rows::ReleaseBy(d, f) => family(
            enc,
            name,
            help,
            ["product", "release", d.key()],
            c.releases().flat_map(|(p, r, a)| {
                c.dim(d)
                    .iter()
                    .filter_map(move |&(l, i)| Some(([p, r, l], f(c, a, i)?)))
            }),
        ),
        Rows::ReleaseBy2(d, e, f) => family(
            enc,
            name,
            help,
            ["product", "release", d.key(), e.key()],
            c.releases().flat_map(|(p, r, a)| {
                c.dim(d).iter().flat_map(move |&(l, i)| {
                    c.dim(e)
                        .iter()
                        .filter_map(move |&(m, j)| Some(([p, r, l, m], f(c, a, i, j)?)))
                })
            }),
        ),
        Rows::Product(f) => family(
            enc,
            name,
            help,
            ["product"],
            products().filter_map(|p| Some(([p.name], f(c, p)?))),
        ),
        Rows::ProductBy(d, f) => family(
            enc,
            name,
            help,
            ["product", d.key()],
            products().flat_map(|p| {
                c.dim(d)
                    .iter()
                    .filter_map(move |&(l, i)| Some(([p.name, l], f(c, p, i)?)))
            }),
        ),
        Rows::Owner(d, owner) => family(
            enc,
            name,
            help,
            ["product", d.key(), "owner"],
            products().flat_map(|p| {
                c.dim(d)
                    .iter()
                    .map(move |&(l, i)| ([p.name, l, owner(c.config, p.name, i)], 1.0))
            }),
        ),
        Rows::StageInfo => family(
            enc,
            name,
            help,
            ["stage", "phase", "order", "tracked"],
            stage_info(c),
        ),
        Rows::FailingStage => failing_family(enc, c, name, help),
        Rows::Scalar(f) => ConstGauge::new(f(c)).encode(enc.encode_descriptor(
            name,
            help,
            None,
            MetricType::Gauge,
        )?),
    }
}

impl Collector for EscapeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A panic in the writer poisons the lock; the writer then rebuilds the
        // aggregates from disk, so reading them is always safe.
        let agg = self
            .aggregates
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ctx = Ctx::new(&self.config, &agg);
        for (name, help, rows) in FAMILIES {
            encode_rows(&mut enc, &ctx, name, help, rows)?;
        }
        Ok(())
    }
}

mod families;

#[cfg(test)]
mod tests;
