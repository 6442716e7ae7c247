//! Settings: embedded defaults, then a TOML file, then `BUG_ESCAPE_*` environment
//! variables, then command-line flags (flags win). [`Settings::load`] merges the
//! layers; [`Config::from_settings`] validates them into the typed form the rest of
//! the exporter trusts.
//!
//! The rooms: `settings` (the serde layers and their defaults), `load`
//! (merging them), and one room per section that holds its settings types
//! and their validation: `server` (address, paths, limits, timeouts, API
//! token), `pipeline` (stages, causes), `labels` (severities, teams, pinned
//! products, maturity ages), `products` (bands, under-reporting, per-product
//! overrides) and `releases` (release-name rules). Their public types are
//! re-exported here, so `crate::config::Settings` and the like stay put.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::release::ReleaseRules;
use crate::model::stage::Pipeline;

pub use crate::model::label::MAX_LABEL_LEN;
pub use labels::check_name;
pub use origins::Origins;
pub use pipeline::{CauseSettings, StageSettings};
pub use products::{
    BandOverride, BandSettings, Bands, ProductSettings, UnderReportingOverride,
    UnderReportingSettings,
};
pub use releases::{ReleaseSettings, RuleSettings};
pub use server::header_safe;
pub use settings::{Checkpoint, DEFAULT_LISTEN, ENV_KEYS, Overrides, Settings};

pub mod env;
mod file;
mod labels;
mod load;
mod origins;
mod pipeline;
mod products;
pub mod ranges;
pub mod redact;
mod releases;
mod server;
mod settings;
pub mod suggest;
pub mod sync;
pub mod web;
pub mod webhooks;

/// A configuration that cannot be used, with what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

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
    /// Who checkpoints the WAL (`checkpoint`).
    pub checkpoint: Checkpoint,
    pub api_token: Option<String>,
    /// Source webhooks (secrets never printed).
    pub webhooks: webhooks::WebhooksConfig,
    /// `sync`'s behaviour towards the vendors' APIs.
    pub sync: sync::SyncConfig,
    /// TLS, basic auth and response headers (`web_config_file`).
    pub web: web::WebConfig,
}

impl Config {
    /// Validates `settings`; every error names the setting at fault, and
    /// where it was written when the settings were loaded.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let origins = s.origins.clone();
        Self::validate(s).map_err(|e| origins.locate(e))
    }

    /// Validates section by section, in a fixed order, so a file with
    /// several mistakes always names the same one first.
    fn validate(s: Settings) -> Result<Self, ConfigError> {
        let server = server::Server::check(&s)?;
        let maturity_ages = labels::maturity_ages(&s.maturity_ages)?;
        let pipeline = pipeline::pipeline(&s.stages)?;
        let causes = pipeline::causes(&s.causes)?;
        labels::check_lists(&s)?;
        let default_bands = products::bands("bands", &s.bands, None)?;
        let default_under_reporting = s.under_reporting.with("under_reporting", None)?;
        check_name("default_product", &s.default_product)?;
        let source_map = products::source_map(&s, &pipeline, &causes)?;
        labels::check_pinned(&s.pinned_products)?;
        let release_rules = releases::rules(&s.releases)?;
        let api_token = server::api_token(s.api_token.as_deref(), s.api_token_file.as_deref())?;
        let webhooks = webhooks::WebhooksConfig::from_settings(&s.webhooks, &pipeline)?;
        let sync = s.sync.validate()?;
        let web = match &s.web_config_file {
            Some(path) => web::WebConfig::load(path)?,
            None => web::WebConfig::default(),
        };
        Ok(Self {
            listen: server.listen,
            telemetry_path: s.telemetry_path,
            db: s.db,
            max_body_bytes: s.max_body_bytes,
            write_queue_bytes: s.write_queue_bytes,
            write_queue_wait: server.write_queue_wait,
            write_timeout: server.write_timeout,
            header_read_timeout: server.header_read_timeout,
            body_read_timeout: server.body_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections: s.max_connections,
            unauthenticated_bytes: s.unauthenticated_bytes,
            max_releases: s.max_releases,
            max_products: s.max_products,
            recent_releases: s.recent_releases,
            maturity_ages,
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
            release_rules,
            allow_vendor_sources: s.allow_vendor_sources,
            checkpoint: s.checkpoint,
            api_token,
            webhooks,
            sync,
            web,
        })
    }
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
    fn checkpoint_is_the_exporters_unless_left_to_a_replicator() {
        assert_eq!(load("").expect("valid").checkpoint, Checkpoint::Exporter);
        assert_eq!(
            load(r#"checkpoint = "external""#)
                .expect("valid")
                .checkpoint,
            Checkpoint::External
        );
        let e = load(r#"checkpoint = "litestream""#).unwrap_err();
        assert!(
            e.0.contains("checkpoint") && e.0.contains("exporter, external"),
            "{e}"
        );
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
