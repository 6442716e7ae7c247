//! `report` of the real binary on the database of a running `serve`: the same
//! numbers as that server's `/metrics`, in every format, without writing.

use std::process::{Command, Output};

use serde_json::Value;

use crate::binary::{serve, sigterm};
use crate::helpers::Exposition;
use crate::read::{assert_report_matches_metrics, post_history};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

fn report(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(BIN)
        .arg("report")
        .args(args)
        .current_dir(cwd)
        .env_remove("NO_COLOR")
        .output()
        .expect("binary runs")
}

/// CSV: a header and one row per release, the numbers of the JSON report's
/// `releases`.
fn assert_csv_matches(csv: Output, releases: &[Value]) {
    assert!(csv.status.success());
    let text = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("product,release,defects,escaped,escape_rate,lower,upper,band"));
    assert_eq!(lines.len(), 1 + releases.len(), "{text}");
    for (line, r) in lines[1..].iter().zip(releases) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], r["product"].as_str().unwrap());
        assert_eq!(cells[1], r["release"].as_str().unwrap());
        assert_eq!(cells[2].parse::<u64>().ok(), r["defects"].as_u64());
        assert_eq!(
            cells[4].parse::<f64>().ok(),
            r["escape_rate"].as_f64(),
            "{line}"
        );
        assert_eq!(cells[7], r["band"].as_str().unwrap_or(""));
    }
}

/// Table: piped, so no colour; aligned columns; every release listed.
fn assert_table_matches(table: Output, releases: &[Value]) {
    assert!(table.status.success());
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(!text.contains('\x1b'), "colour on a pipe: {text:?}");
    let head = text.lines().next().unwrap();
    assert!(head.starts_with("PRODUCT") && head.contains("FAILING STAGE (OWNER)"));
    let rate_col = head.find("RATE").unwrap();
    for r in releases {
        let row = text
            .lines()
            .find(|l| l.contains(&format!(" {} ", r["release"].as_str().unwrap())))
            .expect("release row");
        let pct = format!("{:.1}%", r["escape_rate"].as_f64().unwrap() * 100.0);
        assert_eq!(row.find(&pct), Some(rate_col), "{row}\n{head}");
    }
}

#[tokio::test]
async fn report_reads_a_live_database_and_prints_the_numbers_of_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        &["--listen", "127.0.0.1:0", "--db", "b.db"],
        &[],
        dir.path(),
    );
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    post_history(&client, &base).await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = Exposition::classic(&metrics);
    let path = dir.path().to_owned();
    let (json, csv, table, one, unknown) = tokio::task::spawn_blocking(move || {
        (
            report(&["--db", "b.db", "--format", "json"], &path),
            report(&["--db", "b.db", "--format", "csv"], &path),
            report(&["--db", "b.db"], &path),
            report(
                &["--db", "b.db", "--format", "json", "--product", "search"],
                &path,
            ),
            report(&["--db", "b.db", "--product", "nope"], &path),
        )
    })
    .await
    .unwrap();
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_report_matches_metrics(&parsed, &m);
    // The live read API answers the same document.
    let live: Value = client
        .get(format!("{base}/api/v1/releases"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(parsed, live);

    let releases = parsed["releases"].as_array().unwrap();
    assert_csv_matches(csv, releases);
    assert_table_matches(table, releases);

    assert!(one.status.success());
    let one: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(one["products"].as_array().unwrap().len(), 1);
    assert_eq!(one["products"][0]["product"], "search");
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("`nope` is not exported") && err.contains("payments"),
        "{err}"
    );

    // The server is untouched: it still takes writes and answers the same.
    let again = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(sigterm(&mut child).success());
}

#[test]
fn report_refuses_a_missing_database_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = report(&["--db", "missing.db"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.db") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("missing.db").exists());
}
