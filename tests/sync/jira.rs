//! `sync jira` and `serve`'s reconcile against the Jira stand-in: Cloud's
//! enhanced search with basic auth, Data Center's v2 search with a personal
//! access token.

use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bug_escape_exporter::config::webhooks::SecretSetting;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::jira_fake::{self as fake, Fake, Fault, KEY, World};
use crate::served::Served;
use crate::{release_times, rows, run, text, vendor_command};

const HOOK_SECRET: &str = "jira-hook-secret";

/// Cloud (`api_user`: basic auth, enhanced search) or Data Center (Bearer, v2).
#[derive(Clone, Copy)]
enum Site {
    Cloud,
    DataCenter,
}

fn toml(api: &str, site: Site) -> String {
    let user = match site {
        Site::Cloud => format!("api_user = \"{}\"\n", fake::USER),
        Site::DataCenter => String::new(),
    };
    format!("[webhooks.jira]\napi_url = \"{api}\"\nprojects = [\"{KEY}\"]\n{user}")
}

fn auth(site: Site) -> String {
    match site {
        Site::Cloud => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                fake::USER,
                fake::TOKEN
            ))
        ),
        Site::DataCenter => format!("Bearer {}", fake::TOKEN),
    }
}

fn command(dir: &std::path::Path, api: &str, site: Site, args: &[&str]) -> std::process::Command {
    let mut all = vec!["jira"];
    all.extend_from_slice(args);
    vendor_command(
        dir,
        &toml(api, site),
        &[("BUG_ESCAPE_JIRA_API_TOKEN", fake::TOKEN)],
        &all,
    )
}

async fn sync(dir: &std::path::Path, api: &str, site: Site, args: &[&str]) -> Output {
    run(command(dir, api, site, args)).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .timestamp_millis()
}

/// Five issues over three pages of two: a bug, a bug affecting two versions
/// (the earliest is its release), a story, a duplicate, a malformed one; a
/// released version, a released one without a date and an unreleased one.
fn world(site: Site) -> World {
    let v240 = fake::version("10100", "2.4.0", true, Some("2024-02-01"));
    let v250 = fake::version("10101", "2.5.0", true, Some("2024-03-01"));
    let i = |id, labels: &[&str], versions: &[Value], updated: &str| {
        fake::issue_object(
            id,
            &format!("PAY-{}", id - 10000),
            "Bug",
            labels,
            versions,
            updated,
        )
    };
    let mut duplicate = i(10004, &["stage:qa"], &[], "2024-03-04T00:00:00.000+0000");
    duplicate["fields"]["resolution"] = json!({"id": "10002", "name": "Duplicate"});
    let mut malformed = i(10005, &[], &[], "2024-03-05T00:00:00.000+0000");
    malformed["fields"]["labels"] = json!("stage:qa");
    World {
        issues: vec![
            i(
                10001,
                &["stage:qa"],
                std::slice::from_ref(&v240),
                "2024-03-01T00:00:00.000+0000",
            ),
            i(
                10002,
                &["stage:production"],
                &[v250, v240.clone()],
                "2024-03-02T00:00:00.000+0000",
            ),
            fake::issue_object(
                10003,
                "PAY-3",
                "Story",
                &[],
                &[],
                "2024-03-03T00:00:00.000+0000",
            ),
            duplicate,
            malformed,
        ],
        versions: vec![
            v240,
            fake::version("10102", "2.6.0", true, None),
            fake::version("10103", "3.0.0", false, Some("2024-06-01")),
        ],
        auth: auth(site),
        ..World::default()
    }
}

type Row = (Option<String>, Option<String>, String, bool);

fn row(stage: &str, release: Option<&str>, status: &str, deleted: bool) -> Row {
    (
        Some(stage.to_owned()),
        release.map(str::to_owned),
        status.to_owned(),
        deleted,
    )
}

#[tokio::test]
async fn cloud_a_backfill_reads_every_page_then_a_reconcile_only_what_changed() {
    let fake = Fake::start(world(Site::Cloud)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = sync(dir.path(), &fake.url(), Site::Cloud, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains(
            "imported 4, unchanged 0, stale 0, ignored 3, rejected 1, deleted 0; differences 0"
        ),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("issue PAY-5"),
        "{}",
        text(&out)
    );
    let searches = fake.searches();
    assert_eq!(searches.len(), 3, "{searches:?}");
    assert!(searches.iter().all(|l| l.path == "/rest/api/3/search/jql"));
    assert!(
        searches[1].query.contains("nextPageToken=tok-2"),
        "{searches:?}"
    );
    assert_eq!(fake.with(|w| w.windows[0]), None, "first run: everything");
    assert!(
        fake.log().iter().all(|l| l.status != 401),
        "{:?}",
        fake.log()
    );
    assert!(!text(&out).contains(fake::TOKEN));
    let db = dir.path().join("bug-escape.db");
    let r = rows(&db, "jira");
    assert_eq!(r["10001"], row("qa", Some("2.4.0"), "valid", false));
    // The earliest Affects version, as for the webhook.
    assert_eq!(r["10002"], row("production", Some("2.4.0"), "valid", false));
    assert_eq!(r["10004"], row("qa", None, "duplicate", false));
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(
        release_times(&db, "jira").into_iter().collect::<Vec<_>>(),
        [("2.4.0".to_owned(), 1_706_745_600_000)]
    );

    // PAY-1 reaches production and PAY-6 is opened.
    fake.with(|w| {
        w.issues[0] = fake::issue_object(
            10001,
            "PAY-1",
            "Bug",
            &["stage:production"],
            &[],
            "2024-04-01T00:00:00.000+0000",
        );
        w.issues.push(fake::issue_object(
            10006,
            "PAY-6",
            "Bug",
            &["stage:qa"],
            &[],
            "2024-04-02T00:00:00.000+0000",
        ));
        w.log.clear();
        w.windows.clear();
    });
    let out = sync(dir.path(), &fake.url(), Site::Cloud, &[]).await;
    // Relative to the server's clock, five to six minutes before the newest
    // update the last pass saw (the malformed PAY-5): it is read again.
    let window = fake.with(|w| w.windows[0]).expect("a bound");
    let mark = ms("2024-03-05T00:00:00.000+0000");
    assert!(
        (mark - 6 * 60_000 - 2_000..=mark - 5 * 60_000 + 2_000).contains(&window),
        "{} min before the mark",
        (mark - window) as f64 / 60_000.0
    );
    assert!(
        stdout(&out).contains(
            "imported 2, unchanged 1, stale 0, ignored 2, rejected 1, deleted 0; differences 2"
        ),
        "{}",
        text(&out)
    );
    assert_eq!(rows(&db, "jira")["10001"].0.as_deref(), Some("production"));
}

#[tokio::test]
async fn data_center_rate_limits_server_errors_and_timeouts_are_waited_out() {
    let fake = Fake::start(world(Site::DataCenter)).await;
    let dir = tempfile::tempdir().unwrap();
    fake.with(|w| {
        w.faults.extend([
            Fault::Status(
                429,
                vec![
                    ("retry-after", "1".into()),
                    ("x-ratelimit-limit", "100".into()),
                    ("x-ratelimit-remaining", "0".into()),
                ],
                json!({"errorMessages": ["Rate limit exceeded."], "errors": {}}),
            ),
            Fault::Status(
                503,
                vec![],
                json!({"errorMessages": ["Service Unavailable"]}),
            ),
            Fault::Hang(Duration::from_secs(2)),
        ])
    });
    let started = Instant::now();
    let out = sync(dir.path(), &fake.url(), Site::DataCenter, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let searches = fake.searches();
    let statuses: Vec<u16> = searches.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [429, 503, 0, 200, 200, 200], "{statuses:?}");
    assert!(searches.iter().all(|l| l.path == "/rest/api/2/search"));
    assert!(searches[5].query.contains("startAt=4"), "{searches:?}");
    assert_eq!(rows(&dir.path().join("bug-escape.db"), "jira").len(), 3);
}

#[tokio::test]
async fn a_sync_killed_half_way_resumes_from_its_last_committed_page() {
    let fake = Fake::start(world(Site::DataCenter)).await;
    let dir = tempfile::tempdir().unwrap();
    fake.with(|w| w.stall_after = Some(2));
    let mut child = command(dir.path(), &fake.url(), Site::DataCenter, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fake.searches().iter().any(|l| l.status == 0) {
        assert!(Instant::now() < deadline, "page 3 never asked for");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let db = dir.path().join("bug-escape.db");
    assert_eq!(
        rows(&db, "jira").keys().cloned().collect::<Vec<_>>(),
        ["10001", "10002", "10004"],
        "pages 1-2 committed"
    );
    fake.with(|w| {
        w.stall_after = None;
        w.log.clear();
        w.windows.clear();
    });
    let out = sync(dir.path(), &fake.url(), Site::DataCenter, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Resumed from page 2's newest update (PAY-4), not from the start.
    let window = fake.with(|w| w.windows[0]).expect("a bound");
    let mark = ms("2024-03-04T00:00:00.000+0000");
    assert!(
        (mark - 6 * 60_000 - 2_000..=mark - 5 * 60_000 + 2_000).contains(&window),
        "{window}"
    );
    assert_eq!(fake.searches().len(), 1);
    assert!(
        stdout(&out).contains("imported 1, unchanged 1,"),
        "the version; PAY-4 again: {}",
        text(&out)
    );
}

#[tokio::test]
async fn a_full_sync_deletes_deleted_issues_and_follows_moved_ones() {
    let fake = Fake::start(world(Site::Cloud)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = sync(dir.path(), &fake.url(), Site::Cloud, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // PAY-2 is deleted; PAY-4 moves to OPS (same id, new key).
    fake.with(|w| {
        w.deleted = vec!["10002".into()];
        let moved = &mut w.issues[3];
        moved["key"] = json!("OPS-9");
        moved["fields"]["project"]["key"] = json!("OPS");
        moved["fields"]["updated"] = json!("2024-03-10T00:00:00.000+0000");
        w.log.clear();
    });
    let out = sync(dir.path(), &fake.url(), Site::Cloud, &["--full"]).await;
    assert!(
        stdout(&out).contains("imported 1, unchanged 2,") && stdout(&out).contains("deleted 1;"),
        "{}",
        text(&out)
    );
    let db = dir.path().join("bug-escape.db");
    let r = rows(&db, "jira");
    assert!(r["10002"].3 && !r["10001"].3 && !r["10004"].3, "{r:?}");
    let ns: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT product_ns FROM defects WHERE source = 'jira' AND id = '10004'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ns, "OPS");
    let probes: Vec<(String, u16)> = fake
        .log()
        .iter()
        .filter(|l| l.path.starts_with("/rest/api/2/issue/") && !l.path.ends_with("/remotelink"))
        .map(|l| (l.path.clone(), l.status))
        .collect();
    assert_eq!(
        probes,
        [
            ("/rest/api/2/issue/10002".to_owned(), 404),
            ("/rest/api/2/issue/10004".to_owned(), 200)
        ]
    );
    let out = sync(dir.path(), &fake.url(), Site::Cloud, &["--full"]).await;
    assert!(
        stdout(&out).contains("imported 0,") && stdout(&out).contains("deleted 0;"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn missing_settings_and_a_bad_token_are_clear_errors() {
    let fake = Fake::start(world(Site::DataCenter)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(vendor_command(
        dir.path(),
        &format!("[webhooks.jira]\nprojects = [\"{KEY}\"]\n"),
        &[],
        &["jira"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("webhooks.jira.api_url"),
        "{}",
        text(&out)
    );
    let out = run(vendor_command(
        dir.path(),
        &toml(&fake.url(), Site::DataCenter),
        &[("BUG_ESCAPE_JIRA_API_TOKEN", "wrong-token")],
        &["jira"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("401 You are not authenticated") && all.contains("/rest/api/2/project/PAY"),
        "{all}"
    );
    assert!(!all.contains("wrong-token"), "{all}");
}

/// `serve` reconciling the Cloud site at `api` every second, taking the
/// hook secret.
async fn serve(db: &std::path::Path, api: String) -> Served {
    Served::start(db, |s| {
        let j = &mut s.webhooks.jira;
        j.auth.secret = Some(SecretSetting::One(HOOK_SECRET.into()));
        j.api.api_url = api.clone();
        j.api.api_token = Some(fake::TOKEN.into());
        j.api_user = Some(fake::USER.into());
        j.projects = vec![KEY.into()];
        j.sync_interval = Some("1s".into());
    })
    .await
}

/// The first pass (a backfill) at start, not a difference; returns the time
/// of its success.
async fn first_pass(app: &Served) -> f64 {
    let g = [("source", "jira")];
    let m = app
        .until("the first pass", |m| {
            m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
                .is_some()
        })
        .await;
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(0.0));
    m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
        .unwrap()
}

/// PAY-1 moves to production and its webhook arrives (the same issue
/// object); PAY-2 is opened and its webhook is dropped.
async fn deliver_one_and_drop_two(fake: &Fake, app: &Served) {
    let v = [fake::version("10100", "2.4.0", true, Some("2024-02-01"))];
    let moved = fake::issue_object(
        10001,
        "PAY-1",
        "Bug",
        &["stage:production"],
        &v,
        "2024-03-02T00:00:00.000+0000",
    );
    let opened = fake::issue_object(
        10002,
        "PAY-2",
        "Bug",
        &["stage:qa"],
        &v,
        "2024-03-03T00:00:00.000+0000",
    );
    fake.with(|w| w.issues = vec![moved.clone(), opened]);
    // PAY-1's webhook arrives (the same issue object); PAY-2's is dropped.
    deliver(app, &moved, "d-1").await;
}

/// The pass after `first` brings in only PAY-2.
async fn assert_reconcile_recovers_two(app: &Served, first: f64) {
    let g = [("source", "jira")];
    let m = app
        .until("the reconcile", |m| {
            m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
                .is_some_and(|t| t > first)
        })
        .await;
    // Only PAY-2 was behind; PAY-1 converts as its webhook did: unchanged.
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(1.0));
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", KEY), ("release", "2.4.0")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_release_escaped_defects",
            &[("product", KEY), ("release", "2.4.0")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_dropped_webhook_is_recovered_by_the_next_periodic_reconcile() {
    let fake = Fake::start(World {
        auth: auth(Site::Cloud),
        ..World::default()
    })
    .await;
    let first = fake::issue_object(
        10001,
        "PAY-1",
        "Bug",
        &["stage:qa"],
        &[fake::version("10100", "2.4.0", true, Some("2024-02-01"))],
        "2024-03-01T00:00:00.000+0000",
    );
    fake.with(|w| w.issues = vec![first]);
    let dir = tempfile::tempdir().unwrap();
    let app = serve(&dir.path().join("bug-escape.db"), fake.url()).await;
    let first = first_pass(&app).await;
    deliver_one_and_drop_two(&fake, &app).await;
    assert_reconcile_recovers_two(&app, first).await;
    app.stop().await;
}

#[tokio::test]
async fn sync_reads_sentry_links_from_descriptions_like_the_webhook() {
    let mut issue = fake::issue_object(
        10001,
        "PAY-1",
        "Bug",
        &["stage:qa"],
        &[],
        "2024-02-01T10:00:00.000+0000",
    );
    // Cloud's enhanced search answers ADF: the link is a `link` mark's href.
    issue["fields"]["description"] = json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [
            {"type": "text", "text": "Sentry Issue: "},
            {"type": "text", "text": "PAY-API-1", "marks": [{"type": "link", "attrs": {
                "href": "https://acme.sentry.io/issues/4711/?referrer=jira_integration"}}]},
            {"type": "text", "text": " https://other.sentry.io/issues/1/"}
        ]}
    ]});
    let fake = Fake::start(World {
        issues: vec![issue],
        auth: auth(Site::Cloud),
        ..World::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    sync_with_sentry_org(dir.path(), &fake).await;
    let searches = fake.searches();
    assert!(
        searches.iter().all(|l| l.query.contains("description")),
        "{searches:?}"
    );
    let conn = rusqlite::Connection::open(dir.path().join("bug-escape.db")).unwrap();
    let links: Vec<(String, String, String, String)> = conn
        .prepare("SELECT source, id, to_source, to_id FROM links ORDER BY to_source, to_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let link = |to: &str, id: &str| {
        (
            "jira".to_owned(),
            "10001".to_owned(),
            to.to_owned(),
            id.to_owned(),
        )
    };
    // Its own alias (the key), as the webhook gives it, and the Sentry issue.
    assert_eq!(links, [link("jira", "PAY-1"), link("sentry", "4711")]);
}

/// The stored links of Jira issue `id`.
fn stored_links(db: &std::path::Path, id: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.prepare("SELECT to_source, to_id FROM links WHERE source = 'jira' AND id = ?1")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Signs and posts a `jira:issue_updated` delivery of `issue`.
async fn deliver(app: &Served, issue: &Value, delivery: &str) {
    let body = json!({"timestamp": 1709337600000_i64, "webhookEvent": "jira:issue_updated",
                      "issue_event_type_name": "issue_generic", "issue": issue})
    .to_string()
    .into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let sig = hex::encode(mac.finalize().into_bytes());
    app.post(
        "/webhooks/jira",
        &[
            ("x-hub-signature", format!("sha256={sig}")),
            ("x-atlassian-webhook-identifier", delivery.into()),
        ],
        body,
    )
    .await;
}

#[tokio::test]
async fn remote_links_are_read_by_sync_and_by_the_webhook_alike() {
    let issue = |updated: &str| {
        let mut i = fake::issue_object(10001, "PAY-1", "Bug", &["stage:production"], &[], updated);
        i["fields"]["description"] = json!("Checkout fails for saved cards.");
        i
    };
    let sentry = fake::remote_link(1, "https://acme.sentry.io/issues/4711/", "PAY-API-1");
    let elsewhere = fake::remote_link(2, "https://other.sentry.io/issues/1/", "elsewhere");
    let fake = Fake::start(World {
        issues: vec![issue("2024-03-01T00:00:00.000+0000")],
        remote_links: [("10001".to_owned(), vec![sentry, elsewhere.clone()])].into(),
        auth: auth(Site::Cloud),
        ..World::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bug-escape.db");
    let api = fake.url();
    let app = Served::start(&db, |s| {
        let j = &mut s.webhooks.jira;
        j.auth.secret = Some(SecretSetting::One(HOOK_SECRET.into()));
        j.api.api_url = api.clone();
        j.api.api_token = Some(fake::TOKEN.into());
        j.api_user = Some(fake::USER.into());
        j.projects = vec![KEY.into()];
        s.webhooks.sentry.organization = Some("acme".into());
    })
    .await;
    let to_sentry = ("sentry".to_owned(), "4711".to_owned());
    // The webhook asks for the issue's remote links before converting it:
    // the remote link to the organisation's Sentry issue is held, the other
    // Sentry's is not.
    deliver(&app, &issue("2024-03-02T00:00:00.000+0000"), "d-1").await;
    let held = stored_links(&db, "10001");
    assert!(held.contains(&to_sentry), "{held:?}");
    assert!(!held.iter().any(|l| l.1 == "1"), "{held:?}");
    let asked = fake.logged(|p| p == "/rest/api/2/issue/10001/remotelink");
    assert_eq!(asked.len(), 1, "{asked:?}");
    // The API failing: the delivery is stored, its links are kept, the
    // failure counted.
    fake.with(|w| w.remote_fails = true);
    deliver(&app, &issue("2024-03-03T00:00:00.000+0000"), "d-2").await;
    assert_eq!(stored_links(&db, "10001"), held);
    let m = app.metrics().await;
    assert_eq!(
        m.get("bug_escape_source_api_errors_total", &[("source", "jira")]),
        Some(1.0)
    );
    // The remote link removed: the next delivery drops it.
    fake.with(|w| {
        w.remote_fails = false;
        w.remote_links
            .insert("10001".into(), vec![elsewhere.clone()]);
    });
    deliver(&app, &issue("2024-03-04T00:00:00.000+0000"), "d-3").await;
    assert!(!stored_links(&db, "10001").contains(&to_sentry));
    app.stop().await;
    // `sync` reads the same remote links through the same conversion.
    fake.with(|w| {
        w.remote_links
            .get_mut("10001")
            .unwrap()
            .push(fake::remote_link(
                3,
                "https://acme.sentry.io/issues/4711/?referrer=jira",
                "PAY-API-1",
            ));
        w.issues = vec![issue("2024-03-05T00:00:00.000+0000")];
    });
    let out = sync_with_sentry_org(dir.path(), &fake).await;
    let asked = fake.logged(|p| p.ends_with("/remotelink"));
    assert!(
        stored_links(&db, "10001").contains(&to_sentry),
        "{asked:?} {}",
        text(&out)
    );
}

/// `sync jira` against `fake` with `[webhooks.sentry] organization = "acme"`;
/// asserts it succeeded.
async fn sync_with_sentry_org(dir: &std::path::Path, fake: &Fake) -> Output {
    let toml = format!(
        "{}\n[webhooks.sentry]\norganization = \"acme\"\n",
        toml(&fake.url(), Site::Cloud)
    );
    let out = run(vendor_command(
        dir,
        &toml,
        &[("BUG_ESCAPE_JIRA_API_TOKEN", fake::TOKEN)],
        &["jira"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    out
}
