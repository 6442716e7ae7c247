//! `[webhooks.sentry]`: Sentry's client secrets, how its issues count
//! (stage, detector, archived ones), its API (issue details, `sync`) and the
//! projects `sync` lists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::settings::{ScopeRule, scopes, sync_interval};
use super::{ApiSettings, SecretSettings, Secrets, UnknownKeys};
use crate::config::{ConfigError, ranges};
use crate::model::event::DETECTORS;
use crate::model::stage::Pipeline;

/// What to do with a Sentry issue that is archived (ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Still counted: it escaped.
    Keep,
    /// Counted as invalid (leaves the counts).
    Invalid,
    /// Deleted (leaves the counts, kept as a tombstone).
    Delete,
}

/// `[webhooks.sentry]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SentrySettings {
    /// The integration's client secret(s): `secret`, `secret_file`; env
    /// `BUG_ESCAPE_SENTRY_SECRET(_FILE)`.
    #[serde(flatten)]
    pub auth: SecretSettings,
    /// Count Sentry issues as defects at all.
    pub count_issues: bool,
    /// Stage of Sentry issues; unset: the pipeline's first production stage.
    pub default_stage: Option<String>,
    /// `detected_by` of Sentry issues.
    pub detected_by: String,
    /// What an archived (ignored) issue becomes.
    pub archived: Disposition,
    /// `api_url` (self-hosted Sentry, or a test server), `api_token`,
    /// `api_token_file`: the issue API (`firstRelease`) and the REST API
    /// `sync` reads; env `BUG_ESCAPE_SENTRY_API_TOKEN(_FILE)`.
    #[serde(flatten)]
    pub api: ApiSettings,
    /// Organization slug; without it the organization-less issue API is used.
    pub organization: Option<String>,
    /// Timeout of one API call.
    pub api_timeout: String,
    /// Projects `sync` reads (slugs of `organization`).
    pub projects: Vec<String>,
    /// How often `serve` reconciles them with the API; unset: never.
    pub sync_interval: Option<String>,
    /// How long Sentry keeps issues: `sync --full` does not take an issue
    /// last changed before that for deleted.
    pub retention: String,
    /// Read links to the configured sources' issues from the issue's
    /// `annotations` (docs/semantics.md, "Linked records"), and count links
    /// to this organisation's issues from the other sources.
    pub links: bool,
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

impl Default for SentrySettings {
    fn default() -> Self {
        Self {
            auth: SecretSettings::default(),
            count_issues: true,
            default_stage: None,
            detected_by: "monitoring".into(),
            archived: Disposition::Keep,
            api: ApiSettings::with_url("https://sentry.io"),
            organization: None,
            api_timeout: "5s".into(),
            projects: Vec::new(),
            sync_interval: None,
            retention: "90d".into(),
            links: true,
            unknown: UnknownKeys::default(),
        }
    }
}

/// Validated `[webhooks.sentry]`.
#[derive(Debug, Clone)]
pub struct SentryConfig {
    pub secrets: Secrets,
    pub count_issues: bool,
    pub default_stage: Option<String>,
    pub detected_by: String,
    pub archived: Disposition,
    /// Token for the issue API; `None`: releases come from `error` webhooks only.
    pub api_token: Option<Secrets>,
    /// Without a trailing `/`.
    pub api_url: String,
    pub organization: Option<String>,
    pub api_timeout: Duration,
    /// Projects `sync` reads (slugs), each once.
    pub projects: Vec<String>,
    /// `serve`'s reconcile interval; `None`: off.
    pub sync_interval: Option<Duration>,
    /// Sentry's retention: older issues are not probed by the deletion sweep.
    pub retention: Duration,
    /// Read links from `annotations`; count links to this organisation.
    pub links: bool,
}

/// Lowercase letters, digits, `-`, `_`.
const PROJECT: ScopeRule = ScopeRule {
    what: "a project slug (lowercase letters, digits, `-`, `_`)",
    ok: |p| {
        !p.is_empty()
            && p.len() <= 100
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    },
    folded: false,
};

/// Validates `[webhooks.sentry]` against the configured pipeline.
pub(super) fn validate(
    se: &SentrySettings,
    pipeline: &Pipeline,
) -> Result<SentryConfig, ConfigError> {
    if !DETECTORS.contains(&se.detected_by.as_str()) {
        return Err(ConfigError(format!(
            "webhooks.sentry.detected_by: unknown value `{}`; expected one of: {}",
            se.detected_by,
            DETECTORS.join(", ")
        )));
    }
    let api_url = super::settings::api_url("webhooks.sentry", &se.api.api_url)?;
    let api_timeout = ranges::REQUEST_TIME.parse("webhooks.sentry.api_timeout", &se.api_timeout)?;
    let api_token = se.api.token("webhooks.sentry")?;
    let default_stage =
        super::default_stage("webhooks.sentry", se.default_stage.as_ref(), pipeline)?;
    let sentry = SentryConfig {
        secrets: se.auth.load("webhooks.sentry")?,
        count_issues: se.count_issues,
        default_stage: default_stage.or_else(|| super::first_production(pipeline)),
        detected_by: se.detected_by.clone(),
        archived: se.archived,
        api_token,
        api_url,
        organization: se.organization.clone().filter(|o| !o.trim().is_empty()),
        api_timeout,
        projects: scopes("webhooks.sentry.projects", &se.projects, PROJECT)?,
        sync_interval: None,
        retention: ranges::RETENTION.parse("webhooks.sentry.retention", &se.retention)?,
        links: se.links,
    };
    if !sentry.projects.is_empty() && sentry.organization.is_none() {
        return Err(ConfigError(
            "webhooks.sentry.projects: is set but webhooks.sentry.organization is not: \
             name the organization the projects belong to"
                .into(),
        ));
    }
    Ok(SentryConfig {
        sync_interval: sync_interval(
            "webhooks.sentry",
            se.sync_interval.as_ref(),
            "projects",
            &sentry.projects,
        )?,
        ..sentry
    })
}
