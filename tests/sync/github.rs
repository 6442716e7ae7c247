//! `sync github` and `serve`'s reconcile against the GitHub stand-in.

use std::time::{Duration, Instant};

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::webhooks::SecretSetting;
use bug_escape_exporter::config::{Config, Settings};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::fake::{self, Fake, Fault, REPO, REPO_ID, World};
use crate::{defects, sync, sync_command, text};

const SECRET: &str = "webhook-secret";

fn id(n: u64) -> String {
    format!("{REPO_ID}#{n}")
}

/// Five issues, a pull request and a malformed issue over three pages of
/// two; a release and a draft.
fn world(base: &str) -> World {
    let i = |n, labels: &[&str], updated: &str| {
        fake::issue_object(base, REPO, n, labels, "2024-01-10T09:00:00Z", updated)
    };
    let mut milestoned = i(2, &["bug", "stage:production"], "2024-03-02T00:00:00Z");
    milestoned["milestone"] = json!({"id": 1002604, "number": 1, "title": "v1.0", "state": "open"});
    let mut malformed = i(6, &["bug"], "2024-03-06T00:00:00Z");
    malformed["labels"] = json!("bug");
    World {
        issues: vec![
            i(
                1,
                &["bug", "stage:qa", "release:v1.0"],
                "2024-03-01T00:00:00Z",
            ),
            milestoned,
            i(3, &["enhancement"], "2024-03-03T00:00:00Z"),
            fake::pull_request(base, 4, "2024-03-04T00:00:00Z"),
            i(
                5,
                &["bug", "stage:qa", "release:1.1"],
                "2024-03-05T00:00:00Z",
            ),
            malformed,
        ],
        releases: vec![
            fake::release_object("v1.1", "2024-04-01T00:00:00Z", true),
            fake::release_object("v1.0", "2024-02-01T00:00:00Z", false),
        ],
        ..World::default()
    }
}

async fn started() -> (Fake, tempfile::TempDir) {
    let fake = Fake::start(World::default()).await;
    let w = world(&fake.url());
    fake.with(|x| *x = w);
    (fake, tempfile::tempdir().unwrap())
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
}

/// The first run lists every page (following the Link header, the token
/// sent and never printed), applies all but the malformed #6 and names it.
fn assert_backfill(fake: &Fake, db: &std::path::Path, out: &std::process::Output) {
    // One issue is malformed: rejected and named, the others applied.
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "imported 4, unchanged 0, stale 0, ignored 3, rejected 1, deleted 0; differences 0"
        ),
        "{}",
        text(out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("issue #6"),
        "{}",
        text(out)
    );
    let lists = fake.issue_lists();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert_eq!(
        query_param(&lists[0].query, "since"),
        None,
        "first run lists everything"
    );
    assert!(
        lists[1].path.starts_with("/repositories/"),
        "followed the Link header"
    );
    assert!(
        fake.log()
            .iter()
            .all(|l| l.auth.as_deref() == Some(&format!("Bearer {}", fake::TOKEN)))
    );
    assert!(!text(out).contains(fake::TOKEN));
    let rows = defects(db);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[&id(1)], (Some("qa".into()), Some("1.0".into()), false));
    // The milestone is the release, as for the webhook.
    assert_eq!(
        rows[&id(2)],
        (Some("production".into()), Some("1.0".into()), false)
    );
    assert_eq!(rows[&id(5)], (Some("qa".into()), Some("1.1".into()), false));
    // Each issue links to its own name, its alias, as the webhook gives it.
    let conn = rusqlite::Connection::open(db).unwrap();
    let alias: String = conn
        .query_row(
            "SELECT to_id FROM links WHERE source = 'github' AND id = ?1 AND to_source = 'github'",
            [id(1)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(alias, format!("{REPO}#1"));
}

/// GitHub changes #5 and opens #7; nothing else moves. The stand-in's log
/// starts afresh.
fn change_five_and_open_seven(fake: &Fake) {
    let base = fake.url();
    fake.with(|w| {
        w.issues[4] = fake::issue_object(
            &base,
            REPO,
            5,
            &["bug", "stage:production", "release:1.1"],
            "2024-01-10T09:00:00Z",
            "2024-04-01T00:00:00Z",
        );
        w.issues.push(fake::issue_object(
            &base,
            REPO,
            7,
            &["bug", "stage:qa", "release:1.1"],
            "2024-04-02T00:00:00Z",
            "2024-04-02T00:00:00Z",
        ));
        w.log.clear();
    });
}

/// The second run lists from where the first left off and applies only the
/// changes.
fn assert_reconcile(fake: &Fake, db: &std::path::Path, out: &std::process::Output) {
    let lists = fake.issue_lists();
    // From the newest update the last pass saw (the malformed #6), inclusive.
    assert_eq!(
        query_param(&lists[0].query, "since"),
        Some("2024-03-06T00:00:00Z"),
        "{lists:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(
            "imported 2, unchanged 1, stale 0, ignored 1, rejected 1, deleted 0; differences 2"
        ),
        "{}",
        text(out)
    );
    let rows = defects(db);
    assert_eq!(rows[&id(5)].0.as_deref(), Some("production"));
    assert_eq!(rows[&id(7)].0.as_deref(), Some("qa"));
}

/// A server started on that database shows the standalone sync's success,
/// the synced defects and release times, and no webhook activity.
async fn assert_served_after_sync(db: &std::path::Path, api: &str) {
    let app = serve(db, None, api).await;
    let m = app.metrics().await;
    let last = m.get(
        "bug_escape_sync_last_success_timestamp_seconds",
        &[("source", "github")],
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(
        last.is_some_and(|t| (now - 60.0..=now + 1.0).contains(&t)),
        "{last:?}"
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", REPO), ("release", "1.1")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &[("product", REPO), ("release", "1.0")]
        ),
        Some(1_706_745_600.0)
    );
    // Sync never marks the webhook source active.
    assert_eq!(
        m.get(
            "bug_escape_last_event_timestamp_seconds",
            &[("source", "github")]
        ),
        None
    );
    app.stop().await;
}

#[tokio::test]
async fn a_backfill_reads_every_page_then_a_reconcile_only_what_changed() {
    let (fake, dir) = started().await;
    let db = dir.path().join("bug-escape.db");
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_backfill(&fake, &db, &out);

    change_five_and_open_seven(&fake);
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_reconcile(&fake, &db, &out);

    assert_served_after_sync(&db, &fake.url()).await;
}

#[tokio::test]
async fn rate_limits_server_errors_and_timeouts_are_waited_out() {
    let (fake, dir) = started().await;
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    fake.with(|w| {
        w.faults.extend([
            Fault::Status(
                403,
                vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset)],
                json!({"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
            ),
            Fault::Status(429, vec![("retry-after", "1".into())], json!({"message": "You have exceeded a secondary rate limit."})),
            Fault::Status(502, vec![], json!({"message": "Server Error"})),
            Fault::Hang(Duration::from_secs(2)),
        ])
    });
    let started = Instant::now();
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The reset (1-2 s) and Retry-After (1 s) were honoured.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let statuses: Vec<u16> = fake.issue_lists().iter().map(|l| l.status).collect();
    assert_eq!(&statuses[..5], &[403, 429, 502, 0, 200], "{statuses:?}");
    assert_eq!(defects(&dir.path().join("bug-escape.db")).len(), 3);
    assert!(!text(&out).contains(fake::TOKEN));
}

#[tokio::test]
async fn a_long_rate_limit_or_a_persistent_5xx_stops_the_pass_and_a_rerun_completes_it() {
    let (fake, dir) = started().await;
    fake.with(|w| {
        w.faults.push_back(Fault::Status(
            429,
            vec![("retry-after", "3600".into())],
            json!({"message": "slow down"}),
        ))
    });
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rate limited until"),
        "{}",
        text(&out)
    );
    // max_attempts = 5: five 503s, then it gives up naming the URL and status.
    fake.with(|w| {
        w.log.clear();
        for _ in 0..5 {
            w.faults.push_back(Fault::Status(
                503,
                vec![],
                json!({"message": "Service Unavailable"}),
            ));
        }
    });
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("503") && stderr.contains("/repos/acme/payments/issues"),
        "{}",
        text(&out)
    );
    assert_eq!(fake.issue_lists().len(), 5);
    assert!(defects(&dir.path().join("bug-escape.db")).is_empty());
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(defects(&dir.path().join("bug-escape.db")).len(), 3);
}

#[tokio::test]
async fn a_sync_killed_half_way_resumes_from_its_last_committed_page() {
    let (fake, dir) = started().await;
    fake.with(|w| w.stall_after = Some(2));
    let mut child = sync_command(dir.path(), &fake.url(), &["github"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until page 3 is asked for (and hangs): pages 1 and 2 are done.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fake.issue_lists().iter().any(|l| l.status == 0) {
        assert!(Instant::now() < deadline, "page 3 never asked for");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let db = dir.path().join("bug-escape.db");
    let rows = defects(&db);
    assert_eq!(
        rows.keys().cloned().collect::<Vec<_>>(),
        [id(1), id(2)],
        "pages 1-2 committed"
    );
    fake.with(|w| {
        w.stall_after = None;
        w.log.clear();
    });
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lists = fake.issue_lists();
    // Resumed from the newest update of page 2 (the pull request #4).
    assert_eq!(
        query_param(&lists[0].query, "since"),
        Some("2024-03-04T00:00:00Z"),
        "{lists:?}"
    );
    assert_eq!(lists.len(), 2, "{lists:?}");
    let rows = defects(&db);
    assert_eq!(rows.len(), 3);
    assert!(rows.values().all(|r| !r.2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 2,"),
        "#5 and the release: {}",
        text(&out)
    );
}

#[tokio::test]
async fn a_full_sync_deletes_issues_deleted_or_transferred_at_the_source() {
    let (fake, dir) = started().await;
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    fake.with(|w| {
        w.deleted = vec![2];
        w.transferred = vec![5];
    });
    let out = sync(dir.path(), &fake.url(), &["github", "--full"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 2;"),
        "{}",
        text(&out)
    );
    let rows = defects(&dir.path().join("bug-escape.db"));
    assert!(
        rows[&id(2)].2 && rows[&id(5)].2 && !rows[&id(1)].2,
        "{rows:?}"
    );
    let probes: Vec<u16> = fake
        .log()
        .iter()
        .filter(|l| l.path.contains("/issues/"))
        .map(|l| l.status)
        .collect();
    assert!(probes.contains(&410) && probes.contains(&301), "{probes:?}");
    // Again: nothing left to delete.
    let out = sync(dir.path(), &fake.url(), &["github", "--full"]).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 0;"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn the_cli_refuses_what_it_cannot_do() {
    let (fake, dir) = started().await;
    // A source with nothing configured to read.
    let out = sync(dir.path(), &fake.url(), &["gitlab"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to sync"),
        "{}",
        text(&out)
    );
    let out = sync(dir.path(), &fake.url(), &["github", "--since", "yesterday"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // While serve holds the database.
    let db = dir.path().join("bug-escape.db");
    let app = serve(&db, None, &fake.url()).await;
    let out = sync(dir.path(), &fake.url(), &["github"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sync_interval"),
        "{}",
        text(&out)
    );
    app.stop().await;
    assert!(fake.issue_lists().is_empty());
}

// ---------------------------------------------------------------------------
// serve
// ---------------------------------------------------------------------------

struct Served {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

struct Scraped(String);

impl Scraped {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.lines().find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            let count = rest.matches("=\"").count();
            (all && count == labels.len()).then(|| value.parse().ok())?
        })
    }
}

impl Served {
    async fn metrics(&self) -> Scraped {
        Scraped(
            reqwest::get(format!("{}/metrics", self.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    async fn webhook(&self, delivery: &str, body: &Value) {
        let bytes = body.to_string().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&bytes);
        let sig = hex::encode(mac.finalize().into_bytes());
        let r = reqwest::Client::new()
            .post(format!("{}/webhooks/github", self.base))
            .header("content-type", "application/json")
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", format!("sha256={sig}"))
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

async fn serve(db: &std::path::Path, interval: Option<&str>, api: &str) -> Served {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        db: db.to_path_buf(),
        ..Settings::default()
    };
    s.webhooks.github.auth.secret = Some(SecretSetting::One(SECRET.into()));
    s.webhooks.github.api.api_url = api.into();
    s.webhooks.github.api.api_token = Some(fake::TOKEN.into());
    s.webhooks.github.repositories = vec![REPO.into()];
    s.webhooks.github.sync_interval = interval.map(str::to_owned);
    s.sync.retry_backoff = "50ms".into();
    s.sync.timeout = "1s".into();
    s.sync.page_size = 2;
    let app = Application::build(Config::from_settings(s).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    Served { base, stop, task }
}

async fn until(app: &Served, what: &str, ok: impl Fn(&Scraped) -> bool) -> Scraped {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = app.metrics().await;
        if ok(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what} never happened:\n{}", m.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue #1 with `labels`, last updated at `updated`.
fn issue_one(base: &str, labels: &[&str], updated: &str) -> Value {
    fake::issue_object(base, REPO, 1, labels, "2024-01-10T09:00:00Z", updated)
}

/// The first pass (a backfill) at start: imported, not a difference, and no
/// webhook seen; returns the time of its success.
async fn first_pass(app: &Served) -> f64 {
    let g = [("source", "github")];
    let m = until(app, "the first pass", |m| {
        m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
            .is_some()
    })
    .await;
    assert_eq!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "github"), ("result", "imported")]
        ),
        Some(1.0)
    );
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(0.0));
    assert_eq!(m.get("bug_escape_last_event_timestamp_seconds", &g), None);
    m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
        .unwrap()
}

/// #1 moves to production and the webhook delivers it; #2 is opened and its
/// webhook is dropped (never sent).
async fn deliver_one_and_drop_two(fake: &Fake, app: &Served) {
    let base = fake.url();
    let moved = issue_one(
        &base,
        &["bug", "stage:production", "release:1.0"],
        "2024-03-02T00:00:00Z",
    );
    let opened = fake::issue_object(
        &base,
        REPO,
        2,
        &["bug", "stage:qa", "release:1.0"],
        "2024-03-03T00:00:00Z",
        "2024-03-03T00:00:00Z",
    );
    fake.with(|w| w.issues = vec![moved.clone(), opened]);
    let repository = json!({"id": REPO_ID, "full_name": REPO, "name": "payments"});
    app.webhook(
        "d-1",
        &json!({"action": "labeled", "issue": moved, "repository": repository}),
    )
    .await;
    let m = app.metrics().await;
    assert!(
        m.get(
            "bug_escape_last_event_timestamp_seconds",
            &[("source", "github")]
        )
        .is_some()
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", REPO), ("release", "1.0")]
        ),
        Some(1.0)
    );
}

/// The pass after `first` brings in only #2 (one difference); #1, delivered,
/// is unchanged.
async fn assert_reconcile_recovers_two(app: &Served, first: f64) {
    let g = [("source", "github")];
    let m = until(app, "the reconcile", |m| {
        m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
            .is_some_and(|t| t > first)
    })
    .await;
    // Only #2 was behind: one difference; #1 (delivered) is unchanged.
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(1.0));
    assert_eq!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "github"), ("result", "imported")]
        ),
        Some(2.0)
    );
    assert!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "github"), ("result", "unchanged")]
        ) >= Some(1.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", REPO), ("release", "1.0")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_release_escaped_defects",
            &[("product", REPO), ("release", "1.0")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_dropped_webhook_is_recovered_by_the_next_periodic_reconcile() {
    let fake = Fake::start(World::default()).await;
    let base = fake.url();
    fake.with(|w| {
        w.issues = vec![issue_one(
            &base,
            &["bug", "stage:qa", "release:1.0"],
            "2024-03-01T00:00:00Z",
        )]
    });
    let dir = tempfile::tempdir().unwrap();
    let app = serve(&dir.path().join("bug-escape.db"), Some("1s"), &base).await;
    let first = first_pass(&app).await;
    deliver_one_and_drop_two(&fake, &app).await;
    assert_reconcile_recovers_two(&app, first).await;
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_newer_than_the_api_is_never_overwritten_by_a_sync() {
    let fake = Fake::start(World::default()).await;
    let base = fake.url();
    let old = fake::issue_object(
        &base,
        REPO,
        1,
        &["bug", "stage:qa", "release:1.0"],
        "2024-01-10T09:00:00Z",
        "2024-03-01T00:00:00Z",
    );
    let newer = fake::issue_object(
        &base,
        REPO,
        1,
        &["bug", "stage:production", "release:1.0"],
        "2024-01-10T09:00:00Z",
        "2024-03-09T00:00:00Z",
    );
    // The API (a replica behind) still lists the old state.
    fake.with(|w| w.issues = vec![old]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bug-escape.db");
    let app = serve(&db, None, &base).await;
    let repository = json!({"id": REPO_ID, "full_name": REPO, "name": "payments"});
    app.webhook(
        "d-1",
        &json!({"action": "labeled", "issue": newer, "repository": repository}),
    )
    .await;
    app.stop().await;
    let out = sync(dir.path(), &base, &["github"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported 0, unchanged 0, stale 1"),
        "{}",
        text(&out)
    );
    assert_eq!(defects(&db)[&id(1)].0.as_deref(), Some("production"));
}
