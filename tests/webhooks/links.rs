//! A Jira ticket whose description links to a Sentry issue of the configured
//! organisation and that Sentry issue count as one defect (issue 24).

use serde_json::json;

use crate::helpers::{self, edited, fixture, spawn_with};

/// The Sentry issue of `sentry-docs/issue_created.json`.
const SENTRY_ISSUE: &str = "1170820242";

fn ticket(description: Option<&str>, updated: &str) -> Vec<u8> {
    edited("jira/zulip_issue_created.json", |v| {
        let f = &mut v["issue"]["fields"];
        match description {
            Some(d) => f["description"] = json!(d),
            None => {
                f.as_object_mut().expect("fields").remove("description");
            }
        }
        f["updated"] = json!(updated);
    })
}

#[tokio::test]
async fn a_ticket_linking_a_sentry_issue_of_the_organisation_counts_once() {
    let mut s = helpers::settings();
    s.webhooks.sentry.organization = Some("acme".into());
    let app = spawn_with(s).await;
    let desc = format!(
        "Sentry Issue: [FRONT-1](https://acme.sentry.io/issues/{SENTRY_ISSUE}/?referrer=jira_integration)\n\
         also https://other.sentry.io/issues/42/"
    );
    let r = app
        .jira("a", &ticket(Some(&desc), "2024-04-01T10:00:00.000+0000"))
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    let r = app
        .sentry("issue", &fixture("sentry-docs/issue_created.json"))
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    let m = app.metrics().await;
    assert_eq!(
        m.get("bug_escape_linked_records", &[("product", "BUG")]),
        Some(1.0),
        "the ticket is folded with the Sentry issue"
    );
    // An update without the description keeps the link.
    let r = app
        .jira("b", &ticket(None, "2024-04-02T10:00:00.000+0000"))
        .await;
    assert_eq!(r.expect(200).json["stale"], 0, "{}", r.text);
    let m = app.metrics().await;
    assert_eq!(
        m.get("bug_escape_linked_records", &[("product", "BUG")]),
        Some(1.0)
    );
    // A description without the URL removes it: two defects again.
    let r = app
        .jira("c", &ticket(Some("fixed"), "2024-04-03T10:00:00.000+0000"))
        .await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    let m = app.metrics().await;
    assert_eq!(
        m.get("bug_escape_linked_records", &[("product", "BUG")])
            .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test]
async fn without_an_organisation_or_with_links_off_nothing_links() {
    for organisation in [false, true] {
        let mut s = helpers::settings();
        if organisation {
            s.webhooks.sentry.organization = Some("acme".into());
            s.webhooks.jira.links = false;
        }
        let app = spawn_with(s).await;
        let desc = format!("https://acme.sentry.io/issues/{SENTRY_ISSUE}/");
        app.jira("a", &ticket(Some(&desc), "2024-04-01T10:00:00.000+0000"))
            .await
            .expect(200);
        app.sentry("issue", &fixture("sentry-docs/issue_created.json"))
            .await
            .expect(200);
        let m = app.metrics().await;
        assert_eq!(
            m.get("bug_escape_linked_records", &[("product", "BUG")])
                .unwrap_or(0.0),
            0.0,
            "organisation: {organisation}"
        );
    }
}

#[tokio::test]
async fn github_body_and_gitlab_description_link_too() {
    let mut s = helpers::settings();
    s.webhooks.sentry.organization = Some("acme".into());
    let app = spawn_with(s).await;
    let url = format!("https://acme.sentry.io/issues/{SENTRY_ISSUE}/?referrer=github");
    let gh = edited("github/issues_opened.json", |v| {
        v["issue"]["body"] = json!(format!("Sentry Issue: [FRONT-1]({url})"));
    });
    let r = app.github("issues", "d1", &gh).await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    let gl = edited("gitlab/go-gitlab_issue.json", |v| {
        v["object_attributes"]["description"] = json!(format!("from {url}"));
        v["labels"] = json!([{"title": "bug"}, {"title": "stage:production"}]);
    });
    let r = app.gitlab("Issue Hook", "d2", &gl).await;
    assert_eq!(r.expect(200).json["accepted"], 1, "{}", r.text);
    app.sentry("issue", &fixture("sentry-docs/issue_created.json"))
        .await
        .expect(200);
    let m = app.metrics().await;
    assert_eq!(
        m.get(
            "bug_escape_linked_records",
            &[("product", "gitlabhq/gitlab-test")]
        ),
        Some(1.0)
    );
    // The GitHub issue (`<repository id>#<number>`) is in the same group.
    let got: serde_json::Value = reqwest::get(format!(
        "http://{}/api/v1/defects/github/186853002%231",
        app.addr
    ))
    .await
    .expect("get")
    .json()
    .await
    .expect("json");
    assert_eq!(
        got["links"],
        json!([{"source": "sentry", "id": SENTRY_ISSUE}]),
        "{got}"
    );
    let records = got["group"]["records"].as_array().expect("group").clone();
    assert_eq!(records.len(), 3, "{got}");
    assert!(
        records.contains(&json!({"source": "sentry", "id": SENTRY_ISSUE})),
        "{got}"
    );
}
