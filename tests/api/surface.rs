//! The standard exporter surface served in-process: gzip on `/metrics`, the
//! process metrics, the telemetry path.

use std::io::Read;

use crate::helpers::{Exposition, settings, spawn_app, spawn_with};

#[tokio::test]
async fn metrics_are_gzipped_for_a_client_that_accepts_it_and_plain_otherwise() {
    let (app, _dir) = spawn_app().await;
    let url = format!("{}/metrics", app.base);
    let resp = app
        .client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let gz = resp.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("a gzip stream");
    let parsed = Exposition::classic(&text);
    assert_eq!(parsed.count("bug_escape_build_info"), 1, "{text}");

    // OpenMetrics is compressed the same way.
    let resp = app
        .client
        .get(&url)
        .header("accept-encoding", "gzip")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");

    let plain = app.client.get(&url).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let text = plain.text().await.unwrap();
    assert!(
        text.contains("# TYPE bug_escape_build_info gauge"),
        "{text}"
    );

    // Other routes are never compressed.
    for path in ["/", "/healthz", "/readyz", "/nowhere"] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert!(resp.headers().get("content-encoding").is_none(), "{path}");
    }
    // The JSON 404 is still JSON with gzip accepted.
    let resp = app
        .client
        .get(format!("{}/nowhere", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.expect("JSON 404");
    assert_eq!(body["error"], "not_found");
    app.stop().await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn process_metrics_are_present_and_sane() {
    let (app, _dir) = spawn_app().await;
    let m = app.metrics().await;
    let rss = m.value("process_resident_memory_bytes", &[]);
    let vsz = m.value("process_virtual_memory_bytes", &[]);
    let open = m.value("process_open_fds", &[]);
    let max = m.value("process_max_fds", &[]);
    let cpu = m.value("process_cpu_seconds_total", &[]);
    let start = m.value("process_start_time_seconds", &[]);
    assert!(rss > 0.0 && vsz >= rss, "rss {rss}, vsz {vsz}");
    assert!(open > 0.0 && open < max, "open {open}, max {max}");
    assert!(cpu >= 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now + 1.0 && start > now - 3600.0,
        "start {start}, now {now}"
    );
    // Also in OpenMetrics, with the counter's `_total`.
    let om = app
        .get_text("/metrics", "application/openmetrics-text; version=1.0.0")
        .await;
    assert!(om.contains("# TYPE process_cpu_seconds counter"), "{om}");
    assert!(om.contains("\nprocess_cpu_seconds_total "), "{om}");
    app.stop().await;
}

#[tokio::test]
async fn the_telemetry_path_moves_the_metrics_and_the_landing_link() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.telemetry_path = "/custom/metrics".into();
    let app = spawn_with(s).await;
    let text = app.get_text("/custom/metrics", "text/plain").await;
    assert!(text.contains("bug_escape_build_info"), "{text}");
    let resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.expect("JSON 404");
    assert_eq!(body["error"], "not_found");
    let landing = app.get_text("/", "text/html").await;
    assert!(
        landing.contains(r#"<a href="custom/metrics">"#),
        "{landing}"
    );
    app.stop().await;
}

#[test]
fn a_telemetry_path_must_be_absolute_and_clash_with_no_route() {
    use bug_escape_exporter::config::{Config, Settings};
    let check = |p: &str| {
        let s = Settings {
            telemetry_path: p.into(),
            ..Settings::default()
        };
        Config::from_settings(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert!(check("/metrics").is_ok());
    assert!(check("/prometheus/metrics").is_ok());
    for bad in [
        "metrics",
        "",
        "/",
        "/healthz",
        "/readyz",
        "/api/v1/events",
        "/api",
        "/webhooks/x",
        "/m/",
        "/m?x",
        "/{x}",
        "/a b",
        "//m",
    ] {
        let e = check(bad).expect_err(bad);
        assert!(e.starts_with("telemetry_path:"), "{bad}: {e}");
    }
}
