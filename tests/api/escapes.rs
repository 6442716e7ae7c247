//! A release's escapes, each link group with its records, over real HTTP
//! (`GET /api/v1/releases/{product}/{release}/escapes`), on the summary page
//! and from `report --escapes` of the real binary on the running server's
//! database: the same escapes, bounded, with what is left out counted.

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{TestApp, settings, spawn_with};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// `shop 2.0`: a Sentry-like record and the ticket made from it (one group,
/// found first), two tickets alone, a QA ticket (caught, not escaped), a
/// deleted one, and a production defect of another release.
async fn seeded() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    let ev = |source: &str, id: &str, stage: &str, found: &str| {
        json!({"id": id, "source": source, "product": "shop", "stage": stage,
               "release": "2.0", "found_at": found, "updated_at": "2026-01-05T00:00:00Z"})
    };
    let mut linked = ev("tickets", "PAY-1", "production", "2026-01-02T00:00:00Z");
    linked["links"] = json!([{"source": "monitor", "id": "4711"}]);
    linked["cause"] = json!("coverage");
    let mut gone = ev("tickets", "PAY-9", "production", "2026-01-01T00:00:00Z");
    gone["deleted"] = json!(true);
    let mut older = ev("tickets", "OLD-1", "production", "2026-01-01T00:00:00Z");
    older["release"] = json!("1.0");
    let mut caught = ev("tickets", "QA-3", "qa", "2026-01-01T00:00:00Z");
    caught["product"] = json!("caught");
    app.events(json!([
        ev("monitor", "4711", "production", "2026-01-01T00:00:00Z"),
        linked,
        ev("tickets", "PAY-2", "production", "2026-01-03T00:00:00Z"),
        ev("tickets", "a/b c", "production", "2026-01-04T00:00:00Z"),
        ev("tickets", "QA-1", "qa", "2026-01-01T00:00:00Z"),
        gone,
        older,
        caught,
    ]))
    .await;
    (app, dir)
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn records(escape: &Value) -> Vec<String> {
    escape["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["source"].as_str().unwrap(),
                r["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn the_escapes_of_a_release_list_each_group_once_with_its_records_in_pages() {
    let (app, _dir) = seeded().await;
    let m = app.metrics().await;
    assert_eq!(
        m.value(
            "bug_escape_release_escaped_defects",
            &[("product", "shop"), ("release", "2.0")]
        ),
        3.0
    );
    let (status, all) = get(&app, "/api/v1/releases/shop/2.0/escapes").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["escaped"], 3, "as /metrics counts: {all}");
    assert_eq!(all["next_offset"], Value::Null, "{all}");
    let escapes = all["escapes"].as_array().unwrap();
    let listed: Vec<Vec<String>> = escapes.iter().map(records).collect();
    assert_eq!(
        listed,
        [
            vec!["monitor 4711".to_owned(), "tickets PAY-1".to_owned()],
            vec!["tickets PAY-2".to_owned()],
            vec!["tickets a/b c".to_owned()],
        ]
    );
    assert_eq!(
        escapes[0]["found_at"], "2026-01-01T00:00:00Z",
        "the group's earliest"
    );
    assert_eq!(
        escapes[0]["cause"], "coverage",
        "the ticket's, which a person set"
    );
    assert_eq!(escapes[0]["stage"], "production");
    pages_and_bad_parameters(&app).await;
    on_the_summary_page(&app).await;
    from_the_report(&app, &all);
    app.stop().await;
}

/// Pages: the count stays, the next offset says where to go on; a bad
/// parameter is a 422 naming it.
async fn pages_and_bad_parameters(app: &TestApp) {
    let (_, first) = get(app, "/api/v1/releases/shop/2.0/escapes?limit=2").await;
    assert_eq!(
        (first["escaped"].clone(), first["next_offset"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(first["escapes"].as_array().unwrap().len(), 2);
    let (_, last) = get(app, "/api/v1/releases/shop/2.0/escapes?limit=2&offset=2").await;
    assert_eq!(records(&last["escapes"][0]), ["tickets a/b c"]);
    assert_eq!(last["next_offset"], Value::Null);
    let (status, none) = get(app, "/api/v1/releases/caught/2.0/escapes").await;
    assert_eq!(
        (status, none["escaped"].clone(), none["escapes"].clone()),
        (200, json!(0), json!([])),
        "defects, all caught"
    );
    let (status, unknown) = get(app, "/api/v1/releases/shop/9.9/escapes").await;
    assert_eq!(
        (status, unknown["error"].as_str()),
        (404, Some("not_found")),
        "{unknown}"
    );
    assert!(
        unknown["reason"]
            .as_str()
            .unwrap()
            .contains("release `9.9` of product `shop` counts no defect"),
        "{unknown}"
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("offset=-1", "offset"),
        ("limit=1&limit=2", "limit"),
        ("page=1", "page"),
    ] {
        let (status, body) = get(app, &format!("/api/v1/releases/shop/2.0/escapes?{query}")).await;
        assert_eq!(
            (status, body["error"].as_str(), body["field"].as_str()),
            (422, Some("invalid_field"), Some(field)),
            "{query}: {body}"
        );
    }
}

async fn on_the_summary_page(app: &TestApp) {
    // The summary page lists them under the release's funnel, each record a
    // link to the read API, a name with `/` kept in its path segment.
    let html = app.get_text("/", "text/html").await;
    for part in [
        "<h3>Escapes of 2.0</h3>",
        "data-escaped=\"3\"",
        "<li data-records=\"2\"><a href=\"api/v1/defects/monitor/4711\">monitor 4711</a> = \
         <a href=\"api/v1/defects/tickets/PAY-1\">tickets PAY-1</a> <small>production, \
         2026-01-01</small></li>",
        "<a href=\"api/v1/defects/tickets/a%2Fb%20c\">tickets a/b c</a>",
    ] {
        assert!(html.contains(part), "{part}\n{html}");
    }
    assert!(!html.contains("escapes-more"), "all three shown");
    let (status, linked) = get(app, "/api/v1/defects/tickets/a%2Fb%20c").await;
    assert_eq!((status, linked["id"].as_str()), (200, Some("a/b c")));
}

fn from_the_report(app: &TestApp, all: &Value) {
    // `report --escapes` of the binary, beside the running server.
    let db = app.dir.join("bug-escape.db");
    let report = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["report", "--db", db.to_str().unwrap()])
            .args(["--product", "shop", "--release", "2.0", "--escapes"])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(0), "{extra:?}: {text}{err}");
        text
    };
    let json: Value = serde_json::from_str(&report(&["--format", "json"])).unwrap();
    assert_eq!(
        &json, all,
        "report --escapes --format json is the API's answer"
    );
    let table = report(&["--limit", "2"]);
    assert!(
        table.starts_with("Escapes of shop 2.0: 3 (each counted once"),
        "{table}"
    );
    assert!(table.contains("monitor 4711 = tickets PAY-1"), "{table}");
    assert!(
        table.ends_with("1 more: report --product shop --release 2.0 --escapes --offset 2\n"),
        "{table}"
    );
    let csv = report(&["--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "a header and a row per record: {csv}");
    assert!(
        lines[1].starts_with("shop,2.0,1,monitor,4711,production,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("shop,2.0,1,tickets,PAY-1,production,"),
        "{csv}"
    );
    assert!(lines[4].starts_with("shop,2.0,3,tickets,a/b c,"), "{csv}");
    let out = Command::new(BIN)
        .args(["report", "--db", db.to_str().unwrap(), "--escapes"])
        .args(["--product", "shop", "--release", "9.9"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("counts no defect"), "{err}");
}

#[tokio::test]
async fn the_summary_shows_a_few_escapes_and_links_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    let many: Vec<Value> = (0..8)
        .map(|i| {
            json!({"id": format!("E-{i}"), "product": "p&q", "stage": "production",
                        "release": "1.0"})
        })
        .collect();
    app.events(Value::Array(many)).await;
    let html = app.get_text("/", "text/html").await;
    assert_eq!(html.matches("<li data-records=\"1\">").count(), 5, "{html}");
    assert!(
        html.contains("data-more=\"3\">3 more: <a href=\"api/v1/releases/p%26q/1.0/escapes\">"),
        "{html}"
    );
    assert!(!html.contains("p&q/"), "escaped: {html}");
    app.stop().await;
}

#[test]
fn report_escapes_needs_its_product_and_release() {
    for args in [
        vec!["--escapes"],
        vec!["--escapes", "--product", "shop"],
        vec!["--release", "2.0"],
        vec!["--limit", "5"],
        vec![
            "--escapes",
            "--product",
            "p",
            "--release",
            "r",
            "--limit",
            "0",
        ],
    ] {
        let out = Command::new(BIN)
            .arg("report")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("--"), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn the_page_lists_escaped_records_only_to_callers_the_read_api_answers() {
    // With an API token, loopback alone no longer reads the API: the page
    // keeps the counts and leaves the records to callers with the token.
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.api_token = Some("s3cret-token".into());
    let app = spawn_with(s).await;
    let ev = json!([{"id": "PAY-1", "source": "tickets", "product": "shop",
                     "stage": "production", "release": "2.0",
                     "updated_at": "2026-01-05T00:00:00Z"}]);
    let r = app
        .client
        .post(format!("{}/api/v1/events", app.base))
        .bearer_auth("s3cret-token")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = |token: Option<&'static str>| {
        let mut req = app.client.get(format!("{}/", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let open = page(None).await;
    assert!(open.contains("shop"), "{open}");
    assert!(!open.contains("tickets PAY-1"), "{open}");
    assert!(!open.contains("Escapes of 2.0"), "{open}");
    let wrong = page(Some("wrong")).await;
    assert!(!wrong.contains("tickets PAY-1"));
    let with_token = page(Some("s3cret-token")).await;
    assert!(with_token.contains("tickets PAY-1"), "{with_token}");
}
