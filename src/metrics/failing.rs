//! The failing stage of a release (docs/semantics.md, "The failing stage"):
//! of the tracked pre-release stages with enough sample whose leak `L_k` is
//! above what is expected of it beyond doubt (its 95 % lower bound above it),
//! the one furthest above — expected being its leak target where one is set,
//! else its baseline, the median leak of the same stage over the product's
//! previous releases. One rule for `report`, `GET /api/v1/releases`,
//! the summary page and `bug_escape_release_failing_stage_info`.

use serde::Serialize;

use super::formula;
use crate::config::Config;
use crate::model::stage::Phase;

/// How many of the releases with defects just before a release its baseline
/// looks at.
pub const BASELINE_RELEASES: usize = 10;

/// How many of those must have enough sample at the stage (defects that
/// reached it >= `min_defects`) for a baseline to exist.
pub const BASELINE_MIN_RELEASES: usize = 3;

/// Where the expectation of a stage came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// The stage's configured leak target.
    Target,
    /// The median leak of the stage over the product's previous releases.
    Baseline,
}

impl Basis {
    /// The name, as serialised and as the `basis` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Target => "target",
            Basis::Baseline => "baseline",
        }
    }
}

/// The failing stage of one release.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failing {
    /// Pipeline index of the stage.
    pub stage: usize,
    /// Its leak `L_k(R)`.
    pub leak: f64,
    /// What was expected of it.
    pub expected: f64,
    pub basis: Basis,
}

/// The leak of stage `k` in `counts` when at least `min` defects reached it.
fn sampled_leak(counts: &[u64], k: usize, min: u64) -> Option<f64> {
    let reached: u64 = counts[k..].iter().sum();
    (reached >= min)
        .then(|| formula::stage_leak(counts, k))
        .flatten()
}

/// The 95 % Wilson lower bound of the leak of stage `k` in `counts`.
fn leak_lower(counts: &[u64], k: usize) -> Option<f64> {
    let reached: u64 = counts[k..].iter().sum();
    formula::wilson(reached - counts[k], reached).map(|w| w.0)
}

/// The median of `v` (the mean of the middle two when even); `None` when empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The baseline of stage `k`: the median of its leak over the first
/// [`BASELINE_RELEASES`] of `previous` (newest first) with defects, of those
/// that have enough sample, when at least [`BASELINE_MIN_RELEASES`] do.
fn baseline(previous: &[&[u64]], k: usize, min: u64) -> Option<f64> {
    let leaks: Vec<f64> = previous
        .iter()
        .filter(|c| c.iter().any(|&n| n > 0))
        .take(BASELINE_RELEASES)
        .filter_map(|c| sampled_leak(c, k, min))
        .collect();
    (leaks.len() >= BASELINE_MIN_RELEASES)
        .then(|| median(leaks))
        .flatten()
}

/// The failing stage of a release of `product` with stage counts `counts`
/// (pipeline order), given the stage counts of the product's releases ranked
/// older than it, newest first; `None` when no stage leaks more than expected
/// beyond doubt.
pub fn failing_stage(
    config: &Config,
    product: &str,
    counts: &[u64],
    previous: &[&[u64]],
) -> Option<Failing> {
    let min = config.bands(product).min_defects;
    let mut best: Option<Failing> = None;
    for (k, s) in config.pipeline.stages().iter().enumerate() {
        if s.phase != Phase::PreRelease || !s.tracked {
            continue;
        }
        let Some(leak) = sampled_leak(counts, k, min) else {
            continue;
        };
        let expected = match config.leak_target(product, k) {
            Some(t) => (t, Basis::Target),
            None => match baseline(previous, k, min) {
                Some(b) => (b, Basis::Baseline),
                None => continue,
            },
        };
        let excess = leak - expected.0;
        // Beyond doubt: the leak's 95 % lower bound above what is expected
        // (as `BugEscapeStageLeakAboveTarget` asks of a target), so noise
        // names no stage. Strictly greater: on a tie the earlier stage stays.
        let beyond_doubt = leak_lower(counts, k).is_some_and(|lo| lo > expected.0);
        if beyond_doubt && best.is_none_or(|b| excess > b.leak - b.expected) {
            best = Some(Failing {
                stage: k,
                leak,
                expected: expected.0,
                basis: expected.1,
            });
        }
    }
    best
}

/// The failing stage of each of a product's releases, given their stage
/// counts newest first: each is judged against the releases after it.
pub fn failing_stages(
    config: &Config,
    product: &str,
    newest_first: &[&[u64]],
) -> Vec<Option<Failing>> {
    (0..newest_first.len())
        .map(|i| failing_stage(config, product, newest_first[i], &newest_first[i + 1..]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProductSettings, Settings};

    /// Default stages (development untracked), `min_defects` 10, `qa`
    /// targeted at 0.5 for product `t`.
    fn config() -> Config {
        let mut s = Settings::default();
        s.products.insert(
            "t".into(),
            ProductSettings {
                leak_targets: [("qa".to_owned(), 0.5)].into(),
                ..ProductSettings::default()
            },
        );
        Config::from_settings(s).unwrap()
    }

    // Stages: development, code_review, automated_tests, qa, production.
    const QUIET: [u64; 5] = [0, 10, 10, 16, 4]; // leaks: cr 30/40, at 20/30, qa 4/20

    #[test]
    fn a_target_is_what_is_expected_where_set() {
        let c = config();
        // qa let 16 of 20 through (0.8, lower bound 0.58) > target 0.5,
        // with no history at all.
        let r = [0, 10, 10, 4, 16];
        let f = failing_stage(&c, "t", &r, &[]).unwrap();
        assert_eq!(c.pipeline.stages()[f.stage].name, "qa");
        assert_eq!((f.leak, f.expected, f.basis), (0.8, 0.5, Basis::Target));
        // 12 of 20 (0.6) is above the target, not beyond doubt (lower
        // bound 0.39): noise names no stage.
        assert_eq!(failing_stage(&c, "t", &[0, 10, 10, 8, 12], &[]), None);
        // Without a target (another product) and no history: nothing.
        assert_eq!(failing_stage(&c, "u", &r, &[]), None);
        // Under its target: nothing, whatever the earlier stages let through.
        assert_eq!(failing_stage(&c, "t", &[0, 10, 10, 12, 8], &[]), None);
    }

    #[test]
    fn a_baseline_is_the_median_of_the_previous_releases() {
        let c = config();
        // Previous qa leaks 0.2, 0.25, 0.3 (code_review 0.75 each time).
        let p1 = [0u64, 10, 10, 16, 4];
        let p2 = [0u64, 10, 10, 15, 5];
        let p3 = [0u64, 10, 10, 14, 6];
        let prev: Vec<&[u64]> = vec![&p1, &p2, &p3];
        // This release: qa 10 of 20 (0.5, +0.25 over its median), code_review
        // 30/40 as usual.
        let f = failing_stage(&c, "u", &[0, 10, 10, 10, 10], &prev).unwrap();
        assert_eq!(c.pipeline.stages()[f.stage].name, "qa");
        assert_eq!(f.basis, Basis::Baseline);
        assert!((f.expected - 0.25).abs() < 1e-12 && f.leak == 0.5, "{f:?}");
        // Even count: the mean of the middle two.
        assert_eq!(median(vec![0.4, 0.1, 0.2, 0.3]), Some(0.25));
    }

    #[test]
    fn too_small_samples_are_never_judged() {
        let c = config();
        let prev: Vec<&[u64]> = vec![&QUIET, &QUIET, &QUIET];
        // qa reached by only 9 defects (< min_defects 10): not judged, even
        // above its target.
        assert_eq!(failing_stage(&c, "t", &[0, 2, 2, 1, 8], &[]), None);
        // Two earlier releases are not a baseline.
        let r = [0, 10, 10, 5, 15];
        assert_eq!(failing_stage(&c, "u", &r, &prev[..2]), None);
        assert!(failing_stage(&c, "u", &r, &prev).is_some());
        // Earlier releases with too few defects at the stage do not count.
        let small = [0u64, 1, 1, 1, 1];
        let prev: Vec<&[u64]> = vec![&small, &QUIET, &small, &QUIET, &small];
        assert_eq!(failing_stage(&c, "u", &r, &prev), None);
        // The baseline looks only at the BASELINE_RELEASES before it.
        let mut far: Vec<&[u64]> = vec![&small; BASELINE_RELEASES];
        far.extend([&QUIET[..], &QUIET, &QUIET]);
        assert_eq!(failing_stage(&c, "u", &r, &far), None);
    }

    #[test]
    fn none_fails_when_every_stage_does_as_expected() {
        let c = config();
        let prev: Vec<&[u64]> = vec![&QUIET; 5];
        assert_eq!(failing_stage(&c, "u", &QUIET, &prev), None);
        // Better than usual everywhere: none.
        assert_eq!(failing_stage(&c, "u", &[0, 20, 10, 18, 2], &prev), None);
    }

    #[test]
    fn untracked_stages_never_qualify() {
        let c = config();
        assert!(!c.pipeline.stages()[0].tracked, "development, by default");
        // Development caught nothing of 40 (leak 1.0, baseline 0.5) while
        // the other stages did as usual: it is not named.
        let usual = [40u64, 10, 10, 16, 4];
        let prev: Vec<&[u64]> = vec![&usual; 3];
        assert_eq!(failing_stage(&c, "u", &QUIET, &prev), None);
        // Tracked, it is.
        let mut s = Settings::default();
        s.stages[0].tracked = true;
        let tracked = Config::from_settings(s).unwrap();
        let f = failing_stage(&tracked, "u", &QUIET, &prev).unwrap();
        assert_eq!((f.stage, f.leak, f.expected), (0, 1.0, 0.5));
    }

    #[test]
    fn ties_name_the_earliest_stage() {
        let mut s = Settings::default();
        s.stages[1].leak_target = Some(0.2);
        s.stages[2].leak_target = Some(0.2);
        let c = Config::from_settings(s).unwrap();
        // code_review 12 of 16 through, automated_tests 9 of 12: both 0.75,
        // both +0.55 over their target (qa, reached by 9, is not judged).
        let f = failing_stage(&c, "u", &[0, 4, 3, 5, 4], &[]).unwrap();
        assert_eq!((f.stage, f.leak, f.expected), (1, 0.75, 0.2));
        // One more escape at automated_tests' expense: it is now further out.
        let f = failing_stage(&c, "u", &[0, 4, 2, 5, 5], &[]).unwrap();
        assert_eq!(f.stage, 2);
    }

    #[test]
    fn each_release_is_judged_against_the_ones_before_it() {
        let c = config();
        let spike = [0u64, 10, 10, 5, 15];
        let rows: Vec<&[u64]> = vec![&spike, &QUIET, &QUIET, &QUIET, &QUIET];
        let all = failing_stages(&c, "u", &rows);
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].map(|f| f.stage), Some(3));
        assert!(all[1..].iter().all(Option::is_none), "{all:?}");
    }
}
