//! One HTTP client for every vendor's REST API, a good citizen of it that
//! trusts nothing the server says:
//!
//! - **one origin**: every call of a pass (pages, the next page a server
//!   names, follow-ups, redirects) goes to the configured `api_url`'s scheme,
//!   host and port ([`origin`](super::origin)); anything else ends the pass
//!   naming the refused URL, so no credential header ever leaves it.
//! - **bounded**: an answer is read as it streams, up to
//!   `sync.max_response_bytes` (its `Content-Length` checked first); a pass
//!   ends at `sync.pass_timeout` whatever the server does.
//! - **rate limits** ([`super::ratelimit`]): a `429`, or a `403`
//!   that says it is one, waits `Retry-After` or until the reset; after an
//!   answer saying no call is left the next call waits for the reset. A wait
//!   longer than `sync.max_wait` stops the pass with the time to retry.
//! - **retries**: a `5xx`, a timeout or a broken connection is tried again
//!   after `sync.retry_backoff` (plus up to a tenth of jitter), doubled each
//!   time, up to `sync.max_attempts` tries in all (rate-limit waits count as
//!   tries too, so nothing loops).
//! - every other status is an error naming the URL, the status and the
//!   vendor's message with every configured secret blanked out
//!   ([`redact`](super::redact)). The token is a header marked sensitive.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use super::SyncError;
use super::origin::{Origin, shown};
use super::ratelimit::{self, Limit};
use super::redact::Redact;
use crate::config::sync::SyncConfig;

pub use super::origin::{encode, endpoint, query_value, with_query};

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
    /// The `rel="next"` target of its `Link` header ([`link_next`]),
    /// resolved against this answer's URL when relative (RFC 8288): a
    /// scheme-relative `//host/…` names that host, which the client then
    /// refuses unless it is the origin.
    pub fn link_next(&self) -> Option<String> {
        let next = link_next(&self.headers)?;
        match url::Url::parse(&self.url).and_then(|base| base.join(&next)) {
            Ok(u) => Some(u.to_string()),
            Err(_) => Some(next),
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok().map(str::trim)
    }
}

/// The client of one source's API for one pass.
pub struct Client {
    http: reqwest::Client,
    cfg: SyncConfig,
    origin: Origin,
    redact: Redact,
    /// The pass ends here (`sync.pass_timeout` after the client was made).
    deadline: Instant,
    /// No call before this wait has passed (the limit said none was left).
    pause: Option<(Instant, Limit)>,
}

/// Which try of a call this is, and what a retry waits.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// 1 for the first.
    number: u32,
    /// The last one `sync.max_attempts` allows: its failure is the error.
    last: bool,
    /// The wait before the next try (doubled after each).
    backoff: Duration,
}

/// What one try of a call came to.
enum Try {
    Done(Answer),
    /// Try again after this long (a 5xx, a transport error, a rate limit).
    Again(Duration),
}

impl Client {
    /// A client of `api_url`'s origin sending `headers` (authentication,
    /// media type) with every call; its pass ends `cfg.pass_timeout` from now.
    pub fn new(
        cfg: SyncConfig,
        api_url: &str,
        headers: Vec<(&'static str, String, bool)>,
        redact: Redact,
    ) -> Result<Self, SyncError> {
        let origin = Origin::of_api(api_url)?;
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
            .redirect(origin.redirects())
            // A redirect within the origin needs no `Referer` naming the
            // URL it came from (which may carry what the server put in it).
            .referer(false)
            .build()
            .map_err(|e| SyncError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            cfg,
            origin,
            redact,
            deadline: Instant::now() + cfg.pass_timeout.min(Duration::from_secs(1 << 32)),
            pause: None,
        })
    }

    /// The secrets blanked out of what this client's server sent.
    pub fn redact(&self) -> &Redact {
        &self.redact
    }

    /// `url` as errors and logs show it: no user info, no secret (blanked
    /// before `shown` may cut the text short).
    fn shown(&self, url: &str) -> String {
        self.redact.text(&shown(&self.redact.text(url)))
    }

    /// `GET url`: the answer when it is 2xx or in `accept`; retried and
    /// rate-limited as the module says; an error otherwise.
    pub async fn get(&mut self, url: &str, accept: &[u16]) -> Result<Answer, SyncError> {
        if self.origin.check(url).is_err() {
            return Err(SyncError::Refused {
                url: self.shown(url),
                origin: self.origin.to_string(),
            });
        }
        let mut backoff = self.cfg.retry_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some((since, limit)) = self.pause.take() {
                let limit = match limit {
                    Limit::Wait(w) => Limit::Wait(w.saturating_sub(since.elapsed())),
                    beyond => beyond,
                };
                self.wait(url, limit).await?;
            }
            let at = Attempt {
                number: attempt,
                last: attempt >= self.cfg.max_attempts,
                backoff,
            };
            match self.try_once(url, accept, at).await? {
                Try::Done(answer) => return Ok(answer),
                Try::Again(wait) => {
                    self.sleep(url, wait).await?;
                    backoff = backoff.saturating_mul(2).min(self.cfg.max_wait);
                }
            }
        }
    }

    /// One try: the request, its answer read within the bounds, its status
    /// judged.
    async fn try_once(&mut self, url: &str, accept: &[u16], at: Attempt) -> Result<Try, SyncError> {
        let Attempt {
            number: attempt,
            last,
            backoff,
        } = at;
        let left = self.time_left(url)?;
        let timeout = self.cfg.timeout.min(left);
        let shown = self.shown(url);
        let failed = |e: reqwest::Error, this: &Self| -> Result<Try, SyncError> {
            if e.is_timeout() && timeout < this.cfg.timeout {
                return Err(this.past_deadline(url));
            }
            let error = this.redact.text(&describe(e, timeout));
            if last {
                return Err(SyncError::Transport {
                    url: shown.clone(),
                    attempts: attempt,
                    error,
                });
            }
            tracing::warn!(target: "bug_escape_exporter::sync::client", url = %shown, attempt, %error, "API call failed; trying again");
            Ok(Try::Again(jitter(backoff)))
        };
        let resp = match self.http.get(url).timeout(timeout).send().await {
            Ok(r) => r,
            Err(e) => return failed(e, self),
        };
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(self.not_followed(url, &resp));
        }
        let headers = resp.headers().clone();
        let body = match read_bounded(resp, self.cfg.max_response_bytes).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return failed(e, self),
            Err(()) => {
                return Err(SyncError::TooLarge {
                    url: shown,
                    limit: self.cfg.max_response_bytes,
                });
            }
        };
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        drop(body);
        if (200..300).contains(&status) || accept.contains(&status) {
            self.pause = ratelimit::exhausted(&headers, self.cfg.max_wait)
                .map(|limit| (Instant::now(), limit));
            let body = match json {
                Some(v) => v,
                None if (200..300).contains(&status) => {
                    return Err(SyncError::Shape {
                        url: shown,
                        reason: "the answer is not JSON".into(),
                    });
                }
                None => Value::Null,
            };
            return Ok(Try::Done(Answer {
                url: url.to_owned(),
                status,
                headers,
                body,
            }));
        }
        // Blanked before it is cut short, so a cut through a secret cannot
        // print the part before the cut.
        let message = self.redact.text(&vendor_message(json.as_ref()));
        let message: String = message.chars().take(MESSAGE_CHARS).collect();
        self.refused(&shown, status, &headers, message, at)
    }

    /// A status neither accepted nor 2xx: a rate limit or a 5xx to try
    /// again, else the error.
    fn refused(
        &self,
        shown: &str,
        status: u16,
        headers: &HeaderMap,
        message: String,
        at: Attempt,
    ) -> Result<Try, SyncError> {
        let Attempt {
            number: attempt,
            last,
            backoff,
        } = at;
        if let Some(limit) = ratelimit::refused(status, headers, &message, self.cfg.max_wait) {
            return match limit {
                Limit::Beyond { until } => Err(SyncError::RateLimited {
                    url: shown.to_owned(),
                    until,
                }),
                _ if last => Err(SyncError::Http {
                    url: shown.to_owned(),
                    status,
                    message: format!("still rate limited after {attempt} tries: {message}"),
                }),
                Limit::Wait(wait) => {
                    tracing::warn!(target: "bug_escape_exporter::sync::client", url = %shown, status, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                    Ok(Try::Again(wait))
                }
            };
        }
        if status >= 500 && !last {
            let wait = ratelimit::retry_after(headers)
                .unwrap_or_else(|| jitter(backoff))
                .min(self.cfg.max_wait);
            tracing::warn!(target: "bug_escape_exporter::sync::client", url = %shown, status, attempt, "API answered a server error; trying again");
            return Ok(Try::Again(wait));
        }
        Err(SyncError::Http {
            url: shown.to_owned(),
            status,
            message,
        })
    }

    /// A `3xx` the redirect policy did not follow: one leaving the origin
    /// (refused, naming where it pointed), or one too many.
    fn not_followed(&self, url: &str, resp: &reqwest::Response) -> SyncError {
        let target = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| resp.url().join(l).ok());
        match target {
            Some(t) if self.origin.check(t.as_str()).is_err() => SyncError::Refused {
                url: self.shown(t.as_str()),
                origin: self.origin.to_string(),
            },
            _ => SyncError::Http {
                url: self.shown(url),
                status: resp.status().as_u16(),
                message: "a redirect that was not followed (too many, or without a Location)"
                    .into(),
            },
        }
    }

    /// Sleeps out a rate limit, or fails when it is beyond `max_wait`.
    async fn wait(&self, url: &str, limit: Limit) -> Result<(), SyncError> {
        match limit {
            Limit::Wait(w) => self.sleep(url, w).await,
            Limit::Beyond { until } => Err(SyncError::RateLimited {
                url: self.shown(url),
                until,
            }),
        }
    }

    /// Sleeps `wait`, unless it would end past the pass's deadline.
    async fn sleep(&self, url: &str, wait: Duration) -> Result<(), SyncError> {
        if wait >= self.time_left(url)? {
            return Err(self.past_deadline(url));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// Time left before the pass's deadline; the error once it has passed.
    fn time_left(&self, url: &str) -> Result<Duration, SyncError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.past_deadline(url));
        }
        Ok(left)
    }

    fn past_deadline(&self, url: &str) -> SyncError {
        SyncError::Deadline {
            url: self.shown(url),
            limit: self.cfg.pass_timeout,
        }
    }
}

/// The body of `resp`, at most `limit` bytes: `Err(())` past it (its
/// `Content-Length` says so, or the bytes streamed do), the transport's
/// error when reading fails. Only what is read is held.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Result<Vec<u8>, reqwest::Error>, ()> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(());
    }
    let hint = resp.content_length().unwrap_or(0).min(limit);
    let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Ok(body)),
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// Characters of a vendor's message an error shows.
const MESSAGE_CHARS: usize = 300;

/// The vendor's own message: GitHub, GitLab: `message` (or `error`); Jira:
/// `errorMessages`; Sentry: `detail`. Whole: the caller blanks the secrets
/// out, then cuts it to [`MESSAGE_CHARS`].
fn vendor_message(json: Option<&Value>) -> String {
    json.and_then(|v| {
        v.get("message")
            .or_else(|| v.get("error"))
            .or_else(|| v.get("errorMessages").and_then(|m| m.get(0)))
            .or_else(|| v.get("detail"))
    })
    .and_then(Value::as_str)
    .map(str::to_owned)
    .unwrap_or_default()
}

/// `d` plus up to a tenth of it at random (at most a second more), so
/// clients that failed together do not all try again together.
pub fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // A fresh `RandomState` is keyed differently each time: enough
    // randomness for spreading retries, without a crate for it.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(d.as_nanos());
    let span = (d / 10).min(Duration::from_secs(1));
    let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    d.saturating_add(Duration::from_nanos(h.finish() % nanos.saturating_add(1)))
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
            // `rel` may hold several relation types: `rel="next last"`.
            let next = part[end + 1..].split(';').any(|p| {
                let p = p.trim();
                p.get(..4).is_some_and(|k| k.eq_ignore_ascii_case("rel="))
                    && p[4..]
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            let empty = params.iter().any(|p| p == "results=\"false\"");
            if next && !empty {
                return Some(url.to_owned());
            }
        }
    }
    None
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
        let several = headers(&[("link", "<https://x/?page=9>; rel=\"next last\"")]);
        assert_eq!(link_next(&several).as_deref(), Some("https://x/?page=9"));
        // Relative targets are resolved against the answer's URL.
        let answer = |link: &str| Answer {
            url: "http://127.0.0.1:9/api/v4/projects/1/issues?page=1".into(),
            status: 200,
            headers: headers(&[("link", link)]),
            body: Value::Null,
        };
        assert_eq!(
            answer("</api/v4/projects/1/issues?page=2>; rel=next")
                .link_next()
                .as_deref(),
            Some("http://127.0.0.1:9/api/v4/projects/1/issues?page=2")
        );
        assert_eq!(
            answer("<//127.0.0.2:9/x>; rel=next").link_next().as_deref(),
            Some("http://127.0.0.2:9/x")
        );
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
        assert_eq!(encode("acme/web.site_1-"), "acme%2Fweb.site_1-");
    }

    #[test]
    fn backoff_has_bounded_jitter() {
        let base = Duration::from_millis(500);
        let delays: Vec<Duration> = (0..8).map(|_| jitter(base)).collect();
        for d in &delays {
            assert!(
                (base..=base + base / 10).contains(d),
                "{d:?} outside 500..=550 ms"
            );
        }
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "eight delays all equal: {delays:?}"
        );
        // Long waits gain a second at most; zero stays zero.
        let long = Duration::from_secs(600);
        assert!(jitter(long) <= long + Duration::from_secs(1));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
