//! Ingestion semantics (docs/semantics.md) through `POST /api/v1/events`.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use crate::helpers::{Exposition, rel, settings, spawn_app, spawn_with};

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-01-02T00:00:00Z";
const T3: &str = "2026-01-03T00:00:00Z";

#[tokio::test]
async fn single_object_and_array_are_accepted_and_counted() {
    let (app, _dir) = spawn_app().await;
    let r = app
        .events(json!({"id": "a", "stage": "qa", "release": "1.0.0"}))
        .await;
    assert_eq!(r, json!({"accepted": 1, "unchanged": 0, "stale": 0}));
    let r = app
        .events(json!([
            {"id": "b", "stage": "production", "release": "1.0.0", "cause": "coverage", "detected_by": "user", "severity": "high"},
            {"id": "c", "stage": "development", "release": "1.0.0"},
            {"id": "d", "stage": "production", "release": "1.0.0"}
        ]))
        .await;
    assert_eq!(r["accepted"], 3);
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 4.0);
    assert_eq!(
        m.value("bug_escape_release_escaped_defects", &rel("1.0.0")),
        2.0
    );
    assert_eq!(m.value("bug_escape_rate_ratio", &rel("1.0.0")), 0.5);
    let cause = |c| {
        m.value(
            "bug_escape_escaped_defects_by_cause",
            &[("release", "1.0.0"), ("cause", c)],
        )
    };
    assert_eq!(
        (cause("coverage"), cause("unknown"), cause("review")),
        (1.0, 1.0, 0.0)
    );
    let det = |d| {
        m.value(
            "bug_escape_escaped_defects_by_detector",
            &[("release", "1.0.0"), ("detected_by", d)],
        )
    };
    assert_eq!(
        (det("user"), det("unknown"), det("monitoring")),
        (1.0, 1.0, 0.0)
    );
    let sev = |s| {
        m.value(
            "bug_escape_escaped_defects_by_severity",
            &[("release", "1.0.0"), ("severity", s)],
        )
    };
    assert_eq!((sev("high"), sev("unknown"), sev("low")), (1.0, 1.0, 0.0));
    app.stop().await;
}

#[tokio::test]
async fn a_batch_commits_all_or_nothing() {
    let (app, _dir) = spawn_app().await;
    let resp = app
        .post(
            "/api/v1/events",
            &json!([
                {"id": "a", "stage": "qa", "release": "1.0.0"},
                {"id": "b", "stage": "nowhere", "release": "1.0.0"}
            ]),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "[1].stage");
    assert_eq!(
        app.metrics()
            .await
            .get("bug_escape_release_defects", &rel("1.0.0")),
        None
    );
    app.stop().await;
}

#[tokio::test]
async fn retries_never_double_count() {
    let (app, _dir) = spawn_app().await;
    let ev = json!({"id": "a", "stage": "production", "release": "1.0.0", "updated_at": T1});
    app.events(ev.clone()).await;
    let r = app.events(ev.clone()).await;
    assert_eq!(r, json!({"accepted": 0, "unchanged": 1, "stale": 0}));
    // The same event twice in one batch, and once without an updated_at.
    app.events(json!([ev.clone(), ev])).await;
    app.events(json!({"id": "a", "stage": "production", "release": "1.0.0"}))
        .await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn reattribution_and_reclassification_move_the_defect() {
    let (app, _dir) = spawn_app().await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    app.events(json!({"id": "x", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    // Re-attributed to the release that really introduced it.
    app.events(json!({"id": "a", "stage": "qa", "release": "0.9.0", "updated_at": T2}))
        .await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 1.0);
    assert_eq!(m.value("bug_escape_release_defects", &rel("0.9.0")), 1.0);
    // Re-classified: found in production after all.
    app.events(json!({"id": "a", "stage": "production", "release": "0.9.0", "cause": "review", "updated_at": T3})).await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_defects",
            &[("release", "0.9.0"), ("stage", "qa")]
        ),
        0.0
    );
    assert_eq!(
        m.value(
            "bug_escape_defects",
            &[("release", "0.9.0"), ("stage", "production")]
        ),
        1.0
    );
    assert_eq!(m.value("bug_escape_rate_ratio", &rel("0.9.0")), 1.0);
    assert_eq!(
        m.value(
            "bug_escape_escaped_defects_by_cause",
            &[("release", "0.9.0"), ("cause", "review")]
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_duplicate_and_deleted_leave_every_count() {
    let (app, _dir) = spawn_app().await;
    for id in ["a", "b", "c", "keep"] {
        app.events(json!({"id": id, "stage": "production", "release": "1.0.0", "updated_at": T1}))
            .await;
    }
    app.events(json!([
        {"id": "a", "stage": "production", "release": "1.0.0", "status": "invalid", "updated_at": T2},
        {"id": "b", "stage": "production", "release": "1.0.0", "status": "duplicate", "updated_at": T2},
        {"id": "c", "deleted": true, "updated_at": T2}
    ]))
    .await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 1.0);
    assert_eq!(
        m.value(
            "bug_escape_escaped_defects_by_cause",
            &[("release", "1.0.0"), ("cause", "unknown")]
        ),
        1.0
    );
    // Valid again: counted again.
    app.events(json!({"id": "a", "stage": "production", "release": "1.0.0", "updated_at": T3}))
        .await;
    assert_eq!(
        app.metrics()
            .await
            .value("bug_escape_release_defects", &rel("1.0.0")),
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn an_older_update_never_wins_even_against_a_deletion() {
    let (app, _dir) = spawn_app().await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T2}))
        .await;
    let r = app
        .events(json!({"id": "a", "stage": "production", "release": "1.0.0", "updated_at": T1}))
        .await;
    assert_eq!(r["stale"], 1);
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_defects",
            &[("release", "1.0.0"), ("stage", "qa")]
        ),
        1.0
    );
    // A tombstone for a defect never seen blocks an older create.
    app.events(json!({"id": "gone", "deleted": true, "updated_at": T2}))
        .await;
    let r = app
        .events(json!({"id": "gone", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    assert_eq!(r["stale"], 1);
    // And a deletion of a stored defect blocks older updates.
    app.events(json!({"id": "a", "deleted": true, "updated_at": T3}))
        .await;
    let r = app
        .events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T2}))
        .await;
    assert_eq!(r["stale"], 1);
    assert_eq!(
        app.metrics()
            .await
            .get("bug_escape_release_defects", &rel("1.0.0")),
        None
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unchanged_update_still_advances_the_stored_time() {
    let (app, _dir) = spawn_app().await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    let r = app
        .events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T3}))
        .await;
    assert_eq!(r["unchanged"], 1);
    // T2 is newer than the first version but older than the unchanged one.
    let r = app
        .events(json!({"id": "a", "stage": "production", "release": "1.0.0", "updated_at": T2}))
        .await;
    assert_eq!(r["stale"], 1);
    app.stop().await;
}

#[tokio::test]
async fn on_equal_times_a_deletion_wins() {
    let (app, _dir) = spawn_app().await;
    app.events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    let r = app
        .events(json!({"id": "a", "deleted": true, "updated_at": T1}))
        .await;
    assert_eq!(r["accepted"], 1);
    let r = app
        .events(json!({"id": "a", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    assert_eq!(r["stale"], 1);
    // Equal times without a deletion: the later arrival wins.
    app.events(json!({"id": "b", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    let r = app
        .events(json!({"id": "b", "stage": "production", "release": "1.0.0", "updated_at": T1}))
        .await;
    assert_eq!(r["accepted"], 1);
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_release_escaped_defects", &rel("1.0.0")),
        1.0
    );
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.0.0")), 1.0);
    app.stop().await;
}

#[tokio::test]
async fn release_names_are_normalised_and_products_kept_apart() {
    let (app, _dir) = spawn_app().await;
    app.events(json!([
        {"id": "1", "stage": "qa", "release": "v2.4.0"},
        {"id": "2", "stage": "qa", "release": "payments@2.4.0-rc.1"},
        {"id": "3", "stage": "production", "release": "2.4.0+build.9"},
        {"id": "4", "stage": "production", "release": "2.4.0", "product": "search"}
    ]))
    .await;
    let m = app.metrics().await;
    assert_eq!(m.value("bug_escape_release_defects", &rel("2.4.0")), 3.0);
    assert_eq!(
        m.value(
            "bug_escape_release_defects",
            &[("product", "search"), ("release", "2.4.0")]
        ),
        1.0
    );
    assert_eq!(m.count("bug_escape_release_defects"), 2);
    app.stop().await;
}

#[tokio::test]
async fn unattributed_defects_are_shown_but_left_out_of_rates() {
    let (app, _dir) = spawn_app().await;
    app.events(json!([
        {"id": "1", "stage": "production"},
        {"id": "2", "stage": "qa", "release": null},
        {"id": "3", "stage": "qa", "release": "1.0.0"}
    ]))
    .await;
    let m = app.metrics().await;
    let un = |s| {
        m.value(
            "bug_escape_unattributed_defects",
            &[("product", "default"), ("stage", s)],
        )
    };
    assert_eq!(
        (un("production"), un("qa"), un("development")),
        (1.0, 1.0, 0.0)
    );
    assert_eq!(m.value("bug_escape_rate_ratio", &rel("1.0.0")), 0.0);
    assert_eq!(
        m.value("bug_escape_recent_defects", &[("product", "default")]),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn found_at_is_kept_when_an_update_omits_it() {
    let (app, _dir) = spawn_app().await;
    app.events(
        json!({"id": "a", "stage": "qa", "release": "1.0.0", "found_at": T1, "updated_at": T1}),
    )
    .await;
    app.events(json!({"id": "a", "stage": "production", "release": "1.0.0", "updated_at": T2}))
        .await;
    // Released right after T1: a defect found at T1 is within 30 days; one found
    // "now" would not be.
    app.release("default", "1.0.0", "2026-01-01T00:00:00Z")
        .await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_rate_at_age_ratio",
            &[("release", "1.0.0"), ("age", "30d")]
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_writers_on_the_same_defect_end_at_the_newest_version() {
    let (app, _dir) = spawn_app().await;
    let stages = [
        "development",
        "code_review",
        "automated_tests",
        "qa",
        "production",
    ];
    let mut tasks = Vec::new();
    for i in 0..60u32 {
        let client = app.client.clone();
        let url = format!("{}/api/v1/events", app.base);
        let stage = stages[(i as usize * 7) % stages.len()];
        let release = format!("1.{}.0", i % 3);
        let at = format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"id": "contested", "stage": stage, "release": release, "updated_at": at});
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Version 59 is the newest: stage index 59*7 % 5 = 3 (qa), release 1.2.0.
    let m = app.metrics().await;
    assert_eq!(m.count("bug_escape_release_defects"), 1);
    assert_eq!(m.value("bug_escape_release_defects", &rel("1.2.0")), 1.0);
    assert_eq!(
        m.value(
            "bug_escape_defects",
            &[("release", "1.2.0"), ("stage", "qa")]
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    app.events(json!([
        {"id": "1", "stage": "qa", "release": "1.0.0", "found_at": "2025-01-01T00:00:00Z"},
        {"id": "2", "stage": "production", "release": "1.0.0", "found_at": "2025-01-02T00:00:00Z", "cause": "release"},
        {"id": "3", "stage": "production"},
        {"id": "4", "deleted": true, "updated_at": T3}
    ]))
    .await;
    app.release("default", "1.0.0", "2024-12-31T00:00:00Z")
        .await;
    let before = app.get_text("/metrics", "text/plain").await;
    app.stop().await;
    let app = spawn_with(settings(dir.path())).await;
    let after = app.get_text("/metrics", "text/plain").await;
    let strip = |t: &str| {
        t.lines()
            .filter(|l| {
                !l.starts_with("bug_escape_events_")
                    && !l.starts_with("bug_escape_sync_")
                    && !l.starts_with("bug_escape_store_errors")
                    && !l.starts_with("bug_escape_connections")
                    && !l.starts_with("bug_escape_links_refused")
                    && !l.starts_with("process_")
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&before), strip(&after));
    // The tombstone survived too.
    let r = app
        .events(json!({"id": "4", "stage": "qa", "release": "1.0.0", "updated_at": T1}))
        .await;
    assert_eq!(r["stale"], 1);
    app.stop().await;
}

/// A reference model of docs/semantics.md checked against the exporter over a long,
/// reordered sequence of events.
#[tokio::test]
async fn random_event_sequences_match_a_reference_model() {
    let (app, _dir) = spawn_app().await;
    let stages = [
        "development",
        "code_review",
        "automated_tests",
        "qa",
        "production",
    ];
    // (updated_at, deleted, stage, release, status)
    let mut model: HashMap<u32, (u32, bool, usize, u32, &str)> = HashMap::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _round in 0..20 {
        let mut batch = Vec::new();
        for _ in 0..25 {
            let id = next(15) as u32;
            let t = next(40) as u32;
            let deleted = next(10) == 0;
            let stage = next(5) as usize;
            let release = next(3) as u32;
            let status = ["valid", "valid", "valid", "invalid", "duplicate"][next(5) as usize];
            let at = format!("2026-02-01T00:00:{t:02}Z");
            batch.push(if deleted {
                json!({"id": id.to_string(), "deleted": true, "updated_at": at})
            } else {
                json!({"id": id.to_string(), "stage": stages[stage], "release": format!("3.{release}.0"), "status": status, "updated_at": at})
            });
            // Apply the rules of docs/semantics.md in arrival order.
            let wins = match model.get(&id) {
                None => true,
                Some((old_t, old_del, ..)) => t > *old_t || (t == *old_t && (deleted || !old_del)),
            };
            if wins {
                let keep = model.get(&id).map(|o| (o.2, o.3, o.4));
                model.insert(
                    id,
                    match (deleted, keep) {
                        (true, Some((s, r, st))) => (t, true, s, r, st),
                        (true, None) => (t, true, 0, 0, "valid"),
                        (false, _) => (t, false, stage, release, status),
                    },
                );
            }
        }
        app.events(serde_json::Value::Array(batch)).await;
        let m = app.metrics().await;
        for release in 0..3u32 {
            let name = format!("3.{release}.0");
            let mut per_stage = [0u64; 5];
            for (_, del, s, r, st) in model.values() {
                if !del && *st == "valid" && *r == release {
                    per_stage[*s] += 1;
                }
            }
            let total: u64 = per_stage.iter().sum();
            let got = m.get("bug_escape_release_defects", &rel(&name));
            if total == 0 {
                assert_eq!(got, None, "release {name}");
                continue;
            }
            assert_eq!(got, Some(total as f64), "release {name}");
            for (i, s) in stages.iter().enumerate() {
                assert_eq!(
                    m.value("bug_escape_defects", &[("release", &name), ("stage", s)]),
                    per_stage[i] as f64,
                    "release {name} stage {s}"
                );
            }
            let rate = m.value("bug_escape_rate_ratio", &rel(&name));
            assert!((rate - per_stage[4] as f64 / total as f64).abs() < 1e-12);
        }
    }
    app.stop().await;
}

/// One defect of the reference model, as its winning event left it.
#[derive(Debug, Clone, Copy)]
struct Modeled {
    updated: u32,
    deleted: bool,
    product: u32,
    release: u32,
    stage: usize,
    found: u32,
}

/// Per product and release: (T, P, first found day).
type PerRelease = BTreeMap<u32, BTreeMap<u32, (u64, u64, u32)>>;

/// The reference model: every defect id with what its winning event says.
#[derive(Default)]
struct Model(HashMap<u32, Modeled>);

impl Model {
    /// Applies an event to `id` as the store orders them: a later
    /// `updated_at` wins, and at the same time a deletion wins; a deletion
    /// keeps what the defect was.
    fn apply(&mut self, id: u32, e: Modeled) {
        let wins = match self.0.get(&id) {
            None => true,
            Some(old) => {
                e.updated > old.updated || (e.updated == old.updated && (e.deleted || !old.deleted))
            }
        };
        if !wins {
            return;
        }
        let kept = match (e.deleted, self.0.get(&id)) {
            (true, Some(old)) => Modeled {
                updated: e.updated,
                deleted: true,
                ..*old
            },
            (true, None) => Modeled {
                product: 0,
                release: 0,
                stage: 0,
                found: 0,
                ..e
            },
            (false, _) => e,
        };
        self.0.insert(id, kept);
    }

    /// The live defects counted per product and release.
    fn per_release(&self) -> PerRelease {
        let mut per = PerRelease::new();
        for d in self.0.values().filter(|d| !d.deleted) {
            let e = per
                .entry(d.product)
                .or_default()
                .entry(d.release)
                .or_insert((0, 0, u32::MAX));
            e.0 += 1;
            e.1 += u64::from(d.stage == 4);
            e.2 = e.2.min(d.found);
        }
        per
    }
}

/// A xorshift generator of numbers below `n`: the same sequence every run.
fn xorshift() -> impl FnMut(u64) -> u64 {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// `2025-01-01` plus `d` days, as RFC 3339.
fn day(d: u32) -> String {
    let t = 1_735_689_600 + i64::from(d) * 86_400;
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random event over 50 ids, 3 products and 7 releases (one in eight a
/// deletion): its id, what the model records, and its JSON.
fn random_event(next: &mut impl FnMut(u64) -> u64) -> (u32, Modeled, serde_json::Value) {
    const STAGES: [&str; 5] = [
        "development",
        "code_review",
        "automated_tests",
        "qa",
        "production",
    ];
    let id = next(50) as u32;
    let t = next(60) as u32;
    let deleted = next(8) == 0;
    let product = next(3) as u32;
    let release = next(7) as u32;
    let stage = next(5) as usize;
    let found = release * 10 + next(15) as u32;
    let at = format!("2026-02-01T00:{:02}:{:02}Z", t / 60, t % 60);
    let body = if deleted {
        json!({"id": id.to_string(), "deleted": true, "updated_at": at})
    } else {
        json!({"id": id.to_string(), "product": format!("p{product}"),
               "release": format!("{release}.0.0"), "stage": STAGES[stage],
               "found_at": day(found), "updated_at": at})
    };
    let modeled = Modeled {
        updated: t,
        deleted,
        product,
        release,
        stage,
        found,
    };
    (id, modeled, body)
}

/// A product's releases newest first (first found, then name, both
/// descending).
fn ranked(rs: &BTreeMap<u32, (u64, u64, u32)>) -> Vec<(u32, (u64, u64, u32))> {
    let mut v: Vec<(u32, (u64, u64, u32))> = rs.iter().map(|(k, v)| (*k, *v)).collect();
    v.sort_by(|a, b| b.1.2.cmp(&a.1.2).then(b.0.cmp(&a.0)));
    v
}

/// The metrics hold what the model says with two products and two
/// releases each exported and a pool of one release.
fn check_exported(m: &Exposition, per: &PerRelease, round: u32) {
    // Products: newest release with defects first, then by name.
    let mut products: Vec<u32> = per.keys().copied().collect();
    products.sort_by_key(|p| (std::cmp::Reverse(ranked(&per[p])[0].1.2), *p));
    let exported_products = products.len().min(2);
    assert_eq!(
        m.value("bug_escape_products_left_out", &[]),
        (products.len() - exported_products) as f64,
        "round {round}"
    );
    for (i, p) in products.iter().enumerate() {
        let name = format!("p{p}");
        let releases = ranked(&per[p]);
        for (j, (r, (total, escaped, _))) in releases.iter().enumerate() {
            let labels = [("product", name.as_str()), ("release", &format!("{r}.0.0"))];
            let got = m.get("bug_escape_release_defects", &labels);
            if i < 2 && j < 2 {
                assert_eq!(got, Some(*total as f64), "round {round} {labels:?}");
                assert_eq!(
                    m.value("bug_escape_release_escaped_defects", &labels),
                    *escaped as f64,
                    "round {round} {labels:?}"
                );
            } else {
                assert_eq!(got, None, "round {round} {labels:?} is not exported");
            }
        }
        if i < 2 {
            let product = [("product", name.as_str())];
            assert_eq!(
                m.value("bug_escape_releases_left_out", &product),
                releases.len().saturating_sub(2) as f64,
                "round {round} {name}"
            );
            assert_eq!(
                m.value("bug_escape_recent_defects", &product),
                releases[0].1.0 as f64,
                "round {round} {name}: the pool is the newest release"
            );
        }
    }
}

/// The reference model with two releases exported per product, a pool of one
/// and two products: most releases are cold (in the store only) and come
/// back when events move defects between them, so the exported releases, the
/// left-out counts, the pool and the products chosen are checked against a
/// model of the whole history after every batch.
#[tokio::test]
async fn a_reference_model_holds_while_releases_go_cold_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_releases = 2;
    s.recent_releases = 1;
    s.max_products = 2;
    let app = spawn_with(s).await;
    let mut model = Model::default();
    let mut next = xorshift();
    for round in 0..24 {
        let mut batch = Vec::new();
        for _ in 0..20 {
            let (id, modeled, body) = random_event(&mut next);
            batch.push(body);
            model.apply(id, modeled);
        }
        app.events(serde_json::Value::Array(batch)).await;
        check_exported(&app.metrics().await, &model.per_release(), round);
    }
    app.stop().await;
}
