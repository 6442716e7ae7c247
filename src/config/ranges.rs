//! The range of every numeric setting and the duplicate check of every list:
//! one table each, read by validation (so `check-config`, `serve` and the
//! other commands refuse the same values), by the environment layer (whose
//! errors then name the variable) and by the test that holds
//! docs/configuration.md to them.

use std::time::Duration;

use super::ConfigError;

/// A bound count: a whole number in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// The key as the documentation names it (`bands.min_defects` also
    /// bounds `products.<product>.bands.min_defects`).
    pub key: &'static str,
    pub min: u64,
    pub max: u64,
}

impl Count {
    /// Whether `n` is in range.
    pub fn contains(&self, n: u64) -> bool {
        (self.min..=self.max).contains(&n)
    }

    /// The range as the documentation and the errors write it.
    pub fn describe(&self) -> String {
        format!("{} to {}", self.min, self.max)
    }

    /// `n` at `key` (which may be a per-product form of this key), or an
    /// error naming `key` and the range.
    pub fn check(&self, key: &str, n: u64) -> Result<(), ConfigError> {
        if self.contains(n) {
            return Ok(());
        }
        Err(ConfigError(format!(
            "{key}: {n} is out of range: expected a whole number from {}",
            self.describe()
        )))
    }
}

const GIB: u64 = 1 << 30;

/// Every count setting. Bytes stop at 1 GiB (a queue or a body beyond that is
/// a mistake, and the write queue's semaphore counts in `u32`); connections
/// at 100,000 (each is a task and a file descriptor; tokio's semaphore panics
/// past 2^61).
pub const COUNTS: &[Count] = &[
    count("max_body_bytes", 1, GIB),
    count("write_queue_bytes", 1, GIB),
    count("unauthenticated_bytes", 1, GIB),
    count("max_connections", 1, 100_000),
    count("max_releases", 1, 1_000),
    count("max_products", 1, 100_000),
    count("recent_releases", 1, 1_000),
    count("bands.min_defects", 0, 1_000_000_000),
    count("under_reporting.min_predecessors", 1, 1_000),
    count("sync.max_attempts", 1, 100),
    count("sync.page_size", 1, 100),
    count("sync.max_pages", 1, 1_000_000),
    count("sync.max_response_bytes", 1024, GIB),
];

const fn count(key: &'static str, min: u64, max: u64) -> Count {
    Count { key, min, max }
}

/// The range of the count `key`, when it is one.
pub fn count_range(key: &str) -> Option<Count> {
    COUNTS.iter().copied().find(|c| c.key == key)
}

/// `n` at `key` against the range of `range_key` (its documented name).
pub fn check_count(range_key: &str, key: &str, n: u64) -> Result<(), ConfigError> {
    match count_range(range_key) {
        Some(c) => c.check(key, n),
        None => Ok(()),
    }
}

/// A bound duration: above zero, at most `max` (which also keeps every
/// `Instant + duration` the exporter computes from overflowing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The keys it bounds, as the documentation names them.
    pub keys: &'static [&'static str],
    pub max: Duration,
    /// `max` as written in the documentation and the errors.
    pub max_text: &'static str,
}

impl Span {
    /// The range as the documentation and the errors write it.
    pub fn describe(&self) -> String {
        format!("above 0, at most {}", self.max_text)
    }

    /// `text` at `key` as a duration in range, or an error naming both.
    pub fn parse(&self, key: &str, text: &str) -> Result<Duration, ConfigError> {
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() && d <= self.max => Ok(d),
            Ok(_) => Err(ConfigError(format!(
                "{key}: `{text}` is out of range: expected a duration {}",
                self.describe()
            ))),
            Err(_) => Err(ConfigError(format!(
                "{key}: `{text}` is not a duration like `5s` ({})",
                self.describe()
            ))),
        }
    }
}

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// How long a request, a connection or a vendor call may take.
pub const REQUEST_TIME: Span = Span {
    keys: &[
        "write_queue_wait",
        "write_timeout",
        "header_read_timeout",
        "body_read_timeout",
        "idle_timeout",
        "sync.timeout",
        "sync.retry_backoff",
        "webhooks.sentry.api_timeout",
    ],
    max: Duration::from_secs(HOUR),
    max_text: "1h",
};

/// The longest wait a vendor's rate limit may impose on a pass.
pub const RATE_LIMIT_WAIT: Span = Span {
    keys: &["sync.max_wait"],
    max: Duration::from_secs(DAY),
    max_text: "1d",
};

/// How often `serve` reconciles a source.
pub const SYNC_INTERVAL: Span = Span {
    keys: &[
        "webhooks.github.sync_interval",
        "webhooks.gitlab.sync_interval",
        "webhooks.jira.sync_interval",
        "webhooks.sentry.sync_interval",
    ],
    max: Duration::from_secs(30 * DAY),
    max_text: "30d",
};

/// How long one sync pass may take, first call to last.
pub const PASS_TIME: Span = Span {
    keys: &["sync.pass_timeout"],
    max: Duration::from_secs(30 * DAY),
    max_text: "30d",
};

/// Maturity ages: at most ten years.
pub const AGE: Span = Span {
    keys: &["maturity_ages"],
    max: Duration::from_secs(3650 * DAY),
    max_text: "3650d",
};

/// How long a vendor keeps issues: at most a hundred years (a long one is
/// how "forever" is written).
pub const RETENTION: Span = Span {
    keys: &["webhooks.sentry.retention"],
    max: Duration::from_secs(36500 * DAY),
    max_text: "36500d",
};

/// Every duration range.
pub const SPANS: &[Span] = &[
    REQUEST_TIME,
    RATE_LIMIT_WAIT,
    PASS_TIME,
    SYNC_INTERVAL,
    AGE,
    RETENTION,
];

/// Refuses an entry of the list at `key` listed twice, naming both places
/// and the entry (never use this for a list of secrets). Entries are
/// compared by `same` (lower-cased for case-insensitive lists).
pub fn unique<'a, K: PartialEq>(
    key: &str,
    items: impl IntoIterator<Item = &'a str>,
    same: impl Fn(&str) -> K,
) -> Result<(), ConfigError> {
    let mut seen: Vec<K> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let k = same(item);
        if let Some(j) = seen.iter().position(|s| *s == k) {
            return Err(ConfigError(format!(
                "{key}[{i}]: `{item}` is listed twice (also {key}[{j}])"
            )));
        }
        seen.push(k);
    }
    Ok(())
}

/// [`unique`] with entries compared as written.
pub fn unique_exact<'a>(
    key: &str,
    items: impl IntoIterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    unique(key, items, str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_spans_name_the_key_and_the_range() {
        let c = count_range("max_connections").expect("a count");
        assert!(c.check("max_connections", 512).is_ok());
        let e = c.check("max_connections", 1 << 61).unwrap_err().0;
        assert!(
            e.contains("max_connections") && e.contains("1 to 100000"),
            "{e}"
        );
        assert!(check_count("bands.min_defects", "products.p.bands.min_defects", 0).is_ok());
        assert_eq!(
            REQUEST_TIME.parse("idle_timeout", "2s").unwrap(),
            Duration::from_secs(2)
        );
        for text in ["0s", "2h", "500000000years", "soon", ""] {
            let e = REQUEST_TIME.parse("idle_timeout", text).unwrap_err().0;
            assert!(
                e.contains("idle_timeout") && e.contains("at most 1h"),
                "{e}"
            );
        }
        let keys: Vec<&str> = COUNTS.iter().map(|c| c.key).collect();
        unique_exact("COUNTS", keys).expect("each key once");
    }

    #[test]
    fn a_repeated_entry_names_both_places() {
        let e = unique_exact("maturity_ages", ["30d", "90d", "30d"])
            .unwrap_err()
            .0;
        assert!(
            e.contains("maturity_ages[2]") && e.contains("maturity_ages[0]") && e.contains("30d"),
            "{e}"
        );
        let e = unique("labels", ["Bug", "bug"], str::to_lowercase)
            .unwrap_err()
            .0;
        assert!(e.contains("labels[1]"), "{e}");
        assert!(unique_exact("teams", ["a", "b"]).is_ok());
    }
}
