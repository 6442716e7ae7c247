//! Self-metrics of `sync` (the reconcile passes over the vendors' APIs):
//! when each source last completed a pass, what its items did, how many
//! were found ahead of the store (changes the webhooks never delivered), and
//! how `serve`'s own passes ended (failures and panics included).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::time::Millis;

/// Sources `sync` can read, initialised at 0 (add one with its vendor).
pub const SOURCES: &[&str] = &["github", "gitlab", "jira", "sentry"];

/// How one of `serve`'s reconcile passes ended, the `result` label of
/// `bug_escape_sync_passes_total`.
pub const PASS_RESULTS: &[&str] = &["success", "failure", "panic"];

/// What became of an item a pass read, the `result` label.
pub const RESULTS: &[&str] = &[
    "imported",
    "unchanged",
    "stale",
    "ignored",
    "rejected",
    "deleted",
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    source: String,
    result: String,
}

/// The families, registered in the exporter's registry.
#[derive(Debug, Default)]
pub struct SyncTelemetry {
    last_success: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    interval: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    items: Family<ResultLabels, Counter>,
    differences: Family<SourceLabels, Counter>,
    passes: Family<ResultLabels, Counter>,
    last_failure: Family<SourceLabels, Gauge<f64, AtomicU64>>,
}

impl SyncTelemetry {
    /// Registers the families, with every known source and result at 0.
    pub fn register(&self, registry: &mut Registry) {
        for source in SOURCES {
            for result in RESULTS {
                let _ = self.items.get_or_create(&ResultLabels {
                    source: (*source).into(),
                    result: (*result).into(),
                });
            }
            for result in PASS_RESULTS {
                let _ = self.passes.get_or_create(&ResultLabels {
                    source: (*source).into(),
                    result: (*result).into(),
                });
            }
            let _ = self.differences.get_or_create(&SourceLabels {
                source: (*source).into(),
            });
            let _ = self.interval.get_or_create(&SourceLabels {
                source: (*source).into(),
            });
        }
        registry.register(
            "bug_escape_sync_last_success_timestamp_seconds",
            "When the last sync pass over every configured repository or project of a source completed (absent before the first)",
            self.last_success.clone(),
        );
        registry.register(
            "bug_escape_sync_interval_seconds",
            "How often serve reconciles a source (its sync_interval); 0 when it does not",
            self.interval.clone(),
        );
        registry.register(
            "bug_escape_sync_items",
            "Items sync read from a source's API, by what became of them: imported (stored state changed), unchanged, stale (the store holds a newer state), ignored (not a defect, a pull request, a draft), rejected (malformed), deleted (gone at the source)",
            self.items.clone(),
        );
        registry.register(
            "bug_escape_sync_differences",
            "Items a reconcile pass found ahead of the store (imported or deleted after an earlier complete pass): changes the webhooks did not deliver",
            self.differences.clone(),
        );
        registry.register(
            "bug_escape_sync_passes",
            "Reconcile passes serve ran, by how they ended: success (every configured repository or project completed), failure (one failed: an API error, an answer refused, the store), panic (a bug in the pass; the next interval runs again)",
            self.passes.clone(),
        );
        registry.register(
            "bug_escape_sync_last_failure_timestamp_seconds",
            "When the last reconcile pass serve ran over a source failed or panicked (absent before the first such pass)",
            self.last_failure.clone(),
        );
    }

    /// Counts one of `serve`'s passes over `source` that ended with `result`
    /// (one of [`PASS_RESULTS`]) at `at`; a failure or panic also sets the
    /// time of the last failure.
    pub fn pass_ended(&self, source: &str, result: &str, at: Millis) {
        let _ = self
            .passes
            .get_or_create(&ResultLabels {
                source: source.into(),
                result: result.into(),
            })
            .inc();
        if result != "success" {
            self.last_failure
                .get_or_create(&SourceLabels {
                    source: source.into(),
                })
                .set(at as f64 / 1000.0);
        }
    }

    /// Records a pass over `source` completed at `at` (never moves back).
    pub fn succeeded(&self, source: &str, at: Millis) {
        let g = self.last_success.get_or_create(&SourceLabels {
            source: source.into(),
        });
        let secs = at as f64 / 1000.0;
        if secs > g.get() {
            g.set(secs);
        }
    }

    /// Records that `serve` reconciles `source` every `secs` seconds.
    pub fn reconciles_every(&self, source: &str, secs: f64) {
        self.interval
            .get_or_create(&SourceLabels {
                source: source.into(),
            })
            .set(secs);
    }

    /// Counts `n` items of `source` with `result`.
    pub fn items(&self, source: &str, result: &str, n: u64) {
        if n > 0 {
            let _ = self
                .items
                .get_or_create(&ResultLabels {
                    source: source.into(),
                    result: result.into(),
                })
                .inc_by(n);
        }
    }

    /// Counts `n` differences found in `source`.
    pub fn differences(&self, source: &str, n: u64) {
        if n > 0 {
            let _ = self
                .differences
                .get_or_create(&SourceLabels {
                    source: source.into(),
                })
                .inc_by(n);
        }
    }
}
