//! One HTTP client for every vendor's REST API, a good citizen of it:
//!
//! - **rate limits**: a `429`, or a `403` that says it is one (`Retry-After`,
//!   `x-ratelimit-remaining: 0`, or a message naming the rate limit), waits
//!   `Retry-After` seconds (a fraction rounded up), else until
//!   `x-ratelimit-reset` / `RateLimit-Reset` / `X-Sentry-Rate-Limit-Reset`
//!   (epoch seconds; Jira Cloud's `X-RateLimit-Reset` is a time), else
//!   (GitHub's secondary limits) a minute; and after any answer saying no
//!   call is left (`x-ratelimit-remaining` / `RateLimit-Remaining` /
//!   `X-Sentry-Rate-Limit-Remaining` 0) the next call waits for the reset.
//!   A wait longer than `sync.max_wait` stops the pass with the time to
//!   retry, rather than hold it for an hour.
//! - **retries**: a `5xx`, a timeout or a broken connection is tried again
//!   after `sync.retry_backoff`, doubled each time, up to `sync.max_attempts`
//!   tries in all (rate-limit waits count as tries too, so nothing loops).
//! - every other status is an error naming the URL, the status and the
//!   vendor's message. URLs carry no token (it is a header, marked sensitive
//!   so it is never printed); errors and logs name URLs only.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::SyncError;
use crate::config::sync::SyncConfig;
use crate::model::time::now_ms;

/// A 2xx answer (or one of the statuses the caller accepts), its body parsed.
#[derive(Debug, Clone)]
pub struct Answer {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when it is empty or not JSON (accepted statuses).
    pub body: Value,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok().map(str::trim)
    }
}

/// The client of one source's API.
pub struct Client {
    http: reqwest::Client,
    cfg: SyncConfig,
    /// No call before this instant (the limit said none was left).
    paused_until: Option<tokio::time::Instant>,
}

impl Client {
    /// A client sending `headers` (authentication, media type) with every call.
    pub fn new(
        cfg: SyncConfig,
        headers: Vec<(&'static str, String, bool)>,
    ) -> Result<Self, SyncError> {
        let mut map = HeaderMap::new();
        for (name, value, sensitive) in headers {
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                SyncError::Config(format!("the {name} header value is not visible ASCII"))
            })?;
            v.set_sensitive(sensitive);
            map.insert(HeaderName::from_static(name), v);
        }
        let http = reqwest::Client::builder()
            .default_headers(map)
            .user_agent(concat!("bug-escape-exporter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(cfg.timeout)
            .build()
            .map_err(|e| SyncError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            cfg,
            paused_until: None,
        })
    }

    /// `GET url`: the answer when it is 2xx or in `accept`; retried and
    /// rate-limited as the module says; an error otherwise.
    pub async fn get(&mut self, url: &str, accept: &[u16]) -> Result<Answer, SyncError> {
        let mut backoff = self.cfg.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(until) = self.paused_until.take() {
                self.wait(
                    url,
                    until.saturating_duration_since(tokio::time::Instant::now()),
                )
                .await?;
            }
            let last = attempt >= self.cfg.max_attempts;
            let sent = self.http.get(url).timeout(self.cfg.timeout).send().await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    if last {
                        return Err(SyncError::Transport {
                            url: url.to_owned(),
                            attempts: attempt,
                            error: describe(e, self.cfg.timeout),
                        });
                    }
                    tracing::warn!(url, attempt, error = %describe(e, self.cfg.timeout), "API call failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.cfg.max_wait);
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    if last {
                        return Err(SyncError::Transport {
                            url: url.to_owned(),
                            attempts: attempt,
                            error: describe(e, self.cfg.timeout),
                        });
                    }
                    tracing::warn!(url, attempt, error = %describe(e, self.cfg.timeout), "reading an API answer failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.cfg.max_wait);
                    continue;
                }
            };
            let json: Option<Value> = serde_json::from_slice(&body).ok();
            if (200..300).contains(&status) || accept.contains(&status) {
                self.note_remaining(&headers);
                let body = match json {
                    Some(v) => v,
                    None if (200..300).contains(&status) => {
                        return Err(SyncError::Shape {
                            url: url.to_owned(),
                            reason: "the answer is not JSON".into(),
                        });
                    }
                    None => Value::Null,
                };
                return Ok(Answer {
                    url: url.to_owned(),
                    status,
                    headers,
                    body,
                });
            }
            // GitHub, GitLab: `message` (or `error`); Jira: `errorMessages`;
            // Sentry: `detail`.
            let message = json
                .as_ref()
                .and_then(|v| {
                    v.get("message")
                        .or_else(|| v.get("error"))
                        .or_else(|| v.get("errorMessages").and_then(|m| m.get(0)))
                        .or_else(|| v.get("detail"))
                })
                .and_then(Value::as_str)
                .map(|m| m.chars().take(300).collect::<String>())
                .unwrap_or_default();
            if let Some(wait) = rate_limit_wait(status, &headers, &message) {
                if last {
                    return Err(SyncError::Http {
                        url: url.to_owned(),
                        status,
                        message: format!("still rate limited after {attempt} tries: {message}"),
                    });
                }
                tracing::warn!(
                    url,
                    status,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited; waiting"
                );
                self.wait(url, wait).await?;
                continue;
            }
            if status >= 500 && !last {
                let wait = retry_after(&headers)
                    .unwrap_or(backoff)
                    .min(self.cfg.max_wait);
                tracing::warn!(
                    url,
                    status,
                    attempt,
                    "API answered a server error; trying again"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(self.cfg.max_wait);
                continue;
            }
            return Err(SyncError::Http {
                url: url.to_owned(),
                status,
                message,
            });
        }
    }

    /// Sleeps `wait`, or fails when it is longer than `max_wait`.
    async fn wait(&self, url: &str, wait: Duration) -> Result<(), SyncError> {
        if wait > self.cfg.max_wait {
            let until = now_ms() + wait.as_millis() as i64;
            return Err(SyncError::RateLimited {
                url: url.to_owned(),
                until,
            });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// After an answer saying no call is left, the next one waits for the reset.
    fn note_remaining(&mut self, headers: &HeaderMap) {
        if remaining(headers) == Some(0) {
            if let Some(wait) = reset_wait(headers) {
                self.paused_until = Some(tokio::time::Instant::now() + wait);
            }
        }
    }
}

/// How long a refused call must wait, when the answer is a rate limit.
fn rate_limit_wait(status: u16, headers: &HeaderMap, message: &str) -> Option<Duration> {
    let remaining = remaining(headers);
    let after = retry_after(headers);
    let says = message.to_ascii_lowercase().contains("rate limit");
    let limited =
        status == 429 || (status == 403 && (after.is_some() || remaining == Some(0) || says));
    if !limited {
        return None;
    }
    Some(
        after
            .or_else(|| {
                (remaining == Some(0))
                    .then(|| reset_wait(headers))
                    .flatten()
            })
            // Jira Cloud: a 429 may name only the time the limit lifts.
            .or_else(|| (status == 429).then(|| reset_time_wait(headers)).flatten())
            // A secondary limit without headers: GitHub asks for a minute.
            .unwrap_or(Duration::from_secs(60)),
    )
}

/// Calls left in the window: `x-ratelimit-remaining` (GitHub),
/// `RateLimit-Remaining` (GitLab), `X-Sentry-Rate-Limit-Remaining` (Sentry).
fn remaining(headers: &HeaderMap) -> Option<u64> {
    number(headers, "x-ratelimit-remaining")
        .or_else(|| number(headers, "ratelimit-remaining"))
        .or_else(|| number(headers, "x-sentry-rate-limit-remaining"))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by these APIs).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    number(headers, "retry-after").map(Duration::from_secs)
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
    let now = now_ms() as u64 / 1000;
    // One second more: the reset is whole seconds.
    Some(Duration::from_secs(reset.saturating_sub(now) + 1))
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
    Some(Duration::from_millis((at - now_ms()).max(0) as u64 + 1000))
}

/// A transport error in words (reqwest's own says only "error sending
/// request"): a timeout with its length, else the chain of causes.
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!(
            "no complete answer within {}",
            humantime::format_duration(timeout)
        );
    }
    let mut causes = Vec::new();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        causes.push(c.to_string());
        cause = c.source();
    }
    let mut out = e.without_url().to_string();
    for c in causes {
        out.push_str(": ");
        out.push_str(&c);
    }
    out
}

/// A header holding a count or seconds; a fraction (`1.5`) is rounded up.
fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    let text = headers.get(name)?.to_str().ok()?.trim();
    if let Ok(n) = text.parse() {
        return Some(n);
    }
    let f: f64 = text.parse().ok()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.ceil() as u64)
}

/// The `rel="next"` target of a `Link` header (RFC 8288), as GitHub, GitLab
/// and Sentry send it. Sentry marks an exhausted cursor `results="false"`:
/// such a link is no next page.
pub fn link_next(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all("link") {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split(',') {
            let part = part.trim();
            let Some(end) = part.find('>') else { continue };
            let Some(url) = part.get(1..end).filter(|_| part.starts_with('<')) else {
                continue;
            };
            let params: Vec<String> = part[end + 1..]
                .split(';')
                .map(|p| p.trim().replace(' ', "").to_ascii_lowercase())
                .collect();
            let next = params
                .iter()
                .any(|p| p == "rel=\"next\"" || p == "rel=next");
            let empty = params.iter().any(|p| p == "results=\"false\"");
            if next && !empty {
                return Some(url.to_owned());
            }
        }
    }
    None
}

/// `v` percent-encoded for a URL's path segment or query value (everything
/// but RFC 3986's unreserved characters).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `url` with its query parameter `name` set to `value` (encoded here),
/// replacing the one there: how GitLab's `x-next-page` and Jira's
/// `nextPageToken` and `startAt` make the next page's URL from the last.
pub fn with_query(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let prefix = format!("{name}=");
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    params.push(format!("{prefix}{}", encode(value)));
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let h = headers(&[(
            "link",
            "<https://api.github.com/repositories/1300192/issues?page=2>; rel=\"prev\", \
             <https://api.github.com/repositories/1300192/issues?page=4>; rel=\"next\", \
             <https://api.github.com/repositories/1300192/issues?page=515>; rel=\"last\"",
        )]);
        assert_eq!(
            link_next(&h).as_deref(),
            Some("https://api.github.com/repositories/1300192/issues?page=4")
        );
        assert_eq!(
            link_next(&headers(&[("link", "<https://x/?page=1>; rel=\"first\"")])),
            None
        );
        assert_eq!(link_next(&HeaderMap::new()), None);
        // Sentry: a next cursor with no results is the end.
        let sentry = headers(&[(
            "link",
            "<https://sentry.io/api/0/x/?cursor=0:0:1>; rel=\"previous\"; results=\"false\"; cursor=\"0:0:1\", \
             <https://sentry.io/api/0/x/?cursor=0:100:0>; rel=\"next\"; results=\"false\"; cursor=\"0:100:0\"",
        )]);
        assert_eq!(link_next(&sentry), None);
    }

    #[test]
    fn query_parameters_are_set_once_and_encoded() {
        assert_eq!(
            with_query(
                "http://x/api/v4/projects/1/issues?per_page=2&page=1",
                "page",
                "2"
            ),
            "http://x/api/v4/projects/1/issues?per_page=2&page=2"
        );
        assert_eq!(
            with_query("http://x/s", "startAt", "4"),
            "http://x/s?startAt=4"
        );
        assert_eq!(
            with_query("http://x/s?jql=a&pagex=1", "page", "a b/="),
            "http://x/s?jql=a&pagex=1&page=a%20b%2F%3D"
        );
        assert_eq!(encode("acme/web.site_1-~"), "acme%2Fweb.site_1-~");
    }

    #[test]
    fn rate_limits_are_told_from_permission_errors() {
        let none = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(403, &none, "Resource not accessible by integration"),
            None
        );
        assert_eq!(rate_limit_wait(404, &none, ""), None);
        assert_eq!(
            rate_limit_wait(429, &headers(&[("retry-after", "3")]), ""),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(403, &none, "You have exceeded a secondary rate limit"),
            Some(Duration::from_secs(60))
        );
        let reset = (now_ms() / 1000 + 10).to_string();
        let w = rate_limit_wait(
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
        let w = rate_limit_wait(
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
        let w = rate_limit_wait(429, &headers(&[("x-ratelimit-reset", &at)]), "").expect("limited");
        assert!(
            (Duration::from_secs(60)..=Duration::from_secs(122)).contains(&w),
            "{w:?}"
        );
        // Sentry's X-Sentry-Rate-Limit-* headers (reset in epoch seconds).
        let reset = (now_ms() / 1000 + 5).to_string();
        let w = rate_limit_wait(
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
            rate_limit_wait(429, &headers(&[("retry-after", "1.2")]), ""),
            Some(Duration::from_secs(2))
        );
        // Sentry's 403 for a missing scope is no rate limit.
        assert_eq!(
            rate_limit_wait(
                403,
                &headers(&[("x-sentry-rate-limit-remaining", "39")]),
                "You do not have permission to perform this action."
            ),
            None
        );
    }
}
