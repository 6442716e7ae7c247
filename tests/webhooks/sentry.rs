//! `POST /webhooks/sentry`: the Zulip captures, Sentry's documented examples,
//! and the issue API served by a local stand-in for Sentry on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::helpers::{self, edited, fixture, fixture_names, spawn, spawn_with};

const ZULIP: &str = "zulip-integration-testing";

#[tokio::test]
async fn every_sentry_fixture_counts_in_production() {
    let app = spawn().await;
    let expected = [
        ("zulip_issue_assigned_to_individual.json", "accepted"),
        ("zulip_issue_created_for_exception.json", "accepted"),
        ("zulip_issue_ignored.json", "accepted"),
        // The same issue as `ignored`, same lastSeen: archived is kept by
        // default, so resolving it changes nothing that is stored.
        ("zulip_issue_resolved.json", "unchanged"),
    ];
    let names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(names, fixture_names("sentry"), "every fixture is exercised");
    for (file, field) in expected {
        let r = app
            .sentry("issue", &fixture(&format!("sentry/{file}")))
            .await;
        assert_eq!(r.expect(200).json[field], 1, "{file}: {}", r.text);
    }
    let m = app.metrics().await;
    // Three issues (resolved and ignored are the same one), all still counted:
    // resolved escaped all the same, archived is kept by default.
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", ZULIP), ("stage", "production")]
        ),
        3.0
    );
}

#[tokio::test]
async fn archived_issues_follow_configuration() {
    let mut s = helpers::settings();
    s.webhooks.sentry.archived = bug_escape_exporter::config::webhooks::Disposition::Invalid;
    let app = spawn_with(s).await;
    app.sentry("issue", &fixture("sentry/zulip_issue_resolved.json"))
        .await
        .expect(200);
    let unattributed = |m: &helpers::Metrics| {
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", ZULIP), ("stage", "production")],
        )
    };
    assert_eq!(unattributed(&app.metrics().await), 1.0);
    app.sentry("issue", &fixture("sentry/zulip_issue_ignored.json"))
        .await
        .expect(200);
    assert_eq!(unattributed(&app.metrics().await), 0.0);
}

#[tokio::test]
async fn error_webhooks_attribute_their_issue_first_one_wins() {
    let app = spawn().await;
    // Sentry's documented error example has no release: nothing to attach.
    let r = app
        .sentry("error", &fixture("sentry-docs/error_created.json"))
        .await;
    assert_eq!(r.expect(200).json["ignored"], "no_release");
    // The error arrives before the issue it belongs to.
    let r = app
        .sentry(
            "error",
            &fixture("sentry-docs/error_created.with-release.json"),
        )
        .await;
    r.expect(200);
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "front-end"), ("release", "2.4.0")]
        ),
        None,
        "not a defect until the issue is announced"
    );
    app.sentry("issue", &fixture("sentry-docs/issue_created.json"))
        .await
        .expect(200);
    let rel = [("product", "front-end"), ("release", "2.4.0")];
    assert_eq!(
        app.metrics()
            .await
            .get("bug_escape_release_escaped_defects", &rel),
        Some(1.0)
    );
    // A later error of the same issue in another release changes nothing; a
    // later issue event (no release in it) keeps the attribution.
    let later = edited("sentry-docs/error_created.with-release.json", |v| {
        v["data"]["error"]["release"] = json!("front-end@2.5.0");
    });
    assert_eq!(
        app.sentry("error", &later).await.expect(200).json["unchanged"],
        1
    );
    let resolved = edited("sentry-docs/issue_created.json", |v| {
        v["action"] = json!("resolved");
        v["data"]["issue"]["status"] = json!("resolved");
        v["data"]["issue"]["lastSeen"] = json!("2019-08-20T10:00:00Z");
    });
    app.sentry("issue", &resolved).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(m.get("bug_escape_release_escaped_defects", &rel), Some(1.0));
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "front-end"), ("release", "2.5.0")]
        ),
        None
    );
}

/// What the stand-in for Sentry saw and answers.
#[derive(Clone, Default)]
struct StandIn {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    status: Arc<Mutex<u16>>,
    delay: Arc<Mutex<Duration>>,
    /// Answer with a redirect here instead.
    redirect: Arc<Mutex<Option<String>>>,
}

async fn issue_api(
    State(s): State<StandIn>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    s.seen
        .lock()
        .expect("lock")
        .push((format!("/api/0/organizations/{org}/issues/{id}/"), auth));
    if let Some(to) = s.redirect.lock().expect("lock").clone() {
        return (StatusCode::FOUND, [("location", to)], axum::Json(json!({}))).into_response();
    }
    let delay = *s.delay.lock().expect("lock");
    tokio::time::sleep(delay).await;
    let status = *s.status.lock().expect("lock");
    // Shaped like Sentry's "Retrieve an Issue" answer, reduced to what matters.
    let body = json!({
        "id": id,
        "shortId": "FRONT-END-9",
        "firstRelease": {"version": "front-end@2.4.0", "shortVersion": "2.4.0"},
        "lastRelease": {"version": "front-end@2.6.1"}
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        axum::Json(body),
    )
        .into_response()
}

/// Starts the stand-in on loopback; answers 200 until told otherwise.
async fn stand_in() -> (String, StandIn) {
    let state = StandIn::default();
    *state.status.lock().expect("lock") = 200;
    let app = Router::new()
        .route("/api/0/organizations/{org}/issues/{id}/", get(issue_api))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), state)
}

fn with_api(url: &str) -> bug_escape_exporter::config::Settings {
    let mut s = helpers::settings();
    s.webhooks.sentry.api.api_token = Some("sntrys_test_token".into());
    s.webhooks.sentry.api.api_url = url.to_owned();
    s.webhooks.sentry.organization = Some("test-org".into());
    s.webhooks.sentry.api_timeout = "300ms".into();
    s
}

#[tokio::test]
async fn first_release_comes_from_the_issue_api() {
    let (url, sentry) = stand_in().await;
    let app = spawn_with(with_api(&url)).await;
    let r = app
        .sentry("issue", &fixture("sentry-docs/issue_created.json"))
        .await;
    assert_eq!(r.expect(200).json["accepted"], 2, "{}", r.text);
    let seen = sentry.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![(
            "/api/0/organizations/test-org/issues/1170820242/".to_owned(),
            "Bearer sntrys_test_token".to_owned()
        )]
    );
    let rel = [("product", "front-end"), ("release", "2.4.0")];
    assert_eq!(
        app.metrics().await.get("bug_escape_release_defects", &rel),
        Some(1.0)
    );
    // Only `created` asks: a resolve does not call again and keeps the release.
    let resolved = edited("sentry-docs/issue_created.json", |v| {
        v["action"] = json!("resolved");
        v["data"]["issue"]["lastSeen"] = json!("2019-08-21T00:00:00Z");
    });
    app.sentry("issue", &resolved).await.expect(200);
    assert_eq!(sentry.seen.lock().expect("lock").len(), 1);
    assert_eq!(
        app.metrics().await.get("bug_escape_release_defects", &rel),
        Some(1.0)
    );
}

/// The issue id comes from the webhook: it reaches the issue API as one
/// percent-encoded path segment, never as more path or a query.
#[tokio::test]
async fn the_issue_id_of_a_webhook_is_one_encoded_path_segment() {
    let (url, sentry) = stand_in().await;
    let app = spawn_with(with_api(&url)).await;
    let odd = "42 x/../../7?stage=qa#f";
    let body = edited("sentry-docs/issue_created.json", |v| {
        v["data"]["issue"]["id"] = json!(odd);
    });
    let r = app.sentry("issue", &body).await;
    assert_eq!(r.expect(200).json["accepted"], 2, "{}", r.text);
    let seen = sentry.seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![(
            format!("/api/0/organizations/test-org/issues/{odd}/"),
            "Bearer sntrys_test_token".to_owned()
        )]
    );
}

/// A redirect of the issue API is not followed: the token goes to
/// `api_url` only, never to the host a redirect names.
#[tokio::test]
async fn a_redirect_of_the_issue_api_is_not_followed() {
    let (url, sentry) = stand_in().await;
    // Another origin (the same host, another port) that would answer.
    let (elsewhere, other) = stand_in().await;
    *sentry.redirect.lock().expect("lock") = Some(format!(
        "{elsewhere}/api/0/organizations/test-org/issues/1170820242/"
    ));
    let app = spawn_with(with_api(&url)).await;
    let r = app
        .sentry("issue", &fixture("sentry-docs/issue_created.json"))
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    assert_eq!(sentry.seen.lock().expect("lock").len(), 1);
    assert!(other.seen.lock().expect("lock").is_empty());
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_source_api_errors_total",
            &[("source", "sentry")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_failing_issue_api_leaves_the_defect_unattributed() {
    let (url, sentry) = stand_in().await;
    let app = spawn_with(with_api(&url)).await;
    *sentry.status.lock().expect("lock") = 500;
    let r = app
        .sentry(
            "issue",
            &fixture("sentry/zulip_issue_created_for_exception.json"),
        )
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    // Too slow: the timeout gives up.
    *sentry.status.lock().expect("lock") = 200;
    *sentry.delay.lock().expect("lock") = Duration::from_secs(3);
    let slow = edited("sentry-docs/issue_created.json", |v| {
        v["data"]["issue"]["project"]["slug"] = json!(ZULIP);
    });
    let r = app.sentry("issue", &slow).await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_source_api_errors_total",
            &[("source", "sentry")]
        ),
        2.0
    );
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", ZULIP), ("stage", "production")]
        ),
        2.0
    );
}

#[tokio::test]
async fn an_unreachable_issue_api_is_counted_not_fatal() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let app = spawn_with(with_api(&format!("http://127.0.0.1:{port}"))).await;
    let r = app
        .sentry("issue", &fixture("sentry-docs/issue_created.json"))
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    let m = app.metrics().await;
    // Both calls failed: the issue's external issues, its first release.
    assert_eq!(
        m.value(
            "bug_escape_source_api_errors_total",
            &[("source", "sentry")]
        ),
        2.0
    );
}

#[tokio::test]
async fn signatures_resources_and_switching_off() {
    let app = spawn().await;
    let body = fixture("sentry/zulip_issue_resolved.json");
    let res = ("sentry-hook-resource", "issue".to_owned());
    app.post("/webhooks/sentry", std::slice::from_ref(&res), &body)
        .await
        .expect(401);
    app.post(
        "/webhooks/sentry",
        &[
            res.clone(),
            ("sentry-hook-signature", helpers::sign("x", &body)),
        ],
        &body,
    )
    .await
    .expect(401);
    // Missing or odd resource header.
    let sig = (
        "sentry-hook-signature",
        helpers::sign(helpers::SENTRY_SECRET, &body),
    );
    app.post("/webhooks/sentry", std::slice::from_ref(&sig), &body)
        .await
        .expect(400);
    assert_eq!(
        app.sentry("installation", &body).await.expect(200).json["ignored"],
        "unsupported_event"
    );
    app.sentry("Issue Alert!", &body).await.expect(400);
    let no_id = edited("sentry/zulip_issue_resolved.json", |v| {
        v["data"]["issue"]
            .as_object_mut()
            .expect("issue")
            .remove("id");
    });
    assert_eq!(
        app.sentry("issue", &no_id).await.expect(422).json["field"],
        "data.issue.id"
    );

    let mut s = helpers::settings();
    s.webhooks.sentry.count_issues = false;
    let off = spawn_with(s).await;
    let r = off.sentry("issue", &body).await;
    assert_eq!(r.expect(200).json["ignored"], "not_a_defect");
}

/// An exporter that deletes archived Sentry issues.
async fn deleting_archived() -> helpers::TestApp {
    let mut s = helpers::settings();
    s.webhooks.sentry.archived = bug_escape_exporter::config::webhooks::Disposition::Delete;
    spawn_with(s).await
}

/// The archived capture, and the same issue unarchived: Sentry's `unresolved`
/// snapshot, whose `lastSeen` is unchanged (no new event came in).
fn archive_and_unarchive() -> (Vec<u8>, Vec<u8>) {
    let archive = fixture("sentry/zulip_issue_ignored.json");
    let unarchive = edited("sentry/zulip_issue_ignored.json", |v| {
        v["action"] = json!("unresolved");
        v["data"]["issue"]["status"] = json!("unresolved");
    });
    (archive, unarchive)
}

async fn counted(app: &helpers::TestApp) -> f64 {
    app.metrics().await.value(
        "bug_escape_unattributed_defects",
        &[("product", ZULIP), ("stage", "production")],
    )
}

// Sent after the capture's lastSeen (2020-04-30T05:54:15Z), ten seconds apart.
const SENT_RESOLVED: &str = "1588230000";
const SENT_ARCHIVED: &str = "1588230010";
const SENT_UNARCHIVED: &str = "1588230020";

#[tokio::test]
async fn archive_then_unarchive_round_trips_when_archived_issues_are_deleted() {
    let app = deleting_archived().await;
    let (archive, unarchive) = archive_and_unarchive();
    let resolved = fixture("sentry/zulip_issue_resolved.json");
    let r = app.sentry_sent_at("issue", &resolved, SENT_RESOLVED).await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    assert_eq!(counted(&app).await, 1.0);
    let r = app.sentry_sent_at("issue", &archive, SENT_ARCHIVED).await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    assert_eq!(counted(&app).await, 0.0, "archived: deleted");
    let r = app
        .sentry_sent_at("issue", &unarchive, SENT_UNARCHIVED)
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    assert_eq!(counted(&app).await, 1.0, "unarchived: counted again");
    // The archive delivered again (same bytes, same header) is older.
    let r = app.sentry_sent_at("issue", &archive, SENT_ARCHIVED).await;
    assert_eq!(r.expect(200).json["stale"], 1, "{}", r.text);
    assert_eq!(counted(&app).await, 1.0);
    // Archived once more, later: deleted again.
    let r = app.sentry_sent_at("issue", &archive, "1588230030").await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    assert_eq!(counted(&app).await, 0.0);
}

#[tokio::test]
async fn an_unarchive_that_overtakes_its_archive_stays_counted() {
    let app = deleting_archived().await;
    let (archive, unarchive) = archive_and_unarchive();
    let r = app
        .sentry_sent_at("issue", &unarchive, SENT_UNARCHIVED)
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    let r = app.sentry_sent_at("issue", &archive, SENT_ARCHIVED).await;
    assert_eq!(r.expect(200).json["stale"], 1, "{}", r.text);
    assert_eq!(counted(&app).await, 1.0);
    // Unarchive then archive, in order: archived.
    let r = app.sentry_sent_at("issue", &archive, "1588230030").await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    assert_eq!(counted(&app).await, 0.0);
}

#[tokio::test]
async fn the_delivery_time_is_checked_like_every_vendor_time() {
    let app = spawn().await;
    let body = fixture("sentry/zulip_issue_resolved.json");
    let ahead = (helpers::now_secs() + 3600).to_string();
    let r = app.sentry_sent_at("issue", &body, &ahead).await;
    r.expect(422);
    assert_eq!(r.json["error"], "future_timestamp");
    assert_eq!(r.json["field"], "Sentry-Hook-Timestamp");
    let r = app.sentry_sent_at("issue", &body, "yesterday").await;
    assert!(
        r.expect(400).text.contains("Sentry-Hook-Timestamp"),
        "{}",
        r.text
    );
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "sentry"), ("reason", "future_timestamp")]
        ),
        1.0
    );
    assert_eq!(counted(&app).await, 0.0, "nothing stored");
}
