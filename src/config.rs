//! Settings: embedded defaults, then a TOML file, then `BUG_ESCAPE_*` environment
//! variables, then command-line flags (flags win). [`Settings::load`] merges the
//! layers; [`Config::from_settings`] validates them into the typed form the rest of
//! the exporter trusts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Serialize};

use crate::model::release::{ReleaseRule, ReleaseRules};
use crate::model::stage::{Phase, Pipeline, StageDef};

pub use origins::Origins;
use origins::known_names;

pub mod env;
mod file;
mod origins;
pub mod ranges;
pub mod redact;
pub mod sync;
pub mod web;
pub mod webhooks;

/// Default listen address: 10941 is outside the 9100–9999 range of the Prometheus
/// default-port allocations (which is full) and not used by a well-known exporter.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:10941";

/// The raw, layered settings as a user writes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address the HTTP server binds.
    pub listen: String,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// SQLite database file.
    pub db: PathBuf,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Request bytes that may wait for the store at once (admitted, not yet
    /// answered); beyond it writes get 503 with `Retry-After`.
    pub write_queue_bytes: usize,
    /// How long a write waits for room in the queue before that 503.
    pub write_queue_wait: String,
    /// How long an admitted write has to arrive and reach the store; past it
    /// nothing is stored (408 while reading the body, 503 once queued).
    pub write_timeout: String,
    /// How long a connection may take to send a request head, counted from
    /// when it waits for one (accepted, or its previous answer sent).
    pub header_read_timeout: String,
    /// How long a request body may take to arrive once it is read (also
    /// bounded by `write_timeout`); past it 408, nothing stored.
    pub body_read_timeout: String,
    /// A connection with no request in flight and no byte moving for this long
    /// is closed (idle keep-alive).
    pub idle_timeout: String,
    /// Connections served at once; beyond it, a small reserve serves probes
    /// and everything else gets 503 with `Retry-After`.
    pub max_connections: usize,
    /// Webhook body bytes held before their signature is checked, across all
    /// requests (>= max_body_bytes); beyond it 503 with `Retry-After`.
    pub unauthenticated_bytes: usize,
    /// Newest releases of each product that are exported.
    pub max_releases: usize,
    /// Products that are exported at most (pinned ones first).
    pub max_products: usize,
    /// Releases pooled into the per-product recent rate.
    pub recent_releases: usize,
    /// Ages at which `bug_escape_rate_at_age_ratio` is exported (`30d`, `90d`, …).
    pub maturity_ages: Vec<String>,
    /// Quality-net pipeline, in order.
    pub stages: Vec<StageSettings>,
    /// Causes of production defects and their owners.
    pub causes: Vec<CauseSettings>,
    /// Accepted severity values.
    pub severities: Vec<String>,
    /// Accepted team values (empty: any well-formed value).
    pub teams: Vec<String>,
    /// Default bands and minimum sample for every product.
    pub bands: BandSettings,
    /// Default under-reporting check for every product.
    pub under_reporting: UnderReportingSettings,
    /// Product of generic events that name none.
    pub default_product: String,
    /// Products always exported, whatever `max_products` leaves out (the
    /// allowlist of docs/metrics.md, `max_products`; `allowlist` is accepted
    /// as an alias).
    #[serde(alias = "allowlist")]
    pub pinned_products: Vec<String>,
    /// Per-product settings: source namespaces, bands, owners, targets.
    pub products: BTreeMap<String, ProductSettings>,
    /// Release-name normalisation.
    pub releases: ReleaseSettings,
    /// Let the generic API write into a webhook source's namespace (`github`,
    /// `gitlab`, `jira`, `sentry`), for corrections; off, such events are
    /// refused (422 naming `source`).
    pub allow_vendor_sources: bool,
    /// Bearer token for `/api/v1/*` (from `BUG_ESCAPE_API_TOKEN`; never logged).
    pub api_token: Option<String>,
    /// File holding the API token, as an alternative to the environment.
    pub api_token_file: Option<PathBuf>,
    /// Source webhooks: secrets and mapping conventions, `[webhooks.<source>]`.
    pub webhooks: webhooks::WebhooksSettings,
    /// `sync`'s behaviour towards the vendors' APIs (timeouts, retries).
    pub sync: sync::SyncSettings,
    /// exporter-toolkit web configuration (TLS, basic auth, headers), YAML;
    /// flag `--web.config.file`.
    pub web_config_file: Option<PathBuf>,
    /// Where each setting was written, for validation errors; not a key.
    #[serde(skip)]
    pub origins: Origins,
}

/// One stage of the pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSettings {
    pub name: String,
    pub phase: Phase,
    pub owner: String,
    #[serde(default)]
    pub leak_target: Option<f64>,
    #[serde(default = "yes")]
    pub tracked: bool,
}

/// One cause of production defects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CauseSettings {
    pub name: String,
    pub owner: String,
}

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
    fn with(self, key: &str, o: Option<&UnderReportingOverride>) -> Result<Self, ConfigError> {
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

/// Release-name normalisation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseSettings {
    /// Fold pre-releases into their final release (`2.4.0-rc.1` → `2.4.0`).
    pub fold_prereleases: bool,
    /// Regex rewrites applied in order; replaces the default rules when given.
    pub rules: Vec<RuleSettings>,
}

/// One regex rewrite of release names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Only for this source kind (`generic`, `github`, …); all when absent.
    #[serde(default)]
    pub source: Option<String>,
    pub pattern: String,
    #[serde(default)]
    pub replace: String,
}

fn yes() -> bool {
    true
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

impl Default for ReleaseSettings {
    /// Strips a `<name>@` prefix (up to the last `@`, so npm scopes go too),
    /// then a `v`/`V` before a digit, then `+build` metadata after a version.
    fn default() -> Self {
        let rule = |pattern: &str, replace: &str| RuleSettings {
            source: None,
            pattern: pattern.into(),
            replace: replace.into(),
        };
        Self {
            fold_prereleases: true,
            rules: vec![
                rule("^.+@", ""),
                rule("^[vV]([0-9])", "$1"),
                rule(
                    r"^([0-9]+(?:\.[0-9]+)*(?:-[0-9A-Za-z.-]+)?)\+[0-9A-Za-z.-]+$",
                    "$1",
                ),
            ],
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let stage = |name: &str, phase, owner: &str| StageSettings {
            name: name.into(),
            phase,
            owner: owner.into(),
            leak_target: None,
            tracked: true,
        };
        let cause = |name: &str, owner: &str| CauseSettings {
            name: name.into(),
            owner: owner.into(),
        };
        Self {
            listen: DEFAULT_LISTEN.into(),
            telemetry_path: "/metrics".into(),
            db: PathBuf::from("bug-escape.db"),
            max_body_bytes: 1024 * 1024,
            write_queue_bytes: 8 * 1024 * 1024,
            write_queue_wait: "5s".into(),
            write_timeout: "30s".into(),
            header_read_timeout: "10s".into(),
            body_read_timeout: "10s".into(),
            idle_timeout: "5s".into(),
            max_connections: 512,
            unauthenticated_bytes: 16 * 1024 * 1024,
            max_releases: 20,
            max_products: 100,
            recent_releases: 5,
            maturity_ages: vec!["30d".into()],
            stages: vec![
                stage("development", Phase::PreRelease, "engineering"),
                stage("code_review", Phase::PreRelease, "engineering"),
                stage("automated_tests", Phase::PreRelease, "test-automation"),
                stage("qa", Phase::PreRelease, "qa"),
                stage("production", Phase::Production, "sre"),
            ],
            causes: vec![
                cause("coverage", "test-automation"),
                cause("review", "engineering"),
                cause("requirements", "product"),
                cause("release", "release-engineering"),
                cause("unknown", "engineering"),
            ],
            severities: ["critical", "high", "medium", "low"]
                .map(String::from)
                .to_vec(),
            teams: Vec::new(),
            bands: BandSettings::default(),
            under_reporting: UnderReportingSettings::default(),
            default_product: "default".into(),
            pinned_products: Vec::new(),
            products: BTreeMap::new(),
            releases: ReleaseSettings::default(),
            allow_vendor_sources: false,
            api_token: None,
            api_token_file: None,
            webhooks: webhooks::WebhooksSettings::default(),
            sync: sync::SyncSettings::default(),
            web_config_file: None,
            origins: Origins::default(),
        }
    }
}

/// Environment variables read as settings (`BUG_ESCAPE_<KEY>`); other
/// `BUG_ESCAPE_*` variables are left alone. Webhook secrets
/// (`BUG_ESCAPE_GITHUB_SECRET`, …) are read verbatim by
/// [`webhooks::WebhooksSettings::apply_env`] instead.
pub const ENV_KEYS: &[&str] = &[
    "listen",
    "telemetry_path",
    "db",
    "max_body_bytes",
    "write_queue_bytes",
    "write_queue_wait",
    "write_timeout",
    "header_read_timeout",
    "body_read_timeout",
    "idle_timeout",
    "max_connections",
    "unauthenticated_bytes",
    "max_releases",
    "max_products",
    "recent_releases",
    "default_product",
    "allow_vendor_sources",
    "api_token",
    "api_token_file",
    "web_config_file",
];

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telemetry_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_config_file: Option<PathBuf>,
}

impl Settings {
    /// Merges defaults, the TOML file (when given), the environment and `flags`.
    /// Errors name the file, line and key, or the variable, or the flag, and
    /// never print a value that may be a secret.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Self, ConfigError> {
        env::check_process()?;
        flags.check_unicode()?;
        let parsed = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            Some(path) => Some(file::read(path, &known_names())?),
            None => None,
        };
        let mut parsed = parsed;
        if let Some(p) = &mut parsed {
            // `allowlist` is another name of `pinned_products`: the defaults
            // hold the latter, so serde would see the field twice.
            if let Some(v) = p.dict.remove("allowlist") {
                if p.dict.contains_key("pinned_products") {
                    return Err(ConfigError(format!(
                        "{}: allowlist: is another name of pinned_products, which is also set; keep one",
                        p.file()
                    )));
                }
                p.dict.insert("pinned_products".into(), v);
            }
        }
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(p) = &parsed {
            figment = figment.merge(Serialized::defaults(&p.dict));
        }
        let from_env = env::layer(|name| std::env::var(name).ok())?;
        figment = figment
            .merge(Serialized::defaults(&from_env))
            .merge(Serialized::defaults(flags));
        let mut settings: Settings = match (figment.extract(), &parsed) {
            (Ok(s), _) => s,
            (Err(e), Some(p)) => {
                let trial = |d: &figment::value::Dict| {
                    Figment::from(Serialized::defaults(Settings::default()))
                        .merge(Serialized::defaults(d))
                        .extract::<Settings>()
                        .map(drop)
                        .map_err(Box::new)
                };
                return Err(p.explain(e, &trial));
            }
            (Err(e), None) => {
                let key = e.path.join(".");
                return Err(ConfigError(format!(
                    "{key}: invalid value{}",
                    if redact::is_secret_key(&key) {
                        " (not shown)"
                    } else {
                        ""
                    }
                )));
            }
        };
        let secrets = settings.webhooks.apply_env(|name| std::env::var(name).ok());
        settings.origins = Origins::of(parsed.as_ref(), &from_env, secrets, flags);
        Ok(settings)
    }
}

impl Overrides {
    /// The keys set by flags, with the flag.
    fn given(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.listen.is_some() {
            out.push(("listen", "--web.listen-address"));
        }
        if self.telemetry_path.is_some() {
            out.push(("telemetry_path", "--web.telemetry-path"));
        }
        if self.db.is_some() {
            out.push(("db", "--db"));
        }
        if self.web_config_file.is_some() {
            out.push(("web_config_file", "--web.config.file"));
        }
        out
    }

    /// Refuses a path flag that is not UTF-8 by name (settings are text).
    fn check_unicode(&self) -> Result<(), ConfigError> {
        for (flag, path) in [
            ("--db", &self.db),
            ("--web.config.file", &self.web_config_file),
        ] {
            if let Some(p) = path.as_ref().filter(|p| p.to_str().is_none()) {
                return Err(ConfigError(format!(
                    "{flag}: `{}` is not valid UTF-8; give a UTF-8 path",
                    p.display()
                )));
            }
        }
        Ok(())
    }
}

/// A configuration that cannot be used, with what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Bands and minimum sample of one product, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    pub strong: f64,
    pub healthy: f64,
    pub attention: f64,
    pub min_defects: u64,
}

/// The validated configuration the exporter runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Path of the metrics endpoint (`/metrics` by default).
    pub telemetry_path: String,
    pub db: PathBuf,
    pub max_body_bytes: usize,
    pub write_queue_bytes: usize,
    pub write_queue_wait: Duration,
    pub write_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub unauthenticated_bytes: usize,
    pub max_releases: usize,
    pub max_products: usize,
    pub recent_releases: usize,
    /// `(label, duration)` pairs, in the order configured.
    pub maturity_ages: Vec<(String, Duration)>,
    pub pipeline: Pipeline,
    /// Cause names with their default owners; `unknown` is always present.
    pub causes: Vec<(String, String)>,
    pub severities: Vec<String>,
    pub teams: Vec<String>,
    pub default_bands: Bands,
    pub default_under_reporting: UnderReportingSettings,
    pub default_product: String,
    pub pinned_products: Vec<String>,
    pub products: BTreeMap<String, ProductSettings>,
    /// `kind:namespace` → product.
    pub source_map: BTreeMap<String, String>,
    pub release_rules: ReleaseRules,
    /// The generic API may write into webhook sources' namespaces (corrections).
    pub allow_vendor_sources: bool,
    pub api_token: Option<String>,
    /// Source webhooks (secrets never printed).
    pub webhooks: webhooks::WebhooksConfig,
    /// `sync`'s behaviour towards the vendors' APIs.
    pub sync: sync::SyncConfig,
    /// TLS, basic auth and response headers (`web_config_file`).
    pub web: web::WebConfig,
}

pub use crate::model::label::MAX_LABEL_LEN;

/// Paths the exporter serves besides the metrics, and the prefixes of its
/// write routes: the telemetry path may be none of them.
const RESERVED_PATHS: &[&str] = &["/", "/healthz", "/readyz"];
const RESERVED_PREFIXES: &[&str] = &["/api/", "/webhooks/"];

/// `telemetry_path`: absolute, a plain path (no query, fragment, spaces or
/// `{`, which the router would read as a parameter), no clash with a route.
fn check_telemetry_path(p: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError(format!("telemetry_path: `{p}` {why}")));
    if !p.starts_with('/') {
        return bad("must start with `/`");
    }
    if p.len() > 1 && p.ends_with('/') {
        return bad("must not end with `/`");
    }
    if p.contains("//")
        || p.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "?#{}*:%".contains(c))
    {
        return bad("must be a plain path (no `//`, `?`, `#`, `{`, `}`, `*`, `:`, `%` or spaces)");
    }
    if RESERVED_PATHS.contains(&p)
        || RESERVED_PREFIXES
            .iter()
            .any(|r| p.starts_with(r) || p == r.trim_end_matches('/'))
    {
        return bad("is taken by another route");
    }
    Ok(())
}

impl Config {
    /// Validates `settings`; every error names the setting at fault, and
    /// where it was written when the settings were loaded.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let origins = s.origins.clone();
        Self::validate(s).map_err(|e| origins.locate(e))
    }

    fn validate(s: Settings) -> Result<Self, ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let listen: SocketAddr = match s.listen.parse() {
            Ok(a) => a,
            Err(_) => return err(format!("listen: `{}` is not an ADDR:PORT", s.listen)),
        };
        check_telemetry_path(&s.telemetry_path)?;
        for (key, v) in [
            ("max_releases", s.max_releases),
            ("max_products", s.max_products),
            ("recent_releases", s.recent_releases),
            ("max_body_bytes", s.max_body_bytes),
            ("write_queue_bytes", s.write_queue_bytes),
            ("unauthenticated_bytes", s.unauthenticated_bytes),
            ("max_connections", s.max_connections),
        ] {
            ranges::check_count(key, key, u64::try_from(v).unwrap_or(u64::MAX))?;
        }
        if s.write_queue_bytes < s.max_body_bytes {
            return err(format!(
                "write_queue_bytes: {} is smaller than max_body_bytes ({}); one request must fit",
                s.write_queue_bytes, s.max_body_bytes
            ));
        }
        if s.unauthenticated_bytes < s.max_body_bytes {
            return err(format!(
                "unauthenticated_bytes: {} is smaller than max_body_bytes ({}); one request must fit",
                s.unauthenticated_bytes, s.max_body_bytes
            ));
        }
        let duration = |key: &str, v: &str| ranges::REQUEST_TIME.parse(key, v);
        let write_queue_wait = duration("write_queue_wait", &s.write_queue_wait)?;
        let write_timeout = duration("write_timeout", &s.write_timeout)?;
        let header_read_timeout = duration("header_read_timeout", &s.header_read_timeout)?;
        let idle_timeout = duration("idle_timeout", &s.idle_timeout)?;
        let body_read_timeout = duration("body_read_timeout", &s.body_read_timeout)?;
        let ages = maturity_ages(&s.maturity_ages)?;
        let stages = s
            .stages
            .iter()
            .map(|st| StageDef {
                name: st.name.clone(),
                phase: st.phase,
                owner: st.owner.clone(),
                leak_target: st.leak_target,
                tracked: st.tracked,
            })
            .collect();
        let pipeline = Pipeline::new(stages).map_err(|m| ConfigError(format!("stages: {m}")))?;
        let mut causes: Vec<(String, String)> = Vec::new();
        for (i, c) in s.causes.iter().enumerate() {
            check_name(&format!("causes[{i}].name"), &c.name)?;
            check_name(&format!("causes[{i}].owner"), &c.owner)?;
            if causes.iter().any(|(n, _)| n == &c.name) {
                return err(format!("causes[{i}].name: `{}` is listed twice", c.name));
            }
            causes.push((c.name.clone(), c.owner.clone()));
        }
        if !causes.iter().any(|(n, _)| n == "unknown") {
            return err(
                "causes: must include `unknown` (production defects with no cause count there)"
                    .into(),
            );
        }
        ranges::unique_exact("severities", s.severities.iter().map(String::as_str))?;
        ranges::unique_exact("teams", s.teams.iter().map(String::as_str))?;
        ranges::unique_exact(
            "pinned_products",
            s.pinned_products.iter().map(String::as_str),
        )?;
        for (i, v) in s.severities.iter().enumerate() {
            check_name(&format!("severities[{i}]"), v)?;
            if v == "unknown" {
                return err(format!(
                    "severities[{i}]: `unknown` is reserved for defects with no severity"
                ));
            }
        }
        for (i, v) in s.teams.iter().enumerate() {
            check_name(&format!("teams[{i}]"), v)?;
        }
        let default_bands = bands("bands", &s.bands, None)?;
        let default_under_reporting = s.under_reporting.with("under_reporting", None)?;
        check_name("default_product", &s.default_product)?;
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
            for (i, src) in p.sources.iter().enumerate() {
                let key = format!("products.{product}.sources[{i}]");
                if !src.contains(':') {
                    return err(format!(
                        "{key}: `{src}` must be `kind:namespace`, e.g. `github:acme/payments`"
                    ));
                }
                if let Some(prev) = source_map.insert(src.clone(), product.clone()) {
                    return err(format!(
                        "{key}: `{src}` is already mapped onto product `{prev}`"
                    ));
                }
            }
            for stage in p.stage_owners.keys().chain(p.leak_targets.keys()) {
                if pipeline.index(stage).is_none() {
                    return err(format!("products.{product}: unknown stage `{stage}`"));
                }
            }
            for (stage, t) in &p.leak_targets {
                if !(0.0..=1.0).contains(t) {
                    return err(format!(
                        "products.{product}.leak_targets.{stage}: {t} is not a ratio in 0..1"
                    ));
                }
            }
            for cause in p.cause_owners.keys() {
                if !causes.iter().any(|(n, _)| n == cause) {
                    return err(format!(
                        "products.{product}.cause_owners: unknown cause `{cause}`"
                    ));
                }
            }
        }
        for (i, p) in s.pinned_products.iter().enumerate() {
            check_name(&format!("pinned_products[{i}]"), p)?;
        }
        let mut rules = Vec::new();
        for (i, r) in s.releases.rules.iter().enumerate() {
            let re = regex::Regex::new(&r.pattern)
                .map_err(|e| ConfigError(format!("releases.rules[{i}].pattern: {e}")))?;
            rules.push(ReleaseRule {
                source: r.source.clone(),
                pattern: re,
                replace: r.replace.clone(),
            });
        }
        // A token that is set but blank is an error, never a disabled token.
        let api_token = match (&s.api_token, &s.api_token_file) {
            (Some(t), _) if t.trim().is_empty() => {
                return Err(ConfigError(
                    "api_token: is set (`api_token` or BUG_ESCAPE_API_TOKEN) but empty or white space only; set a token or unset it".into(),
                ));
            }
            (Some(t), _) => Some(header_safe("api_token", t.trim())?.to_owned()),
            (None, Some(path)) => {
                let t = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!(
                        "api_token_file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                let t = t.trim();
                if t.is_empty() {
                    return Err(ConfigError(format!(
                        "api_token_file: {} holds no token (empty or white space only)",
                        path.display()
                    )));
                }
                Some(header_safe("api_token_file", t)?.to_owned())
            }
            (None, None) => None,
        };
        let webhooks = webhooks::WebhooksConfig::from_settings(&s.webhooks, &pipeline)?;
        let sync = s.sync.validate()?;
        let web = match &s.web_config_file {
            Some(path) => web::WebConfig::load(path)?,
            None => web::WebConfig::default(),
        };
        Ok(Self {
            listen,
            telemetry_path: s.telemetry_path,
            db: s.db,
            max_body_bytes: s.max_body_bytes,
            write_queue_bytes: s.write_queue_bytes,
            write_queue_wait,
            write_timeout,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
            max_connections: s.max_connections,
            unauthenticated_bytes: s.unauthenticated_bytes,
            max_releases: s.max_releases,
            max_products: s.max_products,
            recent_releases: s.recent_releases,
            maturity_ages: ages,
            pipeline,
            causes,
            severities: s.severities,
            teams: s.teams,
            default_bands,
            default_under_reporting,
            default_product: s.default_product,
            pinned_products: s.pinned_products,
            products: s.products,
            source_map,
            release_rules: ReleaseRules::new(rules, s.releases.fold_prereleases),
            allow_vendor_sources: s.allow_vendor_sources,
            api_token,
            webhooks,
            sync,
            web,
        })
    }

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

    /// A digest of everything that decides how stored rows are keyed (products,
    /// releases); when it changes, stored defects are re-keyed at start.
    pub fn keying_fingerprint(&self) -> String {
        let rules: Vec<String> = self
            .release_rules
            .rules()
            .iter()
            .map(|r| format!("{:?}|{}|{}", r.source, r.pattern.as_str(), r.replace))
            .collect();
        // The version changes with the built-in pre-release folding, which no
        // setting shows: v2 folds only `x.y.z-…` and `x.y-<letter>…`.
        format!(
            "v2;map={:?};rules={:?};fold={}",
            self.source_map,
            rules,
            self.release_rules.folds()
        )
    }
}

/// `maturity_ages`: durations in range, no age twice (`30d` and `720h` are
/// the same age: two series with the same numbers).
fn maturity_ages(v: &[String]) -> Result<Vec<(String, Duration)>, ConfigError> {
    let mut ages: Vec<(String, Duration)> = Vec::new();
    for (i, a) in v.iter().enumerate() {
        let key = format!("maturity_ages[{i}]");
        let d = ranges::AGE.parse(&key, a)?;
        if let Some(j) = ages.iter().position(|(_, seen)| *seen == d) {
            return Err(ConfigError(format!(
                "{key}: `{a}` is listed twice (the same age as maturity_ages[{j}], `{}`)",
                ages[j].0
            )));
        }
        ages.push((a.clone(), d));
    }
    Ok(ages)
}

fn bands(key: &str, base: &BandSettings, o: Option<&BandOverride>) -> Result<Bands, ConfigError> {
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

/// A token sent or compared in an HTTP header: no control characters (a
/// client could never send it), named by key, never shown.
pub fn header_safe<'a>(key: &str, token: &'a str) -> Result<&'a str, ConfigError> {
    if token.chars().any(char::is_control) {
        return Err(ConfigError(format!(
            "{key}: holds a control character, which no HTTP header can carry (the value is not shown)"
        )));
    }
    Ok(token)
}

/// Checks a configured label value: non-empty, at most [`MAX_LABEL_LEN`]
/// characters, no control characters.
pub fn check_name(key: &str, v: &str) -> Result<(), ConfigError> {
    crate::model::label::check_label(v).map_err(|reason| ConfigError(format!("{key}: {reason}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).expect("write");
        Config::from_settings(Settings::load(Some(&file), &Overrides::default())?)
    }

    #[test]
    fn file_errors_name_the_line_and_key_in_arrays_and_flattened_tables() {
        let stage = |name: &str, phase: &str| {
            format!("[[stages]]\nname = \"{name}\"\nphase = \"{phase}\"\nowner = \"x\"\n")
        };
        let e = load(&format!(
            "{}{}",
            stage("a", "pre_release"),
            stage("b", "prod")
        ))
        .unwrap_err();
        assert!(
            e.0.contains("c.toml:7:1: stages[1].phase: unknown value `prod`"),
            "{e}"
        );
        let e = load(&format!(
            "{}[[stages]]\nname = \"b\"\n",
            stage("a", "pre_release")
        ))
        .unwrap_err();
        assert!(
            e.0.contains("c.toml:5:1: stages[1]: missing key `phase`"),
            "{e}"
        );
        let e = load(&format!("{}nmae = 3\n", stage("a", "pre_release"))).unwrap_err();
        assert!(
            e.0.contains("c.toml:5:1: stages[0].nmae: unknown key"),
            "{e}"
        );
        let e = load("[webhooks.jira]\nprojects = [\"PAY\"]\nsecret = [\"s3cr3t-value\", 7]\n")
            .unwrap_err();
        assert!(
            e.0.contains("c.toml:3:27: webhooks.jira.secret[1]: must be a string"),
            "{e}"
        );
        assert!(!e.0.contains("s3cr3t"), "{e}");
        let e = load("[webhooks.gitlab]\nprojects = 5\n").unwrap_err();
        assert!(
            e.0.contains("c.toml:2:1: webhooks.gitlab.projects: expected"),
            "{e}"
        );
        let e = load("[webhooks.gitlab.prefixes]\nstage = 5\n").unwrap_err();
        assert!(
            e.0.contains(
                "c.toml:2:1: webhooks.gitlab.prefixes.stage: expected a string, found an integer"
            ),
            "{e}"
        );
    }

    #[test]
    fn vendor_sources_are_closed_to_the_generic_api_unless_allowed() {
        assert!(!load("").expect("valid").allow_vendor_sources);
        assert!(
            load("allow_vendor_sources = true")
                .expect("valid")
                .allow_vendor_sources
        );
        let e = load(r#"allow_vendor_sources = "sometimes""#).unwrap_err();
        assert!(e.0.contains("allow_vendor_sources"), "{e}");
    }

    #[test]
    fn under_reporting_has_defaults_per_product_overrides_and_bounds() {
        let c = load(
            "[under_reporting]\nmin_predecessors = 4\n\
             [products.payments.under_reporting]\ndrop_ratio = 0.3\n",
        )
        .expect("valid");
        let d = c.under_reporting("search");
        assert_eq!((d.drop_ratio, d.min_predecessors), (0.5, 4));
        let p = c.under_reporting("payments");
        assert_eq!((p.drop_ratio, p.min_predecessors), (0.3, 4));
        for (toml, key) in [
            (
                "[under_reporting]\ndrop_ratio = 1.0",
                "under_reporting.drop_ratio",
            ),
            (
                "[under_reporting]\nmin_predecessors = 0",
                "under_reporting.min_predecessors",
            ),
            (
                "[products.payments.under_reporting]\ndrop_ratio = -0.1",
                "products.payments.under_reporting.drop_ratio",
            ),
            ("[under_reporting]\ndrop_ratoi = 0.4", "drop_ratoi"),
        ] {
            let e = load(toml).unwrap_err();
            assert!(e.0.contains(key), "{toml}: {e}");
        }
    }

    #[test]
    fn connection_bounds_have_defaults_and_are_validated() {
        let c = load("").expect("valid");
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.body_read_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(5));
        assert_eq!(c.max_connections, 512);
        assert_eq!(c.unauthenticated_bytes, 16 * 1024 * 1024);
        let c = load("idle_timeout = \"2s\"\nheader_read_timeout = \"1s\"\nmax_connections = 3")
            .expect("valid");
        assert_eq!(c.idle_timeout, Duration::from_secs(2));
        assert_eq!(c.header_read_timeout, Duration::from_secs(1));
        assert_eq!(c.max_connections, 3);
        for (toml, key) in [
            ("idle_timeout = \"0s\"", "idle_timeout"),
            ("header_read_timeout = \"soon\"", "header_read_timeout"),
            ("body_read_timeout = \"\"", "body_read_timeout"),
            ("max_connections = 0", "max_connections"),
            ("unauthenticated_bytes = 10", "unauthenticated_bytes"),
        ] {
            let e = load(toml).unwrap_err();
            assert!(e.0.contains(key), "{toml}: {e}");
        }
    }
}
