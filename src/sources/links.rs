//! Links read from a ticket's text (docs/semantics.md, "Linked records"): a
//! Jira, GitHub or GitLab issue whose description or body points at an issue
//! of the configured Sentry organisation is the same defect as that Sentry
//! issue. Only URLs of the configured organisation count:
//! `https://<org>.sentry.io/issues/<id>/…` and, at the host of
//! `[webhooks.sentry] api_url` (a self-hosted Sentry),
//! `<scheme>://<host>/organizations/<org>/issues/<id>/…`. Any other host or
//! organisation is ignored.

use serde_json::Value;

use crate::config::Config;
use crate::model::event::{LinkRef, MAX_LINKS_PER_RECORD};
use crate::sources::sentry;

/// The Sentry organisation whose issue URLs count as links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentryTarget {
    /// Organisation slug, lowercase.
    pub org: String,
    /// Host (and `:port`) of `api_url`, lowercase: where the
    /// `/organizations/<org>/issues/<id>/` form counts.
    pub host: Option<String>,
}

impl SentryTarget {
    /// The configured target; `None` without `[webhooks.sentry] organization`.
    pub fn of(config: &Config) -> Option<Self> {
        let se = &config.webhooks.sentry;
        let org = se.organization.as_ref()?.trim().to_ascii_lowercase();
        if org.is_empty() {
            return None;
        }
        let host = url::Url::parse(&se.api_url).ok().and_then(|u| {
            let h = u.host_str()?.to_ascii_lowercase();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        });
        Some(Self { org, host })
    }

    /// The hosts whose URLs count, for `check-config`.
    pub fn describe(&self) -> String {
        let mut s = format!("sentry issues of {0} at {0}.sentry.io", self.org);
        if let Some(h) = &self.host {
            s.push_str(&format!(" and {h}/organizations/{}", self.org));
        }
        s
    }
}

/// The links of a ticket whose text is `text` (a string, or Atlassian
/// Document Format JSON whose every string is read: text nodes, `link`
/// marks' `href`, cards' `url`): `None` when linking is off (`enabled`) or
/// the payload does not carry the field at all (`text` is `None`;
/// `null` is an empty text) (the stored links are kept);
/// otherwise `Some` of the links found, possibly empty.
pub fn ticket_links(config: &Config, enabled: bool, text: Option<&Value>) -> Option<Vec<LinkRef>> {
    let text = text.filter(|_| enabled)?;
    let Some(target) = SentryTarget::of(config) else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    collect(text, &target, &mut out);
    Some(out)
}

fn collect(v: &Value, target: &SentryTarget, out: &mut Vec<LinkRef>) {
    if out.len() >= MAX_LINKS_PER_RECORD {
        return;
    }
    match v {
        Value::String(s) => {
            for l in sentry_links(s, target) {
                push(out, l);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, target, out)),
        Value::Object(o) => o.values().for_each(|x| collect(x, target, out)),
        _ => {}
    }
}

fn push(out: &mut Vec<LinkRef>, l: LinkRef) {
    if out.len() < MAX_LINKS_PER_RECORD && !out.contains(&l) {
        out.push(l);
    }
}

/// The Sentry issues of `target` that `text` links to, each once, in order,
/// at most [`MAX_LINKS_PER_RECORD`].
pub fn sentry_links(text: &str, target: &SentryTarget) -> Vec<LinkRef> {
    let mut out = Vec::new();
    let saas = format!("{}.sentry.io", target.org);
    let org_path = format!("/organizations/{}/issues/", target.org);
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let n = rest.as_bytes()[..i]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let scheme = &rest[i - n..i];
        let after = &rest[i + 3..];
        rest = after;
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            continue;
        }
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || !is_url_char(c))
            .unwrap_or(after.len());
        let host = after[..end].to_ascii_lowercase();
        let path = &after[end..];
        let id = if host == saas {
            issue_id(path, "/issues/")
        } else if target.host.as_deref() == Some(host.as_str()) {
            issue_id(path, &org_path)
        } else {
            None
        };
        if let Some(id) = id {
            push(
                &mut out,
                LinkRef {
                    source: sentry::webhook::SOURCE.into(),
                    id: id.to_owned(),
                },
            );
        }
    }
    out
}

/// Characters of a URL's host part.
fn is_url_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')
}

/// The digits after `prefix` at the start of `path`, ended by anything but
/// a letter, digit, `-` or `_`.
fn issue_id<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let head = path.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let tail = &path[prefix.len()..];
    let n = tail.bytes().take_while(u8::is_ascii_digit).count();
    let next = tail[n..].chars().next();
    if n == 0 || n > 20 || next.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
        return None;
    }
    Some(&tail[..n])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target() -> SentryTarget {
        SentryTarget {
            org: "acme".into(),
            host: Some("sentry.example.com".into()),
        }
    }

    fn ids(text: &str) -> Vec<String> {
        sentry_links(text, &target())
            .into_iter()
            .map(|l| {
                assert_eq!(l.source, "sentry");
                l.id
            })
            .collect()
    }

    #[test]
    fn configured_org_matches_with_query_and_fragment() {
        let t =
            "Sentry Issue: [PAY-1A](https://acme.sentry.io/issues/4711/?referrer=jira_integration)";
        assert_eq!(ids(t), ["4711"]);
        assert_eq!(ids("see https://ACME.sentry.io/issues/12#events"), ["12"]);
        assert_eq!(ids("https://acme.sentry.io/issues/13?x=1"), ["13"]);
        assert_eq!(ids("[x|https://acme.sentry.io/issues/14/]"), ["14"]);
    }

    #[test]
    fn other_org_and_other_host_are_ignored() {
        assert!(ids("https://other.sentry.io/issues/4711/").is_empty());
        assert!(ids("https://acme.sentry.io.evil.com/issues/4711/").is_empty());
        assert!(ids("https://evil.com/organizations/acme/issues/4711/").is_empty());
        assert!(ids("https://sentry.example.com/organizations/other/issues/4711/").is_empty());
        assert!(ids("ftp://acme.sentry.io/issues/4711/").is_empty());
    }

    #[test]
    fn self_hosted_form_at_the_api_host() {
        assert_eq!(
            ids("http://sentry.example.com/organizations/acme/issues/99/?project=3"),
            ["99"]
        );
        // The self-hosted path form does not count at sentry.io unless
        // api_url names it; the SaaS form always does.
        assert!(ids("https://acme.sentry.io/organizations/acme/issues/5/").is_empty());
    }

    #[test]
    fn duplicates_once_and_capped() {
        let t = "https://acme.sentry.io/issues/1/ https://acme.sentry.io/issues/2 \
                 https://acme.sentry.io/issues/1/?a=b";
        assert_eq!(ids(t), ["1", "2"]);
        let many: String = (0..100)
            .map(|i| format!("https://acme.sentry.io/issues/{i}/ "))
            .collect();
        let got = ids(&many);
        assert_eq!(got.len(), MAX_LINKS_PER_RECORD);
        assert_eq!(got[0], "0");
    }

    #[test]
    fn garbage_is_ignored() {
        for t in [
            "",
            "://",
            "https://",
            "https://acme.sentry.io",
            "https://acme.sentry.io/issues/",
            "https://acme.sentry.io/issues/abc/",
            "https://acme.sentry.io/issues/12abc/",
            "https://acme.sentry.io/issues/123456789012345678901234/",
            "https://acme.sentry.io/issue/12/",
            "ünïcödé://acme.sentry.io/issues/1é",
        ] {
            assert!(ids(t).is_empty(), "{t}");
        }
    }

    fn config(org: Option<&str>) -> Config {
        let mut s = crate::config::Settings::default();
        s.webhooks.sentry.organization = org.map(str::to_owned);
        s.webhooks.sentry.api.api_url = "https://sentry.example.com".into();
        Config::from_settings(s).unwrap()
    }

    #[test]
    fn ticket_text_present_absent_null_and_adf() {
        let c = config(Some("acme"));
        let one = |id: &str| {
            vec![LinkRef {
                source: "sentry".into(),
                id: id.into(),
            }]
        };
        let text = serde_json::json!("see https://acme.sentry.io/issues/7/");
        assert_eq!(ticket_links(&c, true, Some(&text)), Some(one("7")));
        assert_eq!(ticket_links(&c, false, Some(&text)), None, "switched off");
        assert_eq!(ticket_links(&c, true, None), None, "absent keeps links");
        let null = Value::Null;
        assert_eq!(ticket_links(&c, true, Some(&null)), Some(vec![]));
        let adf = serde_json::json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Sentry Issue: "},
                {"type": "text", "text": "FRONT-1", "marks": [{"type": "link", "attrs": {
                    "href": "https://sentry.example.com/organizations/acme/issues/8/?referrer=jira"}}]},
                {"type": "inlineCard", "attrs": {"url": "https://other.sentry.io/issues/9/"}}
            ]}
        ]});
        assert_eq!(ticket_links(&c, true, Some(&adf)), Some(one("8")));
        assert_eq!(
            ticket_links(&config(None), true, Some(&text)),
            Some(vec![]),
            "no organisation: nothing links"
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(s in ".*", pre in "[a-z]{0,3}") {
            let text = format!("{pre}https://acme.sentry.io/issues/{s}");
            let got = sentry_links(&text, &target());
            prop_assert!(got.len() <= MAX_LINKS_PER_RECORD);
            let got = sentry_links(&s, &target());
            prop_assert!(got.iter().all(|l| l.id.bytes().all(|b| b.is_ascii_digit())));
        }
    }
}
