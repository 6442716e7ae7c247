//! Sources: the vendors that report defects and releases (GitHub, GitLab,
//! Jira, Sentry), one folder each. A source is its webhook (payload ->
//! items, authentication) and its `sync` listing (backfill and reconcile
//! from the vendor's REST API through the **same conversion the webhook
//! uses**, written through the store's writer rules page by page:
//! idempotent, and stale-safe because an item is ordered by the vendor's
//! own `updated_at` exactly like a webhook delivery of it).
//!
//! Shared by every source:
//! - [`signature`]: webhook authentication (HMAC, tokens, Standard Webhooks);
//!   [`conventions`]: label conventions; [`links`]: links between the
//!   configured sources' issues read from a record's text; [`webhook`]: field readers, vendor
//!   time formats, the release-event parser.
//! - [`client`]: pagination helpers, rate limits, retries with backoff,
//!   bounded answers; [`origin`]: the one origin a pass calls and the URL
//!   encoder; [`ratelimit`]: the rate-limit headers read into a wait;
//!   [`redact`]: configured secrets blanked out of vendor text;
//!   [`sink`]: the store as a pass writes to it.
//! - [`listing`]: what one source adds to `sync` ([`Listing`]: URLs, page
//!   shapes, conversions); [`pass`](mod@pass): the driver (cursors, writes, the
//!   deletion sweep); [`error`]: why a pass fails; [`periodic`]: `serve`'s
//!   reconcile.
//!
//! [`Vendor`] is what a source is; [`REGISTRY`] lists them, and the webhook
//! route (`POST /webhooks/<name>`) and `sync <name>` look a source up there
//! by its name. Adding one: docs/adding-a-source.md.
//!
//! `sources` sits between the commands (`http`, `cmd`, `app`) and `ingest`:
//! it uses `ingest`, `store`, `metrics`, `config`, `model`, never `http` or
//! `cmd`.

pub mod client;
pub mod conventions;
pub mod error;
pub mod links;
pub mod listing;
pub mod origin;
pub mod parts;
pub mod pass;
pub mod periodic;
pub mod ratelimit;
pub mod redact;
pub mod signature;
pub mod sink;
pub mod webhook;

pub mod github;
pub mod gitlab;
pub mod jira;
pub mod sentry;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::time::Millis;
use crate::telemetry::Telemetry;
pub use error::SyncError;
pub use listing::{Entry, Feed, Page};
pub use pass::{Options, PassResult, Progress, Quiet, Run, Summary, pass};
use signature::AuthError;
pub use sink::Sink;
use webhook::{AdapterError, Parsed};

/// Every source, in the order of `telemetry::sync::SOURCES`: the one list the
/// webhook route and `sync` find a source in.
pub static REGISTRY: &[Source] = &[
    Source(&github::GITHUB),
    Source(&gitlab::GITLAB),
    Source(&jira::JIRA),
    Source(&sentry::SENTRY),
];

/// A pass's future (boxed: every source's is one type).
pub type PassFuture<'a> = Pin<Box<dyn Future<Output = PassResult> + Send + 'a>>;

/// The future of [`Vendor::complete`].
pub type CompleteFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// [`Vendor::complete`] of a source whose deliveries carry all.
pub fn nothing_to_complete<'a>(
    _: &'a Config,
    _: &'a Telemetry,
    _: &'a mut Value,
) -> CompleteFuture<'a> {
    Box::pin(std::future::ready(()))
}

/// A webhook's check of a delivery's credentials: the configuration, the
/// headers, and the raw body once read.
pub type Authenticate = fn(&Config, &HeaderMap, Option<&[u8]>) -> Result<(), AuthError>;

/// What a source is: its name, its webhook (authentication and conversion)
/// and its `sync` listing. One `static` per folder of `sources`, listed in
/// [`REGISTRY`].
pub struct Vendor {
    /// The name: `/webhooks/<name>`, `sync <name>`, the `source` label and
    /// the defects' namespace kind.
    pub name: &'static str,
    /// The ingress its items are counted under.
    pub ingress: Ingress,
    /// How many webhook secrets are configured (none: events are refused,
    /// 503), and the variables that set them, for that message.
    pub secrets: fn(&Config) -> (usize, &'static str),
    /// Checks a delivery's credentials over the raw body. With the body
    /// `None` (not read yet) only the checks that need no body run.
    pub authenticate: Authenticate,
    /// Whether a delivery may also come form-encoded, its JSON in the
    /// `payload` field (GitHub's other content type).
    pub form_payload: bool,
    /// Converts one authenticated delivery.
    pub parse: fn(&HeaderMap, &Value, &Config, Millis) -> Result<Parsed, AdapterError>,
    /// Completes an authenticated delivery from the source's API before it
    /// is converted, as `sync` completes a listed issue
    /// ([`pass::complete_delivery`]); [`nothing_to_complete`] for sources
    /// whose deliveries carry all.
    pub complete: for<'a> fn(&'a Config, &'a Telemetry, &'a mut Value) -> CompleteFuture<'a>,
    /// `serve`'s reconcile interval, when configured.
    pub sync_interval: fn(&Config) -> Option<Duration>,
    /// One `sync` pass: [`pass::run`] over the source's [`Listing`].
    pub pass: for<'a, 'b> fn(Source, Run<'a>, &'a mut Sink<'b>) -> PassFuture<'a>,
}

pub use listing::Listing;

/// A registered source, by value: what commands and metrics pass around.
#[derive(Clone, Copy)]
pub struct Source(&'static Vendor);

impl Source {
    /// The source named `name`.
    pub fn by_name(name: &str) -> Option<Source> {
        REGISTRY.iter().copied().find(|s| s.as_str() == name)
    }

    /// The label value (`github`).
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// The ingress of its items.
    pub fn ingress(self) -> Ingress {
        self.0.ingress
    }

    /// `serve`'s reconcile interval for it, when configured.
    pub fn interval(self, config: &Config) -> Option<Duration> {
        (self.0.sync_interval)(config)
    }

    /// What it is.
    pub fn vendor(self) -> &'static Vendor {
        self.0
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Source {}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.as_str())
    }
}

/// `sync <source>`: the registry's names are the values.
impl clap::ValueEnum for Source {
    fn value_variants<'a>() -> &'a [Self] {
        REGISTRY
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_its_metrics_initialised() {
        let names: Vec<&str> = REGISTRY.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, crate::telemetry::sync::SOURCES);
        assert_eq!(names, crate::ingest::generic::WEBHOOK_SOURCES);
        for s in REGISTRY {
            assert_eq!(s.as_str(), s.ingress().as_str());
            assert_eq!(Source::by_name(s.as_str()), Some(*s));
        }
    }
}
