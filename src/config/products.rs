//! Products: the default bands and under-reporting check, each product's
//! overrides (source namespaces, bands, owners, leak targets), their
//! validation, and the per-product answers [`Config`] gives from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::stage::Pipeline;

use super::webhooks::SOURCE_KINDS;
use super::{Config, ConfigError, Settings, check_name, ranges, suggest};

/// Upper bounds of the `strong`, `healthy` and `attention` bands, and the minimum
/// sample an alert should require.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BandSettings {
    pub strong: f64,
    pub healthy: f64,
    pub attention: f64,
    pub min_defects: u64,
}

/// Overrides for one product.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductSettings {
    /// Source namespaces mapped onto this product, as `kind:namespace`
    /// (`github:acme/payments`, `jira:PAY`, `sentry:payments-api`).
    pub sources: Vec<String>,
    pub bands: Option<BandOverride>,
    pub under_reporting: Option<UnderReportingOverride>,
    pub stage_owners: BTreeMap<String, String>,
    pub cause_owners: BTreeMap<String, String>,
    pub leak_targets: BTreeMap<String, f64>,
}

/// Partial band settings for one product; what is absent comes from the defaults.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BandOverride {
    pub strong: Option<f64>,
    pub healthy: Option<f64>,
    pub attention: Option<f64>,
    pub min_defects: Option<u64>,
}

/// When a release's defect volume counts as far below its predecessors' at
/// the same age (the rules' under-reporting check; exported as
/// `bug_escape_volume_drop_threshold_ratio` and
/// `bug_escape_volume_min_predecessors`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnderReportingSettings {
    /// Below this fraction of the trailing median is a drop (0 <= r < 1).
    pub drop_ratio: f64,
    /// Earlier releases at the same age needed before a drop is judged.
    pub min_predecessors: u64,
}

/// Partial under-reporting settings for one product.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnderReportingOverride {
    pub drop_ratio: Option<f64>,
    pub min_predecessors: Option<u64>,
}

impl Default for UnderReportingSettings {
    fn default() -> Self {
        Self {
            drop_ratio: 0.5,
            min_predecessors: 3,
        }
    }
}

impl UnderReportingSettings {
    /// These settings with `o` over them.
    fn over(self, o: Option<&UnderReportingOverride>) -> Self {
        Self {
            drop_ratio: o.and_then(|o| o.drop_ratio).unwrap_or(self.drop_ratio),
            min_predecessors: o
                .and_then(|o| o.min_predecessors)
                .unwrap_or(self.min_predecessors),
        }
    }

    /// These settings with `o` over them, validated; `key` names them in errors.
    pub(super) fn with(
        self,
        key: &str,
        o: Option<&UnderReportingOverride>,
    ) -> Result<Self, ConfigError> {
        let r = self.over(o);
        if !(0.0..1.0).contains(&r.drop_ratio) {
            return Err(ConfigError(format!(
                "{key}.drop_ratio: {} is not a ratio in 0..1 (1 excluded)",
                r.drop_ratio
            )));
        }
        ranges::check_count(
            "under_reporting.min_predecessors",
            &format!("{key}.min_predecessors"),
            r.min_predecessors,
        )?;
        Ok(r)
    }
}

impl Default for BandSettings {
    fn default() -> Self {
        Self {
            strong: 0.05,
            healthy: 0.10,
            attention: 0.20,
            min_defects: 10,
        }
    }
}

/// Bands and minimum sample of one product, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub strong: f64,
    pub healthy: f64,
    pub attention: f64,
    pub min_defects: u64,
}

/// Validates every product's overrides against the defaults, the pipeline
/// and the causes; returns the `kind:namespace` → product map.
pub(super) fn source_map(
    s: &Settings,
    pipeline: &Pipeline,
    causes: &[(String, String)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut source_map = BTreeMap::new();
    for (product, p) in &s.products {
        check_name(&format!("products.{product}"), product)?;
        if let Some(o) = &p.bands {
            bands(&format!("products.{product}.bands"), &s.bands, Some(o))?;
        }
        if let Some(o) = &p.under_reporting {
            s.under_reporting
                .with(&format!("products.{product}.under_reporting"), Some(o))?;
        }
        map_sources(product, &p.sources, &mut source_map)?;
        check_overrides(product, p, pipeline, causes)?;
    }
    Ok(source_map)
}

/// Adds `product`'s `kind:namespace` sources to `map`; a namespace belongs
/// to one product only.
fn map_sources(
    product: &str,
    sources: &[String],
    map: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (i, src) in sources.iter().enumerate() {
        let key = format!("products.{product}.sources[{i}]");
        source_kind(&key, src)?;
        if let Some(prev) = map.insert(src.clone(), product.to_owned()) {
            let why = if prev == product {
                format!("is listed twice in products.{product}.sources")
            } else {
                format!(
                    "is also mapped onto product `{prev}`; a namespace counts as one product, \
                     so keep it under one"
                )
            };
            return Err(ConfigError(format!("{key}: `{src}` {why}")));
        }
    }
    Ok(())
}

/// `src` is `kind:namespace`, its kind one of [`SOURCE_KINDS`] (the nearest
/// suggested when it is not) and its namespace not empty.
fn source_kind(key: &str, src: &str) -> Result<(), ConfigError> {
    let Some((kind, namespace)) = src.split_once(':') else {
        return Err(ConfigError(format!(
            "{key}: `{src}` must be `kind:namespace`, e.g. `github:acme/payments`"
        )));
    };
    if !SOURCE_KINDS.contains(&kind) {
        let hint = suggest::hint(kind, SOURCE_KINDS.iter().copied())
            .map_or(String::new(), |h| format!("{h} "));
        return Err(ConfigError(format!(
            "{key}: `{src}`: unknown source `{kind}`; {hint}the sources are {}",
            SOURCE_KINDS.join(", ")
        )));
    }
    if namespace.trim().is_empty() {
        return Err(ConfigError(format!(
            "{key}: `{src}` names no namespace after `{kind}:`, e.g. `github:acme/payments`"
        )));
    }
    Ok(())
}

/// `product`'s stage owners and leak targets name stages of the pipeline,
/// its targets are ratios, and its cause owners name configured causes.
fn check_overrides(
    product: &str,
    p: &ProductSettings,
    pipeline: &Pipeline,
    causes: &[(String, String)],
) -> Result<(), ConfigError> {
    for stage in p.stage_owners.keys().chain(p.leak_targets.keys()) {
        if pipeline.index(stage).is_none() {
            return Err(ConfigError(format!(
                "products.{product}: unknown stage `{stage}`"
            )));
        }
    }
    for (stage, t) in &p.leak_targets {
        if !(0.0..=1.0).contains(t) {
            return Err(ConfigError(format!(
                "products.{product}.leak_targets.{stage}: {t} is not a ratio in 0..1"
            )));
        }
    }
    for cause in p.cause_owners.keys() {
        if !causes.iter().any(|(n, _)| n == cause) {
            return Err(ConfigError(format!(
                "products.{product}.cause_owners: unknown cause `{cause}`"
            )));
        }
    }
    Ok(())
}

/// The bands `o` over `base`, validated; `key` names them in errors.
pub(super) fn bands(
    key: &str,
    base: &BandSettings,
    o: Option<&BandOverride>,
) -> Result<Bands, ConfigError> {
    let b = Bands {
        strong: o.and_then(|o| o.strong).unwrap_or(base.strong),
        healthy: o.and_then(|o| o.healthy).unwrap_or(base.healthy),
        attention: o.and_then(|o| o.attention).unwrap_or(base.attention),
        min_defects: o.and_then(|o| o.min_defects).unwrap_or(base.min_defects),
    };
    ranges::check_count(
        "bands.min_defects",
        &format!("{key}.min_defects"),
        b.min_defects,
    )?;
    let ordered =
        0.0 < b.strong && b.strong < b.healthy && b.healthy < b.attention && b.attention < 1.0;
    if !ordered {
        return Err(ConfigError(format!(
            "{key}: thresholds must satisfy 0 < strong < healthy < attention < 1 (got {}, {}, {})",
            b.strong, b.healthy, b.attention
        )));
    }
    Ok(b)
}

impl Config {
    /// Bands of `product` (its overrides over the defaults).
    pub fn bands(&self, product: &str) -> Bands {
        let mut b = self.default_bands;
        if let Some(o) = self.products.get(product).and_then(|p| p.bands) {
            b.strong = o.strong.unwrap_or(b.strong);
            b.healthy = o.healthy.unwrap_or(b.healthy);
            b.attention = o.attention.unwrap_or(b.attention);
            b.min_defects = o.min_defects.unwrap_or(b.min_defects);
        }
        b
    }

    /// Under-reporting settings of `product` (its overrides over the defaults).
    pub fn under_reporting(&self, product: &str) -> UnderReportingSettings {
        let o = self.products.get(product).and_then(|p| p.under_reporting);
        self.default_under_reporting.over(o.as_ref())
    }

    /// Owner of `stage` (by pipeline index) for `product`.
    pub fn stage_owner(&self, product: &str, stage: usize) -> &str {
        let def = &self.pipeline.stages()[stage];
        self.products
            .get(product)
            .and_then(|p| p.stage_owners.get(&def.name))
            .map_or(def.owner.as_str(), String::as_str)
    }

    /// Leak target of `stage` for `product`, when one is set.
    pub fn leak_target(&self, product: &str, stage: usize) -> Option<f64> {
        let def = &self.pipeline.stages()[stage];
        self.products
            .get(product)
            .and_then(|p| p.leak_targets.get(&def.name).copied())
            .or(def.leak_target)
    }

    /// Owner of the cause at `index` for `product`.
    pub fn cause_owner(&self, product: &str, index: usize) -> &str {
        let (name, owner) = &self.causes[index];
        self.products
            .get(product)
            .and_then(|p| p.cause_owners.get(name))
            .map_or(owner.as_str(), String::as_str)
    }

    /// The product a source namespace belongs to: the mapping when configured,
    /// else the namespace itself; generic events name their product directly.
    pub fn product_for(&self, kind: &str, namespace: &str) -> String {
        self.product_name(kind, namespace).to_owned()
    }

    /// [`Config::product_for`], borrowed.
    pub fn product_name<'a>(&'a self, kind: &str, namespace: &'a str) -> &'a str {
        if kind.is_empty() {
            return namespace;
        }
        self.source_map
            .get(&format!("{kind}:{namespace}"))
            .map_or(namespace, String::as_str)
    }
}
