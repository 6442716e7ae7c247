//! `bug-escape-exporter healthcheck`: asks a running exporter's `/readyz` and
//! says whether it is ready, for container health checks (Docker's
//! `HEALTHCHECK`, which has no HTTP client in a distroless or slim image).
//!
//! A plain HTTP/1.1 `GET` over a tokio `TcpStream` (no client library): one
//! request, `Connection: close`, the status line is all that decides. Only
//! `http://` URLs are understood; `https://` is refused with a message.

use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{complain, say};

/// `healthcheck`: 0 when `url` answers 200, else 1 with the reason on stderr.
pub fn run(url: &str, timeout: Duration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            complain(&format!("unreachable: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(probe(url, timeout));
    // A name lookup still running on the blocking pool after the timeout
    // must not hold the exit.
    runtime.shutdown_background();
    match verdict(url, &result) {
        (true, line) => {
            say(&line);
            ExitCode::SUCCESS
        }
        (false, line) => {
            complain(&line);
            ExitCode::FAILURE
        }
    }
}

/// At most this much of the answer is read (status line, headers, a body
/// excerpt for the message).
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What the exporter answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The status line without the HTTP version, e.g. `503 Service Unavailable`.
    pub status_line: String,
    /// The start of the body (lossy UTF-8, trimmed), for the message.
    pub body: String,
}

/// Why no answer could be had.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// The URL cannot be used.
    #[error("invalid --url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// Resolving or connecting failed (connection refused, no such host).
    #[error("cannot connect to {addr} ({url}): {source}")]
    Connect {
        addr: String,
        url: String,
        source: std::io::Error,
    },
    /// Sending or reading failed after connecting.
    #[error("connection to {url} failed: {source}")]
    Io { url: String, source: std::io::Error },
    /// No complete status line within the timeout.
    #[error("no answer from {url} within {}", humantime::format_duration(*timeout))]
    Timeout { url: String, timeout: Duration },
    /// The peer answered something that is not HTTP/1.x.
    #[error("{url} did not answer HTTP: {first_line:?}")]
    NotHttp { url: String, first_line: String },
}

/// The parts of an `http://` URL the request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Host to connect to (IPv6 without brackets).
    host: String,
    port: u16,
    /// `Host` header value: the authority as written.
    authority: String,
    /// Path and query, `/` when the URL has none.
    path: String,
}

fn parse_url(url: &str) -> Result<Target, Unreachable> {
    let bad = |reason: &str| Unreachable::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http://HOST[:PORT]/PATH"))?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad(
            "https is not supported by healthcheck yet; ask the plain-HTTP listener (http://)",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("only http:// URLs are supported"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The fragment is never sent.
    let tail = tail.split('#').next().unwrap_or("");
    let path = match tail {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_owned(),
    };
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if authority.contains('@') {
        return Err(bad("user information in the URL is not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
    };
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad("spaces or control characters in the path"));
    }
    Ok(Target {
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path,
    })
}

/// Asks `url` once, within `timeout` in all (resolve, connect, send, status line).
pub async fn probe(url: &str, timeout: Duration) -> Result<Answer, Unreachable> {
    let target = parse_url(url)?;
    let timed_out = || Unreachable::Timeout {
        url: url.to_owned(),
        timeout,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let addr = format!("{}:{}", target.host, target.port);
    let mut stream = tokio::time::timeout_at(
        deadline,
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|source| Unreachable::Connect {
        addr,
        url: url.to_owned(),
        source,
    })?;
    let io = |source| Unreachable::Io {
        url: url.to_owned(),
        source,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bug-escape-exporter-healthcheck/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        crate::build::VERSION
    );
    tokio::time::timeout_at(deadline, stream.write_all(request.as_bytes()))
        .await
        .map_err(|_| timed_out())?
        .map_err(io)?;

    let answer = read_answer(&mut stream, deadline).await.map_err(io)?;
    parse_answer(url, &answer).ok_or_else(timed_out)?
}

/// Reads until the peer closes, the cap, or the deadline; an error only when
/// nothing arrived (the status line must have arrived by then).
async fn read_answer(
    stream: &mut TcpStream,
    deadline: tokio::time::Instant,
) -> Result<Vec<u8>, std::io::Error> {
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Err(e)) => {
                if answer.is_empty() {
                    return Err(e);
                }
                break;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() >= MAX_ANSWER_BYTES {
                    break;
                }
            }
        }
    }
    Ok(answer)
}

/// The status line and body of `answer`; `None` when nothing arrived (the
/// caller's time ran out).
fn parse_answer(url: &str, answer: &[u8]) -> Option<Result<Answer, Unreachable>> {
    let Some(line_end) = answer.windows(2).position(|w| w == b"\r\n") else {
        if answer.is_empty() {
            return None;
        }
        return Some(Err(Unreachable::NotHttp {
            url: url.to_owned(),
            first_line: excerpt(answer),
        }));
    };
    let first_line = String::from_utf8_lossy(&answer[..line_end]).into_owned();
    let not_http = || Unreachable::NotHttp {
        url: url.to_owned(),
        first_line: first_line.clone(),
    };
    let Some((version, status_line)) = first_line.split_once(' ') else {
        return Some(Err(not_http()));
    };
    if !version.starts_with("HTTP/1.") {
        return Some(Err(not_http()));
    }
    let Some(status) = status_line
        .get(..3)
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse::<u16>().ok())
    else {
        return Some(Err(not_http()));
    };
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| excerpt(&answer[at + 4..]))
        .unwrap_or_default();
    Some(Ok(Answer {
        status,
        status_line: status_line.trim_end().to_owned(),
        body,
    }))
}

/// At most 300 characters of `bytes`, lossy UTF-8, white space trimmed.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// What the `healthcheck` sub-command prints and exits with: 0 when `url`
/// answered 200, else 1 (Docker reserves 2). The line goes to stdout when
/// ready, to stderr otherwise.
pub fn verdict(url: &str, result: &Result<Answer, Unreachable>) -> (bool, String) {
    match result {
        Ok(a) if a.status == 200 => (true, format!("ready: {url} answered {}", a.status_line)),
        Ok(a) if a.body.is_empty() => (
            false,
            format!("not ready: {url} answered {}", a.status_line),
        ),
        Ok(a) => (
            false,
            format!("not ready: {url} answered {}: {}", a.status_line, a.body),
        ),
        Err(e) => (false, format!("unreachable: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_what_the_request_needs() {
        let t = parse_url("http://127.0.0.1:10941/readyz").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("127.0.0.1", 10941, "127.0.0.1:10941", "/readyz")
        );
        let t = parse_url("HTTP://[::1]:8080?x=1#frag").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/?x=1")
        );
        let t = parse_url("http://exporter").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("exporter", 80, "/")
        );
    }

    #[test]
    fn unusable_urls_are_refused_with_the_reason() {
        for (url, reason) in [
            ("https://127.0.0.1:10941/readyz", "https is not supported"),
            ("ftp://x/", "only http://"),
            ("127.0.0.1:10941/readyz", "expected http://"),
            ("http:///readyz", "no host"),
            ("http://u:p@host/", "user information"),
            ("http://host:0/", "port"),
            ("http://host:99999/", "port"),
            ("http://[::1/", "unclosed"),
            ("http://host/a b", "spaces"),
        ] {
            let err = parse_url(url).unwrap_err().to_string();
            assert!(err.contains(reason), "{url}: {err}");
            assert!(err.contains(url), "{url}: {err}");
        }
    }

    #[test]
    fn only_200_is_ready() {
        let answer = |status, line: &str, body: &str| {
            Ok(Answer {
                status,
                status_line: line.into(),
                body: body.into(),
            })
        };
        assert!(verdict("u", &answer(200, "200 OK", "ready")).0);
        for (status, line) in [(204, "204 No Content"), (301, "301 Moved"), (503, "503 x")] {
            let (ok, msg) = verdict("u", &answer(status, line, "why"));
            assert!(!ok, "{status}");
            assert_eq!(msg, format!("not ready: u answered {line}: why"));
        }
    }
}
