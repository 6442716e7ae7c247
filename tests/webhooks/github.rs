//! `POST /webhooks/github` with the octokit payload examples.

use serde_json::json;

use crate::helpers::{
    self, GITHUB_SECRET, Metrics, edited, fixture, fixture_names, form_encode, spawn, spawn_with,
};

const REPO: &str = "Codertocat/Hello-World";

fn with_default_stage() -> bug_escape_exporter::config::Settings {
    let mut s = helpers::settings();
    s.webhooks.github.conventions.default_stage = Some("qa".into());
    s
}

/// What `/metrics` shows right after the given fixture applied (only the
/// steps that change a series are checked).
fn assert_metrics_after(file: &str, m: &Metrics) {
    let p = [("product", REPO)];
    let rel = [("product", REPO), ("release", "1.0")];
    match file {
        "issues_opened.json" => {
            assert_eq!(m.get("bug_escape_release_defects", &rel), Some(1.0));
            assert_eq!(
                m.get("bug_escape_defects", &[rel[0], rel[1], ("stage", "qa")]),
                Some(1.0)
            );
        }
        "issues_unlabeled.json" => {
            assert_eq!(m.get("bug_escape_release_defects", &rel), None);
            assert_eq!(
                m.value("bug_escape_unattributed_defects", &[p[0], ("stage", "qa")]),
                1.0
            );
        }
        "issues_milestoned.json" => {
            assert_eq!(m.get("bug_escape_release_defects", &rel), Some(1.0));
        }
        "issues_demilestoned.json" => {
            assert_eq!(
                m.value("bug_escape_unattributed_defects", &[p[0], ("stage", "qa")]),
                2.0
            );
        }
        "issues_reopened.json" => {
            assert_eq!(m.get("bug_escape_release_defects", &rel), Some(1.0));
        }
        "issues_deleted.json" | "issues_transferred.json" => {
            assert_eq!(m.get("bug_escape_release_defects", &rel), None);
            assert_eq!(
                m.value("bug_escape_unattributed_defects", &[p[0], ("stage", "qa")]),
                1.0
            );
        }
        "release_published.json" => {
            assert_eq!(
                m.get(
                    "bug_escape_release_timestamp_seconds",
                    &[p[0], ("release", "0.0.1")]
                ),
                Some(1_557_933_653.0)
            );
        }
        _ => {}
    }
}

/// The counters after all fourteen fixtures: one ping, one stale and one
/// non-defect ignored, nothing rejected for its signature.
fn assert_github_counters(m: &Metrics) {
    let src = ("source", "github");
    assert_eq!(m.value("bug_escape_events_received_total", &[src]), 14.0);
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[src, ("reason", "ping")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[src, ("reason", "stale")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[src, ("reason", "not_a_defect")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[src, ("reason", "auth")]
        ),
        0.0
    );
}

#[tokio::test]
async fn every_github_fixture_applies_in_order_with_its_real_signature() {
    let app = spawn_with(with_default_stage()).await;
    // (file, event, expected answer fields)
    let steps: &[(&str, &str, serde_json::Value)] = &[
        ("ping_payload.json", "ping", json!({"ignored": "ping"})),
        ("issues_opened.json", "issues", json!({"accepted": 1})),
        (
            "issues_opened.with-organization.json",
            "issues",
            json!({"unchanged": 1}),
        ),
        ("issues_edited.json", "issues", json!({"unchanged": 1})),
        ("issues_labeled.json", "issues", json!({"unchanged": 1})),
        // Later snapshot without the milestone: #1 becomes unattributed.
        ("issues_unlabeled.json", "issues", json!({"accepted": 1})),
        ("issues_milestoned.json", "issues", json!({"accepted": 1})),
        // Same updated_at as milestoned: the later arrival wins.
        ("issues_demilestoned.json", "issues", json!({"accepted": 1})),
        ("issues_reopened.json", "issues", json!({"accepted": 1})),
        // Same updated_at as reopened: a deletion wins.
        ("issues_deleted.json", "issues", json!({"accepted": 1})),
        // The old issue (no bug label, never stored) retracts nothing; the new
        // one is #1 of Hello-World, deleted at a later time: stale.
        (
            "issues_transferred.json",
            "issues",
            json!({"stale": 1, "ignored": 1}),
        ),
        ("release_created.json", "release", json!({"accepted": 1})),
        (
            "release_prereleased.json",
            "release",
            json!({"unchanged": 1}),
        ),
        ("release_published.json", "release", json!({"unchanged": 1})),
    ];
    let mut covered: Vec<String> = steps.iter().map(|s| s.0.to_owned()).collect();
    covered.sort();
    assert_eq!(
        covered,
        fixture_names("github"),
        "every fixture is exercised"
    );
    for (i, (file, event, want)) in steps.iter().enumerate() {
        let body = fixture(&format!("github/{file}"));
        let r = app.github(event, &format!("delivery-{i}"), &body).await;
        r.expect(200);
        for (k, v) in want.as_object().expect("object") {
            assert_eq!(&r.json[k], v, "{file}: {}", r.text);
        }
        assert_metrics_after(file, &app.metrics().await);
    }
    assert_github_counters(&app.metrics().await);
}

#[tokio::test]
async fn a_repeated_delivery_is_a_no_op() {
    let app = spawn_with(with_default_stage()).await;
    let body = fixture("github/issues_opened.json");
    app.github("issues", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &body)
        .await
        .expect(200);
    // Redelivered after the issue was deleted: must not bring it back.
    app.github("issues", "d2", &fixture("github/issues_deleted.json"))
        .await
        .expect(200);
    let r = app
        .github("issues", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &body)
        .await;
    r.expect(200);
    assert_eq!(r.json["duplicate_delivery"], true);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "github"), ("reason", "duplicate_delivery")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", REPO), ("stage", "qa")]
        ),
        0.0
    );
}

#[tokio::test]
async fn a_transferred_issue_leaves_its_old_repository() {
    let app = spawn_with(with_default_stage()).await;
    // The issue, labelled bug, while it still lived in octo-org/octo-repo.
    let before = edited("github/issues_transferred.json", |v| {
        v["action"] = json!("labeled");
        v["issue"]["labels"] = json!([{"name": "bug"}]);
        v["issue"]["updated_at"] = json!("2019-10-25T22:40:00Z");
        v.as_object_mut().expect("object").remove("changes");
    });
    app.github("issues", "t1", &before).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", "octo-org/octo-repo"), ("stage", "qa")]
        ),
        1.0
    );
    let r = app
        .github("issues", "t2", &fixture("github/issues_transferred.json"))
        .await;
    r.expect(200);
    assert_eq!(r.json["accepted"], 2, "{}", r.text);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", "octo-org/octo-repo"), ("stage", "qa")]
        ),
        0.0
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", REPO), ("release", "1.0")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn two_repositories_issue_one_are_two_defects() {
    let mut s = with_default_stage();
    s.products.insert(
        "payments".into(),
        bug_escape_exporter::config::ProductSettings {
            sources: vec![format!("github:{REPO}"), "github:acme/payments".into()],
            ..Default::default()
        },
    );
    let app = spawn_with(s).await;
    app.github("issues", "a", &fixture("github/issues_opened.json"))
        .await
        .expect(200);
    let other = edited("github/issues_opened.json", |v| {
        v["repository"]["id"] = json!(999);
        v["repository"]["full_name"] = json!("acme/payments");
    });
    app.github("issues", "b", &other).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "payments"), ("release", "1.0")]
        ),
        Some(2.0)
    );
}

/// After the five labelled issues: two defects of 2.4.0 (one escaped, with its
/// cause, severity and detector), an unknown stage and a missing one counted
/// as unclassified, one non-defect ignored.
fn assert_labels_classified(m: &Metrics) {
    let rel = [("product", REPO), ("release", "2.4.0")];
    assert_eq!(m.get("bug_escape_release_defects", &rel), Some(2.0));
    assert_eq!(m.get("bug_escape_release_escaped_defects", &rel), Some(1.0));
    assert_eq!(m.get("bug_escape_rate_ratio", &rel), Some(0.5));
    assert_eq!(
        m.get(
            "bug_escape_escaped_defects_by_cause",
            &[rel[0], rel[1], ("cause", "review")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_escaped_defects_by_severity",
            &[rel[0], rel[1], ("severity", "critical")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_escaped_defects_by_detector",
            &[rel[0], rel[1], ("detected_by", "user")]
        ),
        Some(1.0)
    );
    let unclassified = |reason| {
        m.value(
            "bug_escape_unclassified_defects",
            &[("product", REPO), ("reason", reason)],
        )
    };
    assert_eq!(unclassified("unknown_stage"), 1.0);
    assert_eq!(unclassified("no_stage"), 1.0);
    assert_eq!(
        m.value(
            "bug_escape_events_unmapped_total",
            &[("source", "github"), ("field", "stage")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "github"), ("reason", "not_a_defect")]
        ),
        1.0
    );
}

#[tokio::test]
async fn labels_classify_and_unmapped_values_stay_visible() {
    let app = spawn().await;
    let issue = |n: u64, labels: serde_json::Value, t: &str| {
        edited("github/issues_labeled.json", move |v| {
            v["issue"]["number"] = json!(n);
            v["issue"]["labels"] = labels;
            v["issue"]["updated_at"] = json!(t);
        })
    };
    let prod = json!([
        {"name": "bug"}, {"name": "stage:production"}, {"name": "release:v2.4.0-rc.1"},
        {"name": "cause:review"}, {"name": "severity:critical"}, {"name": "detected_by:user"}
    ]);
    app.github("issues", "1", &issue(1, prod, "2024-01-01T00:00:00Z"))
        .await
        .expect(200);
    let qa = json!([{"name": "Bug"}, {"name": "stage:qa"}, {"name": "release:2.4.0"}]);
    app.github("issues", "2", &issue(2, qa, "2024-01-01T00:00:00Z"))
        .await
        .expect(200);
    // Issue type Bug without a bug label; an unknown stage.
    let typed = edited("github/issues_labeled.json", |v| {
        v["issue"]["number"] = json!(3);
        v["issue"]["labels"] = json!([{"name": "stage:staging"}]);
        v["issue"]["type"] = json!({"id": 1, "name": "Bug"});
    });
    app.github("issues", "3", &typed).await.expect(200);
    // A bug with no stage label and no default stage.
    app.github(
        "issues",
        "4",
        &issue(4, json!([{"name": "bug"}]), "2024-01-01T00:00:00Z"),
    )
    .await
    .expect(200);
    // Not a bug at all.
    let r = app
        .github(
            "issues",
            "5",
            &issue(5, json!([{"name": "enhancement"}]), "2024-01-01T00:00:00Z"),
        )
        .await;
    assert_eq!(r.expect(200).json["ignored"], 1);

    assert_labels_classified(&app.metrics().await);

    // The bug label removed: it leaves the counts. Closed as duplicate: too.
    app.github(
        "issues",
        "6",
        &issue(2, json!([{"name": "stage:qa"}]), "2024-01-02T00:00:00Z"),
    )
    .await
    .expect(200);
    let dup = edited("github/issues_labeled.json", |v| {
        v["issue"]["number"] = json!(1);
        v["issue"]["labels"] =
            json!([{"name": "bug"}, {"name": "stage:production"}, {"name": "release:2.4.0"}]);
        v["issue"]["state"] = json!("closed");
        v["issue"]["state_reason"] = json!("duplicate");
        v["issue"]["updated_at"] = json!("2024-01-02T00:00:00Z");
    });
    app.github("issues", "7", &dup).await.expect(200);
    let m = app.metrics().await;
    let rel = [("product", REPO), ("release", "2.4.0")];
    assert_eq!(m.get("bug_escape_release_defects", &rel), None);
}

#[tokio::test]
async fn nothing_but_classification_is_stored() {
    let app = spawn_with(with_default_stage()).await;
    for (i, f) in ["issues_opened.json", "issues_milestoned.json"]
        .iter()
        .enumerate()
    {
        app.github("issues", &i.to_string(), &fixture(&format!("github/{f}")))
            .await
            .expect(200);
    }
    let app = app.stop().await;
    let bytes = std::fs::read(&app.db).expect("db");
    let db = String::from_utf8_lossy(&bytes);
    for secret in [
        "Spelling error in the README file",
        "accidently spelled",
        "avatars1.githubusercontent.com",
        "21031067",
        "Add new space flight simulator",
    ] {
        assert!(!db.contains(secret), "`{secret}` was stored");
    }
    assert!(db.contains(REPO), "the repository is the product namespace");
}

#[tokio::test]
async fn missing_or_wrong_signatures_are_refused_and_counted() {
    let app = spawn().await;
    let body = fixture("github/issues_opened.json");
    let event = ("x-github-event", "issues".to_owned());
    let cases = [
        vec![event.clone()],
        vec![
            event.clone(),
            (
                "x-hub-signature-256",
                format!("sha256={}", helpers::sign("wrong", &body)),
            ),
        ],
        // The signature without its `sha256=` prefix, and the SHA-1 header.
        vec![
            event.clone(),
            (
                "x-hub-signature-256",
                helpers::sign(helpers::GITHUB_SECRET, &body),
            ),
        ],
        vec![
            event.clone(),
            ("x-hub-signature", format!("sha1={}", "0".repeat(40))),
        ],
    ];
    for headers in &cases {
        let r = app.post("/webhooks/github", headers, &body).await;
        r.expect(401);
        assert_eq!(r.json["error"], "auth");
    }
    // A signature of other bytes (the body was altered in transit).
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let headers = [
        event.clone(),
        (
            "x-hub-signature-256",
            format!("sha256={}", helpers::sign(helpers::GITHUB_SECRET, &body)),
        ),
    ];
    app.post("/webhooks/github", &headers, &tampered)
        .await
        .expect(401);
    // The previous secret still works (rotation).
    let headers = [
        event.clone(),
        (
            "x-hub-signature-256",
            format!("sha256={}", helpers::sign("an-old-secret", &body)),
        ),
    ];
    app.post("/webhooks/github", &headers, &body)
        .await
        .expect(200);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "github"), ("reason", "auth")]
        ),
        5.0
    );
    assert_eq!(
        m.value("bug_escape_events_received_total", &[("source", "github")]),
        1.0
    );
}

#[tokio::test]
async fn an_unconfigured_source_refuses_with_503() {
    let mut s = helpers::settings();
    s.webhooks.github.auth.secret = None;
    let app = spawn_with(s).await;
    let body = fixture("github/issues_opened.json");
    let r = app.github("issues", "x", &body).await;
    r.expect(503);
    assert_eq!(r.json["error"], "not_configured");
    assert!(
        r.json["reason"]
            .as_str()
            .is_some_and(|m| m.contains("BUG_ESCAPE_GITHUB_SECRET"))
    );
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "github"), ("reason", "not_configured")]
        ),
        1.0
    );
}

/// Well-formed deliveries with a missing or wrong field name it in a 422; a
/// future time is its own 422; a body over `max_body_bytes` is a 413.
async fn assert_bad_fields_refused(app: &helpers::TestApp) {
    // Missing and wrong fields name the field.
    let no_time = edited("github/issues_opened.json", |v| {
        v["issue"]
            .as_object_mut()
            .expect("issue")
            .remove("updated_at");
    });
    let r = app.github("issues", "f1", &no_time).await;
    r.expect(422);
    assert_eq!(r.json["field"], "issue.updated_at");
    let no_repo = edited("github/issues_opened.json", |v| {
        v["repository"] = json!("x");
    });
    assert_eq!(
        app.github("issues", "f2", &no_repo).await.expect(422).json["field"],
        "repository"
    );
    let future = edited("github/issues_opened.json", |v| {
        v["issue"]["updated_at"] = json!("2999-01-01T00:00:00Z");
    });
    let r = app.github("issues", "f3", &future).await;
    assert_eq!(r.expect(422).json["error"], "future_timestamp");
    // Too large.
    let big = edited("github/issues_opened.json", |v| {
        v["padding"] = json!("x".repeat(70 * 1024));
    });
    app.github("issues", "f4", &big).await.expect(413);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let mut s = helpers::settings();
    s.max_body_bytes = 64 * 1024;
    let app = spawn_with(s).await;
    let signed = |body: &[u8]| {
        (
            "x-hub-signature-256",
            format!("sha256={}", helpers::sign(helpers::GITHUB_SECRET, body)),
        )
    };
    let ev = |e: &str| ("x-github-event", e.to_owned());
    let body = fixture("github/issues_opened.json");
    // Neither JSON nor a form.
    let r = app
        .post(
            "/webhooks/github",
            &[
                ev("issues"),
                signed(&body),
                ("content-type", "text/plain".into()),
            ],
            &body,
        )
        .await;
    r.expect(415);
    // Malformed JSON, correctly signed.
    let bad = b"{\"action\": ";
    app.post("/webhooks/github", &[ev("issues"), signed(bad)], bad)
        .await
        .expect(400);
    // Missing or nonsensical event header.
    app.post("/webhooks/github", &[signed(&body)], &body)
        .await
        .expect(400);
    app.post("/webhooks/github", &[ev("Issues!"), signed(&body)], &body)
        .await
        .expect(400);
    // Unknown but well-formed events are acknowledged and counted.
    let r = app
        .post("/webhooks/github", &[ev("push"), signed(&body)], &body)
        .await;
    assert_eq!(r.expect(200).json["ignored"], "unsupported_event");
    assert_bad_fields_refused(&app).await;
    let m = app.metrics().await;
    let rejected = |reason| {
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "github"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("unsupported_media_type"), 1.0);
    assert_eq!(rejected("malformed"), 3.0);
    assert_eq!(rejected("invalid_field"), 2.0);
    assert_eq!(rejected("future_timestamp"), 1.0);
    assert_eq!(rejected("too_large"), 1.0);
    assert_eq!(
        m.value(
            "bug_escape_unclassified_defects",
            &[("product", REPO), ("reason", "no_stage")]
        ),
        0.0
    );
}

/// Every sample of a scrape but the time of the last event, sorted (counters
/// are not written in a fixed order).
fn effects(m: &Metrics) -> Vec<&str> {
    let mut samples: Vec<&str> =
        m.0.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| !l.starts_with("bug_escape_last_event_timestamp_seconds"))
            // Process and connection state differs between two processes and
            // from one scrape to the next; the effects of the deliveries do not.
            .filter(|l| {
                ![
                    "process_",
                    "bug_escape_write_queue_bytes",
                    "bug_escape_unauthenticated_bytes",
                    "bug_escape_connections ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .collect();
    samples.sort_unstable();
    samples
}

#[tokio::test]
async fn a_form_encoded_delivery_has_the_effect_of_the_json_one() {
    let json_app = spawn_with(with_default_stage()).await;
    let form_app = spawn_with(with_default_stage()).await;
    let steps = [
        ("ping_payload.json", "ping"),
        ("issues_opened.json", "issues"),
        ("issues_labeled.json", "issues"),
        ("issues_deleted.json", "issues"),
        ("release_published.json", "release"),
    ];
    for (i, (file, event)) in steps.iter().enumerate() {
        let body = fixture(&format!("github/{file}"));
        let delivery = format!("delivery-{i}");
        let a = json_app.github(event, &delivery, &body).await;
        let b = form_app.github_form(event, &delivery, &body).await;
        a.expect(200);
        b.expect(200);
        assert_eq!(a.json, b.json, "{file}");
        if *file == "issues_opened.json" {
            let m = form_app.metrics().await;
            assert_eq!(
                m.get(
                    "bug_escape_defects",
                    &[("product", REPO), ("release", "1.0"), ("stage", "qa")]
                ),
                Some(1.0)
            );
            assert_eq!(effects(&m), effects(&json_app.metrics().await));
        }
    }
    let m = form_app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &[("product", REPO), ("release", "0.0.1")]
        ),
        Some(1_557_933_653.0)
    );
    assert_eq!(
        m.value("bug_escape_events_received_total", &[("source", "github")]),
        5.0
    );
    assert_eq!(effects(&m), effects(&json_app.metrics().await));
}

#[tokio::test]
async fn a_repeated_form_delivery_is_a_no_op() {
    let app = spawn_with(with_default_stage()).await;
    let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
    let opened = fixture("github/issues_opened.json");
    app.github_form("issues", id, &opened).await.expect(200);
    app.github_form("issues", "d2", &fixture("github/issues_deleted.json"))
        .await
        .expect(200);
    // Redelivered in either encoding after the deletion: must not bring it back.
    for r in [
        app.github_form("issues", id, &opened).await,
        app.github("issues", id, &opened).await,
    ] {
        assert_eq!(r.expect(200).json["duplicate_delivery"], true, "{}", r.text);
    }
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "github"), ("reason", "duplicate_delivery")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", REPO), ("release", "1.0")]
        ),
        None
    );
}

/// A signed JSON body under any content type but JSON or a form is a 415
/// whose reason names the form type too.
async fn assert_other_content_types_refused(app: &helpers::TestApp, json: &[u8]) {
    let ev = ("x-github-event", "issues".to_owned());
    let signed = |body: &[u8]| {
        (
            "x-hub-signature-256",
            format!("sha256={}", helpers::sign(GITHUB_SECRET, body)),
        )
    };
    for ct in ["text/plain", "multipart/form-data; boundary=x", ""] {
        let r = app
            .post(
                "/webhooks/github",
                &[("content-type", ct.into()), ev.clone(), signed(json)],
                json,
            )
            .await;
        r.expect(415);
        assert!(
            r.json["reason"]
                .as_str()
                .is_some_and(|m| m.contains("application/x-www-form-urlencoded")),
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn a_form_is_authenticated_first_and_needs_its_payload_field() {
    let app = spawn().await;
    let json = fixture("github/issues_opened.json");
    let form = (
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    );
    let ev = ("x-github-event", "issues".to_owned());
    let signed = |body: &[u8]| {
        (
            "x-hub-signature-256",
            format!("sha256={}", helpers::sign(GITHUB_SECRET, body)),
        )
    };
    // The signature covers the raw form bytes, not the decoded JSON.
    let encoded = form_encode(&[("payload", &json)]);
    let r = app
        .post(
            "/webhooks/github",
            &[form.clone(), ev.clone(), signed(&json)],
            &encoded,
        )
        .await;
    assert_eq!(r.expect(401).json["error"], "auth");
    // Unsigned and without the field: refused for auth, before it is decoded.
    let no_payload = form_encode(&[("payloads", &json)]);
    app.post("/webhooks/github", &[form.clone(), ev.clone()], &no_payload)
        .await
        .expect(401);
    // Signed, but no `payload`, two of them, not JSON, or empty: 400 naming it.
    let bad_forms = [
        no_payload,
        form_encode(&[("payload", &json), ("payload", &json)]),
        form_encode(&[("payload", b"{\"action\": ")]),
        Vec::new(),
    ];
    for body in &bad_forms {
        let r = app
            .post(
                "/webhooks/github",
                &[form.clone(), ev.clone(), signed(body)],
                body,
            )
            .await;
        r.expect(400);
        assert_eq!(r.json["error"], "malformed");
        assert_eq!(r.json["field"], "payload", "{}", r.text);
    }
    // Other content types are still refused.
    assert_other_content_types_refused(&app, &json).await;
    let m = app.metrics().await;
    let rejected = |reason| {
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "github"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("auth"), 2.0);
    assert_eq!(rejected("malformed"), 4.0);
    assert_eq!(rejected("unsupported_media_type"), 3.0);
    let no_stage = [("product", REPO), ("reason", "no_stage")];
    assert_eq!(m.value("bug_escape_unclassified_defects", &no_stage), 0.0);
    // A charset parameter is allowed.
    let r = app
        .post(
            "/webhooks/github",
            &[
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ev.clone(),
                signed(&encoded),
            ],
            &encoded,
        )
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_unclassified_defects", &no_stage), 1.0);
}
