//! After any history, the aggregates kept live by the writer equal a
//! fresh load from disk, field for field: one rule for every count and
//! for the time that orders releases, at run time and at start-up.

use super::*;
use crate::config::{ProductSettings, Settings};
use crate::model::event::{Classification, Ingress, LinkRef, ProductRef, Status};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Ev {
    Upsert {
        id: u8,
        github: bool,
        product: u8,
        release: Option<u8>,
        stage: u8,
        status: u8,
        found_at: i64,
        updated_at: i64,
        keep: bool,
        /// The records it links to, `(github, id)` as for its own key.
        links: Option<Vec<(bool, u8)>>,
    },
    Delete {
        id: u8,
        github: bool,
        updated_at: i64,
    },
    Retract {
        id: u8,
        github: bool,
        updated_at: i64,
    },
    Attach {
        id: u8,
        release: u8,
    },
    Release {
        github: bool,
        product: u8,
        release: u8,
        at: i64,
    },
}

const RELEASES: &[&str] = &["1.0", "v1.0", "1.0.0-rc.1", "2.0.0", "nightly-3", "Venus"];
const STAGES: &[&str] = &["development", "qa", "production", "staging"];

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        6 => (0..10u8, any::<bool>(), 0..2u8, proptest::option::of(0..6u8), 0..5u8, 0..6u8, 0..50i64, 1..40i64, any::<bool>(), links())
            .prop_map(|(id, github, product, release, stage, status, found_at, updated_at, keep, links)| Ev::Upsert {
                id, github, product, release, stage, status, found_at: found_at * 86_400_000, updated_at, keep, links,
            }),
        1 => (0..10u8, any::<bool>(), 1..40i64).prop_map(|(id, github, updated_at)| Ev::Delete { id, github, updated_at }),
        1 => (0..10u8, any::<bool>(), 1..40i64).prop_map(|(id, github, updated_at)| Ev::Retract { id, github, updated_at }),
        1 => (0..10u8, 0..6u8).prop_map(|(id, release)| Ev::Attach { id, release }),
        2 => (any::<bool>(), 0..2u8, 0..6u8, 0..60i64).prop_map(|(github, product, release, at)| Ev::Release {
            github, product, release, at: at * 86_400_000,
        }),
    ]
}

/// An event's links: mostly none (kept), sometimes a set (chains
/// and groups form and split), sometimes empty (all removed).
fn links() -> impl Strategy<Value = Option<Vec<(bool, u8)>>> {
    prop_oneof![
        2 => Just(None),
        2 => proptest::collection::vec((any::<bool>(), 0..10u8), 1..3).prop_map(Some),
        1 => Just(Some(Vec::new())),
    ]
}

/// A record's source: the generic API's, GitHub's, or (ids 7 and up on
/// the vendor side) Sentry's, a monitoring record.
fn source_of(github: bool, id: u8) -> &'static str {
    match (github, id >= 7) {
        (false, _) => "generic",
        (true, false) => "github",
        (true, true) => "sentry",
    }
}

fn product_of(github: bool, id: u8, p: u8) -> ProductRef {
    let mut r = product(github, p);
    if source_of(github, id) == "sentry" {
        r.kind = "sentry".into();
    }
    r
}

fn product(github: bool, p: u8) -> ProductRef {
    if github {
        ProductRef {
            kind: "github".into(),
            namespace: format!("acme/r{p}"),
        }
    } else {
        ProductRef {
            kind: String::new(),
            namespace: format!("p{p}"),
        }
    }
}

fn status_of(n: u8) -> Status {
    match n {
        0 => Status::Invalid,
        1 => Status::Duplicate,
        _ => Status::Valid,
    }
}

fn link_refs(links: Option<Vec<(bool, u8)>>) -> Option<Vec<LinkRef>> {
    links.map(|l| {
        l.into_iter()
            .map(|(g, t)| LinkRef {
                source: source_of(g, t).into(),
                id: t.to_string(),
            })
            .collect()
    })
}

fn item(e: &Ev) -> Item {
    let defect = |id: u8, github: bool, p: u8, change, updated_at| {
        Item::Defect(DefectEvent {
            source: source_of(github, id).into(),
            id: id.to_string(),
            product: product_of(github, id, p),
            change,
            updated_at,
            links: None,
        })
    };
    match e.clone() {
        Ev::Upsert {
            id,
            github,
            product: p,
            release,
            stage,
            status,
            found_at,
            updated_at,
            keep,
            links,
        } => {
            let class = Classification {
                stage: STAGES.get(stage as usize).map(|s| (*s).to_owned()),
                release: release.map(|r| RELEASES[r as usize].to_owned()),
                cause: Some("coverage".into()),
                ..Classification::default()
            };
            let status = status_of(status);
            let change = if keep {
                Change::UpsertKeepRelease {
                    class,
                    status,
                    found_at: Some(found_at),
                }
            } else {
                Change::Upsert {
                    class,
                    status,
                    found_at: Some(found_at),
                }
            };
            let mut item = defect(id, github, p, change, Some(updated_at));
            if let Item::Defect(d) = &mut item {
                d.links = link_refs(links);
            }
            item
        }
        Ev::Delete {
            id,
            github,
            updated_at,
        } => defect(id, github, 0, Change::Delete, Some(updated_at)),
        Ev::Retract {
            id,
            github,
            updated_at,
        } => defect(id, github, 0, Change::Retract, Some(updated_at)),
        Ev::Attach { id, release } => defect(
            id,
            true,
            0,
            Change::AttachRelease {
                release: RELEASES[release as usize].to_owned(),
            },
            None,
        ),
        Ev::Release {
            github,
            product: p,
            release,
            at,
        } => Item::Release(ReleaseEvent {
            product: product(github, p),
            release: RELEASES[release as usize].to_owned(),
            released_at: at,
        }),
    }
}

/// Three configurations: the defaults but one release kept per
/// product (so releases go cold and come back); folding off, a product
/// mapping, a 7-day age and two releases kept; and a pipeline without
/// `qa`.
fn config(variant: u8, db: &std::path::Path) -> Config {
    let mut s = Settings {
        db: db.to_path_buf(),
        max_releases: [1, 2, 20][variant as usize % 3],
        recent_releases: 1,
        ..Settings::default()
    };
    match variant {
        1 => {
            s.releases.fold_prereleases = false;
            s.maturity_ages = vec!["7d".into(), "30d".into()];
            s.products.insert(
                "payments".into(),
                ProductSettings {
                    sources: vec!["github:acme/r0".into(), "github:acme/r1".into()],
                    ..ProductSettings::default()
                },
            );
        }
        2 => {
            s.stages.retain(|st| st.name != "qa");
        }
        _ => {}
    }
    Config::from_settings(s).expect("config")
}

fn assert_live_equals_reload(w: &Writer) -> Result<(), TestCaseError> {
    // What is resident may differ (a load keeps fewer); what
    // `/metrics` reads may not.
    let live = w.aggregates.read().unwrap().view();
    let reload = load::aggregates(&w.conn, &w.config).expect("reload");
    prop_assert_eq!(live, reload.view());
    prop_assert_eq!(&w.aggregates.read().unwrap().linked, &reload.linked);
    // The groups kept up event by event equal the groups computed
    // from scratch from the records and links stored.
    let incremental = groups(&w.conn);
    w.conn
        .execute_batch("SAVEPOINT regroup")
        .expect("savepoint");
    crate::store::links::regroup_all(&w.conn, &w.config).expect("regroup");
    let scratch = groups(&w.conn);
    w.conn
        .execute_batch("ROLLBACK TO regroup; RELEASE regroup")
        .expect("rollback");
    prop_assert_eq!(incremental, scratch);
    Ok(())
}

/// Every group's row and every folded record, in key order.
fn groups(conn: &Connection) -> (Vec<Row>, Vec<(String, String)>) {
    let mut stmt = conn
        .prepare("SELECT id FROM defects WHERE source = '' ORDER BY id")
        .expect("groups");
    let ids: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("ids");
    let rows = ids
        .iter()
        .map(|id| Row::get(conn, "", id).expect("get").expect("row"))
        .collect();
    let mut stmt = conn
        .prepare("SELECT source, id FROM defects WHERE folded = 1 ORDER BY source, id")
        .expect("folded");
    let folded = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("folded");
    (rows, folded)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn live_aggregates_equal_a_fresh_load(
        phases in proptest::collection::vec(
            (0..3u8, proptest::collection::vec(proptest::collection::vec(ev(), 1..6), 1..10)),
            1..4,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let mut n = 0;
        for (variant, batches) in phases {
            // A restart with this phase's configuration (re-keying).
            let mut w = start(&db, config(variant, &db));
            assert_live_equals_reload(&w)?;
            for events in batches {
                let (reply, _answer) = oneshot::channel();
                let batch = batch(Ingress::Generic, events.iter().map(item).collect());
                let (_tx, rx) = std::sync::mpsc::channel();
                // Both ways of applying a defect event, whatever
                // the last group's would choose.
                n += 1;
                w.insert_first.on = n % 2 == 0;
                w.commit_group(vec![(batch, reply)], Vec::new(), &rx)
                    .expect("commit");
                assert_live_equals_reload(&w)?;
            }
            w.close();
        }
    }
}
