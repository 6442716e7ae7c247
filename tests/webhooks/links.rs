//! Records of several tools that name each other count as one defect
//! (issue 24): a Jira ticket whose description links to a Sentry issue of the
//! configured organisation, a Sentry issue whose annotations name the ticket,
//! a GitHub issue that says `Fixes BUG-15`; links to hosts, repositories or
//! projects that are not configured are ignored.

use bug_escape_exporter::config::{ProductSettings, Settings};
use serde_json::{Value, json};

use crate::helpers::{self, Metrics, TestApp, edited, fixture, spawn_with};

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
        json!([
            {"source": "github", "id": "codertocat/hello-world#1"},
            {"source": "sentry", "id": SENTRY_ISSUE}
        ]),
        "its own alias first, then the link read from its body: {got}"
    );
    assert_eq!(
        got["links"][1],
        json!({"source": "sentry", "id": SENTRY_ISSUE}),
        "{got}"
    );
    let records = got["group"]["records"].as_array().expect("group").clone();
    assert_eq!(records.len(), 3, "{got}");
    assert!(
        records.contains(&json!({"source": "sentry", "id": SENTRY_ISSUE})),
        "{got}"
    );
}

/// [`ticket`] labelled `stage:production`, so it counts on its own too.
fn production_ticket(description: Option<&str>, updated: &str) -> Vec<u8> {
    let bytes = ticket(description, updated);
    let mut v: Value = serde_json::from_slice(&bytes).expect("json");
    v["issue"]["fields"]["labels"] = json!(["stage:production"]);
    serde_json::to_vec(&v).expect("bytes")
}

/// The Jira fixture's issue: id 10400, key BUG-15.
const TICKET_ID: &str = "10400";
/// The GitHub fixture's issue: `<repository id>#<number>`.
const GITHUB_ISSUE: &str = "186853002%231";

/// Sentry's organisation `acme`, Jira's site `acme.atlassian.net`, and the
/// three fixtures' namespaces mapped onto one product, `payments`.
fn linked_settings() -> Settings {
    let mut s = helpers::settings();
    s.webhooks.sentry.organization = Some("acme".into());
    s.webhooks.jira.api.api_url = "https://acme.atlassian.net".into();
    let sources = [
        "jira:BUG",
        "sentry:front-end",
        "github:Codertocat/Hello-World",
    ];
    s.products.insert(
        "payments".into(),
        ProductSettings {
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
            ..ProductSettings::default()
        },
    );
    s
}

/// The Sentry fixture's issue with `annotations` (absent when `None`) and
/// `lastSeen`.
fn sentry_issue(annotations: Option<Value>, last_seen: &str) -> Vec<u8> {
    edited("sentry-docs/issue_created.json", |v| {
        let issue = &mut v["data"]["issue"];
        match annotations {
            Some(a) => issue["annotations"] = a,
            None => {
                issue.as_object_mut().expect("issue").remove("annotations");
            }
        }
        issue["lastSeen"] = json!(last_seen);
    })
}

/// The sum of every sample of `name` of product `payments`.
fn total(m: &Metrics, name: &str) -> f64 {
    m.0.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("product=\"payments\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// What `payments` counts: (defects of `release`, escaped ones of
/// `release`, unattributed defects, linked records).
async fn counts(app: &TestApp, release: &str) -> (f64, f64, f64, f64) {
    let m = app.metrics().await;
    let rel = [("product", "payments"), ("release", release)];
    (
        m.value("bug_escape_release_defects", &rel),
        m.value("bug_escape_release_escaped_defects", &rel),
        total(&m, "bug_escape_unattributed_defects"),
        m.value("bug_escape_linked_records", &[("product", "payments")]),
    )
}

async fn defect(app: &TestApp, source: &str, id: &str) -> Value {
    reqwest::get(format!("http://{}/api/v1/defects/{source}/{id}", app.addr))
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_sentry_issue_annotated_with_its_ticket_counts_once_in_either_order() {
    // Older Sentry: HTML strings; newer: objects.
    let html = json!(["<a href=\"https://acme.atlassian.net/browse/BUG-15\">BUG-15</a>"]);
    let objects =
        json!([{"displayName": "BUG-15", "url": "https://acme.atlassian.net/browse/BUG-15"}]);
    for (sentry_first, annotations) in [(true, html), (false, objects)] {
        let app = spawn_with(linked_settings()).await;
        let release = fixture("sentry-docs/error_created.with-release.json");
        let issue = sentry_issue(Some(annotations), "2019-08-19T20:58:37Z");
        let ticket = production_ticket(Some("Fix me please"), "2024-04-01T10:00:00.000+0000");
        if sentry_first {
            app.sentry("error", &release).await.expect(200);
            app.sentry("issue", &issue).await.expect(200);
            assert_eq!(counts(&app, "2.4.0").await, (1.0, 1.0, 0.0, 0.0));
            app.jira("t1", &ticket).await.expect(200);
        } else {
            app.jira("t1", &ticket).await.expect(200);
            assert_eq!(
                counts(&app, "2.4.0").await,
                (0.0, 0.0, 1.0, 0.0),
                "the ticket alone: an escape with no release"
            );
            app.sentry("error", &release).await.expect(200);
            app.sentry("issue", &issue).await.expect(200);
        }
        // One escape of 2.4.0 (Sentry's release fills the ticket's gap),
        // two records folded into it, nothing left unattributed.
        assert_eq!(
            counts(&app, "2.4.0").await,
            (1.0, 1.0, 0.0, 2.0),
            "sentry first: {sentry_first}"
        );
        let got = defect(&app, "jira", TICKET_ID).await;
        assert_eq!(
            got["links"],
            json!([{"source": "jira", "id": "BUG-15"}]),
            "{got}"
        );
        assert_eq!(
            got["group"]["records"].as_array().map(Vec::len),
            Some(2),
            "{got}"
        );
        assert_eq!(got["group"]["counted"]["release"], "2.4.0", "{got}");
        // An issue object without `annotations` keeps the links; an empty
        // list removes them: two defects again.
        let later = sentry_issue(None, "2019-08-20T10:00:00Z");
        app.sentry("issue", &later).await.expect(200);
        assert_eq!(counts(&app, "2.4.0").await, (1.0, 1.0, 0.0, 2.0));
        let none = sentry_issue(Some(json!([])), "2019-08-21T10:00:00Z");
        app.sentry("issue", &none).await.expect(200);
        assert_eq!(counts(&app, "2.4.0").await, (1.0, 1.0, 1.0, 0.0));
    }
}

/// A GitHub issue that says `Fixes BUG-15`.
fn github_issue(body: &str, updated: &str) -> Vec<u8> {
    edited("github/issues_opened.json", |v| {
        v["issue"]["body"] = json!(body);
        v["issue"]["updated_at"] = json!(updated);
    })
}

#[tokio::test]
async fn a_chain_across_sentry_jira_and_github_is_one_defect_whatever_the_order() {
    let sentry_url =
        format!("https://acme.sentry.io/issues/{SENTRY_ISSUE}/?referrer=jira_integration");
    for reverse in [false, true] {
        let app = spawn_with(linked_settings()).await;
        let gh = github_issue("Fixes BUG-15 (crash on checkout)", "2019-05-15T15:20:18Z");
        let jira = production_ticket(
            Some(&format!("Sentry Issue: [FRONT-END-9|{sentry_url}]")),
            "2024-04-01T10:00:00.000+0000",
        );
        let se = sentry_issue(Some(json!([])), "2019-08-19T20:58:37Z");
        if reverse {
            app.sentry("issue", &se).await.expect(200);
            app.jira("j1", &jira).await.expect(200);
            app.github("issues", "g1", &gh).await.expect(200);
        } else {
            app.github("issues", "g1", &gh).await.expect(200);
            app.jira("j1", &jira).await.expect(200);
            app.sentry("issue", &se).await.expect(200);
        }
        // One defect: GitHub's release (a person's, from the milestone),
        // Sentry's production stage: one escape of 1.0, three records folded.
        assert_eq!(
            counts(&app, "1.0").await,
            (1.0, 1.0, 0.0, 3.0),
            "reverse: {reverse}"
        );
        let got = defect(&app, "github", GITHUB_ISSUE).await;
        assert_eq!(
            got["links"],
            json!([
                {"source": "github", "id": "codertocat/hello-world#1"},
                {"source": "jira", "id": "BUG-15"}
            ]),
            "{got}"
        );
        assert_eq!(
            got["group"]["records"].as_array().map(Vec::len),
            Some(3),
            "{got}"
        );
        assert_eq!(got["group"]["counted"]["stage"], "production", "{got}");
        assert_eq!(
            got["group"]["counted"]["detected_by"], "monitoring",
            "{got}"
        );
        // The ticket drops its Sentry link: GitHub and Jira stay one escape
        // of 1.0, Sentry's issue is one escape with no release.
        let unlinked = production_ticket(Some("fixed"), "2024-04-02T10:00:00.000+0000");
        app.jira("j2", &unlinked).await.expect(200);
        assert_eq!(
            counts(&app, "1.0").await,
            (1.0, 1.0, 1.0, 2.0),
            "reverse: {reverse}"
        );
        // And back: one again.
        app.jira(
            "j3",
            &production_ticket(Some(&sentry_url), "2024-04-03T10:00:00.000+0000"),
        )
        .await
        .expect(200);
        assert_eq!(counts(&app, "1.0").await, (1.0, 1.0, 0.0, 3.0));
    }
}

#[tokio::test]
async fn links_to_unconfigured_hosts_repositories_or_a_source_switched_off_are_ignored() {
    let app = spawn_with(linked_settings()).await;
    let gh = github_issue(
        "same as https://other.atlassian.net/browse/BUG-15, see also \
         https://github.com/codertocat/other/issues/1 and codertocat/other#1",
        "2019-05-15T15:20:18Z",
    );
    app.github("issues", "g1", &gh).await.expect(200);
    let jira = production_ticket(
        Some(
            "dup of https://github.com/codertocat/other/issues/1 and https://acme.sentry.io.evil.com/issues/1170820242/",
        ),
        "2024-04-01T10:00:00.000+0000",
    );
    app.jira("j1", &jira).await.expect(200);
    app.sentry(
        "issue",
        &sentry_issue(
            Some(json!([
                "<a href=\"https://jira.evil.com/browse/BUG-15\">x</a>"
            ])),
            "2019-08-19T20:58:37Z",
        ),
    )
    .await
    .expect(200);
    assert_eq!(
        counts(&app, "1.0").await,
        (0.0, 0.0, 2.0, 0.0),
        "three defects: GitHub's has no stage, the other two no release"
    );
    let got = defect(&app, "github", GITHUB_ISSUE).await;
    assert_eq!(
        got["links"],
        json!([{"source": "github", "id": "codertocat/hello-world#1"}]),
        "only its own alias: {got}"
    );
    // The same ticket naming the configured repository's issue joins it.
    let jira = production_ticket(
        Some("dup of https://github.com/Codertocat/Hello-World/issues/1"),
        "2024-04-02T10:00:00.000+0000",
    );
    app.jira("j2", &jira).await.expect(200);
    assert_eq!(counts(&app, "1.0").await, (1.0, 1.0, 1.0, 2.0));

    // `[webhooks.sentry] links = false`: Sentry's annotations are not read
    // and tickets' links to its issues do not count.
    let mut s = linked_settings();
    s.webhooks.sentry.links = false;
    let app = spawn_with(s).await;
    let sentry_url = format!("https://acme.sentry.io/issues/{SENTRY_ISSUE}/");
    app.jira(
        "j1",
        &production_ticket(Some(&sentry_url), "2024-04-01T10:00:00.000+0000"),
    )
    .await
    .expect(200);
    let annotated = json!(["<a href=\"https://acme.atlassian.net/browse/BUG-15\">BUG-15</a>"]);
    app.sentry(
        "issue",
        &sentry_issue(Some(annotated), "2019-08-19T20:58:37Z"),
    )
    .await
    .expect(200);
    assert_eq!(counts(&app, "2.4.0").await, (0.0, 0.0, 2.0, 0.0));
    let got = defect(&app, "jira", TICKET_ID).await;
    assert_eq!(
        got["links"],
        json!([{"source": "jira", "id": "BUG-15"}]),
        "{got}"
    );
}
