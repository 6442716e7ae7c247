//! The counters of one release ([`ReleaseAgg`]): one allocation whose parts
//! (stages, causes, detectors, severities, maturity ages) are sized by the
//! configuration ([`Shape`]), never by the number of defects.

use crate::model::event::DETECTORS;
use crate::model::time::Millis;

/// What a release counts per maturity age, found up to that age after its
/// release time: `[total, production, production by detector…]`, the
/// detectors in [`DETECTORS`] order with `unknown` last.
pub const AT_AGE: usize = 2 + DETECTORS.len() + 1;

/// The counts of one release at one maturity age (see [`AT_AGE`]).
pub type AtAge = [u64; AT_AGE];

/// Counts of one release, in one allocation: per configured stage (valid
/// defects), per cause, per detector and per severity (production defects;
/// `unknown` last for the latter two), and per maturity age an [`AtAge`]
/// (meaningful once the release time is known). Fixed by the configuration:
/// the counters never grow with the defects.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseAgg {
    pub(super) counts: Box<[u64]>,
    /// Where causes, detectors, severities and ages start in `counts`.
    starts: [u16; 4],
    pub release_time: Option<Millis>,
    /// Earliest `found_at` among its valid defects; orders releases with no time.
    pub first_found: Option<Millis>,
}

impl ReleaseAgg {
    pub(super) fn new(shape: &Shape) -> Self {
        let causes = shape.stages;
        let detectors = causes + shape.causes;
        let severities = detectors + DETECTORS.len() + 1;
        let ages = severities + shape.severities + 1;
        let len = ages + AT_AGE * shape.ages.len();
        let at = |n: usize| u16::try_from(n).expect("a configuration of fewer than 65,536 names");
        Self {
            counts: vec![0; len].into_boxed_slice(),
            starts: [at(causes), at(detectors), at(severities), at(ages)],
            release_time: None,
            first_found: None,
        }
    }

    fn part(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 {
            0
        } else {
            self.starts[i - 1] as usize
        };
        let end = self
            .starts
            .get(i)
            .map_or(self.counts.len(), |e| *e as usize);
        start..end
    }

    /// Valid defects per configured stage.
    pub fn stages(&self) -> &[u64] {
        &self.counts[self.part(0)]
    }

    /// Production defects per cause.
    pub fn causes(&self) -> &[u64] {
        &self.counts[self.part(1)]
    }

    /// Production defects per detector (`unknown` last).
    pub fn detectors(&self) -> &[u64] {
        &self.counts[self.part(2)]
    }

    /// Production defects per severity (`unknown` last).
    pub fn severities(&self) -> &[u64] {
        &self.counts[self.part(3)]
    }

    /// `[total, production]` found up to maturity age `i` after the release time.
    pub fn at_age(&self, i: usize) -> [u64; 2] {
        let at = self.starts[3] as usize + AT_AGE * i;
        [self.counts[at], self.counts[at + 1]]
    }

    /// Production defects per detector (`unknown` last) found up to maturity
    /// age `i` after the release time.
    pub fn at_age_detectors(&self, i: usize) -> &[u64] {
        let at = self.starts[3] as usize + AT_AGE * i;
        &self.counts[at + 2..at + AT_AGE]
    }

    /// Counter `i` of part `part` (see [`part`](Self::part)), to change.
    pub(super) fn count_mut(&mut self, part: usize, i: usize) -> &mut u64 {
        let at = self.part(part).start + i;
        &mut self.counts[at]
    }

    /// Replaces the at-age counts.
    pub(super) fn set_at_age(&mut self, at_age: &[AtAge]) {
        let start = self.starts[3] as usize;
        for (i, counts) in at_age.iter().enumerate() {
            self.counts[start + AT_AGE * i..start + AT_AGE * (i + 1)].copy_from_slice(counts);
        }
    }

    /// T(R): all valid defects.
    pub fn total(&self) -> u64 {
        self.stages().iter().sum()
    }

    /// The time releases are ordered by: release time, else first defect found.
    pub fn order_time(&self) -> Option<Millis> {
        self.release_time.or(self.first_found)
    }
}

/// Sizes fixed by the configuration.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Shape {
    pub(super) stages: usize,
    pub(super) production: Vec<bool>,
    pub(super) causes: usize,
    pub(super) severities: usize,
    pub(super) ages: Vec<Millis>,
}
