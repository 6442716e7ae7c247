//! Sentry: issues (their first release) and releases of projects. Its settings are `[webhooks.sentry]`
//! (`config::webhooks::sentry`; docs/sources/sentry.md); [`webhook`] turns a
//! delivery into items, [`sync`] lists the REST API through the same
//! conversions.

pub mod api;
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

/// The Sentry source, as the registry lists it.
pub struct Sentry;

impl Vendor for Sentry {
    fn name(&self) -> &'static str {
        webhook::SOURCE
    }

    fn ingress(&self) -> Ingress {
        Ingress::Sentry
    }

    fn secrets(&self, config: &Config) -> (usize, &'static str) {
        (
            config.webhooks.sentry.secrets.iter().count(),
            "BUG_ESCAPE_SENTRY_SECRET",
        )
    }

    fn authenticate(
        &self,
        config: &Config,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        signature::hmac_header(
            &config.webhooks.sentry.secrets,
            headers,
            body,
            ("sentry-hook-signature", "", "Sentry-Hook-Signature"),
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
        config.webhooks.sentry.sync_interval
    }

    fn pass<'a>(&'a self, source: Source, run: Run<'a>, sink: &'a mut Sink<'_>) -> PassFuture<'a> {
        Box::pin(async move { pass::run(&sync::Sentry::new(run.config), source, run, sink).await })
    }
}
