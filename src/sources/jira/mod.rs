//! Jira (Cloud or Data Center): issues and released versions of projects.
//! Its settings are `[webhooks.jira]` (`config::webhooks::jira`;
//! docs/sources/jira.md); [`webhook`] turns a delivery into items, [`sync`]
//! lists the REST API through the same conversions.

pub mod remote;
pub mod sync;
pub mod webhook;

use super::{Vendor, pass, signature};
use crate::model::event::Ingress;

/// The Jira source, as the registry lists it.
pub static JIRA: Vendor = Vendor {
    name: webhook::SOURCE,
    ingress: Ingress::Jira,
    secrets: |c| {
        (
            c.webhooks.jira.secrets.iter().count(),
            "BUG_ESCAPE_JIRA_SECRET",
        )
    },
    authenticate: |c, headers, body| {
        let header = ("x-hub-signature", "sha256=", "X-Hub-Signature");
        signature::hmac_header(&c.webhooks.jira.secrets, headers, body, header)
    },
    form_payload: false,
    parse: webhook::parse,
    complete: |c, t, v| {
        Box::pin(async move {
            pass::complete_delivery(&sync::Jira::new(c), c, t, Ingress::Jira, v).await;
        })
    },
    sync_interval: |c| c.webhooks.jira.sync_interval,
    pass: |source, run, sink| {
        Box::pin(async move { pass::run(&sync::Jira::new(run.config), source, run, sink).await })
    },
};
