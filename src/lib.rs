//! bug-escape-exporter: defect events in, escape-rate gauges out.
//!
//! Modules, in the order an event flows through them:
//! - [`http`]: routes, request bodies, auth, `AppError` → JSON.
//! - [`ingest`]: each source's payload → [`model::event`] items; `http::write`
//!   holds the one write path and the write queue's bound.
//! - [`model`]: validated domain values (stages, release names, events).
//! - [`store`]: the single SQLite writer thread; group commits; updates the
//!   aggregates after each commit.
//! - [`metrics`]: the in-memory aggregates, the §3 formulas, the scrape-time
//!   collector and the exposition formats.
//! - [`config`], [`cli`], [`app`], [`logging`]: settings, flags, start-up and
//!   shutdown, log output that never fails.
//! - [`healthcheck`]: the `healthcheck` sub-command's `/readyz` client.
//! - [`sync`]: the `sync` sub-command and `serve`'s periodic reconcile:
//!   vendors' REST APIs through the webhook adapters' conversions and the
//!   writer's rules.
//! - [`cmd`]: the `import` and `export` sub-commands (files in and out of
//!   the store, through the generic API's parser and the writer's engine).

pub mod aggregate;
pub mod app;
pub mod build;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod healthcheck;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod report;
pub mod server;
pub mod store;
pub mod sync;
