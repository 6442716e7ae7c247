//! Jira's REST API (Cloud or Data Center) for `sync`: a project
//! (`GET /rest/api/2/project/{key}`, for the numeric id its cursor is keyed
//! by), its issues updated since a time through a JQL search, and its
//! versions (`GET /rest/api/2/project/{key}/versions`: `released`,
//! `releaseDate`).
//!
//! - **Search**: `GET /rest/api/3/search/jql` (Cloud's enhanced search,
//!   paged by `nextPageToken` until it is absent or `isLast`), or
//!   `GET /rest/api/2/search` (Data Center, paged by `startAt` up to
//!   `total`), as `webhooks.jira.api_search` says. Both with
//!   `project = "KEY" [AND updated >= "-Nm"] ORDER BY updated ASC, id ASC`
//!   and only the fields the conversion reads.
//! - **Since**: JQL reads an absolute date in the searching user's time zone,
//!   which `sync` does not know; a relative one (`-Nm`, minutes before the
//!   server's now) has none. `N` reaches five minutes before the mark (the
//!   clock skew the future check also allows): the boundary issues are read
//!   again and found unchanged.
//! - **Authentication**: Cloud: `api_user` (the account's email) and an API
//!   token as basic auth; Data Center: a personal access token as `Bearer`.
//!
//! Each issue goes through `webhook::issue_item` and each version
//! through `version_item`, the webhook's own conversions. A stored issue of
//! the project a full listing no longer shows is asked for on its own
//! (`GET /rest/api/2/issue/{id}`): a `404` (deleted, or no longer readable)
//! deletes it; an issue moved to another project keeps its id, so its state
//! there is applied (under its new key), as its webhook would.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use serde_json::Value;

use crate::config::Config;
use crate::config::webhooks::JiraSearch;
use crate::ingest::FieldError;
use crate::model::item::Item;
use crate::model::time::parse_time;
use crate::model::time::{Millis, now_ms};
use crate::sources::SyncError;
use crate::sources::client::{self, Answer, endpoint};
use crate::sources::conventions;
use crate::sources::jira::remote;
use crate::sources::jira::webhook::{self as adapter, Marked};
use crate::sources::listing::{Converted, Feed, Listing, Scoped};
use crate::sources::webhook::At;

/// A project: its numeric id and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub key: String,
}

/// Minutes of clock skew the relative `updated >= "-Nm"` allows for.
const SKEW_MINUTES: i64 = 5;

/// The Jira vendor, over one configuration.
pub struct Jira<'a> {
    config: &'a Config,
}

impl<'a> Jira<'a> {
    /// The vendor reading `config.webhooks.jira`'s projects.
    pub fn new(config: &'a Config) -> Self {
        Self { config }
    }

    fn api(&self) -> &str {
        &self.config.webhooks.jira.api.url
    }

    /// The fields the conversion reads.
    fn fields(&self) -> String {
        let mut f = String::from("project,labels,issuetype,updated,created,versions,resolution");
        if let Some(stage) = &self.config.webhooks.jira.stage_field {
            f.push(',');
            f.push_str(stage);
        }
        if self.config.webhooks.jira.links {
            f.push_str(",description");
        }
        f
    }
}

/// The JQL of `key`'s issues updated since `since` (all when `None`), oldest
/// update first, as of `now`.
fn jql(key: &str, since: Option<Millis>, now: Millis) -> String {
    let mut q = format!("project = \"{key}\"");
    if let Some(at) = since {
        let minutes = now
            .saturating_sub(at)
            .max(0)
            .div_euclid(60_000)
            .saturating_add(1 + SKEW_MINUTES);
        q.push_str(&format!(" AND updated >= \"-{minutes}m\""));
    }
    q.push_str(" ORDER BY updated ASC, id ASC");
    q
}

impl Listing for Jira<'_> {
    type Scope = Project;

    fn headers(&self) -> Vec<(&'static str, String, bool)> {
        let jira = &self.config.webhooks.jira;
        let mut h = vec![("accept", "application/json".to_owned(), false)];
        if let Some(token) = jira.api.token() {
            let auth = match &jira.api_user {
                Some(user) => format!("Basic {}", BASE64.encode(format!("{user}:{token}"))),
                None => format!("Bearer {token}"),
            };
            h.push(("authorization", auth, true));
        }
        h
    }

    fn configured(&self) -> Vec<String> {
        self.config.webhooks.jira.projects.clone()
    }

    fn parts(&self, feed: Feed, object: &Value) -> Vec<(&'static str, String)> {
        let id = object.get("id").and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        match id {
            Some(id)
                if feed == Feed::Issues
                    && remote::wanted(self.config)
                    && !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit()) =>
            {
                let path = ["rest", "api", "2", "issue", &id, "remotelink"];
                vec![(remote::KEY, endpoint(self.api(), &path, &[]))]
            }
            _ => Vec::new(),
        }
    }

    fn page_list(&self, feed: Feed) -> Option<&'static str> {
        (feed == Feed::Issues).then_some("issues")
    }

    fn delivered_issue(&self) -> Option<&'static str> {
        Some("/issue")
    }

    fn api_url(&self) -> &str {
        self.api()
    }

    fn resolve_url(&self, name: &str) -> String {
        endpoint(self.api(), &["rest", "api", "2", "project", name], &[])
    }

    fn scope(&self, root: &At<'_>) -> Result<Scoped<Project>, FieldError> {
        root.object()?;
        let key = root.get("key");
        let project = Project {
            id: root.get("id").id()?,
            key: conventions::sanitize(key.str()?).ok_or_else(|| key.err("must not be empty"))?,
        };
        Ok(Scoped {
            key: project.id.clone(),
            name: project.key.clone(),
            of: project,
        })
    }

    fn list_url(&self, scope: &Project, feed: Feed, since: Option<Millis>) -> String {
        let jira = &self.config.webhooks.jira;
        match feed {
            Feed::Issues => {
                let path: &[&str] = match jira.api_search {
                    JiraSearch::Enhanced => &["rest", "api", "3", "search", "jql"],
                    JiraSearch::V2 => &["rest", "api", "2", "search"],
                };
                endpoint(
                    self.api(),
                    path,
                    &[
                        ("jql", &jql(&scope.key, since, now_ms())),
                        ("fields", &self.fields()),
                        ("maxResults", &self.config.sync.page_size.to_string()),
                    ],
                )
            }
            Feed::Releases => endpoint(
                self.api(),
                &["rest", "api", "2", "project", &scope.key, "versions"],
                &[],
            ),
        }
    }

    fn next_url(&self, answer: &Answer) -> Result<Option<String>, SyncError> {
        let body = &answer.body;
        let Some(issues) = body.get("issues").and_then(|i| i.as_array()) else {
            return Ok(None);
        };
        // Enhanced search: a token until the last page (which may omit it).
        if body.get("isLast").and_then(|l| l.as_bool()) == Some(true) {
            return Ok(None);
        }
        if let Some(token) = body.get("nextPageToken").and_then(|t| t.as_str()) {
            return Ok((!token.is_empty())
                .then(|| client::with_query(&answer.url, "nextPageToken", token)));
        }
        // Search v2: startAt up to total (the server may cap maxResults).
        // Absent: no offset paging. Present but not a count (negative, a
        // fraction, a string): the server's offsets cannot be trusted to
        // move on, so the pass stops rather than end the listing early.
        let count = |key: &str| -> Result<Option<u64>, SyncError> {
            match body.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| SyncError::Shape {
                    url: answer.url.clone(),
                    reason: format!(
                        "{key} `{}` is not a whole number of at least 0",
                        crate::sources::redact::excerpt(&v.to_string(), 40)
                    ),
                }),
            }
        };
        let (Some(start), Some(total)) = (count("startAt")?, count("total")?) else {
            return Ok(None);
        };
        if issues.is_empty() {
            return Ok(None);
        }
        // Checked: a `startAt` near u64::MAX must not wrap to the first page.
        let asked: u64 = client::query_value(&answer.url, "startAt")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let next = start.checked_add(issues.len() as u64);
        match next {
            Some(next) if next >= total => Ok(None),
            Some(next) if next > asked => Ok(Some(client::with_query(
                &answer.url,
                "startAt",
                &next.to_string(),
            ))),
            _ => Err(SyncError::Endless {
                url: crate::sources::origin::shown(&answer.url),
                reason: format!(
                    "startAt {start} with {} issues does not move past {asked}",
                    issues.len()
                ),
            }),
        }
    }

    fn objects<'a>(&self, feed: Feed, root: At<'a>) -> Result<Vec<At<'a>>, String> {
        let list = match self.page_list(feed) {
            Some(key) => root.get(key),
            None => root,
        };
        match list.value() {
            Some(serde_json::Value::Array(_)) => Ok(list.items().unwrap_or_default()),
            _ => Err(match feed {
                Feed::Issues => "the answer has no `issues` array".into(),
                Feed::Releases => "the answer is not a JSON array of versions".into(),
            }),
        }
    }

    fn updated(&self, obj: &At<'_>) -> Option<Millis> {
        let updated = obj.get("fields").get("updated");
        updated.value()?.as_str().and_then(parse_time)
    }

    fn what(&self, feed: Feed, obj: &At<'_>) -> Option<String> {
        Some(match feed {
            Feed::Issues => {
                let k = obj.get("key").value().or(obj.get("id").value())?;
                format!("issue {}", k.as_str().unwrap_or_default())
            }
            Feed::Releases => format!("version {}", obj.get("name").value()?),
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
            Feed::Issues => {
                Converted::Issue(adapter::issue_item(config, obj, None, now).map(|(item, _)| item))
            }
            Feed::Releases => {
                let product = adapter::product(scope.key.clone());
                Converted::Release(adapter::version_item(
                    config,
                    product,
                    obj,
                    Marked::Listed,
                    now,
                ))
            }
        }
    }

    fn id_prefix(&self, _scope: &Project) -> Option<String> {
        Some(String::new())
    }

    fn sweep_namespace(&self, scope: &Project) -> Option<String> {
        Some(scope.key.clone())
    }

    fn probe_url(&self, _scope: &Project, id: &str) -> Option<(String, &'static [u16])> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((
            endpoint(
                self.api(),
                &["rest", "api", "2", "issue", id],
                &[("fields", &self.fields())],
            ),
            &[404],
        ))
    }

    fn gone(&self, scope: &Project, id: &str, answer: &Answer, now: Millis) -> Option<Item> {
        if answer.status == 404 {
            return Some(adapter::gone(&scope.key, id, now));
        }
        // Still there, under another project (a move keeps the id): its
        // state there, as the webhook would apply it.
        let issue = At::root(&answer.body);
        let elsewhere = issue
            .get("fields")
            .get("project")
            .get("key")
            .str_opt()
            .ok()
            .flatten()
            .is_some_and(|k| !k.eq_ignore_ascii_case(&scope.key));
        if !elsewhere {
            return None;
        }
        match adapter::issue_item(self.config, &issue, None, now) {
            Ok((item, _)) => Some(item),
            Err(e) => {
                let reason = crate::sources::redact::Redact::of(self.config).text(&e.reason);
                tracing::warn!(target: "bug_escape_exporter::sync::jira", source = "jira", id, field = %e.field, %reason, "moved issue rejected");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;
    use serde_json::json;

    fn answer(url: &str, body: serde_json::Value) -> Answer {
        Answer {
            url: url.into(),
            status: 200,
            headers: HeaderMap::new(),
            body,
        }
    }

    fn next(v: &Jira, a: &Answer) -> Option<String> {
        v.next_url(a).expect("a next page that moves forward")
    }

    #[test]
    fn a_start_at_that_wraps_or_goes_back_is_an_error() {
        let config = Config::from_settings(crate::config::Settings::default()).expect("valid");
        let v = Jira::new(&config);
        let url = "https://jira.example.com/rest/api/2/search?jql=x&startAt=4";
        let issues = json!([{"id": "1"}, {"id": "2"}]);
        for (start, total) in [(u64::MAX - 1, u64::MAX), (0, 10), (2, 10)] {
            let a = answer(
                url,
                json!({"startAt": start, "total": total, "issues": issues}),
            );
            let e = v.next_url(&a).expect_err("refused").to_string();
            assert!(e.contains("startAt"), "{e}");
        }
        let a = answer(url, json!({"startAt": 4, "total": 10, "issues": issues}));
        assert!(next(&v, &a).is_some_and(|n| n.ends_with("startAt=6")));
    }

    #[test]
    fn both_searches_page_to_their_end() {
        let config = Config::from_settings(crate::config::Settings::default()).expect("valid");
        let v = Jira::new(&config);
        let url = "https://jira.example.com/rest/api/2/search?jql=x&maxResults=2";
        let page = |start, n, total| {
            answer(
                url,
                json!({"startAt": start, "maxResults": 2, "total": total,
                       "issues": (0..n).map(|i| json!({"id": i})).collect::<Vec<_>>()}),
            )
        };
        assert_eq!(
            next(&v, &page(0, 2, 5)).as_deref(),
            Some("https://jira.example.com/rest/api/2/search?jql=x&maxResults=2&startAt=2")
        );
        assert_eq!(next(&v, &page(4, 1, 5)), None);
        assert_eq!(next(&v, &page(0, 0, 5)), None, "an empty page ends it");
        let cloud = "https://acme.atlassian.net/rest/api/3/search/jql?jql=x";
        assert_eq!(
            next(
                &v,
                &answer(
                    cloud,
                    json!({"issues": [{"id": "1"}], "nextPageToken": "Ch8j/+="})
                )
            )
            .as_deref(),
            Some(
                "https://acme.atlassian.net/rest/api/3/search/jql?jql=x&nextPageToken=Ch8j%2F%2B%3D"
            )
        );
        assert_eq!(
            next(
                &v,
                &answer(
                    cloud,
                    json!({"issues": [], "isLast": true, "nextPageToken": "t"})
                )
            ),
            None
        );
        assert_eq!(next(&v, &answer(cloud, json!({"issues": []}))), None);
        assert_eq!(next(&v, &answer(cloud, json!([{"id": "1"}]))), None);
    }

    #[test]
    fn the_jql_reaches_before_the_mark_whatever_the_time_zone() {
        let now = 1_700_000_000_000;
        assert_eq!(
            jql("PAY", None, now),
            "project = \"PAY\" ORDER BY updated ASC, id ASC"
        );
        // 90 s before now: 1 whole minute, one more, five of skew.
        assert_eq!(
            jql("PAY", Some(now - 90_000), now),
            "project = \"PAY\" AND updated >= \"-7m\" ORDER BY updated ASC, id ASC"
        );
    }
}
