//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Prometheus exporter of the bug escape rate.
#[derive(Debug, Parser)]
#[command(name = "bug-escape-exporter", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter.
    Serve {
        /// Address to listen on (ADDR:PORT); default 0.0.0.0:10941.
        #[arg(long)]
        listen: Option<String>,
        /// SQLite database file; default ./bug-escape.db.
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print the effective pipeline.
    CheckConfig {
        /// TOML configuration file (the embedded defaults when absent).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}
