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

/// A defect of `product`'s `release` at `stage`, found at `found` (RFC
/// 3339; now when empty).
fn defect(id: String, product: &str, release: &str, stage: &str, found: &str) -> Value {
    let mut e = json!({"id": id, "product": product, "release": release, "stage": stage});
    if !found.is_empty() {
        e["found_at"] = found.into();
        e["updated_at"] = found.into();
    }
    e
}

/// `(product, release, defects, escaped, release day)` rows, the release
/// times, and 55 fillers (one fresh defect at qa each, so the export order
/// puts them first) posted to `app`.
async fn post_bands(app: &TestApp, hostile: &str) {
    let rows: [(&str, &str, u32, u32, &str); 9] = [
        ("leaky", "9.0", 30, 15, "2025-05-01"),
        ("maybe", "1.0", 12, 3, "2025-05-01"),
        ("tiny", "1.0", 5, 2, "2025-05-01"),
        ("fine", "1.0", 300, 3, "2025-05-01"),
        ("regressing", "r1", 20, 2, "2025-01-01"),
        ("regressing", "r2", 20, 2, "2025-02-01"),
        ("regressing", "r3", 20, 8, "2025-03-01"),
        ("regressing", "r4", 20, 2, "2025-04-01"),
        (hostile, "<b>r</b>", 2, 1, "2025-05-01"),
    ];
    let mut events = Vec::new();
    let mut releases = Vec::new();
    for (product, release, total, escaped, day) in rows {
        let found = format!("{day}T12:00:00Z");
        for n in 0..total {
            let stage = if n < escaped { "production" } else { "qa" };
            events.push(defect(
                format!("{product}-{release}-{n}"),
                product,
                release,
                stage,
                &found,
            ));
        }
        releases.push(json!({"product": product, "release": release, "released_at": format!("{day}T09:00:00Z")}));
    }
    for i in 0..55 {
        events.push(defect(
            format!("f{i}"),
            &format!("f{i:02}"),
            "1.0",
            "qa",
            "",
        ));
    }
    app.events(Value::Array(events)).await;
    let resp = app.post("/api/v1/releases", &Value::Array(releases)).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

/// The `data-product` names of `html`'s elements with `class="{class}"`, in order.
fn products_of(html: &str, class: &str) -> Vec<String> {
    html.split(&format!("class=\"{class}\" data-product=\""))
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

/// The HTML of `product`'s section.
fn section<'a>(html: &'a str, product: &str) -> &'a str {
    html.split(&format!(
        "<section class=\"product\" data-product=\"{product}\""
    ))
    .nth(1)
    .unwrap_or_else(|| panic!("no section for {product}"))
    .split("</section>")
    .next()
    .unwrap()
}

#[tokio::test]
async fn products_read_worst_first_across_pages_with_one_band_language() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(settings(dir.path())).await;
    let hostile = "<i>\"x\"&'</i>";
    let escaped = "&lt;i&gt;&quot;x&quot;&amp;&#39;&lt;/i&gt;";
    post_bands(&app, hostile).await;
    let (status, first) = get(&app, "/").await;
    assert_eq!(status, 200);
    // Worst first: settled leaking; the attention alert's evidence (14 of
    // 80, lower bound above 10 %); uncertain by rate (50 %, 40 %, 25 %);
    // then strong (1 %) before the fillers (0 %, by name) — sorted before
    // paging, though the fillers come first in the export order.
    let order = products_of(&first, "product");
    let worst = [
        "leaky",
        "regressing",
        escaped,
        "tiny",
        "maybe",
        "fine",
        "f00",
        "f01",
    ];
    assert_eq!(order[..8], worst, "{order:?}");
    assert_eq!(order.len(), PAGE_PRODUCTS);
    assert_eq!(products_of(&first, "glance-row")[..8], worst);
    let (_, second) = get(&app, "/?page=2").await;
    let rest = products_of(&second, "product");
    assert_eq!(rest.len(), 61 - PAGE_PRODUCTS);
    assert!(rest.iter().all(|p| p.starts_with('f')), "{rest:?}");
    assert_eq!(rest[0], "f44");

    assert_badges(&first);
    assert_trend_and_regression(section(&first, "regressing"));
    assert_escaped(&first, escaped);
    app.stop().await;
}

/// Settled against uncertain badges, the small sample on the headline, the
/// attention alert's marker and the legend.
fn assert_badges(first: &str) {
    // Settled against uncertain; the small sample on the headline.
    assert!(section(first, "leaky").contains("class=\"badge leaking settled\""));
    let maybe = section(first, "maybe");
    assert!(
        maybe.contains("class=\"badge leaking uncertain\""),
        "{maybe}"
    );
    assert!(maybe.contains(">leaking?<"), "{maybe}");
    assert!(maybe.contains("uncertain: the point estimate suggests leaking; the 95 % interval spans 8.9\u{a0}%–53.2\u{a0}% (healthy to leaking); no alert yet"), "{maybe}");
    assert!(!maybe.contains("data-small-sample=\"true\""));
    let tiny = section(first, "tiny");
    let headline = tiny
        .split("<div class=\"recent")
        .nth(1)
        .unwrap()
        .split("</div>")
        .next()
        .unwrap();
    assert!(
        headline.contains("data-small-sample=\"true\""),
        "{headline}"
    );
    assert!(headline.contains("class=\"small-sample\""), "{headline}");
    assert!(
        headline.contains("fewer than min_defects (10)"),
        "{headline}"
    );
    let regressing = section(first, "regressing");
    assert!(
        regressing.contains("data-alert=\"attention\""),
        "{regressing}"
    );
    // An uncertain badge beside a firing alert says which alert fires.
    assert!(
        regressing.contains("(attention to leaking); the attention alert fires"),
        "{regressing}"
    );
    assert!(first.contains("class=\"legend\""));
}

/// Release dates, the trend (oldest first) and the regression at 30d.
fn assert_trend_and_regression(regressing: &str) {
    // Release dates, the trend (oldest first) and the regression at 30d:
    // r3's 40 % against the mean of r1's and r2's 10 %.
    assert!(
        regressing.contains("<td class=\"date\">2025-03-01</td>"),
        "{regressing}"
    );
    assert!(regressing.contains("data-points=\"4\""), "{regressing}");
    let circle =
        regex::Regex::new(r#"<circle class="point[^"]*"[^>]*data-release="([^"]*)""#).unwrap();
    let circles: Vec<&str> = circle
        .captures_iter(regressing)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(circles, ["r1", "r2", "r3", "r4"]);
    assert!(
        regressing.contains("class=\"point regressed\" "),
        "{regressing}"
    );
    assert!(
        regressing.contains("class=\"regression\" data-release=\"r3\" data-age=\"30d\" data-rate=\"0.4\" data-previous=\"0.1\""),
        "{regressing}"
    );
    assert!(regressing.contains("<tr class=\"release leaking regressed\" data-release=\"r3\""));
}

/// Hostile names are escaped in the comparison table and the trends.
fn assert_escaped(first: &str, escaped: &str) {
    // Hostile names are escaped in the comparison table and the trends.
    assert!(
        !first.contains("<i>") && !first.contains("<b>r"),
        "unescaped"
    );
    let row = first
        .split(&format!("class=\"glance-row\" data-product=\"{escaped}\""))
        .nth(1)
        .unwrap();
    assert!(row.split("</tr>").next().unwrap().contains(&format!(
        "shown releases of {escaped}, oldest to newest: &lt;b&gt;r&lt;/b&gt; 50.0"
    )));
    let own = section(first, escaped);
    assert!(own.contains("data-release=\"&lt;b&gt;r&lt;/b&gt;\" data-rate=\"0.5\"><title>&lt;b&gt;r&lt;/b&gt;: 50.0"), "{own}");
}
