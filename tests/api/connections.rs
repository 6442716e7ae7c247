//! Connection bounds, over raw loopback sockets: slow-header and idle sockets
//! are closed, connections beyond `max_connections` get a JSON 503 with
//! `Retry-After` (probes still served from the reserve), never a hang.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{settings, spawn_with};

fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (or `within` passes); returns what arrived and
/// whether the socket was closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

/// `bug_escape_connections` as read on a fresh connection, which counts
/// itself and is closed by the server once answered.
async fn open_connections(addr: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("send");
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(2)).await;
    answer.lines().find_map(|l| {
        l.strip_prefix("bug_escape_connections ")?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test]
async fn slow_header_and_idle_sockets_are_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = settings(dir.path());
    s.header_read_timeout = "1s".into();
    s.idle_timeout = "2s".into();
    s.body_read_timeout = "1s".into();
    let app = spawn_with(s).await;
    let addr = addr_of(&app.base);

    // A body that stops arriving: 408 JSON after body_read_timeout (well
    // before write_timeout), nothing stored.
    let t = Instant::now();
    let mut slow_body = TcpStream::connect(&addr).await.expect("connect");
    slow_body
        .write_all(
            b"POST /api/v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .expect("send");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(4), slow_body.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"timeout""#), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Slowloris: a byte of head every 300 ms never completes it.
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    let mut closed = false;
    for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: abcdefghijklmnop" {
        if slow.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !closed {
        closed = read_until_closed(&mut slow, Duration::from_secs(3)).await.1;
    }
    assert!(closed, "slow-header socket still open");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Idle keep-alive: answered, then closed once quiet for idle_timeout.
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(closed, "idle keep-alive socket still open");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // A socket that never sends a byte goes too.
    let mut silent = TcpStream::connect(&addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(4)).await;
    assert!(closed, "silent socket still open");
    app.stop().await;
}

/// Two idle sockets take every slot; a new connection takes the place of the
/// one quiet longest, which is closed.
async fn assert_the_quietest_idle_socket_makes_room(addr: &str) {
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let mut fresh = TcpStream::connect(addr).await.expect("connect");
    fresh
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("send");
    let (answer, _) = read_until_closed(&mut fresh, Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, closed) = read_until_closed(&mut idle[0], Duration::from_secs(2)).await;
    assert!(closed, "the oldest idle connection was not closed");
    drop(idle);
    // The server has seen them close when only the asking connection is open.
    let mut open = None;
    for _ in 0..100 {
        open = open_connections(addr).await;
        if open == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, Some(1.0), "the dropped sockets still count");
}

/// A write beyond the cap gets a JSON 503 with `Retry-After`, then is closed.
async fn assert_write_refused_with_json_503(addr: &str) {
    let mut w = TcpStream::connect(addr).await.expect("connect");
    let body = r#"{"events":[]}"#;
    w.write_all(
        format!(
            "POST /api/v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("send");
    let (answer, closed) = read_until_closed(&mut w, Duration::from_secs(3)).await;
    assert!(closed, "refused connection left open");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 2"),
        "{answer}"
    );
    let json: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("")).expect("JSON body");
    assert_eq!(json["error"], "too_many_connections");
    assert!(json.get("field").is_some() && json["reason"].is_string());
}

/// A scrape and a liveness probe are served from the reserve, within a second.
async fn assert_probes_answer_within_a_second(addr: &str) {
    for path in ["/metrics", "/healthz"] {
        let t = Instant::now();
        let mut p = TcpStream::connect(addr).await.expect("connect");
        p.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await
            .expect("send");
        let (answer, _) = read_until_closed(&mut p, Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{path} took {:?}",
            t.elapsed()
        );
        if path == "/metrics" {
            assert!(answer.contains("bug_escape_connections 2"), "{answer}");
            assert!(answer.contains("bug_escape_connections_refused_total{reason=\"reserve\"}"));
        }
    }
}

#[tokio::test]
async fn beyond_the_cap_new_work_gets_a_json_503_and_probes_still_answer() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = settings(dir.path());
    s.max_connections = 2;
    s.idle_timeout = "30s".into();
    s.header_read_timeout = "30s".into();
    let app = spawn_with(s).await;
    let addr = addr_of(&app.base);

    assert_the_quietest_idle_socket_makes_room(&addr).await;

    // Two requests in flight (bodies still arriving) take every slot and
    // cannot be closed to make room.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(
            b"POST /api/v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .expect("send");
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A write: 503 JSON with Retry-After, then closed.
    assert_write_refused_with_json_503(&addr).await;

    // A scrape and a liveness probe still answer, within a second.
    assert_probes_answer_within_a_second(&addr).await;

    // Beyond the reserve too: the 503 comes at once, without reading.
    let mut reserve = Vec::new();
    for _ in 0..bug_escape_exporter::server::RESERVE {
        reserve.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    let mut over = TcpStream::connect(&addr).await.expect("connect");
    let (answer, closed) = read_until_closed(&mut over, Duration::from_secs(2)).await;
    assert!(closed);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    drop((reserve, held));

    // Slots free again: a normal request is served, as soon as the server
    // has seen the sockets close (until then it answers 503 at once).
    let mut status = 0;
    for _ in 0..100 {
        status = app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .expect("healthz")
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200);
    app.stop().await;
}
