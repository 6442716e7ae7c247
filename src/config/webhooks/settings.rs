//! What every source's table has: the REST API `sync` reads ([`ApiSettings`]:
//! `api_url`, `api_token`, `api_token_file`, flattened into each table), the
//! scopes it reads (`repositories` or `projects`, checked by one
//! `ScopeRule` each), the reconcile interval (`sync_interval`), and the
//! keys no setting claims ([`UnknownKeys`], refused naming the key).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{SecretSetting, Secrets};
use crate::config::{ConfigError, ranges};

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
    pub(super) fn with_url(url: &str) -> Self {
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
    pub(super) fn api(&self, key: &str) -> Result<Api, ConfigError> {
        Ok(Api {
            url: api_url(key, &self.api_url)?,
            token: self.token(key)?,
        })
    }

    /// The validated token of the table at `key`.
    pub(super) fn token(&self, key: &str) -> Result<Option<Secrets>, ConfigError> {
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
pub(super) fn api_url(key: &str, v: &str) -> Result<String, ConfigError> {
    let url = v.trim().trim_end_matches('/').to_owned();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let parsed = url::Url::parse(&url).ok().filter(|u| u.host().is_some());
    if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) || parsed.is_none() {
        return Err(ConfigError(format!(
            "{key}.api_url: `{}` is not an http(s) URL",
            crate::config::redact::url(v)
        )));
    }
    // Every call of a pass must carry exactly the configured origin and no
    // URL credentials, so a user name or password here would have every
    // call refused at sync time; said now, without the credentials.
    if parsed.is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
        return Err(ConfigError(format!(
            "{key}.api_url: `{}` holds a user name or password; put the credential in {key}.api_token instead",
            crate::config::redact::url(v)
        )));
    }
    Ok(url)
}

/// How the entries of a source's scope list are checked.
pub(super) struct ScopeRule {
    /// What an entry must be, for the error (`a project key like \`PAY\``).
    pub what: &'static str,
    /// Whether a (trimmed) entry is one.
    pub ok: fn(&str) -> bool,
    /// Whether two entries differing in case are the same one.
    pub folded: bool,
}

/// A scope list (`webhooks.github.repositories`), each entry trimmed, valid
/// and listed once.
pub(super) fn scopes(key: &str, v: &[String], rule: ScopeRule) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for (i, p) in v.iter().enumerate() {
        let p = p.trim();
        if !(rule.ok)(p) {
            return Err(ConfigError(format!(
                "{key}[{i}]: `{p}` is not {}",
                rule.what
            )));
        }
        let twice = if rule.folded {
            out.iter().any(|o| o.eq_ignore_ascii_case(p))
        } else {
            out.iter().any(|o| o == p)
        };
        if twice {
            return Err(ConfigError(format!("{key}[{i}]: `{p}` is listed twice")));
        }
        out.push(p.to_owned());
    }
    Ok(out)
}

/// The table's `sync_interval` (`15m`), in its range; refused when set while
/// its scope list (`list`, already checked) is empty: nothing to reconcile.
pub(super) fn sync_interval(
    table: &str,
    v: Option<&String>,
    list: &str,
    scopes: &[String],
) -> Result<Option<Duration>, ConfigError> {
    let every = v
        .map(|v| ranges::SYNC_INTERVAL.parse(&format!("{table}.sync_interval"), v))
        .transpose()?;
    if every.is_some() && scopes.is_empty() {
        return Err(ConfigError(format!(
            "{table}.sync_interval: is set but {table}.{list} is empty: \
             name the {list} to reconcile"
        )));
    }
    Ok(every)
}

/// Refuses the first key of the table at `key` that no setting of `T`
/// claims, naming it and the keys there are.
pub(super) fn refuse_unknown<T: Serialize + Default>(
    key: &str,
    unknown: &UnknownKeys,
) -> Result<(), ConfigError> {
    let Some(bad) = unknown.0.iter().next() else {
        return Ok(());
    };
    // The keys there are: those of the defaults, serialised (the flattened
    // parts inline, unset options as nulls).
    let known = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    Err(ConfigError(format!(
        "{key}.{bad}: {}",
        crate::config::suggest::unknown_key(bad, &known)
    )))
}
