//! The number stays true under failure: a disk that fills mid-group, a writer
//! that panics, a full write queue, a write that outlives its deadline. After
//! each, what `/metrics` counts equals what a restart reads, every 2xx was
//! committed and counted, and nothing of a 503 was stored.

use std::time::Duration;

use bug_escape_exporter::store::Fault;
use serde_json::{Value, json};

use crate::helpers::{Exposition, TestApp, hold_write_lock, settings, spawn_app, spawn_with};

/// T(R) summed over every exported release.
fn total(m: &Exposition) -> f64 {
    m.samples
        .iter()
        .filter(|(n, _, _)| n == "bug_escape_release_defects")
        .map(|(_, _, v)| v)
        .sum()
}

/// The escape-rate series of an exposition (self-metrics left out), sorted.
fn escape_series(m: &Exposition) -> Vec<String> {
    let mut v: Vec<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| {
            n.starts_with("bug_escape_")
                && !n.ends_with("_total")
                && !n.starts_with("bug_escape_store_")
                && !n.starts_with("bug_escape_write_queue")
                && !n.starts_with("bug_escape_unauthenticated")
                && !n.starts_with("bug_escape_connections")
                && !n.starts_with("bug_escape_unauthenticated")
                && !n.starts_with("bug_escape_connections")
                && n != "bug_escape_last_event_timestamp_seconds"
                && n != "bug_escape_build_info"
        })
        .map(|(n, l, v)| {
            let mut l: Vec<_> = l.iter().collect();
            l.sort();
            format!("{n}{l:?} {v}")
        })
        .collect();
    v.sort();
    v
}

/// `n` events of release `release` with ids `prefix-0..n`.
fn batch(prefix: &str, release: &str, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({
                    "id": format!("{prefix}-{i:06}-{}", "x".repeat(60)),
                    "stage": if i % 5 == 0 { "production" } else { "qa" },
                    "release": release,
                    "cause": "coverage",
                    "severity": "high",
                    "team": "payments",
                })
            })
            .collect(),
    )
}

async fn status_of(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app.post("/api/v1/events", body).await;
    let status = resp.status().as_u16();
    let retry = resp.headers().contains_key("retry-after");
    let json: Value = resp.json().await.expect("JSON answer");
    if status == 503 {
        assert!(retry, "503 without Retry-After: {json}");
    }
    (status, json)
}

async fn ready(app: &TestApp) -> u16 {
    app.client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("readyz answers")
        .status()
        .as_u16()
}

/// Polls `/readyz` (bounded) until it answers `want`.
async fn wait_ready(app: &TestApp, want: u16) {
    for _ in 0..100 {
        if ready(app).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {want}");
}

fn page_count(db: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("page_count")
}

/// Ids stored (valid, not deleted) in the database file, read directly.
fn stored_ids(db: &std::path::Path) -> std::collections::HashSet<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT id FROM defects WHERE deleted = 0")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// POSTs each body concurrently; the answers in order.
fn post_all(app: &TestApp, bodies: &[Value]) -> Vec<tokio::task::JoinHandle<(u16, Value)>> {
    bodies
        .iter()
        .map(|b| {
            let (client, url, b) = (
                app.client.clone(),
                format!("{}/api/v1/events", app.base),
                b.clone(),
            );
            tokio::spawn(async move {
                let resp = client.post(url).json(&b).send().await.unwrap();
                let status = resp.status().as_u16();
                let retry = resp.headers().contains_key("retry-after");
                let body: Value = resp.json().await.unwrap();
                if status == 503 {
                    assert!(retry, "503 without Retry-After: {body}");
                }
                (status, body)
            })
        })
        .collect()
}

async fn answers(handles: Vec<tokio::task::JoinHandle<(u16, Value)>>) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

/// Polls `/metrics` (bounded) until the generic API has received `n` events.
async fn wait_received(app: &TestApp, n: f64) {
    for _ in 0..200 {
        let m = app.metrics().await;
        if m.value("bug_escape_events_received_total", &[("source", "generic")]) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never received {n} events");
}

/// Checks each small batch's answer against the disk: a 200 has all its
/// rows stored, a 503 none of them; returns the rows committed.
fn committed_smalls(
    smalls: &[Value],
    answers: &[(u16, Value)],
    on_disk: &std::collections::HashSet<String>,
) -> f64 {
    let mut accepted = 0.0;
    for (b, (status, body)) in smalls.iter().zip(answers) {
        let ids: Vec<&str> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        match status {
            200 => {
                assert_eq!(body["accepted"], 3);
                assert!(ids.iter().all(|id| on_disk.contains(*id)));
                accepted += 3.0;
            }
            503 => assert!(ids.iter().all(|id| !on_disk.contains(*id)), "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    accepted
}

/// The disk is full: readiness says so without queueing behind writes, and
/// keeps saying so while the writer's probes fail.
async fn assert_disk_full_is_not_ready(app: &TestApp) {
    wait_ready(app, 503).await;
    let body = app.get_text("/readyz", "*/*").await;
    let body: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(body["error"], "store_unavailable", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("store not writable")),
        "{body}"
    );
    // Two more failed probes (every half second while failing), not a guess
    // at how long they take.
    let probes = |m: &Exposition| {
        m.get("bug_escape_store_errors_total", &[("operation", "probe")])
            .unwrap_or(0.0)
    };
    let before = probes(&app.metrics().await);
    let mut m = app.metrics().await;
    for _ in 0..100 {
        if probes(&m) >= before + 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = app.metrics().await;
    }
    assert!(probes(&m) >= before + 2.0, "the writer stopped probing");
    assert_eq!(ready(app).await, 503);
    assert_eq!(m.value("bug_escape_store_writable", &[]), 0.0);
    assert!(probes(&m) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_whole_groups_and_metrics_equal_what_a_restart_reads() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s.clone()).await;
    app.events(batch("base", "1.0", 200)).await;
    assert_eq!(ready(&app).await, 200);

    // The database may grow by two pages: the big batch cannot fit. While a
    // blocker holds the writer (another connection has the lock), the big
    // batch and then six small ones queue, so they share one transaction.
    app.inject(Fault::MaxPageCount(page_count(&db) + 2));
    let (release, holder) = hold_write_lock(&db);
    let blocker = post_all(&app, &[batch("blocker", "1.0", 1)]);
    wait_received(&app, 201.0).await;
    let big = batch("big", "2.0", 3000);
    let big_answer = post_all(&app, std::slice::from_ref(&big));
    wait_received(&app, 3201.0).await;
    let smalls: Vec<Value> = (0..6).map(|k| batch(&format!("s{k}"), "2.0", 3)).collect();
    let small_answers = post_all(&app, &smalls);
    wait_received(&app, 3219.0).await;
    release.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(answers(blocker).await[0].0, 200);
    let big_answer = answers(big_answer).await.remove(0);
    assert_eq!(
        big_answer.0, 503,
        "the big batch cannot fit: {big_answer:?}"
    );
    assert_eq!(big_answer.1["error"], "store_unavailable");
    let small_answers = answers(small_answers).await;

    // Every answer tells the truth about the disk; the small batches shared
    // the failed transaction, so none of them was committed outside it.
    let on_disk = stored_ids(&db);
    let mut accepted = 201.0 + committed_smalls(&smalls, &small_answers, &on_disk);
    assert!(
        small_answers.iter().any(|(s, _)| *s == 503),
        "no small batch shared the failed transaction"
    );
    assert!(!on_disk.iter().any(|id| id.starts_with("big-")));
    let live = app.metrics().await;
    assert_eq!(total(&live), accepted);

    // The disk is full: readiness says so without queueing behind writes,
    // and keeps saying so while the writer's probes fail.
    assert_disk_full_is_not_ready(&app).await;

    // Space comes back: readiness recovers without a restart, and a retry of
    // every refused batch is stored and counted (not `unchanged`).
    app.inject(Fault::MaxPageCount(0));
    wait_ready(&app, 200).await;
    for (b, (status, _)) in smalls.iter().zip(&small_answers) {
        if *status == 503 {
            let (status, body) = status_of(&app, b).await;
            assert_eq!((status, &body["accepted"]), (200, &json!(3)), "{body}");
            accepted += 3.0;
        }
    }
    let (status, body) = status_of(&app, &big).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(3000)));
    accepted += 3000.0;
    let live = app.metrics().await;
    assert_eq!(total(&live), accepted);
    app.stop().await;

    let restarted = spawn_with(s).await;
    let reread = restarted.metrics().await;
    assert_eq!(escape_series(&live), escape_series(&reread));
    restarted.stop().await;
}

#[tokio::test]
async fn a_writer_that_panics_in_a_transaction_rolls_back_and_is_restarted() {
    let (app, dir) = spawn_app().await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0"}))
        .await;
    app.inject(Fault::PanicInTransaction);
    let (status, body) =
        status_of(&app, &json!({"id": "b", "stage": "qa", "release": "1.0"})).await;
    assert_eq!(status, 503, "{body}");
    assert!(!stored_ids(&dir.path().join("bug-escape.db")).contains("b"));
    // Restarted with the aggregates rebuilt: ready, scrapes and writes work.
    wait_ready(&app, 200).await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_store_writer_restarts_total", &[]), 1.0);
    assert_eq!(
        m.value("bug_escape_release_defects", &[("release", "1.0")]),
        1.0
    );
    app.events(json!({"id": "b", "stage": "production", "release": "1.0"}))
        .await;
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_defects", &[("release", "1.0")]),
        2.0
    );
    assert_eq!(
        m.value("bug_escape_release_escaped_defects", &[("release", "1.0")]),
        1.0
    );
    assert_eq!(m.value("bug_escape_store_writable", &[]), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn a_panic_while_updating_the_aggregates_still_answers_the_commit_and_rebuilds_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let app = spawn_with(s.clone()).await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0"}))
        .await;
    app.inject(Fault::PanicInAggregates);
    // Committed before the panic: answered 200 and counted (after a rebuild).
    let (status, body) = status_of(
        &app,
        &json!([{"id": "b", "stage": "production", "release": "1.0"},
                {"id": "c", "stage": "qa", "release": "2.0"}]),
    )
    .await;
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body}");
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_defects", &[("release", "1.0")]),
        2.0
    );
    assert_eq!(
        m.value("bug_escape_release_defects", &[("release", "2.0")]),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_store_errors_total",
            &[("operation", "aggregates")]
        ),
        1.0
    );
    // The lock it held is not poisoned for good: scrapes and writes go on.
    app.events(json!({"id": "d", "stage": "qa", "release": "2.0"}))
        .await;
    let live = app.metrics().await;
    assert_eq!(
        live.value("bug_escape_release_defects", &[("release", "2.0")]),
        2.0
    );
    assert_eq!(ready(&app).await, 200);
    app.stop().await;
    let restarted = spawn_with(s).await;
    assert_eq!(
        escape_series(&live),
        escape_series(&restarted.metrics().await)
    );
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beyond_the_write_queue_writes_get_503_with_retry_after_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_body_bytes = 64 * 1024;
    s.write_queue_bytes = 128 * 1024;
    s.write_queue_wait = "1ms".into();
    let app = spawn_with(s.clone()).await;
    // 24 concurrent bodies of ~50 KiB: at most two fit at once.
    let bodies: Vec<Value> = (0..24)
        .map(|k| batch(&format!("q{k}"), "1.0", 300))
        .collect();
    let answers = answers(post_all(&app, &bodies)).await;
    for (status, body) in &answers {
        if *status == 503 {
            assert_eq!(body["error"], "queue_full", "{body}");
        }
    }
    let refused = answers.iter().filter(|(s, _)| *s == 503).count();
    let taken = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(refused + taken, 24, "{answers:?}");
    assert!(refused > 0, "the queue never filled");
    let m = app.metrics().await;
    assert_eq!(total(&m), 300.0 * taken as f64);
    assert_eq!(
        m.value(
            "bug_escape_events_rejected_total",
            &[("source", "generic"), ("reason", "queue_full")]
        ),
        refused as f64
    );
    // The room comes back once the writer is done with each batch.
    let mut queued = m.value("bug_escape_write_queue_bytes", &[]);
    for _ in 0..50 {
        if queued == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        queued = app
            .metrics()
            .await
            .value("bug_escape_write_queue_bytes", &[]);
    }
    assert_eq!(queued, 0.0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_still_queued_at_its_deadline_is_refused_and_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.write_timeout = "300ms".into();
    let db = s.db.clone();
    let app = spawn_with(s).await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0"}))
        .await;
    // Another process holds the write lock: the writer waits on it (busy
    // timeout) while the next write queues past its deadline.
    let (release, holder) = hold_write_lock(&db);
    let first = post_all(&app, &[json!({"id": "b", "stage": "qa", "release": "1.0"})]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let late = post_all(
        &app,
        &[json!({"id": "late", "stage": "qa", "release": "1.0"})],
    );
    // `late` waits behind `b` past its deadline; then the lock goes away.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    release.send(()).unwrap();
    holder.join().unwrap();
    let (first, late) = (
        answers(first).await.remove(0),
        answers(late).await.remove(0),
    );
    assert_eq!(first.0, 200, "its transaction started in time: {first:?}");
    assert_eq!(late.0, 503, "{late:?}");
    assert_eq!(late.1["error"], "queue_full", "{late:?}");
    let on_disk = stored_ids(&db);
    assert!(on_disk.contains("b") && !on_disk.contains("late"));
    wait_ready(&app, 200).await;
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_defects", &[("release", "1.0")]),
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_a_json_408_and_nothing_is_stored() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.write_timeout = "300ms".into();
    let app = spawn_with(s).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(
        b"POST /api/v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 60\r\n\r\n{\"id\": \"slow\", ",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\":\"timeout\""), "{text}");
    assert_eq!(total(&app.metrics().await), 0.0);
    app.stop().await;
}

#[tokio::test]
async fn the_wal_is_folded_back_once_a_burst_is_over() {
    let (app, dir) = spawn_app().await;
    for k in 0..5 {
        app.events(batch(&format!("w{k}"), "1.0", 2000)).await;
    }
    let wal = dir.path().join("bug-escape.db-wal");
    for _ in 0..100 {
        if std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0 {
            app.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the WAL kept {} bytes",
        std::fs::metadata(&wal).unwrap().len()
    );
}
