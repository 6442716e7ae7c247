//! The sub-commands, one file each: what `main` dispatches to once the
//! command line is parsed and logging runs. Each loads its configuration,
//! does its work and turns the outcome into an exit status and a line on
//! stdout or stderr. `import`, `export` and `sync` are run by their modules.

pub mod backup;
pub mod check_config;
pub mod export;
pub mod healthcheck;
pub mod import;
pub mod report;
pub mod serve;
pub mod sync;

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Command, FileFormat};
use crate::config::{Config, Overrides, Settings};

/// Runs `command` and returns its exit status.
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Healthcheck { url, timeout } => healthcheck::run(&url, timeout),
        report @ Command::Report { .. } => report::command(report),
        Command::Import {
            db,
            config,
            format,
            chunk_size,
            files,
        } => match load(config.as_deref(), &db_only(db)) {
            Ok(c) => ExitCode::from(import::run(c, &files, format.map(file_format), chunk_size)),
            Err(e) => fail(&e, import::EXIT_ERROR),
        },
        Command::Sync {
            source,
            db,
            config,
            since,
            full,
        } => match load(config.as_deref(), &db_only(db)) {
            Ok(c) => ExitCode::from(sync::run(
                c,
                source,
                crate::sources::Options { since, full },
            )),
            Err(e) => fail(&e, sync::EXIT_ERROR),
        },
        Command::Export {
            db,
            config,
            format,
            output,
        } => match load(config.as_deref(), &db_only(db)) {
            Ok(c) => ExitCode::from(export::run(&c.db, file_format(format), output.as_deref())),
            Err(e) => fail(&e, import::EXIT_ERROR),
        },
        Command::Backup {
            db,
            config,
            force,
            out,
        } => match load(config.as_deref(), &db_only(db)) {
            Ok(c) => ExitCode::from(backup::run(&c.db, &out, force)),
            Err(e) => fail(&e, backup::EXIT_ERROR),
        },
        Command::CheckConfig {
            config,
            web_config_file,
        } => check_config::run(config.as_deref(), web_config_file),
        Command::Serve {
            listen,
            telemetry_path,
            db,
            config,
            web_config_file,
        } => serve::run(
            config.as_deref(),
            &Overrides {
                listen,
                telemetry_path,
                db,
                web_config_file,
            },
        ),
    }
}

/// The exit status of `command` when its configuration cannot be used.
pub fn config_failure(command: &Command) -> ExitCode {
    match command {
        Command::Import { .. } | Command::Export { .. } | Command::Backup { .. } => {
            ExitCode::from(import::EXIT_ERROR)
        }
        Command::Sync { .. } => ExitCode::from(sync::EXIT_ERROR),
        _ => ExitCode::FAILURE,
    }
}

/// `import`'s and `export`'s format, as the import module names it.
fn file_format(f: FileFormat) -> crate::store::format::Format {
    match f {
        FileFormat::Ndjson => crate::store::format::Format::Ndjson,
        FileFormat::Csv => crate::store::format::Format::Csv,
    }
}

/// The flags of a command that overrides only the database.
fn db_only(db: Option<std::path::PathBuf>) -> Overrides {
    Overrides {
        db,
        ..Overrides::default()
    }
}

/// Says `e` on stderr and exits with `code`.
fn fail(e: &str, code: u8) -> ExitCode {
    complain(e);
    ExitCode::from(code)
}

/// The configuration of `file` (the embedded defaults when `None`) with the
/// command line's `flags` over it.
fn load(file: Option<&Path>, flags: &Overrides) -> Result<Config, String> {
    for warning in crate::config::env::process_near_misses() {
        tracing::warn!("{warning}");
    }
    let settings =
        Settings::load(file, flags).map_err(|e| format!("invalid configuration: {e}"))?;
    Config::from_settings(settings).map_err(|e| format!("invalid configuration: {e}"))
}

/// Whether `e`, or an error it wraps, is a write into a pipe whose reader
/// has gone (`EPIPE`: `export | head -1`). Rust ignores `SIGPIPE`, so the
/// write fails instead of ending the process.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
            || cause.downcast_ref::<csv::Error>().is_some_and(
                |c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
    })
}

/// Ends the process as `cat` ends when its reader goes away: without a
/// word, killed by `SIGPIPE` (status 141 in a shell, so `set -o pipefail`
/// sees an output cut short, as it does for `cat`).
pub fn end_at_closed_pipe() -> ! {
    // SAFETY: restores the default action of SIGPIPE and raises it; no
    // handler runs, the process ends.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached; the status a shell would show if it were.
    std::process::exit(141)
}

/// Prints to stdout; a failing stdout is ignored (`println!` would panic).
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints to stderr; a failing stderr is ignored (`eprintln!` would panic).
pub fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
