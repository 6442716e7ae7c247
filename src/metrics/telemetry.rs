//! The exporter's own metrics: events received, ignored and rejected per source,
//! last event time, store errors, build info.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::model::event::Ingress;
use crate::model::time::Millis;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    source: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    source: String,
    field: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
    branch: String,
    rustc_version: String,
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
const CONNECTION_REFUSALS: &[&str] = &["evicted", "reserve", "full"];
/// Store operations whose errors are counted: a batch rolled back alone, a
/// transaction that failed (the whole group), the readiness probe, a rebuild
/// of the aggregates after a failed update, a batch that waited in the queue
/// past its deadline.
const STORE_OPERATIONS: &[&str] = &[
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

/// Self-metrics, registered in the exporter's registry.
#[derive(Debug, Default)]
pub struct Telemetry {
    received: Family<SourceLabels, Counter>,
    ignored: Family<ReasonLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    last_event: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    store_errors: Family<OperationLabels, Counter>,
    build: Family<BuildLabels, Gauge>,
    unmapped: Family<FieldLabels, Counter>,
    source_api_errors: Family<SourceLabels, Counter>,
    store_writable: Gauge,
    writer_restarts: Counter,
    queue_bytes: Gauge,
    queue_capacity: Gauge,
    unauthenticated_bytes: Gauge,
    unauthenticated_capacity: Gauge,
    connections: Gauge,
    connections_refused: Family<RefusalLabels, Counter>,
    /// `sync`'s passes.
    pub sync: super::sync::SyncTelemetry,
}

impl Telemetry {
    /// Registers every family in `registry`, with known label values at 0.
    pub fn register(&self, registry: &mut Registry) {
        self.sync.register(registry);
        for ingress in Ingress::ALL {
            let source = ingress.as_str().to_owned();
            let _ = self.received.get_or_create(&SourceLabels {
                source: source.clone(),
            });
            for reason in IGNORED_REASONS {
                let _ = self.ignored.get_or_create(&reason_labels(ingress, reason));
            }
            for reason in REJECTED_REASONS {
                let _ = self.rejected.get_or_create(&reason_labels(ingress, reason));
            }
        }
        for ingress in Ingress::ALL.into_iter().filter(|i| *i != Ingress::Generic) {
            for field in UNMAPPED_FIELDS {
                let _ = self.unmapped.get_or_create(&field_labels(ingress, field));
            }
        }
        let _ = self.source_api_errors.get_or_create(&SourceLabels {
            source: Ingress::Sentry.as_str().into(),
        });
        for op in STORE_OPERATIONS {
            let _ = self.store_errors.get_or_create(&OperationLabels {
                operation: (*op).into(),
            });
        }
        self.build
            .get_or_create(&BuildLabels {
                version: crate::build::VERSION.into(),
                revision: crate::build::REVISION.into(),
                branch: crate::build::BRANCH.into(),
                rustc_version: crate::build::RUSTC_VERSION.into(),
            })
            .set(1);
        registry.register(
            "bug_escape_build_info",
            "Build of the exporter (value 1)",
            self.build.clone(),
        );
        registry.register(
            "bug_escape_events_received",
            "Events received, by source",
            self.received.clone(),
        );
        registry.register(
            "bug_escape_events_ignored",
            "Events received but not applied, by source and reason",
            self.ignored.clone(),
        );
        registry.register(
            "bug_escape_events_rejected",
            "Requests refused, by source and reason",
            self.rejected.clone(),
        );
        registry.register(
            "bug_escape_last_event_timestamp_seconds",
            "Time of the last event stored from each source",
            self.last_event.clone(),
        );
        registry.register(
            "bug_escape_events_unmapped",
            "Webhook events stored with a classification value the configuration does not map (unknown stage, cause, severity, …), by source and field",
            self.unmapped.clone(),
        );
        registry.register(
            "bug_escape_source_api_errors",
            "Calls to a source's API that failed (the defect stays unattributed), by source",
            self.source_api_errors.clone(),
        );
        registry.register(
            "bug_escape_store_errors",
            "Store operations that failed, by operation",
            self.store_errors.clone(),
        );
        registry.register(
            "bug_escape_store_writable",
            "1 while the store takes writes (what /readyz reports), else 0",
            self.store_writable.clone(),
        );
        registry.register(
            "bug_escape_store_writer_restarts",
            "Times the store writer failed and was restarted with the aggregates rebuilt from disk",
            self.writer_restarts.clone(),
        );
        registry.register(
            "bug_escape_write_queue_bytes",
            "Request bytes admitted and not yet answered (bounded by write_queue_bytes)",
            self.queue_bytes.clone(),
        );
        registry.register(
            "bug_escape_write_queue_capacity_bytes",
            "The configured bound of the write queue (write_queue_bytes)",
            self.queue_capacity.clone(),
        );
        registry.register(
            "bug_escape_unauthenticated_bytes",
            "Webhook body bytes read or being read before their signature is checked (bounded by unauthenticated_bytes)",
            self.unauthenticated_bytes.clone(),
        );
        registry.register(
            "bug_escape_unauthenticated_capacity_bytes",
            "The configured bound of bytes not yet authenticated (unauthenticated_bytes)",
            self.unauthenticated_capacity.clone(),
        );
        registry.register(
            "bug_escape_connections",
            "HTTP connections open and served (bounded by max_connections)",
            self.connections.clone(),
        );
        for reason in CONNECTION_REFUSALS {
            let _ = self.connections_refused.get_or_create(&RefusalLabels {
                reason: (*reason).into(),
            });
        }
        registry.register(
            "bug_escape_connections_refused",
            "At max_connections: a quiet connection closed to make room (`evicted`), a new one served one probe request from the reserve (`reserve`, others 503) or answered 503 at once (`full`)",
            self.connections_refused.clone(),
        );
        registry.register(
            "bug_escape_log_lines_dropped",
            "Log lines dropped because the log sink failed (full disk, closed pipe)",
            log_lines_dropped().clone(),
        );
    }

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

fn reason_labels(ingress: Ingress, reason: &str) -> ReasonLabels {
    ReasonLabels {
        source: ingress.as_str().into(),
        reason: reason.into(),
    }
}

fn field_labels(ingress: Ingress, field: &str) -> FieldLabels {
    FieldLabels {
        source: ingress.as_str().into(),
        field: field.into(),
    }
}
