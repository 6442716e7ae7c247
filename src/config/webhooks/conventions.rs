//! The label conventions of the issue trackers (GitHub, GitLab, Jira): which
//! labels and types make an issue a defect, and the label prefixes that
//! carry its classification; one struct flattened into each table.

use serde::{Deserialize, Serialize};

use super::{default_stage, lower, strings, unique_folded};
use crate::config::ConfigError;
use crate::model::stage::Pipeline;

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
    pub(super) fn with_types(defect_types: &[&str]) -> Self {
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

impl ConventionSettings {
    /// The validated conventions of the table at `key` (`webhooks.github`).
    pub(super) fn conventions(
        &self,
        key: &str,
        pipeline: &Pipeline,
    ) -> Result<Conventions, ConfigError> {
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
