//! The summary page at `/` stays small and quick with many products (issue
//! 21, item 6): at most `PAGE_PRODUCTS` products a page, a line saying how
//! many are not shown with a link to the read API, `?page=N` for the rest,
//! and the probes answer while several pages are built at once.

use std::time::{Duration, Instant};

use bug_escape_exporter::http::pages::PAGE_PRODUCTS;
use serde_json::{Value, json};

use crate::helpers::{TestApp, settings, spawn_with};

/// Products the big store holds.
const PRODUCTS: usize = 10_000;

/// An exporter holding [`PRODUCTS`] products (two releases each), all
/// exported, written through the real API.
async fn many_products(dir: &std::path::Path) -> TestApp {
    let mut s = settings(dir);
    s.max_products = 2 * PRODUCTS;
    let app = spawn_with(s).await;
    for chunk in (0..PRODUCTS).collect::<Vec<_>>().chunks(1_000) {
        let events: Vec<Value> = chunk
            .iter()
            .flat_map(|i| {
                [("1.0", "qa"), ("2.0", "production")].map(|(release, stage)| {
                    json!({"id": format!("D-{i}-{release}"), "product": format!("p{i:05}"),
                           "release": release, "stage": stage})
                })
            })
            .collect();
        let resp = app.post("/api/v1/events", &Value::Array(events)).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    }
    app
}

/// `GET path` → (status, body).
async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let resp = app
        .client
        .get(format!("{}{path}", app.base))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn sections(html: &str) -> usize {
    html.matches("<section class=\"product\"").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_products_give_bounded_pages_and_the_probes_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let app = many_products(dir.path()).await;

    let started = Instant::now();
    let (status, first) = get(&app, "/").await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(sections(&first), PAGE_PRODUCTS);
    assert!(first.len() < 400_000, "{} bytes", first.len());
    let not_shown = PRODUCTS - PAGE_PRODUCTS;
    for part in [
        format!("Products 1–{PAGE_PRODUCTS} of {PRODUCTS}"),
        format!("data-not-shown=\"{not_shown}\""),
        format!("{not_shown} not shown here"),
        "href=\"api/v1/releases\"".to_owned(),
        "rel=\"next\" href=\"?page=2\"".to_owned(),
    ] {
        assert!(first.contains(&part), "{part}");
    }
    assert!(!first.contains("rel=\"prev\""));

    // The last page, one past it, and the products of page 2 are the next
    // ones in the export order (no product on two pages).
    let last = PRODUCTS / PAGE_PRODUCTS;
    let (status, end) = get(&app, &format!("/?page={last}")).await;
    assert_eq!(status, 200);
    assert_eq!(sections(&end), PAGE_PRODUCTS);
    assert!(end.contains(&format!("rel=\"prev\" href=\"?page={}\"", last - 1)));
    assert!(!end.contains("rel=\"next\""));
    let (status, past) = get(&app, &format!("/?page={}", last + 1)).await;
    assert_eq!(status, 200);
    assert_eq!(sections(&past), 0);
    assert!(past.contains("past the last page"), "{past}");
    let names = |html: &str| -> Vec<String> {
        html.split("<section class=\"product\" data-product=\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_owned())
            .collect()
    };
    let (_, second) = get(&app, "/?page=2").await;
    let (one, two) = (names(&first), names(&second));
    assert_eq!(two.len(), PAGE_PRODUCTS);
    assert!(one.iter().all(|n| !two.contains(n)), "{one:?} {two:?}");

    // Bad parameters: 422 naming them.
    for (query, field) in [
        ("?page=0", "page"),
        ("?page=x", "page"),
        ("?page=-1", "page"),
        ("?page=1&page=2", "page"),
        ("?pgae=2", "pgae"),
    ] {
        let (status, body) = get(&app, &format!("/{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }

    // Eight clients asking for `/` over and over; the probe answers within
    // a second each time meanwhile.
    let mut load = Vec::new();
    for _ in 0..8 {
        let (client, url) = (app.client.clone(), format!("{}/", app.base));
        load.push(tokio::spawn(async move {
            for _ in 0..10 {
                let resp = client.get(&url).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                let _ = resp.bytes().await.unwrap();
            }
        }));
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let (status, _) = get(&app, "/healthz").await;
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in load {
        task.await.unwrap();
    }
    eprintln!(
        "GET / with {PRODUCTS} products: {took:?}; slowest /healthz under 8 clients: {slowest:?}"
    );
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    app.stop().await;
}
