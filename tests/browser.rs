//! The summary page in a real browser: headless Chromium loads `/` from the
//! exporter on loopback after defects were posted; the numbers read from the
//! rendered DOM (`data-*` attributes) are those of `/metrics`, and the page
//! links every operational page. A phone-sized screenshot is saved as
//! `target/test-artifacts/summary.png`. With several products in several
//! bands, the page reads worst first, has its legend and one trend point per
//! shown release, and at 390 px wide the document does not scroll sideways
//! (measured by a probe page that frames it; its screenshot is
//! `target/test-artifacts/summary-390.png`).
//!
//! Needs `chromium` on PATH (Debian package `chromium`, installed by `.ci/run`),
//! or `BUG_ESCAPE_CHROMIUM` naming the browser. Without it the test is skipped
//! with a note on the terminal (shown by a plain `cargo test`), unless
//! `BUG_ESCAPE_REQUIRE_E2E=1`, which makes it a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::{Config, Settings};

#[path = "support/skip.rs"]
mod skip;

/// The browser, when it is there and runs.
fn chromium() -> Option<PathBuf> {
    skip::tool("BUG_ESCAPE_CHROMIUM", &["chromium", "chromium-browser"]).filter(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs the browser headless on `url` with `extra` arguments.
fn browse(browser: &std::path::Path, extra: &[String], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium ran")
}

/// The value of `name{labels}` in classic exposition text.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let prefix = format!("{name}{{{}}} ", labels.join(","));
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("a number"))
}

/// The `data-{name}` attribute of the first element in `html`.
fn attr(html: &str, name: &str) -> Option<f64> {
    let re = regex::Regex::new(&format!(r#" data-{name}="([^"]*)""#)).unwrap();
    re.captures(html).map(|c| c[1].parse().expect("a number"))
}

/// Posts seven defects of `payments` (one without a release) and the times
/// of its releases 2.4.0 and 2.3.0.
async fn post_defects(client: &reqwest::Client, base: &str) {
    let mut events = Vec::new();
    for (i, (stage, release)) in [
        ("code_review", "2.4.0"),
        ("qa", "2.4.0"),
        ("qa", "2.4.0"),
        ("production", "2.4.0"),
        ("automated_tests", "2.3.0"),
        ("production", "2.3.0"),
        ("qa", ""),
    ]
    .iter()
    .enumerate()
    {
        let mut e =
            serde_json::json!({"id": format!("D-{i}"), "product": "payments", "stage": stage});
        if !release.is_empty() {
            e["release"] = (*release).into();
        }
        events.push(e);
    }
    for (body, path) in [
        (serde_json::Value::Array(events), "/api/v1/events"),
        (
            serde_json::json!([
                {"product": "payments", "release": "2.4.0", "released_at": "2026-01-10T09:00:00Z"},
                {"product": "payments", "release": "2.3.0", "released_at": "2025-12-01T09:00:00Z"}
            ]),
            "/api/v1/releases",
        ),
    ] {
        let resp = client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}

/// Loads `url` in the browser twice: its DOM, and a phone-sized screenshot
/// saved as `target/test-artifacts/summary.png`; returns both runs and the
/// screenshot's path.
async fn render(
    browser: &Path,
    url: &str,
) -> (std::process::Output, std::process::Output, PathBuf) {
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("summary.png");
    let _ = std::fs::remove_file(&shot);
    let out = tokio::task::spawn_blocking({
        let (browser, url, shot) = (browser.to_owned(), url.to_owned(), shot.clone());
        move || {
            let dom = browse(&browser, &["--dump-dom".to_owned()], &url);
            let png = browse(
                &browser,
                &[
                    format!("--screenshot={}", shot.display()),
                    "--window-size=412,1600".to_owned(),
                ],
                &url,
            );
            (dom, png)
        }
    });
    let (out, png) = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("chromium finished in time")
        .unwrap();
    (out, png, shot)
}

/// The product's section: pooled recent rate, its interval and sample size;
/// each release row: rate, interval, T and P — all as in `/metrics`.
fn assert_product_numbers(section: &str, metrics: &str) {
    let p = [("product", "payments")];
    for (data, family) in [
        ("recent-rate", "bug_escape_recent_rate_ratio"),
        ("recent-lower", "bug_escape_recent_rate_lower_ratio"),
        ("recent-upper", "bug_escape_recent_rate_upper_ratio"),
        ("recent-defects", "bug_escape_recent_defects"),
    ] {
        assert_eq!(attr(section, data), sample(metrics, family, &p), "{data}");
        assert!(attr(section, data).is_some(), "{data}: {section}");
    }
    for release in ["2.4.0", "2.3.0"] {
        let table = section
            .split("<table class=\"releases\"")
            .nth(1)
            .expect("a table");
        let row = table
            .split(&format!("data-release=\"{release}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for {release}: {section}"));
        let labels = [("product", "payments"), ("release", release)];
        for (data, family) in [
            ("rate", "bug_escape_rate_ratio"),
            ("lower", "bug_escape_rate_lower_ratio"),
            ("upper", "bug_escape_rate_upper_ratio"),
            ("defects", "bug_escape_release_defects"),
            ("escaped", "bug_escape_release_escaped_defects"),
        ] {
            let want = sample(metrics, family, &labels);
            assert!(want.is_some(), "{family}{labels:?} missing");
            assert_eq!(attr(row, data), want, "{release} {data}");
        }
    }
}

/// The funnel of the newest release (2.4.0), its failing stage with its
/// owner when there is one, and the one unattributed defect (at qa), as in
/// `/metrics`.
fn assert_funnel_and_data_quality(section: &str, metrics: &str) {
    let funnel = section.split("class=\"funnel\"").nth(1).expect("a funnel");
    for stage in [
        "development",
        "code_review",
        "automated_tests",
        "qa",
        "production",
    ] {
        let li = funnel
            .split(&format!("data-stage=\"{stage}\""))
            .nth(1)
            .expect("a funnel step");
        let labels = [
            ("product", "payments"),
            ("release", "2.4.0"),
            ("stage", stage),
        ];
        assert_eq!(
            attr(li, "defects"),
            sample(metrics, "bug_escape_defects", &labels),
            "{stage}"
        );
    }
    // The failing stage, when one is named, with its owner as in `/metrics`.
    let failing =
        regex::Regex::new(r#"class="failing" data-stage="([^"]+)" data-owner="([^"]+)""#).unwrap();
    assert!(section.contains("class=\"failing\""), "{section}");
    if let Some(c) = failing.captures(section) {
        assert_eq!(
            sample(
                metrics,
                "bug_escape_stage_owner_info",
                &[("product", "payments"), ("stage", &c[1]), ("owner", &c[2])]
            ),
            Some(1.0)
        );
    }
    // Data quality: one unattributed defect (at qa).
    assert_eq!(attr(section, "unattributed"), Some(1.0));
    assert_eq!(
        sample(
            metrics,
            "bug_escape_unattributed_defects",
            &[("product", "payments"), ("stage", "qa")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn the_summary_page_shows_the_numbers_of_the_metrics() {
    let Some(browser) = chromium() else {
        skip::skip(
            "tests/browser.rs (landing page in Chromium)",
            "chromium is not installed (not on PATH, or BUG_ESCAPE_CHROMIUM does not run)",
            "apt-get install chromium",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        db: dir.path().join("b.db"),
        ..Settings::default()
    };
    let app = Application::build(Config::from_settings(settings).unwrap())
        .await
        .unwrap();
    let addr = app.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    post_defects(&client, &base).await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let url = format!("{base}/");
    let (out, png, shot) = render(&browser, &url).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<h1>bug-escape-exporter</h1>"),
        "rendered DOM: {dom}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for link in ["metrics", "healthz", "readyz", "api/v1/openapi.json"] {
        assert!(
            dom.contains(&format!("href=\"{link}\"")),
            "no link to {link}: {dom}"
        );
    }
    assert!(dom.contains("name=\"viewport\""), "{dom}");
    // The product's section holds its numbers.
    let section = dom
        .split("<section class=\"product\" data-product=\"payments\"")
        .nth(1)
        .expect("a section for payments")
        .split("</section>")
        .next()
        .unwrap();
    assert_product_numbers(section, &metrics);
    assert_funnel_and_data_quality(section, &metrics);
    assert!(
        png.status.success() && std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "no screenshot at {}: {}",
        shot.display(),
        String::from_utf8_lossy(&png.stderr)
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// An exporter on loopback: its base URL, and how to stop it.
struct Server {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            db: dir.path().join("b.db"),
            ..Settings::default()
        };
        let app = Application::build(Config::from_settings(settings).unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        Self {
            base,
            stop,
            task,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// `(product, releases, defects per release, escaped per release)`: bands
/// leaking (settled), attention alert (uncertain leaking), healthy? and
/// strong?; 12 releases of `steady`, so the page shows its newest 10.
const BANDS: [(&str, usize, u32, u32); 4] = [
    ("steady", 12, 30, 2),
    ("leaky", 6, 30, 12),
    ("quiet", 1, 50, 0),
    ("edge", 3, 10, 3),
];

/// Posts [`BANDS`]' defects and release times (weekly from 2026-01-05).
async fn post_bands(client: &reqwest::Client, base: &str) {
    let (mut events, mut releases) = (Vec::new(), Vec::new());
    for (product, count, total, escaped) in BANDS {
        for r in 0..count {
            let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
                + chrono::Duration::days(7 * r as i64);
            let release = format!("1.{r}");
            releases.push(serde_json::json!({"product": product, "release": release,
                "released_at": format!("{day}T09:00:00Z")}));
            for n in 0..total {
                let stage = if n < escaped { "production" } else { "qa" };
                let found = format!("{}T12:00:00Z", day + chrono::Duration::days(1));
                events.push(serde_json::json!({"id": format!("{product}-{r}-{n}"),
                    "product": product, "release": release, "stage": stage,
                    "found_at": found, "updated_at": found}));
            }
        }
    }
    for (path, body) in [("/api/v1/events", events), ("/api/v1/releases", releases)] {
        let resp = client
            .post(format!("{base}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
}

/// The `data-product` names after `class="{class}"`, in document order.
fn names(dom: &str, class: &str) -> Vec<String> {
    dom.split(&format!("class=\"{class}\" data-product=\""))
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

/// The page framed 390 px wide by a probe page (both files, so the probe
/// may read the frame): the frame's `documentElement.scrollWidth` and its
/// number of product sections, read from the probe's DOM; a screenshot of
/// the probe is saved as `summary-390.png`.
async fn phone_width(browser: &Path, html: &str) -> (u32, usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("page.html"), html).unwrap();
    std::fs::write(
        dir.path().join("probe.html"),
        "<!doctype html><html><body style=\"margin:0\"><iframe id=\"f\" src=\"page.html\" \
         width=\"390\" height=\"2400\" style=\"border:0\"></iframe><pre id=\"out\">pending</pre>\
         <script>document.getElementById('f').onload=function(){var d=this.contentDocument;\
         document.getElementById('out').textContent='scrollWidth='+d.documentElement.scrollWidth\
         +' sections='+d.querySelectorAll('section.product').length;};</script></body></html>",
    )
    .unwrap();
    let url = format!("file://{}/probe.html", dir.path().display());
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts/summary-390.png");
    let browser = browser.to_owned();
    let (dom, _) = tokio::task::spawn_blocking(move || {
        let flags = |extra: &[String]| {
            let mut f = vec![
                "--allow-file-access-from-files".to_owned(),
                "--virtual-time-budget=10000".to_owned(),
            ];
            f.extend_from_slice(extra);
            f
        };
        let dom = browse(&browser, &flags(&["--dump-dom".to_owned()]), &url);
        let png = browse(
            &browser,
            &flags(&[
                format!("--screenshot={}", shot.display()),
                "--window-size=400,2400".to_owned(),
            ]),
            &url,
        );
        (dom, png)
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let re = regex::Regex::new(r"scrollWidth=(\d+) sections=(\d+)").unwrap();
    let c = re
        .captures(&dom)
        .unwrap_or_else(|| panic!("the probe did not measure: {dom}"));
    (c[1].parse().unwrap(), c[2].parse().unwrap())
}

#[tokio::test]
async fn the_summary_page_reads_worst_first_with_trends_and_fits_a_phone() {
    let Some(browser) = chromium() else {
        skip::skip(
            "tests/browser.rs (summary page order and phone width in Chromium)",
            "chromium is not installed (not on PATH, or BUG_ESCAPE_CHROMIUM does not run)",
            "apt-get install chromium",
        );
        return;
    };
    let server = Server::start().await;
    let client = reqwest::Client::new();
    post_defects(&client, &server.base).await;
    post_bands(&client, &server.base).await;
    // A monitoring record with a long id, the same defect as D-3 (counted
    // once): its escapes list must wrap at 390 px too.
    let long = "sentry-issue-0123456789abcdef0123456789abcdef0123456789abcdef";
    let resp = client
        .post(format!("{}/api/v1/events", server.base))
        .json(
            &serde_json::json!({"id": long, "source": "monitor", "product": "payments",
            "stage": "production", "release": "2.4.0",
            "links": [{"source": "generic", "id": "D-3"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (out, _, _) = render(&browser, &format!("{}/", server.base)).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    // Worst first: settled leaking; the attention alert's evidence (9 of
    // 30); uncertain leaking (2 of 6, a small sample); healthy?; strong?.
    let order = ["leaky", "edge", "payments", "steady", "quiet"];
    assert_eq!(names(&dom, "product"), order, "{dom}");
    assert_eq!(names(&dom, "glance-row"), order);
    let legend = dom.split("class=\"legend\"").nth(1).expect("a legend");
    assert!(legend.contains("Leaking</strong> alert fires"), "{legend}");
    assert!(legend.contains("no alert yet") || legend.contains("No alert yet"));
    // One trend point per shown release, oldest to newest.
    let steady = dom
        .split("<section class=\"product\" data-product=\"steady\"")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    let rows = steady.matches("<tr class=\"release").count();
    assert_eq!(rows, 10);
    let trend = steady
        .split("<svg class=\"trend\"")
        .nth(1)
        .expect("a trend");
    let trend = trend.split("</svg>").next().unwrap();
    assert!(trend.contains("data-points=\"10\""), "{trend}");
    assert_eq!(trend.matches("<circle class=\"point").count(), rows);
    assert!(trend.contains("<polyline") && trend.contains("<title>Escape rate of the 10"));
    let first = trend.find("data-release=\"1.2\"").unwrap();
    assert!(
        first < trend.find("data-release=\"1.11\"").unwrap(),
        "oldest first"
    );
    // The escapes of payments' newest release: the group once, with both records.
    let payments = dom
        .split("<section class=\"product\" data-product=\"payments\"")
        .nth(1)
        .unwrap();
    assert!(
        payments.contains("<h3>Escapes of 2.4.0</h3>")
            && payments.contains("data-escaped=\"1\"")
            && payments.contains("<li data-records=\"2\">"),
        "{payments}"
    );
    // At 390 px the document is no wider than the screen.
    let html = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap();
    let (width, sections) = phone_width(&browser, &html.text().await.unwrap()).await;
    assert_eq!(sections, order.len());
    assert!(width <= 390, "the page scrolls sideways at 390 px: {width}");
    server.stop().await;
}
