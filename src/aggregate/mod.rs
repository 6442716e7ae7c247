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
//!
//! Files: `contribution` (what one defect adds), `counts` (one release's
//! counters), `rank` (the order releases are read in), `releases` (a
//! product's counts and resident releases), `cold` (releases left in
//! SQLite and moves between resident and cold); this file holds
//! [`Aggregates`], which applies contributions.

mod cold;
mod contribution;
mod counts;
mod rank;
mod releases;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::model::time::Millis;

pub use cold::Cold;
pub use contribution::{Class, Contribution, DefectView, Staged};
use counts::Shape;
pub use counts::{AT_AGE, AtAge, ReleaseAgg};
pub use rank::{Rank, rank_cmp, release_cmp};
use releases::product_times;
pub use releases::{ProductAgg, ProductViewOf, Releases};

/// All aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregates {
    shape: Shape,
    /// Releases per product `/metrics` reads: `max(max_releases, recent_releases)`.
    keep: usize,
    /// Releases per product exported.
    max_releases: usize,
    pub products: BTreeMap<String, ProductAgg>,
    /// Records folded into link groups, by the product of the record
    /// (docs/semantics.md, "Linked records"); products with none absent.
    pub linked: BTreeMap<String, u64>,
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
            linked: BTreeMap::new(),
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

    /// Changes the records of `product` folded into link groups by `delta`.
    pub fn link(&mut self, product: &str, delta: i64) {
        let n = self.linked.get(product).copied().unwrap_or(0);
        let n = n.saturating_add_signed(delta);
        if n == 0 {
            self.linked.remove(product);
        } else {
            self.linked.insert(product.to_owned(), n);
        }
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
mod tests;
