use std::process::ExitCode;

use clap::Parser;

use bug_escape_exporter::cli::Cli;
use bug_escape_exporter::cmd;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything reads the environment (the log filter, the settings):
    // a `BUG_ESCAPE_*` value that is not UTF-8 is refused by name, never
    // altered or skipped.
    if let Err(e) = bug_escape_exporter::config::env::check_process() {
        cmd::complain(&format!("invalid configuration: {e}"));
        return cmd::config_failure(&cli.command);
    }
    bug_escape_exporter::logging::init(cli.log_level, cli.log_format);
    cmd::run(cli.command)
}
