use std::process::ExitCode;

use clap::Parser;

use bug_escape_exporter::app::{Application, shutdown_signal};
use bug_escape_exporter::cli::{Cli, Command};
use bug_escape_exporter::config::{Config, Overrides, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything reads the environment (the log filter, the settings):
    // a `BUG_ESCAPE_*` value that is not UTF-8 is refused by name, never
    // altered or skipped.
    if let Err(e) = bug_escape_exporter::config::env::check_process() {
        complain(&format!("invalid configuration: {e}"));
        return config_failure(&cli.command);
    }
    bug_escape_exporter::logging::init(cli.log_level, cli.log_format);
    match cli.command {
        Command::Healthcheck { url, timeout } => healthcheck(&url, timeout),
        Command::Report {
            db,
            config,
            product,
            format,
        } => report(config.as_deref(), db, product.as_deref(), format),
        Command::Import {
            db,
            config,
            format,
            chunk_size,
            files,
        } => {
            let flags = Overrides {
                db,
                ..Overrides::default()
            };
            match load(config.as_deref(), &flags) {
                Ok(c) => ExitCode::from(bug_escape_exporter::cmd::import::run(
                    c, &files, format, chunk_size,
                )),
                Err(e) => {
                    complain(&e);
                    ExitCode::from(bug_escape_exporter::cmd::import::EXIT_ERROR)
                }
            }
        }
        Command::Sync {
            source,
            db,
            config,
            since,
            full,
        } => {
            let flags = Overrides {
                db,
                ..Overrides::default()
            };
            match load(config.as_deref(), &flags) {
                Ok(c) => ExitCode::from(bug_escape_exporter::sync::command::run(
                    c,
                    source,
                    bug_escape_exporter::sync::Options { since, full },
                )),
                Err(e) => {
                    complain(&e);
                    ExitCode::from(bug_escape_exporter::sync::command::EXIT_ERROR)
                }
            }
        }
        Command::Export {
            db,
            config,
            format,
            output,
        } => {
            let flags = Overrides {
                db,
                ..Overrides::default()
            };
            match load(config.as_deref(), &flags) {
                Ok(c) => ExitCode::from(bug_escape_exporter::cmd::export::run(
                    &c.db,
                    format,
                    output.as_deref(),
                )),
                Err(e) => {
                    complain(&e);
                    ExitCode::from(bug_escape_exporter::cmd::export::EXIT_ERROR)
                }
            }
        }
        Command::CheckConfig {
            config,
            web_config_file,
        } => match load(
            config.as_deref(),
            &Overrides {
                web_config_file,
                ..Overrides::default()
            },
        ) {
            Ok(c) => {
                say(&format!("configuration OK: stages {}", c.pipeline.names()));
                if let Some(file) = &c.web.file {
                    say(&format!(
                        "web configuration OK ({}): TLS {}, client certificates {}, {} basic-auth user(s)",
                        file.display(),
                        if c.web.tls.is_some() { "on" } else { "off" },
                        c.web.client_auth.map_or("none", |a| a.as_str()),
                        c.web.basic_auth_users.len()
                    ));
                }
                for warning in &c.web.warnings {
                    complain(&format!("warning: {warning}"));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                complain(&e.to_string());
                ExitCode::FAILURE
            }
        },
        Command::Serve {
            listen,
            telemetry_path,
            db,
            config,
            web_config_file,
        } => {
            let flags = Overrides {
                listen,
                telemetry_path,
                db,
                web_config_file,
            };
            let config = match load(config.as_deref(), &flags) {
                Ok(c) => c,
                Err(e) => {
                    complain(&e.to_string());
                    return ExitCode::FAILURE;
                }
            };
            // The server's allocator settings (before its threads start);
            // the one-shot commands keep glibc's defaults, which suit a bulk
            // `import` better (large vectors reused, not mapped anew).
            bug_escape_exporter::memory::tune();
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
                    tracing::error!(error = %e, "exporter failed");
                    complain(&format!("{e:#}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The exit status of `command` when its configuration cannot be used.
fn config_failure(command: &Command) -> ExitCode {
    match command {
        Command::Import { .. } | Command::Export { .. } => {
            ExitCode::from(bug_escape_exporter::cmd::import::EXIT_ERROR)
        }
        Command::Sync { .. } => ExitCode::from(bug_escape_exporter::sync::command::EXIT_ERROR),
        _ => ExitCode::FAILURE,
    }
}

/// `healthcheck`: 0 when `url` answers 200, else 1 with the reason on stderr.
fn healthcheck(url: &str, timeout: std::time::Duration) -> ExitCode {
    use bug_escape_exporter::healthcheck::{probe, verdict};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            complain(&format!("unreachable: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(probe(url, timeout));
    // A name lookup still running on the blocking pool after the timeout
    // must not hold the exit.
    runtime.shutdown_background();
    match verdict(url, &result) {
        (true, line) => {
            say(&line);
            ExitCode::SUCCESS
        }
        (false, line) => {
            complain(&line);
            ExitCode::FAILURE
        }
    }
}

/// `report`: the escape-rate report of a database, read-only.
fn report(
    file: Option<&std::path::Path>,
    db: Option<std::path::PathBuf>,
    product: Option<&str>,
    format: bug_escape_exporter::cli::ReportFormat,
) -> ExitCode {
    use bug_escape_exporter::report;
    use std::io::{IsTerminal, Write};
    let flags = Overrides {
        db,
        ..Overrides::default()
    };
    let config = match load(file, &flags) {
        Ok(c) => c,
        Err(e) => {
            complain(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let built = match report::load(&config, product) {
        Ok(r) => r,
        Err(e) => {
            complain(&format!("{e:#}"));
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let colour = report::colour_wanted(
        stdout.is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let mut out = stdout.lock();
    match report::write(&mut out, &built, format, colour).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            complain(&format!("cannot write the report: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn load(file: Option<&std::path::Path>, flags: &Overrides) -> Result<Config, String> {
    let settings =
        Settings::load(file, flags).map_err(|e| format!("invalid configuration: {e}"))?;
    Config::from_settings(settings).map_err(|e| format!("invalid configuration: {e}"))
}

/// Prints to stdout; a failing stdout is ignored (`println!` would panic).
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints to stderr; a failing stderr is ignored (`eprintln!` would panic).
fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
