//! A real exporter in-process for the vendors' reconcile tests: `serve` on
//! loopback with the settings a test gives, its `/metrics` scraped and
//! webhooks posted to it.

use std::time::{Duration, Instant};

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::{Config, Settings};

pub struct Served {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// One scrape of `/metrics`.
pub struct Scraped(pub String);

impl Scraped {
    /// The sample of `name` with exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.lines().find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            let count = rest.matches("=\"").count();
            (all && count == labels.len()).then(|| value.parse().ok())?
        })
    }
}

impl Served {
    /// `serve` on `db` with `settings` (the listen address, database and
    /// short sync delays are set here).
    pub async fn start(db: &std::path::Path, settings: impl FnOnce(&mut Settings)) -> Served {
        Self::start_with(db, settings, |_| {}).await
    }

    /// Like [`Served::start`]; `before` sees the built application before it
    /// serves (and before its first reconcile pass), to inject faults.
    pub async fn start_with(
        db: &std::path::Path,
        settings: impl FnOnce(&mut Settings),
        before: impl FnOnce(&Application),
    ) -> Served {
        let mut s = Settings {
            listen: "127.0.0.1:0".into(),
            db: db.to_path_buf(),
            ..Settings::default()
        };
        s.sync.retry_backoff = "50ms".into();
        s.sync.timeout = "1s".into();
        s.sync.page_size = 2;
        settings(&mut s);
        let app = Application::build(Config::from_settings(s).unwrap())
            .await
            .unwrap();
        before(&app);
        let base = format!("http://{}", app.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        Served { base, stop, task }
    }

    pub async fn metrics(&self) -> Scraped {
        Scraped(
            reqwest::get(format!("{}/metrics", self.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
    }

    /// Posts `body` to `path` with `headers`; asserts a 200.
    pub async fn post(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) {
        let mut req = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.body(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// Scrapes until `ok` holds (15 s at most).
    pub async fn until(&self, what: &str, ok: impl Fn(&Scraped) -> bool) -> Scraped {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let m = self.metrics().await;
            if ok(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "{what} never happened:\n{}", m.0);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
