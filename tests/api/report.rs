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

/// 30 releases of `pay` (20 defects each, release times a day apart, qa's
/// leak varying), posted to the exporter at `base`.
async fn post_thirty(client: &reqwest::Client, base: &str) {
    let mut events = Vec::new();
    for i in 0..30 {
        let release = format!("{i}.0.0");
        // 25.0.0: qa lets 8 of 10 through, against a usual 3 of 10.
        let escaped = if i == 25 { 8 } else { 2 + i % 3 };
        let stages = [
            ("code_review", 5),
            ("automated_tests", 5),
            ("qa", 10 - escaped),
            ("production", escaped),
        ];
        for (stage, n) in stages {
            for k in 0..n {
                events.push(serde_json::json!({"id": format!("{release}-{stage}-{k}"),
                    "product": "pay", "stage": stage, "release": release}));
            }
        }
    }
    let resp = client
        .post(format!("{base}/api/v1/events"))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for i in 0..30 {
        let body = serde_json::json!({"product": "pay", "release": format!("{i}.0.0"),
            "released_at": format!("2025-01-{:02}T09:00:00Z", i + 1)});
        let resp = client
            .post(format!("{base}/api/v1/releases"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

/// The rows of `report` without the failing stage, which depends on the
/// releases before each in the answer.
fn without_failing(r: &Value) -> Value {
    let mut r = r.clone();
    for k in [
        "failing_stage",
        "failing_stage_leak",
        "failing_stage_expected",
        "failing_stage_basis",
        "failing_stage_owner",
    ] {
        r.as_object_mut().unwrap().remove(k);
    }
    r
}

/// `report --releases all` of the 30 releases: every one, the 20 newest as
/// exported (`shown`), the newest 10 whole, and only the regression failing.
fn assert_all_history(all: &Value, shown: &[Value]) {
    let rows = all["releases"].as_array().unwrap();
    assert_eq!(rows.len(), 30);
    assert_eq!(rows[0]["release"], "29.0.0");
    assert_eq!(rows[29]["release"], "0.0.0");
    assert_eq!(all["products"][0]["releases_left_out"], 0);
    for (a, d) in rows.iter().zip(shown) {
        assert_eq!(without_failing(a), without_failing(d));
    }
    assert_eq!(rows[..10], shown[..10]);
    let failing: Vec<&str> = rows
        .iter()
        .filter(|r| !r["failing_stage"].is_null())
        .map(|r| r["release"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["25.0.0"], "only the regression, not the noise");
    assert_eq!(rows[4]["failing_stage"], "qa");
    assert_eq!(rows[4]["failing_stage_basis"], "baseline");
}

#[tokio::test]
async fn report_shows_left_out_history_on_request_with_the_numbers_of_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        &["--listen", "127.0.0.1:0", "--db", "b.db"],
        &[],
        dir.path(),
    );
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    post_thirty(&client, &base).await;
    let get = |q: &'static str| client.get(format!("{base}{q}")).send();
    let m = Exposition::classic(&get("/metrics").await.unwrap().text().await.unwrap());
    let all_http: Value = get("/api/v1/releases?product=pay&releases=all")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad = get("/api/v1/releases?releases=0").await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["field"], "releases", "{body}");
    let path = dir.path().to_owned();
    let (default, table, all, some, wrong) = tokio::task::spawn_blocking(move || {
        (
            report(&["--db", "b.db", "--format", "json"], &path),
            report(&["--db", "b.db"], &path),
            report(
                &["--db", "b.db", "--format", "json", "--releases", "all"],
                &path,
            ),
            report(
                &["--db", "b.db", "--format", "json", "--releases", "25"],
                &path,
            ),
            report(&["--db", "b.db", "--releases", "some"], &path),
        )
    })
    .await
    .unwrap();
    assert!(sigterm(&mut child).success());

    // Default: the 20 exported releases, 10 left out, and how to see them.
    let default: Value = serde_json::from_slice(&default.stdout).unwrap();
    assert_report_matches_metrics(&default, &m);
    let shown = default["releases"].as_array().unwrap();
    assert_eq!(shown.len(), 20);
    assert_eq!(default["products"][0]["releases_left_out"], 10);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains("10 older releases of pay not shown: report --product pay --releases all"),
        "{table}"
    );
    // All: 30, the 20 newest with the numbers of /metrics; the newest 10
    // (whose 10 releases before them are exported too) whole, failing
    // stage included.
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all, all_http, "report --releases all = the read API");
    assert_all_history(&all, shown);
    let some: Value = serde_json::from_slice(&some.stdout).unwrap();
    assert_eq!(some["releases"].as_array().unwrap().len(), 25);
    assert_eq!(some["products"][0]["releases_left_out"], 5);
    assert_eq!(wrong.status.code(), Some(2));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("--releases") && err.contains("`some`"),
        "{err}"
    );
}
