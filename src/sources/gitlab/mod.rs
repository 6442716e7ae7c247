//! GitLab (gitlab.com or self-managed): issues and releases of projects. Its settings are `[webhooks.gitlab]`
//! (`config::webhooks::gitlab`; docs/sources/gitlab.md); [`webhook`] turns a
//! delivery into items, [`sync`] lists the REST API through the same
//! conversions.

pub mod sync;
pub mod webhook;

use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::Value;

use super::signature::AuthError;
use super::webhook::{AdapterError, Parsed};
use super::{PassFuture, Run, Sink, Source, Vendor, pass};
use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::time::Millis;

/// The GitLab source, as the registry lists it.
pub struct Gitlab;

impl Vendor for Gitlab {
    fn name(&self) -> &'static str {
        webhook::SOURCE
    }

    fn ingress(&self) -> Ingress {
        Ingress::Gitlab
    }

    fn secrets(&self, config: &Config) -> (usize, &'static str) {
        let g = &config.webhooks.gitlab;
        (
            g.secrets.iter().count() + g.signing_keys.iter().count(),
            "BUG_ESCAPE_GITLAB_TOKEN or BUG_ESCAPE_GITLAB_SIGNING_SECRET",
        )
    }

    fn authenticate(
        &self,
        config: &Config,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<(), AuthError> {
        webhook::authenticate(&config.webhooks.gitlab, headers, body)
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
        config.webhooks.gitlab.sync_interval
    }

    fn pass<'a>(&'a self, source: Source, run: Run<'a>, sink: &'a mut Sink<'_>) -> PassFuture<'a> {
        Box::pin(async move { pass::run(&sync::Gitlab::new(run.config), source, run, sink).await })
    }
}
