//! Label values the settings name: the shared check of a configured value,
//! the accepted severities and teams, the pinned products, and the maturity
//! ages (`age` label of `bug_escape_rate_at_age_ratio`).

use std::time::Duration;

use super::{ConfigError, Settings, ranges};

/// Checks a configured label value: non-empty, at most [`MAX_LABEL_LEN`](super::MAX_LABEL_LEN)
/// characters, no control characters.
pub fn check_name(key: &str, v: &str) -> Result<(), ConfigError> {
    crate::model::label::check_label(v).map_err(|reason| ConfigError(format!("{key}: {reason}")))
}

/// `severities`, `teams` and `pinned_products` each without repeats;
/// severities and teams well-formed, and no severity named `unknown`. The
/// pinned products' names are checked by [`check_pinned`], after the
/// products.
pub(super) fn check_lists(s: &Settings) -> Result<(), ConfigError> {
    ranges::unique_exact("severities", s.severities.iter().map(String::as_str))?;
    ranges::unique_exact("teams", s.teams.iter().map(String::as_str))?;
    ranges::unique_exact(
        "pinned_products",
        s.pinned_products.iter().map(String::as_str),
    )?;
    for (i, v) in s.severities.iter().enumerate() {
        check_name(&format!("severities[{i}]"), v)?;
        if v == "unknown" {
            return Err(ConfigError(format!(
                "severities[{i}]: `unknown` is reserved for defects with no severity"
            )));
        }
    }
    for (i, v) in s.teams.iter().enumerate() {
        check_name(&format!("teams[{i}]"), v)?;
    }
    Ok(())
}

/// Every pinned product a well-formed label value.
pub(super) fn check_pinned(pinned: &[String]) -> Result<(), ConfigError> {
    for (i, p) in pinned.iter().enumerate() {
        check_name(&format!("pinned_products[{i}]"), p)?;
    }
    Ok(())
}

/// `maturity_ages`: durations in range, no age twice (`30d` and `720h` are
/// the same age: two series with the same numbers).
pub(super) fn maturity_ages(v: &[String]) -> Result<Vec<(String, Duration)>, ConfigError> {
    let mut ages: Vec<(String, Duration)> = Vec::new();
    for (i, a) in v.iter().enumerate() {
        let key = format!("maturity_ages[{i}]");
        let d = ranges::AGE.parse(&key, a)?;
        if let Some(j) = ages.iter().position(|(_, seen)| *seen == d) {
            return Err(ConfigError(format!(
                "{key}: `{a}` is listed twice (the same age as maturity_ages[{j}], `{}`)",
                ages[j].0
            )));
        }
        ages.push((a.clone(), d));
    }
    Ok(ages)
}
