//! Cold releases: those left in SQLite, counted in [`Cold`], and how a
//! product's releases move between resident and cold (loaded before a
//! change, evicted past `2 × keep`, promoted when fewer than `keep` remain).

use super::{Aggregates, Rank, ReleaseAgg, product_times};

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

impl Aggregates {
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
}
