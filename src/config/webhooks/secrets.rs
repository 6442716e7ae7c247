//! Webhook secrets: as written (`secret`, `secret_file`, one or several for
//! rotation; GitLab's tokens and signing secrets), and validated into
//! [`Secrets`], which are never printed.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

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
    pub(super) fn load_signing(
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

    pub(super) fn load(
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
    pub(super) fn header_safe(self, key: &str) -> Result<Self, ConfigError> {
        for s in &self.0 {
            crate::config::header_safe(key, &String::from_utf8_lossy(s))?;
        }
        Ok(self)
    }
}

impl SecretSettings {
    /// The secrets of the table at `key`.
    pub(super) fn load(&self, key: &str) -> Result<Secrets, ConfigError> {
        Secrets::load(
            &format!("{key}.secret"),
            self.secret.as_ref(),
            self.secret_file.as_ref(),
        )
    }
}
