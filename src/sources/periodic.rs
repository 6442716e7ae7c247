//! `serve`'s periodic reconcile: for each source with a `sync_interval`, a
//! task runs a pass at start and then every interval, writing through the
//! server's own store writer (so the gauges follow at once) and updating the
//! `bug_escape_sync_*` metrics. At start, [`restore`] reads the last
//! successes recorded in the database, so a standalone `sync` run before
//! `serve` started shows too.
//!
//! The task is a supervisor: each pass runs in a task of its own, so a pass
//! that fails or panics is logged, counted (`bug_escape_sync_passes_total`,
//! `bug_escape_sync_last_failure_timestamp_seconds`) and followed by the next
//! interval's pass as usual. The task never ends before shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};

use super::{Options, PassResult, Quiet, REGISTRY, Sink, Source, pass};
use crate::config::Config;
use crate::model::time::now_ms;
use crate::store::Store;
use crate::store::sync::Cursors;
use crate::telemetry::Telemetry;

/// Sets `bug_escape_sync_last_success_timestamp_seconds` from the cursor table.
pub async fn restore(config: &Config, telemetry: &Telemetry) -> anyhow::Result<()> {
    let cursors = Cursors::open(config).await?;
    for (source, at) in cursors.last_successes().await? {
        telemetry.sync.succeeded(&source, at);
    }
    Ok(())
}

/// Faults tests inject into the reconcile, as `store::fault` does for the
/// writer: once the client checks its arithmetic no vendor answer makes a
/// pass panic, yet the supervisor's panic path must be exercised. Nothing
/// arms one outside tests.
#[derive(Debug)]
pub struct Faults {
    /// Per source, in the order of [`REGISTRY`]: its next pass panics.
    panic: Vec<AtomicBool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            panic: REGISTRY.iter().map(|_| AtomicBool::new(false)).collect(),
        }
    }
}

impl Faults {
    /// The next pass over `source` panics (once).
    #[doc(hidden)]
    pub fn panic_next_pass(&self, source: Source) {
        self.panic[index(source)].store(true, Ordering::SeqCst);
    }

    /// Panics if a panic is armed for `source`.
    fn check(&self, source: Source) {
        if self.panic[index(source)].swap(false, Ordering::SeqCst) {
            panic!(
                "injected fault: panic in the {} reconcile pass",
                source.as_str()
            );
        }
    }
}

fn index(source: Source) -> usize {
    REGISTRY
        .iter()
        .position(|s| *s == source)
        .unwrap_or_default()
}

/// Starts one supervisor task per source with an interval; abort them (and
/// await them) before the store is closed: each holds a store handle.
pub fn spawn(
    config: Arc<Config>,
    store: Store,
    telemetry: Arc<Telemetry>,
    faults: Arc<Faults>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for &source in REGISTRY {
        let Some(every) = source.interval(&config) else {
            continue;
        };
        telemetry
            .sync
            .reconciles_every(source.as_str(), every.as_secs_f64());
        let supervisor = Supervisor {
            source,
            config: config.clone(),
            store: store.clone(),
            telemetry: telemetry.clone(),
            faults: faults.clone(),
            cursors: None,
        };
        tasks.push(tokio::spawn(supervisor.run(every)));
    }
    tasks
}

/// How a pass ended, the `result` label of `bug_escape_sync_passes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Success,
    Failure,
    Panic,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Success => "success",
            Ended::Failure => "failure",
            Ended::Panic => "panic",
        }
    }
}

/// One source's reconcile: a pass every interval, whatever the last did.
struct Supervisor {
    source: Source,
    config: Arc<Config>,
    store: Store,
    telemetry: Arc<Telemetry>,
    faults: Arc<Faults>,
    /// Opened at the first pass, opened again at the next if that failed.
    cursors: Option<Cursors>,
}

impl Supervisor {
    async fn run(mut self, every: Duration) {
        let s = self.source.as_str();
        tracing::info!(target: "bug_escape_exporter::sync::periodic", source = s, every = %humantime::format_duration(every), "periodic reconcile on");
        loop {
            let started = tokio::time::Instant::now();
            let ended = self.once().await;
            self.telemetry.sync.pass_ended(s, ended.as_str(), now_ms());
            match next_start(started, every) {
                // Start to start; a pass longer than the interval is
                // followed at once.
                Some(at) => tokio::time::sleep_until(at).await,
                // An interval beyond the clock's range: never again.
                None => std::future::pending().await,
            }
        }
    }

    /// Runs one pass in a task of its own and says how it ended.
    async fn once(&mut self) -> Ended {
        let s = self.source.as_str();
        let cursors = match &self.cursors {
            Some(c) => c.clone(),
            None => match Cursors::open(&self.config).await {
                Ok(c) => self.cursors.insert(c).clone(),
                Err(e) => {
                    tracing::error!(target: "bug_escape_exporter::sync::periodic", source = s, error = %e, "cannot open the database for sync; the next interval tries again");
                    return Ended::Failure;
                }
            },
        };
        let (source, config, store, telemetry, faults) = (
            self.source,
            self.config.clone(),
            self.store.clone(),
            self.telemetry.clone(),
            self.faults.clone(),
        );
        let mut task = Aborting(tokio::spawn(async move {
            faults.check(source);
            let mut sink = Sink::Served {
                store: &store,
                cursors: &cursors,
            };
            pass(
                source,
                &config,
                &mut sink,
                Options::default(),
                &telemetry.sync,
                &Quiet,
            )
            .await
        }));
        let joined = (&mut task.0).await;
        judge(s, &self.config, joined)
    }
}

/// When the pass after one started at `started` is due; `None` past the
/// clock's range (`tokio::time::interval` would panic there, and a
/// `sync_interval` of ten billion centuries is valid configuration).
fn next_start(started: tokio::time::Instant, every: Duration) -> Option<tokio::time::Instant> {
    started.checked_add(every)
}

/// Logs how a pass ended and classifies it.
fn judge(s: &str, config: &Config, joined: Result<PassResult, JoinError>) -> Ended {
    match joined {
        Ok(result) if result.errors.is_empty() => {
            tracing::info!(target: "bug_escape_exporter::sync::periodic", source = s, summary = %result.summary.line(), "reconcile pass done");
            Ended::Success
        }
        Ok(result) => {
            // The errors name URLs and statuses, never a token (SyncError).
            for e in &result.errors {
                tracing::error!(target: "bug_escape_exporter::sync::periodic", source = s, error = %e, "reconcile pass incomplete; the next one resumes");
            }
            Ended::Failure
        }
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|m| (*m).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(target: "bug_escape_exporter::sync::periodic", source = s, panic = %blank_secrets(&message, config), "reconcile pass panicked; the next interval runs again");
            Ended::Panic
        }
        Err(_) => {
            tracing::warn!(target: "bug_escape_exporter::sync::periodic", source = s, "reconcile pass cancelled");
            Ended::Failure
        }
    }
}

/// `text` with every configured secret blanked out (the one redactor vendor
/// text goes through), then cut to 300 characters: a panic message may
/// quote what a pass had in hand. Cut after blanking, so no part of a
/// secret survives the cut.
fn blank_secrets(text: &str, config: &Config) -> String {
    super::redact::Redact::of(config)
        .text(text)
        .chars()
        .take(300)
        .collect()
}

/// A pass's task, aborted when its supervisor is (at shutdown), so no pass
/// outlives the store it writes to.
struct Aborting<T>(JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_message_never_shows_a_configured_token() {
        let mut s = crate::config::Settings::default();
        s.webhooks.github.api.api_token = Some("ghp_secret-token-1".into());
        s.webhooks.github.repositories = vec!["a/b".into()];
        let config = Config::from_settings(s).expect("valid");
        let shown = blank_secrets("bad header ghp_secret-token-1 at x", &config);
        assert_eq!(
            shown,
            format!("bad header {} at x", crate::sources::redact::MASK)
        );
        assert_eq!(blank_secrets(&"x".repeat(1000), &config).len(), 300);
    }

    #[test]
    fn an_interval_past_the_clock_means_never_not_a_panic() {
        let now = tokio::time::Instant::now();
        assert_eq!(
            next_start(now, Duration::from_secs(60)),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(next_start(now, Duration::from_secs(u64::MAX)), None);
    }

    #[test]
    fn faults_fire_once_for_their_source() {
        let faults = Faults::default();
        let jira = Source::by_name("jira").unwrap();
        faults.panic_next_pass(jira);
        faults.check(Source::by_name("github").unwrap());
        assert!(std::panic::catch_unwind(|| faults.check(jira)).is_err());
        faults.check(jira);
    }
}
