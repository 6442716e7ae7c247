//! `[sync]`: how `sync` (and `serve`'s periodic reconcile) behaves towards
//! every vendor's REST API: call timeout, retries and their backoff, how long
//! a rate limit may make it wait, page size. What each source reads and where
//! is in its own table (`[webhooks.github] repositories`, `api_url`, …).

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
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            timeout: "30s".into(),
            max_attempts: 5,
            retry_backoff: "1s".into(),
            max_wait: "15m".into(),
            page_size: 100,
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
}

impl SyncSettings {
    /// Validates the settings; errors name the key.
    pub fn validate(&self) -> Result<SyncConfig, ConfigError> {
        use super::ranges::{RATE_LIMIT_WAIT, REQUEST_TIME, check_count};
        check_count(
            "sync.max_attempts",
            "sync.max_attempts",
            self.max_attempts.into(),
        )?;
        // 100: the vendors' largest page.
        check_count("sync.page_size", "sync.page_size", self.page_size.into())?;
        Ok(SyncConfig {
            timeout: REQUEST_TIME.parse("sync.timeout", &self.timeout)?,
            max_attempts: self.max_attempts,
            retry_backoff: REQUEST_TIME.parse("sync.retry_backoff", &self.retry_backoff)?,
            max_wait: RATE_LIMIT_WAIT.parse("sync.max_wait", &self.max_wait)?,
            page_size: self.page_size,
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
        ] {
            let e = s.validate().unwrap_err();
            assert!(e.0.contains(key), "{e}");
        }
    }
}
