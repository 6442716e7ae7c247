//! Strict input (issue 8, item 4): duplicate JSON keys, blank ids and label
//! values, IPv4-mapped loopback peers, and JSON on every error answer.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// POSTs `body` verbatim as JSON; returns status and the JSON answer.
async fn post_raw(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}

#[tokio::test]
async fn duplicate_keys_are_refused_naming_the_key() {
    let (app, _dir) = spawn_app().await;
    let cases = [
        (
            "/api/v1/events",
            r#"{"id":"d","stage":"qa","stage":"production","release":"1.0"}"#,
            "stage",
        ),
        (
            "/api/v1/events",
            r#"[{"id":"a","stage":"qa","release":"1.0"},{"id":"b","stage":"qa","release":"1.0"},
                {"id":"c","stage":"qa","release":"1.0"},{"id":"e","stage":"qa","release":"1.0","id":"f"}]"#,
            "[3].id",
        ),
        (
            "/api/v1/releases",
            r#"{"release":"1.0","released_at":"2024-01-01T00:00:00Z","released_at":"2024-02-01T00:00:00Z"}"#,
            "released_at",
        ),
    ];
    for (path, body, field) in cases {
        let (status, err) = post_raw(&app, path, body).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"], "invalid_field", "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
        assert!(
            err["reason"]
                .as_str()
                .is_some_and(|r| r.contains("duplicate")),
            "{err}"
        );
    }
    // Nothing of the refused batches was stored, and nothing was stored as
    // production.
    let m = app.metrics().await;
    assert_eq!(m.count("bug_escape_release_defects"), 0);
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "generic"), ("reason", "invalid_field")]
        ),
        3.0
    );
    // The same body without the repetition is accepted.
    let (status, _) = post_raw(
        &app,
        "/api/v1/events",
        r#"{"id":"d","stage":"production","release":"1.0"}"#,
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn blank_ids_and_label_values_are_refused() {
    let (app, _dir) = spawn_app().await;
    let cases = [
        (json!({"id": "   ", "stage": "qa"}), "id"),
        (json!({"id": "\t\u{3000}", "stage": "qa"}), "id"),
        (
            json!({"id": "a", "stage": "qa", "product": "  "}),
            "product",
        ),
        (json!({"id": "a", "stage": "qa", "release": " "}), "release"),
        (json!({"id": "a", "stage": "qa", "team": "\u{a0}"}), "team"),
        (json!({"id": "a", "stage": "qa", "source": "  "}), "source"),
    ];
    for (body, field) in &cases {
        let resp = app.post("/api/v1/events", body).await;
        assert_eq!(resp.status(), 422, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["field"], *field, "{body}: {err}");
        assert!(
            err["reason"].as_str().is_some_and(|r| r.contains("blank")),
            "{err}"
        );
    }
    let resp = app
        .post(
            "/api/v1/releases",
            &json!({"product": " ", "release": "1.0", "released_at": "2024-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["field"], "product");
    let m = app.metrics().await;
    assert_eq!(m.count("bug_escape_release_defects"), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_writer_on_ipv4_loopback_is_loopback_behind_a_dual_stack_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = crate::helpers::settings(dir.path());
    s.listen = "[::]:0".into();
    let app = crate::helpers::spawn_with(s).await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    // Through IPv4 the peer arrives as `::ffff:127.0.0.1`.
    let resp = app
        .client
        .post(format!("http://127.0.0.1:{port}/api/v1/events"))
        .json(&json!({"id": "a", "stage": "qa", "release": "1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let text = app
        .client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = crate::helpers::Exposition::classic(&text);
    let stored: f64 = m
        .samples
        .iter()
        .filter(|(n, l, _)| {
            n == "bug_escape_release_defects" && l.get("release").map(String::as_str) == Some("1.0")
        })
        .map(|s| s.2)
        .sum();
    assert!(stored >= 1.0, "{text}");
    app.stop().await;
}

/// Runs `check-config` with `envs`; its status and standard error.
fn check_config(envs: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bug-escape-exporter"));
    cmd.arg("check-config");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_empty_token_or_secret_is_a_start_up_error_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let blank_file = dir.path().join("blank");
    std::fs::write(&blank_file, "\n").unwrap();
    let blank = blank_file.to_str().unwrap();
    let good_file = dir.path().join("good");
    std::fs::write(&good_file, "t0ken\n").unwrap();
    let good = good_file.to_str().unwrap();
    // A set token or secret that is valid starts.
    for envs in [
        vec![("BUG_ESCAPE_API_TOKEN", "t0ken")],
        vec![("BUG_ESCAPE_API_TOKEN_FILE", good)],
        vec![("BUG_ESCAPE_GITHUB_SECRET", "a,,b")],
        vec![("BUG_ESCAPE_JIRA_SECRET_FILE", good)],
    ] {
        let (ok, err) = check_config(&envs);
        assert!(ok, "{envs:?}: {err}");
    }
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("BUG_ESCAPE_API_TOKEN", "")], "api_token"),
        (vec![("BUG_ESCAPE_API_TOKEN", "  \t")], "api_token"),
        (vec![("BUG_ESCAPE_API_TOKEN_FILE", blank)], "api_token_file"),
        (
            vec![("BUG_ESCAPE_GITHUB_SECRET", " ")],
            "webhooks.github.secret",
        ),
        (
            vec![("BUG_ESCAPE_GITHUB_SECRET", "")],
            "webhooks.github.secret",
        ),
        (
            vec![("BUG_ESCAPE_GITLAB_TOKEN_FILE", blank)],
            "webhooks.gitlab.token_file",
        ),
        (
            vec![("BUG_ESCAPE_GITLAB_SIGNING_SECRET", ",")],
            "webhooks.gitlab.signing_secret",
        ),
        (
            vec![("BUG_ESCAPE_JIRA_SECRET_FILE", blank)],
            "webhooks.jira.secret_file",
        ),
        (
            vec![("BUG_ESCAPE_SENTRY_SECRET", "\t")],
            "webhooks.sentry.secret",
        ),
        (
            vec![("BUG_ESCAPE_SENTRY_API_TOKEN", " ")],
            "webhooks.sentry.api_token",
        ),
    ];
    for (envs, setting) in &cases {
        let (ok, err) = check_config(envs);
        assert!(!ok, "{envs:?} was accepted");
        assert!(
            err.contains(&format!("{setting}:")) && err.contains("empty or white space"),
            "{envs:?}: {err}"
        );
    }
}
