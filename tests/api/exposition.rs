//! `/metrics` in both formats, parsed back with a real parser: the names of docs/metrics.md,
//! labels and types, and values equal to the formulas of docs/semantics.md.

use serde_json::json;

use crate::helpers::{Exposition, TestApp, rel, spawn_app};

/// Every per-release, per-product and configuration series of docs/metrics.md with its
/// label names, and the self-metrics.
const SERIES: &[(&str, &[&str])] = &[
    ("bug_escape_rate_ratio", &["product", "release"]),
    ("bug_escape_rate_lower_ratio", &["product", "release"]),
    ("bug_escape_rate_upper_ratio", &["product", "release"]),
    ("bug_escape_release_defects", &["product", "release"]),
    (
        "bug_escape_release_escaped_defects",
        &["product", "release"],
    ),
    ("bug_escape_defects", &["product", "release", "stage"]),
    (
        "bug_escape_stage_leak_ratio",
        &["product", "release", "stage"],
    ),
    (
        "bug_escape_escaped_defects_by_cause",
        &["product", "release", "cause"],
    ),
    (
        "bug_escape_escaped_defects_by_detector",
        &["product", "release", "detected_by"],
    ),
    (
        "bug_escape_escaped_defects_by_severity",
        &["product", "release", "severity"],
    ),
    (
        "bug_escape_release_timestamp_seconds",
        &["product", "release"],
    ),
    ("bug_escape_release_rank", &["product", "release"]),
    (
        "bug_escape_rate_at_age_ratio",
        &["product", "release", "age"],
    ),
    (
        "bug_escape_release_defects_at_age",
        &["product", "release", "age"],
    ),
    (
        "bug_escape_escaped_defects_at_age_by_detector",
        &["product", "release", "age", "detected_by"],
    ),
    ("bug_escape_recent_rate_ratio", &["product"]),
    ("bug_escape_recent_rate_lower_ratio", &["product"]),
    ("bug_escape_recent_rate_upper_ratio", &["product"]),
    ("bug_escape_recent_defects", &["product"]),
    ("bug_escape_unattributed_defects", &["product", "stage"]),
    ("bug_escape_linked_records", &["product"]),
    ("bug_escape_releases_left_out", &["product"]),
    (
        "bug_escape_stage_info",
        &["stage", "phase", "order", "tracked"],
    ),
    (
        "bug_escape_stage_owner_info",
        &["product", "stage", "owner"],
    ),
    (
        "bug_escape_cause_owner_info",
        &["product", "cause", "owner"],
    ),
    ("bug_escape_band_threshold_ratio", &["product", "band"]),
    ("bug_escape_stage_leak_target_ratio", &["product", "stage"]),
    ("bug_escape_min_defects", &["product"]),
    ("bug_escape_volume_drop_threshold_ratio", &["product"]),
    ("bug_escape_volume_min_predecessors", &["product"]),
    (
        "bug_escape_build_info",
        &["version", "revision", "branch", "rustc_version"],
    ),
    ("bug_escape_events_received_total", &["source"]),
    // The standard process metrics (Linux).
    ("process_cpu_seconds_total", &[]),
    ("process_resident_memory_bytes", &[]),
    ("process_virtual_memory_bytes", &[]),
    ("process_open_fds", &[]),
    ("process_max_fds", &[]),
    ("process_start_time_seconds", &[]),
    ("bug_escape_events_ignored_total", &["source", "reason"]),
    ("bug_escape_events_rejected_total", &["source", "reason"]),
    ("bug_escape_last_event_timestamp_seconds", &["source"]),
    ("bug_escape_store_errors_total", &["operation"]),
    ("bug_escape_products_left_out", &[]),
    ("bug_escape_events_unmapped_total", &["source", "field"]),
    ("bug_escape_links_refused_total", &["source"]),
    ("bug_escape_source_api_errors_total", &["source"]),
    (
        "bug_escape_sync_last_success_timestamp_seconds",
        &["source"],
    ),
    ("bug_escape_sync_interval_seconds", &["source"]),
    ("bug_escape_sync_items_total", &["source", "result"]),
    ("bug_escape_sync_differences_total", &["source"]),
    ("bug_escape_sync_passes_total", &["source", "result"]),
    ("bug_escape_store_writable", &[]),
    ("bug_escape_store_writer_restarts_total", &[]),
    ("bug_escape_write_queue_bytes", &[]),
    ("bug_escape_write_queue_capacity_bytes", &[]),
    ("bug_escape_unauthenticated_bytes", &[]),
    ("bug_escape_unauthenticated_capacity_bytes", &[]),
    ("bug_escape_connections", &[]),
    ("bug_escape_connections_refused_total", &["reason"]),
    ("bug_escape_log_lines_dropped_total", &[]),
];

pub async fn seeded() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = crate::helpers::settings(dir.path());
    s.stages[3].leak_target = Some(0.4);
    // Every pre-release stage tracked (development is not by default), so
    // the leak factors telescope to E(R).
    s.stages[0].tracked = true;
    record_a_sync_pass(&s);
    let app = crate::helpers::spawn_with(s).await;
    app.events(json!([
        {"id": "1", "stage": "development", "release": "1.0", "found_at": "2026-01-02T00:00:00Z"},
        {"id": "2", "stage": "code_review", "release": "1.0", "found_at": "2026-01-02T00:00:00Z"},
        {"id": "3", "stage": "automated_tests", "release": "1.0", "found_at": "2026-01-02T00:00:00Z"},
        {"id": "4", "stage": "qa", "release": "1.0", "found_at": "2026-01-02T00:00:00Z"},
        {"id": "5", "stage": "qa", "release": "1.0", "found_at": "2026-01-02T00:00:00Z"},
        {"id": "6", "stage": "production", "release": "1.0", "found_at": "2026-01-03T00:00:00Z", "cause": "coverage", "detected_by": "user", "severity": "high"},
        {"id": "7", "stage": "production", "release": "1.0", "found_at": "2026-03-03T00:00:00Z", "cause": "review", "detected_by": "monitoring"},
        {"id": "8", "stage": "production"}
    ]))
    .await;
    app.release("default", "1.0", "2026-01-01T00:00:00Z").await;
    (app, dir)
}

/// A `sync github` pass completed in the database before the exporter starts
/// (as the sub-command leaves it): `serve` reads its time back, so
/// `bug_escape_sync_last_success_timestamp_seconds` has a series (it has
/// none before a first pass).
fn record_a_sync_pass(s: &bug_escape_exporter::config::Settings) {
    use bug_escape_exporter::store::sync::{Local, WHOLE_SOURCE, complete};
    let config = bug_escape_exporter::config::Config::from_settings(s.clone()).expect("config");
    let local = Local::open(&config).expect("database");
    // 2026-01-01T00:00:00Z
    complete(
        local.conn(),
        "github",
        WHOLE_SOURCE,
        "",
        None,
        1_767_225_600_000,
    )
    .expect("pass");
    local.close().expect("close");
}

#[tokio::test]
async fn both_formats_carry_the_same_samples_with_the_contract_names() {
    let (app, _dir) = seeded().await;
    let om_text = app
        .get_text(
            "/metrics",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .await;
    assert!(om_text.ends_with("# EOF\n"));
    let classic_text = app.get_text("/metrics", "text/plain;version=0.0.4").await;
    assert!(!classic_text.contains("# EOF"));
    let om = Exposition::openmetrics(&om_text);
    let classic = Exposition::classic(&classic_text);
    // The process metrics move between two scrapes: compared by name only.
    let key = |(n, l, v): &(String, std::collections::HashMap<String, String>, f64)| {
        if n.starts_with("process_") {
            format!("{n}{:?}", sorted(l))
        } else {
            format!("{n}{:?}={v}", sorted(l))
        }
    };
    let mut a: Vec<String> = om.samples.iter().map(key).collect();
    let mut b: Vec<String> = classic.samples.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for (name, labels) in SERIES {
        let samples: Vec<_> = classic
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .collect();
        assert!(!samples.is_empty(), "{name} missing");
        for (_, l, _) in samples {
            let mut got: Vec<&str> = l.keys().map(String::as_str).collect();
            let mut want = labels.to_vec();
            got.sort();
            want.sort();
            assert_eq!(got, want, "labels of {name}");
        }
        let counter = name.ends_with("_total");
        let family = if counter {
            name.trim_end_matches("_total")
        } else {
            name
        };
        assert_eq!(
            om.types.get(family).map(String::as_str),
            Some(if counter { "counter" } else { "gauge" }),
            "OpenMetrics type of {family}"
        );
    }
    // Nothing is served that the contract (plus the data-quality addition) does not name.
    for (n, _, _) in &classic.samples {
        assert!(
            SERIES.iter().any(|(s, _)| s == n) || n == "bug_escape_unclassified_defects",
            "unexpected series {n}"
        );
    }
    app.stop().await;
}

fn sorted(l: &std::collections::HashMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<_> = l.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
    v.sort();
    v
}

/// Configuration as data: the minimum, band thresholds, leak targets, stage
/// owners and stage order are exposed as series; the production defect
/// without a release is counted as unattributed.
fn assert_configuration_as_data(m: &Exposition) {
    let p_ = [("product", "default")];
    assert_eq!(m.value("bug_escape_min_defects", &p_), 10.0);
    assert_eq!(
        m.value("bug_escape_band_threshold_ratio", &[("band", "attention")]),
        0.2
    );
    assert_eq!(
        m.value("bug_escape_stage_leak_target_ratio", &[("stage", "qa")]),
        0.4
    );
    assert_eq!(m.count("bug_escape_stage_leak_target_ratio"), 1);
    assert_eq!(
        m.value(
            "bug_escape_stage_owner_info",
            &[("stage", "qa"), ("owner", "qa")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_stage_info",
            &[
                ("stage", "production"),
                ("phase", "production"),
                ("order", "4")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_unattributed_defects",
            &[("stage", "production")]
        ),
        1.0
    );
}

#[tokio::test]
async fn values_are_the_formulas_of_the_spec() {
    let (app, _dir) = seeded().await;
    let m = app.metrics().await;
    let r = rel("1.0");
    let (t, p) = (7.0, 2.0);
    assert_eq!(m.value("bug_escape_release_defects", &r), t);
    assert_eq!(m.value("bug_escape_release_escaped_defects", &r), p);
    assert_eq!(m.value("bug_escape_rate_ratio", &r), p / t);
    // Wilson bounds by the textbook formula.
    let (n, ph, z) = (t, p / t, 1.959_963_984_540_054_f64);
    let centre = (ph + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (ph * (1.0 - ph) / n + z * z / (4.0 * n * n)).sqrt();
    assert!((m.value("bug_escape_rate_lower_ratio", &r) - (centre - half)).abs() < 1e-12);
    assert!((m.value("bug_escape_rate_upper_ratio", &r) - (centre + half)).abs() < 1e-12);
    // Stage leaks: 6/7, 5/6, 4/5, 2/4; their product is E(R).
    let leak = |s| {
        m.value(
            "bug_escape_stage_leak_ratio",
            &[("release", "1.0"), ("stage", s)],
        )
    };
    let leaks = [
        leak("development"),
        leak("code_review"),
        leak("automated_tests"),
        leak("qa"),
    ];
    assert_eq!(leaks, [6.0 / 7.0, 5.0 / 6.0, 4.0 / 5.0, 2.0 / 4.0]);
    assert!((leaks.iter().product::<f64>() - p / t).abs() < 1e-12);
    assert_eq!(
        m.get(
            "bug_escape_stage_leak_ratio",
            &[("release", "1.0"), ("stage", "production")]
        ),
        None
    );
    // At 30 days the second production defect (found in March) is not yet in.
    assert_eq!(
        m.value(
            "bug_escape_rate_at_age_ratio",
            &[("release", "1.0"), ("age", "30d")]
        ),
        1.0 / 6.0
    );
    assert_eq!(
        m.value("bug_escape_release_timestamp_seconds", &r),
        1_767_225_600.0
    );
    assert_configuration_as_data(&m);
    app.stop().await;
}

#[tokio::test]
async fn counters_and_configuration_are_there_before_any_event() {
    let (app, _dir) = spawn_app().await;
    let m = app.metrics().await;
    for source in ["generic", "github", "gitlab", "jira", "sentry"] {
        assert_eq!(
            m.value("bug_escape_events_received_total", &[("source", source)]),
            0.0
        );
        assert_eq!(
            m.value(
                "bug_escape_events_rejected_total",
                &[("source", source), ("reason", "auth")]
            ),
            0.0
        );
    }
    assert_eq!(
        m.value("bug_escape_min_defects", &[("product", "default")]),
        10.0
    );
    assert_eq!(m.count("bug_escape_stage_info"), 5);
    assert_eq!(m.count("bug_escape_last_event_timestamp_seconds"), 0);
    app.stop().await;
}

#[tokio::test]
async fn label_values_are_escaped_and_parse_back_to_what_was_sent() {
    let (app, _dir) = spawn_app().await;
    let (product, release) = (r"team\payments", "2024 \"autumn\" ü");
    app.events(json!({"id": "1", "stage": "production", "product": product, "release": release}))
        .await;
    let labels = [("product", product), ("release", release)];
    let classic = app.metrics().await;
    assert_eq!(classic.value("bug_escape_release_defects", &labels), 1.0);
    let om = Exposition::openmetrics(
        &app.get_text("/metrics", "application/openmetrics-text")
            .await,
    );
    assert_eq!(om.value("bug_escape_release_defects", &labels), 1.0);
    assert_eq!(
        om.value(
            "bug_escape_stage_owner_info",
            &[("product", product), ("stage", "qa")]
        ),
        1.0
    );
    app.stop().await;
}
