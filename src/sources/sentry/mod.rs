//! Sentry: issues and releases of projects. Its settings are
//! `[webhooks.sentry]` (`config::webhooks::sentry`; docs/sources/sentry.md);
//! [`webhook`] turns a delivery into items, [`api`] asks the issue API for
//! an issue's first release, [`sync`] lists the REST API through the same
//! conversions.

pub mod api;
pub mod external;
pub mod sync;
pub mod webhook;

use super::{Vendor, pass, signature};
use crate::model::event::Ingress;

/// The Sentry source, as the registry lists it.
pub static SENTRY: Vendor = Vendor {
    name: webhook::SOURCE,
    ingress: Ingress::Sentry,
    secrets: |c| {
        (
            c.webhooks.sentry.secrets.iter().count(),
            "BUG_ESCAPE_SENTRY_SECRET",
        )
    },
    authenticate: |c, headers, body| {
        let header = ("sentry-hook-signature", "", "Sentry-Hook-Signature");
        signature::hmac_header(&c.webhooks.sentry.secrets, headers, body, header)
    },
    form_payload: false,
    parse: webhook::parse,
    complete: |c, t, v| {
        Box::pin(async move {
            pass::complete_delivery(&sync::Sentry::new(c), c, t, Ingress::Sentry, v).await;
        })
    },
    sync_interval: |c| c.webhooks.sentry.sync_interval,
    pass: |source, run, sink| {
        Box::pin(async move { pass::run(&sync::Sentry::new(run.config), source, run, sink).await })
    },
};
