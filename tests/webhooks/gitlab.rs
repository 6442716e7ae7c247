//! `POST /webhooks/gitlab` with the go-gitlab and jira-to-matrix payloads.

use serde_json::json;

use bug_escape_exporter::config::Settings;
use bug_escape_exporter::config::webhooks::SecretSetting;

use crate::helpers::{
    self, GITLAB_SIGNING, GITLAB_SIGNING_OLD, GITLAB_TOKEN, Reply, TestApp, edited, fixture,
    fixture_names, now_secs, sign_standard, spawn, spawn_with,
};

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
    gl.conventions.defect_labels = vec!["API".into(), "todo".into()];
    gl.milestones.insert("103".into(), "v2.4.0".into());
    gl.conventions.default_stage = Some("qa".into());
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
    s.webhooks.gitlab.conventions.defect_labels = vec!["todo".into()];
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

/// Every secret configured, GitLab's signing secrets too (current and
/// previous), with conventions under which the jira-to-matrix issue counts.
fn signed_settings() -> Settings {
    let mut s = helpers::settings();
    let gl = &mut s.webhooks.gitlab;
    gl.signing_secret = Some(SecretSetting::Many(vec![
        GITLAB_SIGNING.into(),
        GITLAB_SIGNING_OLD.into(),
    ]));
    gl.conventions.defect_labels = vec!["todo".into()];
    gl.milestones.insert("103".into(), "v2.4.0".into());
    gl.conventions.default_stage = Some("qa".into());
    s
}

type Headers = Vec<(&'static str, String)>;

const CREATED: &str = "gitlab/jira-to-matrix_issue_created.json";

/// `bug_escape_release_defects` of the jira-to-matrix issue's release.
async fn stored(app: &TestApp) -> Option<f64> {
    app.metrics().await.get(
        "bug_escape_release_defects",
        &[("product", MATRIX), ("release", "2.4.0")],
    )
}

#[tokio::test]
async fn signed_deliveries_are_accepted_and_dedupe_on_webhook_id() {
    let app = spawn_with(signed_settings()).await;
    let body = fixture(CREATED);
    let r = app
        .gitlab_signed("Issue Hook", "msg_1", GITLAB_SIGNING, &body)
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    assert_eq!(stored(&app).await, Some(1.0));
    // A retry keeps its webhook-id, with a new signature: a no-op.
    let r = app
        .gitlab_signed("Issue Hook", "msg_1", GITLAB_SIGNING, &body)
        .await;
    assert_eq!(r.expect(200).json["duplicate_delivery"], true);
    // With both configured, a token-only delivery still works.
    let r = app
        .gitlab(
            "Issue Hook",
            "idem-2",
            &fixture("gitlab/go-gitlab_issue.json"),
        )
        .await;
    r.expect(200);
    let m = app.metrics().await;
    let gitlab = ("source", "gitlab");
    assert_eq!(m.value("bug_escape_events_received_total", &[gitlab]), 3.0);
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[gitlab, ("reason", "duplicate_delivery")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[gitlab, ("reason", "auth")]
        ),
        0.0
    );
}

/// A delivery that must be refused: (case, the header the refusal names,
/// headers, body).
type BadCase<'a> = (&'static str, &'static str, Headers, &'a [u8]);

/// GitLab's standard-webhooks headers for an Issue Hook.
fn signed(id: &str, ts: &str, sig: &str) -> Headers {
    vec![
        ("x-gitlab-event", "Issue Hook".to_owned()),
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts.to_owned()),
        ("webhook-signature", sig.to_owned()),
    ]
}

/// Deliveries whose standard-webhooks signature must fail. `good` signs
/// `body` as `msg_1` at `now`.
fn bad_signature_cases<'a>(
    body: &'a [u8],
    tampered: &'a [u8],
    now: &str,
    good: &str,
) -> Vec<BadCase<'a>> {
    let mut cases = tampered_or_out_of_time(body, tampered, now, good);
    cases.extend(malformed_or_missing(body, now, good));
    cases
}

/// A wrong secret, body or id, or a timestamp out of the tolerance.
fn tampered_or_out_of_time<'a>(
    body: &'a [u8],
    tampered: &'a [u8],
    now: &str,
    good: &str,
) -> Vec<BadCase<'a>> {
    let stale = (now_secs() - 301).to_string();
    let early = (now_secs() + 600).to_string();
    let wrong_secret = "whsec_c2VjcmV0LW9mLXNvbWVvbmUtZWxzZS0xMjM0NTY3OA==";
    vec![
        (
            "wrong secret",
            "webhook-signature",
            signed(
                "msg_1",
                now,
                &sign_standard(wrong_secret, "msg_1", now, body),
            ),
            body,
        ),
        (
            "tampered body",
            "webhook-signature",
            signed("msg_1", now, good),
            tampered,
        ),
        (
            "other webhook-id",
            "webhook-signature",
            signed("msg_2", now, good),
            body,
        ),
        (
            "stale timestamp",
            "webhook-timestamp",
            signed(
                "msg_1",
                &stale,
                &sign_standard(GITLAB_SIGNING, "msg_1", &stale, body),
            ),
            body,
        ),
        (
            "timestamp from the future",
            "webhook-timestamp",
            signed(
                "msg_1",
                &early,
                &sign_standard(GITLAB_SIGNING, "msg_1", &early, body),
            ),
            body,
        ),
        (
            "timestamp in milliseconds",
            "webhook-timestamp",
            signed("msg_1", &format!("{now}000"), good),
            body,
        ),
    ]
}

/// A signature of the wrong shape, or a header missing.
fn malformed_or_missing<'a>(body: &'a [u8], now: &str, good: &str) -> Vec<BadCase<'a>> {
    let without = |name: &str| {
        let mut h = signed("msg_1", now, good);
        h.retain(|(k, _)| *k != name);
        h
    };
    vec![
        (
            "no v1, prefix",
            "webhook-signature",
            signed("msg_1", now, good.trim_start_matches("v1,")),
            body,
        ),
        (
            "not base64",
            "webhook-signature",
            signed("msg_1", now, "v1,***"),
            body,
        ),
        (
            "unknown version",
            "webhook-signature",
            signed("msg_1", now, &good.replace("v1,", "v2,")),
            body,
        ),
        (
            "empty signature",
            "webhook-signature",
            signed("msg_1", now, ""),
            body,
        ),
        ("no webhook-id", "webhook-id", without("webhook-id"), body),
        (
            "no webhook-timestamp",
            "webhook-timestamp",
            without("webhook-timestamp"),
            body,
        ),
    ]
}

#[tokio::test]
async fn bad_signatures_are_refused_and_store_nothing() {
    let app = spawn_with(signed_settings()).await;
    let body = fixture(CREATED);
    let now = now_secs().to_string();
    let good = sign_standard(GITLAB_SIGNING, "msg_1", &now, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b"\n");
    let cases = bad_signature_cases(&body, &tampered, &now, &good);
    let n = cases.len();
    for (what, names, headers, body) in &cases {
        let r = app.post("/webhooks/gitlab", headers, body).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.json["error"], "auth", "{what}");
        let reason = r.json["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(names) || reason.contains(&format!(" {names} ")),
            "{what}: {reason}"
        );
    }
    // A signature that fails is not rescued by a valid token.
    let mut with_token = signed("msg_1", &now, &good);
    with_token.push(("x-gitlab-token", GITLAB_TOKEN.to_owned()));
    app.post("/webhooks/gitlab", &with_token, &tampered)
        .await
        .expect(401);
    assert_eq!(stored(&app).await, None);
    let m = app.metrics().await;
    let gitlab = ("source", "gitlab");
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[gitlab, ("reason", "auth")]
        ),
        (n + 1) as f64
    );
    assert_eq!(m.value("bug_escape_events_received_total", &[gitlab]), 0.0);
    // The good one still goes through afterwards.
    app.post("/webhooks/gitlab", &signed("msg_1", &now, &good), &body)
        .await
        .expect(200);
    assert_eq!(stored(&app).await, Some(1.0));
}

#[tokio::test]
async fn signing_secrets_rotate() {
    // The helper signs like the Standard Webhooks reference libraries.
    assert_eq!(
        sign_standard(
            GITLAB_SIGNING_OLD,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let app = spawn_with(signed_settings()).await;
    let body = fixture(CREATED);
    let accepted = |r: Reply| {
        r.expect(200);
        r.json["accepted"].clone()
    };
    // Signed with the previous secret, then the same issue, later, with the new one.
    assert_eq!(
        accepted(
            app.gitlab_signed("Issue Hook", "msg_old", GITLAB_SIGNING_OLD, &body)
                .await
        ),
        1
    );
    let later = edited(CREATED, |v| {
        v["object_attributes"]["updated_at"] = json!("2020-06-06 08:09:16 UTC");
        v["object_attributes"]["milestone_id"] = json!(null);
    });
    assert_eq!(
        accepted(
            app.gitlab_signed("Issue Hook", "msg_new", GITLAB_SIGNING, &later)
                .await
        ),
        1
    );
    assert_eq!(
        stored(&app).await,
        None,
        "the later snapshot has no milestone"
    );
    // Several signatures in one header (a sender mid-rotation): any one will do.
    let now = now_secs().to_string();
    let both = format!(
        "{} {}",
        sign_standard("whsec_bm90LW91ci1rZXk=", "msg_3", &now, &body),
        sign_standard(GITLAB_SIGNING_OLD, "msg_3", &now, &body)
    );
    let headers = [
        ("x-gitlab-event", "Release Hook".to_owned()),
        ("webhook-id", "msg_3".to_owned()),
        ("webhook-timestamp", now),
        ("webhook-signature", both),
    ];
    // Authenticated, then refused by the adapter: the body is an Issue Hook.
    let r = app.post("/webhooks/gitlab", &headers, &body).await;
    assert_eq!(r.expect(422).json["field"], "object_kind");
}

#[tokio::test]
async fn signing_secrets_alone_or_neither() {
    let mut s = signed_settings();
    s.webhooks.gitlab.token = None;
    let app = spawn_with(s).await;
    let body = fixture(CREATED);
    app.gitlab_signed("Issue Hook", "msg_1", GITLAB_SIGNING, &body)
        .await
        .expect(200);
    // No token is configured: a token-only delivery is refused.
    let r = app.gitlab("Issue Hook", "idem-1", &body).await;
    r.expect(401);
    assert!(
        r.json["reason"]
            .as_str()
            .is_some_and(|m| m.contains("webhook-signature")),
        "{}",
        r.text
    );
    // Only a token is configured: a signature header is not used.
    let app = spawn().await;
    let r = app
        .gitlab_signed("Issue Hook", "msg_1", GITLAB_SIGNING, &body)
        .await;
    r.expect(401);
    let mut headers = vec![("x-gitlab-token", GITLAB_TOKEN.to_owned())];
    headers.extend([
        ("x-gitlab-event", "Issue Hook".to_owned()),
        ("webhook-id", "msg_1".to_owned()),
        ("webhook-timestamp", "0".to_owned()),
        ("webhook-signature", "v1,AAAA".to_owned()),
    ]);
    app.post("/webhooks/gitlab", &headers, &body)
        .await
        .expect(200);
    // Neither: 503, naming both variables.
    let mut s = helpers::settings();
    s.webhooks.gitlab.token = None;
    let app = spawn_with(s).await;
    let r = app
        .gitlab_signed("Issue Hook", "msg_1", GITLAB_SIGNING, &body)
        .await;
    r.expect(503);
    let reason = r.json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("BUG_ESCAPE_GITLAB_TOKEN")
            && reason.contains("BUG_ESCAPE_GITLAB_SIGNING_SECRET"),
        "{reason}"
    );
}
