//! The configured quality-net pipeline: stages in order, each pre-release or
//! production. A stage is referred to by its index in the pipeline.

use serde::{Deserialize, Serialize};

/// Whether a stage catches defects before or after release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreRelease,
    Production,
}

impl Phase {
    /// The label value (`pre_release`, `production`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreRelease => "pre_release",
            Phase::Production => "production",
        }
    }
}

/// One configured stage.
#[derive(Debug, Clone, PartialEq)]
pub struct StageDef {
    pub name: String,
    pub phase: Phase,
    pub owner: String,
    pub leak_target: Option<f64>,
    pub tracked: bool,
}

/// The ordered, validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    stages: Vec<StageDef>,
}

impl Pipeline {
    /// Validates order and names: at least one pre-release and one production
    /// stage, every production stage after every pre-release one, unique names.
    pub fn new(stages: Vec<StageDef>) -> Result<Self, String> {
        if !stages.iter().any(|s| s.phase == Phase::PreRelease) {
            return Err("at least one pre_release stage is required".into());
        }
        if !stages.iter().any(|s| s.phase == Phase::Production) {
            return Err("at least one production stage is required".into());
        }
        for (i, s) in stages.iter().enumerate() {
            crate::model::label::check_label(&s.name).map_err(|r| format!("[{i}].name {r}"))?;
            crate::model::label::check_label(&s.owner).map_err(|r| format!("[{i}].owner {r}"))?;
            if stages[..i].iter().any(|p| p.name == s.name) {
                return Err(format!("[{i}].name: `{}` is listed twice", s.name));
            }
            if s.phase == Phase::PreRelease {
                if let Some(p) = stages[..i].iter().find(|p| p.phase == Phase::Production) {
                    return Err(format!(
                        "[{i}]: pre_release stage `{}` is ordered after production stage `{}`; production stages come last",
                        s.name, p.name
                    ));
                }
            }
            if let Some(t) = s.leak_target {
                if !(0.0..=1.0).contains(&t) {
                    return Err(format!("[{i}].leak_target: {t} is not a ratio in 0..1"));
                }
                if s.phase == Phase::Production {
                    return Err(format!(
                        "[{i}].leak_target: production stage `{}` has no leak",
                        s.name
                    ));
                }
            }
        }
        Ok(Self { stages })
    }

    /// All stages in order.
    pub fn stages(&self) -> &[StageDef] {
        &self.stages
    }

    /// Index of the stage called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// Whether the stage at `i` is a production stage.
    pub fn is_production(&self, i: usize) -> bool {
        self.stages[i].phase == Phase::Production
    }

    /// Names, comma-separated, for error messages.
    pub fn names(&self) -> String {
        self.stages
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
