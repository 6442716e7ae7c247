//! `[webhooks.github]`: GitHub's webhook secrets, label conventions, the
//! `state_reason`s and milestones it reads, and the repositories `sync`
//! lists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{ScopeRule, scopes, sync_interval};
use super::{
    Api, ApiSettings, ConventionSettings, Conventions, SecretSettings, Secrets, UnknownKeys, lower,
    strings, unique_folded,
};
use crate::config::ConfigError;
use crate::model::stage::Pipeline;

/// `[webhooks.github]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GithubSettings {
    /// `secret`, `secret_file`; env `BUG_ESCAPE_GITHUB_SECRET(_FILE)`.
    #[serde(flatten)]
    pub auth: SecretSettings,
    #[serde(flatten)]
    pub conventions: ConventionSettings,
    /// `state_reason` values of a closed issue that mean duplicate.
    pub duplicate_reasons: Vec<String>,
    /// `state_reason` values of a closed issue that mean invalid.
    pub invalid_reasons: Vec<String>,
    /// The milestone title is the release when no `release:` label is set.
    pub milestone_as_release: bool,
    /// `api_url`, `api_token`, `api_token_file`: the REST API `sync` reads;
    /// env `BUG_ESCAPE_GITHUB_API_TOKEN(_FILE)`.
    #[serde(flatten)]
    pub api: ApiSettings,
    /// Repositories `sync` reads (`owner/name`).
    pub repositories: Vec<String>,
    /// How often `serve` reconciles them with the API; unset: never.
    pub sync_interval: Option<String>,
    /// Read links to the configured sources' issues from the issue's
    /// description, give each issue its alias, and count links to this
    /// source's issues (docs/semantics.md, "Linked records").
    pub links: bool,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

impl Default for GithubSettings {
    fn default() -> Self {
        Self {
            auth: SecretSettings::default(),
            conventions: ConventionSettings::with_types(&["Bug"]),
            duplicate_reasons: strings(&["duplicate"]),
            invalid_reasons: Vec::new(),
            milestone_as_release: true,
            api: ApiSettings::with_url("https://api.github.com"),
            repositories: Vec::new(),
            sync_interval: None,
            links: true,
            unknown: UnknownKeys::default(),
        }
    }
}

/// Validated `[webhooks.github]`.
#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub secrets: Secrets,
    pub conventions: Conventions,
    pub duplicate_reasons: Vec<String>,
    pub invalid_reasons: Vec<String>,
    pub milestone_as_release: bool,
    /// The REST API `sync` reads.
    pub api: Api,
    /// Repositories `sync` reads, `owner/name`, each once.
    pub repositories: Vec<String>,
    /// `serve`'s reconcile interval; `None`: off.
    pub sync_interval: Option<Duration>,
    /// Read links from issue descriptions; count links to its issues.
    pub links: bool,
}

/// `owner/name`.
const REPOSITORY: ScopeRule = ScopeRule {
    what: "a repository as `owner/name`",
    ok: |r| {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        r.split_once('/').is_some_and(|(o, n)| {
            !o.is_empty() && !n.is_empty() && o.chars().all(ok) && n.chars().all(ok)
        })
    },
    folded: true,
};

/// Validates `[webhooks.github]` against the configured pipeline.
pub(super) fn validate(
    gh: &GithubSettings,
    pipeline: &Pipeline,
) -> Result<GithubConfig, ConfigError> {
    unique_folded("webhooks.github.duplicate_reasons", &gh.duplicate_reasons)?;
    unique_folded("webhooks.github.invalid_reasons", &gh.invalid_reasons)?;
    let secrets = gh.auth.load("webhooks.github")?;
    let conventions = gh.conventions.conventions("webhooks.github", pipeline)?;
    let api = gh.api.api("webhooks.github")?;
    let repositories = scopes("webhooks.github.repositories", &gh.repositories, REPOSITORY)?;
    Ok(GithubConfig {
        links: gh.links,
        secrets,
        conventions,
        duplicate_reasons: lower(&gh.duplicate_reasons),
        invalid_reasons: lower(&gh.invalid_reasons),
        milestone_as_release: gh.milestone_as_release,
        api,
        sync_interval: sync_interval(
            "webhooks.github",
            gh.sync_interval.as_ref(),
            "repositories",
            &repositories,
        )?,
        repositories,
    })
}
