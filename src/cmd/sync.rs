//! The `sync` sub-command: one pass over a source into `--db`, under the
//! database lock (refused while `serve` runs on it: its counts live in
//! memory and would not see the writes; `serve` reconciles by itself when
//! `sync_interval` is set). A progress line on a terminal, the summary on
//! stdout, errors on stderr.

use std::io::{IsTerminal, Write};

use crate::config::Config;
use crate::sources::{Options, Progress, Sink, Source, Summary, pass};
use crate::store::lock::{ExclusiveOpenError, LockError};
use crate::store::sync::Local;
use crate::telemetry::sync::SyncTelemetry;

/// Exit status: the pass completed, every item applied.
pub const EXIT_OK: u8 = 0;
/// Exit status: the pass completed, some items were rejected (named on stderr).
pub const EXIT_REJECTED: u8 = 1;
/// Exit status: usage, configuration, database or API error; what was
/// committed stays, and the next run resumes from it.
pub const EXIT_ERROR: u8 = 2;

/// A spinner on stderr when it is a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self(Some(bar))
    }
}

impl Progress for Bar {
    fn page(&self, source: Source, scope: &str, s: &Summary) {
        if let Some(b) = &self.0 {
            b.set_message(format!(
                "{} {scope}: page {}, imported {}, unchanged {}, stale {}, rejected {}",
                source.as_str(),
                s.pages,
                s.imported,
                s.unchanged,
                s.stale,
                s.rejected
            ));
        }
    }
}

/// Runs `sync <source>`; returns the exit status.
pub fn run(config: Config, source: Source, options: Options) -> u8 {
    let mut local = match Local::open(&config) {
        Ok(l) => l,
        Err(ExclusiveOpenError::Locked(e @ LockError::Held { .. })) => {
            complain(&format!(
                "{e}: refusing to sync while it runs (a running `serve` keeps its counts in \
                 memory and would not see the writes). Set `webhooks.{}.sync_interval` so \
                 `serve` reconciles by itself, or stop it, sync, and start it again",
                source.as_str()
            ));
            return EXIT_ERROR;
        }
        Err(e) => {
            complain(&e.to_string());
            return EXIT_ERROR;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            complain(&format!("cannot start the runtime: {e}"));
            return EXIT_ERROR;
        }
    };
    let telemetry = SyncTelemetry::default();
    let bar = Bar::new();
    let started = std::time::Instant::now();
    let result = runtime.block_on(pass(
        source,
        &config,
        &mut Sink::Local(&mut local),
        options,
        &telemetry,
        &bar,
    ));
    if let Some(b) = &bar.0 {
        b.finish_and_clear();
    }
    let closed = local.close();
    say(&format!(
        "sync {}: {} in {:.1}s",
        source.as_str(),
        result.summary.line(),
        started.elapsed().as_secs_f64()
    ));
    if !result.errors.is_empty() {
        for e in &result.errors {
            complain(&format!("sync {}: {e}", source.as_str()));
        }
        complain(
            "the pass is incomplete: what is counted above is committed, and the next run \
             resumes from it",
        );
        return EXIT_ERROR;
    }
    if let Err(e) = closed {
        complain(&format!("closing the database failed: {e}"));
        return EXIT_ERROR;
    }
    if result.summary.rejected > 0 {
        EXIT_REJECTED
    } else {
        EXIT_OK
    }
}

/// Prints to stdout; a failing stdout is ignored.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints to stderr; a failing stderr is ignored.
fn complain(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
