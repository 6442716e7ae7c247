//! The landing page in a real browser: headless Chromium loads `/` from the
//! exporter on loopback, and the rendered DOM links every operational page.
//!
//! Needs `chromium` on PATH (Debian package `chromium`, installed by `.ci/run`),
//! or `BUG_ESCAPE_CHROMIUM` naming the browser. Without it the test is skipped
//! with a note on the terminal (shown by a plain `cargo test`), unless
//! `BUG_ESCAPE_REQUIRE_E2E=1`, which makes it a failure.

use std::path::PathBuf;
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

#[tokio::test]
async fn the_landing_page_renders_and_links_the_endpoints() {
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
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking({
        let profile = profile.path().to_owned();
        move || {
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
                    "--timeout=20000",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("--dump-dom")
                .arg(url)
                .output()
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("chromium finished in time")
        .unwrap()
        .expect("chromium ran");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<h1>bug-escape-exporter</h1>"),
        "rendered DOM: {dom}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for link in ["metrics", "healthz", "readyz"] {
        assert!(
            dom.contains(&format!("href=\"{link}\"")),
            "no link to {link}: {dom}"
        );
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
