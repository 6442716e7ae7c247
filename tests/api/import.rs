//! `import`, with the real binary on temp dirs: the summary, rejected lines
//! (file, line, field) and the exit status, idempotent re-runs, CSV, NDJSON and
//! standard input, the database lock against a running `serve`, and the same
//! gauges as the HTTP API for the same events in the same order.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

use crate::helpers::{Exposition, settings, spawn_with};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// Runs the binary with `args`, `stdin` piped in.
pub(crate) fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("stdin written");
    drop(input);
    child.wait_with_output().expect("binary ends")
}

/// `import --db DB FILE…`: (exit status, stdout, stderr).
pub(crate) fn import(db: &Path, files: &[&str]) -> (i32, String, String) {
    import_with(db, &[], files)
}

/// `import --db DB FLAGS… FILE…`: (exit status, stdout, stderr).
pub(crate) fn import_with(db: &Path, flags: &[&str], files: &[&str]) -> (i32, String, String) {
    let mut args = vec!["import", "--db", db.to_str().expect("UTF-8 path")];
    args.extend_from_slice(flags);
    args.extend_from_slice(files);
    let out = run(&args, b"");
    (
        out.status.code().expect("exit status"),
        String::from_utf8(out.stdout).expect("UTF-8"),
        String::from_utf8(out.stderr).expect("UTF-8"),
    )
}

/// The four figures of the summary line: imported, unchanged, stale, rejected.
pub(crate) fn figures(stdout: &str) -> [u64; 4] {
    let re =
        regex::Regex::new(r"imported (\d+), unchanged (\d+), stale (\d+), rejected (\d+)").unwrap();
    let c = re
        .captures(stdout)
        .unwrap_or_else(|| panic!("no summary in {stdout:?}"));
    [1, 2, 3, 4].map(|i| c[i].parse().unwrap())
}

fn ndjson(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The gauges computed from stored defects (not the self-metrics, which
/// count requests and differ between an import and HTTP traffic).
const ESCAPE_FAMILIES: &[&str] = &[
    "bug_escape_rate_ratio",
    "bug_escape_rate_lower_ratio",
    "bug_escape_rate_upper_ratio",
    "bug_escape_release_defects",
    "bug_escape_release_escaped_defects",
    "bug_escape_release_timestamp_seconds",
    "bug_escape_defects",
    "bug_escape_stage_leak_ratio",
    "bug_escape_escaped_defects_by_cause",
    "bug_escape_escaped_defects_by_detector",
    "bug_escape_escaped_defects_by_severity",
    "bug_escape_rate_at_age_ratio",
    "bug_escape_release_defects_at_age",
    "bug_escape_escaped_defects_at_age_by_detector",
    "bug_escape_recent_rate_ratio",
    "bug_escape_recent_rate_lower_ratio",
    "bug_escape_recent_rate_upper_ratio",
    "bug_escape_recent_defects",
    "bug_escape_unattributed_defects",
    "bug_escape_unclassified_defects",
    "bug_escape_releases_left_out",
    "bug_escape_products_left_out",
];

/// Every escape-rate sample, by name and labels.
pub(crate) fn escape_series(e: &Exposition) -> BTreeMap<String, f64> {
    e.samples
        .iter()
        .filter(|(n, _, _)| ESCAPE_FAMILIES.contains(&n.as_str()))
        .map(|(n, l, v)| {
            let labels: BTreeMap<_, _> = l.iter().collect();
            (format!("{n}{labels:?}"), *v)
        })
        .collect()
}

/// A deterministic history over few ids, so that updates, stale events,
/// equal times, deletions and revivals all happen: two products, releases
/// that fold (`1.1.0-rc.1` into `1.1.0`) or share a key (`v1.0`, `1.0`),
/// every status, unattributed defects and the `github` vendor namespace.
pub(crate) fn history(n: usize) -> (Vec<Value>, Vec<Value>) {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let stages = [
        "development",
        "code_review",
        "automated_tests",
        "qa",
        "production",
    ];
    let releases = ["v1.0", "1.0", "1.1.0-rc.1", "1.1.0", "2.0", "v2.1"];
    let causes = ["coverage", "review", "requirements", "release", "unknown"];
    let day = |d: u64| format!("2024-0{}-{:02}T00:00:00Z", 1 + d / 28, 1 + d % 28);
    let releases_json: Vec<Value> = ["v1.0", "1.1.0-rc.1", "1.1.0", "v2.1"]
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"product": "shop", "release": r, "released_at": day(3 * i as u64)}))
        .chain(std::iter::once(
            json!({"product": "default", "release": "2.0", "released_at": day(5)}),
        ))
        .collect();
    let mut events = Vec::new();
    for _ in 0..n {
        let id = next(25);
        let vendor = id % 5 == 0;
        let mut ev = json!({
            "id": format!("d{id}"),
            "product": if id % 2 == 0 { "shop" } else { "default" },
            "updated_at": day(20 + next(12)),
        });
        if vendor {
            ev["source"] = json!("github");
        }
        if next(8) == 0 {
            ev["deleted"] = json!(true);
        } else {
            ev["stage"] = json!(stages[next(5) as usize]);
            if next(6) != 0 {
                ev["release"] = json!(releases[next(6) as usize]);
            }
            ev["status"] =
                json!(["valid", "valid", "valid", "invalid", "duplicate"][next(5) as usize]);
            ev["found_at"] = json!(day(next(20)));
            ev["cause"] = json!(causes[next(5) as usize]);
            ev["severity"] = json!(["high", "low"][next(2) as usize]);
            ev["detected_by"] = json!(["user", "monitoring"][next(2) as usize]);
        }
        events.push(ev);
    }
    (releases_json, events)
}

#[test]
fn a_file_is_imported_with_rejected_lines_named_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("events.ndjson");
    let good = |id: &str, at: &str| {
        json!({"id": id, "stage": "production", "release": "v1.0",
               "found_at": "2024-01-01T00:00:00Z", "updated_at": at})
        .to_string()
    };
    let text = [
        good("a", "2024-01-02T00:00:00Z"),
        r#"{"id": "b", "stage": "prod"}"#.into(),
        String::new(),
        good("c", "2024-01-02T00:00:00Z"),
        "not json".into(),
        r#"{"id": "d", "stage": "qa", "stage": "qa"}"#.into(),
        good("a", "2024-01-01T00:00:00Z"), // older than line 1: stale
        r#"{"id": "e", "stage": "qa", "colour": "red"}"#.into(),
        r#"[{"id": "f"}]"#.into(),
        good("g", "2024-01-03T00:00:00Z"),
    ]
    .join("\n");
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let (status, out, err) = import(&db, &[f]);
    assert_eq!(status, 1, "{out}{err}");
    assert_eq!(figures(&out), [3, 0, 1, 5], "{out}");
    let rejected: Vec<&str> = err.lines().collect();
    assert_eq!(rejected.len(), 5, "{err}");
    assert!(
        rejected[0].starts_with(&format!("{f}:2: stage: unknown value `prod`")),
        "{err}"
    );
    assert!(
        rejected[1].starts_with(&format!("{f}:5: not valid JSON")),
        "{err}"
    );
    assert!(
        rejected[2].starts_with(&format!("{f}:6: stage: duplicate key")),
        "{err}"
    );
    assert!(
        rejected[3].starts_with(&format!("{f}:8: colour: unknown field")),
        "{err}"
    );
    assert!(
        rejected[4].starts_with(&format!("{f}:9: a line must be a JSON object")),
        "{err}"
    );
    // The same file again: nothing changes, and the summary says so.
    let (status, out, _) = import(&db, &[f]);
    assert_eq!(status, 1);
    assert_eq!(figures(&out), [0, 3, 1, 5], "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    // Only the good lines: exit 0.
    let clean = dir.path().join("clean.jsonl");
    std::fs::write(&clean, format!("{}\n", good("h", "2024-01-04T00:00:00Z"))).unwrap();
    let (status, out, err) = import(&db, &[clean.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (0, [1, 0, 0, 0]), "{err}");
    assert!(err.is_empty(), "nothing but the summary: {err}");
}

#[test]
fn csv_files_and_standard_input_go_through_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let csv = dir.path().join("events.csv");
    std::fs::write(
        &csv,
        "id,stage,release,status,deleted,found_at,updated_at,product\n\
         a,production,v1.0,,,2024-01-01T00:00:00Z,2024-01-02T00:00:00Z,\n\
         \"b,1\",qa,v1.0,invalid,false,2024-01-01T00:00:00Z,2024-01-02T00:00:00Z,shop\n\
         c,production,v1.0,maybe,,,,\n\
         d,,,,yes,,,\n\
         e,qa\n\
         a,,,,true,,2024-01-03T00:00:00Z,\n",
    )
    .unwrap();
    let (status, out, err) = import(&db, &[csv.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    assert_eq!(figures(&out), [3, 0, 0, 3], "{out}{err}");
    let f = csv.display();
    assert!(
        err.contains(&format!("{f}:4: status: unknown value `maybe`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:5: deleted: must be a boolean")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:6: has 2 cells where the header row has 8")),
        "{err}"
    );
    // Standard input, NDJSON by default; a release-time line too.
    let lines = ndjson(&[
        json!({"kind": "release", "release": "v1.0", "released_at": "2023-12-01T00:00:00Z"}),
        json!({"id": "z", "stage": "qa", "updated_at": "2024-01-02T00:00:00Z"}),
    ]);
    let out = run(
        &["import", "--db", db.to_str().unwrap(), "-"],
        lines.as_bytes(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(figures(&stdout), [2, 0, 0, 0]);
    // CSV on standard input needs --format.
    let out = run(
        &[
            "import",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "csv",
            "-",
        ],
        b"id,stage,updated_at\ny,qa,2024-01-02T00:00:00Z\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(figures(&String::from_utf8_lossy(&out.stdout)), [1, 0, 0, 0]);
}

#[test]
fn usage_and_file_errors_exit_2_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let txt = dir.path().join("events.txt");
    std::fs::write(&txt, "{}\n").unwrap();
    let (status, _, err) = import(&db, &[txt.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(err.contains("--format"), "{err}");
    let (status, _, err) = import(&db, &[dir.path().join("absent.ndjson").to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(err.contains("cannot read"), "{err}");
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "id,colour\na,red\n").unwrap();
    let (status, out, err) = import(&db, &[csv.to_str().unwrap()]);
    assert_eq!(status, 2, "{out}");
    assert!(err.contains("unknown column `colour`"), "{err}");
    assert!(out.is_empty() || figures(&out) == [0, 0, 0, 0], "{out}");
}

#[test]
fn import_is_refused_while_serve_runs_and_serve_while_an_import_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let file = dir.path().join("e.ndjson");
    std::fs::write(
        &file,
        ndjson(&[json!({"id": "a", "stage": "production", "release": "1.0"})]),
    )
    .unwrap();
    let (mut server, _addr) = crate::binary::serve(
        &["--listen", "127.0.0.1:0", "--db", db.to_str().unwrap()],
        &[],
        dir.path(),
    );
    let (status, out, err) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!(status, 2, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!("in use by `serve, pid {}`", server.id())),
        "{err}"
    );
    assert!(err.contains("POST /api/v1/events"), "{err}");
    assert!(crate::binary::sigterm(&mut server).success());
    // Stopped (even a crash releases the lock): the import goes ahead.
    let (status, out, _) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (0, [1, 0, 0, 0]));
    // While an import holds the database, `serve` does not start.
    let held = bug_escape_exporter::store::lock::acquire(&db, "import").expect("lock");
    let (code, err) = crate::helpers::serve_refused(&db);
    assert_eq!(code, Some(1));
    assert!(err.contains("in use by `import, pid"), "{err}");
    drop(held);
}

#[tokio::test]
async fn an_import_gives_the_gauges_and_counts_the_http_api_gives_for_the_same_events() {
    let (releases, events) = history(400);
    // Over HTTP, on a server that lets the generic API write `github`.
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.allow_vendor_sources = true;
    let http = spawn_with(s).await;
    for r in &releases {
        let resp = http.post("/api/v1/releases", r).await;
        assert_eq!(resp.status(), 200);
    }
    let mut counts = [0u64; 3];
    for chunk in events.chunks(37) {
        let o = http.events(Value::Array(chunk.to_vec())).await;
        for (i, k) in ["accepted", "unchanged", "stale"].iter().enumerate() {
            counts[i] += o[k].as_u64().unwrap();
        }
    }
    let over_http = escape_series(&http.metrics().await);
    http.stop().await;
    // Imported: the release times as `kind: release` lines, then the events.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("history.ndjson");
    let lines: Vec<Value> = releases
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["kind"] = json!("release");
            r
        })
        .chain(events.iter().cloned())
        .collect();
    std::fs::write(&file, ndjson(&lines)).unwrap();
    // Whole, and in chunks of 7 events: a defect's events then fall in
    // several chunks, each folded against what the previous ones wrote.
    for flags in [&[][..], &["--chunk-size", "7"][..]] {
        let db = tmp.path().join(format!("imported-{}.db", flags.len()));
        let (status, out, err) = import_with(&db, flags, &[file.to_str().unwrap()]);
        assert_eq!(status, 0, "{out}{err}");
        let [accepted, unchanged, stale, rejected] = figures(&out);
        assert_eq!(rejected, 0);
        // The release lines are counted too (all new).
        assert_eq!(
            [accepted, unchanged, stale],
            [counts[0] + releases.len() as u64, counts[1], counts[2]],
            "{flags:?}: {out}"
        );
        assert!(
            counts[2] > 0 && counts[1] > 0,
            "the history has stale and unchanged events"
        );
        let mut s = settings(tmp.path());
        s.db = db;
        let server = spawn_with(s).await;
        let from_import = escape_series(&server.metrics().await);
        server.stop().await;
        assert!(from_import.len() > 50, "{from_import:?}");
        assert_eq!(from_import, over_http, "{flags:?}");
    }
}

#[test]
fn an_import_that_fails_half_way_leaves_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let good = dir.path().join("good.ndjson");
    let lines: Vec<Value> = (0..50)
        .map(|i| json!({"id": format!("d{i}"), "stage": "production", "release": "1.0"}))
        .collect();
    std::fs::write(&good, ndjson(&lines)).unwrap();
    // A directory opens but cannot be read: the second input fails after
    // the first was applied, in chunks of 10.
    let unreadable = dir.path().join("dir.ndjson");
    std::fs::create_dir(&unreadable).unwrap();
    let (status, out, err) = import_with(
        &db,
        &["--chunk-size", "10"],
        &[good.to_str().unwrap(), unreadable.to_str().unwrap()],
    );
    assert_eq!(status, 2, "{out}{err}");
    assert!(err.contains("Nothing was imported"), "{err}");
    assert!(
        out.is_empty(),
        "no summary of what was not committed: {out}"
    );
    // Nothing of the first file was committed: all of it is new again.
    let (status, out, err) = import(&db, &[good.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(figures(&out), [50, 0, 0, 0], "{out}");
}

#[test]
fn an_import_killed_half_way_leaves_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let lines: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("k{i}"), "stage": "production", "release": "1.0"}))
        .collect();
    let text = ndjson(&lines);
    // Standard input left open: the import has applied chunks of 10 inside
    // its transaction, and waits for more when it is killed.
    let mut child = Command::new(BIN)
        .args([
            "import",
            "--db",
            db.to_str().unwrap(),
            "--chunk-size",
            "10",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(text.as_bytes()).expect("stdin written");
    input.flush().expect("stdin flushed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The WAL holds the applied chunks (uncommitted) once they
    // are written; wait for the database file to exist, then a moment more.
    while !db.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().expect("killed");
    let _ = child.wait();
    drop(input);
    // Nothing was committed: every line is new to the next import, which
    // opens the file (rolling back what the killed one left) without error.
    let file = dir.path().join("again.ndjson");
    std::fs::write(&file, &text).unwrap();
    let (status, out, err) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(figures(&out), [100, 0, 0, 0], "{out}");
}

/// With the debug log on (stderr, like the rejected lines), an import with
/// rejected lines still finishes: the log never waits on the report of the
/// rejections. Bounded: killed after 60 s.
#[test]
fn an_import_with_the_debug_log_and_rejected_lines_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("events.ndjson");
    let mut lines = Vec::new();
    for i in 0..20_000 {
        lines.push(if i % 1000 == 7 {
            r#"{"id": "bad", "stage": "prod"}"#.to_string()
        } else {
            json!({"id": format!("d{i}"), "stage": "qa", "release": "v1.0"}).to_string()
        });
    }
    std::fs::write(&file, lines.join("\n")).unwrap();
    let mut child = Command::new(BIN)
        .args(["--log.level", "debug", "import", "--db"])
        .arg(&db)
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("the import did not finish within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(figures(&stdout), [19_980, 0, 0, 20], "{stdout}");
    assert_eq!(
        stderr.matches("stage: unknown value `prod`").count(),
        20,
        "{stderr}"
    );
    assert!(stderr.contains("import: committed"), "{stderr}");
}

/// A quote left open does not swallow the rest of the file: its row is
/// rejected naming the line it opened on and every row after it is read;
/// `"x"y` is malformed, not `xy`; a CSV line over the limit is rejected by
/// number.
#[test]
fn a_csv_quote_left_open_rejects_its_row_and_the_rest_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let csv = dir.path().join("history.csv");
    let mut text = String::from("id,stage,team\n");
    for i in 0..100_000 {
        match i {
            4 => text.push_str("row4,qa,\"unterminated team\n"),
            50_000 => text.push_str("row50000,qa,\"x\"y\n"),
            70_000 => text.push_str(&format!("row70000,qa,{}\n", "t".repeat(2 << 20))),
            // A few quoted cells: the open quote above closes at the first.
            _ if i % 10_000 == 0 => text.push_str(&format!("row{i},qa,\"team, {}\"\n", i % 7)),
            _ => text.push_str(&format!("row{i},qa,team{}\n", i % 7)),
        }
    }
    std::fs::write(&csv, &text).unwrap();
    assert_eq!(text.lines().count(), 100_001);
    let (status, out, err) = import(&db, &[csv.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    assert_eq!(figures(&out), [99_997, 0, 0, 3], "{out}{err}");
    assert!(out.contains("(100000 lines"), "{out}");
    let f = csv.display();
    assert!(
        err.contains(&format!(
            "{f}:6: malformed CSV: a quoted field opened on this line closes on line 10002"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}:50002: malformed CSV: `y` follows a closing quote"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{f}:70002: the line is 2097164 bytes long")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 3, "{err}");
    // Still open at the end of the file: the lines after it are rows.
    std::fs::write(&csv, "id,stage\nr1,\"open\nr2,qa\nr3,qa\n").unwrap();
    let (status, out, err) = import(&db, &[csv.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (1, [2, 0, 0, 1]), "{out}{err}");
    assert!(
        err.contains(&format!(
            "{f}:2: a quoted field opened on this line is still open at the end of the file"
        )),
        "{err}"
    );
}

/// An NDJSON line longer than the limit is rejected by number and read
/// through a buffer, never held whole: importing a 256 MiB line, the
/// process's peak resident memory (`VmHWM`, sampled while it runs) stays
/// far below the line's size, whatever the number of cores.
#[test]
fn an_ndjson_line_over_the_limit_is_rejected_unread() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let mut child = Command::new(BIN)
        .args(["import", "--db", db.to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        input.write_all(b"{\"id\":\"a\",\"stage\":\"qa\"}\n{\"id\":\"")?;
        let block = vec![b'x'; 1 << 20];
        for _ in 0..256 {
            input.write_all(&block)?;
        }
        input.write_all(b"\",\"stage\":\"qa\"}\n{\"id\":\"b\",\"stage\":\"qa\"}\n")
    });
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).map(|_| s)
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let mut status = None;
    // Bounded: 100,000 samples of at least 1 ms each.
    for _ in 0..100_000 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        let text = std::fs::read_to_string(&status_file).unwrap_or_default();
        if let Some(kib) = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let status = status.unwrap_or_else(|| child.wait().unwrap());
    writer.join().unwrap().unwrap();
    let (stdout, stderr) = (
        stdout.join().unwrap().unwrap(),
        stderr.join().unwrap().unwrap(),
    );
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(figures(&stdout), [2, 0, 0, 1], "{stdout}{stderr}");
    assert!(
        stderr.contains("<stdin>:2: the line is 268435478 bytes long; the limit is 1048576"),
        "{stderr}"
    );
    // The whole line would be 256 MiB; the buffer is 1 MiB.
    assert!(peak_kib > 0, "VmHWM was read");
    assert!(peak_kib < 128 * 1024, "peak resident memory {peak_kib} KiB");
}
