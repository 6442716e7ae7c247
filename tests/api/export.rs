//! `export`, with the real binary: everything stored (deletions, every status,
//! unattributed defects, vendor namespaces, release times) in the format
//! `import` reads, so importing an export into an empty database gives the
//! same gauges; taken while `serve` runs.

use serde_json::{Value, json};

use crate::helpers::{settings, spawn_with};
use crate::import::{escape_series, figures, history, import, run};

#[tokio::test]
async fn import_of_an_export_gives_the_same_gauges_in_both_formats() {
    let (releases, events) = history(300);
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.allow_vendor_sources = true;
    let db = s.db.clone();
    let app = spawn_with(s).await;
    for r in &releases {
        assert_eq!(app.post("/api/v1/releases", r).await.status(), 200);
    }
    app.events(Value::Array(events)).await;
    let original = escape_series(&app.metrics().await);
    // Taken while the server runs: a read snapshot, no lock needed.
    let out = run(&["export", "--db", db.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
    let ndjson = String::from_utf8(out.stdout).unwrap();
    let csv_file = dir.path().join("export.csv");
    let out = run(
        &[
            "export",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "csv",
            "--output",
            csv_file.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("exported 5 release times"), "{err}");
    app.stop().await;

    let mut lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let version = lines.remove(0);
    assert_eq!(
        (&version["kind"], &version["format"]),
        (&json!("export"), &json!(2))
    );
    assert_eq!(
        lines.iter().filter(|l| l["kind"] == "release").count(),
        releases.len()
    );
    assert!(
        lines.iter().any(|l| l["deleted"] == true),
        "tombstones kept"
    );
    assert!(lines.iter().any(|l| l["source"] == "github"));
    assert!(lines.iter().any(|l| l["status"] == "duplicate"));
    assert!(
        lines
            .iter()
            .any(|l| l["deleted"] == false && l.get("release").is_none()),
        "unattributed defects"
    );

    let nd_file = dir.path().join("export.ndjson");
    std::fs::write(&nd_file, &ndjson).unwrap();
    for (name, file) in [("nd", &nd_file), ("csv", &csv_file)] {
        let restored = dir.path().join(format!("restored-{name}.db"));
        let (status, out, err) = import(&restored, &[file.to_str().unwrap()]);
        assert_eq!(status, 0, "{name}: {out}{err}");
        assert_eq!(figures(&out)[0] as usize, lines.len(), "{name}: {out}");
        let mut s = settings(dir.path());
        s.db = restored;
        let server = spawn_with(s).await;
        let again = escape_series(&server.metrics().await);
        server.stop().await;
        assert!(again.len() > 50);
        assert_eq!(again, original, "{name}");
    }
    // Into the original: it already holds all of it.
    let (status, out, _) = import(&db, &[nd_file.to_str().unwrap()]);
    assert_eq!(status, 0);
    assert_eq!(figures(&out), [0, lines.len() as u64, 0, 0], "{out}");
}

#[test]
fn a_vendor_namespace_keeps_its_kind_and_a_missing_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v.db");
    let file = dir.path().join("v.ndjson");
    let line = json!({"id": "acme/pay#7", "source": "github", "product": "acme/pay",
        "product_kind": "github", "stage": "production", "release": "v3.1",
        "found_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00.250Z"});
    std::fs::write(&file, format!("{line}\n")).unwrap();
    let (status, out, err) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (0, [1, 0, 0, 0]), "{err}");
    let out = run(&["export", "--db", db.to_str().unwrap()], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut exported = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    assert_eq!(exported.next().unwrap()["format"], 2, "{text}");
    let exported = exported.next().unwrap();
    let mut expected = line;
    expected["kind"] = json!("defect");
    expected["status"] = json!("valid");
    expected["deleted"] = json!(false);
    assert_eq!(exported, expected);
    let bad = run(
        &[
            "export",
            "--db",
            dir.path().join("absent.db").to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not exist"));
    assert!(!dir.path().join("absent.db").exists());
}

/// The lines of `/metrics` that come from the stored data: every line but
/// the process metrics and the exporter's own (events received, requests,
/// the store's health, sync), which describe the process, not the data.
fn data_lines(text: &str) -> String {
    const SELF: &[&str] = &[
        "process_",
        "bug_escape_build_info",
        "bug_escape_events_",
        "bug_escape_last_event_timestamp_seconds",
        "bug_escape_source_api_errors",
        "bug_escape_store_",
        "bug_escape_write_queue_",
        "bug_escape_unauthenticated_",
        "bug_escape_connections",
        "bug_escape_log_lines_dropped",
        "bug_escape_sync_",
        "bug_escape_links_refused",
    ];
    let ours = |l: &str| {
        let name = l
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ")
            .trim_start_matches("# UNIT ");
        !SELF.iter().any(|p| name.starts_with(p))
    };
    text.lines()
        .filter(|l| ours(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A fixture's bytes with `edit` applied (then signed as they are sent).
fn fixture(path: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let file = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

const GITHUB_SECRET: &str = "restore-github-secret";
const SENTRY_SECRET: &str = "restore-sentry-secret";

/// Sends a webhook delivery signed as its vendor signs; asserts a 200.
async fn deliver(app: &crate::helpers::TestApp, vendor: &str, kind: &str, body: Vec<u8>) {
    let req = app
        .client
        .post(format!("{}/webhooks/{vendor}", app.base))
        .header("content-type", "application/json");
    let req = match vendor {
        "github" => req
            .header("x-github-event", kind)
            .header("x-github-delivery", sign("delivery", &body))
            .header(
                "x-hub-signature-256",
                format!("sha256={}", sign(GITHUB_SECRET, &body)),
            ),
        _ => req
            .header("sentry-hook-resource", kind)
            .header("sentry-hook-timestamp", "1588082166")
            .header("sentry-hook-signature", sign(SENTRY_SECRET, &body)),
    };
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status();
    assert_eq!(
        status,
        200,
        "{vendor} {kind}: {}",
        resp.text().await.unwrap()
    );
}

/// A GitHub issue (`number`) with these labels, opened, with its times.
fn issue(number: u64, labels: &[&str], updated: &str) -> Vec<u8> {
    fixture("github/issues_opened.json", |v| {
        v["issue"]["number"] = json!(number);
        v["issue"]["labels"] = labels.iter().map(|l| json!({"name": l})).collect();
        v["issue"]["updated_at"] = json!(updated);
    })
}

fn report(db: &std::path::Path) -> Value {
    let out = run(
        &["report", "--db", db.to_str().unwrap(), "--format", "json"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Stores every kind of row the export must carry: GitHub issues with each
/// label the stage parser refuses, a source-deleted issue, a release, a
/// Sentry error naming a release before its issue, release times and API
/// events (one deleted).
async fn seed_webhook_and_api_rows(app: &crate::helpers::TestApp) {
    let gh = [
        (1, vec!["bug", "stage:production", "cause:coverage"]),
        (2, vec!["bug"]),                                 // no stage
        (3, vec!["bug", "stage:staging", "cause:weird"]), // unknown stage, cause
        (4, vec!["bug", "stage:qa", "stage:production"]), // qa+production
        (
            5,
            vec![
                "bug",
                "stage:production",
                "severity:extreme",
                "detected_by:robot",
            ],
        ),
        (6, vec!["bug", "stage:production", "duplicate"]),
        (7, vec!["bug", "stage:qa", "release:v1.0"]),
        (8, vec!["bug", "stage:production", "release:v2.0"]),
    ];
    for (n, labels) in &gh {
        let at = format!("2024-03-0{n}T10:00:00.{n}25Z");
        deliver(app, "github", "issues", issue(*n, labels, &at)).await;
    }
    // Issue 1 deleted at its source: a tombstone keeping its values.
    let deleted = fixture("github/issues_deleted.json", |v| {
        v["issue"]["updated_at"] = json!("2024-04-01T00:00:00Z");
    });
    deliver(app, "github", "issues", deleted).await;
    deliver(
        app,
        "github",
        "release",
        fixture("github/release_published.json", |_| {}),
    )
    .await;
    // An error naming a release before its issue: a tombstone with a release.
    let error = fixture("sentry-docs/error_created.with-release.json", |_| {});
    deliver(app, "sentry", "error", error).await;
    app.release("shop", "1.0", "2024-02-01T00:00:00.5Z").await;
    app.release("shop", "2.0", "2024-05-01T00:00:00Z").await;
    app.events(json!([
        {"id": "a", "product": "shop", "stage": "qa", "release": "1.0", "cause": "review",
         "found_at": "2024-02-02T00:00:00Z", "updated_at": "2024-02-03T00:00:00Z"},
        {"id": "b", "product": "shop", "stage": "production", "release": "1.0",
         "status": "invalid", "found_at": "2024-02-04T00:00:00Z"},
        {"id": "c", "product": "shop", "stage": "production", "release": "2.0",
         "detected_by": "user", "severity": "high", "team": "payments"},
        {"id": "d", "product": "shop", "stage": "production", "release": "2.0"},
        {"id": "d", "product": "shop", "deleted": true},
        {"id": "e", "source": "tracker", "product": "shop", "stage": "production"},
    ]))
    .await;
}

/// Everything a store holds — what webhooks store that the generic API
/// refuses (no stage, an unknown stage, two stage labels, unknown cause,
/// severity and detector), tombstones (one holding only a release Sentry
/// attached before the issue was announced), statuses, release times — comes
/// back from an export into an empty database: the same `/metrics` byte for
/// byte (less the process's own lines) and the same `report --format json`,
/// from NDJSON and CSV alike; and the restored tombstone still gives its
/// release to the issue announced after the restore.
#[tokio::test]
async fn an_export_restores_webhook_and_api_rows_to_the_same_metrics_and_report() {
    use bug_escape_exporter::config::webhooks::SecretSetting;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.webhooks.github.auth.secret = Some(SecretSetting::One(GITHUB_SECRET.into()));
    s.webhooks.sentry.auth.secret = Some(SecretSetting::One(SENTRY_SECRET.into()));
    let db = s.db.clone();
    let app = spawn_with(s.clone()).await;
    seed_webhook_and_api_rows(&app).await;
    let original = app.get_text("/metrics", "text/plain").await;
    app.stop().await;
    let original = data_lines(&original);
    assert!(original.contains("reason=\"unknown_stage\""), "{original}");
    assert!(original.lines().count() > 200, "{original}");
    let expected_report = report(&db);

    for format in ["ndjson", "csv"] {
        let file = dir.path().join(format!("backup.{format}"));
        let out = run(
            &[
                "export",
                "--db",
                db.to_str().unwrap(),
                "--format",
                format,
                "--output",
                file.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let restored = dir.path().join(format!("restored-{format}.db"));
        let (status, out, err) = import(&restored, &[file.to_str().unwrap()]);
        assert_eq!(status, 0, "{format}: {out}{err}");
        // Every row imported (the version line and CSV header are not rows).
        let text = std::fs::read_to_string(&file).unwrap();
        let rows = text.lines().count() - if format == "csv" { 2 } else { 1 };
        assert_eq!(rows, 17, "3 release times, 14 defects: {text}");
        assert_eq!(figures(&out), [rows as u64, 0, 0, 0], "{format}: {out}");
        assert_eq!(report(&restored), expected_report, "{format}");
        let mut s = s.clone();
        s.db = restored;
        let server = spawn_with(s).await;
        let again = data_lines(&server.get_text("/metrics", "text/plain").await);
        assert_eq!(again, original, "{format}");
        // The Sentry tombstone kept its release: the issue announced now is
        // attributed to it.
        let issue = fixture("sentry-docs/issue_created.json", |_| {});
        deliver(&server, "sentry", "issue", issue).await;
        let m = server.metrics().await;
        let rel = [("product", "front-end"), ("release", "2.4.0")];
        assert_eq!(m.get("bug_escape_release_escaped_defects", &rel), Some(1.0));
        server.stop().await;
    }
}

/// Rows are stored records only in a file that starts with the export's
/// format line: a plain history keeps the API's rules. Stored records are
/// still checked for type and length. An export of a newer format is refused
/// by name and nothing is imported.
#[test]
fn only_an_export_is_read_as_stored_and_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let rows = [
        json!({"kind": "defect", "id": "1", "source": "github", "product": "acme/pay",
            "product_kind": "github", "stage": "staging", "cause": "weird", "status": "valid",
            "deleted": false, "found_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-02T00:00:00Z"}),
        json!({"kind": "defect", "id": "2", "product": "shop", "deleted": false,
            "found_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z"}),
        json!({"kind": "defect", "id": "3", "product": "shop", "stage": "x".repeat(129)}),
        json!({"kind": "defect", "id": "4", "product": "shop", "stage": 7}),
    ];
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let history = dir.path().join("history.ndjson");
    std::fs::write(&history, &body).unwrap();
    let (status, out, err) = import(&db, &[history.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (1, [0, 0, 0, 4]), "{out}{err}");
    assert!(err.contains(":1: stage: unknown value `staging`"), "{err}");
    assert!(err.contains(":2: stage: is required"), "{err}");

    let export = dir.path().join("export.ndjson");
    let line = r#"{"kind":"export","format":2,"exporter":"bug-escape-exporter 9"}"#;
    std::fs::write(&export, format!("{line}\n{body}")).unwrap();
    let (status, out, err) = import(&db, &[export.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (1, [2, 0, 0, 2]), "{out}{err}");
    assert!(err.contains(":4: stage: is 129 characters long"), "{err}");
    assert!(err.contains(":5: stage: must be a string"), "{err}");
    // The version line anywhere but first is an error, not a row.
    let (status, out, err) = import(&db, &[history.to_str().unwrap(), export.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(!err.contains("kind: an export's version line"), "{err}");
    let twice = dir.path().join("twice.ndjson");
    std::fs::write(&twice, format!("{line}\n{line}\n")).unwrap();
    let (_, _, err) = import(&db, &[twice.to_str().unwrap()]);
    assert!(
        err.contains(":2: kind: an export's version line is read only"),
        "{err}"
    );

    let fresh = dir.path().join("fresh.db");
    for (name, text) in [
        (
            "newer.ndjson",
            format!("{{\"kind\":\"export\",\"format\":3}}\n{body}"),
        ),
        (
            "newer.csv",
            "# bug-escape-exporter export format 3\nkind,id\ndefect,1\n".into(),
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (status, out, err) = import(&fresh, &[file.to_str().unwrap()]);
        assert_eq!(status, 2, "{out}{err}");
        assert!(
            err.contains(&format!(
                "{}:1: export format 3 is newer than this exporter's 2",
                file.display()
            )),
            "{err}"
        );
        assert!(err.contains("Nothing was imported"), "{err}");
    }
    let out = run(&["export", "--db", fresh.to_str().unwrap()], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "only the format line: {text}");
}

/// An export saved again by an editor or spreadsheet, with a byte-order mark
/// first and CRLF line ends, is still an export: its rows are taken back as
/// stored (a webhook row with an unknown stage and cause included), not read
/// as a history the API's rules would refuse.
#[test]
fn an_export_with_a_byte_order_mark_and_crlf_is_still_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let row = json!({"kind": "defect", "id": "1", "source": "github", "product": "acme/pay",
        "product_kind": "github", "stage": "staging", "cause": "weird", "status": "valid",
        "deleted": false, "found_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-02T00:00:00Z"});
    let line = r#"{"kind":"export","format":2,"exporter":"bug-escape-exporter 9"}"#;
    let file = dir.path().join("saved.ndjson");
    std::fs::write(&file, format!("\u{feff}{line}\r\n{row}\r\n")).unwrap();
    let (status, out, err) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (0, [1, 0, 0, 0]), "{out}{err}");
    let out = run(
        &["export", "--db", db.to_str().unwrap(), "--format", "csv"],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.contains(",staging,"), "{csv}");
    let saved = dir.path().join("saved.csv");
    std::fs::write(&saved, format!("\u{feff}{}", csv.replace('\n', "\r\n"))).unwrap();
    let fresh = dir.path().join("fresh.db");
    let (status, out, err) = import(&fresh, &[saved.to_str().unwrap()]);
    assert_eq!((status, figures(&out)), (0, [1, 0, 0, 0]), "{out}{err}");
    let again = run(&["export", "--db", fresh.to_str().unwrap()], b"");
    let first = run(&["export", "--db", db.to_str().unwrap()], b"");
    assert_eq!(again.stdout, first.stdout, "the same rows restored");
}

/// An export whose output cannot be written (a full volume, a reader gone)
/// fails naming where it wrote and saying the export is incomplete.
#[test]
fn an_output_that_cannot_be_written_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("e.ndjson");
    std::fs::write(
        &file,
        "{\"id\": \"1\", \"stage\": \"qa\", \"release\": \"1.0\"}\n",
    )
    .unwrap();
    let (status, out, err) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full here: nothing to check
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bug-escape-exporter"))
        .args(["export", "--db", db.to_str().unwrap()])
        .stdout(full)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot write standard output") && err.contains("incomplete"),
        "{err}"
    );
}

/// `cmd` run with its standard output a pipe whose reader is gone before
/// anything is written (`| head` that has read its line): its exit status
/// and standard error.
pub fn into_closed_pipe(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

/// `export | head -1`: the reader gone, the export ends as `cat` does,
/// without a word and killed by SIGPIPE (141 in a shell), in either format.
#[test]
fn an_export_into_a_closed_pipe_ends_quietly_as_cat_does() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("e.ndjson");
    // More than a pipe holds, so the shell's `head` goes while export writes.
    let lines: String = (0..3000)
        .map(|i| format!("{{\"id\": \"{i}\", \"stage\": \"qa\", \"release\": \"1.0\"}}\n"))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let (status, out, err) = import(&db, &[file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    for format in ["ndjson", "csv"] {
        let (status, err) = into_closed_pipe(
            std::process::Command::new(env!("CARGO_BIN_EXE_bug-escape-exporter")).args([
                "export",
                "--db",
                db.to_str().unwrap(),
                "--format",
                format,
            ]),
        );
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{format}: {status:?} {err}"
        );
        assert_eq!(err, "", "{format}");
    }
    // Through a shell, as a user types it: the first line, nothing on stderr.
    let script = format!(
        "{} export --db {} | head -1; echo \"status=${{PIPESTATUS[0]}}\" >&2",
        env!("CARGO_BIN_EXE_bug-escape-exporter"),
        db.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("{\"exporter\""), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "status=141");
}
