//! `[webhooks.gitlab]`: GitLab's tokens and signing secrets, label
//! conventions, milestone names, and the projects `sync` lists.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{ScopeRule, scopes, sync_interval};
use super::{
    Api, ApiSettings, ConventionSettings, Conventions, SecretSetting, Secrets, UnknownKeys,
};
use crate::config::{ConfigError, check_name};
use crate::model::stage::Pipeline;

/// `[webhooks.gitlab]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GitlabSettings {
    /// Secret token(s); env `BUG_ESCAPE_GITLAB_TOKEN`.
    pub token: Option<SecretSetting>,
    /// File with one token per line; env `BUG_ESCAPE_GITLAB_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// Signing token(s) of signed webhooks, `whsec_<base64>`; env
    /// `BUG_ESCAPE_GITLAB_SIGNING_SECRET`.
    pub signing_secret: Option<SecretSetting>,
    /// File with one signing token per line; env
    /// `BUG_ESCAPE_GITLAB_SIGNING_SECRET_FILE`.
    pub signing_secret_file: Option<PathBuf>,
    #[serde(flatten)]
    pub conventions: ConventionSettings,
    /// Milestone id → release name (the payload carries only the id).
    pub milestones: BTreeMap<String, String>,
    /// `api_url` (with `/api/v4`), `api_token`, `api_token_file`: the REST
    /// API `sync` reads; env `BUG_ESCAPE_GITLAB_API_TOKEN(_FILE)`.
    #[serde(flatten)]
    pub api: ApiSettings,
    /// Projects `sync` reads: paths (`group/project`) or numeric ids.
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

impl Default for GitlabSettings {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            signing_secret: None,
            signing_secret_file: None,
            conventions: ConventionSettings::with_types(&[]),
            milestones: BTreeMap::new(),
            api: ApiSettings::with_url("https://gitlab.com/api/v4"),
            projects: Vec::new(),
            sync_interval: None,
            links: true,
            unknown: UnknownKeys::default(),
        }
    }
}

/// Validated `[webhooks.gitlab]`.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// `X-Gitlab-Token` values.
    pub secrets: Secrets,
    /// HMAC keys of signed webhooks (`webhook-signature`), decoded.
    pub signing_keys: Secrets,
    pub conventions: Conventions,
    pub milestones: BTreeMap<String, String>,
    /// The REST API `sync` reads.
    pub api: Api,
    /// Projects `sync` reads: paths or numeric ids, each once.
    pub projects: Vec<String>,
    /// `serve`'s reconcile interval; `None`: off.
    pub sync_interval: Option<Duration>,
    /// Read links from issue descriptions; count links to its issues.
    pub links: bool,
}

/// A numeric id or a path (`group/subgroup/project`).
const PROJECT: ScopeRule = ScopeRule {
    what: "a project as `group/project` or a numeric id",
    ok: |p| {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        let id = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        id || (p.contains('/') && p.split('/').all(|s| !s.is_empty() && s.chars().all(ok)))
    },
    folded: true,
};

/// Validates `[webhooks.gitlab]` against the configured pipeline.
pub(super) fn validate(
    gl: &GitlabSettings,
    pipeline: &Pipeline,
) -> Result<GitlabConfig, ConfigError> {
    for (id, release) in &gl.milestones {
        check_name(&format!("webhooks.gitlab.milestones.{id}"), release)?;
    }
    let secrets = Secrets::load(
        "webhooks.gitlab.token",
        gl.token.as_ref(),
        gl.token_file.as_ref(),
    )?;
    let secrets = secrets.header_safe("webhooks.gitlab.token")?;
    let signing_keys = Secrets::load_signing(
        "webhooks.gitlab.signing_secret",
        gl.signing_secret.as_ref(),
        gl.signing_secret_file.as_ref(),
    )?;
    let conventions = gl.conventions.conventions("webhooks.gitlab", pipeline)?;
    let api = gl.api.api("webhooks.gitlab")?;
    let projects = scopes("webhooks.gitlab.projects", &gl.projects, PROJECT)?;
    Ok(GitlabConfig {
        links: gl.links,
        secrets,
        signing_keys,
        conventions,
        milestones: gl.milestones.clone(),
        api,
        sync_interval: sync_interval(
            "webhooks.gitlab",
            gl.sync_interval.as_ref(),
            "projects",
            &projects,
        )?,
        projects,
    })
}
