//! The monitoring mixin uses only names the exporter serves (docs/metrics.md is the
//! contract): every metric name in the alert rules, their unit tests and the
//! dashboards is either a series of a seeded exporter's `/metrics` (seeded
//! with events, a release and a completed sync pass) or a recording rule of
//! `alerts/`.

use std::collections::BTreeSet;

use crate::exposition::seeded;

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files(dir: &str, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("{}/{dir}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

/// Served only once a pass of serve's reconcile has failed, which the seeded
/// store cannot produce (`tests/sync/supervised.rs` shows it served then).
/// Series the seeded store has none of: a sync pass's failure time, and a
/// release's failing stage (it needs a stage beyond doubt above what is
/// expected; `tests/api/docs.rs` serves one).
const ONLY_AFTER_A_FAILURE: &[&str] = &[
    "bug_escape_sync_last_failure_timestamp_seconds",
    "bug_escape_release_failing_stage_info",
];

#[tokio::test]
async fn rules_tests_and_dashboards_name_only_served_or_recorded_series() {
    let (app, _dir) = seeded().await;
    let served: BTreeSet<String> = app
        .metrics()
        .await
        .samples
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    app.stop().await;
    let record = regex::Regex::new(r"(?m)^\s*-?\s*record:\s*([A-Za-z_:][A-Za-z0-9_:]*)").unwrap();
    let rule_files = files("alerts", ".yml");
    let recorded: BTreeSet<String> = rule_files
        .iter()
        .flat_map(|f| {
            record
                .captures_iter(&read(f))
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(recorded.len() > 5, "recording rules found: {recorded:?}");
    // A whole identifier (recording rules use `level:metric:operation`).
    let name = regex::Regex::new(r"[A-Za-z_:][A-Za-z0-9_:]*").unwrap();
    let mut checked = 0;
    let sources = [
        rule_files,
        files("alerts/tests", ".yml"),
        files("grafana/dashboards", ".json"),
    ]
    .concat();
    for file in &sources {
        let text = read(file);
        for m in name.find_iter(&text) {
            let id = m.as_str();
            if !id.contains("bug_escape_") {
                continue;
            }
            checked += 1;
            assert!(
                served.contains(id) || recorded.contains(id) || ONLY_AFTER_A_FAILURE.contains(&id),
                "{file}: `{id}` is neither served by the exporter nor a recording rule"
            );
        }
    }
    assert!(checked > 100, "only {checked} names checked");
}
