//! Release-name normalisation: folding pre-releases and the regex rewrites
//! (defaults strip `name@`, a `v` and `+build`), compiled into the rules the
//! store keys releases by, and the fingerprint that says when keys changed.

use serde::{Deserialize, Serialize};

use crate::model::release::{ReleaseRule, ReleaseRules};

use super::{Config, ConfigError};

/// Release-name normalisation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseSettings {
    /// Fold pre-releases into their final release (`2.4.0-rc.1` → `2.4.0`).
    pub fold_prereleases: bool,
    /// Regex rewrites applied in order; replaces the default rules when given.
    pub rules: Vec<RuleSettings>,
}

/// One regex rewrite of release names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    /// Only for this source kind (`generic`, `github`, …); all when absent.
    #[serde(default)]
    pub source: Option<String>,
    pub pattern: String,
    #[serde(default)]
    pub replace: String,
}

impl Default for ReleaseSettings {
    /// Strips a `<name>@` prefix (up to the last `@`, so npm scopes go too),
    /// then a `v`/`V` before a digit, then `+build` metadata after a version.
    fn default() -> Self {
        let rule = |pattern: &str, replace: &str| RuleSettings {
            source: None,
            pattern: pattern.into(),
            replace: replace.into(),
        };
        Self {
            fold_prereleases: true,
            rules: vec![
                rule("^.+@", ""),
                rule("^[vV]([0-9])", "$1"),
                rule(
                    r"^([0-9]+(?:\.[0-9]+)*(?:-[0-9A-Za-z.-]+)?)\+[0-9A-Za-z.-]+$",
                    "$1",
                ),
            ],
        }
    }
}

/// `releases` compiled: every pattern a valid regex.
pub(super) fn rules(releases: &ReleaseSettings) -> Result<ReleaseRules, ConfigError> {
    let mut rules = Vec::new();
    for (i, r) in releases.rules.iter().enumerate() {
        let re = regex::Regex::new(&r.pattern)
            .map_err(|e| ConfigError(format!("releases.rules[{i}].pattern: {e}")))?;
        rules.push(ReleaseRule {
            source: r.source.clone(),
            pattern: re,
            replace: r.replace.clone(),
        });
    }
    Ok(ReleaseRules::new(rules, releases.fold_prereleases))
}

impl Config {
    /// A digest of everything that decides how stored rows are keyed (products,
    /// releases); when it changes, stored defects are re-keyed at start.
    pub fn keying_fingerprint(&self) -> String {
        let rules: Vec<String> = self
            .release_rules
            .rules()
            .iter()
            .map(|r| format!("{:?}|{}|{}", r.source, r.pattern.as_str(), r.replace))
            .collect();
        // The version changes with the built-in pre-release folding, which no
        // setting shows: v2 folds only `x.y.z-…` and `x.y-<letter>…`.
        format!(
            "v2;map={:?};rules={:?};fold={}",
            self.source_map,
            rules,
            self.release_rules.folds()
        )
    }
}
