//! `[sync]`: how `sync` (and `serve`'s periodic reconcile) behaves towards
//! every vendor's REST API: call timeout, retries and their backoff, how long
//! a rate limit may make it wait, page size, and the bounds no server can
//! push a pass past: pages per pass, the pass's deadline, the size of one
//! answer. What each source reads and where is in its own table
//! (`[webhooks.github] repositories`, `api_url`, …).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[sync]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSettings {
    /// Time allowed for one API call (connect, send, the whole answer).
    pub timeout: String,
    /// Tries of one call that fails with a 5xx, a timeout or a broken
    /// connection before the pass stops (at least 1).
    pub max_attempts: u32,
    /// Wait before the second try, doubled before each next one.
    pub retry_backoff: String,
    /// Longest wait a rate limit (`Retry-After`, `x-ratelimit-reset`) may
    /// impose; a longer one stops the pass with a message saying when to retry.
    pub max_wait: String,
    /// Items asked per page (`per_page`), 1..=100.
    pub page_size: u32,
    /// Listing pages one pass may read (every scope and feed together);
    /// more ends the pass with an error, so a server that never stops
    /// paging cannot hold it forever.
    pub max_pages: u64,
    /// Time one pass may take from its first call to its last; past it the
    /// pass ends with an error (what was committed stays).
    pub pass_timeout: String,
    /// Largest answer body read, in bytes; a larger one ends the pass.
    pub max_response_bytes: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            timeout: "30s".into(),
            max_attempts: 5,
            retry_backoff: "1s".into(),
            max_wait: "15m".into(),
            page_size: 100,
            max_pages: 10_000,
            pass_timeout: "6h".into(),
            max_response_bytes: 32 << 20,
        }
    }
}

/// Validated `[sync]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub max_wait: Duration,
    pub page_size: u32,
    pub max_pages: u64,
    pub pass_timeout: Duration,
    pub max_response_bytes: u64,
}

impl SyncSettings {
    /// Validates the settings; errors name the key.
    pub fn validate(&self) -> Result<SyncConfig, ConfigError> {
        use super::ranges::{PASS_TIME, RATE_LIMIT_WAIT, REQUEST_TIME, check_count};
        check_count(
            "sync.max_attempts",
            "sync.max_attempts",
            self.max_attempts.into(),
        )?;
        // 100: the vendors' largest page.
        check_count("sync.page_size", "sync.page_size", self.page_size.into())?;
        check_count("sync.max_pages", "sync.max_pages", self.max_pages)?;
        check_count(
            "sync.max_response_bytes",
            "sync.max_response_bytes",
            self.max_response_bytes,
        )?;
        Ok(SyncConfig {
            timeout: REQUEST_TIME.parse("sync.timeout", &self.timeout)?,
            max_attempts: self.max_attempts,
            retry_backoff: REQUEST_TIME.parse("sync.retry_backoff", &self.retry_backoff)?,
            max_wait: RATE_LIMIT_WAIT.parse("sync.max_wait", &self.max_wait)?,
            page_size: self.page_size,
            max_pages: self.max_pages,
            pass_timeout: PASS_TIME.parse("sync.pass_timeout", &self.pass_timeout)?,
            max_response_bytes: self.max_response_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        let c = SyncSettings::default().validate().expect("valid");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.page_size, 100);
        assert_eq!(c.max_response_bytes, 32 * 1024 * 1024);
        assert_eq!(c.pass_timeout, Duration::from_secs(6 * 3600));
        for (s, key) in [
            (
                SyncSettings {
                    max_attempts: 0,
                    ..SyncSettings::default()
                },
                "sync.max_attempts",
            ),
            (
                SyncSettings {
                    page_size: 101,
                    ..SyncSettings::default()
                },
                "sync.page_size",
            ),
            (
                SyncSettings {
                    retry_backoff: "0s".into(),
                    ..SyncSettings::default()
                },
                "sync.retry_backoff",
            ),
            (
                SyncSettings {
                    max_wait: "later".into(),
                    ..SyncSettings::default()
                },
                "sync.max_wait",
            ),
            (
                SyncSettings {
                    max_pages: 0,
                    ..SyncSettings::default()
                },
                "sync.max_pages",
            ),
            (
                SyncSettings {
                    pass_timeout: "soon".into(),
                    ..SyncSettings::default()
                },
                "sync.pass_timeout",
            ),
            (
                SyncSettings {
                    max_response_bytes: 10,
                    ..SyncSettings::default()
                },
                "sync.max_response_bytes",
            ),
        ] {
            let e = s.validate().unwrap_err();
            assert!(e.0.contains(key), "{e}");
        }
    }
}
