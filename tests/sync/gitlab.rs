//! `sync gitlab` and `serve`'s reconcile against the GitLab stand-in.

use std::process::Output;
use std::time::{Duration, Instant};

use bug_escape_exporter::config::webhooks::SecretSetting;
use serde_json::{Value, json};

use crate::gitlab_fake::{self as fake, Fake, Fault, PROJECT, PROJECT_ID, World};
use crate::served::Served;
use crate::{query_param, release_times, rows, run, text, vendor_command};

const HOOK_TOKEN: &str = "gitlab-hook-token";

fn id(n: u64) -> String {
    format!("{PROJECT_ID}#{n}")
}

fn toml(api: &str) -> String {
    format!(
        r#"
[webhooks.gitlab]
api_url = "{api}"
projects = ["{PROJECT}"]
milestones = {{ "501" = "v1.0" }}
"#
    )
}

fn command(dir: &std::path::Path, api: &str, args: &[&str]) -> std::process::Command {
    let mut all = vec!["gitlab"];
    all.extend_from_slice(args);
    vendor_command(
        dir,
        &toml(api),
        &[("BUG_ESCAPE_GITLAB_API_TOKEN", fake::TOKEN)],
        &all,
    )
}

async fn sync(dir: &std::path::Path, api: &str, args: &[&str]) -> Output {
    run(command(dir, api, args)).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Six issues over three pages of two: a labelled defect, one whose release
/// is its (mapped) milestone, an enhancement, one moved to another project,
/// a duplicate, a malformed one; a release and an upcoming one.
fn world() -> World {
    let i = |n, labels: &[&str], updated: &str| {
        fake::issue_object(n, labels, "2024-01-10T09:00:00.000Z", updated)
    };
    let mut milestoned = i(2, &["bug", "stage:production"], "2024-03-02T00:00:00.000Z");
    milestoned["milestone"] = json!({"id": 501, "iid": 1, "project_id": PROJECT_ID, "title": "Sprint 9", "state": "active"});
    let mut moved = i(4, &["bug", "stage:qa"], "2024-03-04T00:00:00.000Z");
    moved["state"] = json!("closed");
    moved["moved_to_id"] = json!(9001);
    let mut duplicate = i(
        5,
        &["bug", "stage:qa", "release:1.1"],
        "2024-03-05T00:00:00.000Z",
    );
    duplicate["state"] = json!("closed");
    duplicate["_links"]["closed_as_duplicate_of"] = json!(format!(
        "https://gitlab.example.com/api/v4/projects/{PROJECT_ID}/issues/1"
    ));
    let mut malformed = i(6, &["bug"], "2024-03-06T00:00:00.000Z");
    malformed["labels"] = json!("bug");
    World {
        issues: vec![
            i(
                1,
                &["bug", "stage:qa", "release:v1.0"],
                "2024-03-01T00:00:00.000Z",
            ),
            milestoned,
            i(3, &["enhancement"], "2024-03-03T00:00:00.000Z"),
            moved,
            duplicate,
            malformed,
        ],
        releases: vec![
            fake::release_object("v2.0", "2099-01-01T00:00:00.000Z", true),
            fake::release_object("v1.0", "2024-02-01T00:00:00.000Z", false),
        ],
        ..World::default()
    }
}

async fn started() -> (Fake, tempfile::TempDir) {
    (Fake::start(world()).await, tempfile::tempdir().unwrap())
}

/// The first run lists three pages (by `x-next-page`), never unauthorised,
/// the token never printed; applies all but the malformed #6 and names it.
fn assert_backfill(fake: &Fake, db: &std::path::Path, out: &Output) {
    // One issue is malformed: rejected and named, the others applied.
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(
        stdout(out).contains(
            "imported 5, unchanged 0, stale 0, ignored 2, rejected 1, deleted 0; differences 0"
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
    assert_eq!(lists.len(), 3, "three pages by x-next-page: {lists:?}");
    assert_eq!(query_param(&lists[0].query, "updated_after"), None);
    assert_eq!(query_param(&lists[2].query, "page"), Some("3"));
    assert!(
        fake.log().iter().all(|l| l.status != 401),
        "{:?}",
        fake.log()
    );
    assert!(!text(out).contains(fake::TOKEN));
    let r = rows(db, "gitlab");
    let row = |stage: &str, release: Option<&str>, status: &str, deleted| {
        (
            Some(stage.to_owned()),
            release.map(str::to_owned),
            status.to_owned(),
            deleted,
        )
    };
    assert_eq!(r[&id(1)], row("qa", Some("1.0"), "valid", false));
    // The milestone is the release through `milestones`, as for the webhook.
    assert_eq!(r[&id(2)], row("production", Some("1.0"), "valid", false));
    assert_eq!(r[&id(5)], row("qa", Some("1.1"), "duplicate", false));
    // Moved to another project: out of this one's counts.
    assert!(r[&id(4)].3, "{r:?}");
    assert!(!r.contains_key(&id(3)) && !r.contains_key(&id(6)), "{r:?}");
    // The shipped release, not the upcoming one.
    assert_eq!(
        release_times(db, "gitlab").into_iter().collect::<Vec<_>>(),
        [("v1.0".to_owned(), 1_706_745_600_000)]
    );
}

/// GitLab changes #1, opens #7 and #8; this time it sends Link headers. The
/// stand-in's log starts afresh.
fn change_one_and_open_seven_and_eight(fake: &Fake) {
    fake.with(|w| {
        w.issues[0] = fake::issue_object(
            1,
            &["bug", "stage:production", "release:v1.0"],
            "2024-01-10T09:00:00.000Z",
            "2024-04-01T00:00:00.000Z",
        );
        for n in [7, 8] {
            w.issues.push(fake::issue_object(
                n,
                &["bug", "stage:qa", "release:1.1"],
                "2024-04-02T00:00:00.000Z",
                "2024-04-02T00:00:00.000Z",
            ));
        }
        w.link = true;
        w.log.clear();
    });
}

/// The second run lists from where the first left off, follows the Link
/// header and applies only the changes.
fn assert_reconcile(fake: &Fake, db: &std::path::Path, out: &Output) {
    let lists = fake.issue_lists();
    // From the newest update the last pass saw (the malformed #6), inclusive.
    assert_eq!(
        query_param(&lists[0].query, "updated_after"),
        Some("2024-03-06T00:00:00Z"),
        "{lists:?}"
    );
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert_eq!(query_param(&lists[1].query, "via"), Some("link"));
    assert!(
        stdout(out).contains(
            "imported 3, unchanged 1, stale 0, ignored 1, rejected 1, deleted 0; differences 3"
        ),
        "{}",
        text(out)
    );
    let r = rows(db, "gitlab");
    assert_eq!(r[&id(1)].0.as_deref(), Some("production"));
    assert_eq!(r[&id(8)].1.as_deref(), Some("1.1"));
}

#[tokio::test]
async fn a_backfill_reads_every_page_then_a_reconcile_only_what_changed() {
    let (fake, dir) = started().await;
    let db = dir.path().join("bug-escape.db");
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_backfill(&fake, &db, &out);

    change_one_and_open_seven_and_eight(&fake);
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_reconcile(&fake, &db, &out);
}

#[tokio::test]
async fn rate_limits_server_errors_and_timeouts_are_waited_out() {
    let (fake, dir) = started().await;
    fake.with(|w| {
        w.faults.extend([
            Fault::Status(
                429,
                vec![("retry-after", "1".into())],
                json!({"message": "Retry later"}),
            ),
            Fault::Status(502, vec![], json!({"message": "502 Bad Gateway"})),
            Fault::Hang(Duration::from_secs(2)),
        ]);
        // The first page says no call is left until the next second.
        w.exhaust_on_page = Some(1);
    });
    let started = Instant::now();
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // Retry-After (1 s) and the RateLimit-Reset (about 1 s) were honoured.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let statuses: Vec<u16> = fake.issue_lists().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [429, 502, 0, 200, 200, 200], "{statuses:?}");
    assert_eq!(rows(&dir.path().join("bug-escape.db"), "gitlab").len(), 4);
}

#[tokio::test]
async fn a_sync_killed_half_way_resumes_from_its_last_committed_page() {
    let (fake, dir) = started().await;
    fake.with(|w| w.stall_after = Some(2));
    let mut child = command(dir.path(), &fake.url(), &[])
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
        rows(&db, "gitlab").keys().cloned().collect::<Vec<_>>(),
        [id(1), id(2), id(4)],
        "pages 1-2 committed"
    );
    fake.with(|w| {
        w.stall_after = None;
        w.log.clear();
    });
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lists = fake.issue_lists();
    // Resumed from the newest update of page 2 (#4), which is read again.
    assert_eq!(
        query_param(&lists[0].query, "updated_after"),
        Some("2024-03-04T00:00:00Z"),
        "{lists:?}"
    );
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(
        stdout(&out).contains("imported 2, unchanged 1,"),
        "#5 and the release; #4 again: {}",
        text(&out)
    );
    assert_eq!(rows(&db, "gitlab").len(), 4);
}

#[tokio::test]
async fn a_full_sync_deletes_issues_gitlab_no_longer_has() {
    let (fake, dir) = started().await;
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    fake.with(|w| {
        w.deleted = vec![2, 5];
        w.log.clear();
    });
    // An incremental pass cannot tell: nothing listed, nothing probed.
    let out = sync(dir.path(), &fake.url(), &[]).await;
    assert!(stdout(&out).contains("deleted 0;"), "{}", text(&out));
    let out = sync(dir.path(), &fake.url(), &["--full"]).await;
    assert!(stdout(&out).contains("deleted 2;"), "{}", text(&out));
    let r = rows(&dir.path().join("bug-escape.db"), "gitlab");
    assert!(r[&id(2)].3 && r[&id(5)].3 && !r[&id(1)].3, "{r:?}");
    let probes: Vec<(String, u16)> = fake
        .log()
        .iter()
        .filter(|l| l.path.contains("/issues/"))
        .map(|l| (l.path.clone(), l.status))
        .collect();
    assert_eq!(
        probes,
        [
            (format!("/api/v4/projects/{PROJECT_ID}/issues/2"), 404),
            (format!("/api/v4/projects/{PROJECT_ID}/issues/5"), 404)
        ]
    );
    let out = sync(dir.path(), &fake.url(), &["--full"]).await;
    assert!(stdout(&out).contains("deleted 0;"), "{}", text(&out));
}

#[tokio::test]
async fn a_bad_token_or_no_project_is_a_clear_error() {
    let (fake, dir) = started().await;
    let mut cmd = vendor_command(
        dir.path(),
        &toml(&fake.url()),
        &[("BUG_ESCAPE_GITLAB_API_TOKEN", "glpat-wrong-token")],
        &["gitlab"],
    );
    cmd.env("RUST_LOG", "debug");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("401 401 Unauthorized")
            && all.contains(&format!("/projects/{}", "acme%2Fpayments")),
        "{all}"
    );
    assert!(!all.contains("glpat-wrong-token"), "{all}");
    let out = run(vendor_command(
        dir.path(),
        "[webhooks.gitlab]\n",
        &[],
        &["gitlab"],
    ))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nothing to sync"), "{}", text(&out));
}

/// An Issue Hook delivery of the issue `issue_object` lists, as GitLab sends it.
fn issue_hook(iid: u64, labels: &[&str], updated: &str) -> Value {
    json!({
        "object_kind": "issue",
        "event_type": "issue",
        "user": {"id": 1, "name": "Administrator", "username": "root"},
        "project": {"id": PROJECT_ID, "name": "payments", "path_with_namespace": PROJECT,
                    "web_url": format!("https://gitlab.example.com/{PROJECT}")},
        "object_attributes": {
            "id": 1000 + iid, "iid": iid, "project_id": PROJECT_ID,
            "created_at": "2024-01-10 09:00:00 UTC", "updated_at": updated,
            "milestone_id": null, "moved_to_id": null, "duplicated_to_id": null,
            "state": "opened", "action": "update", "type": "Issue",
            "labels": labels.iter().map(|l| json!({"id": 1, "title": l})).collect::<Vec<_>>()
        },
        "labels": labels.iter().map(|l| json!({"id": 1, "title": l, "type": "ProjectLabel"})).collect::<Vec<_>>(),
        "changes": {}
    })
}

/// `serve` reconciling `api` every second, taking the hook token.
async fn serve(db: &std::path::Path, api: String) -> Served {
    Served::start(db, |s| {
        let gl = &mut s.webhooks.gitlab;
        gl.token = Some(SecretSetting::One(HOOK_TOKEN.into()));
        gl.api.api_url = api.clone();
        gl.api.api_token = Some(fake::TOKEN.into());
        gl.projects = vec![PROJECT.into()];
        gl.sync_interval = Some("1s".into());
    })
    .await
}

/// The first pass (a backfill) at start: imported, not a difference;
/// returns the time of its success.
async fn first_pass(app: &Served) -> f64 {
    let g = [("source", "gitlab")];
    let m = app
        .until("the first pass", |m| {
            m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
                .is_some()
        })
        .await;
    assert_eq!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "gitlab"), ("result", "imported")]
        ),
        Some(1.0)
    );
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(0.0));
    m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
        .unwrap()
}

/// #1 moves to production and its Issue Hook arrives; #2 is opened and its
/// hook is dropped.
async fn deliver_one_and_drop_two(fake: &Fake, app: &Served) {
    let labels = ["bug", "stage:production", "release:1.0"];
    fake.with(|w| {
        w.issues = vec![
            fake::issue_object(
                1,
                &labels,
                "2024-01-10T09:00:00.000Z",
                "2024-03-02T00:00:00.000Z",
            ),
            fake::issue_object(
                2,
                &["bug", "stage:qa", "release:1.0"],
                "2024-03-03T00:00:00.000Z",
                "2024-03-03T00:00:00.000Z",
            ),
        ]
    });
    app.post(
        "/webhooks/gitlab",
        &[
            ("x-gitlab-event", "Issue Hook".into()),
            ("x-gitlab-token", HOOK_TOKEN.into()),
            ("idempotency-key", "d-1".into()),
        ],
        issue_hook(1, &labels, "2024-03-02 00:00:00 UTC")
            .to_string()
            .into_bytes(),
    )
    .await;
}

/// The pass after `first` brings in only #2; #1, delivered by the hook, is
/// unchanged.
async fn assert_reconcile_recovers_two(app: &Served, first: f64) {
    let g = [("source", "gitlab")];
    let m = app
        .until("the reconcile", |m| {
            m.get("bug_escape_sync_last_success_timestamp_seconds", &g)
                .is_some_and(|t| t > first)
        })
        .await;
    // Only #2 was behind. #1, delivered by the hook, is unchanged: the REST
    // issue converts to exactly what its Issue Hook did (a different classification
    // at the same updated_at would be applied and counted).
    assert_eq!(m.get("bug_escape_sync_differences_total", &g), Some(1.0));
    assert!(
        m.get(
            "bug_escape_sync_items_total",
            &[("source", "gitlab"), ("result", "unchanged")]
        ) >= Some(1.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", PROJECT), ("release", "1.0")]
        ),
        Some(2.0)
    );
    assert_eq!(
        m.get(
            "bug_escape_release_escaped_defects",
            &[("product", PROJECT), ("release", "1.0")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_dropped_webhook_is_recovered_by_the_next_periodic_reconcile() {
    let fake = Fake::start(World::default()).await;
    fake.with(|w| {
        w.issues = vec![fake::issue_object(
            1,
            &["bug", "stage:qa", "release:1.0"],
            "2024-01-10T09:00:00.000Z",
            "2024-03-01T00:00:00.000Z",
        )]
    });
    let dir = tempfile::tempdir().unwrap();
    let app = serve(&dir.path().join("bug-escape.db"), fake.url()).await;
    let first = first_pass(&app).await;
    deliver_one_and_drop_two(&fake, &app).await;
    assert_reconcile_recovers_two(&app, first).await;
    app.stop().await;
}
