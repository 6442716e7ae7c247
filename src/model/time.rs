//! Timestamps: RFC 3339 (and the vendors' formats) in, milliseconds since
//! the Unix epoch inside, RFC 3339 out.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};

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

/// Parses the time formats vendors send: RFC 3339 (GitHub, Sentry), GitLab's
/// `2020-06-05 08:09:16 UTC`, Jira's `2013-03-27T16:53:58.301+0000`, and a date
/// alone (midnight UTC).
pub fn parse_time(v: &str) -> Option<Millis> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp_millis());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f %z"] {
        if let Ok(t) = DateTime::parse_from_str(v, f) {
            return Some(t.timestamp_millis());
        }
    }
    if let Some(naive) = v.strip_suffix(" UTC") {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f") {
            return Some(Utc.from_utc_datetime(&t).timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Some(
            Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?)
                .timestamp_millis(),
        );
    }
    None
}

/// `ms` as an RFC 3339 time in UTC (`Z`), showing the second as `digits`
/// says (`Secs` drops the fraction, `AutoSi` shows what there is): the one
/// formatter of times the exporter writes. `None` past chrono's calendar.
pub fn format_rfc3339(ms: Millis, digits: SecondsFormat) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(digits, true))
}
