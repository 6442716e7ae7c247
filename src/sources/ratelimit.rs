//! Reading a vendor's rate-limit headers into a wait: `Retry-After`
//! (seconds, a fraction rounded up, or an HTTP-date), `x-ratelimit-reset` / `RateLimit-Reset`
//! / `X-Sentry-Rate-Limit-Reset` (epoch seconds, or seconds from now when
//! small; Jira Cloud's `X-RateLimit-Reset` is a time), the `*-remaining`
//! counts. Every value is the server's: arithmetic saturates, and a wait
//! longer than `max_wait` is never slept, only reported with its time.

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::model::time::{Millis, now_ms};

/// What a rate limit asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Wait this long (at most `max_wait`), then try again.
    Wait(Duration),
    /// Longer than `max_wait`: stop, and say when the limit lifts.
    Beyond { until: Millis },
}

impl Limit {
    /// `wait` as a [`Limit`] under `max_wait`.
    pub fn of(wait: Duration, max_wait: Duration) -> Self {
        if wait <= max_wait {
            return Limit::Wait(wait);
        }
        let ms = Millis::try_from(wait.as_millis()).unwrap_or(Millis::MAX);
        Limit::Beyond {
            until: now_ms().saturating_add(ms),
        }
    }
}

/// How long a refused call must wait, when the answer is a rate limit.
pub fn refused(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    max_wait: Duration,
) -> Option<Limit> {
    let remaining = remaining(headers);
    let after = retry_after(headers);
    let says = message.to_ascii_lowercase().contains("rate limit");
    let limited =
        status == 429 || (status == 403 && (after.is_some() || remaining == Some(0) || says));
    if !limited {
        return None;
    }
    let wait = after
        .or_else(|| {
            (remaining == Some(0))
                .then(|| reset_wait(headers))
                .flatten()
        })
        // Jira Cloud: a 429 may name only the time the limit lifts.
        .or_else(|| (status == 429).then(|| reset_time_wait(headers)).flatten())
        // A secondary limit without headers: GitHub asks for a minute.
        .unwrap_or(Duration::from_secs(60));
    Some(Limit::of(wait, max_wait))
}

/// After an accepted answer saying no call is left, how long the next one
/// waits for the reset.
pub fn exhausted(headers: &HeaderMap, max_wait: Duration) -> Option<Limit> {
    if remaining(headers) != Some(0) {
        return None;
    }
    reset_wait(headers).map(|w| Limit::of(w, max_wait))
}

/// `Retry-After`: seconds, or an HTTP-date (RFC 9110; a proxy in front of
/// a self-hosted API may send one), a date already past being no wait.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    number(headers, "retry-after")
        .map(Duration::from_secs)
        .or_else(|| {
            let text = headers.get("retry-after")?.to_str().ok()?.trim();
            let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
            let ms = at.timestamp_millis().saturating_sub(now_ms());
            Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        })
}

/// Calls left in the window: `x-ratelimit-remaining` (GitHub),
/// `RateLimit-Remaining` (GitLab), `X-Sentry-Rate-Limit-Remaining` (Sentry).
fn remaining(headers: &HeaderMap) -> Option<u64> {
    number(headers, "x-ratelimit-remaining")
        .or_else(|| number(headers, "ratelimit-remaining"))
        .or_else(|| number(headers, "x-sentry-rate-limit-remaining"))
}

/// Time until `x-ratelimit-reset` / `RateLimit-Reset` /
/// `X-Sentry-Rate-Limit-Reset`: epoch seconds (GitHub, GitLab, Sentry), or
/// seconds from now when the value is small (the IETF draft's delta form).
fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset = number(headers, "x-ratelimit-reset")
        .or_else(|| number(headers, "ratelimit-reset"))
        .or_else(|| number(headers, "x-sentry-rate-limit-reset"))?;
    if reset < 1_000_000_000 {
        return Some(Duration::from_secs(reset));
    }
    let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
    // One second more: the reset is whole seconds.
    Some(Duration::from_secs(
        reset.saturating_sub(now).saturating_add(1),
    ))
}

/// Time until an `X-RateLimit-Reset` given as a time (Jira Cloud:
/// `2024-05-28T16:36Z`, ISO 8601 to the minute), one second more.
fn reset_time_wait(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let at = chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%MZ")
                .map(|t| t.and_utc().timestamp_millis())
        })
        .ok()?;
    let ms = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
    Some(Duration::from_millis(ms.saturating_add(1000)))
}

/// A header holding a count or seconds; a fraction (`1.5`) is rounded up.
fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let f: f64 = text.parse().ok()?;
    // Below 2^64 exactly (u64::MAX as f64 rounds up to 2^64).
    (0.0..18_446_744_073_709_551_616.0)
        .contains(&f)
        .then(|| f.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    const MAX: Duration = Duration::from_secs(900);

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn wait(status: u16, h: &HeaderMap, message: &str) -> Option<Duration> {
        match refused(status, h, message, MAX)? {
            Limit::Wait(d) => Some(d),
            Limit::Beyond { .. } => panic!("beyond max_wait"),
        }
    }

    #[test]
    fn rate_limits_are_told_from_permission_errors() {
        let none = HeaderMap::new();
        assert_eq!(
            wait(403, &none, "Resource not accessible by integration"),
            None
        );
        assert_eq!(wait(404, &none, ""), None);
        assert_eq!(
            wait(429, &headers(&[("retry-after", "3")]), ""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            wait(403, &none, "You have exceeded a secondary rate limit"),
            Some(Duration::from_secs(60))
        );
        let reset = (now_ms() / 1000 + 10).to_string();
        let w = wait(
            403,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ]),
            "API rate limit exceeded",
        )
        .expect("limited");
        assert!(
            (Duration::from_secs(9)..=Duration::from_secs(12)).contains(&w),
            "{w:?}"
        );
        // GitLab's RateLimit-* headers, and the delta form.
        let w = wait(
            429,
            &headers(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "7")]),
            "",
        );
        assert_eq!(w, Some(Duration::from_secs(7)));
        // Jira Cloud: a 429 with its reset as a time only.
        let at = chrono::DateTime::from_timestamp(now_ms() / 1000 + 120, 0)
            .expect("time")
            .format("%Y-%m-%dT%H:%MZ")
            .to_string();
        let w = wait(429, &headers(&[("x-ratelimit-reset", &at)]), "").expect("limited");
        assert!(
            (Duration::from_secs(60)..=Duration::from_secs(122)).contains(&w),
            "{w:?}"
        );
        // Sentry's X-Sentry-Rate-Limit-* headers (reset in epoch seconds).
        let reset = (now_ms() / 1000 + 5).to_string();
        let w = wait(
            429,
            &headers(&[
                ("x-sentry-rate-limit-remaining", "0"),
                ("x-sentry-rate-limit-reset", &reset),
            ]),
            "",
        )
        .expect("limited");
        assert!(
            (Duration::from_secs(4)..=Duration::from_secs(7)).contains(&w),
            "{w:?}"
        );
        // A fractional Retry-After is rounded up.
        assert_eq!(
            wait(429, &headers(&[("retry-after", "1.2")]), ""),
            Some(Duration::from_secs(2))
        );
        // Sentry's 403 for a missing scope is no rate limit.
        assert_eq!(
            wait(
                403,
                &headers(&[("x-sentry-rate-limit-remaining", "39")]),
                "You do not have permission to perform this action."
            ),
            None
        );
    }

    #[test]
    fn a_reset_far_away_is_reported_not_slept_nor_overflowed() {
        for reset in ["18446744073709551615", "9999999999999"] {
            let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)]);
            assert!(
                matches!(refused(429, &h, "", MAX), Some(Limit::Beyond { until }) if until > now_ms()),
                "{reset}"
            );
            assert!(matches!(exhausted(&h, MAX), Some(Limit::Beyond { .. })));
        }
        let h = headers(&[("retry-after", "18446744073709551615")]);
        assert!(matches!(
            refused(429, &h, "", MAX),
            Some(Limit::Beyond { until: Millis::MAX })
        ));
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            (0u64..4_000_000_000).prop_map(|n| n.to_string()),
            "[0-9]{1,40}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}Z",
            "[ -~]{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_headers_never_panic_and_never_wait_past_max_wait(
            status in prop_oneof![Just(403u16), Just(429u16), Just(200u16), 100u16..600],
            values in proptest::collection::vec(header_value(), 7),
            max_secs in 0u64..100_000,
        ) {
            let max_wait = Duration::from_secs(max_secs);
            let names = [
                "retry-after", "x-ratelimit-remaining", "x-ratelimit-reset",
                "ratelimit-remaining", "ratelimit-reset",
                "x-sentry-rate-limit-remaining", "x-sentry-rate-limit-reset",
            ];
            let mut h = HeaderMap::new();
            for (name, v) in names.iter().zip(&values) {
                if let Ok(v) = HeaderValue::from_str(v) {
                    h.insert(*name, v);
                }
            }
            for limit in [refused(status, &h, "rate limit", max_wait), exhausted(&h, max_wait)] {
                if let Some(Limit::Wait(w)) = limit {
                    prop_assert!(w <= max_wait, "{w:?} > {max_wait:?}");
                }
            }
        }
    }
}
