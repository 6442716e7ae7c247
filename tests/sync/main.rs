//! `sync` against a loopback stand-in for the vendor's REST API (`fake`):
//! the real binary as a subprocess for the sub-command (including a kill in
//! the middle of a pass), a real exporter in-process for `serve`'s periodic
//! reconcile, real SQLite files in temp dirs.

mod fake;
mod github;
mod gitlab;
mod gitlab_fake;
mod hostile;
mod jira;
mod jira_fake;
mod sentry;
mod sentry_fake;
mod served;
mod stand;
mod supervised;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// A configuration file for the binary reading `api` with small pages and
/// delays shrunk so the tests run in seconds.
pub fn config_file(dir: &Path, api: &str) -> PathBuf {
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[webhooks.github]
api_url = "{api}"
repositories = ["acme/payments"]
[sync]
timeout = "500ms"
retry_backoff = "50ms"
max_wait = "3s"
max_attempts = 5
page_size = 2
"#
        ),
    )
    .unwrap();
    file
}

/// `bug-escape-exporter sync <args>` with the token in the environment.
pub fn sync_command(dir: &Path, api: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("sync")
        .args(args)
        .arg("--db")
        .arg(dir.join("bug-escape.db"))
        .arg("--config")
        .arg(config_file(dir, api))
        .env_clear()
        .env("BUG_ESCAPE_GITHUB_API_TOKEN", fake::TOKEN);
    cmd
}

/// Runs it to the end (off the async runtime's thread).
pub async fn sync(dir: &Path, api: &str, args: &[&str]) -> Output {
    let mut cmd = sync_command(dir, api, args);
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

/// stdout and stderr, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The stored rows of `source`: id → (stage, release, deleted).
pub fn defects(
    db: &Path,
) -> std::collections::BTreeMap<String, (Option<String>, Option<String>, bool)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, stage, release, deleted FROM defects WHERE source = 'github'")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `[sync]` with small pages and delays shrunk so the tests run in seconds.
pub const QUICK: &str = r#"
[sync]
timeout = "500ms"
retry_backoff = "50ms"
max_wait = "3s"
max_attempts = 5
page_size = 2
"#;

/// `bug-escape-exporter sync <args>` with `toml` (plus [`QUICK`]) as its
/// configuration and only `env` in its environment.
pub fn vendor_command(dir: &Path, toml: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let file = dir.join("config.toml");
    std::fs::write(&file, format!("{toml}\n{QUICK}")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("sync")
        .args(args)
        .arg("--db")
        .arg(dir.join("bug-escape.db"))
        .arg("--config")
        .arg(file)
        .env_clear()
        .envs(env.iter().copied());
    cmd
}

/// Runs it to the end (off the async runtime's thread).
pub async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .unwrap()
}

/// The stored rows of `source`: id -> (stage, release, status, deleted).
pub fn rows(
    db: &Path,
    source: &str,
) -> std::collections::BTreeMap<String, (Option<String>, Option<String>, String, bool)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, stage, release, status, deleted FROM defects WHERE source = ?1")
        .unwrap();
    stmt.query_map([source], |r| {
        Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The release times of `kind`: release -> epoch milliseconds.
pub fn release_times(db: &Path, kind: &str) -> std::collections::BTreeMap<String, i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT release_raw, released_at FROM release_times WHERE product_kind = ?1")
        .unwrap();
    stmt.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The value of query parameter `name`, as sent.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
}
