//! Bytes of deliveries not yet authenticated take room in their own budget
//! (`unauthenticated_bytes`), never in the write queue: beyond it a JSON 503
//! with `Retry-After`, while a signed delivery still gets through.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::{self, fixture, sign, spawn_with};

const LIMIT: usize = 64 * 1024;

#[tokio::test]
async fn unauthenticated_bytes_are_bounded_and_signed_deliveries_get_through() {
    let mut s = helpers::settings();
    s.webhooks.github.conventions.default_stage = Some("qa".into());
    s.max_body_bytes = LIMIT;
    s.unauthenticated_bytes = LIMIT;
    s.write_queue_wait = "50ms".into();
    let app = spawn_with(s).await;

    // A sender that declares a full body and sends a little of it holds the
    // whole budget while its bytes are awaited.
    let mut slow = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-github-event: issues\r\nx-github-delivery: slow\r\nx-hub-signature-256: sha256=00\r\ncontent-length: {LIMIT}\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.expect("send head");
    let m = wait_for_budget(&app, LIMIT as f64).await;
    assert_eq!(m, LIMIT as f64, "the slow body holds its declared room");

    // Another delivery, signed or not, finds no room: 503 JSON, Retry-After,
    // counted; its body was drained so the answer arrives.
    let body = fixture("github/issues_opened.json");
    let url = format!("http://{}/webhooks/github", app.addr);
    let resp = signed_delivery(&app, &body).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let json: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(json["error"], "unauthenticated_full");
    assert!(
        json["reason"].is_string() && json.get("field").is_some(),
        "{json}"
    );

    // The slow sender goes away: its room comes back.
    drop(slow);
    assert_eq!(wait_for_budget(&app, 0.0).await, 0.0);

    // Concurrent deliveries with bad signatures get 401 or 503; a signed one
    // sent meanwhile is stored.
    let bad = spawn_bad_signatures(&app, &url);
    assert_signed_delivery_gets_through(&app, &body).await;
    for b in bad {
        let status = b.await.expect("task").expect("answered");
        assert!(
            matches!(status, 401 | 503),
            "bad signature answered {status}"
        );
    }
    let m = app.metrics().await;
    assert!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "github"), ("reason", "unauthenticated_full")]
        ) >= 1.0
    );
    assert_eq!(m.value("bug_escape_unauthenticated_bytes", &[]), 0.0);
    assert_eq!(
        m.value("bug_escape_unauthenticated_capacity_bytes", &[]),
        LIMIT as f64
    );
    app.stop().await;
}

/// Polls `/metrics` until `bug_escape_unauthenticated_bytes` equals `want`
/// (at most 5 s); returns the last value seen.
async fn wait_for_budget(app: &helpers::TestApp, want: f64) -> f64 {
    let mut seen = f64::NAN;
    for _ in 0..100 {
        seen = app
            .metrics()
            .await
            .value("bug_escape_unauthenticated_bytes", &[]);
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

/// The GitHub fixture's delivery `d-1`, correctly signed.
fn signed_delivery(app: &helpers::TestApp, body: &[u8]) -> reqwest::RequestBuilder {
    let url = format!("http://{}/webhooks/github", app.addr);
    let signed = [
        ("x-github-event", "issues".to_owned()),
        ("x-github-delivery", "d-1".to_owned()),
        (
            "x-hub-signature-256",
            format!("sha256={}", sign(helpers::GITHUB_SECRET, body)),
        ),
    ];
    let mut req = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in &signed {
        req = req.header(*k, v);
    }
    req
}

/// Two dozen concurrent deliveries of a near-full body with a bad signature;
/// each task yields the status it was answered.
fn spawn_bad_signatures(
    app: &helpers::TestApp,
    url: &str,
) -> Vec<tokio::task::JoinHandle<reqwest::Result<u16>>> {
    (0..24)
        .map(|i| {
            let client = app.client.clone();
            let url = url.to_owned();
            tokio::spawn(async move {
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", format!("bad-{i}"))
                    .header("x-hub-signature-256", "sha256=0000")
                    .body(vec![b' '; LIMIT - 1])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect()
}

/// A signed delivery sent while the bad ones hold the budget is stored,
/// perhaps after a few 503s telling it to retry.
async fn assert_signed_delivery_gets_through(app: &helpers::TestApp, body: &[u8]) {
    let mut good = None;
    for attempt in 0..20 {
        let status = signed_delivery(app, body)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16();
        if status == 200 {
            good = Some(attempt);
            break;
        }
        assert_eq!(status, 503, "a signed delivery is stored or told to retry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(good.is_some(), "the signed delivery never got through");
}
