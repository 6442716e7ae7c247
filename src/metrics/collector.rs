//! Encodes the aggregates as the gauges of SPEC §5 on every scrape. Work here is
//! proportional to the series exported: it reads counts, never defects.

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::aggregate::{Aggregates, ProductAgg, ReleaseAgg};
use super::formula;
use crate::config::Config;
use crate::model::event::DETECTORS;
use crate::model::stage::Phase;
use crate::model::time::{Millis, now_ms};

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
struct ProductView<'a> {
    name: &'a str,
    agg: Option<&'a ProductAgg>,
    releases: Vec<(&'a str, &'a ReleaseAgg)>,
    left_out: usize,
}

/// Products and releases chosen for export, with the counts left out.
pub struct Selection<'a> {
    products: Vec<ProductView<'a>>,
    products_left_out: usize,
}

/// Newest first: by release time, else first defect found; then by name.
fn newest_first(a: &(&str, &ReleaseAgg), b: &(&str, &ReleaseAgg)) -> std::cmp::Ordering {
    b.1.order_time()
        .cmp(&a.1.order_time())
        .then_with(|| b.0.cmp(a.0))
}

/// Chooses what is exported: pinned products first, then the most recently
/// active, up to `max_products`; the newest `max_releases` of each.
pub fn select<'a>(config: &'a Config, agg: &'a Aggregates) -> Selection<'a> {
    let mut names: Vec<&str> = agg.products.keys().map(String::as_str).collect();
    for p in config.products.keys().chain(&config.pinned_products) {
        if !names.contains(&p.as_str()) {
            names.push(p);
        }
    }
    if !names.contains(&config.default_product.as_str()) && names.is_empty() {
        names.push(&config.default_product);
    }
    // Pinned first (in their configured order), then the most recently active.
    names.sort_by_cached_key(|name| {
        let pinned = config.pinned_products.iter().position(|p| p == name);
        let latest = agg
            .products
            .get(*name)
            .and_then(|p| p.releases.values().filter_map(ReleaseAgg::order_time).max());
        (
            pinned.unwrap_or(usize::MAX),
            std::cmp::Reverse(latest),
            *name,
        )
    });
    let products_left_out = names.len().saturating_sub(config.max_products);
    names.truncate(config.max_products);
    let products = names
        .into_iter()
        .map(|name| {
            let p = agg.products.get(name);
            let mut releases: Vec<(&str, &ReleaseAgg)> = p
                .map(|p| p.releases.iter().map(|(k, v)| (k.as_str(), v)).collect())
                .unwrap_or_default();
            releases.sort_by(newest_first);
            let left_out = releases.len().saturating_sub(config.max_releases);
            releases.truncate(config.max_releases);
            ProductView {
                name,
                agg: p,
                releases,
                left_out,
            }
        })
        .collect();
    Selection {
        products,
        products_left_out,
    }
}

/// `(ΣP, ΣT)` over a product's newest `n` releases that have defects.
pub fn recent_pool(config: &Config, p: &ProductAgg, n: usize) -> (u64, u64) {
    let mut releases: Vec<(&str, &ReleaseAgg)> = p
        .releases
        .iter()
        .filter(|(_, r)| r.total() > 0)
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    releases.sort_by(newest_first);
    releases.iter().take(n).fold((0, 0), |(e, t), (_, r)| {
        (e + escaped(config, r), t + r.total())
    })
}

/// P(R): valid defects found in production stages.
pub fn escaped(config: &Config, r: &ReleaseAgg) -> u64 {
    r.stages
        .iter()
        .enumerate()
        .filter(|(i, _)| config.pipeline.is_production(*i))
        .map(|(_, n)| n)
        .sum()
}

type Labels<'a> = Vec<(&'a str, &'a str)>;

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

/// Writes one gauge family from `(labels, value)` samples; a family with no
/// samples is left out, as the Go client does.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels<'a>, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut samples = samples.into_iter().peekable();
    if samples.peek().is_none() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        let labels: Vec<(&str, Escaped)> =
            labels.into_iter().map(|(k, v)| (k, Escaped(v))).collect();
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for EscapeCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let config = &*self.config;
        let agg = self.aggregates.read().map_err(|_| std::fmt::Error)?;
        let sel = select(config, &agg);
        let now = now_ms();
        let stages = config.pipeline.stages();
        let pre_release: Vec<usize> = (0..stages.len())
            .filter(|&i| stages[i].phase == Phase::PreRelease && stages[i].tracked)
            .collect();
        let releases = || {
            sel.products
                .iter()
                .flat_map(|p| p.releases.iter().map(move |(r, a)| (p.name, *r, *a)))
        };
        let per_release = |f: &dyn Fn(&ReleaseAgg) -> Option<f64>| {
            releases()
                .filter_map(|(p, r, a)| f(a).map(|v| (vec![("product", p), ("release", r)], v)))
                .collect::<Vec<_>>()
        };

        family(
            &mut enc,
            "bug_escape_rate_ratio",
            "Escape rate E(R) = P(R)/T(R) of a release",
            per_release(&|a| formula::rate(escaped(config, a), a.total())),
        )?;
        family(
            &mut enc,
            "bug_escape_rate_lower_ratio",
            "Lower bound of the 95% Wilson interval of E(R)",
            per_release(&|a| formula::wilson(escaped(config, a), a.total()).map(|w| w.0)),
        )?;
        family(
            &mut enc,
            "bug_escape_rate_upper_ratio",
            "Upper bound of the 95% Wilson interval of E(R)",
            per_release(&|a| formula::wilson(escaped(config, a), a.total()).map(|w| w.1)),
        )?;
        family(
            &mut enc,
            "bug_escape_release_defects",
            "T(R): valid defects introduced by the release",
            per_release(&|a| Some(a.total() as f64)),
        )?;
        family(
            &mut enc,
            "bug_escape_release_escaped_defects",
            "P(R): valid defects of the release found in production",
            per_release(&|a| Some(escaped(config, a) as f64)),
        )?;
        family(
            &mut enc,
            "bug_escape_release_timestamp_seconds",
            "When the release shipped, when known",
            per_release(&|a| a.release_time.map(|t| t as f64 / 1000.0)),
        )?;

        family(
            &mut enc,
            "bug_escape_defects",
            "Valid defects of a release found at each stage",
            releases().flat_map(|(p, r, a)| {
                stages.iter().enumerate().map(move |(i, s)| {
                    (
                        vec![("product", p), ("release", r), ("stage", s.name.as_str())],
                        a.stages[i] as f64,
                    )
                })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_stage_leak_ratio",
            "L_k(R): of the defects that reached a tracked pre-release stage, the share it did not catch",
            releases().flat_map(|(p, r, a)| {
                formula::stage_leaks(&a.stages, &pre_release)
                    .into_iter()
                    .filter_map(move |(k, l)| {
                        l.map(|l| {
                            (
                                vec![
                                    ("product", p),
                                    ("release", r),
                                    ("stage", stages[k].name.as_str()),
                                ],
                                l,
                            )
                        })
                    })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_escaped_defects_by_cause",
            "Production defects of a release by cause",
            releases().flat_map(|(p, r, a)| {
                config.causes.iter().enumerate().map(move |(i, (c, _))| {
                    (
                        vec![("product", p), ("release", r), ("cause", c.as_str())],
                        a.causes[i] as f64,
                    )
                })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_escaped_defects_by_detector",
            "Production defects of a release by who detected them",
            releases().flat_map(|(p, r, a)| {
                DETECTORS
                    .iter()
                    .copied()
                    .chain(["unknown"])
                    .enumerate()
                    .map(move |(i, d)| {
                        (
                            vec![("product", p), ("release", r), ("detected_by", d)],
                            a.detectors[i] as f64,
                        )
                    })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_escaped_defects_by_severity",
            "Production defects of a release by severity",
            releases().flat_map(|(p, r, a)| {
                config
                    .severities
                    .iter()
                    .map(String::as_str)
                    .chain(["unknown"])
                    .enumerate()
                    .map(move |(i, s)| {
                        (
                            vec![("product", p), ("release", r), ("severity", s)],
                            a.severities[i] as f64,
                        )
                    })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_rate_at_age_ratio",
            "E_age(R): escape rate counting only defects found up to that age after the release time",
            releases().flat_map(|(p, r, a)| {
                config
                    .maturity_ages
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, (label, d))| {
                        let t = a.release_time?;
                        if now < t + d.as_millis() as Millis {
                            return None;
                        }
                        let [total, prod] = a.at_age[i];
                        formula::rate(prod, total).map(|v| {
                            (
                                vec![("product", p), ("release", r), ("age", label.as_str())],
                                v,
                            )
                        })
                    })
            }),
        )?;

        // Per product.
        let pools: Vec<(&str, u64, u64)> = sel
            .products
            .iter()
            .filter_map(|p| {
                p.agg.map(|a| {
                    let (e, t) = recent_pool(config, a, config.recent_releases);
                    (p.name, e, t)
                })
            })
            .collect();
        let per_pool = |f: &dyn Fn(u64, u64) -> Option<f64>| {
            pools
                .iter()
                .filter_map(|(p, e, t)| f(*e, *t).map(|v| (vec![("product", *p)], v)))
                .collect::<Vec<_>>()
        };
        family(
            &mut enc,
            "bug_escape_recent_rate_ratio",
            "Pooled escape rate over the product's most recent releases",
            per_pool(&formula::rate),
        )?;
        family(
            &mut enc,
            "bug_escape_recent_rate_lower_ratio",
            "Lower 95% Wilson bound of the pooled recent rate",
            per_pool(&|e, t| formula::wilson(e, t).map(|w| w.0)),
        )?;
        family(
            &mut enc,
            "bug_escape_recent_rate_upper_ratio",
            "Upper 95% Wilson bound of the pooled recent rate",
            per_pool(&|e, t| formula::wilson(e, t).map(|w| w.1)),
        )?;
        family(
            &mut enc,
            "bug_escape_recent_defects",
            "Defects pooled into the recent rate",
            per_pool(&|_, t| Some(t as f64)),
        )?;
        family(
            &mut enc,
            "bug_escape_unattributed_defects",
            "Valid defects with no release, by stage (left out of every rate)",
            sel.products.iter().flat_map(|p| {
                stages.iter().enumerate().map(move |(i, s)| {
                    (
                        vec![("product", p.name), ("stage", s.name.as_str())],
                        p.agg.map_or(0, |a| a.unattributed[i]) as f64,
                    )
                })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_unclassified_defects",
            "Valid defects left out of every count because their stage is missing or not configured",
            sel.products.iter().flat_map(|p| {
                let (unknown, none) = p.agg.map_or((0, 0), |a| (a.unknown_stage, a.no_stage));
                [
                    (
                        vec![("product", p.name), ("reason", "unknown_stage")],
                        unknown as f64,
                    ),
                    (
                        vec![("product", p.name), ("reason", "no_stage")],
                        none as f64,
                    ),
                ]
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_releases_left_out",
            "Releases of the product not exported (beyond max_releases)",
            sel.products
                .iter()
                .map(|p| (vec![("product", p.name)], p.left_out as f64)),
        )?;
        ConstGauge::new(sel.products_left_out as f64).encode(enc.encode_descriptor(
            "bug_escape_products_left_out",
            "Products not exported (beyond max_products)",
            None,
            MetricType::Gauge,
        )?)?;

        // Configuration as data.
        let orders: Vec<String> = (0..stages.len()).map(|i| i.to_string()).collect();
        family(
            &mut enc,
            "bug_escape_stage_info",
            "Configured stages (value 1)",
            stages
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        vec![
                            ("stage", s.name.as_str()),
                            ("phase", s.phase.as_str()),
                            ("order", orders[i].as_str()),
                            ("tracked", if s.tracked { "true" } else { "false" }),
                        ],
                        1.0,
                    )
                })
                .collect::<Vec<_>>(),
        )?;
        family(
            &mut enc,
            "bug_escape_stage_owner_info",
            "Owner of each stage per product (value 1)",
            sel.products.iter().flat_map(|p| {
                stages.iter().enumerate().map(move |(i, s)| {
                    (
                        vec![
                            ("product", p.name),
                            ("stage", s.name.as_str()),
                            ("owner", config.stage_owner(p.name, i)),
                        ],
                        1.0,
                    )
                })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_cause_owner_info",
            "Owner of each cause per product (value 1)",
            sel.products.iter().flat_map(|p| {
                config.causes.iter().enumerate().map(move |(i, (c, _))| {
                    (
                        vec![
                            ("product", p.name),
                            ("cause", c.as_str()),
                            ("owner", config.cause_owner(p.name, i)),
                        ],
                        1.0,
                    )
                })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_band_threshold_ratio",
            "Upper bound of each band per product",
            sel.products.iter().flat_map(|p| {
                let b = config.bands(p.name);
                [
                    ("strong", b.strong),
                    ("healthy", b.healthy),
                    ("attention", b.attention),
                ]
                .map(|(band, v)| (vec![("product", p.name), ("band", band)], v))
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_stage_leak_target_ratio",
            "Leak target of a stage per product, where set",
            sel.products.iter().flat_map(|p| {
                pre_release.iter().filter_map(move |&i| {
                    config.leak_target(p.name, i).map(|t| {
                        (
                            vec![("product", p.name), ("stage", stages[i].name.as_str())],
                            t,
                        )
                    })
                })
            }),
        )?;
        family(
            &mut enc,
            "bug_escape_min_defects",
            "Minimum sample T(R) before band alerts apply, per product",
            sel.products.iter().map(|p| {
                (
                    vec![("product", p.name)],
                    config.bands(p.name).min_defects as f64,
                )
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
