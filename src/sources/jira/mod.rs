//! Jira (Cloud or Data Center): issues and released versions of projects. Its settings are `[webhooks.jira]`
//! (`config::webhooks::jira`; docs/sources/jira.md); [`webhook`] turns a
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

/// The Jira source, as the registry lists it.
pub struct Jira;

impl Vendor for Jira {
    fn name(&self) -> &'static str {
        webhook::SOURCE
    }

    fn ingress(&self) -> Ingress {
        Ingress::Jira
    }

    fn secrets(&self, config: &Config) -> (usize, &'static str) {
        (
            config.webhooks.jira.secrets.iter().count(),
            "BUG_ESCAPE_JIRA_SECRET",
        )
    }

    fn authenticate(
        &self,
        config: &Config,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        signature::hmac_header(
            &config.webhooks.jira.secrets,
            headers,
            body,
            ("x-hub-signature", "sha256=", "X-Hub-Signature"),
        )
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
        config.webhooks.jira.sync_interval
    }

    fn pass<'a>(&'a self, source: Source, run: Run<'a>, sink: &'a mut Sink<'_>) -> PassFuture<'a> {
        Box::pin(async move { pass::run(&sync::Jira::new(run.config), source, run, sink).await })
    }
}
