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

    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut expected = line;
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
