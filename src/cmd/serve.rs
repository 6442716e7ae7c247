//! `serve`: the exporter itself. Loads the configuration, tunes the
//! allocator, starts the runtime and runs [`Application`] until a signal.

use std::path::Path;
use std::process::ExitCode;

use super::{complain, load};
use crate::app::{Application, shutdown_signal};
use crate::config::Overrides;

/// Runs the exporter with the configuration of `file` and `flags`.
pub fn run(file: Option<&Path>, flags: &Overrides) -> ExitCode {
    let config = match load(file, flags) {
        Ok(c) => c,
        Err(e) => {
            complain(&e);
            return ExitCode::FAILURE;
        }
    };
    // The server's allocator settings (before its threads start); the
    // one-shot commands keep glibc's defaults, which suit a bulk `import`
    // better (large vectors reused, not mapped anew).
    crate::memory::tune();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            complain(&format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Listening before the load: a SIGTERM during it is kept.
        let shutdown = shutdown_signal();
        Application::build(config).await?.run(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "bug_escape_exporter", error = %e, "exporter failed");
            complain(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
