//! Command-line interface: clap's argument types only. It reads nothing
//! of the crate but the build's version, `model::time`'s parser (for
//! `sync --since`), the report's `--releases` parser and the sources' registry (`sync <source>` takes its
//! names, so a new source needs no line here); [`crate::cmd`] turns its
//! values into each module's types.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Prometheus exporter of the bug escape rate.
#[derive(Debug, Parser)]
#[command(name = "bug-escape-exporter", version = crate::build::VERSION, long_version = crate::build::LONG_VERSION, about)]
pub struct Cli {
    /// Lowest level logged: debug, info, warn or error. `BUG_ESCAPE_LOG`
    /// (an `EnvFilter` directive such as `info,tower_http=debug`) overrides it.
    #[arg(long = "log.level", global = true, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Log line format on stderr: logfmt or json.
    #[arg(long = "log.format", global = true, value_enum, default_value_t = LogFormat::Logfmt)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The level's name as `tracing` filters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` pairs, as Prometheus and its exporters write.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// A text argument read through `parse`, refused by name when it is not
/// UTF-8 (clap's own error does not say which argument, or which variable).
#[derive(Clone)]
struct Utf8<T>(fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Utf8<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .and_then(|a| a.get_long().map(|l| format!("--{l}")))
            .unwrap_or_else(|| "an argument".into());
        let env = arg
            .and_then(clap::Arg::get_env)
            .map(|e| format!(" (or {})", e.to_string_lossy()))
            .unwrap_or_default();
        let fail = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name}{env}: {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| fail("not valid UTF-8 (not shown)".into()))?;
        (self.0)(text).map_err(fail)
    }
}

/// Text as it is.
fn text(v: &str) -> Result<String, String> {
    Ok(v.to_owned())
}

/// `healthcheck --timeout`: a duration, at most an hour.
fn timeout(v: &str) -> Result<Duration, String> {
    match humantime::parse_duration(v) {
        Ok(d) if d <= Duration::from_secs(3600) => Ok(d),
        Ok(_) => Err(format!("`{v}` is out of range: at most 1h")),
        Err(e) => Err(format!("`{v}` is not a duration like `2s`: {e}")),
    }
}

/// `sync --since`: a vendor time format (RFC 3339, a date).
fn parse_since(v: &str) -> Result<i64, String> {
    crate::model::time::parse_time(v).ok_or_else(|| {
        format!("`{v}` is not a time (RFC 3339 such as 2024-05-01T00:00:00Z, or a date)")
    })
}

/// `healthcheck --url` when none is given: the default listener's readiness.
pub const DEFAULT_HEALTHCHECK_URL: &str = "http://127.0.0.1:10941/readyz";

/// `import --format` and `export --format`: the two formats `import` reads
/// and `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// One JSON object per line.
    Ndjson,
    /// A header row naming the fields, then one row per event.
    Csv,
}

/// `import --chunk-size` when none is given: events sorted and folded at
/// once (the whole import is one transaction), large enough that each
/// defect's events mostly meet in one chunk and the rows are written in long
/// runs of key order, small enough that a chunk's parsed events (a few
/// hundred bytes each) stay a bounded amount of memory.
pub const DEFAULT_CHUNK_SIZE: usize = 250_000;

/// `report --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

/// `report --releases`: every stored release (`all`) or the newest N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleasesArg(pub Option<usize>);

fn releases_arg(value: &str) -> Result<ReleasesArg, String> {
    crate::metrics::report::parse_releases(value).map(ReleasesArg)
}

/// `report --limit`: escapes shown, 1 to [`crate::store::read::MAX_ESCAPES`].
fn limit_arg(value: &str) -> Result<usize, String> {
    let max = crate::store::read::MAX_ESCAPES;
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("must be a whole number from 1 to {max}"))
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the exporter.
    Serve {
        /// Address to listen on (ADDR:PORT); default 0.0.0.0:10941. `--listen`
        /// is an alias.
        #[arg(
            long = "web.listen-address",
            visible_alias = "listen",
            value_name = "ADDR:PORT",
            value_parser = Utf8(text)
        )]
        listen: Option<String>,
        /// Path under which the metrics are served; default /metrics.
        #[arg(long = "web.telemetry-path", value_name = "PATH", value_parser = Utf8(text))]
        telemetry_path: Option<String>,
        /// SQLite database file; default ./bug-escape.db.
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Web configuration file (YAML, the exporter-toolkit format that
        /// node_exporter reads): TLS, client certificates, basic auth.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Validate a configuration file and print the effective pipeline.
    CheckConfig {
        /// TOML configuration file (the embedded defaults when absent).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Web configuration file (YAML, exporter-toolkit format) to check too.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Print the escape rate of every exported release and the pooled recent
    /// rate of every product, from the database read-only (safe while `serve`
    /// runs on it): the same numbers as /metrics.
    Report {
        /// SQLite database file; default ./bug-escape.db (the `db` key).
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file: give `serve`'s, so stages, bands and owners match.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only this product.
        #[arg(long, value_name = "PRODUCT", value_parser = Utf8(text))]
        product: Option<String>,
        /// Output: an aligned table (coloured by band on a terminal unless
        /// NO_COLOR is set), JSON, or CSV of the release rows.
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Releases of each product to show: `all` stored ones or the newest
        /// N, computed from the database as /metrics would show them; default:
        /// the exported ones (the newest `max_releases`).
        #[arg(long, value_name = "all|N", value_parser = releases_arg, conflicts_with = "escapes")]
        releases: Option<ReleasesArg>,
        /// List the escapes of one release (`--product` and `--release`):
        /// each escaped defect once, a link group with every record folded
        /// into it, earliest found first.
        #[arg(long, requires_all = ["product", "release"])]
        escapes: bool,
        /// The release whose escapes `--escapes` lists, as /metrics labels it.
        #[arg(long, value_name = "RELEASE", value_parser = Utf8(text), requires = "escapes")]
        release: Option<String>,
        /// Escapes shown (1 to 200; with `--escapes`).
        #[arg(long, value_name = "N", default_value_t = crate::store::read::DEFAULT_ESCAPES,
              value_parser = limit_arg,
              requires = "escapes")]
        limit: usize,
        /// Escapes skipped first, to page through a long list (with `--escapes`).
        #[arg(long, value_name = "N", default_value_t = 0, requires = "escapes")]
        offset: usize,
    },
    /// Import defect events and release times from NDJSON or CSV files
    /// (`-` for standard input) into the database, checked and applied as
    /// `POST /api/v1/events` would; the rows of an `export` are taken back as
    /// stored. Lines over 1 MiB and malformed CSV rows are rejected by line.
    /// Refused while `serve` runs on the same database. Exit 0 when every
    /// line was imported, 1 when some were rejected (the others are
    /// imported), 2 on usage or I/O errors or an export of a newer format.
    Import {
        /// SQLite database file; default ./bug-escape.db (or the `db` key).
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file (stages, causes, products, release rules).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Format of every input; default: by extension (.ndjson, .jsonl,
        /// .csv), NDJSON for standard input.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// Events sorted and folded in memory at once (a few hundred bytes
        /// each): lower it to bound memory, raise it for fewer, longer runs
        /// of writes. The import is one transaction whatever its value.
        #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE, value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u32).range(1..=10_000_000), |n| n as usize))]
        chunk_size: usize,
        /// Files to import, in order; `-` reads standard input.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Export every stored defect (deleted ones included) and release time in
    /// the format `import` restores exactly (format version 2 on the first
    /// line), from one consistent snapshot (safe while `serve` runs).
    Export {
        /// SQLite database file; default ./bug-escape.db (or the `db` key).
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file (only its `db` key is read).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "ndjson")]
        format: FileFormat,
        /// Write to this file (replaced whole once complete) instead of
        /// standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Copy the database to OUT consistently, safe while `serve` runs on it
    /// (SQLite's `VACUUM INTO` from a read-only snapshot; `serve`'s lock is
    /// not needed). The copy is written beside OUT, checked with
    /// `integrity_check` and renamed onto OUT. Exit 0 when written, 2 on
    /// errors (OUT is then untouched).
    Backup {
        /// SQLite database file; default ./bug-escape.db (or the `db` key).
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file (only its `db` key is read).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Replace OUT when it exists (refused otherwise).
        #[arg(long)]
        force: bool,
        /// The copy to write.
        #[arg(value_name = "OUT")]
        out: PathBuf,
    },
    /// Backfill and reconcile from a vendor's REST API (GitHub, GitLab, Jira,
    /// Sentry): list the issues (and releases) of the configured repositories
    /// or projects updated since the last successful sync (everything the
    /// first time) and apply them as the webhooks would. Refused while `serve` runs on the same database (set
    /// `sync_interval` to reconcile inside it). A pass cut short resumes from
    /// its last committed page. Exit 0 when complete, 1 when some items were
    /// rejected (the others are applied), 2 on usage, configuration, database
    /// or API errors.
    Sync {
        /// The source to read.
        #[arg(value_enum)]
        source: crate::sources::Source,
        /// SQLite database file; default ./bug-escape.db (or the `db` key).
        #[arg(long)]
        db: Option<PathBuf>,
        /// TOML configuration file (repositories, API URL, conventions, …).
        #[arg(long)]
        config: Option<PathBuf>,
        /// List the issues updated since this time (RFC 3339, or a date
        /// `2024-05-01`) instead of since the last sync.
        #[arg(long, value_name = "TIME", value_parser = Utf8(parse_since))]
        since: Option<i64>,
        /// List every issue whatever the last sync, and delete the stored ones
        /// the vendor no longer has (deleted, transferred away, merged).
        #[arg(long, conflicts_with = "since")]
        full: bool,
    },
    /// Ask a running exporter's /readyz: exit 0 when it answers 200, 1 when
    /// it answers anything else or cannot be reached (for container health
    /// checks). http:// only.
    Healthcheck {
        /// URL to ask.
        #[arg(
            long,
            env = "BUG_ESCAPE_HEALTHCHECK_URL",
            default_value = DEFAULT_HEALTHCHECK_URL,
            value_name = "URL",
            value_parser = Utf8(text)
        )]
        url: String,
        /// Time allowed in all (connect, send, answer), e.g. 2s or 500ms.
        #[arg(long, default_value = "2s", value_parser = Utf8(timeout), value_name = "DURATION")]
        timeout: Duration,
    },
}
