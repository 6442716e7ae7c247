//! Label conventions shared by the GitHub, GitLab and Jira adapters: which
//! labels make an issue a defect, and how `stage:`, `release:`, `cause:`,
//! `severity:`, `team:` and `detected_by:` labels become its classification.
//!
//! A value the configuration does not know is never guessed into a known one:
//! an unknown stage is stored as it is (the aggregates show it as
//! `unknown_stage`), an unknown cause or severity is stored as it is (counted
//! under `unknown`), and every such value is reported in [`Mapped::unmapped`].
//! Conflicting values (two different `stage:` labels) are stored as an unknown
//! stage, or dropped for the other fields, and reported the same way.

use crate::config::Config;
use crate::config::webhooks::Conventions;
use crate::model::event::{Classification, DETECTORS, Status};
use crate::model::label::MAX_LABEL_LEN;

/// A classification derived from labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub class: Classification,
    pub status: Status,
    /// Fields whose values did not map.
    pub unmapped: Vec<&'static str>,
}

/// Whether an issue with these labels and type is a defect.
pub fn is_defect(conv: &Conventions, labels: &[&str], issue_type: Option<&str>) -> bool {
    labels
        .iter()
        .any(|l| conv.defect_labels.contains(&l.trim().to_lowercase()))
        || issue_type.is_some_and(|t| conv.defect_types.contains(&t.trim().to_lowercase()))
}

/// The classification carried by `labels`, for a source of `kind`.
pub fn classify(conv: &Conventions, config: &Config, kind: &str, labels: &[&str]) -> Mapped {
    let mut unmapped = Vec::new();
    let values = |prefix: &str| -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for l in labels {
            if let Some(v) = strip_prefix_ci(l.trim(), prefix) {
                let v = v.trim();
                if !v.is_empty() && !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    };
    let stage = stage(conv, config, &values(&conv.stage_prefix), &mut unmapped);
    let release = release(config, kind, &values(&conv.release_prefix), &mut unmapped);
    let causes: Vec<&str> = config.causes.iter().map(|(n, _)| n.as_str()).collect();
    let severities: Vec<&str> = config.severities.iter().map(String::as_str).collect();
    let teams: Vec<&str> = config.teams.iter().map(String::as_str).collect();
    let cause = vocabulary(
        &values(&conv.cause_prefix),
        Some(&causes),
        "cause",
        &mut unmapped,
    );
    let severity = vocabulary(
        &values(&conv.severity_prefix),
        Some(&severities),
        "severity",
        &mut unmapped,
    );
    let team = vocabulary(
        &values(&conv.team_prefix),
        (!teams.is_empty()).then_some(&teams),
        "team",
        &mut unmapped,
    );
    let detected_by = vocabulary(
        &values(&conv.detected_by_prefix),
        Some(&DETECTORS.to_vec()),
        "detected_by",
        &mut unmapped,
    );
    let has = |set: &[String]| {
        labels
            .iter()
            .any(|l| set.contains(&l.trim().to_lowercase()))
    };
    let status = if has(&conv.duplicate_labels) {
        Status::Duplicate
    } else if has(&conv.invalid_labels) {
        Status::Invalid
    } else {
        Status::Valid
    };
    Mapped {
        class: Classification {
            stage,
            release,
            detected_by,
            cause,
            severity,
            team,
        },
        status,
        unmapped,
    }
}

/// The stage named by `values`: the configured spelling when one matches
/// (case-insensitively), the raw value when none does, the source's default
/// stage when there is no value.
pub fn stage(
    conv: &Conventions,
    config: &Config,
    values: &[&str],
    unmapped: &mut Vec<&'static str>,
) -> Option<String> {
    let known = |v: &str| {
        config
            .pipeline
            .stages()
            .iter()
            .find(|s| s.name.to_lowercase() == v.to_lowercase())
            .map(|s| s.name.clone())
    };
    match values {
        [] => conv.default_stage.clone(),
        [v] => known(v).or_else(|| {
            unmapped.push("stage");
            sanitize(v)
        }),
        many => {
            let mut names: Vec<String> = Vec::new();
            for v in many {
                let name = known(v).unwrap_or_else(|| (*v).to_owned());
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            if let [one] = names.as_slice() {
                if config.pipeline.index(one).is_some() {
                    return Some(one.clone());
                }
            }
            unmapped.push("stage");
            sanitize(&names.join("+"))
        }
    }
}

/// The release named by `values`, when exactly one is named and it is not
/// empty once normalised.
pub fn release(
    config: &Config,
    kind: &str,
    values: &[&str],
    unmapped: &mut Vec<&'static str>,
) -> Option<String> {
    match values {
        [] => None,
        [v] => match sanitize(v) {
            Some(v) if config.release_rules.key(kind, &v).is_some() => Some(v),
            _ => {
                unmapped.push("release");
                None
            }
        },
        _ => {
            unmapped.push("release");
            None
        }
    }
}

/// A value from a vocabulary (`allowed`; any value when `None`).
fn vocabulary(
    values: &[&str],
    allowed: Option<&Vec<&str>>,
    field: &'static str,
    unmapped: &mut Vec<&'static str>,
) -> Option<String> {
    match values {
        [] => None,
        [v] => match allowed {
            None => sanitize(v),
            Some(allowed) => match allowed
                .iter()
                .find(|a| a.to_lowercase() == v.to_lowercase())
            {
                Some(a) => Some((*a).to_owned()),
                None => {
                    unmapped.push(field);
                    sanitize(v)
                }
            },
        },
        _ => {
            unmapped.push(field);
            None
        }
    }
}

/// `label` without `prefix` (lower-case), compared case-insensitively.
fn strip_prefix_ci<'a>(label: &'a str, prefix: &str) -> Option<&'a str> {
    let head = label.get(..prefix.len())?;
    (head.to_lowercase() == prefix).then(|| &label[prefix.len()..])
}

/// A value made fit to be a label value: control characters removed, at most
/// [`MAX_LABEL_LEN`] characters; `None` when nothing is left.
pub fn sanitize(v: &str) -> Option<String> {
    let v: String = v
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL_LEN)
        .collect();
    let v = v.trim().to_owned();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn config() -> Config {
        Config::from_settings(Settings::default()).expect("config")
    }

    fn map(labels: &[&str]) -> Mapped {
        let c = config();
        classify(&c.webhooks.github.conventions, &c, "github", labels)
    }

    #[test]
    fn defect_by_label_or_type_case_insensitively() {
        let c = config();
        let conv = &c.webhooks.github.conventions;
        assert!(is_defect(conv, &["Bug"], None));
        assert!(is_defect(conv, &["enhancement"], Some("bug")));
        assert!(!is_defect(
            conv,
            &["enhancement", "bugfix"],
            Some("Feature")
        ));
    }

    #[test]
    fn prefixed_labels_classify() {
        let m = map(&[
            "bug",
            "Stage: QA",
            "release:v2.4.0",
            "cause:coverage",
            "severity:High",
            "team:payments",
            "detected_by:user",
        ]);
        assert_eq!(m.class.stage.as_deref(), Some("qa"));
        assert_eq!(m.class.release.as_deref(), Some("v2.4.0"));
        assert_eq!(m.class.cause.as_deref(), Some("coverage"));
        assert_eq!(m.class.severity.as_deref(), Some("high"));
        assert_eq!(m.class.team.as_deref(), Some("payments"));
        assert_eq!(m.class.detected_by.as_deref(), Some("user"));
        assert_eq!(m.status, Status::Valid);
        assert!(m.unmapped.is_empty());
    }

    #[test]
    fn unknown_and_conflicting_values_are_kept_visible() {
        let m = map(&["stage:staging", "cause:flaky", "severity:urgent"]);
        assert_eq!(m.class.stage.as_deref(), Some("staging"));
        assert_eq!(m.class.cause.as_deref(), Some("flaky"));
        assert_eq!(m.unmapped, vec!["stage", "cause", "severity"]);
        let m = map(&["stage:qa", "stage:production", "release:1.0", "release:2.0"]);
        assert_eq!(m.class.stage.as_deref(), Some("qa+production"));
        assert_eq!(m.class.release, None);
        assert_eq!(m.unmapped, vec!["stage", "release"]);
        let m = map(&["stage:qa", "stage:QA"]);
        assert_eq!(m.class.stage.as_deref(), Some("qa"));
        assert!(m.unmapped.is_empty());
        // Release rules never leave a name empty: `v` alone is a name.
        let m = map(&["release:v"]);
        assert_eq!(m.class.release.as_deref(), Some("v"));
        assert!(m.unmapped.is_empty());
    }

    #[test]
    fn no_stage_label_means_the_default_stage_or_none() {
        assert_eq!(map(&["bug"]).class.stage, None);
        let mut s = Settings::default();
        s.webhooks.github.conventions.default_stage = Some("qa".into());
        let c = Config::from_settings(s).expect("config");
        let m = classify(&c.webhooks.github.conventions, &c, "github", &["bug"]);
        assert_eq!(m.class.stage.as_deref(), Some("qa"));
    }

    #[test]
    fn invalid_and_duplicate_labels() {
        assert_eq!(map(&["bug", "Invalid"]).status, Status::Invalid);
        assert_eq!(
            map(&["bug", "duplicate", "invalid"]).status,
            Status::Duplicate
        );
    }

    #[test]
    fn sanitize_makes_label_values() {
        assert_eq!(sanitize(" a\u{7}b "), Some("ab".into()));
        assert_eq!(sanitize("\n"), None);
        assert_eq!(sanitize(" \u{3000} "), None);
        assert_eq!(
            sanitize(&"x".repeat(500)).map(|v| v.len()),
            Some(MAX_LABEL_LEN)
        );
    }
}
