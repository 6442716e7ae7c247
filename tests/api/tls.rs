//! `--web.config.file`: TLS (with certificates made here by rcgen), client
//! certificates, basic auth on the metrics and pages, and the routes that keep
//! their own authentication, over real connections on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bug_escape_exporter::config::Settings;
use bug_escape_exporter::config::webhooks::SecretSetting;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

use crate::helpers::{Exposition, TestApp, rel, settings, spawn_with};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");
const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// A date: year, month, day.
type Ymd = (i32, u8, u8);

/// A certificate authority that signs server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses): (cert, key) PEM.
    fn sign(&self, names: &[&str]) -> (String, String) {
        self.sign_dated(names, None)
    }

    /// Like [`Ca::sign`], valid from and to the dates given rather than
    /// rcgen's default (1975 to 4096).
    fn sign_dated(&self, names: &[&str], dates: Option<(Ymd, Ymd)>) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if let Some(((y0, m0, d0), (y1, m1, d1))) = dates {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes the server's certificate and key (signed by `ca`, for 127.0.0.1 and
/// localhost) and `web.yml` with `extra` appended under the TLS keys.
fn web_config(dir: &Path, ca: &Ca, tls_extra: &str, rest: &str) -> std::path::PathBuf {
    let (cert, key) = ca.sign(&["127.0.0.1", "localhost"]);
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let file = dir.join("web.yml");
    std::fs::write(
        &file,
        format!(
            "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{tls_extra}{rest}"
        ),
    )
    .unwrap();
    file
}

/// A bcrypt hash of [`PASSWORD`] at the lowest cost (the tests stay fast).
fn users() -> String {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    format!("basic_auth_users:\n  {USER}: '{hash}'\n")
}

/// A client trusting `ca`, presenting `identity` (cert + key PEM) when given.
fn client(ca: &Ca, identity: Option<(String, String)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// Spawns the exporter with `s`, reached over https with `client`.
async fn spawn_tls(s: Settings, client: reqwest::Client) -> TestApp {
    let mut app = spawn_with(s).await;
    app.base = app.base.replace("http://", "https://");
    app.client = client;
    app
}

fn port(app: &TestApp) -> u16 {
    app.base.rsplit(':').next().unwrap().parse().unwrap()
}

/// Wrong password, unknown user, no credentials, another scheme: each gets
/// 401 on `path` with a Basic challenge and the JSON error body.
async fn assert_challenged(app: &TestApp, path: &str) {
    let url = format!("{}{path}", app.base);
    for (what, req) in [
        (
            "wrong password",
            app.client.get(&url).basic_auth(USER, Some("nope")),
        ),
        (
            "unknown user",
            app.client.get(&url).basic_auth("mallory", Some(PASSWORD)),
        ),
        ("no credentials", app.client.get(&url)),
        ("bearer", app.client.get(&url).bearer_auth(PASSWORD)),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what} on {path}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(challenge.starts_with("Basic "), "{what}: {challenge}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "auth", "{body}");
        assert!(
            body["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{body}"
        );
    }
}

#[tokio::test]
async fn basic_auth_guards_metrics_and_pages_and_leaves_webhooks_api_and_probes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let mut s = settings(dir.path());
    s.telemetry_path = "/scrape".into();
    s.web_config_file = Some(web_config(dir.path(), &ca, "", &users()));
    s.webhooks.github.auth.secret = Some(SecretSetting::One("gh-secret".into()));
    let app = spawn_tls(s, client(&ca, None)).await;
    let url = |p: &str| format!("{}{p}", app.base);

    // Right password: the metrics and the pages.
    for path in ["/scrape", "/"] {
        let resp = app
            .client
            .get(url(path))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let text = app
        .client
        .get(url("/scrape"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("bug_escape_build_info"), "{text}");

    // Wrong password, unknown user, no credentials, another scheme: 401 with
    // a Basic challenge and the JSON error body, on every guarded path
    // (unknown ones too, so they do not reveal what exists).
    for path in ["/scrape", "/", "/nothing-here"] {
        assert_challenged(&app, path).await;
    }

    // Probes stay open.
    for path in ["/healthz", "/readyz"] {
        let resp = app.client.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    // The write API keeps its own rule (loopback, no token set here).
    let resp = app
        .client
        .post(url("/api/v1/events"))
        .json(&json!({"id": "D-1", "stage": "qa", "release": "1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    // Webhooks keep their signature: a signed ping passes, a bad one gets
    // the webhook's own 401, never a Basic challenge.
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let signed = bug_escape_exporter::sources::signature::sign(b"gh-secret", body);
    let post = |sig: String| {
        app.client
            .post(url("/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", "ping")
            .header("x-github-delivery", "d-1")
            .header("x-hub-signature-256", format!("sha256={sig}"))
            .body(body.to_vec())
    };
    let resp = post(signed).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let resp = post("00".repeat(32)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_none());

    // The event written without basic auth is counted.
    let text = app
        .client
        .get(url("/scrape"))
        .header("accept", "text/plain")
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exposition = Exposition::classic(&text);
    assert_eq!(
        exposition.value("bug_escape_release_defects", &rel("1.0")),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn basic_auth_works_without_tls_and_headers_are_added() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yml");
    std::fs::write(
        &file,
        format!(
            "{}http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
            users()
        ),
    )
    .unwrap();
    let mut s = settings(dir.path());
    s.web_config_file = Some(file);
    let app = spawn_with(s).await;
    let metrics = format!("{}/metrics", app.base);
    let resp = app.client.get(&metrics).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let resp = app
        .client
        .get(&metrics)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    app.stop().await;
}

/// Reads until the server closes or 5 s pass; (bytes read, closed in time).
fn read_until_closed(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true), // reset: closed too
        }
    }
    (got, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_and_a_stalled_handshake_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let mut s = settings(dir.path());
    s.header_read_timeout = "1s".into();
    s.web_config_file = Some(web_config(dir.path(), &ca, "", ""));
    let app = spawn_tls(s, client(&ca, None)).await;
    let addr = format!("127.0.0.1:{}", port(&app));

    let (plain, stalled, partial) = tokio::task::spawn_blocking(move || {
        // Plain HTTP: a TLS alert or nothing, then the connection is closed.
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let plain = read_until_closed(&mut c);
        // Silent after connecting: closed once header_read_timeout (1 s) passes.
        let mut c = TcpStream::connect(&addr).unwrap();
        let started = Instant::now();
        let stalled = (read_until_closed(&mut c).1, started.elapsed());
        // A handshake record header, then nothing more: closed as well.
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
        let partial = read_until_closed(&mut c).1;
        (plain, stalled, partial)
    })
    .await
    .unwrap();
    let (bytes, closed) = plain;
    assert!(
        closed,
        "plain HTTP to the TLS port must be closed, not left hanging"
    );
    assert!(
        !bytes.starts_with(b"HTTP/"),
        "no plain HTTP answer: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(bytes.first(), Some(&0x15), "a TLS alert record: {bytes:?}");
    let (closed, after) = stalled;
    assert!(closed, "a silent TLS client must be closed");
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(4),
        "closed after {after:?}, expected about the 1 s header_read_timeout"
    );
    assert!(partial, "a stalled handshake must be closed");

    // The server is unharmed.
    let resp = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_in_its_handshake_holds_a_slot_and_makes_room_when_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let mut s = settings(dir.path());
    s.max_connections = 1;
    s.web_config_file = Some(web_config(dir.path(), &ca, "", ""));
    let app = spawn_tls(s, client(&ca, None)).await;
    let addr = format!("127.0.0.1:{}", port(&app));
    // A client that connects and never says hello takes the one slot...
    let mut silent = TcpStream::connect(&addr).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...and, quiet, is closed to make room for a real one.
    let resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let evicted = Exposition::classic(&text)
        .get(
            "bug_escape_connections_refused_total",
            &[("reason", "evicted")],
        )
        .unwrap_or(0.0);
    assert!(evicted >= 1.0, "{text}");
    let closed = tokio::task::spawn_blocking(move || read_until_closed(&mut silent).1)
        .await
        .unwrap();
    assert!(closed, "the silent connection was closed");
    app.stop().await;
}

#[tokio::test]
async fn a_required_client_certificate_must_be_signed_by_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let stranger_ca = Ca::new("another CA");
    std::fs::write(dir.path().join("clients.pem"), &client_ca.pem).unwrap();
    let mut s = settings(dir.path());
    s.web_config_file = Some(web_config(
        dir.path(),
        &server_ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.pem\n",
        "",
    ));
    let app = spawn_tls(s, client(&server_ca, None)).await;
    let healthz = format!("{}/healthz", app.base);

    // No certificate: the handshake fails, no answer.
    let err = app.client.get(&healthz).send().await;
    assert!(
        err.is_err(),
        "answered without a client certificate: {err:?}"
    );
    // A certificate from another CA: refused too.
    let stranger = client(&server_ca, Some(stranger_ca.sign(&["scraper"])));
    let err = stranger.get(&healthz).send().await;
    assert!(err.is_err(), "answered a stranger's certificate: {err:?}");
    // Signed by the client CA: served.
    let trusted = client(&server_ca, Some(client_ca.sign(&["scraper"])));
    let resp = trusted.get(&healthz).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = trusted
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.stop().await;
}

#[test]
fn a_bad_web_configuration_stops_start_up_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let good = web_config(dir.path(), &ca, "", "");
    let good_text = std::fs::read_to_string(&good).unwrap();
    for (name, yaml, expected) in [
        (
            "unknown key",
            format!("{good_text}  cert_fle: x.pem\n"),
            vec!["cert_fle", "unknown field"],
        ),
        (
            "missing cert file",
            "tls_server_config:\n  cert_file: gone.pem\n  key_file: server.key\n".to_owned(),
            vec!["tls_server_config.cert_file", "gone.pem"],
        ),
        (
            "bad bcrypt hash",
            "basic_auth_users:\n  alice: password123\n".to_owned(),
            vec!["basic_auth_users.alice", "bcrypt"],
        ),
        (
            "unsupported value",
            format!("{good_text}  min_version: TLS11\n"),
            vec!["min_version", "TLS11"],
        ),
    ] {
        let file = dir.path().join("bad.yml");
        std::fs::write(&file, &yaml).unwrap();
        let out = Command::new(BIN)
            .args(["serve", "--web.listen-address", "127.0.0.1:0"])
            .arg("--web.config.file")
            .arg(&file)
            .current_dir(dir.path())
            .env_remove("BUG_ESCAPE_WEB_CONFIG_FILE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: started");
        assert!(
            expected.iter().all(|e| err.contains(e)) && err.contains("bad.yml"),
            "{name}: {err}"
        );
        assert!(!err.contains("password123"), "{name}: a secret was echoed");
        assert!(
            !dir.path().join("bug-escape.db").exists(),
            "{name}: nothing created"
        );
    }
    // The environment variable names the file too, and check-config reads it.
    let file = dir.path().join("bad.yml");
    let out = Command::new(BIN)
        .arg("check-config")
        .env("BUG_ESCAPE_WEB_CONFIG_FILE", &file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("min_version"));
    let out = Command::new(BIN)
        .args(["check-config", "--web.config.file"])
        .arg(&good)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("TLS on"), "{said}");
}

#[test]
fn the_docs_web_configuration_example_is_valid() {
    // The first YAML block of docs/security.md is the web configuration.
    let page =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    let start = page.find("```yaml\n").expect("a YAML example") + "```yaml\n".len();
    let end = start + page[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = Ca::new("docs CA").sign(&["localhost"]);
    std::fs::write(dir.path().join("server.crt"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();
    let file = dir.path().join("web-config.yml");
    std::fs::write(&file, &page[start..end]).unwrap();
    let web = bug_escape_exporter::config::web::WebConfig::load(&file).expect("valid");
    assert!(web.tls.is_some());
    assert_eq!(
        web.basic_auth_users.keys().collect::<Vec<_>>(),
        ["prometheus"]
    );
}

/// Runs `serve` with `web` (JSON logs) until it says "serving", then stops
/// it; returns its log lines.
fn serve_log(dir: &Path, web: &Path) -> Vec<String> {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .args(["--log.format", "json", "serve"])
        .args(["--web.listen-address", "127.0.0.1:0", "--web.config.file"])
        .arg(web)
        .arg("--db")
        .arg(dir.join("b.db"))
        .current_dir(dir)
        .env_remove("BUG_ESCAPE_LOG")
        .env_remove("BUG_ESCAPE_WEB_CONFIG_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    // Every line up to "serving"; the pipe ends (and the loop) if it exits.
    while let Some(Ok(line)) = lines.next() {
        let serving = line.contains("\"serving\"");
        seen.push(line);
        if serving {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("\"serving\"")),
        "never served: {seen:?}"
    );
    assert!(crate::binary::sigterm(&mut child).success());
    seen
}

/// `check-config` against the given web configuration file.
fn check_config(web: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["check-config", "--web.config.file"])
        .arg(web)
        .env_remove("BUG_ESCAPE_WEB_CONFIG_FILE")
        .output()
        .unwrap()
}

/// A certificate not valid yet, inline: check-config says so (on stderr, the
/// configuration still OK) and the valid one is quiet.
fn assert_check_config_warns_of_a_future_certificate(dir: &Path, ca: &Ca, web: &Path) {
    let (future, future_key) = ca.sign_dated(&["localhost"], Some(((2999, 1, 1), (3000, 1, 1))));
    let indent = |pem: &str| pem.replace('\n', "\n    ");
    std::fs::write(
        web,
        format!(
            "tls_server_config:\n  cert: |\n    {}\n  key: |\n    {}\n",
            indent(&future),
            indent(&future_key)
        ),
    )
    .unwrap();
    let out = check_config(web);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for word in [
        "warning: tls_server_config.cert:",
        "not yet valid",
        "2999-01-01T00:00:00Z",
        "3000-01-01T00:00:00Z",
    ] {
        assert!(err.contains(word), "{word}: {err}");
    }
    let good = web_config(dir, ca, "", "");
    let out = check_config(&good);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
}

#[test]
fn cheap_hashes_and_a_certificate_outside_its_dates_are_start_up_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let (cert, key) = ca.sign_dated(
        &["127.0.0.1", "localhost"],
        Some(((2020, 1, 1), (2021, 6, 30))),
    );
    std::fs::write(dir.path().join("expired.pem"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), &key).unwrap();
    let cheap = bcrypt::hash(PASSWORD, 4).unwrap();
    let cheap9 = bcrypt::hash(PASSWORD, 9).unwrap();
    let usual = bcrypt::hash(PASSWORD, 10).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: expired.pem\n  key_file: server.key\n\
             basic_auth_users:\n  cheap: '{cheap}'\n  nine: '{cheap9}'\n  usual: '{usual}'\n"
        ),
    )
    .unwrap();
    let log = serve_log(dir.path(), &web);
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("\"WARN\"")).collect();
    for hash in [&cheap, &cheap9, &usual] {
        assert!(
            !log.iter().any(|l| l.contains(hash.as_str())),
            "a hash was logged: {log:?}"
        );
    }
    for (user, cost) in [("cheap", 4), ("nine", 9)] {
        let named: Vec<_> = warnings
            .iter()
            .filter(|l| l.contains(&format!("basic_auth_users.{user}:")))
            .collect();
        assert_eq!(named.len(), 1, "{user}, once: {warnings:?}");
        assert!(named[0].contains(&format!("cost {cost}")), "{named:?}");
    }
    assert!(
        !warnings
            .iter()
            .any(|l| l.contains("basic_auth_users.usual")),
        "cost 10 is quiet: {warnings:?}"
    );
    let cert_warnings: Vec<_> = warnings
        .iter()
        .filter(|l| l.contains("tls_server_config.cert_file"))
        .collect();
    assert_eq!(cert_warnings.len(), 1, "{warnings:?}");
    for word in ["expired", "2020-01-01T00:00:00Z", "2021-06-30T00:00:00Z"] {
        assert!(cert_warnings[0].contains(word), "{word}: {cert_warnings:?}");
    }

    assert_check_config_warns_of_a_future_certificate(dir.path(), &ca, &web);
}
