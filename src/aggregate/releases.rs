//! A product's counts ([`ProductAgg`]) and its resident releases by name
//! ([`Releases`]), with the cached times products are ordered by.

use super::{Cold, ReleaseAgg, release_cmp};
use crate::model::time::Millis;

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

/// What [`super::Aggregates::view`] shows of a product: name, first releases in rank
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
    pub(super) times: Option<(Option<Millis>, Option<Millis>)>,
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
pub(super) fn product_times(
    releases: &Releases,
    max_releases: usize,
) -> (Option<Millis>, Option<Millis>) {
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
