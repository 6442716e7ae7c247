//! `sync sentry` and `serve`'s reconcile against the Sentry stand-in.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::webhooks::{Disposition, SecretSetting};
use bug_escape_exporter::config::{Config, Settings};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::sentry_fake::{self as fake, Fake, Fault, PROJECT, World};
use crate::{BIN, text};

const SECRET: &str = "sentry-client-secret";

/// A configuration reading the stand-in with pages of two.
fn config_file(dir: &Path, api: &str, extra: &str) -> std::path::PathBuf {
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[webhooks.sentry]
api_url = "{api}"
organization = "acme"
projects = ["{PROJECT}"]
{extra}
[sync]
timeout = "500ms"
retry_backoff = "50ms"
max_wait = "3s"
max_attempts = 5
page_size = 2
"#
        ),
    )
    .unwrap();
    file
}

fn sync_command(dir: &Path, api: &str, args: &[&str]) -> Command {
    sync_command_with(dir, api, args, "")
}

fn sync_command_with(dir: &Path, api: &str, args: &[&str], extra: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("sync")
        .arg("sentry")
        .args(args)
        .arg("--db")
        .arg(dir.join("bug-escape.db"))
        .arg("--config")
        .arg(config_file(dir, api, extra))
        .env_clear()
        .env("BUG_ESCAPE_SENTRY_API_TOKEN", fake::TOKEN);
    cmd
}

async fn sync(dir: &Path, api: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = sync_command(dir, api, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stored Sentry rows: id → (stage, release, status, deleted).
type Rows = BTreeMap<String, (Option<String>, Option<String>, String, bool)>;

fn defects(db: &Path) -> Rows {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, stage, release, status, deleted FROM defects WHERE source = 'sentry'")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Five issues over three pages of two (newest first): two with a first
/// release, one archived, one resolved, one malformed; two releases.
fn world() -> World {
    let i = |id, status, last| fake::issue_object(id, status, "2024-03-01T00:00:00Z", last);
    let mut malformed = i(15, "unresolved", "2024-03-01T10:00:00Z");
    malformed["project"] = json!("payments-api");
    World {
        issues: vec![
            i(11, "unresolved", "2024-03-05T10:00:00Z"),
            i(12, "resolved", "2024-03-04T10:00:00Z"),
            i(13, "ignored", "2024-03-03T10:00:00Z"),
            i(14, "unresolved", "2024-03-02T10:00:00Z"),
            malformed,
        ],
        first_release: [("11", "payments-api@1.0.0"), ("12", "payments-api@1.1.0")]
            .into_iter()
            .map(|(a, b)| (a.into(), b.into()))
            .collect(),
        activity: [(
            "12".to_owned(),
            vec![
                fake::activity("set_resolved", "2024-03-06T08:00:00.123456Z"),
                fake::activity("first_seen", "2024-03-01T00:00:00Z"),
            ],
        )]
        .into_iter()
        .collect(),
        releases: vec![
            fake::release_object(
                "payments-api@1.1.0",
                "2024-02-20T00:00:00Z",
                Some("2024-02-21T00:00:00Z"),
            ),
            fake::release_object("payments-api@1.0.0", "2024-02-01T00:00:00Z", None),
        ],
        ..World::default()
    }
}

async fn started() -> (Fake, tempfile::TempDir) {
    (Fake::start(world()).await, tempfile::tempdir().unwrap())
}

fn row(
    stage: &str,
    release: Option<&str>,
    status: &str,
    deleted: bool,
) -> (Option<String>, Option<String>, String, bool) {
    (
        Some(stage.into()),
        release.map(str::to_owned),
        status.into(),
        deleted,
    )
}

/// The first run follows the Link cursors over three pages (not the one
/// marked results="false"), reads one detail per issue, sends the token and
/// never prints it; applies all but the malformed issue and names it.
fn assert_backfill_listing(fake: &Fake, out: &std::process::Output) {
    // One issue is malformed: rejected and named, the others applied.
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(
        stdout(out).contains(
            "imported 6, unchanged 0, stale 0, ignored 0, rejected 1, deleted 0; differences 0"
        ),
        "four issues and two releases: {}",
        text(out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("issue PAYMENTS-API-15"),
        "{}",
        text(out)
    );
    let lists = fake.issue_lists();
    // Three pages: the third's next link says results="false" and is not followed.
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert_eq!(
        query_param(&lists[0].query, "query").as_deref(),
        Some(""),
        "the first run lists every status"
    );
    assert_eq!(query_param(&lists[0].query, "cursor"), None);
    assert_eq!(
        query_param(&lists[2].query, "cursor").as_deref(),
        Some("0:4:0"),
        "followed the Link cursors"
    );
    // One detail per listed issue, for firstRelease and activity.
    assert_eq!(fake.details().len(), 5);
    assert!(
        fake.log()
            .iter()
            .all(|l| l.auth.as_deref() == Some(&format!("Bearer {}", fake::TOKEN)))
    );
    assert!(!text(out).contains(fake::TOKEN));
}

/// What the first run stored: the four issues, their releases, the resolve
/// activity's time and the release's date.
fn assert_backfill_stored(db: &Path) {
    let rows = defects(db);
    assert_eq!(rows.len(), 4, "{rows:?}");
    // Release from firstRelease; resolved and archived (kept by default)
    // still count: they escaped.
    assert_eq!(rows["11"], row("production", Some("1.0.0"), "valid", false));
    assert_eq!(rows["12"], row("production", Some("1.1.0"), "valid", false));
    assert_eq!(rows["13"], row("production", None, "valid", false));
    assert_eq!(rows["14"], row("production", None, "valid", false));
    // Ordered by the resolve activity, later than lastSeen.
    let conn = rusqlite::Connection::open(db).unwrap();
    let at: i64 = conn
        .query_row(
            "SELECT updated_at FROM defects WHERE source = 'sentry' AND id = '12'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(at, 1_709_712_000_123);
    let released: i64 = conn
        .query_row(
            "SELECT released_at FROM release_times WHERE release_raw = 'payments-api@1.1.0'",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("release time stored: {e}"));
    assert_eq!(released, 1_708_473_600_000, "dateReleased");
}

/// Issue 14 sees a new event; issue 16 is new; nothing else moves. The
/// stand-in's log starts afresh.
fn new_event_on_14_and_open_16(fake: &Fake) {
    fake.with(|w| {
        w.issues[3]["lastSeen"] = json!("2024-03-08T10:00:00Z");
        w.issues.push(fake::issue_object(
            16,
            "unresolved",
            "2024-03-07T00:00:00Z",
            "2024-03-07T12:00:00Z",
        ));
        w.log.clear();
    });
}

/// The second run lists from the newest lastSeen and imports only 16.
fn assert_reconcile(fake: &Fake, db: &Path, out: &std::process::Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(out));
    let lists = fake.issue_lists();
    // From the newest lastSeen the last pass saw (issue 11), inclusive.
    assert_eq!(
        query_param(&lists[0].query, "query").as_deref(),
        Some("lastSeen:>=2024-03-05T10:00:00Z"),
        "{lists:?}"
    );
    assert!(
        stdout(out).contains(
            "imported 1, unchanged 4, stale 0, ignored 0, rejected 0, deleted 0; differences 1"
        ),
        "16 imported; 14 (a new event, same state), 11 and the two releases unchanged: {}",
        text(out)
    );
    assert!(defects(db).contains_key("16"));
}

#[tokio::test]
async fn a_backfill_follows_link_cursors_to_results_false_then_a_reconcile_reads_what_moved() {
    let (fake, dir) = started().await;
    let db = dir.path().join("bug-escape.db");
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_backfill_listing(&fake, &out);
    assert_backfill_stored(&db);

    new_event_on_14_and_open_16(&fake);
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_reconcile(&fake, &db, &out);
}

#[tokio::test]
async fn sentry_rate_limits_server_errors_and_timeouts_are_waited_out() {
    let (fake, dir) = started().await;
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    fake.with(|w| {
        w.faults.extend([
            // Sentry's own headers, no Retry-After: wait for the reset.
            Fault::Status(
                429,
                vec![
                    ("x-sentry-rate-limit-remaining", "0".into()),
                    ("x-sentry-rate-limit-reset", reset),
                ],
                json!({"detail": "You are attempting to use this endpoint too frequently. Limit is 40 requests in 1 seconds"}),
            ),
            Fault::Status(429, vec![("retry-after", "1".into())], json!({"detail": "Too many requests"})),
            Fault::Status(502, vec![], json!({"detail": "Bad Gateway"})),
            Fault::Hang(Duration::from_secs(2)),
        ])
    });
    let started = Instant::now();
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the reset and Retry-After were honoured: {:?}",
        started.elapsed()
    );
    let statuses: Vec<u16> = fake.issue_lists().iter().map(|l| l.status).collect();
    assert_eq!(&statuses[..5], &[429, 429, 502, 0, 200], "{statuses:?}");
    assert_eq!(defects(&dir.path().join("bug-escape.db")).len(), 4);
    assert!(!text(&out).contains(fake::TOKEN));

    // A persistent 5xx stops the pass naming the URL and status; nothing lost.
    fake.with(|w| {
        for _ in 0..5 {
            w.faults.push_back(Fault::Status(
                503,
                vec![],
                json!({"detail": "Service Unavailable"}),
            ));
        }
    });
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("503 Service Unavailable")
            && stderr.contains("/api/0/projects/acme/payments-api/issues/"),
        "{}",
        text(&out)
    );
    assert_eq!(defects(&dir.path().join("bug-escape.db")).len(), 4);
}

#[tokio::test]
async fn a_sentry_sync_killed_half_way_keeps_its_pages_and_the_rerun_completes() {
    let (fake, dir) = started().await;
    fake.with(|w| w.stall_after = Some(2));
    let mut child = sync_command(dir.path(), &fake.url(), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fake.issue_lists().iter().any(|l| l.status == 0) {
        assert!(Instant::now() < deadline, "page 3 never asked for");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let db = dir.path().join("bug-escape.db");
    assert_eq!(
        defects(&db).keys().cloned().collect::<Vec<_>>(),
        ["11", "12", "13", "14"],
        "pages 1-2 committed"
    );
    fake.with(|w| {
        w.stall_after = None;
        w.log.clear();
    });
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lists = fake.issue_lists();
    // Newest first, so no page marked progress: the backfill is listed again
    // whole, the committed issues come back unchanged.
    assert_eq!(
        query_param(&lists[0].query, "query").as_deref(),
        Some(""),
        "{lists:?}"
    );
    assert!(
        stdout(&out).contains("imported 2, unchanged 4, stale 0, ignored 0, rejected 1"),
        "the releases imported, the four issues unchanged: {}",
        text(&out)
    );
    // Completed: the next pass is incremental.
    fake.with(|w| w.log.clear());
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        query_param(&fake.issue_lists()[0].query, "query").as_deref(),
        Some("lastSeen:>=2024-03-05T10:00:00Z")
    );
}

#[tokio::test]
async fn a_full_sentry_sync_deletes_issues_deleted_or_merged_away() {
    let (fake, dir) = started().await;
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    fake.with(|w| {
        w.deleted = vec!["12".into()];
        w.merged.insert("13".into(), "11".into());
        w.log.clear();
    });
    // An incremental pass does not sweep; a full one within the default
    // retention (90 days) does not ask for issues last changed in March 2024:
    // Sentry forgets those, which is no deletion.
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert!(stdout(&out).contains("deleted 0;"), "{}", text(&out));
    let out = sync(dir.path(), &fake.url(), &["--full"]).await;
    assert!(stdout(&out).contains("deleted 0;"), "{}", text(&out));
    let probed = |fake: &Fake| {
        fake.details()
            .iter()
            .filter(|l| l.path.ends_with("/12/") || l.path.ends_with("/13/"))
            .count()
    };
    assert_eq!(probed(&fake), 0);
    let mut cmd = sync_command_with(
        dir.path(),
        &fake.url(),
        &["--full"],
        "retention = \"36500d\"",
    );
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(stdout(&out).contains("deleted 2;"), "{}", text(&out));
    assert_eq!(probed(&fake), 2);
    let rows = defects(&dir.path().join("bug-escape.db"));
    assert!(
        rows["12"].3 && rows["13"].3 && !rows["11"].3 && !rows["14"].3,
        "{rows:?}"
    );
    let probes: Vec<(String, u16)> = fake
        .details()
        .iter()
        .map(|l| (l.path.clone(), l.status))
        .collect();
    assert!(
        probes.contains(&("/api/0/organizations/acme/issues/12/".into(), 404))
            && probes.contains(&("/api/0/organizations/acme/issues/13/".into(), 200)),
        "{probes:?}"
    );
    let mut cmd = sync_command_with(
        dir.path(),
        &fake.url(),
        &["--full"],
        "retention = \"36500d\"",
    );
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(stdout(&out).contains("deleted 0;"), "{}", text(&out));
}

#[tokio::test]
async fn sentry_sync_refuses_a_configuration_without_projects() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[webhooks.sentry]\nprojects = [\"payments-api\"]\n").unwrap();
    let out = Command::new(BIN)
        .args(["sync", "sentry", "--db"])
        .arg(dir.path().join("bug-escape.db"))
        .arg("--config")
        .arg(&file)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("webhooks.sentry.organization"),
        "{}",
        text(&out)
    );
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

    /// An `issue` delivery, signed, sent at `sent` (Unix seconds).
    async fn webhook(&self, action: &str, issue: &Value, sent: i64) {
        let body = json!({"action": action, "data": {"issue": issue}, "installation": {"uuid": "65027794-169a-4042-80d0-808ece377141"}, "actor": {"type": "application", "id": "sentry", "name": "Sentry"}});
        let bytes = body.to_string().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&bytes);
        let r = reqwest::Client::new()
            .post(format!("{}/webhooks/sentry", self.base))
            .header("content-type", "application/json")
            .header("sentry-hook-resource", "issue")
            .header("sentry-hook-timestamp", sent.to_string())
            .header(
                "sentry-hook-signature",
                hex::encode(mac.finalize().into_bytes()),
            )
            .header("request-id", "a8f7b1c0-0000-4000-8000-000000000001")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
}

async fn serve(db: &Path, interval: Option<&str>, api: &str, archived: Disposition) -> Served {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        db: db.to_path_buf(),
        ..Settings::default()
    };
    let se = &mut s.webhooks.sentry;
    se.auth.secret = Some(SecretSetting::One(SECRET.into()));
    se.api.api_url = api.into();
    se.organization = Some(fake::ORG.into());
    se.projects = vec![PROJECT.into()];
    se.sync_interval = interval.map(str::to_owned);
    se.archived = archived;
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

#[tokio::test]
async fn a_dropped_sentry_webhook_is_recovered_by_the_next_periodic_reconcile() {
    let fake = Fake::start(World::default()).await;
    let first = fake::issue_object(
        21,
        "unresolved",
        "2024-03-01T00:00:00Z",
        "2024-03-01T10:00:00Z",
    );
    fake.with(|w| {
        w.issues = vec![first.clone()];
        w.first_release
            .insert("21".into(), "payments-api@1.0.0".into());
    });
    let dir = tempfile::tempdir().unwrap();
    let app = serve(
        &dir.path().join("bug-escape.db"),
        Some("1s"),
        &fake.url(),
        Disposition::Keep,
    )
    .await;
    let g = [("source", "sentry")];
    let m = until(&app, "the first pass", |m| {
        m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
            .is_some()
    })
    .await;
    assert_eq!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "sentry"), ("result", "imported")]
        ),
        Some(1.0)
    );
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(0.0));
    let last = m
        .get("bug_escape_sync_last_success_timestamp_seconds", &g)
        .unwrap();

    // Issue 21 gets a new event and its webhook arrives; issue 22 is created
    // in release 1.0.0 and its webhook is lost.
    let mut seen = first.clone();
    seen["lastSeen"] = json!("2024-03-02T10:00:00Z");
    let created = fake::issue_object(
        22,
        "unresolved",
        "2024-03-02T09:00:00Z",
        "2024-03-02T09:30:00Z",
    );
    fake.with(|w| {
        w.issues = vec![seen.clone(), created];
        w.first_release
            .insert("22".into(), "payments-api@1.0.0".into());
    });
    app.webhook("unresolved", &seen, chrono::Utc::now().timestamp())
        .await;
    let rel = [("product", PROJECT), ("release", "1.0.0")];
    assert_eq!(
        app.metrics().await.get("bug_escape_release_defects", &rel),
        Some(1.0)
    );
    let m = until(&app, "the reconcile", |m| {
        m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
            .is_some_and(|t| t > last)
    })
    .await;
    // Only 22 was behind; 21 (the webhook's state is newer) is stale to the sync.
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(1.0));
    assert!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "sentry"), ("result", "stale")]
        ) >= Some(1.0)
    );
    assert_eq!(m.get("bug_escape_release_defects", &rel), Some(2.0));
    assert_eq!(m.get("bug_escape_release_escaped_defects", &rel), Some(2.0));
    app.stop().await;
}

#[tokio::test]
async fn a_sentry_webhook_newer_than_the_api_is_never_overwritten_by_a_sync() {
    let fake = Fake::start(World::default()).await;
    let unresolved = fake::issue_object(
        31,
        "unresolved",
        "2024-03-01T00:00:00Z",
        "2024-03-01T10:00:00Z",
    );
    // The API still shows the issue unresolved (its last activity before the
    // archive the webhook brings).
    fake.with(|w| {
        w.issues = vec![unresolved.clone()];
        w.activity.insert(
            "31".into(),
            vec![fake::activity("set_unresolved", "2024-03-01T11:00:00Z")],
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bug-escape.db");
    let app = serve(&db, None, &fake.url(), Disposition::Invalid).await;
    let mut archived = unresolved.clone();
    archived["status"] = json!("ignored");
    app.webhook("archived", &archived, 1_709_300_000).await;
    app.stop().await;
    assert_eq!(defects(&db)["31"].2, "invalid");
    let mut cmd = Command::new(BIN);
    cmd.args(["sync", "sentry", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(config_file(
            dir.path(),
            &fake.url(),
            "archived = \"invalid\"",
        ))
        .env_clear()
        .env("BUG_ESCAPE_SENTRY_API_TOKEN", fake::TOKEN);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout(&out).contains("imported 0, unchanged 0, stale 1"),
        "{}",
        text(&out)
    );
    assert_eq!(defects(&db)["31"].2, "invalid");

    // Once the API shows a later change (unarchived, an activity after the
    // webhook), the sync applies it.
    fake.with(|w| {
        w.activity.insert(
            "31".into(),
            vec![fake::activity("set_unresolved", "2024-03-02T00:00:00Z")],
        )
    });
    let mut cmd = Command::new(BIN);
    cmd.args(["sync", "sentry", "--full", "--db"])
        .arg(&db)
        .arg("--config")
        .arg(config_file(
            dir.path(),
            &fake.url(),
            "archived = \"invalid\"",
        ))
        .env_clear()
        .env("BUG_ESCAPE_SENTRY_API_TOKEN", fake::TOKEN);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(stdout(&out).contains("imported 1,"), "{}", text(&out));
    assert_eq!(defects(&db)["31"].2, "valid");
}

/// The links stored of Sentry issue `id`.
fn sentry_links(db: &Path, id: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.prepare("SELECT to_source, to_id FROM links WHERE source = 'sentry' AND id = ?1")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn sync_reads_the_external_issues_of_each_issue_as_links() {
    let (fake, dir) = started().await;
    fake.with(|w| {
        w.external.insert(
            "11".into(),
            vec![
                fake::external_issue("PAY-7", "https://acme.atlassian.net/browse/PAY-7"),
                fake::external_issue("OPS-1", "https://other.atlassian.net/browse/OPS-1"),
            ],
        );
    });
    let jira = "[webhooks.jira]\napi_url = \"https://acme.atlassian.net\"\n";
    let mut cmd = sync_command_with(dir.path(), &fake.url(), &[], jira);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap();
    // The malformed issue of the world is rejected; the rest imported.
    assert!(stdout(&out).contains("imported 6,"), "{}", stdout(&out));
    let db = dir.path().join("bug-escape.db");
    // The configured Jira site's ticket counts; another site's does not.
    assert_eq!(
        sentry_links(&db, "11"),
        [("jira".to_owned(), "PAY-7".to_owned())]
    );
    assert!(sentry_links(&db, "12").is_empty());
    let asked: Vec<String> = fake.externals().into_iter().map(|l| l.path).collect();
    assert!(
        asked.contains(&"/api/0/organizations/acme/issues/11/external-issues/".to_owned()),
        "{asked:?}"
    );
}
