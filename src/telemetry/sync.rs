//! The state of `sync`'s self-metrics (the reconcile passes over the
//! vendors' APIs), which its passes update:
//! when each source last completed a pass, what its items did, how many
//! were found ahead of the store (changes the webhooks never delivered), and
//! how `serve`'s own passes ended (failures and panics included).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

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
pub(crate) struct SourceLabels {
    pub(crate) source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub(crate) source: String,
    pub(crate) result: String,
}

/// The families, registered in the exporter's registry by
/// `metrics::telemetry`.
#[derive(Debug, Default)]
pub struct SyncTelemetry {
    pub(crate) last_success: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    pub(crate) interval: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    pub(crate) items: Family<ResultLabels, Counter>,
    pub(crate) differences: Family<SourceLabels, Counter>,
    pub(crate) passes: Family<ResultLabels, Counter>,
    pub(crate) last_failure: Family<SourceLabels, Gauge<f64, AtomicU64>>,
}

impl SyncTelemetry {
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
