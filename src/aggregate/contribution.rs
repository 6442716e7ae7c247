//! What one defect adds to the counts: the stored fields it is judged on
//! ([`DefectView`]), where it lands ([`Class`]) and its indices
//! ([`Contribution`], [`Staged`]).

use crate::config::Config;
use crate::model::event::{DETECTORS, Status};
use crate::model::time::Millis;

/// The stored fields a defect's contribution depends on.
#[derive(Debug, Clone, Copy)]
pub struct DefectView<'a> {
    pub product: &'a str,
    pub release: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub detected_by: Option<&'a str>,
    pub cause: Option<&'a str>,
    pub severity: Option<&'a str>,
    pub status: &'a str,
    pub deleted: bool,
    pub found_at: Millis,
}

/// Where a counted defect lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A configured stage, by pipeline index.
    Stage(usize),
    /// A stage name the pipeline does not know (data quality).
    UnknownStage,
    /// No stage at all (data quality).
    NoStage,
}

/// What one valid, non-deleted defect adds to the aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub product: String,
    pub release: Option<String>,
    pub class: Class,
    pub found_at: Millis,
    /// Index into the configured causes (`unknown` when absent or unknown).
    pub cause: usize,
    /// Index into [`DETECTORS`], or `DETECTORS.len()` for `unknown`.
    pub detector: usize,
    /// Index into the configured severities, or their count for `unknown`.
    pub severity: usize,
}

impl Contribution {
    /// The cause, detector and severity indices a defect counts under
    /// (`unknown` when absent or not configured).
    pub fn indices(
        config: &Config,
        cause: Option<&str>,
        detected_by: Option<&str>,
        severity: Option<&str>,
    ) -> (usize, usize, usize) {
        let unknown_cause = config
            .causes
            .iter()
            .position(|(n, _)| n == "unknown")
            .unwrap_or(0);
        (
            cause
                .and_then(|c| config.causes.iter().position(|(n, _)| n == c))
                .unwrap_or(unknown_cause),
            detected_by
                .and_then(|v| DETECTORS.iter().position(|n| *n == v))
                .unwrap_or(DETECTORS.len()),
            severity
                .and_then(|v| config.severities.iter().position(|n| n == v))
                .unwrap_or(config.severities.len()),
        )
    }

    /// The contribution of a stored defect; `None` when it counts nowhere
    /// (deleted, invalid or duplicate).
    pub fn of(config: &Config, d: DefectView<'_>) -> Option<Self> {
        if d.deleted || Status::parse(d.status) != Some(Status::Valid) {
            return None;
        }
        let class = match d.stage {
            None => Class::NoStage,
            Some(s) => config
                .pipeline
                .index(s)
                .map_or(Class::UnknownStage, Class::Stage),
        };
        let (cause, detector, severity) = Self::indices(config, d.cause, d.detected_by, d.severity);
        Some(Self {
            product: d.product.to_owned(),
            release: d.release.map(str::to_owned),
            class,
            found_at: d.found_at,
            cause,
            detector,
            severity,
        })
    }
}

/// A defect counted at a configured stage: what it adds to its release.
#[derive(Debug, Clone, Copy)]
pub struct Staged {
    /// Pipeline index of its stage.
    pub stage: usize,
    pub found_at: Millis,
    /// Indices as in [`Contribution`].
    pub cause: usize,
    pub detector: usize,
    pub severity: usize,
}
