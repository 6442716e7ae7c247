//! Why a pass, or a part of it, failed: [`SyncError`], each variant worded
//! for the operator and never naming a token.

use super::redact::Redact;
use crate::model::time::Millis;

/// Why a pass (or a part of it) failed. Nothing names a token.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Config(String),
    #[error("GET {url}: {status} {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GET {url}: failed {attempts} times: {error}")]
    Transport {
        url: String,
        attempts: u32,
        error: String,
    },
    #[error(
        "GET {url}: rate limited until {}; run sync again then (or raise sync.max_wait)",
        time(*until)
    )]
    RateLimited { url: String, until: Millis },
    #[error("GET {url}: {reason}")]
    Shape { url: String, reason: String },
    #[error(
        "refused to call {url}: it is not the configured api_url's origin {origin} \
         (scheme, host and port); the pass stops so no credential leaves it"
    )]
    Refused { url: String, origin: String },
    #[error(
        "GET {url}: the answer is larger than sync.max_response_bytes ({limit} bytes); refused"
    )]
    TooLarge { url: String, limit: u64 },
    #[error("GET {url}: {reason}; the pass stops")]
    Endless { url: String, reason: String },
    #[error(
        "GET {url}: the pass took longer than sync.pass_timeout ({}); it stops here",
        humantime::format_duration(*limit)
    )]
    Deadline {
        url: String,
        limit: std::time::Duration,
    },
    #[error("store: {0}")]
    Store(String),
}

impl SyncError {
    /// The error with every configured secret blanked out of its text (what
    /// a vendor sent: messages, URLs, field values).
    pub fn redacted(self, r: &Redact) -> SyncError {
        use SyncError::*;
        let t = |s: String| r.text(&s);
        match self {
            Config(m) => Config(t(m)),
            Http {
                url,
                status,
                message,
            } => Http {
                url: t(url),
                status,
                message: t(message),
            },
            Transport {
                url,
                attempts,
                error,
            } => Transport {
                url: t(url),
                attempts,
                error: t(error),
            },
            RateLimited { url, until } => RateLimited { url: t(url), until },
            Shape { url, reason } => Shape {
                url: t(url),
                reason: t(reason),
            },
            Refused { url, origin } => Refused {
                url: t(url),
                origin: t(origin),
            },
            TooLarge { url, limit } => TooLarge { url: t(url), limit },
            Endless { url, reason } => Endless {
                url: t(url),
                reason: t(reason),
            },
            Deadline { url, limit } => Deadline { url: t(url), limit },
            Store(m) => Store(t(m)),
        }
    }
}

/// A time for messages (RFC 3339).
pub(crate) fn time(at: Millis) -> String {
    // A server's reset can be any number: one past the calendar is said so.
    crate::model::time::format_rfc3339(at, chrono::SecondsFormat::AutoSi)
        .unwrap_or_else(|| format!("a time past any date ({at} ms after 1970)"))
}

impl From<rusqlite::Error> for SyncError {
    fn from(e: rusqlite::Error) -> Self {
        SyncError::Store(e.to_string())
    }
}
