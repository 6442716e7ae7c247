//! Configuration: custom pipelines and products, validation, and re-keying of
//! stored defects when the keying rules change.

use std::collections::BTreeMap;

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

/// Settings with a four-stage pipeline (`coding` untracked) and a product
/// `payments` mapped from GitHub, with its own stage owner, leak target and
/// bands.
fn custom_pipeline(dir: &std::path::Path) -> Settings {
    let mut s = settings(dir);
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
    s
}

#[tokio::test]
async fn a_custom_pipeline_products_and_bands_shape_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let s = custom_pipeline(dir.path());
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
         NULL, NULL, NULL, NULL, 'valid', 0, 0, 0, 0)",
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
fn the_example_configuration_of_the_docs_is_valid() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let example = page
        .find("\n## An example file\n")
        .expect("an `## An example file` section in docs/configuration.md");
    let start =
        example + page[example..].find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let end = start + page[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("example.toml");
    std::fs::write(&path, &page[start..end]).unwrap();
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

// ---------------------------------------------------------------------------
// Ranges, duplicates and the environment, through the real binary: what
// `check-config` refuses, `serve` refuses with the same words.
// ---------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// `check-config` and `serve` on `file` with `envs` (a clean environment
/// otherwise): both fail with exit status 1 and the same message, which is
/// returned.
fn refused_alike(dir: &std::path::Path, file: Option<&str>, envs: &[(&str, &str)]) -> String {
    let db = dir.join("never.db");
    let mut outputs = Vec::new();
    for command in [
        vec!["check-config"],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
        ],
    ] {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(&command).env_clear().envs(envs.iter().copied());
        if let Some(f) = file {
            cmd.args(["--config", f]);
        }
        let out = cmd.current_dir(dir).output().expect("the binary runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{command:?} {file:?} {envs:?}: {err}"
        );
        outputs.push(err);
    }
    assert!(!db.exists(), "serve opened the database: {}", outputs[1]);
    assert_eq!(outputs[0], outputs[1], "check-config and serve disagree");
    outputs.remove(0)
}

/// `key = value` as TOML, in its table when the key is dotted.
fn toml_line(key: &str, value: &str) -> String {
    match key.rsplit_once('.') {
        Some((table, k)) => format!("[{table}]\n{k} = {value}\n"),
        None => format!("{key} = {value}\n"),
    }
}

#[test]
fn every_count_and_duration_has_a_range_check_config_and_serve_enforce_alike() {
    use bug_escape_exporter::config::ranges::{COUNTS, SPANS};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let f = file.to_str().unwrap();
    for c in COUNTS {
        let mut bad = vec![c.max + 1, u64::MAX >> 2];
        if c.min > 0 {
            bad.push(c.min - 1);
        }
        for n in bad {
            std::fs::write(&file, toml_line(c.key, &n.to_string())).unwrap();
            let err = refused_alike(dir.path(), Some(f), &[]);
            assert!(
                err.contains(c.key) && err.contains(&c.describe()) && err.contains("c.toml:"),
                "{} = {n}: {err}",
                c.key
            );
        }
    }
    // Every count at its maximum passes.
    let mut tables: BTreeMap<&str, String> = BTreeMap::new();
    for c in COUNTS {
        let (table, key) = c.key.rsplit_once('.').unwrap_or(("", c.key));
        tables
            .entry(table)
            .or_default()
            .push_str(&format!("{key} = {}\n", c.max));
    }
    let text: String = tables
        .iter()
        .map(|(t, body)| {
            if t.is_empty() {
                body.clone()
            } else {
                format!("[{t}]\n{body}")
            }
        })
        .collect();
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config", f])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for span in SPANS {
        let over = format!("\"{}s\"", span.max.as_secs() + 1);
        for key in span.keys {
            let text = if *key == "maturity_ages" {
                format!("maturity_ages = [{over}]\n")
            } else {
                toml_line(key, &over)
            };
            for value in [text.clone(), text.replace(&over, "\"0s\"")] {
                std::fs::write(&file, &value).unwrap();
                let err = refused_alike(dir.path(), Some(f), &[]);
                assert!(
                    err.contains(key) && err.contains(&span.describe()),
                    "{value}: {err}"
                );
            }
        }
    }
}

#[test]
fn max_connections_past_the_semaphore_limit_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "max_connections = 2305843009213693952\n").unwrap();
    let err = refused_alike(dir.path(), Some(file.to_str().unwrap()), &[]);
    assert!(
        err.contains("c.toml:1:1: max_connections: 2305843009213693952 is out of range"),
        "{err}"
    );
    let err = refused_alike(
        dir.path(),
        None,
        &[("BUG_ESCAPE_MAX_CONNECTIONS", "2305843009213693952")],
    );
    assert!(
        err.contains("BUG_ESCAPE_MAX_CONNECTIONS") && err.contains("1 to 100000"),
        "{err}"
    );
}

#[test]
fn environment_errors_name_the_whole_variable() {
    use bug_escape_exporter::config::ENV_KEYS;
    let dir = tempfile::tempdir().unwrap();
    let defaults = serde_json::to_value(Settings::default()).unwrap();
    let mut numeric = 0;
    for key in ENV_KEYS {
        let var = format!("BUG_ESCAPE_{}", key.to_uppercase());
        let bad = match &defaults[key] {
            serde_json::Value::Number(_) => {
                numeric += 1;
                "12abc"
            }
            serde_json::Value::Bool(_) => "maybe",
            _ => continue,
        };
        let err = refused_alike(dir.path(), None, &[(&var, bad)]);
        assert!(
            err.contains(&format!("environment variable {var}:")),
            "{err}"
        );
    }
    assert!(numeric >= 7, "{numeric} numeric variables");
    // Validation errors of a value from the environment name it too.
    let err = refused_alike(dir.path(), None, &[("BUG_ESCAPE_WRITE_QUEUE_BYTES", "10")]);
    assert!(
        err.contains("environment variable BUG_ESCAPE_WRITE_QUEUE_BYTES: write_queue_bytes:"),
        "{err}"
    );
    // A numeric-looking token stays text (it used to be refused as a number).
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("BUG_ESCAPE_API_TOKEN", "0012")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn duplicate_list_entries_are_errors_naming_the_key_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let stage =
        |n: &str, p: &str| format!("[[stages]]\nname = \"{n}\"\nphase = \"{p}\"\nowner = \"o\"\n");
    for (text, key, entry) in [
        ("maturity_ages = [\"30d\", \"30d\"]\n".to_owned(), "maturity_ages[1]", "30d"),
        ("maturity_ages = [\"30d\", \"720h\"]\n".to_owned(), "maturity_ages[1]", "720h"),
        (
            format!("{}{}{}", stage("qa", "pre_release"), stage("qa", "pre_release"), stage("prod", "production")),
            "stages",
            "qa",
        ),
        (
            "[[causes]]\nname = \"unknown\"\nowner = \"a\"\n[[causes]]\nname = \"unknown\"\nowner = \"b\"\n".to_owned(),
            "causes[1].name",
            "unknown",
        ),
        ("severities = [\"high\", \"low\", \"high\"]\n".to_owned(), "severities[2]", "high"),
        ("teams = [\"core\", \"core\"]\n".to_owned(), "teams[1]", "core"),
        ("pinned_products = [\"pay\", \"pay\"]\n".to_owned(), "pinned_products[1]", "pay"),
        ("allowlist = [\"pay\", \"pay\"]\n".to_owned(), "pinned_products[1]", "pay"),
        (
            "[products.a]\nsources = [\"jira:PAY\"]\n[products.b]\nsources = [\"jira:PAY\"]\n".to_owned(),
            "products.b.sources[0]",
            "jira:PAY",
        ),
        (
            "[webhooks.github]\ndefect_labels = [\"bug\", \"Bug\"]\n".to_owned(),
            "webhooks.github.defect_labels[1]",
            "Bug",
        ),
        (
            "[webhooks.github]\nrepositories = [\"acme/pay\", \"acme/pay\"]\n".to_owned(),
            "webhooks.github.repositories[1]",
            "acme/pay",
        ),
        (
            "[webhooks.github]\nduplicate_reasons = [\"duplicate\", \"duplicate\"]\n".to_owned(),
            "webhooks.github.duplicate_reasons[1]",
            "duplicate",
        ),
        (
            "[webhooks.jira]\ninvalid_resolutions = [\"Invalid\", \"invalid\"]\n".to_owned(),
            "webhooks.jira.invalid_resolutions[1]",
            "invalid",
        ),
        (
            "[webhooks.gitlab]\ndefect_types = [\"Incident\", \"incident\"]\n".to_owned(),
            "webhooks.gitlab.defect_types[1]",
            "incident",
        ),
        (
            "[webhooks.sentry]\norganization = \"o\"\nprojects = [\"api\", \"api\"]\n".to_owned(),
            "webhooks.sentry.projects[1]",
            "api",
        ),
        (
            "[webhooks.github]\nsecret = [\"s3cret-one\", \"s3cret-one\"]\n".to_owned(),
            "webhooks.github.secret",
            "secret #2 is the same as secret #1",
        ),
    ] {
        std::fs::write(&file, &text).unwrap();
        let err = refused_alike(dir.path(), Some(file.to_str().unwrap()), &[]);
        assert!(err.contains(key) && err.contains(entry), "{text}: {err}");
        assert!(err.contains("c.toml:"), "{text}: no file named: {err}");
        assert!(!err.contains("s3cret"), "{text}: a secret printed: {err}");
    }
}

#[test]
fn environment_values_that_are_not_utf8_are_refused_by_name() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let bad = OsStr::from_bytes(b"other\xff.db");
    let run = |args: &[&str], envs: &[(&str, &OsStr)]| {
        std::process::Command::new(BIN)
            .args(args)
            .env_clear()
            .envs(envs.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, "").unwrap();
    let input = input.to_str().unwrap();
    for (args, code) in [
        (vec!["check-config"], 1),
        (vec!["serve", "--listen", "127.0.0.1:0"], 1),
        (vec!["report"], 1),
        (vec!["import", input], 2),
        (vec!["export"], 2),
        (vec!["sync", "github"], 2),
    ] {
        for (var, value) in [
            ("BUG_ESCAPE_DB", bad),
            ("BUG_ESCAPE_LOG", OsStr::from_bytes(b"\xfe")),
        ] {
            let out = run(&args, &[(var, value)]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{args:?} {var}: {err}");
            assert!(
                err.contains(var) && err.contains("not valid UTF-8"),
                "{args:?}: {err}"
            );
        }
    }
    // Nothing was created under the altered name, nor the default one.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("in.ndjson")]);
    // A flag naming a path that is not UTF-8 is refused by name too.
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .arg("--web.config.file")
        .arg(OsStr::from_bytes(b"web\xff.yml"))
        .env_clear()
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--web.config.file"),
        "{err}"
    );
    let out = run(
        &["healthcheck"],
        &[(
            "BUG_ESCAPE_HEALTHCHECK_URL",
            OsStr::from_bytes(b"http://\xff/"),
        )],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("BUG_ESCAPE_HEALTHCHECK_URL"),
        "{err}"
    );
}

#[test]
fn the_documentation_gives_every_range() {
    use bug_escape_exporter::config::ranges::{COUNTS, SPANS};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let row = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("no row for {key}"))
            .to_owned()
    };
    for c in COUNTS {
        let r = row(c.key);
        assert!(
            r.contains(&c.describe()),
            "{}: the row does not say `{}`: {r}",
            c.key,
            c.describe()
        );
    }
    for span in SPANS {
        for key in span.keys {
            let r = row(key);
            let want = format!("at most `{}`", span.max_text);
            assert!(r.contains(&want), "{key}: the row does not say {want}: {r}");
        }
    }
}

#[test]
fn every_numeric_and_duration_setting_has_a_range() {
    use bug_escape_exporter::config::ranges::{SPANS, count_range};
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(&format!("{prefix}{k}."), v, out);
                }
            }
            _ => out.push((prefix.trim_end_matches('.').to_owned(), v.clone())),
        }
    }
    let mut leaves = Vec::new();
    walk(
        "",
        &serde_json::to_value(Settings::default()).unwrap(),
        &mut leaves,
    );
    let spanned: Vec<&str> = SPANS.iter().flat_map(|s| s.keys.iter().copied()).collect();
    let mut problems = Vec::new();
    for (key, value) in &leaves {
        let durations = match value {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if value.is_u64() && count_range(key).is_none() {
            problems.push(format!(
                "{key}: a count with no range in config::ranges::COUNTS"
            ));
        }
        let is_duration = !durations.is_empty()
            && durations
                .iter()
                .all(|d| humantime::parse_duration(d).is_ok());
        if is_duration && !spanned.contains(&key.as_str()) {
            problems.push(format!(
                "{key}: a duration with no range in config::ranges::SPANS"
            ));
        }
    }
    assert!(leaves.len() > 50, "{leaves:?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An unknown key, at the top or nested, is named at its line and column
/// with the nearest known key (no internal profile name, no secret value);
/// a key near none is answered with the keys there are.
#[test]
fn unknown_keys_are_named_with_the_nearest_known_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let stage = "[[stages]]\nname = \"a\"\nphase = \"pre_release\"\nowner = \"o\"\n";
    for (text, expected) in [
        (
            "lisen = \"127.0.0.1:9000\"\n".to_owned(),
            "c.toml:1:1: lisen: unknown key; did you mean `listen`?",
        ),
        (
            "[webhooks.github]\nsecrte = \"s3cret-value\"\n".to_owned(),
            "c.toml:2:1: webhooks.github.secrte: unknown key; did you mean `secret`?",
        ),
        (
            "[webhooks.gitlab]\nsigning_secert = \"s3cret-value\"\n".to_owned(),
            "c.toml:2:1: webhooks.gitlab.signing_secert: unknown key; did you mean `signing_secret`?",
        ),
        (
            "[webhooks.githb]\nsecret = \"s3cret-value\"\n".to_owned(),
            "c.toml:1:11: webhooks.githb: unknown key; did you mean `github`?",
        ),
        (
            format!("{stage}nmae = \"b\"\n"),
            "c.toml:5:1: stages[0].nmae: unknown key; did you mean `name`?",
        ),
        (
            "[products.pay.bands]\nstrnog = 0.01\n".to_owned(),
            "c.toml:2:1: products.pay.bands.strnog: unknown key; did you mean `strong`?",
        ),
        (
            "[sync]\npage_szie = 10\n".to_owned(),
            "c.toml:2:1: sync.page_szie: unknown key; did you mean `page_size`?",
        ),
        (
            "colour = \"red\"\n".to_owned(),
            "c.toml:1:1: colour: unknown key; known keys: listen, telemetry_path, db,",
        ),
    ] {
        std::fs::write(&file, &text).unwrap();
        let err = refused_alike(dir.path(), Some(file.to_str().unwrap()), &[]);
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!err.contains("default."), "{text}: a profile leaks: {err}");
        assert!(!err.contains("s3cret"), "{text}: a secret printed: {err}");
    }
}

/// The source kinds `config` knows are the sources the exporter has.
#[test]
fn the_source_kinds_of_the_configuration_are_the_registry() {
    let registry: Vec<&str> = bug_escape_exporter::sources::REGISTRY
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        bug_escape_exporter::config::webhooks::SOURCE_KINDS,
        registry.as_slice()
    );
}

/// A product's `sources` entry names a known source (the nearest suggested)
/// and a namespace, and maps onto one product only.
#[test]
fn a_source_mapping_names_a_known_source_and_one_product() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    for (text, expected) in [
        (
            "[products.payments]\nsources = [\"githb:acme/payments\"]\n",
            "c.toml:2:12: products.payments.sources[0]: `githb:acme/payments`: \
             unknown source `githb`; did you mean `github`? the sources are github, gitlab, jira, sentry",
        ),
        (
            "[products.payments]\nsources = [\"jira:PAY\", \"linear:PAY\"]\n",
            "products.payments.sources[1]: `linear:PAY`: unknown source `linear`; the sources are",
        ),
        (
            "[products.payments]\nsources = [\"sentry:\"]\n",
            "products.payments.sources[0]: `sentry:` names no namespace",
        ),
        (
            "[products.payments]\nsources = [\"github:acme/pay\"]\n\
             [products.billing]\nsources = [\"github:acme/pay\"]\n",
            "c.toml:2:12: products.payments.sources[0]: `github:acme/pay` is also mapped onto product `billing`",
        ),
        (
            "[products.payments]\nsources = [\"jira:PAY\", \"jira:PAY\"]\n",
            "c.toml:2:24: products.payments.sources[1]: `jira:PAY` is listed twice in products.payments.sources",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = refused_alike(dir.path(), Some(file.to_str().unwrap()), &[]);
        assert!(err.contains(expected), "{text}: {err}");
    }
}

/// A `BUG_ESCAPE_*` variable one typo from one that is read is warned of
/// (its setting would silently keep its default); the configuration stands.
#[test]
fn a_misspelt_environment_variable_is_warned_of() {
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("BUG_ESCAPE_LISEN", "127.0.0.1:9000")
        .env("BUG_ESCAPE_OWN_THING", "x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "environment variable BUG_ESCAPE_LISEN is not read by the exporter; \
             did you mean BUG_ESCAPE_LISTEN?"
        ),
        "{err}"
    );
    assert!(!err.contains("OWN_THING"), "{err}");
}
