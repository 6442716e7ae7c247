//! The collector's exposition, byte for byte, over a data set that reaches every
//! family: several products (pinned, configured, capped), release times, every
//! stage, cause, detector and severity, unattributed and unclassified defects,
//! maturity ages, label values that need escaping.

use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;

use super::EscapeCollector;
use crate::aggregate::{Aggregates, Class, Contribution, ReleaseMeta};
use crate::config::{BandOverride, Config, ProductSettings, Settings, UnderReportingOverride};
use crate::model::time::Millis;

const DAY: Millis = 86_400_000;
/// 2020-01-01: every release time below is older than the largest maturity age.
const T0: Millis = 1_577_836_800_000;

fn config() -> Config {
    let mut s = Settings {
        max_releases: 4,
        max_products: 3,
        recent_releases: 2,
        maturity_ages: vec!["30d".into(), "90d".into()],
        pinned_products: vec!["pinned".into()],
        ..Settings::default()
    };
    s.stages[0].tracked = false;
    s.stages[3].leak_target = Some(0.5);
    s.products.insert(
        "payments".into(),
        ProductSettings {
            bands: Some(BandOverride {
                attention: Some(0.15),
                min_defects: Some(25),
                ..BandOverride::default()
            }),
            under_reporting: Some(UnderReportingOverride {
                drop_ratio: Some(0.3),
                ..UnderReportingOverride::default()
            }),
            stage_owners: [("qa".to_owned(), "payments-qa".to_owned())].into(),
            cause_owners: [("coverage".to_owned(), "payments-dev".to_owned())].into(),
            leak_targets: [("automated_tests".to_owned(), 0.4)].into(),
            ..ProductSettings::default()
        },
    );
    Config::from_settings(s).expect("valid test config")
}

fn defect(product: &str, release: Option<&str>, class: Class, n: usize) -> Contribution {
    Contribution {
        product: product.into(),
        release: release.map(str::to_owned),
        class,
        found_at: T0 + (n as Millis % 120) * DAY,
        cause: n % 5,
        detector: n % 4,
        severity: n % 5,
    }
}

fn timed(agg: &mut Aggregates, product: &str, release: &str, day: Millis) {
    let meta = ReleaseMeta {
        first_found: None,
        time: Some((Some(T0 + day * DAY), vec![Default::default(); 2])),
    };
    agg.set_release_meta(product, release, &meta);
}

/// The rich data set: `payments` (4 releases, one with only a release time),
/// `search` (5 releases with defects: one over `max_releases`), `tiny`
/// (over `max_products`) and the pinned `pinned`, which has no data.
pub(super) fn rich() -> (Config, Aggregates) {
    let config = config();
    let mut agg = Aggregates::new(&config);
    timed(&mut agg, "payments", "2.3.0", 0);
    timed(&mut agg, "payments", "2.4.0", 20);
    timed(&mut agg, "payments", "nightly-7", 400);
    let mut n = 0;
    let mut add = |agg: &mut Aggregates, p: &str, r: Option<&str>, class: Class, count: usize| {
        for _ in 0..count {
            agg.add(&defect(p, r, class, n));
            n += 7;
        }
    };
    for (stage, count) in [(0, 2), (1, 3), (2, 5), (3, 4), (4, 6)] {
        add(
            &mut agg,
            "payments",
            Some("2.4.0"),
            Class::Stage(stage),
            count,
        );
    }
    for (stage, count) in [(2, 1), (3, 2), (4, 3)] {
        add(
            &mut agg,
            "payments",
            Some("2.3.0"),
            Class::Stage(stage),
            count,
        );
    }
    add(&mut agg, "payments", Some("2.5\"rc\\x"), Class::Stage(4), 1);
    add(&mut agg, "payments", None, Class::Stage(4), 2);
    add(&mut agg, "payments", None, Class::Stage(3), 1);
    add(&mut agg, "payments", Some("2.4.0"), Class::UnknownStage, 2);
    add(&mut agg, "payments", None, Class::NoStage, 1);
    for r in 0..5 {
        let release = format!("1.{r}");
        timed(&mut agg, "search", &release, 10 * r as Millis);
        add(&mut agg, "search", Some(&release), Class::Stage(2), r + 1);
        add(&mut agg, "search", Some(&release), Class::Stage(4), 1);
    }
    // 1.4 lets 10 of the 12 defects that reached qa through (target 0.5):
    // its failing stage.
    add(&mut agg, "search", Some("1.4"), Class::Stage(3), 2);
    add(&mut agg, "search", Some("1.4"), Class::Stage(4), 9);
    timed(&mut agg, "tiny", "0.1", 1);
    add(&mut agg, "tiny", Some("0.1"), Class::Stage(3), 1);
    (config, agg)
}

/// The collector's OpenMetrics text alone.
pub(super) fn encode(config: Config, agg: Aggregates) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EscapeCollector::new(
        Arc::new(config),
        Arc::new(RwLock::new(agg)),
    )));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
    out
}

#[test]
fn exposition_matches_the_snapshot() {
    let (config, agg) = rich();
    let text = encode(config, agg);
    let expected = include_str!("snapshot.om");
    if text != expected {
        let path = std::env::temp_dir().join("collector-snapshot.om");
        std::fs::write(&path, &text).expect("write the actual text");
        panic!(
            "exposition differs from src/metrics/collector/snapshot.om; actual in {}",
            path.display()
        );
    }
}

/// The label names of every sample, per family, as docs/metrics.md lists them.
#[test]
fn every_family_has_its_contract_labels() {
    let (config, agg) = rich();
    let text = encode(config, agg);
    let mut seen: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, rest) = line.split_once(['{', ' ']).expect("a sample line");
        let keys: Vec<&str> = if line.as_bytes()[name.len()] == b'{' {
            let labels = &rest[..rest.rfind('}').expect("closed labels")];
            labels
                .split("\",")
                .map(|kv| kv.split_once('=').expect("key=value").0)
                .collect()
        } else {
            Vec::new()
        };
        let entry = (name.to_owned(), keys.join(","));
        if !seen.contains(&entry) {
            seen.push(entry);
        }
    }
    let pr = "product,release";
    let expected: Vec<(&str, String)> = vec![
        ("bug_escape_rate_ratio", pr.into()),
        ("bug_escape_rate_lower_ratio", pr.into()),
        ("bug_escape_rate_upper_ratio", pr.into()),
        ("bug_escape_release_defects", pr.into()),
        ("bug_escape_release_escaped_defects", pr.into()),
        ("bug_escape_release_timestamp_seconds", pr.into()),
        ("bug_escape_release_rank", pr.into()),
        ("bug_escape_defects", format!("{pr},stage")),
        ("bug_escape_stage_leak_ratio", format!("{pr},stage")),
        ("bug_escape_escaped_defects_by_cause", format!("{pr},cause")),
        (
            "bug_escape_escaped_defects_by_detector",
            format!("{pr},detected_by"),
        ),
        (
            "bug_escape_escaped_defects_by_severity",
            format!("{pr},severity"),
        ),
        ("bug_escape_rate_at_age_ratio", format!("{pr},age")),
        ("bug_escape_release_defects_at_age", format!("{pr},age")),
        (
            "bug_escape_escaped_defects_at_age_by_detector",
            format!("{pr},age,detected_by"),
        ),
        (
            "bug_escape_release_failing_stage_info",
            format!("{pr},stage,owner,basis"),
        ),
        ("bug_escape_recent_rate_ratio", "product".into()),
        ("bug_escape_recent_rate_lower_ratio", "product".into()),
        ("bug_escape_recent_rate_upper_ratio", "product".into()),
        ("bug_escape_recent_defects", "product".into()),
        ("bug_escape_unattributed_defects", "product,stage".into()),
        ("bug_escape_unclassified_defects", "product,reason".into()),
        ("bug_escape_linked_records", "product".into()),
        ("bug_escape_releases_left_out", "product".into()),
        ("bug_escape_products_left_out", String::new()),
        ("bug_escape_stage_info", "stage,phase,order,tracked".into()),
        ("bug_escape_stage_owner_info", "product,stage,owner".into()),
        ("bug_escape_cause_owner_info", "product,cause,owner".into()),
        ("bug_escape_band_threshold_ratio", "product,band".into()),
        ("bug_escape_stage_leak_target_ratio", "product,stage".into()),
        ("bug_escape_min_defects", "product".into()),
        ("bug_escape_volume_drop_threshold_ratio", "product".into()),
        ("bug_escape_volume_min_predecessors", "product".into()),
    ];
    let expected: Vec<(String, String)> = expected
        .into_iter()
        .map(|(n, l)| (n.to_owned(), l))
        .collect();
    assert_eq!(seen, expected);
}

/// Releases of `product` that have a timestamp sample, in exposition order.
fn exported(text: &str, product: &str) -> Vec<String> {
    let prefix = format!("bug_escape_release_timestamp_seconds{{product=\"{product}\",release=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| l[..l.find('"').expect("closing quote")].to_owned())
        .collect()
}

#[test]
fn releases_with_defects_take_the_slots_and_the_rest_fill_spare_ones() {
    let (mut config, mut agg) = rich();
    // `payments`: 2.3.0, 2.4.0 and `2.5"rc\x` have defects; `nightly-7` (the
    // newest) and two more tags have only a release time.
    timed(&mut agg, "payments", "nightly-8", 500);
    timed(&mut agg, "payments", "nightly-1", 1);
    config.max_releases = 2;
    let sel = super::select(&config, &agg);
    let payments = sel.products.iter().find(|p| p.name == "payments").unwrap();
    let names: Vec<&str> = payments.releases.iter().map(|(r, _)| *r).collect();
    // `2.5"rc\x` has no time: its first defect (day 62) orders it.
    assert_eq!(names, ["2.5\"rc\\x", "2.4.0"]);
    assert_eq!(payments.left_out, 1, "2.3.0, not the tags");
    config.max_releases = 5;
    let sel = super::select(&config, &agg);
    let payments = sel.products.iter().find(|p| p.name == "payments").unwrap();
    let names: Vec<&str> = payments.releases.iter().map(|(r, _)| *r).collect();
    // Two spare slots go to the newest tags; the result is newest first.
    assert_eq!(
        names,
        ["nightly-8", "nightly-7", "2.5\"rc\\x", "2.4.0", "2.3.0"]
    );
    assert_eq!(payments.left_out, 0);
    let text = encode(config, agg);
    assert_eq!(
        exported(&text, "payments"),
        ["nightly-8", "nightly-7", "2.4.0", "2.3.0"]
    );
}
