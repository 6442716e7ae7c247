//! The real binary: defaults, layering (file < environment < flags), start-up
//! errors, `check-config`, and graceful shutdown on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// Starts `serve` and returns the child and the address from its "serving" log.
pub(crate) fn serve(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &std::path::Path,
) -> (Child, String) {
    let (child, addr, _) = serve_logged(args, envs, cwd);
    (child, addr)
}

/// Like [`serve`], also handing back the log lines written so far and later
/// (the reader thread ends with the child).
fn serve_logged(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &std::path::Path,
) -> (Child, String, std::thread::JoinHandle<Vec<String>>) {
    serve_limited(args, envs, cwd, None)
}

/// Like [`serve`], also handing each later log line (JSON) to the receiver as
/// it is written, so a test can wait for one instead of sleeping.
fn serve_watched(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &std::path::Path,
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (child, addr, _) = start(args, envs, cwd, None, Some(tx));
    (child, addr, rx)
}

/// Waits (at most 20 s) for a log line whose message is `message`.
fn wait_for_log(log: &std::sync::mpsc::Receiver<String>, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no `{message}` log line within 20 s"));
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if v["fields"]["message"] == message {
            return;
        }
    }
}

/// Polls `/metrics` (at most 20 s) until the unlabelled gauge `name` is above 0.
fn wait_for_gauge(addr: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = get(addr, "/metrics");
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
        if value.is_some_and(|v| v > 0.0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} still {value:?} after 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Like [`serve_logged`], under a file-descriptor limit when one is given.
fn serve_limited(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &std::path::Path,
    max_files: Option<u64>,
) -> (Child, String, std::thread::JoinHandle<Vec<String>>) {
    start(args, envs, cwd, max_files, None)
}

/// Starts `serve` and waits for its `serving` line; later log lines are
/// drained by a thread (handed to `watch` too, when given) and returned when
/// the child ends.
fn start(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &std::path::Path,
    max_files: Option<u64>,
    watch: Option<std::sync::mpsc::Sender<String>>,
) -> (Child, String, std::thread::JoinHandle<Vec<String>>) {
    let mut cmd = Command::new(BIN);
    if let Some(n) = max_files {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the
        // child between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: n as libc::rlim_t,
                    rlim_max: n as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    // JSON logs on stderr: the lines are parsed below.
    cmd.args(["--log.format", "json", "serve"])
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        seen.push(line);
        if v["fields"]["message"] == "serving" {
            let addr = v["fields"]["addr"].as_str().expect("addr").to_owned();
            // Keep draining the log so the child never blocks on a full pipe.
            let rest = std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if let Some(watch) = &watch {
                        let _ = watch.send(line.clone());
                    }
                    seen.push(line);
                }
                seen
            });
            return (child, addr, rest);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    panic!("no `serving` log line; stderr: {seen:?}; stdout: {out}");
}

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn get(addr: &str, path: &str) -> String {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
}

pub(crate) fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    wait_exit(child)
}

#[test]
fn flags_win_over_environment_over_file_and_sigterm_finishes_in_flight_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("exporter.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:1\"\nmax_releases = 3\ndb = \"from-file.db\"\n",
    )
    .unwrap();
    let (mut child, addr, log) = serve_watched(
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[
            ("BUG_ESCAPE_DB", "from-env.db"),
            ("BUG_ESCAPE_LISTEN", "127.0.0.1:2"),
        ],
        dir.path(),
    );
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":1") && !addr.ends_with(":2"),
        "{addr}"
    );
    assert!(
        dir.path().join("from-env.db").exists(),
        "environment wins over the file"
    );
    assert!(get(&addr, "/").contains("href=\"metrics\""));
    assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(get(&addr, "/readyz").starts_with("HTTP/1.1 200"));

    // An in-flight request: headers and half the body sent, then SIGTERM.
    let body = br#"{"id": "inflight", "stage": "production", "release": "5.0"}"#;
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..10]).unwrap();
    // In flight once admitted to the write queue (its declared length counts
    // there from then until it is answered); then SIGTERM, and the rest of the
    // body only once the server has begun to shut down.
    wait_for_gauge(&addr, "bug_escape_write_queue_bytes");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for_log(
        &log,
        "shutdown signal received: finishing in-flight requests",
    );
    s.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = wait_exit(&mut child);
    assert!(status.success(), "{status:?}");

    // The committed event is there after a restart on the same file.
    let (mut child, addr) = serve(
        &["--listen", "127.0.0.1:0", "--db", "from-env.db"],
        &[],
        dir.path(),
    );
    let metrics = get(&addr, "/metrics");
    assert!(
        metrics
            .contains("bug_escape_release_escaped_defects{product=\"default\",release=\"5.0\"} 1"),
        "{metrics}"
    );
    assert!(sigterm(&mut child).success());
}

/// Waits (at most 20 s) for the child to exit.
fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_invalid_configuration_stops_start_up_with_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[stages]]\nname = \"production\"\nphase = \"production\"\nowner = \"sre\"\n[[stages]]\nname = \"qa\"\nphase = \"pre_release\"\nowner = \"qa\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "stages: [1]: pre_release stage `qa` is ordered after production stage `production`"
        ),
        "{err}"
    );
    assert!(
        !dir.path().join("bug-escape.db").exists(),
        "nothing created"
    );

    let out = Command::new(BIN)
        .args(["check-config", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ordered after production"));

    std::fs::write(&cfg, "max_releases = \"many\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("max_releases") && err.contains("bad.toml"),
        "{err}"
    );

    let out = Command::new(BIN).args(["check-config"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("development, code_review, automated_tests, qa, production")
    );
}

#[test]
fn an_unknown_key_under_a_webhook_table_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("typo.toml");
    for (source, key, meant) in [
        ("github", "secrt", "secret"),
        ("gitlab", "tokn_file", "token_file"),
        ("jira", "defect_label", "defect_labels"),
        ("sentry", "archive", "archived"),
    ] {
        // A valid table with one misspelt key, whose value must not be echoed.
        std::fs::write(
            &cfg,
            format!("[webhooks.{source}]\ndefault_stage = \"qa\"\n{key} = \"hunter2-value\"\n"),
        )
        .unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{source}: accepted");
        assert!(
            err.contains(&format!("webhooks.{source}.{key}: unknown key")),
            "{source}: {err}"
        );
        assert!(
            err.contains(&format!("did you mean `{meant}`?")),
            "the nearest known key: {err}"
        );
        assert!(!err.contains("hunter2"), "the value was echoed: {err}");
    }
    // Nested tables keep refusing unknown keys too.
    std::fs::write(&cfg, "[webhooks.github.prefixes]\nstag = \"found-in:\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("stag"), "{err}");
}

#[test]
fn the_api_token_from_the_environment_is_enforced_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "very-secret-value-123";
    let (mut child, addr, log) = serve_logged(
        &["--listen", "127.0.0.1:0"],
        &[
            ("BUG_ESCAPE_API_TOKEN", secret),
            ("BUG_ESCAPE_LOG", "debug"),
        ],
        dir.path(),
    );
    let body = r#"{"id": "a", "stage": "qa", "release": "1.0"}"#;
    let post = |auth: &str| {
        http(
            &addr,
            &format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    assert!(post("").starts_with("HTTP/1.1 401"));
    assert!(post("Authorization: Bearer wrong\r\n").starts_with("HTTP/1.1 401"));
    assert!(post(&format!("Authorization: Bearer {secret}\r\n")).starts_with("HTTP/1.1 200"));
    assert!(sigterm(&mut child).success());
    let mut out = log.join().unwrap().join("\n");
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("\"stopped\""), "{out}");
    assert!(!out.contains(secret), "the token was logged: {out}");
}

#[test]
fn the_gitlab_signing_secret_from_the_environment_is_used_and_never_logged() {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let key = b"gitlab-signing-key-0123456789abc";
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let secret = format!("whsec_{b64}");
    let (mut child, addr, log) = serve_logged(
        &["--listen", "127.0.0.1:0"],
        &[
            ("BUG_ESCAPE_GITLAB_SIGNING_SECRET", secret.as_str()),
            ("BUG_ESCAPE_LOG", "debug"),
        ],
        dir.path(),
    );
    let body = r#"{"object_kind": "push"}"#;
    let post = |timestamp: u64| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("msg_1.{timestamp}.{body}").as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        http(
            &addr,
            &format!(
                "POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Gitlab-Event: Push Hook\r\nwebhook-id: msg_1\r\nwebhook-timestamp: {timestamp}\r\nwebhook-signature: v1,{sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(post(now - 3600).starts_with("HTTP/1.1 401"));
    let ok = post(now);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(sigterm(&mut child).success());
    let mut out = log.join().unwrap().join("\n");
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains(r#""source":"gitlab","secrets":1"#),
        "start-up says GitLab accepts events: {out}"
    );
    assert!(!out.contains(&b64), "the signing secret was logged: {out}");
}

#[test]
fn at_the_file_limit_accept_errors_back_off_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // Connection settings from the environment; a file limit the flood exceeds.
    let (mut child, addr, log) = serve_limited(
        &["--listen", "127.0.0.1:0", "--db", "b.db"],
        &[
            ("BUG_ESCAPE_MAX_CONNECTIONS", "4"),
            ("BUG_ESCAPE_IDLE_TIMEOUT", "30s"),
            ("BUG_ESCAPE_HEADER_READ_TIMEOUT", "30s"),
        ],
        dir.path(),
        Some(40),
    );
    let flood: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the server exited");
    drop(flood);
    // Descriptors come back: the server answers again, within seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        let a = std::panic::catch_unwind(|| get(&addr, "/healthz")).unwrap_or_default();
        if a.starts_with("HTTP/1.1 200") || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(sigterm(&mut child).success());
    let lines = log.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("accept failed")),
        "the flood never reached the file limit"
    );
}

/// Runs `bug-escape-exporter <global> serve <args>` on a free port until it
/// answers `/healthz`, then stops it with SIGTERM; returns (stdout, stderr).
fn run_until_healthy(global: &[&str], args: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let db = dir.path().join("b.db");
    let mut child = Command::new(BIN)
        .args(global)
        .args(["serve", "--web.listen-address", &addr])
        .args(["--db", db.to_str().unwrap()])
        .args(args)
        .env_remove("BUG_ESCAPE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = TcpStream::connect(&addr).ok().and_then(|mut s| {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out.starts_with("HTTP/1.1 200"))
        });
        if ok == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sigterm(&mut child).success());
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (out, err)
}

/// Parses one logfmt line into its pairs (bare or double-quoted values).
fn logfmt(line: &str) -> Option<std::collections::HashMap<String, String>> {
    let mut pairs = std::collections::HashMap::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(pairs);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || key.contains(' ') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        'r' => value.push('\r'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
            if !matches!(chars.peek(), None | Some(' ')) {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                if c == '"' || c == '=' {
                    return None;
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.insert(key, value);
    }
}

#[test]
fn the_listen_address_flag_and_its_alias_both_bind() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--web.listen-address", "--listen"] {
        let (mut child, addr) = serve(&[flag, "127.0.0.1:0"], &[], dir.path());
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
        assert!(sigterm(&mut child).success());
    }
}

#[test]
fn the_telemetry_path_flag_moves_the_metrics_and_a_bad_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        &["--listen", "127.0.0.1:0", "--web.telemetry-path", "/custom"],
        &[],
        dir.path(),
    );
    let custom = get(&addr, "/custom");
    assert!(custom.starts_with("HTTP/1.1 200"), "{custom}");
    assert!(custom.contains("bug_escape_build_info"), "{custom}");
    let old = get(&addr, "/metrics");
    assert!(old.starts_with("HTTP/1.1 404"), "{old}");
    assert!(old.contains("application/json"), "{old}");
    assert!(old.contains(r#""error":"not_found""#), "{old}");
    assert!(get(&addr, "/").contains(r#"<a href="custom">"#));
    assert!(sigterm(&mut child).success());
    for bad in ["metrics", "/healthz", "/api/v1/events"] {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--web.telemetry-path",
                bad,
            ])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("telemetry_path"), "{bad}: {err}");
    }
}

#[test]
fn logs_go_to_stderr_as_logfmt_by_default_or_json_and_never_to_stdout() {
    for format in [None, Some("logfmt"), Some("json")] {
        let global: Vec<&str> = format.map_or(vec![], |f| vec!["--log.format", f]);
        let (out, err) = run_until_healthy(&global, &[]);
        assert_eq!(out, "", "stdout with {format:?}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines.len() >= 3, "{err}");
        let mut serving = false;
        for line in lines {
            let (level, msg) = if format == Some("json") {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(v["timestamp"].is_string(), "{line}");
                (
                    v["level"].as_str().unwrap().to_owned(),
                    v["fields"]["message"].as_str().unwrap_or("").to_owned(),
                )
            } else {
                let p = logfmt(line).unwrap_or_else(|| panic!("not logfmt: {line}"));
                assert!(p.contains_key("ts") && p.contains_key("target"), "{line}");
                if p["msg"] == "serving" {
                    assert!(p["addr"].starts_with("127.0.0.1:"), "{line}");
                }
                (p["level"].clone(), p["msg"].clone())
            };
            assert!(
                ["debug", "info", "warn", "error"].contains(&level.to_ascii_lowercase().as_str()),
                "{line}"
            );
            serving |= msg == "serving";
        }
        assert!(serving, "{err}");
    }
}

#[test]
fn the_log_level_flag_hides_lower_levels_and_the_env_filter_overrides_it() {
    let (out, err) = run_until_healthy(&["--log.level", "warn"], &[]);
    assert_eq!(out, "");
    assert!(err.contains("level=warn"), "{err}");
    assert!(err.contains("BUG_ESCAPE_API_TOKEN is not set"), "{err}");
    assert!(!err.contains("level=info"), "{err}");
    assert!(!err.contains("msg=serving"), "{err}");
    let (_, err) = run_until_healthy(&["--log.level", "error"], &[]);
    assert_eq!(err, "", "nothing at error level during a clean run");
    let out = Command::new(BIN)
        .args(["--log.level", "verbose", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log.level"));
}

#[test]
fn version_names_version_revision_branch_build_date_and_rustc() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "bug-escape-exporter {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    for field in ["revision:", "branch:", "build date:", "rustc:"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in {text}"));
        assert!(
            !line[line.find(':').unwrap() + 1..].trim().is_empty(),
            "{text}"
        );
    }
    assert!(text.contains("rustc 1."), "{text}");
    let date = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("build date:"))
        .unwrap()
        .trim();
    assert!(
        chrono::DateTime::parse_from_rfc3339(date).is_ok(),
        "build date {date}"
    );
}

/// `report | head`: the reader gone, the report ends as `cat` does, without
/// a word and killed by SIGPIPE (141 in a shell), in every format.
#[test]
fn a_report_into_a_closed_pipe_ends_quietly_as_cat_does() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let file = dir.path().join("e.ndjson");
    std::fs::write(
        &file,
        "{\"id\": \"1\", \"stage\": \"qa\", \"release\": \"1.0\"}\n",
    )
    .unwrap();
    let (status, out, err) = crate::import::import(&db, &[file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    for format in ["table", "json", "csv"] {
        let (status, err) = crate::export::into_closed_pipe(
            std::process::Command::new(env!("CARGO_BIN_EXE_bug-escape-exporter"))
                .args(["report", "--db", db.to_str().unwrap(), "--format", format])
                .env("BUG_ESCAPE_LOG", "error"),
        );
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{format}: {status:?} {err}"
        );
        assert_eq!(err, "", "{format}");
    }
}
