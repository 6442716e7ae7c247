//! The generic API cannot write into a webhook source's namespace: a GitHub
//! defect stays where its webhook put it, unless the configuration allows
//! corrections.

use serde_json::json;

use crate::helpers::{self, TestApp, fixture, spawn_with};

const REPO: &str = "Codertocat/Hello-World";
/// The defect `issues_opened.json` stores: `<repository id>#<issue number>`.
const ISSUE: &str = "186853002#1";

async fn with_a_github_defect(allow: bool) -> TestApp {
    let mut s = helpers::settings();
    s.webhooks.github.conventions.default_stage = Some("qa".into());
    s.allow_vendor_sources = allow;
    let app = spawn_with(s).await;
    app.github("issues", "d-1", &fixture("github/issues_opened.json"))
        .await
        .expect(200);
    app
}

async fn defects(app: &TestApp, product: &str) -> f64 {
    app.metrics().await.value(
        "bug_escape_release_defects",
        &[("product", product), ("release", "1.0")],
    )
}

async fn post_event(app: &TestApp, source: &str) -> helpers::Reply {
    let body = json!([
        {"id": "ok-1", "source": "generic", "stage": "qa", "release": "1.0"},
        {"source": source, "id": ISSUE, "product": "hijack", "stage": "production", "release": "1.0"}
    ]);
    app.post("/api/v1/events", &[], body.to_string().as_bytes())
        .await
}

#[tokio::test]
async fn the_generic_api_cannot_move_a_webhook_defect() {
    let app = with_a_github_defect(false).await;
    for source in ["github", "GitHub", "github ", "SENTRY", "jira", "gitlab"] {
        let r = post_event(&app, source).await;
        r.expect(422);
        assert_eq!(r.json["field"], "[1].source", "{source}: {}", r.text);
        let reason = r.json["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("allow_vendor_sources"),
            "{source}: {reason}"
        );
    }
    assert_eq!(
        defects(&app, REPO).await,
        1.0,
        "the GitHub defect stays put"
    );
    assert_eq!(defects(&app, "hijack").await, 0.0);
    assert_eq!(
        defects(&app, "default").await,
        0.0,
        "the batch stored nothing"
    );
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "generic"), ("reason", "invalid_field")]
        ),
        6.0
    );
    // Other namespaces, including ones that merely contain a vendor's name.
    let r = post_event(&app, "github-enterprise").await;
    assert_eq!(r.expect(200).json["accepted"], 2, "{}", r.text);
}

#[tokio::test]
async fn corrections_need_the_setting_and_the_exact_name() {
    let app = with_a_github_defect(true).await;
    let r = post_event(&app, "GitHub").await;
    r.expect(422);
    assert_eq!(r.json["field"], "[1].source");
    assert!(r.text.contains("exactly"), "{}", r.text);
    let r = post_event(&app, "github").await;
    assert_eq!(r.expect(200).json["accepted"], 2, "{}", r.text);
    assert_eq!(defects(&app, REPO).await, 0.0, "corrected: moved");
    assert_eq!(defects(&app, "hijack").await, 1.0);
}
