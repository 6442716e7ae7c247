//! The state of the exporter's own metrics: the counters and gauges the store's
//! writer, the HTTP edge and `sync` update (events received, ignored and
//! rejected per source, last event time, store errors, queue and connection
//! use). It sits below the store so the writer can count without reaching up
//! into `metrics`, which only registers and encodes these families.

pub mod sync;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::atomic::AtomicU64;

use crate::model::event::Ingress;
use crate::model::time::Millis;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    pub(crate) source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub(crate) source: String,
    pub(crate) reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    pub(crate) reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FieldLabels {
    pub(crate) source: String,
    pub(crate) field: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OperationLabels {
    pub(crate) operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct BuildLabels {
    pub(crate) version: String,
    pub(crate) revision: String,
    pub(crate) branch: String,
    pub(crate) rustc_version: String,
}

/// Reasons an event is ignored, initialised at 0 for every source.
pub const IGNORED_REASONS: &[&str] = &[
    "stale",
    "duplicate_delivery",
    "not_a_defect",
    "ping",
    "unsupported_event",
    "no_release",
    "upcoming_release",
];
/// Classification fields whose webhook values may not map onto the configuration.
pub const UNMAPPED_FIELDS: &[&str] = &[
    "stage",
    "release",
    "cause",
    "severity",
    "team",
    "detected_by",
];
/// Reasons a request is rejected, initialised at 0 for every source.
pub const REJECTED_REASONS: &[&str] = &[
    "auth",
    "forbidden",
    "malformed",
    "invalid_field",
    "future_timestamp",
    "too_large",
    "unsupported_media_type",
    "store_unavailable",
    "not_configured",
    "queue_full",
    "timeout",
    "unauthenticated_full",
];
/// What happened at `max_connections`: a quiet connection closed to make
/// room (`evicted`), a new one served one probe request from the reserve
/// (`reserve`), or answered 503 at once (`full`).
pub const CONNECTION_REFUSALS: &[&str] = &["evicted", "reserve", "full"];
/// Store operations whose errors are counted: a batch rolled back alone, a
/// transaction that failed (the whole group), the readiness probe, a rebuild
/// of the aggregates after a failed update, a batch that waited in the queue
/// past its deadline.
pub const STORE_OPERATIONS: &[&str] = &[
    "write",
    "commit",
    "readiness",
    "probe",
    "aggregates",
    "queue_timeout",
];

/// Log lines that could not be written (full disk, closed pipe): the process
/// goes on and counts them. Global because logging starts before the registry.
pub fn log_lines_dropped() -> &'static Counter {
    static DROPPED: std::sync::OnceLock<Counter> = std::sync::OnceLock::new();
    DROPPED.get_or_init(Counter::default)
}

/// Self-metrics, registered in the exporter's registry by
/// `metrics::telemetry::register`.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub(crate) received: Family<SourceLabels, Counter>,
    pub(crate) ignored: Family<ReasonLabels, Counter>,
    pub(crate) rejected: Family<ReasonLabels, Counter>,
    pub(crate) last_event: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    pub(crate) store_errors: Family<OperationLabels, Counter>,
    pub(crate) build: Family<BuildLabels, Gauge>,
    pub(crate) unmapped: Family<FieldLabels, Counter>,
    pub(crate) source_api_errors: Family<SourceLabels, Counter>,
    pub(crate) store_writable: Gauge,
    pub(crate) writer_restarts: Counter,
    pub(crate) queue_bytes: Gauge,
    pub(crate) queue_capacity: Gauge,
    pub(crate) unauthenticated_bytes: Gauge,
    pub(crate) unauthenticated_capacity: Gauge,
    pub(crate) connections: Gauge,
    pub(crate) connections_refused: Family<RefusalLabels, Counter>,
    pub(crate) links_refused: Family<SourceLabels, Counter>,
    /// `sync`'s passes.
    pub sync: sync::SyncTelemetry,
}

impl Telemetry {
    /// Sets whether the store takes writes.
    pub fn set_store_writable(&self, writable: bool) {
        self.store_writable.set(i64::from(writable));
    }

    /// Counts a restart of the store writer.
    pub fn writer_restarted(&self) {
        self.writer_restarts.inc();
    }

    /// Sets the bytes admitted to the write queue and its bound.
    pub fn set_write_queue(&self, used: u64, capacity: u64) {
        self.queue_bytes.set(used as i64);
        self.queue_capacity.set(capacity as i64);
    }

    /// Sets the bytes held for requests not yet authenticated and their bound.
    pub fn set_unauthenticated(&self, used: u64, capacity: u64) {
        self.unauthenticated_bytes.set(used as i64);
        self.unauthenticated_capacity.set(capacity as i64);
    }

    /// Counts a connection taken into service.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// Counts a served connection that ended.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// Counts a connection over `max_connections` (`reserve` or `full`).
    pub fn connection_refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&RefusalLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts `n` links the store refused from a batch of `ingress`: each
    /// would have made its link group larger than
    /// [`crate::model::event::MAX_GROUP_RECORDS`] records.
    pub fn links_refused(&self, ingress: Ingress, n: u64) {
        if n > 0 {
            let _ = self
                .links_refused
                .get_or_create(&SourceLabels {
                    source: ingress.as_str().into(),
                })
                .inc_by(n);
        }
    }

    /// Counts `n` events received from `ingress`.
    pub fn received(&self, ingress: Ingress, n: u64) {
        self.received
            .get_or_create(&SourceLabels {
                source: ingress.as_str().into(),
            })
            .inc_by(n);
    }

    /// Counts `n` events ignored for `reason`.
    pub fn ignored(&self, ingress: Ingress, reason: &str, n: u64) {
        if n > 0 {
            let _ = self
                .ignored
                .get_or_create(&reason_labels(ingress, reason))
                .inc_by(n);
        }
    }

    /// Counts one request rejected for `reason`.
    pub fn rejected(&self, ingress: Ingress, reason: &str) {
        let _ = self
            .rejected
            .get_or_create(&reason_labels(ingress, reason))
            .inc();
    }

    /// Records the time of the last stored event from `source`.
    pub fn set_last_event(&self, source: &str, at: Millis) {
        let g = self.last_event.get_or_create(&SourceLabels {
            source: source.into(),
        });
        let secs = at as f64 / 1000.0;
        if secs > g.get() {
            g.set(secs);
        }
    }

    /// Counts a stored webhook event whose `field` value did not map.
    pub fn unmapped(&self, ingress: Ingress, field: &str) {
        let _ = self
            .unmapped
            .get_or_create(&field_labels(ingress, field))
            .inc();
    }

    /// Counts a failed call to a source's API.
    pub fn source_api_error(&self, ingress: Ingress) {
        let _ = self
            .source_api_errors
            .get_or_create(&SourceLabels {
                source: ingress.as_str().into(),
            })
            .inc();
    }

    /// Counts a failed store operation.
    pub fn store_error(&self, operation: &str) {
        self.store_errors
            .get_or_create(&OperationLabels {
                operation: operation.into(),
            })
            .inc();
    }
}

pub(crate) fn reason_labels(ingress: Ingress, reason: &str) -> ReasonLabels {
    ReasonLabels {
        source: ingress.as_str().into(),
        reason: reason.into(),
    }
}

pub(crate) fn field_labels(ingress: Ingress, field: &str) -> FieldLabels {
    FieldLabels {
        source: ingress.as_str().into(),
        field: field.into(),
    }
}
