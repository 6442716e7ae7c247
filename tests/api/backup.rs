//! `backup`, with the real binary beside a `serve` under steady writes over
//! HTTP: a copy taken during the writes passes `integrity_check`, loads, and
//! holds every write acknowledged before it began; a copy taken once the
//! writes stop exports the same escape-rate samples as the source. An
//! existing target is refused unless `--force`, and left untouched. And
//! `checkpoint = "external"` (Litestream beside `serve`): the idle writer
//! leaves the WAL to the replicator.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bug_escape_exporter::store::schema::{Integrity, integrity};
use serde_json::{Value, json};

use crate::helpers::{settings, spawn_with};
use crate::import::{escape_series, history, run};

/// Events per request of the steady writer.
const BATCH: u64 = 20;

/// One batch of new defects `first..first + BATCH`: two products, stages
/// and releases cycling, so every batch moves the escape rates.
fn batch(first: u64) -> Value {
    let stages = ["development", "qa", "production", "code_review"];
    let events: Vec<Value> = (first..first + BATCH)
        .map(|i| {
            json!({
                "id": format!("w{i}"),
                "product": if i % 2 == 0 { "shop" } else { "default" },
                "release": if i % 3 == 0 { "v1.0" } else { "2.0" },
                "stage": stages[(i % 4) as usize],
                "found_at": "2024-02-01T00:00:00Z",
            })
        })
        .collect();
    Value::Array(events)
}

/// Defects of the steady writer in the copy `db`.
fn written(db: &Path) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("copy opens");
    conn.query_row("SELECT COUNT(*) FROM defects WHERE id LIKE 'w%'", [], |r| {
        r.get(0)
    })
    .expect("count")
}

/// `backup --db DB [--force] OUT` of the real binary: (status, stdout, stderr).
async fn backup(db: &Path, out: &Path, force: bool) -> (i32, String, String) {
    let mut args = vec![
        "backup".to_owned(),
        "--db".into(),
        db.to_str().unwrap().into(),
    ];
    if force {
        args.push("--force".into());
    }
    args.push(out.to_str().unwrap().into());
    let o = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, b"")
    })
    .await
    .unwrap();
    (
        o.status.code().expect("exit status"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_beside_serve_under_writes_is_intact_and_serves_the_same_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s).await;
    for r in &history(0).0 {
        assert_eq!(app.post("/api/v1/releases", r).await.status(), 200);
    }
    // The steady writer: a batch of new defects per request, counted once
    // acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, url) = (app.client.clone(), format!("{}/api/v1/events", app.base));
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let first = acked.load(Ordering::SeqCst);
                let r = client.post(&url).json(&batch(first)).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                acked.fetch_add(BATCH, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 10 * BATCH {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let during = dir.path().join("during.db");
    let before = acked.load(Ordering::SeqCst);
    let (status, out, err) = backup(&db, &during, false).await;
    let after = acked.load(Ordering::SeqCst);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("integrity ok"), "{out}");
    assert_eq!(integrity(&during), Integrity::Intact);
    let copied = written(&during);
    assert!(
        (before..=after + BATCH).contains(&copied),
        "{before} acknowledged before the backup, {after} after; the copy holds {copied}"
    );
    assert!(after > before, "the writes went on during the backup");

    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let quiet = dir.path().join("quiet.db");
    let (status, out, err) = backup(&db, &quiet, false).await;
    assert_eq!(status, 0, "{out}{err}");
    let original = escape_series(&app.metrics().await);
    assert_eq!(written(&quiet), acked.load(Ordering::SeqCst));

    // An existing target: refused without --force (and left as it is).
    let size = std::fs::metadata(&during).unwrap().len();
    let (status, _, err) = backup(&db, &during, false).await;
    assert_eq!(status, 2);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::metadata(&during).unwrap().len(), size);
    assert_eq!(written(&during), copied);
    app.stop().await;

    for (copy, name) in [(&quiet, "quiet"), (&during, "during")] {
        let mut s = settings(dir.path());
        s.db = copy.clone();
        let served = spawn_with(s).await;
        assert_eq!(served.readyz().await.0, 200, "{name}");
        let series = escape_series(&served.metrics().await);
        served.stop().await;
        assert!(series.len() > 20, "{name}: {series:?}");
        if name == "quiet" {
            assert_eq!(series, original);
        }
    }
    // --force replaces it with the newer copy.
    let (status, out, err) = backup(&db, &during, true).await;
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(written(&during), acked.load(Ordering::SeqCst));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(".partial-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[tokio::test]
async fn a_backup_onto_the_database_or_beside_a_stale_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s).await;
    let (status, _, err) = backup(&db, &db, true).await;
    assert_eq!(status, 2);
    assert!(err.contains("is the database itself"), "{err}");
    let out = dir.path().join("copy.db");
    std::fs::write(dir.path().join("copy.db-wal"), b"old").unwrap();
    let (status, _, err) = backup(&db, &out, true).await;
    assert_eq!(status, 2);
    assert!(err.contains("copy.db-wal exists"), "{err}");
    assert!(!out.exists());
    let other = dir.path().join("other.db");
    let (status, _, err) = backup(&dir.path().join("none.db"), &other, false).await;
    assert_eq!(status, 2);
    assert!(err.contains("does not exist"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn with_external_checkpoints_the_idle_writer_leaves_the_wal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.checkpoint = bug_escape_exporter::config::Checkpoint::External;
    let wal = dir.path().join("bug-escape.db-wal");
    let app = spawn_with(s).await;
    for k in 0..3 {
        let r = app.post("/api/v1/events", &batch(k * BATCH)).await;
        assert_eq!(r.status(), 200);
    }
    // Several idle ticks (500 ms each): the default setting folds the WAL
    // back to 0 bytes by now (faults::the_wal_is_folded_back_once_a_burst_is_over).
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    let left = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(left > 0, "the WAL was truncated ({left} bytes)");
    assert_eq!(app.readyz().await.0, 200);
    app.stop().await;
}
