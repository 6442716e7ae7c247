//! What the HTTP server is told: the listen address, the telemetry path
//! (clear of the other routes), the size and count limits, the request
//! timeouts, and the API token (set, file, or none; never shown).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, Settings, ranges};

/// Paths the exporter serves besides the metrics, and the prefixes of its
/// write routes: the telemetry path may be none of them.
const RESERVED_PATHS: &[&str] = &["/", "/healthz", "/readyz"];
const RESERVED_PREFIXES: &[&str] = &["/api/", "/webhooks/"];

/// `telemetry_path`: absolute, a plain path (no query, fragment, spaces or
/// `{`, which the router would read as a parameter), no clash with a route.
fn check_telemetry_path(p: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError(format!("telemetry_path: `{p}` {why}")));
    if !p.starts_with('/') {
        return bad("must start with `/`");
    }
    if p.len() > 1 && p.ends_with('/') {
        return bad("must not end with `/`");
    }
    if p.contains("//")
        || p.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "?#{}*:%".contains(c))
    {
        return bad("must be a plain path (no `//`, `?`, `#`, `{`, `}`, `*`, `:`, `%` or spaces)");
    }
    if RESERVED_PATHS.contains(&p)
        || RESERVED_PREFIXES
            .iter()
            .any(|r| p.starts_with(r) || p == r.trim_end_matches('/'))
    {
        return bad("is taken by another route");
    }
    Ok(())
}

/// The server settings validated: the address and the request timeouts
/// (the counts and byte limits are only checked; they stay as written).
pub(super) struct Server {
    pub listen: SocketAddr,
    pub write_queue_wait: Duration,
    pub write_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Server {
    /// Checks the address, the telemetry path, the limits and the timeouts,
    /// in that order.
    pub(super) fn check(s: &Settings) -> Result<Self, ConfigError> {
        let Ok(listen) = s.listen.parse::<SocketAddr>() else {
            return Err(ConfigError(format!(
                "listen: `{}` is not an ADDR:PORT",
                s.listen
            )));
        };
        check_telemetry_path(&s.telemetry_path)?;
        check_limits(s)?;
        let duration = |key: &str, v: &str| ranges::REQUEST_TIME.parse(key, v);
        // Checked in this order, so one file with several bad values names
        // the same one first as it always did.
        let write_queue_wait = duration("write_queue_wait", &s.write_queue_wait)?;
        let write_timeout = duration("write_timeout", &s.write_timeout)?;
        let header_read_timeout = duration("header_read_timeout", &s.header_read_timeout)?;
        let idle_timeout = duration("idle_timeout", &s.idle_timeout)?;
        let body_read_timeout = duration("body_read_timeout", &s.body_read_timeout)?;
        Ok(Self {
            listen,
            write_queue_wait,
            write_timeout,
            header_read_timeout,
            body_read_timeout,
            idle_timeout,
        })
    }
}

/// Counts in their ranges, and room for one largest request in the write
/// queue and in the unauthenticated budget.
fn check_limits(s: &Settings) -> Result<(), ConfigError> {
    for (key, v) in [
        ("max_releases", s.max_releases),
        ("max_products", s.max_products),
        ("recent_releases", s.recent_releases),
        ("max_body_bytes", s.max_body_bytes),
        ("write_queue_bytes", s.write_queue_bytes),
        ("unauthenticated_bytes", s.unauthenticated_bytes),
        ("max_connections", s.max_connections),
    ] {
        ranges::check_count(key, key, u64::try_from(v).unwrap_or(u64::MAX))?;
    }
    for (key, v) in [
        ("write_queue_bytes", s.write_queue_bytes),
        ("unauthenticated_bytes", s.unauthenticated_bytes),
    ] {
        if v < s.max_body_bytes {
            return Err(ConfigError(format!(
                "{key}: {v} is smaller than max_body_bytes ({}); one request must fit",
                s.max_body_bytes
            )));
        }
    }
    Ok(())
}

/// The API token, from `api_token` or else `api_token_file`. A token that
/// is set but blank is an error, never a disabled token.
pub(super) fn api_token(
    token: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    match (token, file) {
        (Some(t), _) if t.trim().is_empty() => Err(ConfigError(
            "api_token: is set (`api_token` or BUG_ESCAPE_API_TOKEN) but empty or white space only; set a token or unset it".into(),
        )),
        (Some(t), _) => Ok(Some(header_safe("api_token", t.trim())?.to_owned())),
        (None, Some(path)) => token_file(path).map(Some),
        (None, None) => Ok(None),
    }
}

/// The token held in `path`, trimmed; an empty file is an error.
fn token_file(path: &Path) -> Result<String, ConfigError> {
    let t = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "api_token_file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let t = t.trim();
    if t.is_empty() {
        return Err(ConfigError(format!(
            "api_token_file: {} holds no token (empty or white space only)",
            path.display()
        )));
    }
    Ok(header_safe("api_token_file", t)?.to_owned())
}

/// A token sent or compared in an HTTP header: no control characters (a
/// client could never send it), named by key, never shown.
pub fn header_safe<'a>(key: &str, token: &'a str) -> Result<&'a str, ConfigError> {
    if token.chars().any(char::is_control) {
        return Err(ConfigError(format!(
            "{key}: holds a control character, which no HTTP header can carry (the value is not shown)"
        )));
    }
    Ok(token)
}
