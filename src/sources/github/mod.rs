//! GitHub: issues and releases of repositories. Its settings are
//! `[webhooks.github]` (`config::webhooks::github`; docs/sources/github.md);
//! [`webhook`] turns a delivery into items, [`sync`] lists the REST API
//! through the same conversions.

pub mod sync;
pub mod webhook;

use super::{Vendor, pass, signature};
use crate::model::event::Ingress;

/// The GitHub source, as the registry lists it.
pub static GITHUB: Vendor = Vendor {
    name: webhook::SOURCE,
    ingress: Ingress::Github,
    secrets: |c| {
        (
            c.webhooks.github.secrets.iter().count(),
            "BUG_ESCAPE_GITHUB_SECRET",
        )
    },
    authenticate: |c, headers, body| {
        let header = ("x-hub-signature-256", "sha256=", "X-Hub-Signature-256");
        signature::hmac_header(&c.webhooks.github.secrets, headers, body, header)
    },
    form_payload: true,
    parse: webhook::parse,
    complete: super::nothing_to_complete,
    sync_interval: |c| c.webhooks.github.sync_interval,
    pass: |source, run, sink| {
        Box::pin(async move { pass::run(&sync::Github::new(run.config), source, run, sink).await })
    },
};
