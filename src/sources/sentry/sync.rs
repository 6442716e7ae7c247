//! Sentry's REST API for `sync`: a project (`GET /api/0/projects/{org}/{project}/`,
//! for the numeric id its cursor is keyed by), its issues
//! (`GET /api/0/projects/{org}/{project}/issues/?query=…&sort=date&limit=…`,
//! `Link` cursor pagination ending at `results="false"`), each one's detail
//! (`GET /api/0/organizations/{org}/issues/{id}/`, which alone carries
//! `firstRelease` and `activity`) and its releases
//! (`GET /api/0/projects/{org}/{project}/releases/`). Each issue and release
//! goes through `webhook`'s conversion, the webhook's own.
//!
//! Sentry issues have no `updated_at`: a listing since a time asks for the
//! issues whose `lastSeen` (last event) is at or after it
//! (`query=lastSeen:>=…`; a full listing sends an empty `query`, so every
//! status is listed, not only `is:unresolved`). Sentry sorts newest first
//! only, so its pages mark no progress: a pass cut short lists again from the
//! last completed mark. An archive or resolve without a new event does not
//! move `lastSeen`: such a change whose webhook was lost is found by a full
//! listing (`sync sentry --full`). Each issue is ordered as `webhook`
//! says (the latest of `lastSeen` and its newest `activity`), so a sync never
//! overwrites a newer state a webhook brought.
//!
//! A stored issue of the project a full listing no longer shows is asked for
//! on its own: `404` (deleted) or an answer for another issue (merged into
//! it) deletes it here. Issues last changed before `retention` are not asked
//! for: Sentry forgets them (its retention), which is no deletion.

use serde_json::Value;

use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::event::ProductRef;
use crate::model::item::Item;
use crate::model::time::parse_time;
use crate::model::time::{Millis, now_ms};
use crate::sources::client::{Answer, endpoint};
use crate::sources::listing::{Converted, Feed, Listing, Scoped, whole_seconds};
use crate::sources::sentry::external;
use crate::sources::sentry::webhook as adapter;
use crate::sources::webhook::At;

/// A resolved project: its numeric id and its slug (the product namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub slug: String,
}

impl Project {
    fn product(&self) -> ProductRef {
        ProductRef {
            kind: adapter::SOURCE.into(),
            namespace: self.slug.clone(),
        }
    }
}

/// The Sentry vendor, over one configuration.
pub struct Sentry<'a> {
    config: &'a Config,
}

impl<'a> Sentry<'a> {
    /// The vendor reading `config.webhooks.sentry`'s projects.
    pub fn new(config: &'a Config) -> Self {
        Self { config }
    }

    fn api(&self) -> &str {
        &self.config.webhooks.sentry.api_url
    }

    fn org(&self) -> &str {
        self.config
            .webhooks
            .sentry
            .organization
            .as_deref()
            .unwrap_or_default()
    }

    fn issue_url(&self, id: &str) -> Option<String> {
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| {
            endpoint(
                self.api(),
                &["api", "0", "organizations", self.org(), "issues", id, ""],
                &[],
            )
        })
    }
}

/// An issue id as listed (a string of digits; a number is accepted).
fn id_of(object: &Value) -> Option<String> {
    match object.get("id")? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The listing's filter: `lastSeen:>=<since>` in whole seconds, rounded down
/// so the boundary issue is listed again; empty (every status) when `None`.
fn query(since: Option<Millis>) -> String {
    let Some(at) = since else {
        return String::new();
    };
    let t = whole_seconds(at);
    crate::sources::origin::encode(&format!("lastSeen:>={t}"))
}

impl Listing for Sentry<'_> {
    type Scope = Project;

    fn headers(&self) -> Vec<(&'static str, String, bool)> {
        let mut h = vec![("accept", "application/json".to_owned(), false)];
        let token = self.config.webhooks.sentry.api_token.as_ref();
        if let Some(t) = token.and_then(|t| t.iter().next()) {
            h.push((
                "authorization",
                format!("Bearer {}", String::from_utf8_lossy(t)),
                true,
            ));
        }
        h
    }

    fn configured(&self) -> Vec<String> {
        self.config.webhooks.sentry.projects.clone()
    }

    fn api_url(&self) -> &str {
        self.api()
    }

    fn resolve_url(&self, name: &str) -> String {
        endpoint(
            self.api(),
            &["api", "0", "projects", self.org(), name, ""],
            &[],
        )
    }

    fn scope(&self, root: &At<'_>) -> Result<Scoped<Project>, FieldError> {
        root.object()?;
        let project = Project {
            id: root.get("id").id()?,
            slug: adapter::project_product(root)?.namespace,
        };
        Ok(Scoped {
            key: project.id.clone(),
            name: project.slug.clone(),
            of: project,
        })
    }

    fn list_url(&self, scope: &Project, feed: Feed, since: Option<Millis>) -> String {
        let n = self.config.sync.page_size;
        let base = ["api", "0", "projects", self.org(), &scope.slug];
        let url = |last: &str| endpoint(self.api(), &[&base[..], &[last, ""]].concat(), &[]);
        match feed {
            Feed::Issues => format!(
                "{}?query={}&sort=date&limit={n}",
                url("issues"),
                query(since)
            ),
            Feed::Releases => format!("{}?per_page={n}", url("releases")),
        }
    }

    fn newest_first(&self, _feed: Feed) -> bool {
        true
    }

    fn detail_url(&self, _scope: &Project, feed: Feed, object: &Value) -> Option<String> {
        match feed {
            Feed::Issues => self.issue_url(&id_of(object)?),
            Feed::Releases => None,
        }
    }

    fn parts(&self, feed: Feed, object: &Value) -> Vec<(&'static str, String)> {
        if feed != Feed::Issues || !external::wanted(self.config) {
            return Vec::new();
        }
        let url = id_of(object)
            .and_then(|id| self.issue_url(&id).map(|u| format!("{u}external-issues/")));
        url.map(|u| vec![(external::KEY, u)]).unwrap_or_default()
    }

    fn delivered_issue(&self) -> Option<&'static str> {
        Some("/data/issue")
    }

    fn updated(&self, obj: &At<'_>) -> Option<Millis> {
        // The listing's order and filter.
        obj.get("lastSeen").value()?.as_str().and_then(parse_time)
    }

    fn what(&self, feed: Feed, obj: &At<'_>) -> Option<String> {
        Some(match feed {
            Feed::Issues => format!("issue {}", obj.get("shortId").value()?.as_str()?),
            Feed::Releases => format!("release {}", obj.get("version").value()?),
        })
    }

    fn convert(
        &self,
        config: &Config,
        scope: &Project,
        feed: Feed,
        obj: &At<'_>,
        now: Millis,
    ) -> Converted {
        match feed {
            Feed::Issues if !config.webhooks.sentry.count_issues => Converted::Ignored,
            Feed::Issues => Converted::Issue(adapter::issue_item(config, obj, None, None, now)),
            Feed::Releases => {
                Converted::Release(adapter::release_item(config, scope.product(), obj, now))
            }
        }
    }

    fn id_prefix(&self, _scope: &Project) -> Option<String> {
        Some(String::new())
    }

    fn sweep_namespace(&self, scope: &Project) -> Option<String> {
        Some(scope.slug.clone())
    }

    fn sweep_since(&self) -> Option<Millis> {
        let retention = self.config.webhooks.sentry.retention;
        let retention = Millis::try_from(retention.as_millis()).unwrap_or(Millis::MAX);
        Some(now_ms().saturating_sub(retention))
    }

    fn probe_url(&self, _scope: &Project, id: &str) -> Option<(String, &'static [u16])> {
        Some((self.issue_url(id)?, &[404, 410]))
    }

    fn gone(&self, scope: &Project, id: &str, answer: &Answer, now: Millis) -> Option<Item> {
        let left = match answer.status {
            404 | 410 => true,
            // A merged issue answers as the issue it was merged into.
            _ => id_of(&answer.body).is_some_and(|other| other != id),
        };
        left.then(|| adapter::gone(scope.product(), id, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_last_seen_since_whole_seconds_encoded() {
        assert_eq!(query(None), "");
        assert_eq!(
            query(Some(1_557_933_618_999)),
            "lastSeen%3A%3E%3D2019-05-15T15%3A20%3A18Z"
        );
    }

    #[test]
    fn only_numeric_ids_make_urls() {
        let config = Config::from_settings(crate::config::Settings::default()).expect("valid");
        let s = Sentry::new(&config);
        assert!(s.issue_url("123").is_some());
        assert_eq!(s.issue_url("../x"), None);
        assert_eq!(s.issue_url(""), None);
        assert_eq!(id_of(&serde_json::json!({"id": 42})).as_deref(), Some("42"));
    }
}
