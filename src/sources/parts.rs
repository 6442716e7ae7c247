//! Parts of an issue object that only a further API call gives (Jira's
//! remote links, Sentry's external issues): `Listing::parts` puts each
//! answer into the object under its key, for `sync` and the webhook alike
//! (`pass::complete_delivery`), and the conversion reads the URLs it holds
//! here, as it reads the ticket's text ([`links`]).

use serde_json::Value;

use crate::config::Config;
use crate::model::event::LinkRef;
use crate::sources::links;
use crate::sources::webhook::At;

/// The links a record holds once the URLs of its part `key` are added to
/// `base` (those of its text): `None` (the stored links are kept) when
/// `base` is, or when the part is `wanted` but the object lacks it (the API
/// could not be read). `url` finds one item's URL.
pub fn with_part(
    config: &Config,
    object: &At<'_>,
    key: &str,
    wanted: bool,
    url: fn(&Value) -> Option<&str>,
    base: Option<Vec<LinkRef>>,
) -> Option<Vec<LinkRef>> {
    let base = base?;
    if !wanted {
        return Some(base);
    }
    let items = object.get(key).value()?.as_array()?;
    Some(links::with_urls(config, base, items.iter().filter_map(url)))
}
