//! Start-up faults: a damaged database, a schema from a newer version, an
//! unreadable setting row stop start-up with what and where; a configuration
//! change and its revert re-key stored rows both ways; a log sink that fails
//! (full disk, closed pipe) never stops the exporter.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::{Config, Settings};
use serde_json::json;

use crate::helpers::{settings, spawn_with};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// The start-up error for `s`, which must fail.
async fn start_error(s: Settings) -> String {
    let config = Config::from_settings(s).expect("valid config");
    match Application::build(config).await {
        Ok(_) => panic!("start-up should fail"),
        Err(e) => format!("{e:#}"),
    }
}

/// A database with a few defects, closed cleanly (WAL folded back).
async fn seeded(dir: &std::path::Path) -> Settings {
    let s = settings(dir);
    let app = spawn_with(s.clone()).await;
    let events: Vec<_> = (0..400)
        .map(|i| json!({"id": format!("d{i}"), "stage": "qa", "release": "1.0"}))
        .collect();
    app.events(json!(events)).await;
    app.stop().await;
    s
}

#[tokio::test]
async fn a_corrupt_database_stops_start_up_naming_the_file_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    // Damage the b-tree of the defects table: overwrite the page header of
    // every page after the schema page.
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&s.db)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut page = 4096u64;
    while page < len {
        f.seek(SeekFrom::Start(page)).unwrap();
        f.write_all(&[0x0d, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x7f])
            .unwrap();
        page += 4096;
    }
    drop(f);
    let err = start_error(s.clone()).await;
    let file = s.db.display().to_string();
    assert!(err.contains(&file), "{err}");
    assert!(err.contains("is corrupt"), "{err}");
    assert!(err.contains("integrity_check"), "{err}");
    assert!(err.contains("restore"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    std::fs::write(&s.db, vec![0x42u8; 8192]).unwrap();
    let err = start_error(s.clone()).await;
    assert!(err.contains(&s.db.display().to_string()), "{err}");
    assert!(err.contains("not a SQLite database"), "{err}");
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = start_error(s.clone()).await;
    assert!(err.contains(&s.db.display().to_string()), "{err}");
    assert!(err.contains("schema version 99"), "{err}");
    let known = format!(
        "version {}",
        bug_escape_exporter::store::schema::SCHEMA_VERSION
    );
    assert!(err.contains(&known), "{err}");
    // Nothing was changed: the version is still the newer one.
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99);
}

#[tokio::test]
async fn an_unreadable_keying_row_is_an_error_never_a_silent_re_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = seeded(dir.path()).await;
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.execute("UPDATE meta SET value = x'00ff' WHERE key = 'keying'", [])
        .unwrap();
    drop(conn);
    let err = start_error(s.clone()).await;
    assert!(err.contains(&s.db.display().to_string()), "{err}");
    assert!(err.contains("cannot load database"), "{err}");
}

#[tokio::test]
async fn a_reverted_configuration_restores_the_old_keys_release_times_included() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let app = spawn_with(s.clone()).await;
    app.events(json!([
        {"id": "a", "stage": "qa", "release": "v2.4.0-rc.1"},
        {"id": "b", "stage": "production", "release": "2.4.0"}
    ]))
    .await;
    app.release("default", "v2.4.0-rc.1", "2026-01-01T00:00:00Z")
        .await;
    let before = app.metrics().await;
    assert_eq!(
        before.value("bug_escape_release_defects", &[("release", "2.4.0")]),
        2.0
    );
    app.stop().await;

    // Folding off: the pre-release is a release of its own, with its time.
    let mut unfolded = s.clone();
    unfolded.releases.fold_prereleases = false;
    let app = spawn_with(unfolded).await;
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_defects", &[("release", "2.4.0")]),
        1.0
    );
    let pre = m
        .samples
        .iter()
        .find(|(n, l, _)| n == "bug_escape_release_timestamp_seconds" && l["release"] != "2.4.0")
        .expect("the pre-release keeps its time");
    assert_eq!(pre.2, 1_767_225_600.0);
    app.stop().await;

    // Reverted: the same keys and times as before.
    let app = spawn_with(s).await;
    let after = app.metrics().await;
    for name in [
        "bug_escape_release_defects",
        "bug_escape_release_escaped_defects",
        "bug_escape_release_timestamp_seconds",
    ] {
        assert_eq!(
            after.value(name, &[("release", "2.4.0")]),
            before.value(name, &[("release", "2.4.0")]),
            "{name}"
        );
    }
    app.stop().await;
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(addr: &str, req: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn post_events(addr: &str, body: &str) -> String {
    request(
        addr,
        &format!(
            "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .expect("answer")
}

fn metric(addr: &str, name: &str) -> f64 {
    let text = request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Runs the binary with its stdout and stderr going to `sink`, writes while
/// the store is locked by another process (so the writer logs errors), then
/// again once it is free: every answer is truthful and the process lives on.
fn survives_a_failing_log_sink(sink: impl Fn() -> (Stdio, Stdio)) {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let db = dir.path().join("b.db");
    let (out, err) = sink();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--db", db.to_str().unwrap()])
        .env("BUG_ESCAPE_LOG", "debug")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .is_none_or(|r| !r.starts_with("HTTP/1.1 200"))
    {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = post_events(&addr, r#"{"id": "a", "stage": "qa", "release": "1.0"}"#);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    // Locked by another process: the writer fails and logs an error.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let refused = post_events(&addr, r#"{"id": "b", "stage": "qa", "release": "1.0"}"#);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);
    let ok = post_events(
        &addr,
        r#"{"id": "b", "stage": "production", "release": "1.0"}"#,
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(
        metric(
            &addr,
            "bug_escape_release_defects{product=\"default\",release=\"1.0\"}"
        ),
        2.0
    );
    assert!(metric(&addr, "bug_escape_log_lines_dropped_total") > 0.0);
    assert!(child.try_wait().unwrap().is_none(), "the exporter died");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[test]
fn a_full_disk_under_the_logs_never_stops_the_exporter() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full on this system");
        return;
    }
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    survives_a_failing_log_sink(|| (Stdio::from(full()), Stdio::from(full())));
}

#[test]
fn a_closed_log_pipe_never_stops_the_exporter() {
    survives_a_failing_log_sink(|| {
        // A pipe whose reading end is closed at once: every write is EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let writer2 = writer.try_clone().unwrap();
        (Stdio::from(writer), Stdio::from(writer2))
    });
}
