//! Every time a webhook carries obeys the generic API's future limit (more
//! than 5 minutes ahead: 422, counted as `future_timestamp`), release times
//! included; scheduled releases are told apart from broken clocks.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::json;

use crate::helpers::{Metrics, edited, spawn};

/// An RFC 3339 time `minutes` from now.
fn rfc3339_in(minutes: i64) -> String {
    (Utc::now() + Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A GitLab time (`2021-02-25 21:23:34 UTC`) `minutes` from now.
fn gitlab_time_in(minutes: i64) -> String {
    (Utc::now() + Duration::minutes(minutes))
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Epoch milliseconds `minutes` from now.
fn millis_in(minutes: i64) -> i64 {
    (Utc::now() + Duration::minutes(minutes)).timestamp_millis()
}

fn rejected_future(m: &Metrics, source: &str) -> f64 {
    m.value(
        "bug_escape_events_rejected_total",
        &[("source", source), ("reason", "future_timestamp")],
    )
}

fn release_time(m: &Metrics, product: &str, release: &str) -> Option<f64> {
    m.get(
        "bug_escape_release_timestamp_seconds",
        &[("product", product), ("release", release)],
    )
}

#[tokio::test]
async fn a_github_release_from_the_future_is_refused() {
    let app = spawn().await;
    let body = edited("github/release_published.json", |v| {
        v["release"]["published_at"] = json!("2999-01-01T00:00:00Z");
    });
    let r = app.github("release", "r-future", &body).await;
    r.expect(422);
    assert_eq!(r.json["error"], "future_timestamp");
    assert_eq!(r.json["field"], "release.published_at");
    // Within the 5-minute skew it is accepted as sent.
    let skewed = rfc3339_in(3);
    let body = edited("github/release_published.json", |v| {
        v["release"]["published_at"] = json!(skewed);
    });
    app.github("release", "r-skewed", &body).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(rejected_future(&m, "github"), 1.0);
    assert!(release_time(&m, "Codertocat/Hello-World", "0.0.1").is_some());
}

#[tokio::test]
async fn a_gitlab_upcoming_release_is_acknowledged_not_stored() {
    let app = spawn().await;
    let upcoming = gitlab_time_in(7 * 24 * 60);
    let body = edited("gitlab/go-gitlab_release.json", |v| {
        v["released_at"] = json!(upcoming);
    });
    let r = app.gitlab("Release Hook", "rel-upcoming", &body).await;
    assert_eq!(r.expect(200).json["ignored"], "upcoming_release");
    let m = app.metrics().await;
    assert_eq!(
        release_time(&m, "exm-namespace/example-project", "1.0.0"),
        None
    );
    assert_eq!(
        m.value(
            "bug_escape_events_ignored_total",
            &[("source", "gitlab"), ("reason", "upcoming_release")]
        ),
        1.0
    );
    // Once it ships, GitLab's `update` hook carries the real time.
    let body = edited("gitlab/go-gitlab_release.json", |v| {
        v["action"] = json!("update");
    });
    app.gitlab("Release Hook", "rel-shipped", &body)
        .await
        .expect(200);
    assert_eq!(
        release_time(
            &app.metrics().await,
            "exm-namespace/example-project",
            "1.0.0"
        ),
        Some(1_614_288_214.0)
    );
    // Without `released_at`, GitLab's own `created_at` ahead of now is a
    // broken clock: refused.
    let body = edited("gitlab/go-gitlab_release.json", |v| {
        let o = v.as_object_mut().expect("object");
        o.remove("released_at");
        o.insert("created_at".into(), json!("2999-01-01 00:00:00 UTC"));
    });
    let r = app.gitlab("Release Hook", "rel-clock", &body).await;
    assert_eq!(r.expect(422).json["field"], "created_at");
    assert_eq!(rejected_future(&app.metrics().await, "gitlab"), 1.0);
}

#[tokio::test]
async fn a_jira_version_released_before_its_date_shipped_when_marked() {
    let app = spawn().await;
    // Marked released now, planned for next month: it shipped now.
    let marked = millis_in(0);
    let planned = (Utc::now() + Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let body = edited("jira/putit-core_version_released.json", |v| {
        v["timestamp"] = json!(marked);
        v["version"]["releaseDate"] = json!(planned);
    });
    app.jira("v-early", &body).await.expect(200);
    let m = app.metrics().await;
    assert_eq!(
        release_time(&m, "10002", "1.0"),
        Some(marked as f64 / 1000.0)
    );
    // Marked released late: the planned date is the release time.
    let body = edited("jira/putit-core_version_released.json", |v| {
        v["version"]["name"] = json!("0.9");
        v["version"]["releaseDate"] = json!("2020-09-01");
    });
    app.jira("v-late", &body).await.expect(200);
    assert_eq!(
        release_time(&app.metrics().await, "10002", "0.9"),
        Some(1_598_918_400.0)
    );
    // The event's own time ahead of now is a broken clock.
    let body = edited("jira/putit-core_version_released.json", |v| {
        v["timestamp"] = json!(millis_in(60));
        v["version"]["name"] = json!("1.1");
    });
    let r = app.jira("v-clock", &body).await;
    r.expect(422);
    assert_eq!(r.json["error"], "future_timestamp");
    assert_eq!(r.json["field"], "timestamp");
    let m = app.metrics().await;
    assert_eq!(release_time(&m, "10002", "1.1"), None);
    assert_eq!(rejected_future(&m, "jira"), 1.0);
}

#[tokio::test]
async fn a_jira_deletion_from_the_future_is_refused() {
    let app = spawn().await;
    let created = edited("jira/zulip_issue_created.json", |v| {
        v["issue"]["fields"]["labels"] = json!(["stage:qa"]);
        v["issue"]["fields"]["versions"] = json!([{"id": "1", "name": "2.4.0"}]);
    });
    app.jira("c-1", &created).await.expect(200);
    // A deletion with no `fields.updated` is ordered by the event's time.
    let deletion = |ms: i64| {
        edited("jira/zulip_issue_created.json", |v| {
            v["webhookEvent"] = json!("jira:issue_deleted");
            v["timestamp"] = json!(ms);
            let f = v["issue"]["fields"].as_object_mut().expect("fields");
            f.remove("updated");
        })
    };
    let r = app.jira("d-future", &deletion(millis_in(24 * 60))).await;
    r.expect(422);
    assert_eq!(r.json["error"], "future_timestamp");
    assert_eq!(r.json["field"], "timestamp");
    let m = app.metrics().await;
    let defects = |m: &Metrics| {
        m.value(
            "bug_escape_release_defects",
            &[("product", "BUG"), ("release", "2.4.0")],
        )
    };
    assert_eq!(defects(&m), 1.0, "the refused deletion stored nothing");
    assert_eq!(rejected_future(&m, "jira"), 1.0);
    app.jira("d-now", &deletion(millis_in(0))).await.expect(200);
    assert_eq!(defects(&app.metrics().await), 0.0);
}
