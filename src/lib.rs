//! bug-escape-exporter: defect events in, escape-rate gauges out.
//!
//! The modules stand on floors; each imports only from the floors below it:
//!
//! 1. Commands: [`cmd`] (one file or folder per sub-command; `main` parses
//!    [`cli`], starts [`logging`] and dispatches).
//! 2. Serving: [`app`] (start-up and shutdown), [`http`] (routes, request
//!    bodies, auth, `AppError` → JSON; `http::write` holds the one write path
//!    and the write queue's bound), [`server`] (the accept loop), [`metrics`]
//!    (the §3 formulas, the scrape-time collector, the registration and
//!    exposition of every family), [`memory`].
//! 3. [`sources`]: the vendors (GitHub, GitLab, Jira, Sentry), one folder
//!    each: configuration, webhook conversion and authentication, the `sync`
//!    listing from their REST APIs; beside them the shared client, the
//!    deletion sweep and `serve`'s periodic reconcile.
//! 4. [`ingest`]: the generic API's payload → [`model::item::Item`]s.
//! 5. [`store`]: the single SQLite writer thread; group commits; updates the
//!    aggregates and the self-metrics after each commit.
//! 6. [`aggregate`]: the in-memory counts every gauge is computed from;
//!    [`telemetry`]: the state of the exporter's own metrics, which the
//!    store, the HTTP edge and `sync` update.
//! 7. [`config`]: settings, validated.
//! 8. [`model`]: validated domain values (stages, release names, events,
//!    times).
//!
//! [`cli`] (clap's argument types) and [`build`] (version strings) are
//! leaves: they read nothing above [`model`].

pub mod aggregate;
pub mod app;
pub mod build;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod server;
pub mod sources;
pub mod store;
pub mod telemetry;
