//! The quality-net pipeline (its stages, in order, with phase, owner and
//! leak target) and the causes of production defects with their owners.

use serde::{Deserialize, Serialize};

use crate::model::stage::{Phase, Pipeline, StageDef};

use super::{ConfigError, check_name};

/// One stage of the pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSettings {
    pub name: String,
    pub phase: Phase,
    pub owner: String,
    #[serde(default)]
    pub leak_target: Option<f64>,
    #[serde(default = "yes")]
    pub tracked: bool,
}

/// One cause of production defects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CauseSettings {
    pub name: String,
    pub owner: String,
}

fn yes() -> bool {
    true
}

/// `stages` as the pipeline the exporter counts leaks along.
pub(super) fn pipeline(stages: &[StageSettings]) -> Result<Pipeline, ConfigError> {
    let stages = stages
        .iter()
        .map(|st| StageDef {
            name: st.name.clone(),
            phase: st.phase,
            owner: st.owner.clone(),
            leak_target: st.leak_target,
            tracked: st.tracked,
        })
        .collect();
    Pipeline::new(stages).map_err(|m| ConfigError(format!("stages: {m}")))
}

/// `causes` as `(name, default owner)` pairs: well-formed names, none
/// twice, and `unknown` among them.
pub(super) fn causes(causes: &[CauseSettings]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, c) in causes.iter().enumerate() {
        check_name(&format!("causes[{i}].name"), &c.name)?;
        check_name(&format!("causes[{i}].owner"), &c.owner)?;
        if out.iter().any(|(n, _)| n == &c.name) {
            return Err(ConfigError(format!(
                "causes[{i}].name: `{}` is listed twice",
                c.name
            )));
        }
        out.push((c.name.clone(), c.owner.clone()));
    }
    if !out.iter().any(|(n, _)| n == "unknown") {
        return Err(ConfigError(
            "causes: must include `unknown` (production defects with no cause count there)".into(),
        ));
    }
    Ok(out)
}
