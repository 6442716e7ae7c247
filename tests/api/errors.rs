//! Bad input: a clear JSON error naming the field, the right status, nothing stored.

use serde_json::{Value, json};

use crate::helpers::{hold_write_lock, settings, spawn_app, spawn_with};

/// Posts raw bytes with a content type; returns status and JSON body.
async fn raw(
    app: &crate::helpers::TestApp,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = app.client.post(format!("{}{path}", app.base)).body(body);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error body is JSON");
    (status, body)
}

/// One bad event: what it shows, the body, and the field and reason the
/// 422 names.
struct Bad {
    what: &'static str,
    body: Value,
    field: &'static str,
    reason: &'static str,
}

/// A body refused as an invalid field.
fn invalid(what: &'static str, body: Value, field: &'static str) -> Bad {
    Bad {
        what,
        body,
        field,
        reason: "invalid_field",
    }
}

/// A body refused for a time in the future.
fn future(what: &'static str, body: Value, field: &'static str) -> Bad {
    Bad {
        what,
        body,
        field,
        reason: "future_timestamp",
    }
}

/// A valid event (`id` `a` at stage `qa`) with `key` set to `value`.
fn with(key: &str, value: Value) -> Value {
    let mut event = json!({"id": "a", "stage": "qa"});
    event[key] = value;
    event
}

/// Every kind of bad event body, one each.
fn bad_events() -> Vec<Bad> {
    let later = json!((chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339());
    vec![
        invalid("missing id", json!({"stage": "qa"}), "id"),
        invalid("empty id", with("id", json!("")), "id"),
        invalid("long id", with("id", json!("x".repeat(257))), "id"),
        invalid("id type", with("id", json!(7)), "id"),
        invalid("no stage", json!({"id": "a"}), "stage"),
        invalid("unknown stage", with("stage", json!("staging")), "stage"),
        invalid("stage type", with("stage", json!(["qa"])), "stage"),
        invalid(
            "long label",
            with("release", json!("y".repeat(129))),
            "release",
        ),
        invalid(
            "control char",
            with("product", json!("pay\nments")),
            "product",
        ),
        invalid("blank release", with("release", json!("  ")), "release"),
        invalid("unknown cause", with("cause", json!("bad-luck")), "cause"),
        invalid(
            "unknown detector",
            with("detected_by", json!("ceo")),
            "detected_by",
        ),
        invalid(
            "unknown severity",
            with("severity", json!("meh")),
            "severity",
        ),
        invalid("unknown status", with("status", json!("wontfix")), "status"),
        invalid("deleted type", with("deleted", json!("yes")), "deleted"),
        invalid(
            "bad time",
            with("updated_at", json!("yesterday")),
            "updated_at",
        ),
        future(
            "future time",
            with("updated_at", later.clone()),
            "updated_at",
        ),
        future("future found", with("found_at", later), "found_at"),
        invalid("unknown field", with("sevrity", json!("high")), "sevrity"),
        invalid("array item", json!([{"id": "a", "stage": "qa"}, 3]), "[1]"),
        invalid("scalar body", json!("hello"), ""),
    ]
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_error_and_nothing_is_stored() {
    let (app, _dir) = spawn_app().await;
    let cases = bad_events();
    for Bad {
        what,
        body,
        field,
        reason,
    } in &cases
    {
        let resp = app.post("/api/v1/events", body).await;
        assert_eq!(resp.status().as_u16(), 422, "{what}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["field"], *field, "{what}: {err}");
        assert_eq!(err["error"], *reason, "{what}: {err}");
        assert!(
            err["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}: {err}"
        );
    }
    let m = app.metrics().await;
    assert_eq!(m.count("bug_escape_release_defects"), 0);
    let unattributed: f64 = m
        .samples
        .iter()
        .filter(|(n, _, _)| n == "bug_escape_unattributed_defects")
        .map(|s| s.2)
        .sum();
    assert_eq!(unattributed, 0.0);
    let rejected = |r| {
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "generic"), ("reason", r)],
        )
    };
    assert_eq!(rejected("future_timestamp"), 2.0);
    assert_eq!(rejected("invalid_field"), (cases.len() - 2) as f64);
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_wrong_media_type_and_oversized_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_body_bytes = 1000;
    let app = spawn_with(s).await;
    let (status, body) = raw(
        &app,
        "/api/v1/events",
        Some("application/json"),
        b"{\"id\": ".to_vec(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed")));
    let (status, body) = raw(&app, "/api/v1/events", Some("text/plain"), b"{}".to_vec()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (status, _) = raw(&app, "/api/v1/events", None, b"{}".to_vec()).await;
    assert_eq!(status, 415);
    let big =
        serde_json::to_vec(&json!({"id": "a", "stage": "qa", "team": "t".repeat(2000)})).unwrap();
    let (status, body) = raw(&app, "/api/v1/events", Some("application/json"), big).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("too_large")));
    // Chunked, with no Content-Length: still refused once over the limit.
    let stream = futures_stream(vec![vec![b' '; 600], vec![b' '; 600]]);
    let resp = app
        .client
        .post(format!("{}/api/v1/events", app.base))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let m = app.metrics().await;
    let rejected = |r| {
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "generic"), ("reason", r)],
        )
    };
    assert_eq!(
        (
            rejected("malformed"),
            rejected("unsupported_media_type"),
            rejected("too_large")
        ),
        (1.0, 2.0, 2.0)
    );
    app.stop().await;
}

fn futures_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn the_bearer_token_is_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.api_token = Some("s3cret-token".into());
    let app = spawn_with(s).await;
    let ev = json!({"id": "a", "stage": "qa", "release": "1.0"});
    let resp = app.post("/api/v1/events", &ev).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let resp = app
        .client
        .post(format!("{}/api/v1/events", app.base))
        .bearer_auth("wrong")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "auth");
    assert!(
        app.metrics()
            .await
            .get("bug_escape_release_defects", &[("release", "1.0")])
            .is_none()
    );
    let resp = app
        .client
        .post(format!("{}/api/v1/events", app.base))
        .bearer_auth("s3cret-token")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "generic"), ("reason", "auth")]
        ),
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_locked_store_answers_503_and_recovers() {
    let (app, dir) = spawn_app().await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0"}))
        .await;
    // Another process holds the write lock longer than the busy timeout.
    let (release, holder) = hold_write_lock(&dir.path().join("bug-escape.db"));
    let resp = app
        .post(
            "/api/v1/events",
            &json!({"id": "b", "stage": "qa", "release": "1.0"}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "store_unavailable");
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    release.send(()).unwrap();
    holder.join().unwrap();
    // Not stored, and the retry succeeds.
    assert_eq!(
        app.metrics()
            .await
            .value("bug_escape_release_defects", &[("release", "1.0")]),
        1.0
    );
    app.events(json!({"id": "b", "stage": "qa", "release": "1.0"}))
        .await;
    assert_eq!(
        app.metrics()
            .await
            .value("bug_escape_release_defects", &[("release", "1.0")]),
        2.0
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn bad_release_times_are_refused() {
    let (app, _dir) = spawn_app().await;
    for (body, field) in [
        (
            json!({"product": "p", "released_at": "2026-01-01T00:00:00Z"}),
            "release",
        ),
        (json!({"product": "p", "release": "1.0"}), "released_at"),
        (
            json!({"product": "p", "release": "1.0", "released_at": "soon"}),
            "released_at",
        ),
        (
            json!({"product": "p", "release": "1.0", "released_at": "2999-01-01T00:00:00Z"}),
            "released_at",
        ),
    ] {
        let resp = app.post("/api/v1/releases", &body).await;
        assert_eq!(resp.status(), 422);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["field"], field);
    }
    assert_eq!(
        app.metrics()
            .await
            .count("bug_escape_release_timestamp_seconds"),
        0
    );
    app.stop().await;
}

/// Checks one answer: a JSON body ends with a line end, parses, and its
/// `Content-Length` (when sent) counts every byte. Returns whether it was JSON.
async fn json_line(what: &str, resp: reqwest::Response) -> bool {
    let json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let length = resp
        .headers()
        .get("content-length")
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    let bytes = resp.bytes().await.unwrap();
    if let Some(n) = length {
        assert_eq!(n, bytes.len(), "{what}: Content-Length");
    }
    if json {
        assert!(bytes.ends_with(b"\n"), "{what}: no line end: {bytes:?}");
        assert!(!bytes.ends_with(b"\n\n"), "{what}: two line ends");
        serde_json::from_slice::<Value>(&bytes)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {bytes:?}"));
    }
    json
}

#[tokio::test]
async fn every_json_answer_ends_with_a_line_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_body_bytes = 1024;
    let app = spawn_with(s).await;
    app.events(json!({"id": "D-1", "stage": "qa", "release": "1.0"}))
        .await;
    let url = |path: &str| format!("{}{path}", app.base);
    let mut json_answers = 0;
    for &(method, path) in bug_escape_exporter::http::ROUTES {
        let path = path.replace("{source}", "generic").replace("{id}", "D-1");
        let method: reqwest::Method = method.parse().unwrap();
        // A good request, and a malformed one for the routes that take a body.
        let good = match path.as_str() {
            "/api/v1/events" => json!({"id": "D-2", "stage": "production", "release": "1.0"}),
            "/api/v1/releases" => json!({"release": "1.0", "released_at": "2026-01-01T00:00:00Z"}),
            _ => json!({}),
        };
        let mut req = app.client.request(method.clone(), url(&path));
        if method == reqwest::Method::POST {
            req = req.json(&good);
        }
        let resp = req.send().await.unwrap();
        json_answers += usize::from(json_line(&format!("{method} {path}"), resp).await);
        if method != reqwest::Method::GET {
            let resp = app
                .client
                .request(method.clone(), url(&path))
                .header("content-type", "application/json")
                .body("{")
                .send()
                .await
                .unwrap();
            json_answers += usize::from(json_line(&format!("{method} {path} `{{`"), resp).await);
        }
    }
    // The edge's own answers: 404, 405, 413, and a query refused (422).
    let refused = [
        app.client.get(url("/nowhere")),
        app.client.put(url("/healthz")),
        app.client
            .post(url("/api/v1/events"))
            .header("content-type", "application/json")
            .body(vec![b' '; 4096]),
        app.client.get(url("/api/v1/releases?nonsense=1")),
    ];
    for req in refused {
        let resp = req.send().await.unwrap();
        let what = format!("{} {}", resp.status(), resp.url().path());
        assert!(json_line(&what, resp).await, "{what}: not JSON");
        json_answers += 1;
    }
    assert!(json_answers >= 20, "{json_answers} JSON answers checked");
    // A HEAD's Content-Length is the GET body's, line end included.
    for path in [
        "/api/v1/releases",
        "/api/v1/openapi.json",
        "/api/v1/defects/generic/D-1",
    ] {
        let get = app.client.get(url(path)).send().await.unwrap();
        let body = get.bytes().await.unwrap();
        let head = app.client.head(url(path)).send().await.unwrap();
        assert_eq!(
            head.headers()["content-length"].to_str().unwrap(),
            body.len().to_string(),
            "HEAD {path}"
        );
    }
    app.stop().await;
}
