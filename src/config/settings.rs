//! The raw, layered settings as a user writes them (the serde form of the
//! TOML file, the environment and the flags), with their defaults. The
//! section types live with their validation (products, pipeline, releases);
//! [`super::Config`] is what the rest of the exporter trusts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::stage::Phase;

use super::pipeline::{CauseSettings, StageSettings};
use super::products::{BandSettings, ProductSettings, UnderReportingSettings};
use super::releases::ReleaseSettings;
use super::{Origins, sync, webhooks};

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
    /// Who checkpoints the WAL: the exporter, or a replicator beside it
    /// (Litestream) that holds a read transaction and checkpoints itself.
    pub checkpoint: Checkpoint,
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

impl Default for Settings {
    fn default() -> Self {
        let stage = |name: &str, phase, owner: &str| StageSettings {
            name: name.into(),
            phase,
            owner: owner.into(),
            leak_target: None,
            // Development is untracked: teams rarely file a defect caught
            // while coding, so its leak is near 1 and says nothing; its
            // defects still count in T(R).
            tracked: name != "development",
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
            checkpoint: Checkpoint::Exporter,
            api_token: None,
            api_token_file: None,
            webhooks: webhooks::WebhooksSettings::default(),
            sync: sync::SyncSettings::default(),
            web_config_file: None,
            origins: Origins::default(),
        }
    }
}

/// The `checkpoint` key: who folds the WAL back into the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// The writer: a PASSIVE checkpoint past 2,048 WAL pages, a TRUNCATE
    /// when idle (never waiting for a reader) and at shutdown.
    #[default]
    Exporter,
    /// A replicator beside it (Litestream): no idle or shutdown TRUNCATE;
    /// the writer's PASSIVE checkpoint only past a safety bound above
    /// Litestream's own thresholds, so the WAL stays bounded without it.
    External,
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
    "checkpoint",
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
