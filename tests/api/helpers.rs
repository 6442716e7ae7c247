//! `spawn_app` and readers of the exposition.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::{Config, Settings};
use serde_json::Value;
use tokio::sync::oneshot;

/// A running exporter.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The directory holding the database.
    #[allow(dead_code)]
    pub dir: PathBuf,
    /// The store handle, to inject faults (dropped before stopping: the
    /// writer closes once every handle is gone).
    store: Option<bug_escape_exporter::store::Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Default settings with a temp database.
pub fn settings(dir: &Path) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        db: dir.join("bug-escape.db"),
        ..Settings::default()
    }
}

/// Spawns the exporter with default settings in a fresh temp dir.
pub async fn spawn_app() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = spawn_with(settings(dir.path())).await;
    (app, dir)
}

/// Spawns the exporter with `settings`.
pub async fn spawn_with(settings: Settings) -> TestApp {
    let config = Config::from_settings(settings).expect("valid config");
    let app = Application::build(config).await.expect("app builds");
    run_built(app)
}

/// Runs an exporter already built (for tests that build it themselves).
pub fn run_built(app: Application) -> TestApp {
    let dir = app.db().parent().expect("db in a dir").to_path_buf();
    let addr = app.local_addr().expect("bound");
    let store = app.store();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        dir,
        store: Some(store),
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until the store is closed.
    pub async fn stop(mut self) {
        self.store = None;
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server ran cleanly");
        }
    }

    /// Injects a fault into the store's writer.
    #[allow(dead_code)]
    pub fn inject(&self, fault: bug_escape_exporter::store::Fault) {
        if let Some(s) = &self.store {
            s.inject(fault);
        }
    }

    /// POSTs JSON to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POSTs events and asserts a 200; returns the summary.
    pub async fn events(&self, body: Value) -> Value {
        let resp = self.post("/api/v1/events", &body).await;
        let status = resp.status();
        let json: Value = resp.json().await.expect("JSON answer");
        assert_eq!(status, 200, "events refused: {json}");
        json
    }

    /// POSTs a release time and asserts a 200.
    pub async fn release(&self, product: &str, release: &str, at: &str) {
        let resp = self
            .post(
                "/api/v1/releases",
                &serde_json::json!({"product": product, "release": release, "released_at": at}),
            )
            .await;
        assert_eq!(
            resp.status(),
            200,
            "release refused: {:?}",
            resp.text().await
        );
    }

    /// `GET /readyz`: (status, body).
    pub async fn readyz(&self) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("readyz answers");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    /// GET `/metrics` in the classic format, parsed.
    pub async fn metrics(&self) -> Exposition {
        let text = self.get_text("/metrics", "text/plain").await;
        Exposition::classic(&text)
    }

    /// GET a path with an `Accept` header; the body as text.
    pub async fn get_text(&self, path: &str, accept: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .header("accept", accept)
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("body")
    }
}

/// Samples of one exposition, parsed by a real parser.
#[derive(Debug, Default)]
pub struct Exposition {
    /// `(sample name, labels, value)`.
    pub samples: Vec<(String, HashMap<String, String>, f64)>,
    /// Family name → type.
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Parses the classic text format.
    pub fn classic(text: &str) -> Self {
        use openmetrics_parser::{PrometheusValue, prometheus::parse_prometheus};
        let parsed =
            parse_prometheus(text).unwrap_or_else(|e| panic!("bad classic text: {e:?}\n{text}"));
        let mut out = Exposition::default();
        for (name, fam) in parsed.families {
            out.add_family(&name, &fam, |v| match v {
                PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => {
                    (name.clone(), n.as_f64())
                }
                PrometheusValue::Counter(c) => (name.clone(), c.value.as_f64()),
                other => panic!("unexpected value {other:?}"),
            });
        }
        out
    }

    /// Parses OpenMetrics text; counter samples are named with `_total`.
    pub fn openmetrics(text: &str) -> Self {
        use openmetrics_parser::{OpenMetricsValue, openmetrics::parse_openmetrics};
        let parsed =
            parse_openmetrics(text).unwrap_or_else(|e| panic!("bad OpenMetrics: {e:?}\n{text}"));
        let mut out = Exposition::default();
        for (name, fam) in parsed.families {
            out.add_family(&name, &fam, |v| match v {
                OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => {
                    (name.clone(), n.as_f64())
                }
                OpenMetricsValue::Counter(c) => (format!("{name}_total"), c.value.as_f64()),
                other => panic!("unexpected value {other:?}"),
            });
        }
        out
    }

    /// Adds a parsed family; `sample` names each value and reads it.
    fn add_family<T, V>(
        &mut self,
        name: &str,
        fam: &openmetrics_parser::MetricFamily<T, V>,
        sample: impl Fn(&V) -> (String, f64),
    ) where
        T: std::fmt::Debug + Clone + Default + PartialEq,
        V: openmetrics_parser::RenderableMetricValue + Clone,
    {
        self.types.insert(
            name.to_owned(),
            format!("{:?}", fam.family_type).to_lowercase(),
        );
        let label_names = fam.get_label_names().to_vec();
        for s in fam.iter_samples() {
            let labels = s.get_labelset().expect("labels");
            let map: HashMap<String, String> = label_names
                .iter()
                .filter_map(|n| labels.get_label_value(n).map(|v| (n.clone(), unescape(v))))
                .collect();
            let (sample_name, value) = sample(&s.value);
            self.samples.push((sample_name, map, value));
        }
    }

    /// The value of the one sample of `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        assert!(
            found.len() <= 1,
            "{name}{labels:?} matches {} samples",
            found.len()
        );
        found.first().copied()
    }

    /// Like [`get`](Self::get), panicking when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    /// Samples of `name`.
    pub fn count(&self, name: &str) -> usize {
        self.samples.iter().filter(|(n, _, _)| n == name).count()
    }
}

/// Release labels for the default product.
pub fn rel(release: &str) -> [(&'static str, &str); 2] {
    [("product", "default"), ("release", release)]
}

/// Decodes a label value as written in the text formats; the parser hands it
/// over still escaped.
fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => panic!("dangling escape in {v:?}"),
        }
    }
    out
}

/// Holds SQLite's write lock from another connection until the returned
/// sender is used (or 5 s pass).
pub fn hold_write_lock(
    db: &std::path::Path,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, locked) = std::sync::mpsc::channel::<()>();
    let (held_tx, held) = std::sync::mpsc::channel::<()>();
    let db = db.to_path_buf();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        held_tx.send(()).unwrap();
        let _ = locked.recv_timeout(std::time::Duration::from_secs(10));
        conn.execute_batch("ROLLBACK").unwrap();
    });
    held.recv().unwrap();
    (release, holder)
}

/// `serve --db DB` of the real binary on a port of its own, run until it
/// exits: its exit code and stderr (for starts that must be refused).
pub fn serve_refused(db: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bug-escape-exporter"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
