//! Linked records over HTTP and through `export` and `import`, with the real
//! binary: records joined by `links` count once on `/metrics`, `GET` a
//! defect shows its group, an export keeps the links and an import of it
//! counts the same; bad `links` are refused naming the field.

use serde_json::{Value, json};

use crate::helpers::{settings, spawn_with};
use crate::import::{escape_series, import, run};

/// `bug_escape_release_defects` of product `shop`, release `2.0`.
async fn shop_defects(app: &crate::helpers::TestApp) -> f64 {
    app.metrics()
        .await
        .get(
            "bug_escape_release_defects",
            &[("product", "shop"), ("release", "2.0")],
        )
        .unwrap_or(0.0)
}

#[tokio::test]
async fn linked_records_count_once_show_their_group_and_survive_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let db = s.db.clone();
    let app = spawn_with(s).await;
    let ev = |id: &str, stage: &str, updated: &str, links: Value| {
        json!({"id": id, "source": "tickets", "product": "shop", "stage": stage,
               "release": "2.0", "updated_at": updated, "links": links})
    };
    app.events(json!([
        ev("T-1", "production", "2026-01-01T00:00:00Z", json!([])),
        {"id": "M-1", "source": "monitor", "product": "shop", "stage": "production",
         "release": "2.0", "detected_by": "monitoring", "updated_at": "2026-01-01T00:00:00Z"},
        ev("T-2", "production", "2026-01-01T00:00:00Z", json!(null)),
    ]))
    .await;
    assert_eq!(shop_defects(&app).await, 3.0);
    // T-1 says it is M-1, and T-2 that it is T-1: a chain, one defect.
    let answer = app
        .events(json!([
            ev(
                "T-1",
                "production",
                "2026-01-02T00:00:00Z",
                json!([{"source": "monitor", "id": "M-1"}])
            ),
            ev(
                "T-2",
                "production",
                "2026-01-02T00:00:00Z",
                json!([{"source": "tickets", "id": "T-1"}])
            ),
        ]))
        .await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(shop_defects(&app).await, 1.0);
    let m = app.metrics().await;
    assert_eq!(
        m.value("bug_escape_linked_records", &[("product", "shop")]),
        3.0,
        "three records folded into one defect"
    );

    let got: Value = reqwest::get(format!("{}/api/v1/defects/tickets/T-2", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["links"],
        json!([{"source": "tickets", "id": "T-1"}]),
        "{got}"
    );
    assert_eq!(
        got["group"]["records"],
        json!([
            {"source": "monitor", "id": "M-1"},
            {"source": "tickets", "id": "T-1"},
            {"source": "tickets", "id": "T-2"},
        ]),
        "{got}"
    );
    assert_eq!(got["group"]["counted"]["release"], "2.0", "{got}");
    assert_eq!(
        got["group"]["counted"]["detected_by"], "monitoring",
        "{got}"
    );
    let original = escape_series(&app.metrics().await);

    app.stop().await;
    exports_restore(dir.path(), &db, &original).await;
}

/// An export of `db` in both formats, imported into an empty database,
/// counts `original` again.
async fn exports_restore(
    dir: &std::path::Path,
    db: &std::path::Path,
    original: &std::collections::BTreeMap<String, f64>,
) {
    let out = run(&["export", "--db", db.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(0));
    let ndjson = String::from_utf8(out.stdout).unwrap();
    assert!(
        ndjson.contains(r#""links":[{"id":"M-1","source":"monitor"}]"#),
        "{ndjson}"
    );
    assert!(
        !ndjson.contains(r#""source":"""#),
        "no group row exported: {ndjson}"
    );
    let csv_file = dir.join("export.csv");
    let out = run(
        &[
            "export",
            "--db",
            db.to_str().unwrap(),
            "--format",
            "csv",
            "--output",
            csv_file.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));

    let nd_file = dir.join("export.ndjson");
    std::fs::write(&nd_file, &ndjson).unwrap();
    for (name, file) in [("nd", &nd_file), ("csv", &csv_file)] {
        let restored = dir.join(format!("restored-{name}.db"));
        let (status, out, err) = import(&restored, &[file.to_str().unwrap()]);
        assert_eq!(status, 0, "{name}: {out}{err}");
        let mut s = settings(dir);
        s.db = restored;
        let server = spawn_with(s).await;
        assert_eq!(shop_defects(&server).await, 1.0, "{name}");
        assert_eq!(&escape_series(&server.metrics().await), original, "{name}");
        server.stop().await;
    }
}

#[tokio::test]
async fn bad_links_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    let many: Vec<Value> = (0..33)
        .map(|i| json!({"source": "s", "id": format!("x{i}")}))
        .collect();
    for (links, field, reason) in [
        (json!("M-1"), "links", "must be an array"),
        (json!([{"source": "s"}]), "links[0].id", "is required"),
        (
            json!([{"id": "1", "source": "s", "url": "u"}]),
            "links[0].url",
            "unknown field",
        ),
        (json!(["s/1"]), "links[0]", "must be an object"),
        (Value::Array(many), "links", "the limit is 32"),
    ] {
        let resp = app
            .post(
                "/api/v1/events",
                &json!({"id": "T-1", "stage": "qa", "links": links}),
            )
            .await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{body}");
        let text = body.to_string();
        assert!(
            text.contains(field) && text.contains(reason),
            "{field}: {text}"
        );
    }
    app.stop().await;
}

/// `n` links to records `monitor/M{from}`…, and `extra` ones.
fn links_to(from: usize, n: usize, extra: &[(&str, &str)]) -> Value {
    let mut out: Vec<Value> = (from..from + n)
        .map(|i| json!({"source": "monitor", "id": format!("M{i}")}))
        .collect();
    out.extend(extra.iter().map(|(s, i)| json!({"source": s, "id": i})));
    Value::Array(out)
}

#[tokio::test]
async fn links_past_a_groups_cap_are_refused_counted_and_every_product_shows_its_folded_records() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    let refused = |m: &crate::helpers::Exposition| {
        m.value("bug_escape_links_refused_total", &[("source", "generic")])
    };
    let ev = |id: &str, links: Value| {
        json!({"id": id, "source": "tickets", "product": "shop", "stage": "production",
               "release": "2.0", "links": links})
    };
    app.events(json!({"id": "Q-1", "product": "other", "stage": "qa", "release": "1.0"}))
        .await;
    let m = app.metrics().await;
    assert_eq!(refused(&m), 0.0, "every source from 0");
    assert_eq!(
        m.value("bug_escape_links_refused_total", &[("source", "sentry")]),
        0.0
    );
    assert_eq!(
        m.value("bug_escape_linked_records", &[("product", "other")]),
        0.0,
        "a product with data and no group has its sample"
    );
    // 31 records, then 62 (within the cap of 64)…
    let a = app.events(ev("PAY-A", links_to(0, 30, &[]))).await;
    let b = app
        .events(ev("PAY-B", links_to(30, 30, &[("tickets", "PAY-A")])))
        .await;
    assert_eq!(
        (a.get("links_refused"), b.get("links_refused")),
        (None, None)
    );
    assert_eq!(refused(&app.metrics().await), 0.0);
    // …then 68: PAY-C's six links are refused, stored nowhere, counted.
    let c = app
        .events(ev("PAY-C", links_to(70, 5, &[("tickets", "PAY-A")])))
        .await;
    assert_eq!(c["links_refused"], 6, "{c}");
    let m = app.metrics().await;
    assert_eq!(refused(&m), 6.0);
    assert_eq!(
        m.value("bug_escape_linked_records", &[("product", "shop")]),
        2.0,
        "PAY-A and PAY-B folded (the monitor records are not stored)"
    );
    assert_eq!(
        m.value(
            "bug_escape_release_escaped_defects",
            &[("product", "shop"), ("release", "2.0")]
        ),
        2.0,
        "PAY-A with PAY-B, and PAY-C alone"
    );
    assert_eq!(
        m.value("bug_escape_linked_records", &[("product", "other")]),
        0.0
    );
    let got: Value = reqwest::get(format!("{}/api/v1/defects/tickets/PAY-C", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        got.get("links").is_none() && got.get("group").is_none(),
        "{got}"
    );
    app.stop().await;
}

#[test]
fn an_import_past_a_groups_cap_says_how_many_links_it_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.ndjson");
    // 70 tickets each naming the same monitor record: the group reaches its
    // cap of 64 records (the hub among them) and the rest are refused.
    let lines: Vec<String> = (0..70)
        .map(|i| {
            json!({"id": format!("T-{i}"), "source": "tickets", "product": "shop",
                   "stage": "production", "release": "2.0",
                   "updated_at": "2026-01-01T00:00:00Z",
                   "links": [{"source": "monitor", "id": "hub"}]})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let (status, out, err) = import(&dir.path().join("db"), &[file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("imported 70,")
            && out.contains("; 7 links refused: their group was at its cap of 64 records"),
        "{out}"
    );
}
