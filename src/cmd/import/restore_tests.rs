//! Export → import restores a store exactly: random stores, built by the
//! store's own rules from events shaped as the generic API and the webhooks
//! make them (no stage, unknown stages, `qa+production`, unknown causes,
//! tombstones with values, releases attached before the issue, vendor
//! namespaces, text that needs CSV quoting), exported in NDJSON and CSV and
//! imported into an empty database, give the same rows and release times.

use std::path::Path;

use proptest::prelude::*;
use rusqlite::types::Value as Sql;

use super::{EXIT_OK, Format};
use crate::config::{Config, Settings};
use crate::model::event::{Change, Classification, DefectEvent, ProductRef, ReleaseEvent, Status};
use crate::model::item::Item;
use crate::store::import::Importer;

const SOURCES: [(&str, &str); 4] = [
    ("generic", ""),
    ("tracker, \"eu\"", ""),
    ("github", "github"),
    ("sentry", "sentry"),
];
const IDS: [&str; 5] = ["1", "186853002#7", "a,b \"c\"", "ünï côdé", "x"];
const PRODUCTS: [&str; 3] = ["shop", "acme/pay, \"eu\"", "front-end"];
const STAGES: [Option<&str>; 5] = [
    None,
    Some("qa"),
    Some("production"),
    Some("staging"),
    Some("qa+production"),
];
const RELEASES: [Option<&str>; 5] = [
    None,
    Some("v1.0"),
    Some("1.1.0-rc.1"),
    Some("front-end@2.4.0"),
    Some("1.1.0"),
];
const VALUES: [Option<&str>; 4] = [None, Some("coverage"), Some("weird"), Some("high")];
const DETECTORS: [Option<&str>; 3] = [None, Some("user"), Some("robot")];

/// One event of a random history, as indices into the tables above.
#[derive(Debug, Clone)]
struct Ev {
    source: usize,
    id: usize,
    product: usize,
    change: u8,
    stage: usize,
    release: usize,
    cause: usize,
    severity: usize,
    detected_by: usize,
    status: u8,
    found_at: i64,
    updated_at: i64,
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        (0..SOURCES.len(), 0..IDS.len(), 0..PRODUCTS.len(), 0u8..6),
        (0..STAGES.len(), 0..RELEASES.len(), 0..VALUES.len()),
        (0..VALUES.len(), 0..DETECTORS.len(), 0u8..3),
        (0i64..2_000_000_000_000, 0i64..2_000_000_000_000),
    )
        .prop_map(|(a, b, c, d)| Ev {
            source: a.0,
            id: a.1,
            product: a.2,
            change: a.3,
            stage: b.0,
            release: b.1,
            cause: b.2,
            severity: c.0,
            detected_by: c.1,
            status: c.2,
            found_at: d.0,
            updated_at: d.1,
        })
}

fn item(e: &Ev) -> Item {
    let (source, kind) = SOURCES[e.source];
    let product = ProductRef {
        kind: kind.into(),
        namespace: PRODUCTS[e.product].into(),
    };
    let own = |v: Option<&str>| v.map(str::to_owned);
    let class = Classification {
        stage: own(STAGES[e.stage]),
        release: own(RELEASES[e.release]),
        detected_by: own(DETECTORS[e.detected_by]),
        cause: own(VALUES[e.cause]),
        severity: own(VALUES[e.severity]),
        team: own(VALUES[(e.cause + e.severity) % VALUES.len()]),
    };
    let status = [Status::Valid, Status::Invalid, Status::Duplicate][e.status as usize];
    let found_at = Some(e.found_at);
    let change = match e.change {
        0 | 1 => Change::Upsert {
            class,
            status,
            found_at,
        },
        2 => Change::UpsertKeepRelease {
            class,
            status,
            found_at,
        },
        3 => Change::Delete,
        4 => Change::Retract,
        _ => match RELEASES[e.release] {
            Some(r) => Change::AttachRelease { release: r.into() },
            None => {
                return Item::Release(ReleaseEvent {
                    product,
                    release: "v1.0".into(),
                    released_at: e.updated_at,
                });
            }
        },
    };
    Item::Defect(DefectEvent {
        source: source.into(),
        id: IDS[e.id].into(),
        product,
        updated_at: (!matches!(change, Change::AttachRelease { .. })).then_some(e.updated_at),
        links: None,
        change,
    })
}

fn config_at(db: &Path) -> Config {
    let mut s = Settings {
        db: db.to_path_buf(),
        ..Settings::default()
    };
    s.allow_vendor_sources = true;
    Config::from_settings(s).expect("config")
}

/// Every column of every stored defect and release time, in key order.
fn contents(db: &Path) -> Vec<Vec<Sql>> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut out = Vec::new();
    for sql in [
        "SELECT source, id, product_kind, product_ns, product, release_raw, release, stage, \
         detected_by, cause, severity, team, status, deleted, found_at, updated_at \
         FROM defects ORDER BY source, id",
        "SELECT * FROM release_times ORDER BY product_kind, product_ns, release_raw",
    ] {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
            .expect("query");
        out.extend(rows.map(|r| r.expect("row")));
        out.push(vec![Sql::Text("--".into())]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn an_export_imports_back_into_the_same_rows(events in prop::collection::vec(ev(), 1..40)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = dir.path().join("original.db");
        let config = config_at(&original);
        let mut importer = Importer::open(&config).expect("open");
        let items = events.iter().map(item).collect();
        importer.apply(items, 1_800_000_000_000).expect("apply");
        importer.commit().expect("commit");
        let stored = contents(&original);
        for format in [Format::Ndjson, Format::Csv] {
            let file = dir.path().join(format!("export.{format:?}"));
            prop_assert_eq!(crate::cmd::export::run(&original, format, Some(&file)), EXIT_OK);
            let restored = dir.path().join(format!("restored-{format:?}.db"));
            let status = super::run(config_at(&restored), &[file], Some(format), 7);
            prop_assert_eq!(status, EXIT_OK);
            prop_assert_eq!(&contents(&restored), &stored, "{:?}", format);
        }
    }
}
