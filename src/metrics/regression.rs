//! The release that regressed most against its predecessors at the same age:
//! each shown release's escape rate at a maturity age, E_age(R), against the
//! mean E_age of the product's earlier releases, as the recording rule
//! `product_age:bug_escape_rate_at_age_previous:avg_ratio` compares the newest
//! release (docs/metrics.md, `bug_escape_rate_at_age_ratio`).
//!
//! A release counts, as the candidate or as a predecessor, once its release
//! time is known, it is at least `age` old, some defect was found by then
//! (E_age defined), and T(R) >= `min_defects` (the rule's sufficient sample).
//! Predecessors are the exported releases released before it; at least
//! [`MIN_PREVIOUS`] are needed. The regression is E_age(R) minus their mean;
//! the largest above 0 over the shown releases and the configured ages wins
//! (the newer release, then the earlier age, on a tie).

use serde::Serialize;

use super::collector::ProductView;
use crate::config::Config;
use crate::model::time::Millis;

/// Earlier releases a release is compared with, at least: one predecessor
/// alone is too noisy a baseline to call a regression.
pub const MIN_PREVIOUS: usize = 2;

/// The release that regressed most, at one age.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    pub release: String,
    /// The maturity age, as configured (`30d`).
    pub age: String,
    /// E_age(R).
    pub rate: f64,
    /// The mean E_age of the releases before it.
    pub previous: f64,
    /// How many releases that mean is over.
    pub previous_releases: usize,
}

/// One release at one age, as the comparison reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AtAge {
    pub released: Millis,
    /// T(R) >= `min_defects`.
    pub sufficient: bool,
    /// E_age(R), when the release is that old and has defects by then.
    pub rate: Option<f64>,
}

/// `(index, E_age, mean of predecessors, their count)` of the release of
/// `releases` (newest first) among the first `shown` whose E_age exceeds the
/// mean of its predecessors' by the most; `None` when none exceeds it.
pub fn most_regressed(releases: &[AtAge], shown: usize) -> Option<(usize, f64, f64, usize)> {
    let mut best: Option<(usize, f64, f64, usize)> = None;
    for (i, r) in releases.iter().enumerate().take(shown) {
        let Some(rate) = r.rate.filter(|_| r.sufficient) else {
            continue;
        };
        let (sum, n) = releases
            .iter()
            .filter(|p| p.sufficient && p.released < r.released)
            .filter_map(|p| p.rate)
            .fold((0.0, 0), |(s, n), x| (s + x, n + 1));
        if n < MIN_PREVIOUS {
            continue;
        }
        let mean = sum / n as f64;
        if rate > mean && best.is_none_or(|(_, br, bm, _)| rate - mean > br - bm) {
            best = Some((i, rate, mean, n));
        }
    }
    best
}

/// The most regressed of the first `shown` releases of product `p` over the
/// configured maturity ages, at `now`. Costs the product's exported releases
/// times `shown` per age.
pub fn of_product(
    config: &Config,
    p: &ProductView<'_>,
    shown: usize,
    now: Millis,
) -> Option<Regression> {
    let min_defects = config.bands(p.name()).min_defects;
    let mut best: Option<Regression> = None;
    for (i, (age, length)) in config.maturity_ages.iter().enumerate() {
        let length = length.as_millis() as Millis;
        let at: Vec<AtAge> = p
            .releases()
            .iter()
            .filter_map(|(_, r)| {
                let released = r.release_time?;
                let [total, production] = r.at_age(i);
                Some(AtAge {
                    released,
                    sufficient: r.total() >= min_defects,
                    rate: (now >= released.saturating_add(length))
                        .then(|| super::formula::rate(production, total))
                        .flatten(),
                })
            })
            .collect();
        // `at` skips releases without a time: map its indexes back.
        let named: Vec<&str> = p
            .releases()
            .iter()
            .filter(|(_, r)| r.release_time.is_some())
            .map(|(name, _)| *name)
            .collect();
        let shown_timed = p.releases()[..shown.min(p.releases().len())]
            .iter()
            .filter(|(_, r)| r.release_time.is_some())
            .count();
        let Some((k, rate, previous, n)) = most_regressed(&at, shown_timed) else {
            continue;
        };
        if best
            .as_ref()
            .is_none_or(|b| rate - previous > b.rate - b.previous)
        {
            best = Some(Regression {
                release: named[k].to_owned(),
                age: age.clone(),
                rate,
                previous,
                previous_releases: n,
            });
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Millis = 86_400_000;

    fn at(day: i64, rate: Option<f64>) -> AtAge {
        AtAge {
            released: day * DAY,
            sufficient: true,
            rate,
        }
    }

    #[test]
    fn the_release_furthest_above_its_predecessors_mean_is_named() {
        // Newest first. 0.30 (day 40) against mean(0.10, 0.25, 0.20, 0.10)
        // = 0.1625: +0.1375; 0.25 (day 20) against mean(0.20, 0.10) = 0.15:
        // +0.10; 0.10 (day 30) is below its predecessors' mean.
        let releases = [
            at(40, Some(0.30)),
            at(30, Some(0.10)),
            at(20, Some(0.25)),
            at(10, Some(0.20)),
            at(0, Some(0.10)),
        ];
        let (i, rate, mean, n) = most_regressed(&releases, 5).unwrap();
        assert_eq!((i, rate, n), (0, 0.30, 4));
        assert!((mean - 0.1625).abs() < 1e-12, "{mean}");
        // Without the newest, the one at day 20 regressed most.
        let (i, _, mean, n) = most_regressed(&releases[1..], 4).unwrap();
        assert_eq!((i, n), (1, 2));
        assert!((mean - 0.15).abs() < 1e-12, "{mean}");
        // Only the shown releases are candidates; older ones are predecessors.
        assert_eq!(most_regressed(&releases[1..], 1), None);
        assert_eq!(most_regressed(&releases[1..], 2).map(|r| r.0), Some(1));
    }

    #[test]
    fn a_release_better_than_its_predecessors_or_with_too_few_is_not_named() {
        let improving = [at(20, Some(0.05)), at(10, Some(0.10)), at(0, Some(0.20))];
        assert_eq!(most_regressed(&improving, 3), None);
        // One predecessor is not enough (MIN_PREVIOUS).
        assert_eq!(
            most_regressed(&[at(10, Some(0.5)), at(0, Some(0.1))], 2),
            None
        );
        // Too young (no E_age) or too small a sample: neither candidate nor
        // predecessor.
        let mut small = at(5, Some(0.05));
        small.sufficient = false;
        let mixed = [
            at(30, Some(0.40)),
            at(25, None),
            small,
            at(10, Some(0.10)),
            at(0, Some(0.20)),
        ];
        let (i, rate, mean, n) = most_regressed(&mixed, 5).unwrap();
        assert_eq!((i, rate, n), (0, 0.40, 2));
        assert!((mean - 0.15).abs() < 1e-12);
        let mut big_but_small = at(40, Some(0.9));
        big_but_small.sufficient = false;
        assert_eq!(
            most_regressed(&[big_but_small, mixed[3], mixed[4]], 1),
            None
        );
    }

    #[test]
    fn releases_of_the_same_time_are_not_each_others_predecessors() {
        let same = [at(10, Some(0.5)), at(10, Some(0.1)), at(0, Some(0.1))];
        assert_eq!(most_regressed(&same, 3), None);
        let ties = [
            at(30, Some(0.3)),
            at(20, Some(0.3)),
            at(10, Some(0.1)),
            at(0, Some(0.1)),
        ];
        // 0.3 against 0.1 (20) and against mean(0.3, 0.1, 0.1) (30): the
        // older wins by more.
        assert_eq!(most_regressed(&ties, 4).map(|r| r.0), Some(1));
    }
}
