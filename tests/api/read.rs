//! The read API (`GET /api/v1/releases`, `GET`/`DELETE /api/v1/defects/…`)
//! and the summary page at `/`: the same numbers as `/metrics`.

use serde_json::{Value, json};

use crate::helpers::{Exposition, TestApp, settings, spawn_app, spawn_with};

/// Two products, three releases, one unattributed defect, posted to the
/// exporter at `base`.
pub async fn post_history(client: &reqwest::Client, base: &str) {
    let post = |path: &'static str, body: Value| {
        let req = client.post(format!("{base}{path}")).json(&body);
        async move {
            let resp = req.send().await.expect("request sent");
            assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        }
    };
    let ev = |id: &str, product: &str, stage: &str, release: &str| json!({"id": id, "product": product, "stage": stage, "release": release});
    let mut events = Vec::new();
    for i in 0..7 {
        events.push(ev(&format!("P-{i}"), "payments", "qa", "v2.4.0-rc.1"));
    }
    for i in 7..9 {
        events.push(ev(&format!("P-{i}"), "payments", "code_review", "2.4.0"));
    }
    for i in 9..12 {
        events.push(ev(&format!("P-{i}"), "payments", "production", "2.4.0"));
    }
    events.push(ev("P-12", "payments", "production", "2.3.0"));
    events.push(ev("P-13", "payments", "automated_tests", "2.3.0"));
    events.push(json!({"id": "P-14", "product": "payments", "stage": "qa"}));
    events.push(ev("S-1", "search", "automated_tests", "1.0"));
    post("/api/v1/events", Value::Array(events)).await;
    for (release, at) in [
        ("v2.4.0", "2026-01-10T09:00:00Z"),
        ("2.3.0", "2025-12-01T09:00:00Z"),
    ] {
        let body = json!({"product": "payments", "release": release, "released_at": at});
        post("/api/v1/releases", body).await;
    }
}

/// Asserts every number of `report` (the JSON of `report --format json` or
/// `GET /api/v1/releases`) equals its sample on `/metrics`.
pub fn assert_report_matches_metrics(report: &Value, m: &Exposition) {
    let releases = report["releases"].as_array().expect("releases");
    let products = report["products"].as_array().expect("products");
    assert!(!releases.is_empty() && !products.is_empty(), "{report}");
    assert_eq!(
        releases.len(),
        m.count("bug_escape_release_defects"),
        "{report}"
    );
    for r in releases {
        assert_release_matches(r, m);
    }
    for p in products {
        assert_product_matches(p, m);
    }
    let failing = releases.iter().filter(|r| !r["failing_stage"].is_null());
    assert_eq!(
        failing.count(),
        m.count("bug_escape_release_failing_stage_info"),
        "{report}"
    );
}

/// Two numbers printed the same. serde_json's default float parser (without
/// `float_roundtrip`) may land one ULP off the shortest representation both
/// sides print; the text values are identical, so equal up to that.
fn same(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 2.0 * f64::EPSILON * a.abs().max(b.abs()),
        (a, b) => a == b,
    }
}

/// One release of a report: its counts, rate, interval, release time,
/// stages and leakiest stage's owner, as on `/metrics`.
fn assert_release_matches(r: &Value, m: &Exposition) {
    let num = |v: &Value| v.as_f64();
    let labels = [
        ("product", r["product"].as_str().unwrap()),
        ("release", r["release"].as_str().unwrap()),
    ];
    for (field, family) in [
        ("defects", "bug_escape_release_defects"),
        ("escaped", "bug_escape_release_escaped_defects"),
        ("escape_rate", "bug_escape_rate_ratio"),
        ("lower", "bug_escape_rate_lower_ratio"),
        ("upper", "bug_escape_rate_upper_ratio"),
    ] {
        let (got, want) = (num(&r[field]), m.get(family, &labels));
        assert!(same(got, want), "{field} of {r}: {got:?} vs {want:?}");
    }
    let released = r["released_at"].as_str().map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0
    });
    assert_eq!(
        released,
        m.get("bug_escape_release_timestamp_seconds", &labels),
        "{r}"
    );
    for s in r["stages"].as_array().unwrap() {
        let stage = s["stage"].as_str().unwrap();
        let l = [labels[0], labels[1], ("stage", stage)];
        assert_eq!(num(&s["defects"]), m.get("bug_escape_defects", &l), "{s}");
        let want = m.get("bug_escape_stage_leak_ratio", &l);
        assert!(same(num(&s["leak"]), want), "{s} vs {want:?}");
    }
    if let Some(stage) = r["failing_stage"].as_str() {
        let l = [
            labels[0],
            labels[1],
            ("stage", stage),
            ("owner", r["failing_stage_owner"].as_str().unwrap()),
            ("basis", r["failing_stage_basis"].as_str().unwrap()),
        ];
        let info = m.get("bug_escape_release_failing_stage_info", &l);
        assert_eq!(info, Some(1.0), "{r}");
    }
    if let Some(stage) = r["leakiest_stage"].as_str() {
        let owner = r["leakiest_stage_owner"].as_str().unwrap();
        let l = [labels[0], ("stage", stage), ("owner", owner)];
        assert_eq!(m.get("bug_escape_stage_owner_info", &l), Some(1.0), "{r}");
    }
}

/// One product of a report: its pooled recent rate, left-out releases,
/// unattributed defects and band thresholds, as on `/metrics`.
fn assert_product_matches(p: &Value, m: &Exposition) {
    let num = |v: &Value| v.as_f64();
    let labels = [("product", p["product"].as_str().unwrap())];
    for (field, family) in [
        ("recent_defects", "bug_escape_recent_defects"),
        ("recent_rate", "bug_escape_recent_rate_ratio"),
        ("lower", "bug_escape_recent_rate_lower_ratio"),
        ("upper", "bug_escape_recent_rate_upper_ratio"),
        ("releases_left_out", "bug_escape_releases_left_out"),
    ] {
        let (got, want) = (num(&p[field]), m.get(family, &labels));
        assert!(same(got, want), "{field} of {p}: {got:?} vs {want:?}");
    }
    let unattributed: f64 = m
        .samples
        .iter()
        .filter(|(n, l, _)| n == "bug_escape_unattributed_defects" && l["product"] == labels[0].1)
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(num(&p["unattributed"]), Some(unattributed), "{p}");
    for band in ["strong", "healthy", "attention"] {
        assert_eq!(
            num(&p["thresholds"][band]),
            m.get(
                "bug_escape_band_threshold_ratio",
                &[labels[0], ("band", band)]
            ),
        );
    }
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .delete(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_releases_report_has_the_numbers_of_the_metrics() {
    let (app, _dir) = spawn_app().await;
    post_history(&app.client, &app.base).await;
    let resp = get(&app, "/api/v1/releases").await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    let m = app.metrics().await;
    assert_report_matches_metrics(&report, &m);
    // 2.4.0 (newest): 12 defects, 3 escaped, code_review the leakiest stage.
    let r = report["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["product"] == "payments" && r["release"] == "2.4.0")
        .expect("payments 2.4.0");
    assert_eq!(
        (r["defects"].as_u64(), r["escaped"].as_u64()),
        (Some(12), Some(3))
    );
    assert_eq!(r["band"], "leaking");
    assert_eq!(r["released_at"], "2026-01-10T09:00:00Z");
    // Nothing was caught at automated_tests (development is untracked by
    // default): all 10 that reached it leaked.
    assert_eq!(r["leakiest_stage"], "automated_tests", "{r}");
    assert_eq!(r["leakiest_stage_leak"], 1.0, "{r}");
    let p = report["products"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product"] == "payments")
        .expect("payments");
    assert_eq!(p["unattributed"], 1);
    assert_eq!(
        (p["recent_defects"].as_u64(), p["recent_escaped"].as_u64()),
        (Some(14), Some(4))
    );

    // One product only; an unknown product gives empty lists.
    let only: Value = get(&app, "/api/v1/releases?product=search")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only["releases"].as_array().unwrap().len(), 1, "{only}");
    assert_eq!(only["products"][0]["product"], "search");
    let none: Value = get(&app, "/api/v1/releases?product=nope")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({"releases": [], "products": []}));
    // Unknown or repeated parameters are refused, naming them.
    for q in ["?prodcut=x", "?product=a&product=b"] {
        let resp = get(&app, &format!("/api/v1/releases{q}")).await;
        assert_eq!(resp.status(), 422, "{q}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_field");
        assert!(
            body["field"].as_str().unwrap().starts_with("prod"),
            "{body}"
        );
    }
    app.stop().await;
}

/// The rules of POST apply to a deletion: a webhook's namespace, a future
/// or bad time, an unknown parameter are each a 422 naming the field.
async fn assert_bad_deletions_refused(app: &TestApp) {
    for (path, field) in [
        ("/api/v1/defects/github/1", "source"),
        (
            "/api/v1/defects/generic/PAY-1?updated_at=2999-01-01T00:00:00Z",
            "updated_at",
        ),
        (
            "/api/v1/defects/generic/PAY-1?updated_at=yesterday",
            "updated_at",
        ),
        ("/api/v1/defects/generic/PAY-1?deleted=false", "deleted"),
    ] {
        let resp = delete(app, path).await;
        assert_eq!(resp.status(), 422, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["field"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn a_stored_defect_is_shown_deleted_through_the_write_rules_and_404_when_unknown() {
    let (app, _dir) = spawn_app().await;
    app.events(json!({
        "id": "PAY-1", "product": "payments", "stage": "production", "release": "v2.4.0-rc.1",
        "cause": "coverage", "severity": "critical", "detected_by": "user", "team": "core",
        "found_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-03T00:00:00Z"
    }))
    .await;
    let resp = get(&app, "/api/v1/defects/generic/PAY-1").await;
    assert_eq!(resp.status(), 200);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(
        d,
        json!({
            "source": "generic", "id": "PAY-1", "product": "payments",
            "origin": {"kind": "", "namespace": "payments"},
            "release_raw": "v2.4.0-rc.1", "release": "2.4.0", "stage": "production",
            "cause": "coverage", "severity": "critical", "detected_by": "user", "team": "core",
            "status": "valid", "deleted": false,
            "found_at": "2026-01-02T03:04:05Z", "updated_at": "2026-01-03T00:00:00Z"
        })
    );
    let resp = get(&app, "/api/v1/defects/generic/PAY-2").await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["reason"].as_str().unwrap().contains("PAY-2"), "{body}");

    // Older than the stored defect: stale, nothing changes.
    let resp = delete(
        &app,
        "/api/v1/defects/generic/PAY-1?updated_at=2026-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 0, "unchanged": 0, "stale": 1}));
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "payments"), ("release", "2.4.0")]
        ),
        Some(1.0)
    );
    // Now: applied, the defect leaves the counts and stays as a tombstone.
    let resp = delete(&app, "/api/v1/defects/generic/PAY-1").await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"accepted": 1, "unchanged": 0, "stale": 0}));
    let d: Value = get(&app, "/api/v1/defects/generic/PAY-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["deleted"], true, "{d}");
    assert_ne!(d["updated_at"], "2026-01-03T00:00:00Z");
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "payments"), ("release", "2.4.0")]
        )
        .unwrap_or(0.0),
        0.0
    );
    assert_bad_deletions_refused(&app).await;
    // A deletion of a defect never seen stores a tombstone, as POST does.
    let body: Value = delete(&app, "/api/v1/defects/generic/NEW%2F1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["accepted"], 1);
    let d: Value = get(&app, "/api/v1/defects/generic/NEW%2F1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (d["id"].as_str(), d["deleted"].as_bool()),
        (Some("NEW/1"), Some(true))
    );
    app.stop().await;
}

#[tokio::test]
async fn the_read_api_takes_the_write_apis_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.api_token = Some("r3ad-token".into());
    let app = spawn_with(s).await;
    for (method, path) in [
        ("GET", "/api/v1/releases"),
        ("GET", "/api/v1/defects/generic/1"),
        ("DELETE", "/api/v1/defects/generic/1"),
    ] {
        let url = format!("{}{path}", app.base);
        let req = |token: Option<&str>| {
            let r = app.client.request(method.parse().unwrap(), &url);
            match token {
                Some(t) => r.bearer_auth(t),
                None => r,
            }
        };
        let resp = req(None).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "auth");
        let resp = req(Some("wrong")).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
        let resp = req(Some("r3ad-token")).send().await.unwrap();
        assert!(
            [200, 404].contains(&resp.status().as_u16()),
            "{method} {path}: {}",
            resp.status()
        );
    }
    // The document needs no token.
    let resp = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn the_summary_page_escapes_hostile_names_and_shows_the_numbers() {
    let (app, _dir) = spawn_app().await;
    let hostile = "<script>alert(1)</script>\"'&";
    app.events(json!([
        {"id": "1", "product": hostile, "stage": "production", "release": "<b>1.0</b>"},
        {"id": "2", "product": hostile, "stage": "qa", "release": "<b>1.0</b>"},
    ]))
    .await;
    let resp = get(&app, "/").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<b>1.0"), "{html}");
    assert!(
        html.contains("data-product=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;\""),
        "{html}"
    );
    assert!(html.contains("<h2>&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;</h2>"));
    assert!(
        html.contains("data-release=\"&lt;b&gt;1.0&lt;/b&gt;\" data-rate=\"0.5\""),
        "{html}"
    );
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("<a href=\"metrics\">"));
    app.stop().await;
}
