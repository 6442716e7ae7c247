//! The writer's tests: the engine's rules through one batch, a batch at
//! fault failing alone in its group; live aggregates equal to a reload
//! after any history in [`live_equals_reload`].

use std::sync::{Arc, RwLock};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::*;
use crate::config::Settings;
use crate::model::event::{Change, Classification, Ingress, ProductRef, Status};
use crate::model::event::{DefectEvent, ReleaseEvent};
use crate::model::item::Item;
use crate::store::defect::Row;
use crate::store::engine::{ColdCache, Engine, Op, Residency};
use crate::store::{load, schema};

struct Db {
    _dir: tempfile::TempDir,
    conn: Connection,
    config: Config,
    /// Whether events are inserted before they are looked up.
    insert_first: bool,
}

fn db(insert_first: bool) -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = super::super::schema::open(&dir.path().join("t.db")).expect("open");
    let config = Config::from_settings(Settings::default()).expect("config");
    Db {
        _dir: dir,
        conn,
        config,
        insert_first,
    }
}

/// A database for each way the writer applies a defect event.
fn both() -> [Db; 2] {
    [db(true), db(false)]
}

fn event(change: Change, updated_at: Millis) -> DefectEvent {
    DefectEvent {
        source: "sentry".into(),
        id: "42".into(),
        product: ProductRef {
            kind: "sentry".into(),
            namespace: "api".into(),
        },
        change,
        updated_at: Some(updated_at),
        links: None,
    }
}

fn upsert(release: Option<&str>, keep: bool) -> Change {
    let class = Classification {
        stage: Some("production".into()),
        release: release.map(str::to_owned),
        ..Classification::default()
    };
    if keep {
        Change::UpsertKeepRelease {
            class,
            status: Status::Valid,
            found_at: Some(1),
        }
    } else {
        Change::Upsert {
            class,
            status: Status::Valid,
            found_at: Some(1),
        }
    }
}

/// Applies one event; returns the outcome and the net contribution change.
fn apply(db: &Db, ev: DefectEvent) -> (Outcome, i64) {
    let batch = batch(Ingress::Sentry, vec![Item::Defect(ev)]);
    let mut ops = Vec::new();
    let stages = defect::stages_json(&db.config);
    let aggregates = RwLock::new(Aggregates::new(&db.config));
    let scratch = Aggregates::new(&db.config);
    let mut cache = ColdCache::default();
    let memory = Residency::new(&aggregates, &scratch, &mut cache);
    let first = InsertFirst::starting(db.insert_first);
    let mut engine = Engine::new(&db.config, &stages, first, Some(memory));
    let outcome = engine.apply(&db.conn, &batch, &mut ops).expect("apply");
    let net = ops
        .iter()
        .map(|o| match o {
            Op::Add(_) => 1,
            Op::Remove(_) => -1,
            Op::Meta(..) | Op::Load(..) | Op::Linked(..) => 0,
        })
        .sum();
    (outcome, net)
}

fn row(db: &Db) -> Option<Row> {
    Row::get(&db.conn, "sentry", "42").expect("get")
}

#[test]
fn retract_of_an_unknown_defect_stores_nothing() {
    for db in both() {
        let (o, net) = apply(&db, event(Change::Retract, 10));
        assert_eq!((o.ignored, o.accepted, net), (1, 0, 0));
        assert!(row(&db).is_none());
    }
}

#[test]
fn retract_removes_a_stored_defect_and_a_later_upsert_revives_it() {
    for db in both() {
        assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 10)).1, 1);
        let (o, net) = apply(&db, event(Change::Retract, 20));
        assert_eq!((o.accepted, net), (1, -1));
        assert!(row(&db).is_some_and(|r| r.deleted));
        // Older than the retraction: stale.
        assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 15)).0.stale, 1);
        // Equal time: the retraction, like a deletion, wins.
        assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 20)).0.stale, 1);
        assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 30)).1, 1);
        assert!(row(&db).is_some_and(|r| !r.deleted));
    }
}

#[test]
fn attach_release_sets_only_a_missing_release_and_keeps_the_order() {
    for db in both() {
        apply(&db, event(upsert(None, true), 10));
        let (o, net) = apply(
            &db,
            event(
                Change::AttachRelease {
                    release: "v2.0".into(),
                },
                99,
            ),
        );
        assert_eq!((o.accepted, net), (1, 0)); // removed unattributed, added to 2.0
        let r = row(&db).expect("row");
        assert_eq!(
            (r.release_raw.as_deref(), r.release.as_deref(), r.updated_at),
            (Some("v2.0"), Some("2.0"), 10)
        );
        let (o, _) = apply(
            &db,
            event(
                Change::AttachRelease {
                    release: "3.0".into(),
                },
                99,
            ),
        );
        assert_eq!(o.unchanged, 1);
        assert_eq!(row(&db).and_then(|r| r.release), Some("2.0".into()));
        // A later upsert without a release keeps it; one with a release replaces it.
        apply(&db, event(upsert(None, true), 20));
        assert_eq!(row(&db).and_then(|r| r.release), Some("2.0".into()));
        apply(&db, event(upsert(Some("2.1"), true), 30));
        assert_eq!(row(&db).and_then(|r| r.release), Some("2.1".into()));
        // A plain upsert replaces the whole state, release included.
        apply(&db, event(upsert(None, false), 40));
        assert_eq!(row(&db).and_then(|r| r.release), None);
    }
}

#[test]
fn attach_release_before_the_defect_is_announced_leaves_a_tombstone() {
    for db in both() {
        let (o, net) = apply(
            &db,
            event(
                Change::AttachRelease {
                    release: "1.4".into(),
                },
                5,
            ),
        );
        assert_eq!((o.accepted, net), (1, 0));
        let r = row(&db).expect("row");
        assert!(r.deleted);
        assert_eq!(r.updated_at, 0);
        let (_, net) = apply(&db, event(upsert(None, true), 10));
        assert_eq!(net, 1);
        let r = row(&db).expect("row");
        assert!(!r.deleted);
        assert_eq!(r.release.as_deref(), Some("1.4"));
    }
}

/// A batch of `items` from `ingress`, received at 1 s, without a delivery
/// id or a deadline.
pub(super) fn batch(ingress: Ingress, items: Vec<Item>) -> Batch {
    Batch {
        ingress,
        items,
        delivery: None,
        reconcile: false,
        received_at: 1_000,
        deadline: None,
    }
}

/// A writer on `db` with `config`, loaded as at start-up.
pub(super) fn start(db: &std::path::Path, config: Config) -> Writer {
    let mut conn = schema::open(db).expect("open");
    load::rekey_if_changed(&mut conn, &config).expect("rekey");
    let agg = load::aggregates(&conn, &config).expect("load");
    let telemetry = Arc::new(Telemetry::default());
    let sup = Supervisor {
        file: FileIdentity::of(db).expect("identity"),
        config: Arc::new(config),
        aggregates: Arc::new(RwLock::new(agg)),
        health: Arc::new(Health::new(telemetry.clone())),
        telemetry,
        pending: Arc::default(),
    };
    Writer::new(conn, &sup, Arc::new(Armed::default()))
}

fn defect(id: &str, stage: &str) -> Item {
    Item::Defect(DefectEvent {
        source: "generic".into(),
        id: id.into(),
        product: ProductRef {
            kind: String::new(),
            namespace: "shop".into(),
        },
        change: Change::Upsert {
            class: Classification {
                stage: Some(stage.into()),
                release: Some("1.0".into()),
                ..Classification::default()
            },
            status: Status::Valid,
            found_at: Some(1),
        },
        updated_at: Some(2_000),
        links: None,
    })
}

/// A batch whose own data is at fault (here a stored row that no longer
/// reads back) fails alone, whichever way the group applies defects: the
/// others of its group are committed, its own changes are not.
#[test]
fn a_batch_at_fault_fails_alone_and_its_group_commits() {
    for insert_first in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let config = || Config::from_settings(Settings::default()).expect("config");
        let mut w = start(&path, config());
        let batch = |items: Vec<Item>| batch(Ingress::Generic, items);
        let (_tx, rx) = std::sync::mpsc::channel();
        let (reply, _answer) = oneshot::channel();
        w.commit_group(
            vec![(batch(vec![defect("bad", "qa")]), reply)],
            Vec::new(),
            &rx,
        )
        .expect("commit");
        w.conn
            .execute(
                "UPDATE defects SET found_at = 'not a time' WHERE id = 'bad'",
                [],
            )
            .expect("corrupt");
        w.insert_first.on = insert_first;
        let mut answers = Vec::new();
        let group = [
            vec![defect("a", "production")],
            vec![defect("b", "production"), defect("bad", "production")],
            vec![defect("c", "production")],
        ]
        .into_iter()
        .map(|items| {
            let (reply, answer) = oneshot::channel();
            answers.push(answer);
            (batch(items), reply)
        })
        .collect();
        w.commit_group(group, Vec::new(), &rx).expect("commit");
        let got: Vec<bool> = answers
            .into_iter()
            .map(|mut a| a.try_recv().expect("answered").is_ok())
            .collect();
        assert_eq!(got, [true, false, true], "insert first: {insert_first}");
        let stored = |id: &str| Row::get(&w.conn, "generic", id).expect("get").is_some();
        assert!(stored("a") && stored("c"));
        assert!(
            !stored("b"),
            "the failed batch's other event is rolled back"
        );
        let stage: String = w
            .conn
            .query_row("SELECT stage FROM defects WHERE id = 'bad'", [], |r| {
                r.get(0)
            })
            .expect("bad row");
        assert_eq!(stage, "qa");
        w.close();
    }
}

mod live_equals_reload;
