//! GitLab's REST API (v4, gitlab.com or self-managed) for `sync`: a project
//! (`GET /projects/:id`, the id or the URL-encoded path, for the numeric id
//! its defects are keyed by and its path, the product), its issues updated
//! since a time (`GET /projects/:id/issues?scope=all&order_by=updated_at&sort=asc&updated_after=…`)
//! and its releases (`GET /projects/:id/releases`). Pages follow the `Link`
//! header's `rel="next"` when GitLab sends one, else `x-next-page` (offset
//! pagination; empty on the last page). The token goes in `PRIVATE-TOKEN`.
//!
//! Each issue and release goes through `webhook`'s conversion, the
//! webhook's own ([`adapter::Issue::rest`] reads the REST shape: labels as
//! strings, a `milestone` object, `_links.closed_as_duplicate_of`). An issue
//! moved to another project stays listed in this one, closed, with its
//! `moved_to_id`: the conversion takes it out, as the webhook does. A stored
//! issue a full listing no longer shows is asked for on its own
//! (`GET /projects/:id/issues/:iid`): a `404` (deleted, or no longer
//! readable) or a `moved_to_id` deletes it here.

use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::sources::SyncError;
use crate::sources::client::{self, Answer, endpoint};
use crate::sources::gitlab::webhook::{self as adapter, Issue, Project};
use crate::sources::listing::{Converted, Feed, Listing, Scoped, per_page};
use crate::sources::webhook::At;

/// The GitLab vendor, over one configuration.
pub struct Gitlab<'a> {
    config: &'a Config,
}

impl<'a> Gitlab<'a> {
    /// The vendor reading `config.webhooks.gitlab`'s projects.
    pub fn new(config: &'a Config) -> Self {
        Self { config }
    }

    fn api(&self) -> &str {
        &self.config.webhooks.gitlab.api.url
    }
}

impl Listing for Gitlab<'_> {
    type Scope = Project;

    fn headers(&self) -> Vec<(&'static str, String, bool)> {
        let mut h = vec![("accept", "application/json".to_owned(), false)];
        if let Some(token) = self.config.webhooks.gitlab.api.token() {
            h.push(("private-token", token, true));
        }
        h
    }

    fn configured(&self) -> Vec<String> {
        self.config.webhooks.gitlab.projects.clone()
    }

    fn api_url(&self) -> &str {
        self.api()
    }

    fn resolve_url(&self, name: &str) -> String {
        endpoint(self.api(), &["projects", name], &[])
    }

    fn scope(&self, answer: &At<'_>) -> Result<Scoped<Project>, FieldError> {
        let project = Project::of(answer)?;
        Ok(Scoped {
            key: project.id.clone(),
            name: project.path.clone(),
            of: project,
        })
    }

    fn list_url(&self, scope: &Project, feed: Feed, since: Option<Millis>) -> String {
        let n = self.config.sync.page_size;
        let url = |last: &str| endpoint(self.api(), &["projects", &scope.id, last], &[]);
        match feed {
            Feed::Issues => per_page(
                url("issues"),
                "scope=all&order_by=updated_at&sort=asc&",
                n,
                since.map(|at| ("updated_after", at)),
            ),
            Feed::Releases => per_page(url("releases"), "", n, None),
        }
    }

    fn next_url(&self, answer: &Answer) -> Result<Option<String>, SyncError> {
        if let Some(next) = answer.link_next() {
            return Ok(Some(next));
        }
        let Some(page) = answer.header("x-next-page").filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        // Offset pagination moves forward only: a next page at or before
        // this one would list the same pages again, forever.
        let current: u64 = client::query_value(&answer.url, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        match page.parse::<u64>() {
            Ok(next) if next > current => Ok(Some(client::with_query(
                &answer.url,
                "page",
                &next.to_string(),
            ))),
            _ => Err(SyncError::Endless {
                url: crate::sources::origin::shown(&answer.url),
                reason: format!(
                    "x-next-page `{}` does not come after page {current}",
                    crate::sources::redact::excerpt(page, 40)
                ),
            }),
        }
    }

    fn what(&self, feed: Feed, obj: &At<'_>) -> Option<String> {
        Some(match feed {
            Feed::Issues => format!("issue #{}", obj.get("iid").value()?),
            Feed::Releases => format!("release {}", obj.get("tag_name").value()?),
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
            Feed::Issues => Converted::Issue(
                Issue::rest(obj, now)
                    .and_then(|issue| adapter::issue_item(config, scope, &issue))
                    .map(|(item, _)| item),
            ),
            Feed::Releases => Converted::Release(adapter::release_item(
                config,
                scope,
                &obj.get("tag_name"),
                obj,
                now,
            )),
        }
    }

    fn id_prefix(&self, scope: &Project) -> Option<String> {
        Some(format!("{}#", scope.id))
    }

    fn probe_url(&self, scope: &Project, id: &str) -> Option<(String, &'static [u16])> {
        let iid = id.strip_prefix(&format!("{}#", scope.id))?;
        if iid.is_empty() || !iid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((
            endpoint(self.api(), &["projects", &scope.id, "issues", iid], &[]),
            &[404],
        ))
    }

    fn gone(&self, scope: &Project, id: &str, answer: &Answer, now: Millis) -> Option<Item> {
        let left =
            answer.status == 404 || answer.body.get("moved_to_id").is_some_and(|m| !m.is_null());
        left.then(|| adapter::gone(scope, id, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn answer(url: &str, headers: &[(&'static str, &str)]) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        Answer {
            url: url.into(),
            status: 200,
            headers: h,
            body: serde_json::json!([]),
        }
    }

    fn next(v: &Gitlab, a: &Answer) -> Option<String> {
        v.next_url(a).expect("a next page that moves forward")
    }

    #[test]
    fn an_x_next_page_that_does_not_move_forward_is_an_error() {
        let config = Config::from_settings(crate::config::Settings::default()).expect("valid");
        let v = Gitlab::new(&config);
        let url = "https://gitlab.example.com/api/v4/projects/3/issues?per_page=2&page=3";
        for bad in ["3", "2", "0", "x", "99999999999999999999999"] {
            let e = v
                .next_url(&answer(url, &[("x-next-page", bad)]))
                .expect_err(bad);
            assert!(e.to_string().contains("x-next-page"), "{e}");
        }
        assert!(next(&v, &answer(url, &[("x-next-page", "4")])).is_some());
    }

    #[test]
    fn pages_follow_link_else_x_next_page() {
        let config = Config::from_settings(crate::config::Settings::default()).expect("valid");
        let v = Gitlab::new(&config);
        let url = "https://gitlab.example.com/api/v4/projects/3/issues?scope=all&per_page=2&page=1";
        assert_eq!(
            next(&v, &answer(url, &[("x-next-page", "2"), ("x-page", "1")])).as_deref(),
            Some("https://gitlab.example.com/api/v4/projects/3/issues?scope=all&per_page=2&page=2")
        );
        // The last page: an empty x-next-page.
        assert_eq!(next(&v, &answer(url, &[("x-next-page", "")])), None);
        assert_eq!(next(&v, &answer(url, &[])), None);
        // Keyset pagination: only Link.
        let keyset = "<https://gitlab.example.com/api/v4/projects/3/issues?cursor=eyJpZCI6IjQyIn0&pagination=keyset>; rel=\"next\"";
        assert_eq!(
            next(&v, &answer(url, &[("link", keyset), ("x-next-page", "2")])).as_deref(),
            Some(
                "https://gitlab.example.com/api/v4/projects/3/issues?cursor=eyJpZCI6IjQyIn0&pagination=keyset"
            )
        );
        assert_eq!(
            v.resolve_url("acme/web"),
            "https://gitlab.com/api/v4/projects/acme%2Fweb"
        );
        assert_eq!(
            crate::sources::listing::whole_seconds(1_557_933_618_999),
            "2019-05-15T15:20:18Z"
        );
    }
}
