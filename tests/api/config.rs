//! Configuration: custom pipelines and products, validation, and re-keying of
//! stored defects when the keying rules change.

use serde_json::json;

use bug_escape_exporter::config::{Config, ProductSettings, RuleSettings, Settings, StageSettings};
use bug_escape_exporter::model::stage::Phase;

use crate::helpers::{rel, settings, spawn_with};

fn stage(name: &str, phase: Phase, owner: &str, tracked: bool) -> StageSettings {
    StageSettings {
        name: name.into(),
        phase,
        owner: owner.into(),
        leak_target: None,
        tracked,
    }
}

#[tokio::test]
async fn a_custom_pipeline_products_and_bands_shape_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.stages = vec![
        stage("coding", Phase::PreRelease, "devs", false),
        stage("staging", Phase::PreRelease, "qa-team", true),
        stage("canary", Phase::Production, "sre", true),
        stage("live", Phase::Production, "sre", true),
    ];
    let mut payments = ProductSettings {
        sources: vec!["github:acme/payments".into()],
        ..Default::default()
    };
    payments
        .stage_owners
        .insert("staging".into(), "payments-qa".into());
    payments.leak_targets.insert("staging".into(), 0.3);
    payments.bands = Some(bug_escape_exporter::config::BandOverride {
        attention: Some(0.3),
        min_defects: Some(5),
        ..Default::default()
    });
    s.products.insert("payments".into(), payments);
    let app = spawn_with(s).await;
    app.events(json!([
        {"id": "1", "product": "payments", "stage": "staging", "release": "1.0"},
        {"id": "2", "product": "payments", "stage": "canary", "release": "1.0"},
        {"id": "3", "product": "payments", "stage": "live", "release": "1.0"}
    ]))
    .await;
    let m = app.metrics().await;
    let r = [("product", "payments"), ("release", "1.0")];
    assert_eq!(m.value("bug_escape_rate_ratio", &r), 2.0 / 3.0);
    // Untracked `coding` has no leak series; `staging` leaks 2 of 3.
    assert_eq!(
        m.get(
            "bug_escape_stage_leak_ratio",
            &[("release", "1.0"), ("stage", "coding")]
        ),
        None
    );
    assert_eq!(
        m.value(
            "bug_escape_stage_leak_ratio",
            &[("release", "1.0"), ("stage", "staging")]
        ),
        2.0 / 3.0
    );
    assert_eq!(
        m.value(
            "bug_escape_stage_info",
            &[("stage", "coding"), ("tracked", "false")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_stage_owner_info",
            &[
                ("product", "payments"),
                ("stage", "staging"),
                ("owner", "payments-qa")
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "bug_escape_stage_leak_target_ratio",
            &[("product", "payments"), ("stage", "staging")]
        ),
        0.3
    );
    assert_eq!(
        m.value(
            "bug_escape_band_threshold_ratio",
            &[("product", "payments"), ("band", "attention")]
        ),
        0.3
    );
    assert_eq!(
        m.value(
            "bug_escape_band_threshold_ratio",
            &[("product", "payments"), ("band", "strong")]
        ),
        0.05
    );
    assert_eq!(
        m.value("bug_escape_min_defects", &[("product", "payments")]),
        5.0
    );
    // A product with no data and no settings is not exported.
    assert_eq!(
        m.get("bug_escape_min_defects", &[("product", "default")]),
        None
    );
    let resp = app
        .post("/api/v1/events", &json!({"id": "4", "stage": "qa"}))
        .await;
    assert_eq!(resp.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn changed_release_rules_and_stages_rekey_stored_defects_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    app.events(json!([
        {"id": "1", "stage": "qa", "release": "v1.0.0-rc.1"},
        {"id": "2", "stage": "production", "release": "1.0.0"},
        {"id": "3", "stage": "automated_tests", "release": "1.0.0"}
    ]))
    .await;
    app.release("default", "v1.0.0-rc.1", "2026-01-01T00:00:00Z")
        .await;
    assert_eq!(
        app.metrics()
            .await
            .value("bug_escape_release_defects", &rel("1.0.0")),
        3.0
    );
    app.stop().await;

    // Pre-releases no longer fold, `v` is no longer stripped, and the
    // `automated_tests` stage is gone.
    let mut s = settings(dir.path());
    s.releases.fold_prereleases = false;
    s.releases.rules = vec![RuleSettings {
        source: None,
        pattern: r"\+.*$".into(),
        replace: String::new(),
    }];
    s.stages.retain(|st| st.name != "automated_tests");
    let app = spawn_with(s).await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 1.0);
    assert_eq!(
        m.value("bug_escape_release_defects", &rel("v1.0.0-rc.1")),
        1.0
    );
    assert!(
        m.get("bug_escape_release_timestamp_seconds", &rel("v1.0.0-rc.1"))
            .is_some()
    );
    assert_eq!(
        m.value(
            "bug_escape_unclassified_defects",
            &[("product", "default"), ("reason", "unknown_stage")]
        ),
        1.0
    );
    app.stop().await;

    // And back: the original keys return.
    let app = spawn_with(settings(dir.path())).await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 3.0);
    assert_eq!(m.count("bug_escape_release_defects"), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_changed_product_mapping_rekeys_stored_defects() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    // Stand in for an adapter: a row whose product comes from a source namespace.
    app.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("bug-escape.db")).unwrap();
    conn.execute(
        "INSERT INTO defects VALUES ('github', 'acme/pay#1', 'github', 'acme/pay', 'acme/pay', '1.0', '1.0', 'qa', \
         NULL, NULL, NULL, NULL, 'valid', 0, 0, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let mut s = settings(dir.path());
    s.products.insert(
        "payments".into(),
        ProductSettings {
            sources: vec!["github:acme/pay".into()],
            ..Default::default()
        },
    );
    let app = spawn_with(s).await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_release_defects",
            &[("product", "payments"), ("release", "1.0")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "bug_escape_release_defects",
            &[("product", "acme/pay"), ("release", "1.0")]
        ),
        None
    );
    app.stop().await;
}

#[test]
fn invalid_configurations_say_what_and_where() {
    let check = |edit: &dyn Fn(&mut Settings), needle: &str| {
        let mut s = Settings::default();
        edit(&mut s);
        let err = Config::from_settings(s).expect_err(needle).to_string();
        assert!(err.contains(needle), "`{err}` should mention `{needle}`");
    };
    check(
        &|s| s.stages.swap(3, 4),
        "stages: [4]: pre_release stage `qa` is ordered after production stage `production`",
    );
    check(
        &|s| s.stages.retain(|x| x.phase == Phase::PreRelease),
        "stages: at least one production stage",
    );
    check(
        &|s| s.stages[1].name = "development".into(),
        "stages: [1].name: `development` is listed twice",
    );
    check(&|s| s.stages[0].leak_target = Some(1.5), "leak_target");
    check(
        &|s| s.bands.healthy = 0.01,
        "bands: thresholds must satisfy",
    );
    check(&|s| s.max_releases = 0, "max_releases");
    check(
        &|s| s.maturity_ages = vec!["a month".into()],
        "maturity_ages[0]",
    );
    check(&|s| s.listen = "nowhere".into(), "listen");
    check(
        &|s| s.causes.retain(|c| c.name != "unknown"),
        "causes: must include `unknown`",
    );
    check(
        &|s| {
            s.releases.rules = vec![RuleSettings {
                source: None,
                pattern: "(".into(),
                replace: String::new(),
            }]
        },
        "releases.rules[0].pattern",
    );
    check(
        &|s| {
            s.products.insert(
                "p".into(),
                ProductSettings {
                    sources: vec!["acme".into()],
                    ..Default::default()
                },
            );
        },
        "products.p.sources[0]",
    );
    assert!(Config::from_settings(Settings::default()).is_ok());
}

#[test]
fn a_toml_file_is_read_with_unknown_keys_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        r#"
max_releases = 7
[bands]
min_defects = 25
[products.payments]
sources = ["jira:PAY"]
"#,
    )
    .unwrap();
    let s = Settings::load(Some(&path), &Default::default()).unwrap();
    assert_eq!((s.max_releases, s.bands.min_defects), (7, 25));
    assert_eq!(s.bands.attention, 0.20);
    let c = Config::from_settings(s).unwrap();
    assert_eq!(c.product_for("jira", "PAY"), "payments");
    assert_eq!(c.product_for("jira", "OPS"), "OPS");
    std::fs::write(&path, "max_release = 7\n").unwrap();
    let err = Settings::load(Some(&path), &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_release") && err.contains("c.toml"),
        "{err}"
    );
}

#[test]
fn the_readme_example_configuration_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let configure = readme.find("## Configure").expect("a Configure section");
    let start = configure
        + readme[configure..]
            .find("```toml\n")
            .expect("a TOML example")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readme.toml");
    std::fs::write(&path, &readme[start..end]).unwrap();
    let s = Settings::load(Some(&path), &Default::default()).expect("parses");
    let c = Config::from_settings(s).expect("validates");
    assert_eq!(c.product_for("sentry", "payments-api"), "payments");
    assert_eq!(c.bands("payments").attention, 0.15);
    assert_eq!(
        c.release_rules.normalise("sentry", "v1.2").unwrap().key,
        "1.2"
    );
    assert_eq!(
        c.release_rules.normalise("github", "v1.2").unwrap().key,
        "v1.2"
    );
}
