//! `POST /webhooks/jira` with the Zulip, OSBot, putit and jira-to-matrix payloads.

use serde_json::json;

use crate::helpers::{self, JIRA_SECRET, edited, fixture, fixture_names, sign, spawn, spawn_with};

#[tokio::test]
async fn every_jira_fixture_with_default_conventions() {
    let mut s = helpers::settings();
    s.webhooks
        .jira
        .project_keys
        .insert("10002".into(), "PAY".into());
    let app = spawn_with(s).await;
    let expected = [
        // Jira Server capture with keys Jira never sends: they are ignored.
        ("jira-to-matrix_issue_created.json", json!({"ignored": 1})),
        ("osbot-jira_issue_deleted.json", json!({"ignored": 1})),
        ("putit-core_version_released.json", json!({"accepted": 1})),
        ("zulip_issue_created.json", json!({"accepted": 1})),
        ("zulip_issue_updated__status.json", json!({"ignored": 1})),
    ];
    let names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    assert_eq!(names, fixture_names("jira"), "every fixture is exercised");
    for (i, (file, want)) in expected.iter().enumerate() {
        let r = app
            .jira(&format!("id-{i}"), &fixture(&format!("jira/{file}")))
            .await;
        r.expect(200);
        for (k, v) in want.as_object().expect("object") {
            assert_eq!(&r.json[k], v, "{file}: {}", r.text);
        }
    }
    let m = app.metrics().await;
    // BUG-15 is a Bug with no stage label and no Affects version.
    assert_eq!(
        m.value(
            "bug_escape_unclassified_defects",
            &[("product", "BUG"), ("reason", "no_stage")]
        ),
        1.0
    );
    // Released with no releaseDate: the event's time.
    assert_eq!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &[("product", "PAY"), ("release", "1.0")]
        ),
        Some(1_599_604_370.956)
    );
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "jira"), ("reason", "not_a_defect")]
        ),
        3.0
    );
}

#[tokio::test]
async fn every_jira_fixture_when_tasks_count_too() {
    let mut s = helpers::settings();
    s.webhooks.jira.conventions.defect_types = vec!["Bug".into(), "Task".into()];
    s.webhooks.jira.conventions.default_stage = Some("qa".into());
    let app = spawn_with(s).await;
    for (i, file) in fixture_names("jira").iter().enumerate() {
        let r = app
            .jira(&format!("id-{i}"), &fixture(&format!("jira/{file}")))
            .await;
        assert_eq!(r.expect(200).json["accepted"], 1, "{file}: {}", r.text);
    }
    let m = app.metrics().await;
    for product in ["BBCOM", "BUG", "ABC"] {
        assert_eq!(
            m.value(
                "bug_escape_unattributed_defects",
                &[("product", product), ("stage", "qa")]
            ),
            1.0,
            "{product}"
        );
    }
    // TASK-23 was deleted: a tombstone, counted nowhere.
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", "TASK"), ("stage", "qa")]
        ),
        0.0
    );
    // The unversioned release is keyed by the project id (no project_keys).
    assert!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &[("product", "10002")]
        )
        .is_some()
    );
}

fn bug(versions: serde_json::Value, labels: serde_json::Value, updated: &str) -> Vec<u8> {
    edited("jira/zulip_issue_created.json", |v| {
        let f = &mut v["issue"]["fields"];
        f["versions"] = versions;
        f["labels"] = labels;
        f["updated"] = json!(updated);
    })
}

#[tokio::test]
async fn affects_versions_labels_resolutions_and_deletion() {
    let app = spawn().await;
    let versions = json!([
        {"id": "10001", "name": "2.5.0", "releaseDate": "2024-03-01"},
        {"id": "10000", "name": "v2.4.0", "releaseDate": "2024-01-01"},
        {"id": "9999", "name": "3.0.0"}
    ]);
    let r = app
        .jira(
            "a",
            &bug(
                versions.clone(),
                json!(["stage:production", "severity:high"]),
                "2024-04-01T10:00:00.000+0000",
            ),
        )
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    let rel = [("product", "BUG"), ("release", "2.4.0")];
    let m = app.metrics().await;
    assert_eq!(m.get("bug_escape_release_escaped_defects", &rel), Some(1.0));
    // An older update (by fields.updated) is stale, whatever its arrival.
    let r = app
        .jira(
            "b",
            &bug(
                versions.clone(),
                json!(["stage:qa"]),
                "2024-03-31T10:00:00.000+0000",
            ),
        )
        .await;
    assert_eq!(r.expect(200).json["stale"], 1);
    // Resolved as a duplicate: leaves the counts.
    let dup = edited("jira/zulip_issue_created.json", |v| {
        let f = &mut v["issue"]["fields"];
        f["versions"] = versions.clone();
        f["labels"] = json!(["stage:production"]);
        f["updated"] = json!("2024-04-02T10:00:00.000+0000");
        f["resolution"] = json!({"id": "3", "name": "Duplicate"});
    });
    app.jira("c", &dup).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(m.get("bug_escape_release_defects", &rel), None);
    // Reopened (resolution cleared), then deleted.
    app.jira(
        "d",
        &bug(
            versions.clone(),
            json!(["stage:production"]),
            "2024-04-03T10:00:00.000+0000",
        ),
    )
    .await
    .expect(200);
    assert_eq!(
        app.metrics().await.get("bug_escape_release_defects", &rel),
        Some(1.0)
    );
    let deleted = edited("jira/zulip_issue_created.json", |v| {
        v["webhookEvent"] = json!("jira:issue_deleted");
        v["issue"]["fields"]["updated"] = json!("2024-04-03T10:00:00.000+0000");
    });
    let r = app.jira("e", &deleted).await;
    assert_eq!(r.expect(200).json["accepted"], 1);
    assert_eq!(
        app.metrics().await.get("bug_escape_release_defects", &rel),
        None
    );
    // The same delivery again is a no-op.
    let r = app.jira("e", &deleted).await;
    assert_eq!(r.expect(200).json["duplicate_delivery"], true);
}

#[tokio::test]
async fn stage_from_a_custom_field() {
    let mut s = helpers::settings();
    s.webhooks.jira.stage_field = Some("customfield_10050".into());
    let app = spawn_with(s).await;
    let body = edited("jira/zulip_issue_created.json", |v| {
        let f = &mut v["issue"]["fields"];
        f["customfield_10050"] = json!({"self": "x", "value": "Code_Review", "id": "10100"});
        f["labels"] = json!(["stage:production"]); // ignored: the field decides
        f["versions"] = json!([{"id": "1", "name": "1.0"}]);
    });
    app.jira("a", &body).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_defects",
            &[
                ("product", "BUG"),
                ("release", "1.0"),
                ("stage", "code_review")
            ]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn signatures_and_bad_input() {
    let app = spawn().await;
    let body = fixture("jira/zulip_issue_created.json");
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let app = &app;
        async move { app.post("/webhooks/jira", &headers, &body).await }
    };
    post(vec![], body.clone()).await.expect(401);
    // GitHub's header name is not Jira's.
    post(
        vec![(
            "x-hub-signature-256",
            format!("sha256={}", sign(JIRA_SECRET, &body)),
        )],
        body.clone(),
    )
    .await
    .expect(401);
    post(
        vec![("x-hub-signature", format!("sha256={}", sign("nope", &body)))],
        body.clone(),
    )
    .await
    .expect(401);
    let no_event = edited("jira/zulip_issue_created.json", |v| {
        v.as_object_mut().expect("object").remove("webhookEvent");
    });
    assert_eq!(
        app.jira("x1", &no_event).await.expect(422).json["field"],
        "webhookEvent"
    );
    let no_updated = edited("jira/zulip_issue_created.json", |v| {
        v["issue"]["fields"]
            .as_object_mut()
            .expect("fields")
            .remove("updated");
    });
    assert_eq!(
        app.jira("x2", &no_updated).await.expect(422).json["field"],
        "issue.fields.updated"
    );
    let comment = edited("jira/zulip_issue_created.json", |v| {
        v["webhookEvent"] = json!("comment_created");
    });
    assert_eq!(
        app.jira("x3", &comment).await.expect(200).json["ignored"],
        "unsupported_event"
    );
    app.jira("x4", b"[1, 2").await.expect(400);
    app.jira("x5", b"[1, 2]").await.expect(422);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "jira"), ("reason", "auth")]
        ),
        3.0
    );
}
