//! `report` beside a running `import`, with the real binary: every run
//! answers from the database as it was before the import, or is refused
//! with a message naming the import's lock; none ever reads a half-written
//! or "malformed" database.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// Defects the import writes: enough that its one transaction spans many
/// chunks (and spills pages to the WAL) while `report` runs.
const DEFECTS: usize = 60_000;
/// Pieces the input is fed in, with a pause after each, so the import lasts
/// a while however fast the machine is.
const PIECES: usize = 30;
/// Most `report` runs (the loop is bounded even if the import hangs).
const MOST_RUNS: usize = 300;

/// One realistic history line: a random-looking id, every field set.
fn line(i: usize) -> String {
    let id = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let release = i % 60;
    format!(
        "{{\"id\":\"{id:016x}\",\"source\":\"tracker\",\"product\":\"product-{}\",\
         \"stage\":\"production\",\"release\":\"v{}.{}.0\",\"detected_by\":\"user\",\
         \"cause\":\"coverage\",\"severity\":\"high\",\"team\":\"payments\",\
         \"status\":\"valid\",\"deleted\":false,\"found_at\":\"2024-01-02T03:04:05Z\",\
         \"updated_at\":\"2024-01-03T03:04:05Z\"}}\n",
        i % 10,
        release / 10,
        release % 10
    )
}

/// Starts the real `import` reading its history from stdin, in small chunks.
fn spawn_import(db: &Path) -> Child {
    Command::new(BIN)
        .args([
            "import",
            "--db",
            db.to_str().unwrap(),
            "--chunk-size",
            "2000",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("import starts")
}

/// Feeds the history in `PIECES`, pausing after each, so the import lasts.
fn feed_slowly(mut input: ChildStdin) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let per = DEFECTS / PIECES;
        for piece in 0..PIECES {
            let text: String = (piece * per..(piece + 1) * per).map(line).collect();
            input.write_all(text.as_bytes()).expect("stdin written");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// One `report --format json` run, from the database's directory.
fn report(db: &Path) -> Output {
    Command::new(BIN)
        .args(["report", "--db", db.to_str().unwrap(), "--format", "json"])
        .current_dir(db.parent().expect("db directory"))
        .output()
        .expect("report runs")
}

#[test]
fn report_beside_a_running_import_answers_or_names_the_lock_never_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.db");
    let mut import = spawn_import(&db);
    let feeder = feed_slowly(import.stdin.take().expect("stdin"));
    let started = Instant::now();
    let (mut runs, mut answered, mut refused, mut during) = (0, 0, 0, 0);
    while runs < MOST_RUNS && started.elapsed() < Duration::from_secs(120) {
        let running = import.try_wait().expect("import state").is_none();
        if !running {
            break;
        }
        let out = report(&db);
        runs += 1;
        let err = String::from_utf8_lossy(&out.stderr);
        let lower = err.to_lowercase();
        assert!(
            !lower.contains("malformed") && !lower.contains("corrupt"),
            "run {runs}: {err}"
        );
        if out.status.success() {
            answered += 1;
        } else {
            // Refused: by the lock's name (the file being created or
            // migrated by the import), or there is no database yet.
            assert!(
                err.contains("in use by `import, pid") || err.contains("does not exist"),
                "run {runs}: {err}"
            );
            refused += 1;
        }
        if import.try_wait().expect("import state").is_none() {
            during += 1;
        }
    }
    feeder.join().expect("feeder");
    let out = import.wait_with_output().expect("import ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("imported {DEFECTS},")), "{stdout}");
    assert!(
        during > 0,
        "no report ran while the import did ({runs} runs)"
    );
    assert_eq!(answered + refused, runs);
    // Once it committed, `report` reads all of it.
    let out = report(&db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
