//! Jira's remote links (`GET /rest/api/2/issue/{id}/remotelink`): the links
//! a Jira issue holds to pages outside Jira (a GitLab or GitHub issue, a
//! Sentry issue). Neither the webhook nor the search carries them, so both
//! ask for them when an API token is configured and linking is on
//! ([`wanted`]); the answer goes into the issue object under [`KEY`]
//! (`Listing::parts`), and the one conversion reads each link's
//! `object.url` as it reads the description.

use serde_json::Value;

use crate::config::Config;
use crate::model::event::LinkRef;
use crate::sources::parts;
use crate::sources::webhook::At;

/// Where the remote links sit in a completed issue object.
pub const KEY: &str = "remotelinks";

/// Whether remote links are read: linking on, and an API to ask.
pub fn wanted(config: &Config) -> bool {
    let jira = &config.webhooks.jira;
    jira.links && jira.api.token.is_some() && !jira.api.url.is_empty()
}

/// The links of the description (`text`) and the remote links the issue
/// object carries ([`parts::with_part`]).
pub fn with_remote(
    config: &Config,
    issue: &At<'_>,
    text: Option<Vec<LinkRef>>,
) -> Option<Vec<LinkRef>> {
    parts::with_part(config, issue, KEY, wanted(config), remote_url, text)
}

/// One item's URL.
fn remote_url(l: &Value) -> Option<&str> {
    l.get("object")?.get("url")?.as_str()
}
