//! Release times, maturity, the pooled recent rate and the export caps.

use bug_escape_exporter::config::{ProductSettings, UnderReportingOverride};
use serde_json::json;

use crate::helpers::{Exposition, rel, settings, spawn_app, spawn_with};

#[tokio::test]
async fn release_time_is_exported_and_prefers_the_final_release() {
    let (app, _dir) = spawn_app().await;
    app.events(json!({"id": "1", "stage": "qa", "release": "2.0.0"}))
        .await;
    app.release("default", "v2.0.0-rc.1", "2026-03-01T00:00:00Z")
        .await;
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_timestamp_seconds", &rel("2.0.0")),
        1_772_323_200.0
    );
    app.release("default", "v2.0.0", "2026-03-05T00:00:00Z")
        .await;
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_timestamp_seconds", &rel("2.0.0")),
        1_772_668_800.0
    );
    // Idempotent.
    let r = app
        .post("/api/v1/releases", &json!({"product": "default", "release": "v2.0.0", "released_at": "2026-03-05T00:00:00Z"}))
        .await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["unchanged"], 1);
    app.stop().await;
}

#[tokio::test]
async fn rate_at_age_counts_only_defects_found_up_to_that_age() {
    let (app, _dir) = spawn_app().await;
    app.events(json!([
        {"id": "1", "stage": "qa", "release": "1.0.0", "found_at": "2026-01-05T00:00:00Z"},
        {"id": "2", "stage": "qa", "release": "1.0.0", "found_at": "2025-12-20T00:00:00Z"},
        {"id": "3", "stage": "production", "release": "1.0.0", "found_at": "2026-01-20T00:00:00Z"},
        {"id": "4", "stage": "production", "release": "1.0.0", "found_at": "2026-03-01T00:00:00Z"},
        {"id": "5", "stage": "production", "release": "9.0.0"}
    ]))
    .await;
    let m = app.metrics().await;
    assert_eq!(
        m.count("bug_escape_rate_at_age_ratio"),
        0,
        "no release time yet"
    );
    app.release("default", "1.0.0", "2026-01-01T00:00:00Z")
        .await;
    // A release shipped now is not yet 30 days old.
    app.release("default", "9.0.0", &chrono::Utc::now().to_rfc3339())
        .await;
    let m = app.metrics().await;
    // Up to 30 days: defects 1, 2 (earlier ones included) and 3 → 1 of 3 escaped.
    let at = m.value(
        "bug_escape_rate_at_age_ratio",
        &[("release", "1.0.0"), ("age", "30d")],
    );
    assert!((at - 1.0 / 3.0).abs() < 1e-12, "{at}");
    assert_eq!(m.value("bug_escape_rate_ratio", &rel("1.0.0")), 0.5);
    assert_eq!(m.get("bug_escape_rate_at_age_ratio", &rel("9.0.0")), None);
    // A defect arriving later moves the at-age figure when within the age.
    app.events(json!({"id": "6", "stage": "production", "release": "1.0.0", "found_at": "2026-01-10T00:00:00Z"})).await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_rate_at_age_ratio",
            &[("release", "1.0.0"), ("age", "30d")]
        ),
        0.5
    );
    app.stop().await;
}

/// What `volume_at_age_counts_defects_and_detectors_found_up_to_that_age`
/// stores, on the metrics: volume and escapes by detector at 30 days for the
/// releases old enough, and the under-reporting settings per product.
fn check_volume_at_age(m: &Exposition) {
    let at = |release: &'static str| [("product", "default"), ("release", release), ("age", "30d")];
    // Up to 2026-01-31: 1, 2 (found before the release), 3, 4 (on the
    // 30th day), 5 and 6; 7 is later, 8 is invalid.
    assert_eq!(
        m.value("bug_escape_release_defects_at_age", &at("1.0.0")),
        6.0
    );
    let by = |detector: &'static str| {
        let [p, r, a] = at("1.0.0");
        m.value(
            "bug_escape_escaped_defects_at_age_by_detector",
            &[p, r, a, ("detected_by", detector)],
        )
    };
    assert_eq!(
        [by("user"), by("monitoring"), by("other"), by("unknown")],
        [2.0, 1.0, 0.0, 1.0]
    );
    assert_eq!(
        m.value("bug_escape_release_defects_at_age", &at("0.9.0")),
        0.0
    );
    assert_eq!(m.get("bug_escape_rate_at_age_ratio", &at("0.9.0")), None);
    assert_eq!(
        m.get("bug_escape_release_defects_at_age", &at("9.0.0")),
        None
    );
    assert_eq!(
        m.count("bug_escape_escaped_defects_at_age_by_detector"),
        8,
        "two releases x four detectors"
    );
    let product = |p: &'static str| [("product", p)];
    assert_eq!(
        m.value(
            "bug_escape_volume_drop_threshold_ratio",
            &product("default")
        ),
        0.5
    );
    assert_eq!(
        m.value(
            "bug_escape_volume_drop_threshold_ratio",
            &product("payments")
        ),
        0.25
    );
    assert_eq!(
        m.value("bug_escape_volume_min_predecessors", &product("default")),
        4.0
    );
    assert_eq!(
        m.value("bug_escape_volume_min_predecessors", &product("payments")),
        4.0
    );
}

/// The under-reporting inputs: defect volume and escapes by detector at
/// equal age, 0 included, the same after a restart (the start-up load), and
/// the check's settings per product.
#[tokio::test]
async fn volume_at_age_counts_defects_and_detectors_found_up_to_that_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.under_reporting.min_predecessors = 4;
    s.products.insert(
        "payments".into(),
        ProductSettings {
            under_reporting: Some(UnderReportingOverride {
                drop_ratio: Some(0.25),
                ..UnderReportingOverride::default()
            }),
            ..ProductSettings::default()
        },
    );
    let app = spawn_with(s.clone()).await;
    app.events(json!([
        {"id": "1", "stage": "qa", "release": "1.0.0", "found_at": "2025-12-20T00:00:00Z"},
        {"id": "2", "stage": "qa", "release": "1.0.0", "found_at": "2026-01-05T00:00:00Z"},
        {"id": "3", "stage": "production", "release": "1.0.0", "detected_by": "user", "found_at": "2026-01-02T00:00:00Z"},
        {"id": "4", "stage": "production", "release": "1.0.0", "detected_by": "user", "found_at": "2026-01-31T00:00:00Z"},
        {"id": "5", "stage": "production", "release": "1.0.0", "detected_by": "monitoring", "found_at": "2026-01-20T00:00:00Z"},
        {"id": "6", "stage": "production", "release": "1.0.0", "found_at": "2026-01-25T00:00:00Z"},
        {"id": "7", "stage": "production", "release": "1.0.0", "detected_by": "user", "found_at": "2026-02-15T00:00:00Z"},
        {"id": "8", "stage": "production", "release": "1.0.0", "detected_by": "monitoring", "status": "invalid", "found_at": "2026-01-03T00:00:00Z"},
        {"id": "9", "stage": "qa", "product": "payments", "release": "3.0", "found_at": "2026-01-01T00:00:00Z"}
    ]))
    .await;
    let m = app.metrics().await;
    assert_eq!(
        m.count("bug_escape_release_defects_at_age"),
        0,
        "no release time yet"
    );
    assert_eq!(m.count("bug_escape_escaped_defects_at_age_by_detector"), 0);
    app.release("default", "1.0.0", "2026-01-01T00:00:00Z")
        .await;
    // Shipped long ago, no defect at all: volume 0, and no rate at age.
    app.release("default", "0.9.0", "2025-10-01T00:00:00Z")
        .await;
    // Shipped now: not yet 30 days old.
    app.release("default", "9.0.0", &chrono::Utc::now().to_rfc3339())
        .await;
    check_volume_at_age(&app.metrics().await);
    app.stop().await;
    // The start-up load counts the same.
    let app = spawn_with(s).await;
    check_volume_at_age(&app.metrics().await);
    // A late report within the age moves the figures; a deletion takes it back.
    app.events(json!({"id": "10", "stage": "production", "release": "1.0.0", "detected_by": "monitoring", "found_at": "2026-01-10T00:00:00Z"})).await;
    let m = app.metrics().await;
    let key = [
        ("product", "default"),
        ("release", "1.0.0"),
        ("age", "30d"),
        ("detected_by", "monitoring"),
    ];
    assert_eq!(
        m.value("bug_escape_escaped_defects_at_age_by_detector", &key),
        2.0
    );
    assert_eq!(m.value("bug_escape_release_defects_at_age", &key[..3]), 7.0);
    app.events(json!({"id": "10", "deleted": true})).await;
    check_volume_at_age(&app.metrics().await);
    app.stop().await;
}

#[tokio::test]
async fn recent_rate_pools_the_newest_releases_with_its_own_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.recent_releases = 2;
    let app = spawn_with(s).await;
    // 1.0 (oldest): 4 of 4 escaped; 1.1: 1 of 4; 1.2: 0 of 2.
    let mut events = Vec::new();
    for (release, total, escaped, day) in [
        ("1.0", 4, 4, "01"),
        ("1.1", 4, 1, "02"),
        ("1.2", 2, 0, "03"),
    ] {
        for i in 0..total {
            let stage = if i < escaped { "production" } else { "qa" };
            events.push(
                json!({"id": format!("{release}-{i}"), "stage": stage, "release": release,
                "found_at": format!("2026-04-{day}T00:00:00Z")}),
            );
        }
    }
    app.events(serde_json::Value::Array(events)).await;
    let m = app.metrics().await;
    let p = [("product", "default")];
    assert_eq!(m.value("bug_escape_recent_defects", &p), 6.0);
    let rate = m.value("bug_escape_recent_rate_ratio", &p);
    assert!((rate - 1.0 / 6.0).abs() < 1e-12);
    let (lo, hi) = (
        m.value("bug_escape_recent_rate_lower_ratio", &p),
        m.value("bug_escape_recent_rate_upper_ratio", &p),
    );
    assert!(lo < rate && rate < hi);
    // A release time moves 1.0 to be the newest: the pool becomes 1.0 + 1.2.
    app.release("default", "1.0", "2026-05-01T00:00:00Z").await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_recent_rate_ratio", &p), 4.0 / 6.0);
    app.stop().await;
}

#[tokio::test]
async fn caps_leave_out_old_releases_and_extra_products_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_releases = 2;
    s.max_products = 2;
    s.pinned_products = vec!["legacy".into()];
    let app = spawn_with(s).await;
    let mut events = Vec::new();
    for (i, release) in ["1.0", "1.1", "1.2", "1.3"].iter().enumerate() {
        events.push(
            json!({"id": format!("r{i}"), "stage": "qa", "release": release,
            "found_at": format!("2026-04-0{}T00:00:00Z", i + 1)}),
        );
    }
    events.push(json!({"id": "l", "product": "legacy", "stage": "qa", "release": "0.1", "found_at": "2020-01-01T00:00:00Z"}));
    events.push(json!({"id": "o", "product": "other", "stage": "qa", "release": "0.1", "found_at": "2021-01-01T00:00:00Z"}));
    app.events(serde_json::Value::Array(events)).await;
    let m = app.metrics().await;
    // Newest two releases of `default`; the pinned product stays, `other` is out.
    assert!(m.get("bug_escape_release_defects", &rel("1.3")).is_some());
    assert!(m.get("bug_escape_release_defects", &rel("1.2")).is_some());
    assert_eq!(m.get("bug_escape_release_defects", &rel("1.1")), None);
    assert_eq!(
        m.value("bug_escape_releases_left_out", &[("product", "default")]),
        2.0
    );
    assert!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "legacy"), ("release", "0.1")]
        )
        .is_some()
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "other"), ("release", "0.1")]
        ),
        None
    );
    assert_eq!(m.value("bug_escape_products_left_out", &[]), 1.0);
    // The pooled rate still uses the store, not only the exported releases.
    assert_eq!(
        m.value("bug_escape_recent_defects", &[("product", "default")]),
        4.0
    );
    app.stop().await;
}

/// Releases 1.0.0 and 2.0.0 with defects and release times, then three nightly
/// tags posted with only a release time, all newer.
async fn releases_and_nightly_tags(
    max_releases: usize,
) -> (crate::helpers::TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_releases = max_releases;
    let app = spawn_with(s).await;
    app.events(json!([
        {"id": "1", "stage": "qa", "release": "1.0.0", "found_at": "2026-01-10T00:00:00Z"},
        {"id": "2", "stage": "production", "release": "1.0.0", "found_at": "2026-01-20T00:00:00Z"},
        {"id": "3", "stage": "qa", "release": "2.0.0", "found_at": "2026-02-10T00:00:00Z"}
    ]))
    .await;
    app.release("default", "1.0.0", "2026-01-01T00:00:00Z")
        .await;
    app.release("default", "2.0.0", "2026-02-01T00:00:00Z")
        .await;
    for day in ["01", "02", "03"] {
        app.release(
            "default",
            &format!("nightly-202604{day}"),
            &format!("2026-04-{day}T00:00:00Z"),
        )
        .await;
    }
    (app, dir)
}

#[tokio::test]
async fn release_times_alone_never_displace_releases_with_defects() {
    let (app, _dir) = releases_and_nightly_tags(2).await;
    let m = app.metrics().await;
    // Both releases with defects keep their slots; the newer nightly tags,
    // which have none, are not exported and not counted as left out.
    assert_eq!(m.value("bug_escape_rate_ratio", &rel("1.0.0")), 0.5);
    assert_eq!(m.value("bug_escape_rate_ratio", &rel("2.0.0")), 0.0);
    assert_eq!(m.count("bug_escape_release_defects"), 2);
    assert_eq!(m.count("bug_escape_release_timestamp_seconds"), 2);
    assert_eq!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &rel("nightly-20260403")
        ),
        None
    );
    assert_eq!(
        m.value("bug_escape_releases_left_out", &[("product", "default")]),
        0.0
    );
    // A third release with defects takes the oldest one's slot, counted.
    app.events(json!({"id": "4", "stage": "production", "release": "3.0.0", "found_at": "2026-03-10T00:00:00Z"}))
        .await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("3.0.0")), 1.0);
    assert_eq!(m.value("bug_escape_release_defects", &rel("2.0.0")), 1.0);
    assert_eq!(m.get("bug_escape_release_defects", &rel("1.0.0")), None);
    assert_eq!(
        m.value("bug_escape_releases_left_out", &[("product", "default")]),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn releases_known_only_by_their_time_fill_spare_slots_newest_first() {
    let (app, _dir) = releases_and_nightly_tags(4).await;
    let m = app.metrics().await;
    for release in ["1.0.0", "2.0.0"] {
        assert!(
            m.get("bug_escape_release_defects", &rel(release)).is_some(),
            "{release}"
        );
    }
    // Two spare slots: the two newest tags show their time.
    assert_eq!(
        m.value(
            "bug_escape_release_timestamp_seconds",
            &rel("nightly-20260403")
        ),
        1_775_174_400.0
    );
    assert!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &rel("nightly-20260402")
        )
        .is_some()
    );
    assert_eq!(
        m.get(
            "bug_escape_release_timestamp_seconds",
            &rel("nightly-20260401")
        ),
        None
    );
    // They count zero defects and have no rate.
    assert_eq!(m.count("bug_escape_release_defects"), 4);
    assert_eq!(
        m.value("bug_escape_release_defects", &rel("nightly-20260403")),
        0.0
    );
    assert_eq!(
        m.get("bug_escape_rate_ratio", &rel("nightly-20260403")),
        None
    );
    assert_eq!(
        m.value("bug_escape_releases_left_out", &[("product", "default")]),
        0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_product_known_only_by_release_times_never_displaces_one_with_defects() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = crate::helpers::settings(dir.path());
    s.max_products = 1;
    let app = crate::helpers::spawn_with(s).await;
    app.events(
        json!({"id": "1", "product": "payments", "stage": "qa", "release": "1.0",
                      "found_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    // A newer release of another product, with no defect.
    app.release("search", "9.0", "2026-06-01T00:00:00Z").await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_release_defects",
            &[("product", "payments"), ("release", "1.0")]
        ),
        1.0
    );
    assert_eq!(
        m.get("bug_escape_min_defects", &[("product", "search")]),
        None
    );
    assert_eq!(m.value("bug_escape_products_left_out", &[]), 1.0);
    // Once it has a defect and the newer release, it takes the slot.
    app.events(
        json!({"id": "2", "product": "search", "stage": "qa", "release": "9.0",
                      "found_at": "2026-06-02T00:00:00Z"}),
    )
    .await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_release_defects",
            &[("product", "search"), ("release", "9.0")]
        ),
        1.0
    );
    app.stop().await;
}
