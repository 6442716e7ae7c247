//! Linked records counted once (docs/semantics.md, "Linked records"): the
//! scenarios of the rule with their exact counts, each checked against a
//! fresh load from disk, and the rule's independence from arrival order.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use super::tests::{batch, start};
use super::*;
use crate::config::{ProductSettings, Settings};
use crate::model::event::{
    Change, Classification, DefectEvent, Ingress, LinkRef, MAX_GROUP_RECORDS, ProductRef, Status,
};
use crate::model::item::Item;
use crate::store::load;

const DAY: Millis = 86_400_000;

/// The defaults, with a Sentry project, a Jira project and a GitHub
/// repository mapped onto product `shop`.
fn config(db: &std::path::Path) -> Config {
    let mut s = Settings {
        db: db.to_path_buf(),
        ..Settings::default()
    };
    s.products.insert(
        "shop".into(),
        ProductSettings {
            sources: vec![
                "sentry:api".into(),
                "jira:PAY".into(),
                "github:acme/shop".into(),
            ],
            ..ProductSettings::default()
        },
    );
    Config::from_settings(s).expect("config")
}

/// One record's event: `kind` is its source (`sentry`, `jira`, `github`).
struct Rec {
    kind: &'static str,
    id: &'static str,
    stage: &'static str,
    release: Option<&'static str>,
    status: Status,
    found_day: i64,
    updated_at: Millis,
    links: Option<Vec<(&'static str, &'static str)>>,
    cause: Option<&'static str>,
}

fn rec(kind: &'static str, id: &'static str, stage: &'static str) -> Rec {
    Rec {
        kind,
        id,
        stage,
        release: None,
        status: Status::Valid,
        found_day: 10,
        updated_at: 100,
        links: None,
        cause: None,
    }
}

impl Rec {
    fn item(&self) -> Item {
        let namespace = match self.kind {
            "sentry" => "api",
            "jira" => "PAY",
            _ => "acme/shop",
        };
        let class = Classification {
            stage: Some(self.stage.into()),
            release: self.release.map(str::to_owned),
            detected_by: (self.kind == "sentry").then(|| "monitoring".into()),
            cause: self.cause.map(str::to_owned),
            ..Classification::default()
        };
        let found_at = Some(self.found_day * DAY);
        let change = if self.kind == "sentry" {
            Change::UpsertKeepRelease {
                class,
                status: self.status,
                found_at,
            }
        } else {
            Change::Upsert {
                class,
                status: self.status,
                found_at,
            }
        };
        Item::Defect(DefectEvent {
            source: self.kind.into(),
            id: self.id.into(),
            product: ProductRef {
                kind: self.kind.into(),
                namespace: namespace.into(),
            },
            change,
            updated_at: Some(self.updated_at),
            links: self.links.as_ref().map(|l| {
                l.iter()
                    .map(|(source, id)| LinkRef {
                        source: (*source).into(),
                        id: (*id).into(),
                    })
                    .collect()
            }),
        })
    }

    fn links(mut self, l: &[(&'static str, &'static str)]) -> Self {
        self.links = Some(l.to_vec());
        self
    }

    fn release(mut self, r: &'static str) -> Self {
        self.release = Some(r);
        self
    }

    fn at(mut self, found_day: i64, updated_at: Millis) -> Self {
        self.found_day = found_day;
        self.updated_at = updated_at;
        self
    }
}

/// Commits `items` as one batch; its outcome.
fn commit(w: &mut Writer, items: Vec<Item>) -> Outcome {
    let (reply, mut answer) = oneshot::channel();
    let batch = batch(Ingress::Generic, items);
    let (_tx, rx) = std::sync::mpsc::channel();
    w.commit_group(vec![(batch, reply)], Vec::new(), &rx)
        .expect("commit");
    answer.try_recv().expect("answered").expect("applied")
}

/// What product `shop` counts, as `(release or "-", stage) -> count`,
/// checked equal to a fresh load from disk first.
fn counts(w: &Writer) -> BTreeMap<(String, String), u64> {
    let live = w.aggregates.read().unwrap();
    let reload = load::aggregates(&w.conn, &w.config).expect("reload");
    assert_eq!(live.view(), reload.view(), "live aggregates equal a reload");
    assert_eq!(live.linked, reload.linked, "linked records equal a reload");
    let stages: Vec<String> = w
        .config
        .pipeline
        .stages()
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let mut out = BTreeMap::new();
    let Some(p) = live.products.get("shop") else {
        return out;
    };
    for (name, r) in p.releases.iter() {
        for (i, n) in r.stages().iter().enumerate() {
            if *n > 0 {
                out.insert((name.clone(), stages[i].clone()), *n);
            }
        }
    }
    for (i, n) in p.unattributed.iter().enumerate() {
        if *n > 0 {
            out.insert(("-".into(), stages[i].clone()), *n);
        }
    }
    out
}

/// Records of `shop` folded into link groups (`bug_escape_linked_records`).
fn folded_records(w: &Writer) -> u64 {
    w.aggregates
        .read()
        .unwrap()
        .linked
        .get("shop")
        .copied()
        .unwrap_or(0)
}

fn expect(pairs: &[(&str, &str, u64)]) -> BTreeMap<(String, String), u64> {
    pairs
        .iter()
        .map(|(r, s, n)| (((*r).to_owned(), (*s).to_owned()), *n))
        .collect()
}

/// A writer on a fresh database of `config`.
fn writer() -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("l.db");
    let w = start(&db, config(&db));
    (dir, w)
}

/// The counted release's detector and cause indices (one defect in `rel`).
fn one(w: &Writer, rel: &str) -> (Vec<u64>, Vec<u64>, Option<Millis>) {
    let agg = w.aggregates.read().unwrap();
    let r = agg.products["shop"].releases.get(rel).expect("release");
    (r.detectors().to_vec(), r.causes().to_vec(), r.first_found)
}

#[test]
fn sentry_first_then_its_ticket_is_one_escape_in_sentrys_release() {
    let (_dir, mut w) = writer();
    commit(
        &mut w,
        vec![rec("sentry", "S1", "production").release("2.0").item()],
    );
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    // The ticket names no release and a later found_at; a person set the cause.
    let mut ticket = rec("jira", "PAY-1", "production")
        .at(12, 200)
        .links(&[("sentry", "S1")]);
    ticket.cause = Some("review");
    commit(&mut w, vec![ticket.item()]);
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    let (detectors, causes, first) = one(&w, "2.0");
    // Sentry saw it first: detected by monitoring (index 1); the ticket's cause.
    assert_eq!(detectors[1], 1);
    assert_eq!(
        causes[w
            .config
            .causes
            .iter()
            .position(|(n, _)| n == "review")
            .unwrap()],
        1
    );
    assert_eq!(first, Some(10 * DAY), "the group's earliest found_at");
    w.close();
}

#[test]
fn the_ticket_first_then_sentry_ends_where_the_other_order_does() {
    let (_dir, mut w) = writer();
    let mut ticket = rec("jira", "PAY-1", "production")
        .at(12, 200)
        .links(&[("sentry", "S1")]);
    ticket.cause = Some("review");
    commit(&mut w, vec![ticket.item()]);
    // Alone, without a release: unattributed.
    assert_eq!(counts(&w), expect(&[("-", "production", 1)]));
    commit(
        &mut w,
        vec![rec("sentry", "S1", "production").release("2.0").item()],
    );
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    let reverse = w.aggregates.read().unwrap().view();
    w.close();

    let (_dir, mut w) = writer();
    commit(
        &mut w,
        vec![rec("sentry", "S1", "production").release("2.0").item()],
    );
    commit(&mut w, vec![ticket.item()]);
    assert_eq!(w.aggregates.read().unwrap().view(), reverse);
    w.close();
}

#[test]
fn a_link_added_then_removed_moves_two_to_one_and_back() {
    let (_dir, mut w) = writer();
    let ticket = rec("jira", "PAY-1", "production").release("2.0");
    commit(
        &mut w,
        vec![
            rec("sentry", "S1", "production").release("2.0").item(),
            ticket.item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[("2.0", "production", 2)]));
    let linked = rec("jira", "PAY-1", "production")
        .release("2.0")
        .at(10, 200)
        .links(&[("sentry", "S1")]);
    let o = commit(&mut w, vec![linked.item()]);
    assert_eq!(o.accepted, 1, "a changed link set is a change");
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    assert_eq!(folded_records(&w), 2, "two records folded into one defect");
    // The description edited again, without the link.
    let unlinked = rec("jira", "PAY-1", "production")
        .release("2.0")
        .at(10, 300)
        .links(&[]);
    commit(&mut w, vec![unlinked.item()]);
    assert_eq!(counts(&w), expect(&[("2.0", "production", 2)]));
    assert_eq!(folded_records(&w), 0);
    // A stale event's links are not applied.
    let stale = rec("jira", "PAY-1", "production")
        .release("2.0")
        .at(10, 250)
        .links(&[("sentry", "S1")]);
    let o = commit(&mut w, vec![stale.item()]);
    assert_eq!(o.stale, 1);
    assert_eq!(counts(&w), expect(&[("2.0", "production", 2)]));
    w.close();
}

#[test]
fn a_qa_ticket_linked_to_a_production_sentry_issue_was_caught_before_release() {
    let (_dir, mut w) = writer();
    commit(
        &mut w,
        vec![
            rec("jira", "PAY-2", "qa")
                .release("2.0")
                .at(5, 100)
                .links(&[("sentry", "S2")])
                .item(),
            rec("sentry", "S2", "production")
                .release("2.0")
                .at(9, 100)
                .item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[("2.0", "qa", 1)]));
    w.close();
}

#[test]
fn a_chain_across_sentry_jira_and_github_is_one_defect_until_a_link_goes() {
    let (_dir, mut w) = writer();
    commit(
        &mut w,
        vec![
            rec("sentry", "S3", "production").release("3.0").item(),
            rec("jira", "PAY-3", "production")
                .links(&[("sentry", "S3")])
                .item(),
            rec("github", "G-1", "production")
                .release("3.0")
                .links(&[("jira", "PAY-3")])
                .item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[("3.0", "production", 1)]));
    assert_eq!(folded_records(&w), 3);
    // The middle link goes: Sentry alone, and the ticket with the issue.
    commit(
        &mut w,
        vec![
            rec("jira", "PAY-3", "production")
                .at(10, 200)
                .links(&[])
                .item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[("3.0", "production", 2)]));
    w.close();
}

#[test]
fn a_link_to_a_record_never_stored_changes_no_count() {
    let (_dir, mut w) = writer();
    commit(
        &mut w,
        vec![
            rec("jira", "PAY-9", "production")
                .release("2.0")
                .links(&[("sentry", "elsewhere-1")])
                .item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    w.close();
}

#[test]
fn a_group_whose_ticket_is_a_duplicate_counts_nothing_and_deleted_only_when_all_are() {
    let (_dir, mut w) = writer();
    let mut dup = rec("jira", "PAY-4", "production")
        .release("2.0")
        .links(&[("sentry", "S4")]);
    dup.status = Status::Duplicate;
    commit(
        &mut w,
        vec![
            rec("sentry", "S4", "production").release("2.0").item(),
            dup.item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[]));
    // Reopened as valid: one.
    commit(
        &mut w,
        vec![
            rec("jira", "PAY-4", "production")
                .release("2.0")
                .at(10, 200)
                .item(),
        ],
    );
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    // The ticket deleted: Sentry's record still counts; then it goes too.
    let delete = |source: &str, id: &str, kind: &str, ns: &str| {
        Item::Defect(DefectEvent {
            source: source.into(),
            id: id.into(),
            product: ProductRef {
                kind: kind.into(),
                namespace: ns.into(),
            },
            change: Change::Delete,
            updated_at: Some(300),
            links: None,
        })
    };
    commit(&mut w, vec![delete("jira", "PAY-4", "jira", "PAY")]);
    assert_eq!(counts(&w), expect(&[("2.0", "production", 1)]));
    commit(&mut w, vec![delete("sentry", "S4", "sentry", "api")]);
    assert_eq!(counts(&w), expect(&[]));
    w.close();
}

#[test]
fn links_past_a_groups_cap_are_refused_and_counted() {
    let (_dir, mut w) = writer();
    let ids: Vec<&'static str> = (0..80)
        .map(|i| &*Box::leak(format!("T{i}").into_boxed_str()))
        .collect();
    let half = MAX_GROUP_RECORDS / 2;
    let a: Vec<(&str, &str)> = ids[..half].iter().map(|i| ("sentry", *i)).collect();
    let o = commit(
        &mut w,
        vec![rec("jira", "PAY-A", "production").links(&a[..30]).item()],
    );
    assert_eq!(o.links_refused, 0);
    // 31 records so far; 30 more and the group would hold 62 + the new
    // record's own: refused only past the cap.
    let mut b: Vec<(&str, &str)> = ids[half..half + 30]
        .iter()
        .map(|i| ("sentry", *i))
        .collect();
    b.push(("jira", "PAY-A"));
    let o = commit(
        &mut w,
        vec![rec("jira", "PAY-B", "production").links(&b).item()],
    );
    assert_eq!(o.links_refused, 0, "62 records: within the cap");
    let c: Vec<(&str, &str)> = ids[70..75].iter().map(|i| ("sentry", *i)).collect();
    let mut c = c;
    c.push(("jira", "PAY-A"));
    let o = commit(
        &mut w,
        vec![rec("jira", "PAY-C", "production").links(&c).item()],
    );
    assert_eq!(o.links_refused, 6, "the group would hold 68 records");
    // PAY-A and PAY-B are one defect; PAY-C stands alone.
    assert_eq!(counts(&w), expect(&[("-", "production", 2)]));
    w.close();
}

mod order {
    //! The rule never depends on the order in which records and their links
    //! arrive: the same records, applied in any order, count the same.

    use super::*;
    use proptest::prelude::*;

    const KINDS: [&str; 3] = ["sentry", "jira", "github"];
    const IDS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];
    const STAGES: [&str; 3] = ["qa", "production", "nowhere"];

    /// `(kind, id, stage, release, status, found day, links)`.
    type Spec = (
        usize,
        usize,
        usize,
        Option<u8>,
        u8,
        i64,
        Vec<(usize, usize)>,
    );

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0..3usize,
            0..6usize,
            0..3usize,
            proptest::option::of(0..2u8),
            0..4u8,
            0..5i64,
            proptest::collection::vec((0..3usize, 0..6usize), 0..3),
        )
    }

    fn item(s: &Spec) -> Item {
        let (kind, id, stage, release, status, day, links) = s;
        let mut r = rec(KINDS[*kind], IDS[*id], STAGES[*stage]).at(*day, 100);
        r.release = release.map(|n| ["1.0", "2.0"][n as usize]);
        r.status = match status {
            0 => Status::Invalid,
            1 => Status::Duplicate,
            _ => Status::Valid,
        };
        r.links = Some(links.iter().map(|(k, i)| (KINDS[*k], IDS[*i])).collect());
        r.item()
    }

    /// Each record once (its last spec), one batch per record, in `order`.
    fn run(specs: &[Spec], order: &[usize]) -> (Vec<crate::aggregate::ProductViewOf>, String) {
        let (_dir, mut w) = writer();
        for &i in order {
            commit(&mut w, vec![item(&specs[i])]);
        }
        counts(&w);
        let view = w.aggregates.read().unwrap().view();
        let linked = format!("{:?}", w.aggregates.read().unwrap().linked);
        w.close();
        (view, linked)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
        #[test]
        fn any_arrival_order_counts_the_same(
            specs in proptest::collection::vec(spec(), 1..7),
            seed in any::<u64>(),
        ) {
            // One event per record: keep the last spec of each key.
            let mut last = BTreeMap::new();
            for s in &specs {
                last.insert((s.0, s.1), s.clone());
            }
            let specs: Vec<Spec> = last.into_values().collect();
            let forward: Vec<usize> = (0..specs.len()).collect();
            let mut shuffled = forward.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let backward: Vec<usize> = forward.iter().rev().copied().collect();
            let a = run(&specs, &forward);
            prop_assert_eq!(&a, &run(&specs, &shuffled));
            prop_assert_eq!(&a, &run(&specs, &backward));
        }
    }
}
