//! Registration of `sync`'s self-metrics: names, help texts, and every known
//! source and result at 0. The families live in [`crate::telemetry::sync`],
//! where the passes update them.

use prometheus_client::registry::Registry;

use crate::telemetry::sync::{
    PASS_RESULTS, RESULTS, ResultLabels, SOURCES, SourceLabels, SyncTelemetry,
};

/// Registers the families of `s`, with every known source and result at 0.
pub fn register(s: &SyncTelemetry, registry: &mut Registry) {
    for source in SOURCES {
        for result in RESULTS {
            let _ = s.items.get_or_create(&ResultLabels {
                source: (*source).into(),
                result: (*result).into(),
            });
        }
        for result in PASS_RESULTS {
            let _ = s.passes.get_or_create(&ResultLabels {
                source: (*source).into(),
                result: (*result).into(),
            });
        }
        let _ = s.differences.get_or_create(&SourceLabels {
            source: (*source).into(),
        });
        let _ = s.interval.get_or_create(&SourceLabels {
            source: (*source).into(),
        });
    }
    registry.register(
        "bug_escape_sync_last_success_timestamp_seconds",
        "When the last sync pass over every configured repository or project of a source completed (absent before the first)",
        s.last_success.clone(),
    );
    registry.register(
        "bug_escape_sync_interval_seconds",
        "How often serve reconciles a source (its sync_interval); 0 when it does not",
        s.interval.clone(),
    );
    registry.register(
        "bug_escape_sync_items",
        "Items sync read from a source's API, by what became of them: imported (stored state changed), unchanged, stale (the store holds a newer state), ignored (not a defect, a pull request, a draft), rejected (malformed), deleted (gone at the source)",
        s.items.clone(),
    );
    registry.register(
        "bug_escape_sync_differences",
        "Items a reconcile pass found ahead of the store (imported or deleted after an earlier complete pass): changes the webhooks did not deliver",
        s.differences.clone(),
    );
    registry.register(
        "bug_escape_sync_passes",
        "Reconcile passes serve ran, by how they ended: success (every configured repository or project completed), failure (one failed: an API error, an answer refused, the store), panic (a bug in the pass; the next interval runs again)",
        s.passes.clone(),
    );
    registry.register(
        "bug_escape_sync_last_failure_timestamp_seconds",
        "When the last reconcile pass serve ran over a source failed or panicked (absent before the first such pass)",
        s.last_failure.clone(),
    );
}
