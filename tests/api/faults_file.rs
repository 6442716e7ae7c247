//! The file under the store: deleted, replaced, moved away and back, reached
//! through a symlink, gone while its `-wal` or lock remains. The store never
//! acknowledges or counts a write a restart could not find, and never
//! silently starts empty where a database was.

use std::path::{Path, PathBuf};
use std::process::Command;

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::{Config, Settings};
use serde_json::{Value, json};

use crate::helpers::{TestApp, settings, spawn_with};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// `path` with `suffix` appended to its name (`d.db` → `d.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// POSTs `body` to the events API: (status, JSON answer).
async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app.post("/api/v1/events", body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

fn event(id: &str) -> Value {
    json!({"id": id, "stage": "qa", "release": "1.0"})
}

/// The defects `/metrics` counts for release 1.0.
async fn counted(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .get("bug_escape_release_defects", &[("release", "1.0")])
        .unwrap_or(0.0)
}

/// Both the probe and a write refuse, naming `what` (`removed`, `replaced`),
/// and nothing of the refused write is counted.
async fn refuses_naming(app: &TestApp, what: &str, counted_before: f64) {
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("database file {what}")), "{body}");
    let (status, answer) = post(app, &event("after")).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"], "store_unavailable", "{answer}");
    let reason = answer["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("database file {what}")),
        "{answer}"
    );
    assert_eq!(counted(app).await, counted_before);
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_store_writable", &[]), 0.0);
}

async fn start_error(s: Settings) -> String {
    let config = Config::from_settings(s).expect("valid config");
    match Application::build(config).await {
        Ok(_) => panic!("started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_database_deleted_under_serve_is_refused_at_once_and_never_recreated_empty() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s.clone()).await;
    assert_eq!(post(&app, &event("a")).await.0, 200);
    assert_eq!(app.readyz().await.0, 200);
    for f in [
        db.clone(),
        with_suffix(&db, "-wal"),
        with_suffix(&db, "-shm"),
    ] {
        std::fs::remove_file(&f).unwrap_or_else(|e| panic!("rm {}: {e}", f.display()));
    }
    refuses_naming(&app, "removed", 1.0).await;
    // The idle probe does not write to the deleted file either.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(app.readyz().await.0, 503);
    app.stop().await;
    assert!(!db.exists(), "the stopped server recreated the database");
    // The lock file stayed: a start says the database is gone.
    let err = start_error(s).await;
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("bug-escape.db.lock"), "{err}");
    assert!(!db.exists(), "a refused start created the database");
}

#[tokio::test]
async fn another_database_moved_over_it_is_refused_and_the_old_file_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    // Another database, with two defects of its own.
    let other_dir = tempfile::tempdir().unwrap();
    let other = spawn_with(settings(other_dir.path())).await;
    assert_eq!(post(&other, &json!([event("x"), event("y")])).await.0, 200);
    other.stop().await;
    let app = spawn_with(s.clone()).await;
    assert_eq!(post(&app, &event("a")).await.0, 200);
    std::fs::rename(other_dir.path().join("bug-escape.db"), &db).expect("mv other.db d.db");
    refuses_naming(&app, "replaced", 1.0).await;
    app.stop().await;
    // A restart serves the file now at the path: the other database, whole.
    let restarted = spawn_with(s).await;
    assert_eq!(counted(&restarted).await, 2.0);
    assert_eq!(restarted.readyz().await.0, 200);
    restarted.stop().await;
}

#[tokio::test]
async fn a_database_moved_away_and_back_serves_again_with_counts_read_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s.clone()).await;
    assert_eq!(post(&app, &event("a")).await.0, 200);
    let aside = dir.path().join("aside.db");
    std::fs::rename(&db, &aside).unwrap();
    refuses_naming(&app, "removed", 1.0).await;
    std::fs::rename(&aside, &db).unwrap();
    let (status, answer) = post(&app, &event("b")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(app.readyz().await.0, 200);
    assert_eq!(counted(&app).await, 2.0);
    app.stop().await;
    let restarted = spawn_with(s).await;
    assert_eq!(counted(&restarted).await, 2.0);
    restarted.stop().await;
}

#[tokio::test]
async fn an_import_through_a_symlink_or_dot_dot_path_is_refused_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s).await;
    assert_eq!(post(&app, &event("a")).await.0, 200);
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let dotted = dir.path().join("sub").join("..").join("bug-escape.db");
    let file = dir.path().join("e.ndjson");
    std::fs::write(
        &file,
        "{\"id\": \"i\", \"stage\": \"qa\", \"release\": \"1.0\"}\n",
    )
    .unwrap();
    for path in [&link, &dotted] {
        let out = Command::new(BIN)
            .args([
                "import",
                "--db",
                path.to_str().unwrap(),
                file.to_str().unwrap(),
            ])
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "imported beside serve: {err}");
        assert!(err.contains("in use by `serve, pid"), "{err}");
    }
    assert_eq!(counted(&app).await, 1.0);
    app.stop().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM defects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1, "the import wrote beside serve");
}

#[tokio::test]
async fn a_start_where_only_the_wal_of_the_database_remains_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let wal = with_suffix(&s.db, "-wal");
    std::fs::write(&wal, vec![7u8; 4096]).unwrap();
    let err = start_error(s.clone()).await;
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("bug-escape.db-wal"), "{err}");
    assert!(!s.db.exists(), "a refused start created the database");
    // The binary says so too, and exits non-zero.
    let (code, err) = crate::helpers::serve_refused(&s.db);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bug-escape.db-wal"), "{err}");
}

#[tokio::test]
async fn a_wal_deleted_under_serve_is_refused_and_a_clean_stop_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s.clone()).await;
    assert_eq!(post(&app, &event("a")).await.0, 200);
    let wal = with_suffix(&db, "-wal");
    assert!(wal.exists(), "serve keeps a -wal");
    std::fs::remove_file(&wal).expect("rm d.db-wal");
    // Acknowledged now, a write would live only in the unlinked journal:
    // lost at the next crash. Refused instead.
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database journal removed"), "{body}");
    let (status, answer) = post(&app, &event("b")).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("journal removed"),
        "{answer}"
    );
    assert_eq!(counted(&app).await, 1.0);
    app.stop().await;
    let restarted = spawn_with(s).await;
    assert_eq!(counted(&restarted).await, 1.0);
    assert_eq!(restarted.readyz().await.0, 200);
    assert_eq!(post(&restarted, &event("c")).await.0, 200);
    restarted.stop().await;
}

#[tokio::test]
async fn an_import_through_a_hard_link_is_refused_while_serve_runs() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s).await;
    assert_eq!(post(&app, &event("a")).await.0, 200);
    let hard = dir.path().join("hard.db");
    std::fs::hard_link(&db, &hard).expect("ln");
    let file = dir.path().join("e.ndjson");
    std::fs::write(
        &file,
        "{\"id\": \"i\", \"stage\": \"qa\", \"release\": \"1.0\"}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "import",
            "--db",
            hard.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "imported beside serve: {err}");
    assert!(err.contains("hard links"), "{err}");
    // Not the message for a database held by serve: the link is the cause.
    assert!(!err.contains("refusing to import while it runs"), "{err}");
    assert!(!with_suffix(&hard, "-wal").exists(), "a second journal");
    app.stop().await;
}
