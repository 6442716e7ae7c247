//! GitLab (gitlab.com or self-managed): issues and releases of projects. Its
//! settings are `[webhooks.gitlab]` (`config::webhooks::gitlab`;
//! docs/sources/gitlab.md); [`webhook`] authenticates a delivery (token or
//! signature) and turns it into items, [`sync`] lists the REST API through
//! the same conversions.

pub mod sync;
pub mod webhook;

use super::{Vendor, pass};
use crate::model::event::Ingress;

/// The GitLab source, as the registry lists it.
pub static GITLAB: Vendor = Vendor {
    name: webhook::SOURCE,
    ingress: Ingress::Gitlab,
    secrets: |c| {
        let g = &c.webhooks.gitlab;
        let n = g.secrets.iter().count() + g.signing_keys.iter().count();
        (
            n,
            "BUG_ESCAPE_GITLAB_TOKEN or BUG_ESCAPE_GITLAB_SIGNING_SECRET",
        )
    },
    authenticate: |c, headers, body| webhook::authenticate(&c.webhooks.gitlab, headers, body),
    form_payload: false,
    parse: webhook::parse,
    complete: super::nothing_to_complete,
    sync_interval: |c| c.webhooks.gitlab.sync_interval,
    pass: |source, run, sink| {
        Box::pin(async move { pass::run(&sync::Gitlab::new(run.config), source, run, sink).await })
    },
};
