//! Settings of the source webhooks, one `[webhooks.<source>]` table each: the
//! secrets (several, for rotation) and the conventions that map a source's
//! labels and fields onto a defect's classification. The parts the tables
//! share are one struct each, flattened into the tables: [`SecretSettings`]
//! (GitHub, Jira, Sentry) and [`ConventionSettings`] (GitHub, GitLab, Jira).
//! Keys no setting claims are collected in [`UnknownKeys`] and refused by
//! validation, naming the key (`webhooks.github.secrt`).
//!
//! Secrets come from the TOML file, a file named there (`secret_file`, one
//! secret per line), or the environment (`BUG_ESCAPE_GITHUB_SECRET`, …,
//! comma-separated for several). GitLab's signing secrets (Standard Webhooks,
//! `whsec_<base64>`) are kept decoded: the HMAC key is the base64 part. They
//! are read from the environment verbatim,
//! not through the layered settings parser, which would turn a numeric secret
//! such as `0012` into the number 12.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::{ConfigError, check_name, ranges};
use crate::model::event::DETECTORS;
use crate::model::stage::Pipeline;

/// One or several secrets as written in TOML: `"s"`, `"s1,s2"` or `["s1", "s2"]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecretSetting {
    One(String),
    Many(Vec<String>),
}

impl std::fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretSetting(<redacted>)")
    }
}

/// Label prefixes that carry classification (`stage:qa`, `release:2.4.0`, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefixSettings {
    pub stage: String,
    pub release: String,
    pub cause: String,
    pub severity: String,
    pub team: String,
    pub detected_by: String,
}

impl Default for PrefixSettings {
    fn default() -> Self {
        Self {
            stage: "stage:".into(),
            release: "release:".into(),
            cause: "cause:".into(),
            severity: "severity:".into(),
            team: "team:".into(),
            detected_by: "detected_by:".into(),
        }
    }
}

/// A source's secret(s), flattened into its table as `secret` and
/// `secret_file` (GitHub, Jira, Sentry).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretSettings {
    /// Secret(s) inline; env `BUG_ESCAPE_<SOURCE>_SECRET`.
    pub secret: Option<SecretSetting>,
    /// File with one secret per line; env `BUG_ESCAPE_<SOURCE>_SECRET_FILE`.
    pub secret_file: Option<PathBuf>,
}

/// Where and how `sync` reads a source's REST API, flattened into its table
/// as `api_url`, `api_token`, `api_token_file` (Sentry's own keys, which its
/// issue API already used, have the same names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiSettings {
    /// Base URL of the API (GitHub Enterprise, self-managed GitLab, a test
    /// server).
    pub api_url: String,
    /// API token; env `BUG_ESCAPE_<SOURCE>_API_TOKEN` (one token, taken whole).
    pub api_token: Option<String>,
    /// File holding the API token; env `BUG_ESCAPE_<SOURCE>_API_TOKEN_FILE`.
    pub api_token_file: Option<PathBuf>,
}

impl ApiSettings {
    fn with_url(url: &str) -> Self {
        Self {
            api_url: url.into(),
            api_token: None,
            api_token_file: None,
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self::with_url("https://api.github.com")
    }
}

/// The label conventions of the issue trackers (GitHub, GitLab, Jira),
/// flattened into each one's table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConventionSettings {
    /// Labels that make an issue a defect (case-insensitive).
    pub defect_labels: Vec<String>,
    /// Issue types that make an issue a defect (case-insensitive; GitLab:
    /// `object_attributes.type`, e.g. `Incident`).
    pub defect_types: Vec<String>,
    /// Labels that mark a defect invalid.
    pub invalid_labels: Vec<String>,
    /// Labels that mark a defect a duplicate.
    pub duplicate_labels: Vec<String>,
    /// Stage of a defect with no stage label (none: shown as `no_stage`).
    pub default_stage: Option<String>,
    pub prefixes: PrefixSettings,
}

impl ConventionSettings {
    /// The defaults, with `defect_types` as given (they differ per source).
    fn with_types(defect_types: &[&str]) -> Self {
        Self {
            defect_labels: strings(&["bug", "defect"]),
            defect_types: strings(defect_types),
            invalid_labels: strings(&["invalid"]),
            duplicate_labels: strings(&["duplicate"]),
            default_stage: None,
            prefixes: PrefixSettings::default(),
        }
    }
}

impl Default for ConventionSettings {
    fn default() -> Self {
        Self::with_types(&["Bug"])
    }
}

/// The keys of a `[webhooks.<source>]` table that no setting claims. serde's
/// `deny_unknown_fields` does not work beside `flatten`, so they are collected
/// here and refused by validation, naming the key. Only the keys are kept: the
/// value of a misspelt `secrt = "…"` is never stored or printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnknownKeys(pub BTreeSet<String>);

impl<'de> Deserialize<'de> for UnknownKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let keys = BTreeMap::<String, serde::de::IgnoredAny>::deserialize(d)?;
        Ok(Self(keys.into_keys().collect()))
    }
}

impl Serialize for UnknownKeys {
    /// Nothing: unknown keys are refused, never written back.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(std::iter::empty::<((), ())>())
    }
}

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
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

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
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

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
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

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
    /// API token for the issue API (`firstRelease`); env `BUG_ESCAPE_SENTRY_API_TOKEN`.
    pub api_token: Option<String>,
    /// File holding the API token; env `BUG_ESCAPE_SENTRY_API_TOKEN_FILE`.
    pub api_token_file: Option<PathBuf>,
    /// Base URL of the Sentry API (self-hosted Sentry, or a test server).
    pub api_url: String,
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
    #[serde(flatten)]
    pub unknown: UnknownKeys,
}

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
            unknown: UnknownKeys::default(),
        }
    }
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
            unknown: UnknownKeys::default(),
        }
    }
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
            unknown: UnknownKeys::default(),
        }
    }
}

impl Default for SentrySettings {
    fn default() -> Self {
        Self {
            auth: SecretSettings::default(),
            count_issues: true,
            default_stage: None,
            detected_by: "monitoring".into(),
            archived: Disposition::Keep,
            api_token: None,
            api_token_file: None,
            api_url: "https://sentry.io".into(),
            organization: None,
            api_timeout: "5s".into(),
            projects: Vec::new(),
            sync_interval: None,
            retention: "90d".into(),
            unknown: UnknownKeys::default(),
        }
    }
}

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
        let secrets: [(&str, &str, &mut Option<SecretSetting>, &mut Option<PathBuf>); 5] = [
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
        ];
        for (name, key, inline, file) in secrets {
            if let Some(v) = read(name, key) {
                *inline = Some(SecretSetting::One(v));
            }
            if let Some(p) = read(&format!("{name}_FILE"), &format!("{key}_file")) {
                *file = Some(PathBuf::from(p));
            }
        }
        // One API token, taken whole (never split on commas).
        let apis: [(&str, &str, &mut Option<String>, &mut Option<PathBuf>); 4] = [
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
                &mut self.sentry.api_token,
                &mut self.sentry.api_token_file,
            ),
        ];
        for (name, key, token, file) in apis {
            if let Some(t) = read(name, key) {
                *token = Some(t);
            }
            if let Some(p) = read(&format!("{name}_FILE"), &format!("{key}_file")) {
                *file = Some(PathBuf::from(p));
            }
        }
        applied
    }
}

/// Validated secrets of one source; empty when none is configured. Never
/// printed.
#[derive(Clone, Default)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} configured)", self.0.len())
    }
}

impl Secrets {
    /// Secrets from plain values (tests, tooling).
    pub fn new(secrets: Vec<String>) -> Self {
        Self(secrets.into_iter().map(String::into_bytes).collect())
    }

    /// Whether none is configured (the source refuses every event).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every configured secret, as bytes.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(Vec::as_slice)
    }

    /// Secrets from raw keys (decoded signing secrets, tests).
    pub fn from_keys(keys: Vec<Vec<u8>>) -> Self {
        Self(keys)
    }

    /// Standard Webhooks signing secrets (`whsec_<base64>`), decoded into their
    /// HMAC keys. An error names the secret by position, never by value.
    fn load_signing(
        key: &str,
        inline: Option<&SecretSetting>,
        file: Option<&PathBuf>,
    ) -> Result<Self, ConfigError> {
        let texts = Self::load(key, inline, file)?;
        let mut keys = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let decoded = text
                .strip_prefix(b"whsec_")
                .and_then(|b64| BASE64.decode(b64).ok())
                .filter(|k| !k.is_empty());
            match decoded {
                Some(k) => keys.push(k),
                None => {
                    return Err(ConfigError(format!(
                        "{key}: secret #{} is not `whsec_<base64>` as GitLab shows it",
                        i + 1
                    )));
                }
            }
        }
        Ok(Self(keys))
    }

    fn load(
        key: &str,
        inline: Option<&SecretSetting>,
        file: Option<&PathBuf>,
    ) -> Result<Self, ConfigError> {
        // Blank entries between secrets (`a,,b`, a trailing newline) are
        // skipped; a setting that holds no secret at all is an error, never a
        // silently unconfigured source.
        let kept = |texts: Vec<&str>| -> Vec<Vec<u8>> {
            texts
                .into_iter()
                .map(|s| s.trim().as_bytes().to_vec())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let mut out = match inline {
            None => Vec::new(),
            Some(SecretSetting::One(s)) => kept(s.split(',').collect()),
            Some(SecretSetting::Many(v)) => kept(v.iter().map(String::as_str).collect()),
        };
        if inline.is_some() && out.is_empty() {
            return Err(ConfigError(format!(
                "{key}: is set but empty or white space only; set a secret or unset it"
            )));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("{key}_file: cannot read {}: {e}", path.display()))
            })?;
            let from_file = kept(text.lines().collect());
            if from_file.is_empty() {
                return Err(ConfigError(format!(
                    "{key}_file: {} holds no secret (empty or white space only)",
                    path.display()
                )));
            }
            out.extend(from_file);
        }
        // A secret listed twice is a mistake (a rotation half done);
        // named by position, never by value.
        for (i, s) in out.iter().enumerate() {
            if let Some(j) = out[..i].iter().position(|o| o == s) {
                return Err(ConfigError(format!(
                    "{key}: secret #{} is the same as secret #{} (counting {key} first, then {key}_file; values not shown)",
                    i + 1,
                    j + 1
                )));
            }
        }
        Ok(Self(out))
    }

    /// Refuses a secret sent in an HTTP header that holds a control
    /// character (no client could send it); named, never shown.
    fn header_safe(self, key: &str) -> Result<Self, ConfigError> {
        for s in &self.0 {
            super::header_safe(key, &String::from_utf8_lossy(s))?;
        }
        Ok(self)
    }
}

/// Label conventions of one source, validated and lower-cased for
/// case-insensitive matching.
#[derive(Debug, Clone)]
pub struct Conventions {
    pub defect_labels: Vec<String>,
    pub defect_types: Vec<String>,
    pub invalid_labels: Vec<String>,
    pub duplicate_labels: Vec<String>,
    pub stage_prefix: String,
    pub release_prefix: String,
    pub cause_prefix: String,
    pub severity_prefix: String,
    pub team_prefix: String,
    pub detected_by_prefix: String,
    pub default_stage: Option<String>,
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
}

/// A validated [`ApiSettings`].
#[derive(Debug, Clone)]
pub struct Api {
    /// Without a trailing `/`.
    pub url: String,
    /// The token; `None`: unauthenticated calls (public repositories only).
    pub token: Option<Secrets>,
}

impl Api {
    /// The token as text (the first, and only, one).
    pub fn token(&self) -> Option<String> {
        let t = self.token.as_ref()?.iter().next()?;
        Some(String::from_utf8_lossy(t).into_owned())
    }
}

impl ApiSettings {
    /// Validates the API settings of the table at `key`.
    fn api(&self, key: &str) -> Result<Api, ConfigError> {
        Ok(Api {
            url: api_url(key, &self.api_url)?,
            token: self.token(key)?,
        })
    }

    /// The validated token of the table at `key`.
    fn token(&self, key: &str) -> Result<Option<Secrets>, ConfigError> {
        let token = Secrets::load(
            &format!("{key}.api_token"),
            self.api_token
                .clone()
                .map(|t| SecretSetting::Many(vec![t]))
                .as_ref(),
            self.api_token_file.as_ref(),
        )?
        .header_safe(&format!("{key}.api_token"))?;
        Ok((!token.is_empty()).then_some(token))
    }
}

/// An `api_url`: `http(s)://…`, kept without its trailing `/`.
fn api_url(key: &str, v: &str) -> Result<String, ConfigError> {
    let url = v.trim().trim_end_matches('/').to_owned();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let parsed = url::Url::parse(&url).ok().filter(|u| u.host().is_some());
    if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) || parsed.is_none() {
        return Err(ConfigError(format!(
            "{key}.api_url: `{}` is not an http(s) URL",
            super::redact::url(v)
        )));
    }
    // Every call of a pass must carry exactly the configured origin and no
    // URL credentials, so a user name or password here would have every
    // call refused at sync time; said now, without the credentials.
    if parsed.is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
        return Err(ConfigError(format!(
            "{key}.api_url: `{}` holds a user name or password; put the credential in {key}.api_token instead",
            super::redact::url(v)
        )));
    }
    Ok(url)
}

/// An optional reconcile interval (`15m`), in its range.
fn interval(key: &str, v: Option<&String>) -> Result<Option<Duration>, ConfigError> {
    v.map(|v| ranges::SYNC_INTERVAL.parse(key, v)).transpose()
}

/// GitHub repositories as `owner/name`, each once.
fn repositories(key: &str, v: &[String]) -> Result<Vec<String>, ConfigError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut out: Vec<String> = Vec::new();
    for (i, r) in v.iter().enumerate() {
        let r = r.trim();
        let good = r.split_once('/').is_some_and(|(o, n)| {
            !o.is_empty() && !n.is_empty() && o.chars().all(ok) && n.chars().all(ok)
        });
        if !good {
            return Err(ConfigError(format!(
                "{key}[{i}]: `{r}` is not a repository as `owner/name`"
            )));
        }
        if out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            return Err(ConfigError(format!("{key}[{i}]: `{r}` is listed twice")));
        }
        out.push(r.to_owned());
    }
    Ok(out)
}

/// GitLab projects: numeric ids or paths (`group/subgroup/project`), each once.
fn gitlab_projects(key: &str, v: &[String]) -> Result<Vec<String>, ConfigError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let mut out: Vec<String> = Vec::new();
    for (i, p) in v.iter().enumerate() {
        let p = p.trim();
        let id = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let path = p.contains('/') && p.split('/').all(|s| !s.is_empty() && s.chars().all(ok));
        if !id && !path {
            return Err(ConfigError(format!(
                "{key}[{i}]: `{p}` is not a project as `group/project` or a numeric id"
            )));
        }
        if out.iter().any(|o| o.eq_ignore_ascii_case(p)) {
            return Err(ConfigError(format!("{key}[{i}]: `{p}` is listed twice")));
        }
        out.push(p.to_owned());
    }
    Ok(out)
}

/// Sentry project slugs (lowercase letters, digits, `-`, `_`), each once.
fn sentry_projects(key: &str, v: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for (i, p) in v.iter().enumerate() {
        let p = p.trim();
        let good = !p.is_empty()
            && p.len() <= 100
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !good {
            return Err(ConfigError(format!(
                "{key}[{i}]: `{p}` is not a project slug (lowercase letters, digits, `-`, `_`)"
            )));
        }
        if out.iter().any(|o| o == p) {
            return Err(ConfigError(format!("{key}[{i}]: `{p}` is listed twice")));
        }
        out.push(p.to_owned());
    }
    Ok(out)
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
}

/// The search `sync` pages through Jira's issues with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JiraSearch {
    /// `GET /rest/api/3/search/jql`, `nextPageToken` (Jira Cloud).
    Enhanced,
    /// `GET /rest/api/2/search`, `startAt`/`maxResults`/`total` (Data Center).
    V2,
}

/// Jira project keys: a letter, then letters, digits or `_`; each once.
fn jira_projects(key: &str, v: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for (i, p) in v.iter().enumerate() {
        let p = p.trim();
        let good = p.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !good {
            return Err(ConfigError(format!(
                "{key}[{i}]: `{p}` is not a project key like `PAY`"
            )));
        }
        if out.iter().any(|o| o.eq_ignore_ascii_case(p)) {
            return Err(ConfigError(format!("{key}[{i}]: `{p}` is listed twice")));
        }
        out.push(p.to_owned());
    }
    Ok(out)
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

impl ConventionSettings {
    /// The validated conventions of the table at `key` (`webhooks.github`).
    fn conventions(&self, key: &str, pipeline: &Pipeline) -> Result<Conventions, ConfigError> {
        if self.defect_labels.is_empty() && self.defect_types.is_empty() {
            return Err(ConfigError(format!(
                "{key}: defect_labels and defect_types are both empty, so no issue would ever count"
            )));
        }
        for (name, list) in [
            ("defect_labels", &self.defect_labels),
            ("defect_types", &self.defect_types),
            ("invalid_labels", &self.invalid_labels),
            ("duplicate_labels", &self.duplicate_labels),
        ] {
            unique_folded(&format!("{key}.{name}"), list)?;
        }
        let p = &self.prefixes;
        for (name, v) in [
            ("stage", &p.stage),
            ("release", &p.release),
            ("cause", &p.cause),
            ("severity", &p.severity),
            ("team", &p.team),
            ("detected_by", &p.detected_by),
        ] {
            if v.trim().is_empty() {
                return Err(ConfigError(format!(
                    "{key}.prefixes.{name}: must not be empty (it would match every label)"
                )));
            }
        }
        Ok(Conventions {
            defect_labels: lower(&self.defect_labels),
            defect_types: lower(&self.defect_types),
            invalid_labels: lower(&self.invalid_labels),
            duplicate_labels: lower(&self.duplicate_labels),
            stage_prefix: p.stage.to_lowercase(),
            release_prefix: p.release.to_lowercase(),
            cause_prefix: p.cause.to_lowercase(),
            severity_prefix: p.severity.to_lowercase(),
            team_prefix: p.team.to_lowercase(),
            detected_by_prefix: p.detected_by.to_lowercase(),
            default_stage: default_stage(key, self.default_stage.as_ref(), pipeline)?,
        })
    }
}

impl SecretSettings {
    /// The secrets of the table at `key`.
    fn load(&self, key: &str) -> Result<Secrets, ConfigError> {
        Secrets::load(
            &format!("{key}.secret"),
            self.secret.as_ref(),
            self.secret_file.as_ref(),
        )
    }
}

/// Refuses the first key of the table at `key` that no setting of `T`
/// claims, naming it and the keys there are.
fn refuse_unknown<T: Serialize + Default>(
    key: &str,
    unknown: &UnknownKeys,
) -> Result<(), ConfigError> {
    let Some(bad) = unknown.0.iter().next() else {
        return Ok(());
    };
    // The keys there are: those of the defaults, serialised (the flattened
    // parts inline, unset options as nulls).
    let known = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect::<Vec<_>>().join(", "),
        _ => String::new(),
    };
    Err(ConfigError(format!(
        "{key}.{bad}: unknown key; known keys: {known}"
    )))
}

impl WebhooksConfig {
    /// Validates the webhook settings against the configured pipeline.
    pub fn from_settings(s: &WebhooksSettings, pipeline: &Pipeline) -> Result<Self, ConfigError> {
        refuse_unknown::<GithubSettings>("webhooks.github", &s.github.unknown)?;
        refuse_unknown::<GitlabSettings>("webhooks.gitlab", &s.gitlab.unknown)?;
        refuse_unknown::<JiraSettings>("webhooks.jira", &s.jira.unknown)?;
        refuse_unknown::<SentrySettings>("webhooks.sentry", &s.sentry.unknown)?;
        let gh = &s.github;
        unique_folded("webhooks.github.duplicate_reasons", &gh.duplicate_reasons)?;
        unique_folded("webhooks.github.invalid_reasons", &gh.invalid_reasons)?;
        let github = GithubConfig {
            secrets: gh.auth.load("webhooks.github")?,
            conventions: gh.conventions.conventions("webhooks.github", pipeline)?,
            duplicate_reasons: lower(&gh.duplicate_reasons),
            invalid_reasons: lower(&gh.invalid_reasons),
            milestone_as_release: gh.milestone_as_release,
            api: gh.api.api("webhooks.github")?,
            repositories: repositories("webhooks.github.repositories", &gh.repositories)?,
            sync_interval: interval("webhooks.github.sync_interval", gh.sync_interval.as_ref())?,
        };
        if gh.sync_interval.is_some() && gh.repositories.is_empty() {
            return Err(ConfigError(
                "webhooks.github.sync_interval: is set but webhooks.github.repositories is empty: \
                 name the repositories to reconcile"
                    .into(),
            ));
        }
        let gl = &s.gitlab;
        for (id, release) in &gl.milestones {
            check_name(&format!("webhooks.gitlab.milestones.{id}"), release)?;
        }
        let gitlab = GitlabConfig {
            secrets: Secrets::load(
                "webhooks.gitlab.token",
                gl.token.as_ref(),
                gl.token_file.as_ref(),
            )?
            .header_safe("webhooks.gitlab.token")?,
            signing_keys: Secrets::load_signing(
                "webhooks.gitlab.signing_secret",
                gl.signing_secret.as_ref(),
                gl.signing_secret_file.as_ref(),
            )?,
            conventions: gl.conventions.conventions("webhooks.gitlab", pipeline)?,
            milestones: gl.milestones.clone(),
            api: gl.api.api("webhooks.gitlab")?,
            projects: gitlab_projects("webhooks.gitlab.projects", &gl.projects)?,
            sync_interval: interval("webhooks.gitlab.sync_interval", gl.sync_interval.as_ref())?,
        };
        if gl.sync_interval.is_some() && gl.projects.is_empty() {
            return Err(ConfigError(
                "webhooks.gitlab.sync_interval: is set but webhooks.gitlab.projects is empty: \
                 name the projects to reconcile"
                    .into(),
            ));
        }
        let j = &s.jira;
        unique_folded("webhooks.jira.invalid_resolutions", &j.invalid_resolutions)?;
        unique_folded(
            "webhooks.jira.duplicate_resolutions",
            &j.duplicate_resolutions,
        )?;
        for (id, key) in &j.project_keys {
            check_name(&format!("webhooks.jira.project_keys.{id}"), key)?;
        }
        let jira = JiraConfig {
            secrets: j.auth.load("webhooks.jira")?,
            conventions: j.conventions.conventions("webhooks.jira", pipeline)?,
            invalid_resolutions: lower(&j.invalid_resolutions),
            duplicate_resolutions: lower(&j.duplicate_resolutions),
            stage_field: j.stage_field.clone().filter(|f| !f.trim().is_empty()),
            project_keys: j.project_keys.clone(),
            // No default site: unset is allowed until projects are named.
            api: if j.api.api_url.trim().is_empty() {
                Api {
                    url: String::new(),
                    token: j.api.token("webhooks.jira")?,
                }
            } else {
                j.api.api("webhooks.jira")?
            },
            api_user: j.api_user.clone().filter(|u| !u.trim().is_empty()),
            api_search: match j.api_search.as_deref().map(str::trim) {
                None | Some("") if j.api_user.is_some() => JiraSearch::Enhanced,
                None | Some("") => JiraSearch::V2,
                Some("enhanced") => JiraSearch::Enhanced,
                Some("v2") => JiraSearch::V2,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "webhooks.jira.api_search: `{other}` is not `enhanced` or `v2`"
                    )));
                }
            },
            projects: jira_projects("webhooks.jira.projects", &j.projects)?,
            sync_interval: interval("webhooks.jira.sync_interval", j.sync_interval.as_ref())?,
        };
        if !j.projects.is_empty() && jira.api.url.is_empty() {
            return Err(ConfigError(
                "webhooks.jira.api_url: is required to sync webhooks.jira.projects \
                 (the site, `https://acme.atlassian.net`, or the Data Center base URL)"
                    .into(),
            ));
        }
        if j.sync_interval.is_some() && j.projects.is_empty() {
            return Err(ConfigError(
                "webhooks.jira.sync_interval: is set but webhooks.jira.projects is empty: \
                 name the projects to reconcile"
                    .into(),
            ));
        }
        let se = &s.sentry;
        if !DETECTORS.contains(&se.detected_by.as_str()) {
            return Err(ConfigError(format!(
                "webhooks.sentry.detected_by: unknown value `{}`; expected one of: {}",
                se.detected_by,
                DETECTORS.join(", ")
            )));
        }
        let api_url = api_url("webhooks.sentry", &se.api_url)?;
        let api_timeout =
            ranges::REQUEST_TIME.parse("webhooks.sentry.api_timeout", &se.api_timeout)?;
        let api_token = Secrets::load(
            "webhooks.sentry.api_token",
            se.api_token
                .clone()
                .map(|t| SecretSetting::Many(vec![t]))
                .as_ref(),
            se.api_token_file.as_ref(),
        )?
        .header_safe("webhooks.sentry.api_token")?;
        let sentry = SentryConfig {
            secrets: se.auth.load("webhooks.sentry")?,
            count_issues: se.count_issues,
            default_stage: match default_stage(
                "webhooks.sentry",
                se.default_stage.as_ref(),
                pipeline,
            )? {
                Some(s) => Some(s),
                None => first_production(pipeline),
            },
            detected_by: se.detected_by.clone(),
            archived: se.archived,
            api_token: (!api_token.is_empty()).then_some(api_token),
            api_url,
            organization: se.organization.clone().filter(|o| !o.trim().is_empty()),
            api_timeout,
            projects: sentry_projects("webhooks.sentry.projects", &se.projects)?,
            sync_interval: interval("webhooks.sentry.sync_interval", se.sync_interval.as_ref())?,
            retention: ranges::RETENTION.parse("webhooks.sentry.retention", &se.retention)?,
        };
        if !sentry.projects.is_empty() && sentry.organization.is_none() {
            return Err(ConfigError(
                "webhooks.sentry.projects: is set but webhooks.sentry.organization is not: \
                 name the organization the projects belong to"
                    .into(),
            ));
        }
        if sentry.sync_interval.is_some() && sentry.projects.is_empty() {
            return Err(ConfigError(
                "webhooks.sentry.sync_interval: is set but webhooks.sentry.projects is empty: \
                 name the projects to reconcile"
                    .into(),
            ));
        }
        Ok(Self {
            github,
            gitlab,
            jira,
            sentry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Settings};

    fn with(f: impl FnOnce(&mut WebhooksSettings)) -> Result<Config, ConfigError> {
        let mut s = Settings::default();
        f(&mut s.webhooks);
        Config::from_settings(s)
    }

    #[test]
    fn secrets_split_on_commas_and_lines_and_are_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n\n  second \n").expect("write");
        let c = with(|w| {
            w.github.auth.secret = Some(SecretSetting::One("a, b".into()));
            w.github.auth.secret_file = Some(file.clone());
        })
        .expect("valid");
        let got: Vec<&[u8]> = c.webhooks.github.secrets.iter().collect();
        assert_eq!(
            got,
            vec![&b"a"[..], &b"b"[..], &b"from-file"[..], &b"second"[..]]
        );
        assert!(!format!("{c:?}").contains("from-file"));
        assert!(c.webhooks.gitlab.secrets.is_empty());
    }

    #[test]
    fn an_api_url_with_credentials_is_refused_naming_the_key_not_them() {
        let url = "https://bot:pw-SECRET@ghe.example.com/api/v3";
        let e = with(|w| w.github.api.api_url = url.into()).expect_err("refused");
        assert!(e.0.starts_with("webhooks.github.api_url:"), "{}", e.0);
        assert!(e.0.contains("user name or password"), "{}", e.0);
        assert!(!e.0.contains("SECRET"), "{}", e.0);
        let e = with(|w| w.sentry.api_url = "http://u:pw-SECRET@sentry.local".into())
            .expect_err("refused");
        assert!(e.0.starts_with("webhooks.sentry.api_url:") && !e.0.contains("SECRET"));
        // Without credentials, and with a port and a path, it is taken.
        let c =
            with(|w| w.github.api.api_url = "http://127.0.0.1:8080/api/".into()).expect("valid");
        assert_eq!(c.webhooks.github.api.url, "http://127.0.0.1:8080/api");
    }

    #[test]
    fn environment_secrets_are_read_verbatim() {
        let mut w = WebhooksSettings::default();
        w.apply_env(|k| (k == "BUG_ESCAPE_JIRA_SECRET").then(|| "0012".to_owned()));
        let c = Config::from_settings(Settings {
            webhooks: w,
            ..Settings::default()
        })
        .expect("valid");
        assert_eq!(c.webhooks.jira.secrets.iter().next(), Some(&b"0012"[..]));
    }

    #[test]
    fn one_mapping_reads_every_secret_variable() {
        let mut w = WebhooksSettings::default();
        w.apply_env(|k| {
            k.strip_prefix("BUG_ESCAPE_")
                .filter(|rest| !rest.contains("SIGNING"))
                .map(|rest| format!("{rest}, b"))
        });
        let one = |s: &Option<SecretSetting>| match s {
            Some(SecretSetting::One(v)) => v.clone(),
            other => panic!("{other:?}"),
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        assert_eq!(one(&w.github.auth.secret), "GITHUB_SECRET, b");
        assert_eq!(
            path(&w.github.auth.secret_file).as_deref(),
            Some("GITHUB_SECRET_FILE, b")
        );
        assert_eq!(one(&w.gitlab.token), "GITLAB_TOKEN, b");
        assert_eq!(
            path(&w.gitlab.token_file).as_deref(),
            Some("GITLAB_TOKEN_FILE, b")
        );
        assert!(w.gitlab.signing_secret.is_none());
        assert_eq!(one(&w.jira.auth.secret), "JIRA_SECRET, b");
        assert_eq!(
            path(&w.jira.auth.secret_file).as_deref(),
            Some("JIRA_SECRET_FILE, b")
        );
        assert_eq!(one(&w.sentry.auth.secret), "SENTRY_SECRET, b");
        assert_eq!(
            path(&w.sentry.auth.secret_file).as_deref(),
            Some("SENTRY_SECRET_FILE, b")
        );
        // The API token is one token: taken whole, never split on commas.
        assert_eq!(w.sentry.api_token.as_deref(), Some("SENTRY_API_TOKEN, b"));
        assert_eq!(
            path(&w.sentry.api_token_file).as_deref(),
            Some("SENTRY_API_TOKEN_FILE, b")
        );
        let mut w = WebhooksSettings::default();
        w.apply_env(|k| (k == "BUG_ESCAPE_GITLAB_SIGNING_SECRET_FILE").then(|| "f".into()));
        assert_eq!(path(&w.gitlab.signing_secret_file).as_deref(), Some("f"));
    }

    #[test]
    fn every_documented_key_of_every_table_still_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            r#"
[webhooks.github]
secret = "s"
defect_labels = ["kind/bug"]
defect_types = ["Bug"]
invalid_labels = ["wontdo"]
duplicate_labels = ["dupe"]
duplicate_reasons = ["duplicate"]
invalid_reasons = ["not_planned"]
milestone_as_release = true
default_stage = "qa"
prefixes = { release = "affects:" }
[webhooks.gitlab]
token = ["a", "b"]
defect_labels = ["bug"]
defect_types = ["Incident"]
invalid_labels = ["invalid"]
duplicate_labels = ["duplicate"]
milestones = { "7" = "1.0" }
default_stage = "production"
[webhooks.jira]
secret = "j"
defect_types = ["Bug"]
defect_labels = []
invalid_labels = ["invalid"]
duplicate_labels = ["duplicate"]
invalid_resolutions = ["Invalid"]
duplicate_resolutions = ["Duplicate"]
stage_field = "customfield_1"
project_keys = { "1" = "PAY" }
default_stage = "qa"
[webhooks.jira.prefixes]
team = "squad:"
[webhooks.sentry]
secret = ["s1", "s2"]
count_issues = false
default_stage = "production"
detected_by = "user"
archived = "delete"
api_token = "t,with,commas"
api_url = "https://sentry.example.com/"
organization = "acme"
api_timeout = "2s"
"#,
        )
        .expect("write");
        let s = Settings::load(Some(&file), &Default::default()).expect("load");
        let c = Config::from_settings(s).expect("valid");
        let w = &c.webhooks;
        assert_eq!(w.github.conventions.defect_labels, ["kind/bug"]);
        assert_eq!(w.github.conventions.release_prefix, "affects:");
        assert_eq!(w.github.conventions.stage_prefix, "stage:");
        assert_eq!(w.github.invalid_reasons, ["not_planned"]);
        assert_eq!(w.gitlab.secrets.iter().count(), 2);
        assert_eq!(w.gitlab.conventions.defect_types, ["incident"]);
        assert_eq!(
            w.gitlab.conventions.default_stage.as_deref(),
            Some("production")
        );
        assert!(w.jira.conventions.defect_labels.is_empty());
        assert_eq!(w.jira.conventions.team_prefix, "squad:");
        assert_eq!(w.jira.stage_field.as_deref(), Some("customfield_1"));
        assert_eq!(w.sentry.secrets.iter().count(), 2);
        assert!(!w.sentry.count_issues);
        assert_eq!(w.sentry.archived, Disposition::Delete);
        assert_eq!(w.sentry.api_url, "https://sentry.example.com");
        let token: Vec<&[u8]> = w.sentry.api_token.as_ref().expect("token").iter().collect();
        assert_eq!(token, vec![&b"t,with,commas"[..]]);
        // Defaults that differ per source survive the shared part.
        let d = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(d.webhooks.github.conventions.defect_types, ["bug"]);
        assert!(d.webhooks.gitlab.conventions.defect_types.is_empty());
        assert_eq!(d.webhooks.jira.conventions.defect_types, ["bug"]);
    }

    #[test]
    fn gitlab_signing_secrets_are_decoded_and_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("signing");
        std::fs::write(&file, "whsec_b2xkLWtleQ==\n").expect("write");
        let mut w = WebhooksSettings::default();
        w.apply_env(|k| match k {
            "BUG_ESCAPE_GITLAB_SIGNING_SECRET" => Some("whsec_bmV3LWtleQ==".to_owned()),
            "BUG_ESCAPE_GITLAB_SIGNING_SECRET_FILE" => Some(file.display().to_string()),
            _ => None,
        });
        let c = Config::from_settings(Settings {
            webhooks: w,
            ..Settings::default()
        })
        .expect("valid");
        let keys: Vec<&[u8]> = c.webhooks.gitlab.signing_keys.iter().collect();
        assert_eq!(keys, vec![&b"new-key"[..], &b"old-key"[..]]);
        assert!(c.webhooks.gitlab.secrets.is_empty());
        assert!(!format!("{c:?}").contains("new-key"));
        for bad in ["bmV3LWtleQ==", "whsec_not base64!", "whsec_"] {
            let e = with(|w| w.gitlab.signing_secret = Some(SecretSetting::One(bad.into())));
            match e {
                Err(e) => {
                    assert!(e.0.contains("webhooks.gitlab.signing_secret"), "{e}");
                    assert!(bad == "whsec_" || !e.0.contains(bad), "{e}");
                }
                Ok(_) => panic!("`{bad}` was accepted"),
            }
        }
    }

    #[test]
    fn bad_settings_name_the_key() {
        let e = with(|w| w.github.conventions.default_stage = Some("staging".into())).unwrap_err();
        assert!(e.0.contains("webhooks.github.default_stage"), "{e}");
        let e = with(|w| {
            w.gitlab.conventions.defect_labels.clear();
        })
        .unwrap_err();
        assert!(e.0.contains("webhooks.gitlab"), "{e}");
        let e = with(|w| w.jira.conventions.prefixes.stage = " ".into()).unwrap_err();
        assert!(e.0.contains("webhooks.jira.prefixes.stage"), "{e}");
        let e = with(|w| w.sentry.detected_by = "pager".into()).unwrap_err();
        assert!(e.0.contains("webhooks.sentry.detected_by"), "{e}");
        let e = with(|w| w.sentry.api_url = "sentry.io".into()).unwrap_err();
        assert!(e.0.contains("webhooks.sentry.api_url"), "{e}");
        let e = with(|w| w.sentry.api_timeout = "soon".into()).unwrap_err();
        assert!(e.0.contains("webhooks.sentry.api_timeout"), "{e}");
    }

    #[test]
    fn github_sync_settings_are_validated_and_the_token_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "ghp_fromfile\n").expect("write");
        let mut w = WebhooksSettings::default();
        w.apply_env(|k| {
            (k == "BUG_ESCAPE_GITHUB_API_TOKEN_FILE").then(|| file.display().to_string())
        });
        w.github.repositories = vec!["acme/payments".into(), " acme/web.site ".into()];
        w.github.sync_interval = Some("15m".into());
        w.github.api.api_url = "https://ghe.example.com/api/v3/".into();
        let c = Config::from_settings(Settings {
            webhooks: w,
            ..Settings::default()
        })
        .expect("valid");
        let gh = &c.webhooks.github;
        assert_eq!(gh.api.url, "https://ghe.example.com/api/v3");
        assert_eq!(gh.api.token().as_deref(), Some("ghp_fromfile"));
        assert_eq!(gh.repositories, ["acme/payments", "acme/web.site"]);
        assert_eq!(gh.sync_interval, Some(Duration::from_secs(900)));
        assert!(!format!("{c:?}").contains("ghp_fromfile"));
        let d = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(d.webhooks.github.api.url, "https://api.github.com");
        assert!(d.webhooks.github.api.token.is_none());
        assert_eq!(d.webhooks.github.sync_interval, None);
        for (f, key) in [
            (
                (|w: &mut WebhooksSettings| w.github.repositories = vec!["payments".into()])
                    as fn(&mut WebhooksSettings),
                "webhooks.github.repositories[0]",
            ),
            (
                |w| w.github.repositories = vec!["a/b".into(), "A/B".into()],
                "webhooks.github.repositories[1]",
            ),
            (
                |w| w.github.api.api_url = "api.github.com".into(),
                "webhooks.github.api_url",
            ),
            (
                |w| w.github.api.api_token = Some(" ".into()),
                "webhooks.github.api_token",
            ),
            (
                |w| w.github.sync_interval = Some("0s".into()),
                "webhooks.github.sync_interval",
            ),
            // An interval with nothing to reconcile is a mistake, not a no-op.
            (
                |w| w.github.sync_interval = Some("1h".into()),
                "webhooks.github.sync_interval",
            ),
        ] {
            let e = with(f).unwrap_err();
            assert!(e.0.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn gitlab_sync_settings_are_validated_and_the_token_never_printed() {
        let mut w = WebhooksSettings::default();
        w.apply_env(|k| (k == "BUG_ESCAPE_GITLAB_API_TOKEN").then(|| "glpat-secret".to_owned()));
        w.gitlab.projects = vec!["acme/sub/payments".into(), " 1234 ".into()];
        w.gitlab.sync_interval = Some("10m".into());
        w.gitlab.api.api_url = "https://gitlab.example.com/api/v4/".into();
        let c = Config::from_settings(Settings {
            webhooks: w,
            ..Settings::default()
        })
        .expect("valid");
        let gl = &c.webhooks.gitlab;
        assert_eq!(gl.api.url, "https://gitlab.example.com/api/v4");
        assert_eq!(gl.api.token().as_deref(), Some("glpat-secret"));
        assert_eq!(gl.projects, ["acme/sub/payments", "1234"]);
        assert_eq!(gl.sync_interval, Some(Duration::from_secs(600)));
        assert!(!format!("{c:?}").contains("glpat-secret"));
        let d = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(d.webhooks.gitlab.api.url, "https://gitlab.com/api/v4");
        for (f, key) in [
            (
                (|w: &mut WebhooksSettings| w.gitlab.projects = vec!["payments".into()])
                    as fn(&mut WebhooksSettings),
                "webhooks.gitlab.projects[0]",
            ),
            (
                |w| w.gitlab.projects = vec!["a//b".into()],
                "webhooks.gitlab.projects[0]",
            ),
            (
                |w| w.gitlab.projects = vec!["a/b".into(), "A/B".into()],
                "webhooks.gitlab.projects[1]",
            ),
            (
                |w| w.gitlab.api.api_url = "gitlab.com".into(),
                "webhooks.gitlab.api_url",
            ),
            (
                |w| w.gitlab.sync_interval = Some("1h".into()),
                "webhooks.gitlab.sync_interval",
            ),
        ] {
            let e = with(f).unwrap_err();
            assert!(e.0.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn jira_sync_settings_choose_the_search_and_name_bad_keys() {
        let c = with(|w| {
            w.jira.api.api_url = "https://acme.atlassian.net/".into();
            w.jira.api_user = Some("bot@acme.example".into());
            w.jira.projects = vec!["PAY".into(), "ops_2".into()];
            w.jira.sync_interval = Some("5m".into());
        })
        .expect("valid");
        let j = &c.webhooks.jira;
        assert_eq!(j.api.url, "https://acme.atlassian.net");
        assert_eq!(j.api_search, JiraSearch::Enhanced);
        assert_eq!(j.projects, ["PAY", "ops_2"]);
        let dc = with(|w| {
            w.jira.api.api_url = "https://jira.example.com/jira".into();
            w.jira.projects = vec!["PAY".into()];
        })
        .expect("valid");
        assert_eq!(dc.webhooks.jira.api_search, JiraSearch::V2);
        let d = Config::from_settings(Settings::default()).expect("valid");
        assert_eq!(d.webhooks.jira.api.url, "");
        for (f, key) in [
            (
                (|w: &mut WebhooksSettings| w.jira.projects = vec!["PAY".into()])
                    as fn(&mut WebhooksSettings),
                "webhooks.jira.api_url",
            ),
            (
                |w| {
                    w.jira.api.api_url = "https://j.example".into();
                    w.jira.projects = vec!["PAY-1".into()];
                },
                "webhooks.jira.projects[0]",
            ),
            (
                |w| w.jira.api_search = Some("v3".into()),
                "webhooks.jira.api_search",
            ),
            (
                |w| w.jira.sync_interval = Some("1h".into()),
                "webhooks.jira.sync_interval",
            ),
        ] {
            let e = with(f).unwrap_err();
            assert!(e.0.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn sentry_sync_needs_an_organization_and_projects() {
        let c = with(|w| {
            w.sentry.organization = Some("acme".into());
            w.sentry.projects = vec!["payments-api".into()];
            w.sentry.sync_interval = Some("15m".into());
        })
        .expect("valid");
        assert_eq!(c.webhooks.sentry.projects, ["payments-api"]);
        assert_eq!(
            c.webhooks.sentry.sync_interval,
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            c.webhooks.sentry.retention,
            Duration::from_secs(90 * 86_400)
        );
        for (f, key) in [
            (
                (|w: &mut WebhooksSettings| w.sentry.projects = vec!["payments-api".into()])
                    as fn(&mut WebhooksSettings),
                "webhooks.sentry.projects",
            ),
            (
                |w| w.sentry.sync_interval = Some("15m".into()),
                "webhooks.sentry.sync_interval",
            ),
            (
                |w| {
                    w.sentry.organization = Some("acme".into());
                    w.sentry.projects = vec!["Payments API".into()];
                },
                "webhooks.sentry.projects[0]",
            ),
            (
                |w| {
                    w.sentry.organization = Some("acme".into());
                    w.sentry.projects = vec!["a".into(), "a".into()];
                },
                "webhooks.sentry.projects[1]",
            ),
            (
                |w| w.sentry.retention = "forever".into(),
                "webhooks.sentry.retention",
            ),
        ] {
            let e = with(f).unwrap_err();
            assert!(e.0.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn sentry_issues_land_in_the_first_production_stage_by_default() {
        let c = with(|_| {}).expect("valid");
        assert_eq!(
            c.webhooks.sentry.default_stage.as_deref(),
            Some("production")
        );
        let mut s = Settings::default();
        for st in &mut s.stages {
            if st.name == "production" {
                st.name = "live".into();
            }
        }
        let c = Config::from_settings(s).expect("valid");
        assert_eq!(c.webhooks.sentry.default_stage.as_deref(), Some("live"));
    }

    #[test]
    fn toml_tables_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            r#"
[webhooks.github]
secret = ["one", "two"]
milestone_as_release = false
default_stage = "qa"
[webhooks.github.prefixes]
stage = "found-in:"
[webhooks.gitlab]
token = "t"
signing_secret = ["whsec_bmV3LWtleQ==", "whsec_b2xkLWtleQ=="]
milestones = { "103" = "v2.4.0" }
[webhooks.jira]
stage_field = "customfield_10050"
project_keys = { "10002" = "PAY" }
[webhooks.sentry]
archived = "invalid"
organization = "acme"
"#,
        )
        .expect("write");
        let s = Settings::load(Some(&file), &Default::default()).expect("load");
        let c = Config::from_settings(s).expect("valid");
        let w = &c.webhooks;
        assert_eq!(w.github.secrets.iter().count(), 2);
        assert!(!w.github.milestone_as_release);
        assert_eq!(w.github.conventions.stage_prefix, "found-in:");
        assert_eq!(w.github.conventions.default_stage.as_deref(), Some("qa"));
        assert_eq!(w.gitlab.milestones["103"], "v2.4.0");
        assert_eq!(w.gitlab.signing_keys.iter().count(), 2);
        assert_eq!(w.jira.project_keys["10002"], "PAY");
        assert_eq!(w.sentry.archived, Disposition::Invalid);
        assert_eq!(w.sentry.organization.as_deref(), Some("acme"));
    }
}
