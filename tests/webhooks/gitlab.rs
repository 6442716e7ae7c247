//! `POST /webhooks/gitlab` with the go-gitlab and jira-to-matrix payloads.

use serde_json::json;

use crate::helpers::{self, GITLAB_TOKEN, edited, fixture, fixture_names, spawn, spawn_with};

const TESTDATA: &str = "gitlabhq/gitlab-test";
const MATRIX: &str = "indev/gitlabtomatrix";

fn event_of(file: &str) -> &'static str {
    if file.contains("release") {
        "Release Hook"
    } else {
        "Issue Hook"
    }
}

#[tokio::test]
async fn every_gitlab_fixture_with_default_conventions() {
    let app = spawn().await;
    // None of these issues is labelled as a bug: each is acknowledged and
    // counted as not a defect; the release records its time.
    let expected = [
        ("go-gitlab_issue.json", json!({"ignored": 1})),
        ("go-gitlab_release.json", json!({"accepted": 1})),
        ("jira-to-matrix_issue_closed.json", json!({"ignored": 1})),
        ("jira-to-matrix_issue_created.json", json!({"ignored": 1})),
        ("jira-to-matrix_issue_updated.json", json!({"ignored": 1})),
    ];
    let names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(names, fixture_names("gitlab"), "every fixture is exercised");
    for (i, (file, want)) in expected.iter().enumerate() {
        let r = app
            .gitlab(
                event_of(file),
                &format!("key-{i}"),
                &fixture(&format!("gitlab/{file}")),
            )
            .await;
        r.expect(200);
        for (k, v) in want.as_object().expect("object") {
            assert_eq!(&r.json[k], v, "{file}: {}", r.text);
        }
    }
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &[
                ("product", "exm-namespace/example-project"),
                ("release", "1.0.0")
            ]
        ),
        Some(1_614_288_214.0)
    );
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "gitlab"), ("reason", "not_a_defect")]
        ),
        4.0
    );
}

#[tokio::test]
async fn every_gitlab_fixture_with_configured_conventions() {
    let mut s = helpers::settings();
    let gl = &mut s.webhooks.gitlab;
    gl.defect_labels = vec!["API".into(), "todo".into()];
    gl.milestones.insert("103".into(), "v2.4.0".into());
    gl.default_stage = Some("qa".into());
    let app = spawn_with(s).await;
    for (i, file) in fixture_names("gitlab").iter().enumerate() {
        app.gitlab(
            event_of(file),
            &format!("key-{i}"),
            &fixture(&format!("gitlab/{file}")),
        )
        .await
        .expect(200);
    }
    let m = app.metrics().await;
    // created: label ToDo, milestone 103 → 2.4.0. updated: ToDo, no milestone.
    // closed: no label → not a defect. go-gitlab: label API, no milestone.
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", MATRIX), ("release", "2.4.0")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", MATRIX), ("stage", "qa")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", TESTDATA), ("stage", "qa")]
        ),
        1.0
    );
    // The same issue as a Confidential Issue Hook, later: same defect.
    let later = edited("gitlab/go-gitlab_issue.json", |v| {
        v["object_attributes"]["updated_at"] = json!("2013-12-04T10:00:00Z");
        v["labels"] = json!([{"title": "API"}, {"title": "stage:production"}]);
    });
    let r = app
        .gitlab("Confidential Issue Hook", "conf-1", &later)
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", TESTDATA), ("stage", "production")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", TESTDATA), ("stage", "qa")]
        ),
        0.0
    );
}

#[tokio::test]
async fn labels_moves_and_duplicates() {
    let app = spawn().await;
    // GitLab's documented Issue Hook (as extended by go-gitlab) with our labels.
    let issue = |iid: u64, labels: serde_json::Value, at: &str| {
        edited("gitlab/go-gitlab_issue.json", move |v| {
            v["object_attributes"]["iid"] = json!(iid);
            v["object_attributes"]["updated_at"] = json!(at);
            v["labels"] = labels;
        })
    };
    let bug = json!([{"title": "bug"}, {"title": "stage:production"}, {"title": "release:v3.1.0"}]);
    app.gitlab(
        "Issue Hook",
        "a",
        &issue(1, bug.clone(), "2024-01-01T00:00:00Z"),
    )
    .await
    .expect(200);
    let qa = json!([{"title": "Bug"}, {"title": "stage:qa"}, {"title": "release:3.1.0"}]);
    app.gitlab("Issue Hook", "b", &issue(2, qa, "2024-01-01T00:00:00Z"))
        .await
        .expect(200);
    let rel = [("product", TESTDATA), ("release", "3.1.0")];
    let m = app.metrics().await;
    assert_eq!(m.get("bug_escape_rate_ratio", &rel), Some(0.5));
    // #2 closed as a duplicate of another issue: leaves the counts.
    let dup = edited("gitlab/go-gitlab_issue.json", |v| {
        v["object_attributes"]["iid"] = json!(2);
        v["object_attributes"]["updated_at"] = json!("2024-01-02T00:00:00Z");
        v["object_attributes"]["state"] = json!("closed");
        v["object_attributes"]["duplicated_to_id"] = json!(777);
        v["labels"] = json!([{"title": "bug"}, {"title": "stage:qa"}, {"title": "release:3.1.0"}]);
    });
    app.gitlab("Issue Hook", "c", &dup).await.expect(200);
    // #1 moved to another project: leaves this one.
    let moved = edited("gitlab/go-gitlab_issue.json", |v| {
        v["object_attributes"]["iid"] = json!(1);
        v["object_attributes"]["updated_at"] = json!("2024-01-02T00:00:00Z");
        v["object_attributes"]["moved_to_id"] = json!(778);
        v["labels"] = bug.clone();
    });
    app.gitlab("Issue Hook", "d", &moved).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(m.get("bug_escape_release_defects", &rel), None);
}

#[tokio::test]
async fn deliveries_dedupe_on_idempotency_key_or_event_uuid() {
    let mut s = helpers::settings();
    s.webhooks.gitlab.defect_labels = vec!["todo".into()];
    let app = spawn_with(s).await;
    let body = fixture("gitlab/jira-to-matrix_issue_created.json");
    app.gitlab("Issue Hook", "idem-1", &body).await.expect(200);
    let r = app.gitlab("Issue Hook", "idem-1", &body).await;
    assert_eq!(r.expect(200).json["duplicate_delivery"], true);
    // Older GitLab: X-Gitlab-Event-UUID only.
    let headers = |uuid: &str| {
        vec![
            ("x-gitlab-event", "Issue Hook".to_owned()),
            ("x-gitlab-token", GITLAB_TOKEN.to_owned()),
            ("x-gitlab-event-uuid", uuid.to_owned()),
        ]
    };
    let body = fixture("gitlab/jira-to-matrix_issue_updated.json");
    app.post("/webhooks/gitlab", &headers("uuid-1"), &body)
        .await
        .expect(200);
    let r = app
        .post("/webhooks/gitlab", &headers("uuid-1"), &body)
        .await;
    assert_eq!(r.expect(200).json["duplicate_delivery"], true);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "gitlab"), ("reason", "duplicate_delivery")]
        ),
        2.0
    );
}

#[tokio::test]
async fn tokens_and_bad_input() {
    let app = spawn().await;
    let body = fixture("gitlab/go-gitlab_issue.json");
    let ev = ("x-gitlab-event", "Issue Hook".to_owned());
    app.post("/webhooks/gitlab", std::slice::from_ref(&ev), &body)
        .await
        .expect(401);
    app.post(
        "/webhooks/gitlab",
        &[ev.clone(), ("x-gitlab-token", "wrong".into())],
        &body,
    )
    .await
    .expect(401);
    // A token is refused before the body is read: even an oversized one.
    let huge = vec![b'x'; 2 * 1024 * 1024];
    app.post(
        "/webhooks/gitlab",
        &[ev.clone(), ("x-gitlab-token", "wrong".into())],
        &huge,
    )
    .await
    .expect(401);
    let tok = ("x-gitlab-token", GITLAB_TOKEN.to_owned());
    app.post("/webhooks/gitlab", &[ev.clone(), tok.clone()], &huge)
        .await
        .expect(413);
    // The event header and the payload disagree.
    let r = app.gitlab("Release Hook", "k1", &body).await;
    assert_eq!(r.expect(422).json["field"], "object_kind");
    app.gitlab("Bogus", "k2", &body).await.expect(400);
    app.post("/webhooks/gitlab", std::slice::from_ref(&tok), &body)
        .await
        .expect(400);
    let r = app.gitlab("Push Hook", "k3", &body).await;
    assert_eq!(r.expect(200).json["ignored"], "unsupported_event");
    let r = app
        .gitlab(
            "Issue Hook",
            "k4",
            &edited("gitlab/go-gitlab_issue.json", |v| {
                v["object_attributes"]["updated_at"] = json!("yesterday");
            }),
        )
        .await;
    assert_eq!(r.expect(422).json["field"], "object_attributes.updated_at");
    let m = app.metrics().await;
    let rejected = |reason| {
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "gitlab"), ("reason", reason)],
        )
    };
    assert_eq!(rejected("auth"), 3.0);
    assert_eq!(rejected("too_large"), 1.0);
    assert_eq!(rejected("invalid_field"), 2.0);
    assert_eq!(rejected("malformed"), 2.0);
}
