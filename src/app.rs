//! Builds the exporter from a configuration, serves until a shutdown signal,
//! then finishes in-flight requests and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::net::TcpListener;

use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::http::write::{Unauthenticated, WriteQueue};
use crate::http::{AppState, Shared, router};
use crate::metrics::Metrics;
use crate::store::lock::{self, DbLock, LockError};
use crate::store::{Store, WriterThread};
use crate::telemetry::Telemetry;

/// A built exporter, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    writer: WriterThread,
    /// The database lock (`store::lock`): no `import` while this server runs.
    /// Released after the writer has closed the database.
    lock: DbLock,
    /// Faults tests inject into the periodic reconcile.
    reconcile_faults: Arc<crate::sources::periodic::Faults>,
}

impl Application {
    /// Opens the store, loads the aggregates and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let aggregates = Arc::new(RwLock::new(Aggregates::new(&config)));
        let telemetry = Arc::new(Telemetry::default());
        let lock = lock::acquire(&config.db, "serve").map_err(|e| match e {
            LockError::Held { .. } => anyhow::anyhow!(
                "{e}: an import or another server is writing it; wait for the import to finish \
                 (or stop the other server) and start again"
            ),
            other => anyhow::anyhow!(other),
        })?;
        let (store, writer) = {
            let (config, aggregates, telemetry) =
                (config.clone(), aggregates.clone(), telemetry.clone());
            tokio::task::spawn_blocking(move || Store::open(config, aggregates, telemetry))
                .await??
        };
        // What a standalone `sync` recorded shows before serve's own passes.
        if let Err(e) = crate::sources::periodic::restore(&config, &telemetry).await {
            tracing::warn!(error = %e, "cannot read the sync cursors");
        }
        let metrics = Arc::new(Metrics::new(config.clone(), aggregates.clone(), &telemetry));
        let write_queue = WriteQueue::new(
            config.write_queue_bytes,
            config.write_queue_wait,
            telemetry.clone(),
        );
        let unauthenticated = Unauthenticated::new(
            config.unauthenticated_bytes,
            config.write_queue_wait,
            telemetry.clone(),
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        if config.api_token.is_none() {
            tracing::warn!(
                "BUG_ESCAPE_API_TOKEN is not set: the write API accepts loopback clients only"
            );
        }
        crate::http::webhooks::log_configuration(&config);
        let web = &config.web;
        if let Some(file) = &web.file {
            tracing::info!(
                file = %file.display(),
                tls = web.tls.is_some(),
                client_auth = web.client_auth.map_or("none", |a| a.as_str()),
                basic_auth_users = web.basic_auth_users.len(),
                headers = web.headers.len(),
                "web configuration read (a change takes a restart)"
            );
            for warning in &web.warnings {
                warning.log();
            }
            if web.basic_auth() && web.tls.is_none() {
                tracing::warn!(
                    "basic auth without TLS: passwords cross the network in clear; set tls_server_config"
                );
            }
        }
        Ok(Self {
            listener,
            state: AppState::new(Shared {
                config,
                store,
                telemetry,
                metrics,
                aggregates,
                write_queue,
                unauthenticated,
            }),
            writer,
            lock,
            reconcile_faults: Arc::default(),
        })
    }

    /// The store handle (tests inject faults through it).
    pub fn store(&self) -> Store {
        self.state.store.clone()
    }

    /// The database file it serves.
    pub fn db(&self) -> &std::path::Path {
        &self.state.config.db
    }

    /// The periodic reconcile's fault switches (tests make a pass panic).
    #[doc(hidden)]
    pub fn reconcile_faults(&self) -> Arc<crate::sources::periodic::Faults> {
        self.reconcile_faults.clone()
    }

    /// The bound address (tests bind port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then drains requests and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let scheme = if self.state.config.web.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(%addr, scheme, db = %self.state.config.db.display(), "serving");
        // What the start-up load allocated and freed goes back to the system.
        tokio::task::spawn_blocking(crate::memory::release_freed);
        let (queue, unauthenticated) = (
            self.state.write_queue.clone(),
            self.state.unauthenticated.clone(),
        );
        let burst_ended = move || {
            // Both are asked (each clears its flag).
            let wrote = queue.idle_after_writes();
            let read = unauthenticated.idle_after_reads();
            wrote || read
        };
        tokio::spawn(crate::memory::trim_after_bursts(
            burst_ended,
            std::time::Duration::from_secs(2),
        ));
        let config = &self.state.config;
        let limits = crate::server::Limits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
            max_body_bytes: config.max_body_bytes,
        };
        let telemetry = self.state.telemetry.clone();
        let tls = config.web.tls.clone();
        let reconcile = crate::sources::periodic::spawn(
            config.clone(),
            self.state.store.clone(),
            telemetry.clone(),
            self.reconcile_faults.clone(),
        );
        let app = router(self.state);
        let served =
            crate::server::serve(self.listener, app, limits, tls, telemetry, shutdown).await;
        // The reconcile tasks hold store handles: stop them before the writer
        // can close (a page cut off is not committed, or committed whole).
        for task in &reconcile {
            task.abort();
        }
        for task in reconcile {
            let _ = task.await;
        }
        served?;
        // The router (and every Store handle in it) is gone: the writer drains
        // what is queued and closes the database.
        tokio::task::spawn_blocking(move || self.writer.join()).await?;
        drop(self.lock);
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM. Listens from the moment it is called (in
/// the runtime), not from its first poll: a SIGTERM sent as soon as the
/// exporter says it serves, or while it loads, is never left to the default
/// action (an exit without draining).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>, name: &'static str| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(interrupt, "Ctrl-C") => {},
                () = wait(terminate, "SIGTERM") => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received: finishing in-flight requests");
    }
}
