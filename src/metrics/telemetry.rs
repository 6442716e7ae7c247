//! Registration of the exporter's own metrics: names, help texts, and the
//! known label values shown at 0 before anything happens. The counters and
//! gauges themselves live in [`crate::telemetry`], below the store that
//! updates them.

use prometheus_client::registry::Registry;

use crate::model::event::Ingress;
use crate::telemetry::{
    BuildLabels, CONNECTION_REFUSALS, IGNORED_REASONS, OperationLabels, REJECTED_REASONS,
    RefusalLabels, STORE_OPERATIONS, SourceLabels, Telemetry, UNMAPPED_FIELDS, field_labels,
    log_lines_dropped, reason_labels,
};

/// Registers every family of `t` in `registry`, with known label values at 0.
pub fn register(t: &Telemetry, registry: &mut Registry) {
    super::sync::register(&t.sync, registry);
    zero_known_labels(t);
    register_events(t, registry);
    register_store(t, registry);
    register_edge(t, registry);
}

/// Creates every known label set, so each series is exported from the start.
fn zero_known_labels(t: &Telemetry) {
    for ingress in Ingress::ALL {
        let source = ingress.as_str().to_owned();
        let _ = t.received.get_or_create(&SourceLabels {
            source: source.clone(),
        });
        let _ = t.links_refused.get_or_create(&SourceLabels {
            source: source.clone(),
        });
        for reason in IGNORED_REASONS {
            let _ = t.ignored.get_or_create(&reason_labels(ingress, reason));
        }
        for reason in REJECTED_REASONS {
            let _ = t.rejected.get_or_create(&reason_labels(ingress, reason));
        }
    }
    for ingress in Ingress::ALL.into_iter().filter(|i| *i != Ingress::Generic) {
        for field in UNMAPPED_FIELDS {
            let _ = t.unmapped.get_or_create(&field_labels(ingress, field));
        }
    }
    let _ = t.source_api_errors.get_or_create(&SourceLabels {
        source: Ingress::Sentry.as_str().into(),
    });
    for op in STORE_OPERATIONS {
        let _ = t.store_errors.get_or_create(&OperationLabels {
            operation: (*op).into(),
        });
    }
    for reason in CONNECTION_REFUSALS {
        let _ = t.connections_refused.get_or_create(&RefusalLabels {
            reason: (*reason).into(),
        });
    }
}

/// The build and what became of the events each source sent.
fn register_events(t: &Telemetry, registry: &mut Registry) {
    t.build
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
        t.build.clone(),
    );
    registry.register(
        "bug_escape_events_received",
        "Events received, by source",
        t.received.clone(),
    );
    registry.register(
        "bug_escape_events_ignored",
        "Events received but not applied, by source and reason",
        t.ignored.clone(),
    );
    registry.register(
        "bug_escape_events_rejected",
        "Requests refused, by source and reason",
        t.rejected.clone(),
    );
    registry.register(
        "bug_escape_last_event_timestamp_seconds",
        "Time of the last event stored from each source",
        t.last_event.clone(),
    );
    registry.register(
        "bug_escape_events_unmapped",
        "Webhook events stored with a classification value the configuration does not map (unknown stage, cause, severity, …), by source and field",
        t.unmapped.clone(),
    );
    registry.register(
        "bug_escape_links_refused",
        "Links not stored because the link group they would join holds the most records it may (64): the records stay counted apart; by the source that sent them (the generic API, a vendor's webhook or sync)",
        t.links_refused.clone(),
    );
    registry.register(
        "bug_escape_source_api_errors",
        "Calls to a source's API that failed (the defect stays unattributed), by source",
        t.source_api_errors.clone(),
    );
}

/// The store: its errors, whether it takes writes, its writer's restarts.
fn register_store(t: &Telemetry, registry: &mut Registry) {
    registry.register(
        "bug_escape_store_errors",
        "Store operations that failed, by operation",
        t.store_errors.clone(),
    );
    registry.register(
        "bug_escape_store_writable",
        "1 while the store takes writes (what /readyz reports), else 0",
        t.store_writable.clone(),
    );
    registry.register(
        "bug_escape_store_writer_restarts",
        "Times the store writer failed and was restarted with the aggregates rebuilt from disk",
        t.writer_restarts.clone(),
    );
}

/// The HTTP edge's bounds (write queue, unauthenticated bytes, connections)
/// and the log lines lost.
fn register_edge(t: &Telemetry, registry: &mut Registry) {
    registry.register(
        "bug_escape_write_queue_bytes",
        "Request bytes admitted and not yet answered (bounded by write_queue_bytes)",
        t.queue_bytes.clone(),
    );
    registry.register(
        "bug_escape_write_queue_capacity_bytes",
        "The configured bound of the write queue (write_queue_bytes)",
        t.queue_capacity.clone(),
    );
    registry.register(
        "bug_escape_unauthenticated_bytes",
        "Webhook body bytes read or being read before their signature is checked (bounded by unauthenticated_bytes)",
        t.unauthenticated_bytes.clone(),
    );
    registry.register(
        "bug_escape_unauthenticated_capacity_bytes",
        "The configured bound of bytes not yet authenticated (unauthenticated_bytes)",
        t.unauthenticated_capacity.clone(),
    );
    registry.register(
        "bug_escape_connections",
        "HTTP connections open and served (bounded by max_connections)",
        t.connections.clone(),
    );
    registry.register(
        "bug_escape_connections_refused",
        "At max_connections: a quiet connection closed to make room (`evicted`), a new one served one probe request from the reserve (`reserve`, others 503) or answered 503 at once (`full`)",
        t.connections_refused.clone(),
    );
    registry.register(
        "bug_escape_log_lines_dropped",
        "Log lines dropped because the log sink failed (full disk, closed pipe)",
        log_lines_dropped().clone(),
    );
}
