//! GitHub's REST API for `sync`: a repository (`GET /repos/{owner}/{repo}`,
//! for the numeric id its defects are keyed by), its issues updated since a
//! time (`GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…`,
//! `Link` pagination) and its releases (`GET /repos/{owner}/{repo}/releases`).
//! Each issue and release object goes through `ingest::github`'s conversion,
//! the webhook's own. Pull requests, which the issues API lists too, are
//! ignored. A stored issue a full listing no longer shows is asked for on
//! its own (`GET /repos/{owner}/{repo}/issues/{number}`): `410 Gone`
//! (deleted), `404` (deleted or moved where the token cannot read), or an
//! answer from another repository (the `301` of a transfer, followed) deletes
//! it here.

use crate::config::Config;
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::model::time::parse_time;
use crate::sources::client::{Answer, endpoint};
use crate::sources::github::webhook::{self as adapter, Repo};
use crate::sources::webhook::At;
use crate::sources::{Entry, Feed, Page, Source, SyncError, Vendor};

/// The GitHub vendor, over one configuration.
pub struct Github<'a> {
    config: &'a Config,
}

impl<'a> Github<'a> {
    /// The vendor reading `config.webhooks.github`'s repositories.
    pub fn new(config: &'a Config) -> Self {
        Self { config }
    }

    fn api(&self) -> &str {
        &self.config.webhooks.github.api.url
    }

    /// `{api}/repos/{owner}/{repo}/{rest…}`, each part one encoded segment.
    fn repo_url(&self, full_name: &str, rest: &[&str]) -> String {
        let (owner, name) = full_name.split_once('/').unwrap_or((full_name, ""));
        let mut segments = vec!["repos", owner, name];
        segments.extend_from_slice(rest);
        endpoint(self.api(), &segments, &[])
    }
}

/// `since` as GitHub reads it: ISO 8601, whole seconds (its times have no
/// fraction), rounded down so the boundary item is listed again.
fn since_param(at: Millis) -> String {
    crate::model::time::format_rfc3339(at, chrono::SecondsFormat::Secs)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

impl Vendor for Github<'_> {
    type Scope = Repo;

    fn source(&self) -> Source {
        Source::Github
    }

    fn headers(&self) -> Vec<(&'static str, String, bool)> {
        let mut h = vec![
            ("accept", "application/vnd.github+json".to_owned(), false),
            ("x-github-api-version", "2022-11-28".to_owned(), false),
        ];
        if let Some(token) = self.config.webhooks.github.api.token() {
            h.push(("authorization", format!("Bearer {token}"), true));
        }
        h
    }

    fn configured(&self) -> Vec<String> {
        self.config.webhooks.github.repositories.clone()
    }

    fn api_url(&self) -> &str {
        self.api()
    }

    fn resolve_url(&self, name: &str) -> String {
        self.repo_url(name, &[])
    }

    fn resolve(&self, _name: &str, answer: &Answer) -> Result<Repo, SyncError> {
        Repo::of(&At::root(&answer.body)).map_err(|e| SyncError::Shape {
            url: answer.url.clone(),
            reason: format!("{}: {}", e.field, e.reason),
        })
    }

    fn key(&self, scope: &Repo) -> String {
        scope.id.clone()
    }

    fn name(&self, scope: &Repo) -> String {
        scope.full_name.clone()
    }

    fn list_url(&self, scope: &Repo, feed: Feed, since: Option<Millis>) -> String {
        let per_page = self.config.sync.page_size;
        match feed {
            Feed::Issues => {
                let mut url = format!(
                    "{}?state=all&sort=updated&direction=asc&per_page={per_page}",
                    self.repo_url(&scope.full_name, &["issues"])
                );
                if let Some(at) = since {
                    url.push_str("&since=");
                    url.push_str(&since_param(at));
                }
                url
            }
            Feed::Releases => format!(
                "{}?per_page={per_page}",
                self.repo_url(&scope.full_name, &["releases"])
            ),
        }
    }

    fn page(
        &self,
        config: &Config,
        scope: &Repo,
        feed: Feed,
        answer: &Answer,
        now: Millis,
    ) -> Result<Page, SyncError> {
        let root = At::root(&answer.body);
        let objects = match root.value() {
            Some(serde_json::Value::Array(_)) => root.items().unwrap_or_default(),
            _ => {
                return Err(SyncError::Shape {
                    url: answer.url.clone(),
                    reason: "the answer is not a JSON array of objects".into(),
                });
            }
        };
        let mut page = Page::default();
        for obj in objects {
            match feed {
                Feed::Issues => {
                    // Ordered by it, pull requests included: the mark moves
                    // over them too.
                    if let Some(t) = obj
                        .get("updated_at")
                        .value()
                        .and_then(|v| v.as_str())
                        .and_then(parse_time)
                    {
                        page.newest = Some(page.newest.map_or(t, |n: Millis| n.max(t)));
                    }
                    if obj.get("pull_request").value().is_some() {
                        page.entries.push(Entry::Ignored);
                        continue;
                    }
                    let what = match obj.get("number").value() {
                        Some(n) => format!("issue #{n}"),
                        None => format!("{} of the page", obj.path()),
                    };
                    page.entries
                        .push(match adapter::issue_item(config, scope, &obj, now) {
                            Ok((item, _unmapped)) => Entry::Item(item),
                            Err(error) => Entry::Rejected { what, error },
                        });
                }
                Feed::Releases => {
                    let what = match obj.get("tag_name").value() {
                        Some(t) => format!("release {t}"),
                        None => format!("{} of the page", obj.path()),
                    };
                    match adapter::release_item(config, scope, &obj, now) {
                        Ok(parsed) if parsed.ignored.is_some() => page.entries.push(Entry::Ignored),
                        Ok(parsed) => page
                            .entries
                            .extend(parsed.items.into_iter().map(Entry::Item)),
                        Err(error) => page.entries.push(Entry::Rejected { what, error }),
                    }
                }
            }
        }
        Ok(page)
    }

    fn id_prefix(&self, scope: &Repo) -> Option<String> {
        Some(format!("{}#", scope.id))
    }

    fn probe_url(&self, scope: &Repo, id: &str) -> Option<(String, &'static [u16])> {
        let number = id.strip_prefix(&format!("{}#", scope.id))?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((
            self.repo_url(&scope.full_name, &["issues", number]),
            &[404, 410],
        ))
    }

    fn gone(&self, scope: &Repo, id: &str, answer: &Answer, now: Millis) -> Option<Item> {
        let left = match answer.status {
            404 | 410 => true,
            // A transferred issue answers (after its 301) from its new home.
            _ => answer
                .body
                .get("repository_url")
                .and_then(|u| u.as_str())
                .is_some_and(|u| {
                    !u.to_ascii_lowercase()
                        .ends_with(&format!("/repos/{}", scope.full_name.to_ascii_lowercase()))
                }),
        };
        left.then(|| adapter::gone(scope, id, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_whole_seconds_rounded_down() {
        assert_eq!(since_param(1_557_933_618_999), "2019-05-15T15:20:18Z");
    }
}
