//! Timestamps: RFC 3339 in, milliseconds since the Unix epoch inside.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// How far in the future an `updated_at`/`found_at` may be (clock skew).
pub const MAX_FUTURE_MS: Millis = 5 * 60 * 1000;

/// Now, in milliseconds.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(v: &str) -> Result<Millis, String> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("`{v}` is not an RFC 3339 time ({e})"))
}

/// `ms` as an RFC 3339 time in UTC (`Z`), showing the second as `digits`
/// says (`Secs` drops the fraction, `AutoSi` shows what there is): the one
/// formatter of times the exporter writes. `None` past chrono's calendar.
pub fn format_rfc3339(ms: Millis, digits: SecondsFormat) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(digits, true))
}
