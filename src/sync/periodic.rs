//! `serve`'s periodic reconcile: for each source with a `sync_interval`, a
//! task runs a pass at start and then every interval, writing through the
//! server's own store writer (so the gauges follow at once) and updating the
//! `bug_escape_sync_*` metrics. At start, [`restore`] reads the last
//! successes recorded in the database, so a standalone `sync` run before
//! `serve` started shows too.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{Options, Quiet, Sink, Source, pass};
use crate::config::Config;
use crate::metrics::telemetry::Telemetry;
use crate::store::Store;
use crate::store::sync::{Cursors, last_successes};

/// Sets `bug_escape_sync_last_success_timestamp_seconds` from the cursor table.
pub fn restore(config: &Config, telemetry: &Telemetry) -> anyhow::Result<()> {
    let cursors = Cursors::open(config)?;
    for (source, at) in last_successes(cursors.conn())? {
        telemetry.sync.succeeded(&source, at);
    }
    Ok(())
}

/// Starts one task per source with an interval; abort them (and await them)
/// before the store is closed: each holds a store handle.
pub fn spawn(config: Arc<Config>, store: Store, telemetry: Arc<Telemetry>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for &source in Source::ALL {
        let Some(every) = source.interval(&config) else {
            continue;
        };
        telemetry
            .sync
            .reconciles_every(source.as_str(), every.as_secs_f64());
        let (config, store, telemetry) = (config.clone(), store.clone(), telemetry.clone());
        tasks.push(tokio::spawn(async move {
            let mut cursors = match Cursors::open(&config) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(source = source.as_str(), error = %e, "cannot open the database for sync; periodic reconcile off");
                    return;
                }
            };
            tracing::info!(source = source.as_str(), every = %humantime::format_duration(every), "periodic reconcile on");
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let mut sink = Sink::Served {
                    store: &store,
                    cursors: &mut cursors,
                };
                let result = pass(
                    source,
                    &config,
                    &mut sink,
                    Options::default(),
                    &telemetry.sync,
                    &Quiet,
                )
                .await;
                if result.errors.is_empty() {
                    tracing::info!(source = source.as_str(), summary = %result.summary.line(), "reconcile pass done");
                } else {
                    for e in &result.errors {
                        tracing::error!(source = source.as_str(), error = %e, "reconcile pass incomplete; the next one resumes");
                    }
                }
            }
        }));
    }
    tasks
}
