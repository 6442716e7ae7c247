//! Settings of the sources, one `[webhooks.<source>]` table each ([`github`],
//! [`gitlab`], [`jira`], [`sentry`]: the keys, their defaults and their
//! validation): the secrets (several, for rotation), the conventions that
//! map a source's labels and fields onto a defect's classification, and what
//! `sync` reads. The parts the tables share are one struct each, flattened
//! into the tables: [`ApiSettings`] (every source: `api_url`, `api_token`,
//! `api_token_file`; [`settings`] also checks the scope lists and
//! `sync_interval` for all), [`SecretSettings`] (GitHub, Jira, Sentry) and
//! [`ConventionSettings`] (GitHub, GitLab, Jira). Keys no setting claims are
//! collected in [`UnknownKeys`] and refused by validation, naming the key
//! (`webhooks.github.secrt`).
//!
//! These types sit in `config` because [`crate::config::Config`] carries
//! them and `config` is below `sources`; each source's code reads its own
//! table (`config.webhooks.<source>`).
//!
//! Secrets come from the TOML file, a file named there (`secret_file`, one
//! secret per line), or the environment (`BUG_ESCAPE_GITHUB_SECRET`, …,
//! comma-separated for several). GitLab's signing secrets (Standard Webhooks,
//! `whsec_<base64>`) are kept decoded: the HMAC key is the base64 part. They
//! are read from the environment verbatim,
//! not through the layered settings parser, which would turn a numeric secret
//! such as `0012` into the number 12.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, ranges};
use crate::model::stage::Pipeline;

mod conventions;
pub mod github;
pub mod gitlab;
pub mod jira;
mod secrets;
pub mod sentry;
pub mod settings;

pub use conventions::{ConventionSettings, Conventions, PrefixSettings};
pub use github::{GithubConfig, GithubSettings};
pub use gitlab::{GitlabConfig, GitlabSettings};
pub use jira::{JiraConfig, JiraSearch, JiraSettings};
pub use secrets::{SecretSetting, SecretSettings, Secrets};
pub use sentry::{Disposition, SentryConfig, SentrySettings};
use settings::refuse_unknown;
pub use settings::{Api, ApiSettings, UnknownKeys};

/// The name of every source, one `[webhooks.<name>]` table each: the kinds
/// a product's `sources` (`github:acme/payments`) may name. The same list as
/// `sources::REGISTRY`'s names, which `config` may not import (it is below
/// `sources`); `tests/api/config.rs` holds the two equal.
pub const SOURCE_KINDS: &[&str] = &["github", "gitlab", "jira", "sentry"];

/// Every `[webhooks.*]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSettings {
    pub github: GithubSettings,
    pub gitlab: GitlabSettings,
    pub jira: JiraSettings,
    pub sentry: SentrySettings,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// A secret environment variable's setting: the variable, the key it sets,
/// the inline setting and the file setting.
type SettingVar<'a, T> = (
    &'static str,
    &'static str,
    &'a mut Option<T>,
    &'a mut Option<PathBuf>,
);

impl WebhooksSettings {
    /// Applies the secret environment variables, read verbatim through `var`:
    /// `BUG_ESCAPE_<NAME>` (comma-separated secrets) and `BUG_ESCAPE_<NAME>_FILE`
    /// (a file of them) for every secret a source has. Returns the variables
    /// applied with the key each set (`webhooks.github.secret`), so errors
    /// can name the variable.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let mut applied = Vec::new();
        let mut read = |name: &str, key: &str| {
            let v = var(name);
            if v.is_some() {
                applied.push((name.to_owned(), key.to_owned()));
            }
            v
        };
        for (name, key, inline, file) in self.secret_settings() {
            if let Some(v) = read(name, key) {
                *inline = Some(SecretSetting::One(v));
            }
            if let Some(p) = read(&format!("{name}_FILE"), &format!("{key}_file")) {
                *file = Some(PathBuf::from(p));
            }
        }
        // One API token, taken whole (never split on commas).
        for (name, key, token, file) in self.token_settings() {
            if let Some(t) = read(name, key) {
                *token = Some(t);
            }
            if let Some(p) = read(&format!("{name}_FILE"), &format!("{key}_file")) {
                *file = Some(PathBuf::from(p));
            }
        }
        applied
    }

    /// Every secret setting with its variable and key.
    fn secret_settings(&mut self) -> [SettingVar<'_, SecretSetting>; 5] {
        [
            (
                "BUG_ESCAPE_GITHUB_SECRET",
                "webhooks.github.secret",
                &mut self.github.auth.secret,
                &mut self.github.auth.secret_file,
            ),
            (
                "BUG_ESCAPE_GITLAB_TOKEN",
                "webhooks.gitlab.token",
                &mut self.gitlab.token,
                &mut self.gitlab.token_file,
            ),
            (
                "BUG_ESCAPE_GITLAB_SIGNING_SECRET",
                "webhooks.gitlab.signing_secret",
                &mut self.gitlab.signing_secret,
                &mut self.gitlab.signing_secret_file,
            ),
            (
                "BUG_ESCAPE_JIRA_SECRET",
                "webhooks.jira.secret",
                &mut self.jira.auth.secret,
                &mut self.jira.auth.secret_file,
            ),
            (
                "BUG_ESCAPE_SENTRY_SECRET",
                "webhooks.sentry.secret",
                &mut self.sentry.auth.secret,
                &mut self.sentry.auth.secret_file,
            ),
        ]
    }

    /// Every API token setting with its variable and key (one token, taken
    /// whole: never split on commas).
    fn token_settings(&mut self) -> [SettingVar<'_, String>; 4] {
        [
            (
                "BUG_ESCAPE_GITHUB_API_TOKEN",
                "webhooks.github.api_token",
                &mut self.github.api.api_token,
                &mut self.github.api.api_token_file,
            ),
            (
                "BUG_ESCAPE_GITLAB_API_TOKEN",
                "webhooks.gitlab.api_token",
                &mut self.gitlab.api.api_token,
                &mut self.gitlab.api.api_token_file,
            ),
            (
                "BUG_ESCAPE_JIRA_API_TOKEN",
                "webhooks.jira.api_token",
                &mut self.jira.api.api_token,
                &mut self.jira.api.api_token_file,
            ),
            (
                "BUG_ESCAPE_SENTRY_API_TOKEN",
                "webhooks.sentry.api_token",
                &mut self.sentry.api.api_token,
                &mut self.sentry.api.api_token_file,
            ),
        ]
    }
}
/// Every validated webhook setting.
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    pub github: GithubConfig,
    pub gitlab: GitlabConfig,
    pub jira: JiraConfig,
    pub sentry: SentryConfig,
}

/// Refuses an entry listed twice in a list matched case-insensitively.
fn unique_folded(key: &str, v: &[String]) -> Result<(), ConfigError> {
    ranges::unique(key, v.iter().map(String::as_str), |s| {
        s.trim().to_lowercase()
    })
}

fn lower(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_lowercase()).collect()
}

fn default_stage(
    key: &str,
    stage: Option<&String>,
    pipeline: &Pipeline,
) -> Result<Option<String>, ConfigError> {
    match stage {
        None => Ok(None),
        Some(s) if pipeline.index(s).is_some() => Ok(Some(s.clone())),
        Some(s) => Err(ConfigError(format!(
            "{key}.default_stage: unknown stage `{s}`; configured stages: {}",
            pipeline.names()
        ))),
    }
}

/// The first production stage (a pipeline always has one).
fn first_production(pipeline: &Pipeline) -> Option<String> {
    (0..pipeline.stages().len())
        .find(|&i| pipeline.is_production(i))
        .map(|i| pipeline.stages()[i].name.clone())
}

impl WebhooksConfig {
    /// Validates the webhook settings against the configured pipeline.
    pub fn from_settings(s: &WebhooksSettings, pipeline: &Pipeline) -> Result<Self, ConfigError> {
        refuse_unknown::<GithubSettings>("webhooks.github", &s.github.unknown)?;
        refuse_unknown::<GitlabSettings>("webhooks.gitlab", &s.gitlab.unknown)?;
        refuse_unknown::<JiraSettings>("webhooks.jira", &s.jira.unknown)?;
        refuse_unknown::<SentrySettings>("webhooks.sentry", &s.sentry.unknown)?;
        Ok(Self {
            github: github::validate(&s.github, pipeline)?,
            gitlab: gitlab::validate(&s.gitlab, pipeline)?,
            jira: jira::validate(&s.jira, pipeline)?,
            sentry: sentry::validate(&s.sentry, pipeline)?,
        })
    }
}

#[cfg(test)]
mod tests;
