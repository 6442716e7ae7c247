//! In-memory aggregates: the counts every gauge is computed from. The store's
//! writer changes them only after a commit, by removing a defect's old
//! [`Contribution`] and adding its new one, so a scrape never touches SQLite.
//!
//! Memory follows what is exported, not history: of each product only the
//! releases first in [`Rank`] order are *resident* (between `keep` and
//! `2 × keep` of them, `keep` = the most `/metrics` reads); the rest are
//! *cold*, counted in [`Cold`] and left in SQLite. The store loads a cold
//! release before an event changes it ([`Aggregates::load`]) and refills a
//! product whose resident set fell below `keep` ([`Aggregates::promote`]).
//! Invariant: every cold release ranks after [`Cold::bound`], and every
//! resident release ranks before it (after [`Aggregates::rebalance`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;

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
    counts: Box<[u64]>,
    /// Where causes, detectors, severities and ages start in `counts`.
    starts: [u16; 4],
    pub release_time: Option<Millis>,
    /// Earliest `found_at` among its valid defects; orders releases with no time.
    pub first_found: Option<Millis>,
}

impl ReleaseAgg {
    fn new(shape: &Shape) -> Self {
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
    fn count_mut(&mut self, part: usize, i: usize) -> &mut u64 {
        let at = self.part(part).start + i;
        &mut self.counts[at]
    }

    /// Replaces the at-age counts.
    fn set_at_age(&mut self, at_age: &[AtAge]) {
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

/// A release's place in the order `/metrics` reads releases in: releases with
/// defects first, then newest first (release time, else first defect found),
/// then by name (descending). Smaller ranks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rank {
    pub data: bool,
    pub time: Option<Millis>,
    pub name: String,
}

impl Rank {
    /// The rank of a resident release.
    pub fn of(name: &str, r: &ReleaseAgg) -> Self {
        Self {
            data: r.total() > 0,
            time: r.order_time(),
            name: name.to_owned(),
        }
    }
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_cmp(
            (self.data, self.time, &self.name),
            (other.data, other.time, &other.name),
        )
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// [`Rank`] order over `(has defects, order time, name)`.
pub fn rank_cmp(a: (bool, Option<Millis>, &str), b: (bool, Option<Millis>, &str)) -> Ordering {
    b.0.cmp(&a.0)
        .then_with(|| b.1.cmp(&a.1))
        .then_with(|| b.2.cmp(a.2))
}

/// The rank order of two resident releases.
pub fn release_cmp(a: (&str, &ReleaseAgg), b: (&str, &ReleaseAgg)) -> Ordering {
    rank_cmp(
        (a.1.total() > 0, a.1.order_time(), a.0),
        (b.1.total() > 0, b.1.order_time(), b.0),
    )
}

/// What a product keeps of its cold releases: counts and a bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cold {
    /// Releases stored but not resident (with defects or a release time).
    pub releases: u64,
    /// Of those, releases with defects (for `bug_escape_releases_left_out`).
    pub with_data: u64,
    /// Every cold release ranks at or after this; `None` when there are none.
    pub bound: Option<Rank>,
}

/// A product's resident releases by name: a sorted vector grown one slot at a
/// time, so a product with one release holds one slot (a `BTreeMap` node holds
/// eleven, which made 150,000 small products cost 300 MB).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Releases(Vec<(String, ReleaseAgg)>);

impl Releases {
    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// The release called `name`.
    pub fn get(&self, name: &str) -> Option<&ReleaseAgg> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    /// The release called `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut ReleaseAgg> {
        self.find(name).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether a release called `name` is resident.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Adds or replaces a release.
    pub fn insert(&mut self, name: String, r: ReleaseAgg) -> Option<ReleaseAgg> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, r)),
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (name, r));
                None
            }
        }
    }

    /// The release called `name`, made with `fresh` when absent.
    pub fn get_or_insert_with(
        &mut self,
        name: &str,
        fresh: impl FnOnce() -> ReleaseAgg,
    ) -> &mut ReleaseAgg {
        let i = match self.find(name) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (name.to_owned(), fresh()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Removes a release.
    pub fn remove(&mut self, name: &str) -> Option<ReleaseAgg> {
        let r = self.find(name).ok().map(|i| self.0.remove(i).1);
        if self.0.capacity() > 2 * self.0.len() + 4 {
            self.0.shrink_to_fit();
        }
        r
    }

    /// Releases in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ReleaseAgg)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Names in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// Releases in name order.
    pub fn values(&self) -> impl Iterator<Item = &ReleaseAgg> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The first `n` in rank order (all when `n` is 0 or more than resident).
    pub fn first_ranked(&self, n: usize) -> Vec<(&str, &ReleaseAgg)> {
        let mut v: Vec<(&str, &ReleaseAgg)> = self.0.iter().map(|(k, r)| (k.as_str(), r)).collect();
        let by_rank = |a: &(&str, &ReleaseAgg), b: &(&str, &ReleaseAgg)| release_cmp(*a, *b);
        if v.len() > n && n > 0 {
            v.select_nth_unstable_by(n - 1, by_rank);
            v.truncate(n);
        }
        v.sort_by(by_rank);
        v
    }

    /// How many are resident.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is resident.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&str> for Releases {
    type Output = ReleaseAgg;

    fn index(&self, name: &str) -> &ReleaseAgg {
        self.get(name).expect("no resident release of that name")
    }
}

impl Extend<(String, ReleaseAgg)> for Releases {
    fn extend<I: IntoIterator<Item = (String, ReleaseAgg)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// What [`Aggregates::view`] shows of a product: name, first releases in rank
/// order, releases with defects, unattributed per stage, unknown stage, no stage.
pub type ProductViewOf = (String, Vec<(String, ReleaseAgg)>, u64, Vec<u64>, u64, u64);

/// Counts of one product.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductAgg {
    /// Resident releases (see the module documentation).
    pub releases: Releases,
    /// The releases left in SQLite.
    pub cold: Cold,
    /// Valid defects with no release, per configured stage.
    pub unattributed: Vec<u64>,
    /// Valid defects whose stage name is not configured.
    pub unknown_stage: u64,
    /// Valid defects with no stage.
    pub no_stage: u64,
    /// What orders products: the order time of the newest release with
    /// defects and the newest of the exported releases; `None` while stale.
    times: Option<(Option<Millis>, Option<Millis>)>,
}

impl ProductAgg {
    /// The order time of the product's newest release with defects, and of
    /// the newest of its first `max_releases` releases in rank order (the
    /// exported ones); from the cache the writer keeps when it is fresh.
    pub fn times(&self, max_releases: usize) -> (Option<Millis>, Option<Millis>) {
        self.times
            .unwrap_or_else(|| product_times(&self.releases, max_releases))
    }
}

/// See [`ProductAgg::times`]. The newest release with defects ranks first, so
/// it is always resident.
fn product_times(releases: &Releases, max_releases: usize) -> (Option<Millis>, Option<Millis>) {
    let latest_data = releases
        .values()
        .filter(|r| r.total() > 0)
        .filter_map(ReleaseAgg::order_time)
        .max();
    let latest = if releases.len() <= max_releases {
        releases.values().filter_map(ReleaseAgg::order_time).max()
    } else {
        releases
            .first_ranked(max_releases)
            .iter()
            .filter_map(|(_, r)| r.order_time())
            .max()
    };
    (latest_data, latest)
}

/// Sizes fixed by the configuration.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    stages: usize,
    production: Vec<bool>,
    causes: usize,
    severities: usize,
    ages: Vec<Millis>,
}

/// All aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregates {
    shape: Shape,
    /// Releases per product `/metrics` reads: `max(max_releases, recent_releases)`.
    keep: usize,
    /// Releases per product exported.
    max_releases: usize,
    pub products: BTreeMap<String, ProductAgg>,
}

impl Aggregates {
    /// Empty aggregates shaped by `config`.
    pub fn new(config: &Config) -> Self {
        let stages = config.pipeline.stages();
        Self {
            shape: Shape {
                stages: stages.len(),
                production: (0..stages.len())
                    .map(|i| config.pipeline.is_production(i))
                    .collect(),
                causes: config.causes.len(),
                severities: config.severities.len(),
                ages: config
                    .maturity_ages
                    .iter()
                    .map(|(_, d)| d.as_millis() as Millis)
                    .collect(),
            },
            keep: config.max_releases.max(config.recent_releases).max(1),
            max_releases: config.max_releases,
            products: BTreeMap::new(),
        }
    }

    /// How many maturity ages each release counts at.
    pub fn ages(&self) -> usize {
        self.shape.ages.len()
    }

    /// How many releases of a product `/metrics` reads at most.
    pub fn keep(&self) -> usize {
        self.keep
    }

    /// An empty release shaped like the others.
    pub fn empty_release(&self) -> ReleaseAgg {
        ReleaseAgg::new(&self.shape)
    }

    fn product(&mut self, name: &str) -> &mut ProductAgg {
        if !self.products.contains_key(name) {
            let p = ProductAgg {
                releases: Releases::default(),
                cold: Cold::default(),
                unattributed: vec![0; self.shape.stages],
                unknown_stage: 0,
                no_stage: 0,
                times: None,
            };
            self.products.insert(name.to_owned(), p);
        }
        let p = self.products.get_mut(name).expect("inserted above");
        p.times = None;
        p
    }

    fn release(&mut self, product: &str, release: &str) -> &mut ReleaseAgg {
        self.product(product);
        let shape = &self.shape;
        self.products
            .get_mut(product)
            .expect("made above")
            .releases
            .get_or_insert_with(release, || ReleaseAgg::new(shape))
    }

    /// Adds a contribution.
    pub fn add(&mut self, c: &Contribution) {
        self.apply(c, true);
    }

    /// Removes a contribution added earlier.
    pub fn remove(&mut self, c: &Contribution) {
        self.apply(c, false);
    }

    fn apply(&mut self, c: &Contribution, add: bool) {
        let step = |v: &mut u64| {
            *v = if add { *v + 1 } else { v.saturating_sub(1) };
        };
        let stage = match c.class {
            Class::UnknownStage => {
                step(&mut self.product(&c.product).unknown_stage);
                return self.prune(&c.product, None);
            }
            Class::NoStage => {
                step(&mut self.product(&c.product).no_stage);
                return self.prune(&c.product, None);
            }
            Class::Stage(s) => s,
        };
        let Some(release) = &c.release else {
            step(&mut self.product(&c.product).unattributed[stage]);
            return self.prune(&c.product, None);
        };
        self.count(
            &c.product,
            release,
            Staged {
                stage,
                found_at: c.found_at,
                cause: c.cause,
                detector: c.detector,
                severity: c.severity,
            },
            add,
        );
        self.prune(&c.product, Some(release));
    }

    /// Adds a defect counted at a configured stage of a release, from borrowed
    /// parts (the start-up load adds millions).
    pub fn add_staged(&mut self, product: &str, release: &str, d: Staged) {
        self.count(product, release, d, true);
    }

    fn count(&mut self, product: &str, release: &str, d: Staged, add: bool) {
        let step = |v: &mut u64| {
            *v = if add { *v + 1 } else { v.saturating_sub(1) };
        };
        self.release(product, release);
        let Self {
            shape, products, ..
        } = self;
        let production = shape.production[d.stage];
        let ages = &shape.ages;
        let r = products
            .get_mut(product)
            .and_then(|p| p.releases.get_mut(release))
            .expect("made above");
        step(r.count_mut(0, d.stage));
        if production {
            step(r.count_mut(1, d.cause));
            step(r.count_mut(2, d.detector));
            step(r.count_mut(3, d.severity));
        }
        if let Some(t) = r.release_time {
            for (i, age) in ages.iter().enumerate() {
                if d.found_at <= t + age {
                    step(r.count_mut(4, AT_AGE * i));
                    if production {
                        step(r.count_mut(4, AT_AGE * i + 1));
                        step(r.count_mut(4, AT_AGE * i + 2 + d.detector));
                    }
                }
            }
        }
        if add && r.first_found.is_none_or(|f| d.found_at < f) {
            r.first_found = Some(d.found_at);
        }
    }

    /// Sets what the store recomputed for a release: its earliest `found_at`,
    /// and (when its release time changed) the time and the at-age counts.
    pub fn set_release_meta(&mut self, product: &str, release: &str, meta: &ReleaseMeta) {
        let r = self.release(product, release);
        r.first_found = meta.first_found;
        if let Some((time, at_age)) = &meta.time {
            r.release_time = *time;
            r.set_at_age(at_age);
        }
        self.prune(product, Some(release));
    }

    /// Drops a release, then a product, that holds nothing any more.
    fn prune(&mut self, product: &str, release: Option<&str>) {
        let Some(p) = self.products.get_mut(product) else {
            return;
        };
        if let Some(release) = release {
            if p.releases
                .get(release)
                .is_some_and(|r| r.total() == 0 && r.release_time.is_none())
            {
                p.releases.remove(release);
            }
        }
        if p.releases.is_empty()
            && p.cold.releases == 0
            && p.unknown_stage == 0
            && p.no_stage == 0
            && p.unattributed.iter().all(|n| *n == 0)
        {
            self.products.remove(product);
        }
    }

    /// Whether the release must be loaded from the store before a change: its
    /// product has cold releases and it is not resident (it may be one of them).
    pub fn needs_load(&self, product: &str, release: &str) -> bool {
        self.products
            .get(product)
            .is_some_and(|p| p.cold.releases > 0 && !p.releases.contains_key(release))
    }

    /// Makes a release resident with the state the store holds for it (`None`:
    /// it holds nothing, the release is new), before changes are applied.
    pub fn load(&mut self, product: &str, release: &str, stored: Option<ReleaseAgg>) {
        let Some(r) = stored else { return };
        let p = self.product(product);
        if p.releases.contains_key(release) {
            return;
        }
        p.cold.releases = p.cold.releases.saturating_sub(1);
        if r.total() > 0 {
            p.cold.with_data = p.cold.with_data.saturating_sub(1);
        }
        p.releases.insert(release.to_owned(), r);
    }

    /// Restores the invariant after changes to a product: residents ranking
    /// after the cold bound go cold, and beyond `2 × keep` residents the last
    /// ones go cold. Returns whether the product now holds fewer than `keep`
    /// residents while cold ones exist: the store must [`promote`](Self::promote).
    pub fn rebalance(&mut self, product: &str) -> bool {
        let keep = self.keep;
        let Some(p) = self.products.get_mut(product) else {
            return false;
        };
        if let Some(bound) = p.cold.bound.clone() {
            let after: Vec<String> = p
                .releases
                .iter()
                .filter(|(k, r)| Rank::of(k, r) > bound)
                .map(|(k, _)| k.clone())
                .collect();
            for k in after {
                let r = p.releases.remove(&k).expect("listed above");
                p.cold.releases += 1;
                p.cold.with_data += u64::from(r.total() > 0);
            }
        }
        if p.releases.len() > 2 * keep {
            let mut ranked: Vec<Rank> = p.releases.iter().map(|(k, r)| Rank::of(k, r)).collect();
            ranked.sort_unstable();
            let evicted = ranked.split_off(keep);
            for rank in &evicted {
                p.releases.remove(&rank.name);
                p.cold.releases += 1;
                p.cold.with_data += u64::from(rank.data);
            }
            p.cold.bound = evicted.into_iter().next();
        }
        if p.cold.releases == 0 {
            p.cold.bound = None;
        }
        let short = p.cold.releases > 0 && p.releases.len() < keep;
        p.times = Some(product_times(&p.releases, self.max_releases));
        self.prune(product, None);
        short
    }

    /// Sets a product's own counts and its cold releases, as the loader found
    /// them (its resident releases follow through [`promote`](Self::promote)).
    pub fn seed_product(
        &mut self,
        product: &str,
        unattributed: Vec<u64>,
        unknown_stage: u64,
        no_stage: u64,
        cold: Cold,
    ) {
        let p = self.product(product);
        p.unattributed = unattributed;
        p.unknown_stage = unknown_stage;
        p.no_stage = no_stage;
        p.cold = cold;
    }

    /// Computes every product's cached ordering times (after a load).
    pub fn refresh_times(&mut self) {
        for p in self.products.values_mut() {
            p.times = Some(product_times(&p.releases, self.max_releases));
        }
    }

    /// Names of a product's resident releases.
    pub fn resident(&self, product: &str) -> Vec<String> {
        self.products
            .get(product)
            .map(|p| p.releases.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes the best cold releases resident (`loaded`, as stored) and sets
    /// what stays cold, as the store counted it.
    pub fn promote(&mut self, product: &str, loaded: Vec<(String, ReleaseAgg)>, cold: Cold) {
        let max_releases = self.max_releases;
        let p = self.product(product);
        p.releases.extend(loaded);
        p.cold = cold;
        p.times = Some(product_times(&p.releases, max_releases));
        self.prune(product, None);
    }

    /// A product as `/metrics` sees it, independent of what happens to be
    /// resident: its first `keep` releases in rank order, the number with
    /// defects, and the product's own counts. Live aggregates and a fresh load
    /// of the same store give equal views.
    pub fn view(&self) -> Vec<ProductViewOf> {
        self.products
            .iter()
            .map(|(name, p)| {
                let with_data =
                    p.releases.values().filter(|r| r.total() > 0).count() as u64 + p.cold.with_data;
                let top = p
                    .releases
                    .first_ranked(self.keep)
                    .into_iter()
                    .map(|(k, r)| (k.to_owned(), r.clone()))
                    .collect();
                (
                    name.clone(),
                    top,
                    with_data,
                    p.unattributed.clone(),
                    p.unknown_stage,
                    p.no_stage,
                )
            })
            .collect()
    }

    /// At-age counts of a release's contributions, for a given release time.
    pub fn at_age_counts<'a>(
        &self,
        release_time: Option<Millis>,
        contributions: impl Iterator<Item = &'a Contribution>,
    ) -> Vec<AtAge> {
        let mut out = vec![[0; AT_AGE]; self.shape.ages.len()];
        let Some(t) = release_time else {
            return out;
        };
        for c in contributions {
            let Class::Stage(s) = c.class else { continue };
            for (i, age) in self.shape.ages.iter().enumerate() {
                if c.found_at <= t + age {
                    out[i][0] += 1;
                    if self.shape.production[s] {
                        out[i][1] += 1;
                        out[i][2 + c.detector] += 1;
                    }
                }
            }
        }
        out
    }
}

/// Values the store recomputes for a release after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseMeta {
    pub first_found: Option<Millis>,
    /// New release time and the at-age counts for it, when the time changed.
    pub time: Option<(Option<Millis>, Vec<AtAge>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use proptest::prelude::*;

    fn contribution() -> impl Strategy<Value = Contribution> {
        (
            0..3usize,
            proptest::option::of(0..4usize),
            0..7usize,
            0..100i64,
            0..5usize,
            0..4usize,
            0..5usize,
        )
            .prop_map(|(p, r, s, t, c, d, sev)| Contribution {
                product: format!("p{p}"),
                release: r.map(|r| format!("{r}.0")),
                class: match s {
                    5 => Class::UnknownStage,
                    6 => Class::NoStage,
                    s => Class::Stage(s),
                },
                found_at: t * 1000,
                cause: c,
                detector: d,
                severity: sev,
            })
    }

    /// At each maturity age a release counts, in its fixed counters, every
    /// valid defect found up to that age after its release time (the age
    /// itself included), its production defects, and those by detector; the
    /// store's recomputation after a release time changes gives the same.
    #[test]
    fn at_age_counts_total_production_and_detectors_within_the_age() {
        const DAY: Millis = 86_400_000;
        let config = Config::from_settings(Settings::default()).unwrap();
        let mut agg = Aggregates::new(&config);
        let t = 1_000 * DAY;
        let timed = |time: Millis, at_age: Vec<AtAge>| ReleaseMeta {
            first_found: None,
            time: Some((Some(time), at_age)),
        };
        agg.set_release_meta("p", "1.0", &timed(t, vec![[0; AT_AGE]]));
        // Stage 3 is qa, 4 production; detectors user, monitoring, other, unknown.
        let defect = |stage: usize, days: Millis, detector: usize| Contribution {
            product: "p".into(),
            release: Some("1.0".into()),
            class: Class::Stage(stage),
            found_at: t + days * DAY,
            cause: 0,
            detector,
            severity: 0,
        };
        let cs = [
            defect(3, -5, 0),
            defect(4, 1, 0),
            defect(4, 2, 0),
            defect(4, 30, 1),
            defect(4, 31, 0),
            defect(4, 3, 3),
        ];
        let size = agg.empty_release().counts.len();
        for c in &cs {
            agg.add(c);
        }
        let r = &agg.products["p"].releases["1.0"];
        assert_eq!(r.at_age(0), [5, 4]);
        assert_eq!(r.at_age_detectors(0), [2, 1, 0, 1]);
        assert_eq!(r.detectors(), [3, 1, 0, 1], "all production defects");
        assert_eq!(r.counts.len(), size, "counters, not per-defect state");
        assert_eq!(
            agg.at_age_counts(Some(t), cs.iter()),
            vec![[5, 4, 2, 1, 0, 1]]
        );

        agg.remove(&cs[1]);
        let r = &agg.products["p"].releases["1.0"];
        assert_eq!(r.at_age(0), [4, 3]);
        assert_eq!(r.at_age_detectors(0), [1, 1, 0, 1]);

        // Shipped ten days later: the defect found on day 31 is now within 30d.
        let later = t + 10 * DAY;
        let kept: Vec<Contribution> = cs.iter().filter(|c| *c != &cs[1]).cloned().collect();
        let recomputed = agg.at_age_counts(Some(later), kept.iter());
        agg.set_release_meta("p", "1.0", &timed(later, recomputed));
        let r = &agg.products["p"].releases["1.0"];
        assert_eq!(r.at_age(0), [5, 4]);
        assert_eq!(r.at_age_detectors(0), [2, 1, 0, 1]);
    }

    proptest! {
        /// Removing what was added, in any order, leaves nothing behind; while
        /// added, T(R) is the number of staged, attributed contributions.
        #[test]
        fn add_and_remove_are_inverse(cs in proptest::collection::vec(contribution(), 0..60), seed in any::<u64>()) {
            let config = Config::from_settings(Settings::default()).unwrap();
            let mut agg = Aggregates::new(&config);
            for c in &cs {
                agg.add(c);
            }
            let staged = cs.iter().filter(|c| c.release.is_some() && matches!(c.class, Class::Stage(_))).count() as u64;
            let total: u64 = agg.products.values().flat_map(|p| p.releases.values()).map(ReleaseAgg::total).sum();
            prop_assert_eq!(total, staged);
            let mut order: Vec<usize> = (0..cs.len()).collect();
            let mut s = seed | 1;
            for i in (1..order.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            for i in order {
                agg.remove(&cs[i]);
            }
            prop_assert!(agg.products.is_empty(), "{:?}", agg.products);
        }
    }
}
