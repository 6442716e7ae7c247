//! A full disk heals: on a small tmpfs volume filled by another file, writes
//! and `/readyz` say 503 naming the full disk; once part of the filler is
//! deleted the store takes writes again without a restart, and a restart
//! finds every acknowledged event. A start on a full volume is 503 from the
//! first probe, or refused with a message saying the disk is full (never
//! "corrupt"). Needs root to mount tmpfs: skipped otherwise (a failure with
//! `BUG_ESCAPE_REQUIRE_E2E=1`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::{Config, Settings};
use serde_json::{Value, json};

use crate::helpers::{TestApp, settings, spawn_with};
use crate::skip;

/// How long the store may take to notice freed space: it retries before each
/// write and at each idle tick (0.5 s) while failing; the rest is margin for
/// a loaded test machine.
const HEAL_WITHIN: Duration = Duration::from_secs(5);

/// A tmpfs volume mounted for one test, unmounted when dropped.
struct Volume {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Volume {
    /// Mounts `size_mib` of tmpfs, or `None` (test skipped) without root.
    fn mount(size_mib: u32) -> Option<Self> {
        // SAFETY: geteuid has no arguments and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            skip::skip("full-disk tests", "not root", "run as root to mount tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vol");
        std::fs::create_dir(&path).expect("mkdir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(&path)
            .status();
        if !mounted.is_ok_and(|s| s.success()) {
            skip::skip(
                "full-disk tests",
                "mount -t tmpfs failed",
                "needs CAP_SYS_ADMIN",
            );
            return None;
        }
        Some(Self { _dir: dir, path })
    }

    fn settings(&self) -> Settings {
        settings(&self.path)
    }

    /// Fills the volume with `filler` until it refuses a byte more.
    fn fill(&self) -> Filler {
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let mut len = 0u64;
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
            let bytes = vec![0xA5u8; chunk];
            // Bounded: the volume is at most a few dozen MiB.
            for _ in 0..4096 {
                match file.write(&bytes) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => len += n as u64,
                }
            }
        }
        Filler { file, len }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let plain = Command::new("umount").arg(&self.path).status();
        if !plain.is_ok_and(|s| s.success()) {
            // Something still holds a file on it (a failed test's server):
            // detach it now, the kernel frees it when the last file closes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

struct Filler {
    file: std::fs::File,
    len: u64,
}

impl Filler {
    /// Deletes `bytes` of the filler (the end of it).
    fn free(&mut self, bytes: u64) {
        self.len = self.len.saturating_sub(bytes);
        self.file.set_len(self.len).expect("truncate the filler");
    }
}

/// `n` events with ids `prefix-0..n`.
fn batch(prefix: &str, n: usize) -> (Vec<String>, Value) {
    let ids: Vec<String> = (0..n)
        .map(|i| format!("{prefix}-{i:04}-{}", "p".repeat(40)))
        .collect();
    let body = ids
        .iter()
        .map(|id| json!({"id": id, "stage": "qa", "release": "1.0", "team": "payments"}))
        .collect();
    (ids, Value::Array(body))
}

/// What the steady writers saw.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    /// 503 answers naming the full disk.
    full: usize,
    /// Other answers (a bug unless the test says otherwise).
    other: Vec<(u16, Value)>,
}

/// Clients posting small batches one after another until `stop`.
fn steady_writers(
    app: &TestApp,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|w| {
            let (client, url) = (app.client.clone(), format!("{}/api/v1/events", app.base));
            let (stop, seen) = (stop.clone(), seen.clone());
            tokio::spawn(async move {
                // Bounded: the test stops the writers within seconds.
                for k in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let (ids, body) = batch(&format!("w{w}-{k}"), 40);
                    let resp = client.post(&url).json(&body).send().await.expect("answer");
                    let status = resp.status().as_u16();
                    let answer: Value = resp.json().await.expect("a JSON answer");
                    {
                        let mut seen = seen.lock().unwrap();
                        match status {
                            200 => seen.acknowledged.extend(ids),
                            503 if answer["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("disk full")) =>
                            {
                                seen.full += 1
                            }
                            _ => seen.other.push((status, answer)),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect()
}

/// Polls (bounded by `within`) until `/readyz` answers `want`; the time it took.
async fn until_ready(app: &TestApp, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = app.readyz().await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/readyz still {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn stored_ids(db: &Path) -> std::collections::HashSet<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn.prepare("SELECT id FROM defects").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn counted(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .get("bug_escape_release_defects", &[("release", "1.0")])
        .unwrap_or(0.0)
}

/// Waits up to ten seconds for the steady writers to have 400 acknowledged.
async fn wait_for_steady_writes(seen: &Mutex<Seen>) {
    for _ in 0..200 {
        if seen.lock().unwrap().acknowledged.len() >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.lock().unwrap().acknowledged.len() >= 400,
        "no steady writes"
    );
}

/// After healing, the store stays healed: the freed space goes to the data
/// first, not to WAL frames that a checkpoint could no longer copy into the
/// file, so 2,000 more writes pass without one refused for a full disk.
async fn assert_stays_healed(seen: &Mutex<Seen>) {
    let (refused_at_heal, acknowledged_at_heal) = {
        let seen = seen.lock().unwrap();
        (seen.full, seen.acknowledged.len())
    };
    let started = Instant::now();
    while seen.lock().unwrap().acknowledged.len() < acknowledged_at_heal + 2_000 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "writes stalled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen.lock().unwrap().full,
        refused_at_heal,
        "refused for a full disk again with 3 MiB freed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volume_filled_under_steady_writes_heals_once_space_is_freed() {
    let Some(volume) = Volume::mount(16) else {
        return;
    };
    let s = volume.settings();
    let app = spawn_with(s.clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let writers = steady_writers(&app, stop.clone(), seen.clone());
    wait_for_steady_writes(&seen).await;

    // Full: the writes soon need space the volume does not have.
    let mut filler = volume.fill();
    until_ready(&app, 503, Duration::from_secs(20)).await;
    let (_, body) = app.readyz().await;
    assert!(body.contains("disk full"), "{body}");
    for _ in 0..100 {
        if seen.lock().unwrap().full > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        seen.lock().unwrap().full > 0,
        "no write was refused for the full disk"
    );

    // Part of the filler goes: the store heals under the same steady writes.
    filler.free(3 << 20);
    let acknowledged_before = seen.lock().unwrap().acknowledged.len();
    until_ready(&app, 200, HEAL_WITHIN).await;
    let started = Instant::now();
    while seen.lock().unwrap().acknowledged.len() <= acknowledged_before {
        assert!(
            started.elapsed() < HEAL_WITHIN,
            "writes never succeeded again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_stays_healed(&seen).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer task");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.other.is_empty(),
        "unexpected answers: {:?}",
        &seen.other[..seen.other.len().min(3)]
    );
    let live = counted(&app).await;
    assert_eq!(live, seen.acknowledged.len() as f64);
    app.stop().await;

    // Everything acknowledged is on disk, and a restart counts exactly it.
    let on_disk = stored_ids(&s.db);
    let missing = seen
        .acknowledged
        .iter()
        .filter(|id| !on_disk.contains(*id))
        .count();
    assert_eq!(missing, 0, "acknowledged events lost");
    assert_eq!(
        on_disk.len(),
        seen.acknowledged.len(),
        "stored without an acknowledgement"
    );
    let restarted = spawn_with(s).await;
    assert_eq!(counted(&restarted).await, live);
    assert_eq!(restarted.readyz().await.0, 200);
    restarted.stop().await;
}

async fn build(s: Settings) -> Result<Application, String> {
    let config = Config::from_settings(s).expect("valid config");
    Application::build(config)
        .await
        .map_err(|e| format!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_a_full_volume_is_503_from_the_first_probe_or_refused_as_disk_full() {
    let Some(volume) = Volume::mount(8) else {
        return;
    };
    let s = volume.settings();
    let app = spawn_with(s.clone()).await;
    let (_, body) = batch("before", 50);
    assert_eq!(app.post("/api/v1/events", &body).await.status(), 200);
    app.stop().await;

    // Stopped cleanly, then the volume fills: SQLite cannot even map its
    // shared-memory file, so the start cannot proceed. It says why, and does
    // not call a healthy file corrupt.
    let mut filler = volume.fill();
    match build(s.clone()).await {
        Err(e) => {
            assert!(e.contains("disk full"), "{e}");
            assert!(!e.contains("corrupt"), "{e}");
        }
        Ok(app) => {
            let app = crate::helpers::run_built(app);
            let (status, body) = app.readyz().await;
            assert_eq!(status, 503, "{body}");
            app.stop().await;
        }
    }
    // The binary's refusal says the same on stderr.
    let (code, err) = crate::helpers::serve_refused(&s.db);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("disk full") && !err.contains("corrupt"),
        "{err}"
    );

    // With the database open elsewhere (its -shm mapped already), the start
    // proceeds on the full volume: readiness is 503 from the first probe.
    filler.free(u64::MAX);
    let reader = rusqlite::Connection::open(&s.db).unwrap();
    let n: i64 = reader
        .query_row("SELECT COUNT(*) FROM defects", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 50);
    let mut filler = volume.fill();
    let app = spawn_with(s.clone()).await;
    let (status, body) = app.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("disk full"), "{body}");
    let (ids, body) = batch("while-full", 20);
    let resp = app.post("/api/v1/events", &body).await;
    assert_eq!(resp.status(), 503);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["reason"]
            .as_str()
            .is_some_and(|r| r.contains("disk full")),
        "{answer}"
    );

    // Space comes back: ready within the probe interval, and writes work.
    filler.free(4 << 20);
    until_ready(&app, 200, HEAL_WITHIN).await;
    assert_eq!(app.post("/api/v1/events", &body).await.status(), 200);
    assert_eq!(counted(&app).await, 70.0);
    app.stop().await;
    drop(reader);
    assert!(ids.iter().all(|id| stored_ids(&s.db).contains(id)));
}
