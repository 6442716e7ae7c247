//! `bug-escape-exporter healthcheck` on the real binary: 0 against a ready
//! exporter, 1 against a server answering 503 on `/readyz`, 1 with the reason
//! on stderr when nothing listens or nothing answers in time. Loopback only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::binary::{serve, sigterm};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

fn healthcheck(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("healthcheck")
        .args(args)
        .env_remove("BUG_ESCAPE_HEALTHCHECK_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A one-route HTTP server on 127.0.0.1: answers every request with
/// `status_line` and `body`, then closes. Returns its address.
fn answering(status_line: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            // Read the request head, then answer.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            assert!(head.starts_with("GET /readyz HTTP/1.1\r\n"), "{head}");
            let _ = write!(
                s,
                "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn a_ready_exporter_exits_0_and_the_url_comes_from_the_flag_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        &["--listen", "127.0.0.1:0", "--db", "hc.db"],
        &[],
        dir.path(),
    );
    let url = format!("http://{addr}/readyz");
    let out = healthcheck(&["--url", &url, "--timeout", "5s"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("ready: {url} answered 200 OK")
    );

    let out = healthcheck(&[], &[("BUG_ESCAPE_HEALTHCHECK_URL", &url)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Any other answer is not ready: here the exporter's own 404.
    let missing = format!("http://{addr}/no-such-path");
    let out = healthcheck(&["--url", &missing], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("not ready: {missing} answered 404 Not Found")),
        "{err}"
    );
    assert!(sigterm(&mut child).success());
}

#[test]
fn a_503_on_readyz_exits_1_naming_the_status_and_the_reason() {
    let addr = answering(
        "503 Service Unavailable",
        r#"{"error":"store_unavailable","field":null,"reason":"store not writable: disk full"}"#,
    );
    let url = format!("http://{addr}/readyz");
    let out = healthcheck(&["--url", &url], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "not ready: {url} answered 503 Service Unavailable"
        )),
        "{err}"
    );
    assert!(err.contains("store not writable: disk full"), "{err}");

    // The same server answering 200 is ready: the status decides, nothing else.
    let addr = answering("200 OK", "ready\n");
    let out = healthcheck(&["--url", &format!("http://{addr}/readyz")], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn nothing_listening_exits_1_with_the_connection_error() {
    // A port that was just free: nothing listens there any more.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/readyz");
    let out = healthcheck(&["--url", &url], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "unreachable: cannot connect to 127.0.0.1:{port} ({url})"
        )),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn a_server_that_never_answers_exits_1_after_the_timeout() {
    // Accepts (the kernel's backlog does) but never writes a byte.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/readyz");
    let started = Instant::now();
    let out = healthcheck(&["--url", &url, "--timeout", "300ms"], &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("unreachable: no answer from {url} within 300ms")),
        "{err}"
    );
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    drop(listener);
}

#[test]
fn an_https_or_malformed_url_exits_1_saying_why() {
    for (url, why) in [
        ("https://127.0.0.1:10941/readyz", "https is not supported"),
        ("127.0.0.1:10941/readyz", "expected http://"),
    ] {
        let out = healthcheck(&["--url", url], &[]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let err = text(&out.stderr);
        assert!(
            err.contains("invalid --url") && err.contains(why),
            "{url}: {err}"
        );
    }
}
