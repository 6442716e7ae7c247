//! `[webhooks.jira]`: Jira's webhook secrets, label conventions,
//! resolutions, stage field and project keys, and the site and projects
//! `sync` reads (with the search it pages through).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{ScopeRule, scopes, sync_interval};
use super::{
    Api, ApiSettings, ConventionSettings, Conventions, SecretSettings, Secrets, UnknownKeys, lower,
    strings, unique_folded,
};
use crate::config::{ConfigError, check_name};
use crate::model::stage::Pipeline;

/// `[webhooks.jira]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JiraSettings {
    /// `secret`, `secret_file`; env `BUG_ESCAPE_JIRA_SECRET(_FILE)`.
    #[serde(flatten)]
    pub auth: SecretSettings,
    #[serde(flatten)]
    pub conventions: ConventionSettings,
    /// Resolution names that mean invalid.
    pub invalid_resolutions: Vec<String>,
    /// Resolution names that mean duplicate.
    pub duplicate_resolutions: Vec<String>,
    /// A custom field (`customfield_10050`) holding the stage, instead of labels.
    pub stage_field: Option<String>,
    /// Project id → project key, for `jira:version_released` (which names the
    /// project by id only). Unmapped ids are used as the namespace as they are.
    pub project_keys: BTreeMap<String, String>,
    /// `api_url` (the site: `https://acme.atlassian.net`, a Data Center base
    /// URL), `api_token`, `api_token_file`: the REST API `sync` reads; env
    /// `BUG_ESCAPE_JIRA_API_TOKEN(_FILE)`.
    #[serde(flatten)]
    pub api: ApiSettings,
    /// Jira Cloud: the account's email; the token is then an API token sent
    /// with it as basic auth. Unset: the token is a Data Center personal
    /// access token, sent as `Bearer`.
    pub api_user: Option<String>,
    /// Which search `sync` pages through: `enhanced` (`/rest/api/3/search/jql`,
    /// `nextPageToken`; Jira Cloud) or `v2` (`/rest/api/2/search`, `startAt`;
    /// Data Center). Unset: `enhanced` with `api_user`, else `v2`.
    pub api_search: Option<String>,
    /// Projects `sync` reads, by key (`PAY`).
    pub projects: Vec<String>,
    /// How often `serve` reconciles them with the API; unset: never.
    pub sync_interval: Option<String>,
    /// Read links to the configured sources' issues from the issue's
    /// description, give each issue its alias, and count links to this
    /// source's issues (docs/semantics.md, "Linked records").
    pub links: bool,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

impl Default for JiraSettings {
    fn default() -> Self {
        Self {
            auth: SecretSettings::default(),
            conventions: ConventionSettings::with_types(&["Bug"]),
            invalid_resolutions: strings(&["Cannot Reproduce", "Invalid", "Not a Bug"]),
            duplicate_resolutions: strings(&["Duplicate"]),
            stage_field: None,
            project_keys: BTreeMap::new(),
            api: ApiSettings::with_url(""),
            api_user: None,
            api_search: None,
            projects: Vec::new(),
            sync_interval: None,
            links: true,
            unknown: UnknownKeys::default(),
        }
    }
}

/// Validated `[webhooks.jira]`.
#[derive(Debug, Clone)]
pub struct JiraConfig {
    pub secrets: Secrets,
    pub conventions: Conventions,
    pub invalid_resolutions: Vec<String>,
    pub duplicate_resolutions: Vec<String>,
    pub stage_field: Option<String>,
    pub project_keys: BTreeMap<String, String>,
    /// The REST API `sync` reads (`url` empty: none configured).
    pub api: Api,
    /// Basic auth with this email (Jira Cloud); `None`: `Bearer` (Data Center).
    pub api_user: Option<String>,
    pub api_search: JiraSearch,
    /// Project keys `sync` reads, each once.
    pub projects: Vec<String>,
    /// `serve`'s reconcile interval; `None`: off.
    pub sync_interval: Option<Duration>,
    /// Read links from issue descriptions; count links to its issues.
    pub links: bool,
}

/// The search `sync` pages through Jira's issues with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JiraSearch {
    /// `GET /rest/api/3/search/jql`, `nextPageToken` (Jira Cloud).
    Enhanced,
    /// `GET /rest/api/2/search`, `startAt`/`maxResults`/`total` (Data Center).
    V2,
}

/// A letter, then letters, digits or `_`.
const PROJECT: ScopeRule = ScopeRule {
    what: "a project key like `PAY`",
    ok: |p| {
        p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    },
    folded: true,
};

/// The search `api_search` names; unset: `enhanced` with `api_user`.
fn search(j: &JiraSettings) -> Result<JiraSearch, ConfigError> {
    Ok(match j.api_search.as_deref().map(str::trim) {
        None | Some("") if j.api_user.is_some() => JiraSearch::Enhanced,
        None | Some("") => JiraSearch::V2,
        Some("enhanced") => JiraSearch::Enhanced,
        Some("v2") => JiraSearch::V2,
        Some(other) => {
            return Err(ConfigError(format!(
                "webhooks.jira.api_search: `{other}` is not `enhanced` or `v2`"
            )));
        }
    })
}

/// The API: no default site, so unset is allowed until projects are named.
fn api(j: &JiraSettings) -> Result<Api, ConfigError> {
    if j.api.api_url.trim().is_empty() {
        return Ok(Api {
            url: String::new(),
            token: j.api.token("webhooks.jira")?,
        });
    }
    j.api.api("webhooks.jira")
}

/// Validates `[webhooks.jira]` against the configured pipeline.
pub(super) fn validate(j: &JiraSettings, pipeline: &Pipeline) -> Result<JiraConfig, ConfigError> {
    unique_folded("webhooks.jira.invalid_resolutions", &j.invalid_resolutions)?;
    unique_folded(
        "webhooks.jira.duplicate_resolutions",
        &j.duplicate_resolutions,
    )?;
    for (id, key) in &j.project_keys {
        check_name(&format!("webhooks.jira.project_keys.{id}"), key)?;
    }
    let jira = JiraConfig {
        links: j.links,
        secrets: j.auth.load("webhooks.jira")?,
        conventions: j.conventions.conventions("webhooks.jira", pipeline)?,
        invalid_resolutions: lower(&j.invalid_resolutions),
        duplicate_resolutions: lower(&j.duplicate_resolutions),
        stage_field: j.stage_field.clone().filter(|f| !f.trim().is_empty()),
        project_keys: j.project_keys.clone(),
        api: api(j)?,
        api_user: j.api_user.clone().filter(|u| !u.trim().is_empty()),
        api_search: search(j)?,
        projects: scopes("webhooks.jira.projects", &j.projects, PROJECT)?,
        sync_interval: None,
    };
    if !j.projects.is_empty() && jira.api.url.is_empty() {
        return Err(ConfigError(
            "webhooks.jira.api_url: is required to sync webhooks.jira.projects \
             (the site, `https://acme.atlassian.net`, or the Data Center base URL)"
                .into(),
        ));
    }
    Ok(JiraConfig {
        sync_interval: sync_interval(
            "webhooks.jira",
            j.sync_interval.as_ref(),
            "projects",
            &jira.projects,
        )?,
        ..jira
    })
}
