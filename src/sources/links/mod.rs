//! Links read from what the sources send (docs/semantics.md, "Linked
//! records"): a record that names an issue of another configured source (or
//! of its own) is the same defect as that issue. Read by webhooks and `sync`
//! alike, through each source's one conversion:
//!
//! - a Jira, GitHub or GitLab issue's description or body ([`record_links`]:
//!   wiki text, Markdown or Atlassian Document Format), which also gives the
//!   record its own **alias** (`PAY-123`, `owner/repo#12`,
//!   `group/project#12`), the name other records link to it by;
//! - a Sentry issue's `annotations` and its external issues
//!   ([`annotation_links`]).
//!
//! Which URLs and names count is [`LinkTargets`] (the configuration), how a
//! text is read is [`text_links`]. Only issues of configured sources count:
//! a URL of another host, organisation, repository or project is ignored.

use serde_json::Value;

use crate::config::Config;
use crate::model::event::{LinkRef, MAX_LINKS_PER_RECORD};

mod targets;
mod text;

pub use targets::{GithubTarget, GitlabTarget, JiraTarget, LinkTargets, SentryTarget, Site};
pub use text::text_links;

/// The links of a tracker record whose text (description, body) is `text`,
/// its own `alias` first (never dropped by the cap): `None` when linking is
/// off for its source (`enabled`) or the payload does not carry the text at
/// all (`text` is `None`; `null` is an empty text), so the stored links are
/// kept; otherwise `Some` of the alias and the links found (at most
/// [`MAX_LINKS_PER_RECORD`] in all).
pub fn record_links(
    config: &Config,
    enabled: bool,
    alias: Option<LinkRef>,
    text: Option<&Value>,
) -> Option<Vec<LinkRef>> {
    let text = text.filter(|_| enabled)?;
    let mut out: Vec<LinkRef> = alias.into_iter().collect();
    for l in value_links(&LinkTargets::of(config), text) {
        text::push(&mut out, l);
    }
    Some(out)
}

/// `links` and, after them, the links the URLs `urls` name (each once, at
/// most [`MAX_LINKS_PER_RECORD`] in all): a part of an issue only a further
/// API call gives (`sources::parts`).
pub fn with_urls<'a>(
    config: &Config,
    mut links: Vec<LinkRef>,
    urls: impl IntoIterator<Item = &'a str>,
) -> Vec<LinkRef> {
    let targets = LinkTargets::of(config);
    for url in urls {
        for l in text_links(&targets, url) {
            text::push(&mut links, l);
        }
    }
    links
}

/// The links of a JSON value whose every string is read as text (in
/// document order): a string, Atlassian Document Format (text nodes,
/// `link` marks' `href`, cards' `url`), a list of them. Each once, at most
/// [`MAX_LINKS_PER_RECORD`].
pub fn value_links(targets: &LinkTargets, value: &Value) -> Vec<LinkRef> {
    let mut out = Vec::new();
    if !targets.is_empty() {
        collect(value, targets, &mut out);
    }
    out
}

/// The links of a Sentry issue's `annotations` or of its external issues
/// (`GET /api/0/organizations/{org}/issues/{id}/external-issues/`): older
/// Sentry lists HTML strings (`<a href="https://acme.atlassian.net/browse/PAY-1">PAY-1</a>`),
/// newer objects (`{"displayName": "PAY-1", "url": "https://…"}`), the
/// external issues `{"key", "url", "displayName", …}`; every string is read
/// as text ([`value_links`]), so a URL or a name of a configured source
/// counts, anything else is ignored.
pub fn annotation_links(targets: &LinkTargets, value: &Value) -> Vec<LinkRef> {
    value_links(targets, value)
}

fn collect(v: &Value, targets: &LinkTargets, out: &mut Vec<LinkRef>) {
    if out.len() >= MAX_LINKS_PER_RECORD {
        return;
    }
    match v {
        Value::String(s) => {
            for l in text_links(targets, s) {
                text::push(out, l);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, targets, out)),
        Value::Object(o) => o.values().for_each(|x| collect(x, targets, out)),
        _ => {}
    }
}

/// The alias of a Jira issue: its key (`PAY-123`, uppercase), when `key` is one.
pub fn jira_alias(key: Option<&str>) -> Option<LinkRef> {
    let key = key?.trim().to_ascii_uppercase();
    let (project, n) = key.rsplit_once('-')?;
    let number = !n.is_empty() && n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit());
    (number && targets::is_project_key(project)).then(|| LinkRef {
        source: "jira".into(),
        id: key.clone(),
    })
}

/// The alias of issue `number` of a GitHub repository (`full_name`) or a
/// GitLab project (`path_with_namespace`): `owner/repo#12`, lowercase, under
/// `source`.
pub fn path_alias(source: &str, path: &str, number: &str) -> LinkRef {
    LinkRef {
        source: source.into(),
        id: format!("{}#{number}", path.trim().to_lowercase()),
    }
}

#[cfg(test)]
mod tests;
