//! GitHub: issues and releases of repositories. Its settings are `[webhooks.github]`
//! (`config::webhooks::github`; docs/sources/github.md); [`webhook`] turns a
//! delivery into items, [`sync`] lists the REST API through the same
//! conversions.

pub mod sync;
pub mod webhook;

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::signature::{self, AuthError};
use super::webhook::{AdapterError, Parsed};
use super::{PassFuture, Run, Sink, Source, Vendor, pass};
use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::time::Millis;

/// The GitHub source, as the registry lists it.
pub struct Github;

impl Vendor for Github {
    fn name(&self) -> &'static str {
        webhook::SOURCE
    }

    fn ingress(&self) -> Ingress {
        Ingress::Github
    }

    fn secrets(&self, config: &Config) -> (usize, &'static str) {
        (
            config.webhooks.github.secrets.iter().count(),
            "BUG_ESCAPE_GITHUB_SECRET",
        )
    }

    fn authenticate(
        &self,
        config: &Config,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        signature::hmac_header(
            &config.webhooks.github.secrets,
            headers,
            body,
            ("x-hub-signature-256", "sha256=", "X-Hub-Signature-256"),
        )
    }

    fn form_payload(&self) -> bool {
        true
    }

    fn parse(
        &self,
        headers: &HeaderMap,
        body: &Value,
        config: &Config,
        now: Millis,
    ) -> Result<Parsed, AdapterError> {
        webhook::parse(headers, body, config, now)
    }

    fn sync_interval(&self, config: &Config) -> Option<Duration> {
        config.webhooks.github.sync_interval
    }

    fn pass<'a>(&'a self, source: Source, run: Run<'a>, sink: &'a mut Sink<'_>) -> PassFuture<'a> {
        Box::pin(async move { pass::run(&sync::Github::new(run.config), source, run, sink).await })
    }
}
