//! GitHub's REST API for `sync`: a repository (`GET /repos/{owner}/{repo}`,
//! for the numeric id its defects are keyed by), its issues updated since a
//! time (`GET /repos/{owner}/{repo}/issues?state=all&sort=updated&direction=asc&since=…`,
//! `Link` pagination) and its releases (`GET /repos/{owner}/{repo}/releases`).
//! Each issue and release object goes through `webhook`'s conversion,
//! the webhook's own. Pull requests, which the issues API lists too, are
//! ignored. A stored issue a full listing no longer shows is asked for on
//! its own (`GET /repos/{owner}/{repo}/issues/{number}`): `410 Gone`
//! (deleted), `404` (deleted or moved where the token cannot read), or an
//! answer from another repository (the `301` of a transfer, followed) deletes
//! it here.

use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::sources::client::{Answer, endpoint};
use crate::sources::github::webhook::{self as adapter, Repo};
use crate::sources::listing::{Converted, Feed, Listing, Scoped, per_page};
use crate::sources::webhook::At;

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

impl Listing for Github<'_> {
    type Scope = Repo;

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

    fn scope(&self, answer: &At<'_>) -> Result<Scoped<Repo>, FieldError> {
        let repo = Repo::of(answer)?;
        Ok(Scoped {
            key: repo.id.clone(),
            name: repo.full_name.clone(),
            of: repo,
        })
    }

    fn list_url(&self, scope: &Repo, feed: Feed, since: Option<Millis>) -> String {
        let n = self.config.sync.page_size;
        match feed {
            Feed::Issues => per_page(
                self.repo_url(&scope.full_name, &["issues"]),
                "state=all&sort=updated&direction=asc&",
                n,
                since.map(|at| ("since", at)),
            ),
            Feed::Releases => per_page(self.repo_url(&scope.full_name, &["releases"]), "", n, None),
        }
    }

    fn what(&self, feed: Feed, obj: &At<'_>) -> Option<String> {
        Some(match feed {
            Feed::Issues => format!("issue #{}", obj.get("number").value()?),
            Feed::Releases => format!("release {}", obj.get("tag_name").value()?),
        })
    }

    fn convert(
        &self,
        config: &Config,
        scope: &Repo,
        feed: Feed,
        obj: &At<'_>,
        now: Millis,
    ) -> Converted {
        match feed {
            // The issues API lists pull requests too.
            Feed::Issues if obj.get("pull_request").value().is_some() => Converted::Ignored,
            Feed::Issues => {
                Converted::Issue(adapter::issue_item(config, scope, obj, now).map(|(item, _)| item))
            }
            Feed::Releases => Converted::Release(adapter::release_item(config, scope, obj, now)),
        }
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
