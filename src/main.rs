use std::process::ExitCode;

use clap::Parser;

use bug_escape_exporter::app::{Application, shutdown_signal};
use bug_escape_exporter::cli::{Cli, Command};
use bug_escape_exporter::config::{Config, Overrides, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BUG_ESCAPE_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .json()
        .init();
    match cli.command {
        Command::CheckConfig { config } => match load(config.as_deref(), &Overrides::default()) {
            Ok(c) => {
                println!("configuration OK: stages {}", c.pipeline.names());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { listen, db, config } => {
            let config = match load(config.as_deref(), &Overrides { listen, db }) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(async {
                Application::build(config)
                    .await?
                    .run(shutdown_signal())
                    .await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "exporter failed");
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(file: Option<&std::path::Path>, flags: &Overrides) -> Result<Config, String> {
    let settings = Settings::load(file, flags).map_err(|e| e.to_string())?;
    Config::from_settings(settings).map_err(|e| format!("invalid configuration: {e}"))
}
