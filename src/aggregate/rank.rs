//! The order `/metrics` reads a product's releases in ([`Rank`]): what decides
//! which releases stay resident and which go cold.

use std::cmp::Ordering;

use super::ReleaseAgg;
use crate::model::time::Millis;

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
