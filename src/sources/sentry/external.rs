//! Sentry's external issues
//! (`GET /api/0/organizations/{org}/issues/{id}/external-issues/`): the
//! tickets Sentry's integrations opened or linked for an issue. The webhook
//! and `sync` ask for them when an API token and the organisation are
//! configured and linking is on ([`wanted`]); the answer goes into the issue object under
//! [`KEY`] (`Listing::parts`), and the one conversion reads each one's
//! `url` as it reads the issue's annotations.

use serde_json::Value;

use crate::config::Config;
use crate::model::event::LinkRef;
use crate::sources::parts;
use crate::sources::webhook::At;

/// Where the external issues sit in a completed issue object.
pub const KEY: &str = "externalIssues";

/// Whether external issues are read: issues counted, linking on, an API to
/// ask, and the organisation.
pub fn wanted(config: &Config) -> bool {
    let s = &config.webhooks.sentry;
    s.links
        && s.count_issues
        && s.api_token.is_some()
        && s.organization
            .as_deref()
            .is_some_and(|o| !o.trim().is_empty())
}

/// The links of the annotations (`annotated`) and the external issues the
/// issue object carries ([`parts::with_part`]).
pub fn with_external(
    config: &Config,
    issue: &At<'_>,
    annotated: Option<Vec<LinkRef>>,
) -> Option<Vec<LinkRef>> {
    parts::with_part(config, issue, KEY, wanted(config), issue_url, annotated)
}

/// One item's URL.
fn issue_url(l: &Value) -> Option<&str> {
    l.get("url")?.as_str()
}
