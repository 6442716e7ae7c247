//! A real exporter per test: its own SQLite file, bound to 127.0.0.1:0, driven
//! over HTTP; fixtures signed the way each vendor signs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use bug_escape_exporter::app::Application;
use bug_escape_exporter::config::webhooks::SecretSetting;
use bug_escape_exporter::config::{Config, Settings};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
pub const GITLAB_TOKEN: &str = "gl-token-0012";
/// GitLab signing tokens (Standard Webhooks), as GitLab shows them: the
/// current one (32 random bytes) and the previous one (the Standard Webhooks
/// test key).
pub const GITLAB_SIGNING: &str = "whsec_q3G9bY0sV1mQe7wXcZ2rT5uJ8kL4nP6aD0fH3jS9vB4=";
pub const GITLAB_SIGNING_OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const JIRA_SECRET: &str = "jira secret";
pub const SENTRY_SECRET: &str = "sentry-client-secret";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Settings with every webhook secret configured.
pub fn settings() -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        ..Settings::default()
    };
    s.webhooks.github.auth.secret = Some(SecretSetting::Many(vec![
        "an-old-secret".into(),
        GITHUB_SECRET.into(),
    ]));
    s.webhooks.gitlab.token = Some(SecretSetting::One(GITLAB_TOKEN.into()));
    s.webhooks.jira.auth.secret = Some(SecretSetting::One(JIRA_SECRET.into()));
    s.webhooks.sentry.auth.secret = Some(SecretSetting::One(SENTRY_SECRET.into()));
    s
}

/// An exporter with every secret configured.
pub async fn spawn() -> TestApp {
    spawn_with(settings()).await
}

/// An exporter with `settings` (listen and db are set here).
pub async fn spawn_with(mut settings: Settings) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    settings.listen = "127.0.0.1:0".into();
    settings.db = dir.path().join("bug-escape.db");
    let db = settings.db.clone();
    let config = Config::from_settings(settings).expect("valid config");
    let app = Application::build(config).await.expect("build");
    let addr = app.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async {
            let _ = stopped.await;
        })
        .await
        .expect("run");
    });
    TestApp {
        addr,
        client: reqwest::Client::new(),
        db,
        _dir: dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Stops the server and waits until the store is closed.
    pub async fn stop(mut self) -> TestApp {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
        self
    }

    /// POSTs `body` to `path` with `headers` (JSON content type unless given).
    pub async fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
        let mut req = self
            .client
            .post(format!("http://{}{path}", self.addr))
            .body(body.to_vec());
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply { status, json, text }
    }

    /// The current `/metrics` (classic text format).
    pub async fn metrics(&self) -> Metrics {
        let text = self
            .client
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        Metrics(text)
    }

    /// GitHub delivery: signed fixture bytes with its event and delivery id.
    pub async fn github(&self, event: &str, delivery: &str, body: &[u8]) -> Reply {
        let headers = [
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", delivery.to_owned()),
            (
                "x-hub-signature-256",
                format!("sha256={}", sign(GITHUB_SECRET, body)),
            ),
        ];
        self.post("/webhooks/github", &headers, body).await
    }

    /// GitHub delivery with the form content type: `payload=<fixture bytes>`,
    /// the signature computed over the form-encoded bytes, as GitHub does.
    pub async fn github_form(&self, event: &str, delivery: &str, json: &[u8]) -> Reply {
        let body = form_encode(&[("payload", json)]);
        let headers = [
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("x-github-event", event.to_owned()),
            ("x-github-delivery", delivery.to_owned()),
            (
                "x-hub-signature-256",
                format!("sha256={}", sign(GITHUB_SECRET, &body)),
            ),
        ];
        self.post("/webhooks/github", &headers, &body).await
    }

    /// GitLab delivery with its event header, token and idempotency key.
    pub async fn gitlab(&self, event: &str, delivery: &str, body: &[u8]) -> Reply {
        let headers = [
            ("x-gitlab-event", event.to_owned()),
            ("x-gitlab-token", GITLAB_TOKEN.to_owned()),
            ("idempotency-key", delivery.to_owned()),
            ("x-gitlab-instance", "https://gitlab.example.com".to_owned()),
        ];
        self.post("/webhooks/gitlab", &headers, body).await
    }

    /// GitLab signed delivery (Standard Webhooks headers, no token), signed now
    /// with `secret`, with `webhook-id` as its only delivery id.
    pub async fn gitlab_signed(&self, event: &str, id: &str, secret: &str, body: &[u8]) -> Reply {
        let now = now_secs().to_string();
        let headers = [
            ("x-gitlab-event", event.to_owned()),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", now.clone()),
            ("webhook-signature", sign_standard(secret, id, &now, body)),
        ];
        self.post("/webhooks/gitlab", &headers, body).await
    }

    /// Jira delivery, signed, with its webhook identifier.
    pub async fn jira(&self, delivery: &str, body: &[u8]) -> Reply {
        let headers = [
            (
                "x-hub-signature",
                format!("sha256={}", sign(JIRA_SECRET, body)),
            ),
            ("x-atlassian-webhook-identifier", delivery.to_owned()),
        ];
        self.post("/webhooks/jira", &headers, body).await
    }

    /// Sentry delivery of `resource`, signed with the client secret.
    pub async fn sentry(&self, resource: &str, body: &[u8]) -> Reply {
        self.sentry_sent_at(resource, body, "1588082166").await
    }

    /// Sentry delivery of `resource` sent at `timestamp` (Unix seconds, the
    /// unsigned `Sentry-Hook-Timestamp`), signed with the client secret.
    pub async fn sentry_sent_at(&self, resource: &str, body: &[u8], timestamp: &str) -> Reply {
        let headers = [
            ("sentry-hook-resource", resource.to_owned()),
            ("sentry-hook-timestamp", timestamp.to_owned()),
            ("sentry-hook-signature", sign(SENTRY_SECRET, body)),
            ("request-id", "8f5c3a1e-random".to_owned()),
        ];
        self.post("/webhooks/sentry", &headers, body).await
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: serde_json::Value,
    pub text: String,
}

impl Reply {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        self
    }
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `application/x-www-form-urlencoded` `pairs`, encoded by hand (every byte but
/// ASCII letters and digits as `%XX`, spaces as `+`) so that the exporter's
/// decoder is checked against an encoder it does not share.
pub fn form_encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let encode = |out: &mut Vec<u8>, bytes: &[u8]| {
        for &b in bytes {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => out.push(b),
                b' ' => out.push(b'+'),
                _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
            }
        }
    };
    let mut out = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        encode(&mut out, name.as_bytes());
        out.push(b'=');
        encode(&mut out, value);
    }
    out
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the
/// base64 part of a `whsec_` secret (Standard Webhooks).
pub fn sign_standard(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

/// The current Unix time in seconds.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A fixture's bytes (`github/issues_opened.json`), exactly as stored.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The file names of a fixture directory.
pub fn fixture_names(dir: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .expect("fixture dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// A fixture parsed, changed by `f`, serialised again (then signed as sent).
pub fn edited(name: &str, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture(name)).expect("json");
    f(&mut v);
    serde_json::to_vec(&v).expect("serialise")
}

/// A scrape, queried by metric name and labels.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample `name` whose labels include `labels`; `None`
    /// when no sample matches.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (n, rest) = match series.find('{') {
                    Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
                    None => (series, ""),
                };
                if n != name {
                    return None;
                }
                let got = parse_labels(rest);
                labels
                    .iter()
                    .all(|(k, v)| got.get(*k).map(String::as_str) == Some(*v))
                    .then(|| value.parse().ok())?
            })
    }

    /// Like [`Metrics::get`], 0 when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').trim().to_owned();
        let after = &rest[eq + 2..];
        let mut val = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => val.push(c),
            }
        }
        out.insert(key, val);
        rest = &after[end..];
    }
    out
}
