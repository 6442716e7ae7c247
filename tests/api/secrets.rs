//! No configuration error prints a secret. Every key that may hold one (found
//! from the settings themselves, so a new one is covered) is written wrong in
//! every way a file can be — a syntax error on its line, an unquoted value, a
//! duplicate, a wrong type, an unknown key beside it, a dotted key, a string
//! left open over lines — and the real binary reads it with `check-config`
//! and `serve` (JSON or logfmt logs, in turn): the error names the file, line and key,
//! and neither stdout nor stderr holds the value. The same for the secret
//! environment variables with wrong values, and for the web configuration's
//! basic-auth hashes and private key.

use std::path::Path;
use std::process::{Command, Output};

use bug_escape_exporter::config::Settings;
use bug_escape_exporter::config::redact::is_secret_key;

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// Part of every secret written below; no output may contain it.
const MARK: &str = "SUPERSECRET";

/// Every key of the settings that may hold a secret, as (table, key).
fn secret_keys() -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(&format!("{prefix}{k}."), v, out);
                }
            }
            _ => out.push(prefix.trim_end_matches('.').to_owned()),
        }
    }
    let mut leaves = Vec::new();
    walk(
        "",
        &serde_json::to_value(Settings::default()).unwrap(),
        &mut leaves,
    );
    let keys: Vec<(String, String)> = leaves
        .into_iter()
        .filter(|k| is_secret_key(k))
        .map(|k| match k.rsplit_once('.') {
            Some((t, k)) => (t.to_owned(), k.to_owned()),
            None => (String::new(), k),
        })
        .collect();
    // The known ones at least: a broken walk must not pass as "no secrets".
    for want in [
        "api_token",
        "webhooks.github.secret",
        "webhooks.gitlab.signing_secret_file",
        "webhooks.sentry.api_token",
    ] {
        assert!(
            keys.iter()
                .any(|(t, k)| want == format!("{t}.{k}").trim_start_matches('.')),
            "{want} not found among {keys:?}"
        );
    }
    assert!(keys.len() >= 20, "{keys:?}");
    keys
}

/// Runs the binary with `args` in a clean environment plus `envs`.
fn run(args: &[&str], envs: &[(&str, &std::ffi::OsStr)], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// `check-config` and `serve` (logfmt and JSON logs) on the same inputs:
/// each fails, prints nothing holding [`MARK`], and stderr holds every
/// one of `wanted`.
fn refused_everywhere(
    what: &str,
    args: &[&str],
    envs: &[(&str, &std::ffi::OsStr)],
    dir: &Path,
    wanted: &[&str],
) {
    let db = dir.join("never.db");
    let db = db.to_str().unwrap();
    let serve = |format: &'static str| {
        let mut a = vec!["--log.format", format, "serve", "--listen", "127.0.0.1:0"];
        a.extend(["--db", db]);
        a.extend(args);
        a
    };
    let mut check = vec!["check-config"];
    check.extend(args);
    // Both log formats, taken in turn (by the case's name) rather than both
    // each time: fewer processes forked beside the other tests of this binary.
    let format = if what.len().is_multiple_of(2) {
        "json"
    } else {
        "logfmt"
    };
    for argv in [check, serve(format)] {
        let out = run(&argv, envs, dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {argv:?} accepted");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: {argv:?}: not a plain failure: {stderr}"
        );
        assert!(
            !stdout.contains(MARK) && !stderr.contains(MARK) && !stderr.contains("hunter2"),
            "{what}: {argv:?} printed the secret:\n{stdout}{stderr}"
        );
        for w in wanted {
            assert!(
                stderr.contains(w),
                "{what}: {argv:?}: `{w}` not named:\n{stderr}"
            );
        }
    }
    assert!(
        !Path::new(db).exists(),
        "{what}: serve went on to open the database"
    );
}

/// One way of writing `key` wrong: the file's text and the line the error
/// must name (None: any).
fn mistakes(table: &str, key: &str, value: &str) -> Vec<(&'static str, String, Option<usize>)> {
    let header = if table.is_empty() {
        String::new()
    } else {
        format!("[{table}]\n")
    };
    let h = usize::from(!table.is_empty());
    let dotted = if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    };
    vec![
        (
            "an unterminated string",
            format!("{header}{key} = \"{value}\n"),
            Some(h + 1),
        ),
        (
            "an unquoted value",
            format!("{header}{key} = {value}\n"),
            Some(h + 1),
        ),
        (
            "a duplicate key",
            format!("{header}{key} = \"{value}\"\n{key} = \"{value}-2\"\n"),
            Some(h + 2),
        ),
        (
            "a table for a string",
            format!("{header}{key} = {{ inner = \"{value}\" }}\n"),
            Some(h + 1),
        ),
        (
            "a number in a list",
            format!("{header}{key} = [\"{value}\", 7]\n"),
            Some(h + 1),
        ),
        (
            "an unknown key beside it",
            format!("{header}{key} = \"{value}\"\n{key}_typo = \"{value}\"\n"),
            Some(h + 2),
        ),
        (
            "a dotted key left open",
            format!("{dotted} = \"{value}\n"),
            Some(1),
        ),
        (
            "a string left open over lines",
            format!("{header}{key} = \"\"\"\n{value}\nmore = {value}\n"),
            None,
        ),
    ]
}

#[test]
fn no_file_error_prints_the_value_of_a_secret_key() {
    let keys = secret_keys();
    let dir = tempfile::tempdir().unwrap();
    // A `*_file` key names a file whose content is the secret; its path
    // carries the mark too, so an echoed line would show.
    let secret_file = dir.path().join(format!("hunter2-{MARK}-file"));
    std::fs::write(&secret_file, format!("hunter2-{MARK}-content\n")).unwrap();
    std::thread::scope(|scope| {
        for chunk in keys.chunks(keys.len().div_ceil(4)) {
            let (dir, secret_file, keys) = (dir.path(), &secret_file, &keys);
            scope.spawn(move || {
                for (table, key) in chunk {
                    let value = if key.ends_with("_file") {
                        secret_file.display().to_string()
                    } else {
                        format!("hunter2-{MARK}")
                    };
                    let full = format!("{table}.{key}").trim_start_matches('.').to_owned();
                    for (i, (what, text, line)) in
                        mistakes(table, key, &value).into_iter().enumerate()
                    {
                        // Named by number: the key must come from the message.
                        let n = keys.iter().position(|k| k == &(table.clone(), key.clone()));
                        let name = format!("f{}-{i}.toml", n.unwrap_or(0));
                        let file = dir.join(&name);
                        std::fs::write(&file, &text).unwrap();
                        let at = match line {
                            Some(l) => format!("{name}:{l}:"),
                            None => format!("{name}:"),
                        };
                        refused_everywhere(
                            &format!("{full}, {what}"),
                            &["--config", file.to_str().unwrap()],
                            &[],
                            dir,
                            &[&at, key],
                        );
                    }
                }
            });
        }
    });
}

#[test]
fn secret_environment_variables_with_wrong_values_are_named_never_echoed() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = format!("hunter2-{MARK}");
    let os = |s: &str| std::ffi::OsStr::new(s).to_owned();
    let cases: Vec<(&str, std::ffi::OsString)> = vec![
        ("BUG_ESCAPE_API_TOKEN", os(&format!("{secret}\u{1}x"))),
        ("BUG_ESCAPE_API_TOKEN", os(" \t ")),
        (
            "BUG_ESCAPE_GITHUB_API_TOKEN",
            os(&format!("{secret}\nnext")),
        ),
        ("BUG_ESCAPE_GITLAB_TOKEN", os(&format!("{secret}\u{7f}"))),
        ("BUG_ESCAPE_GITLAB_SIGNING_SECRET", os(&secret)),
        (
            "BUG_ESCAPE_GITHUB_SECRET",
            os(&format!("{secret},other,{secret}")),
        ),
        ("BUG_ESCAPE_SENTRY_API_TOKEN", os("  ")),
        ("BUG_ESCAPE_JIRA_API_TOKEN", os(&format!("{secret}\rx"))),
        (
            "BUG_ESCAPE_SENTRY_SECRET",
            std::ffi::OsStr::from_bytes(b"hunter2-SUPERSECRET\xff").to_owned(),
        ),
    ];
    for (name, value) in &cases {
        refused_everywhere(
            &format!("{name}={value:?}"),
            &[],
            &[(name, value.as_os_str())],
            dir.path(),
            &[name],
        );
    }
}

#[test]
fn web_configuration_errors_never_print_a_hash_or_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let hash = format!("$2y$10$hunter2{MARK}abcdefghijklmnopqrstuvwxyz0123456789ab");
    let cases = [
        (
            "a hash where the users go",
            format!("basic_auth_users: \"{hash}\"\n"),
        ),
        (
            "a hash one level off",
            format!("basic_auth_users:\n{hash}\n"),
        ),
        (
            "a list of hashes",
            format!("basic_auth_users:\n  alice: [\"{hash}\"]\n"),
        ),
        (
            "a hash left open",
            format!("basic_auth_users:\n  alice: \"{hash}\n"),
        ),
        (
            "a user twice",
            format!("basic_auth_users:\n  alice: {hash}\n  alice: {hash}x\n"),
        ),
        (
            "not a hash",
            format!("basic_auth_users:\n  alice: hunter2-{MARK}\n"),
        ),
        (
            "a private key where the TLS table goes",
            format!("tls_server_config: \"-----BEGIN PRIVATE KEY----- {MARK}\"\n"),
        ),
        (
            "a private key as a list",
            format!("tls_server_config:\n  cert_file: c.pem\n  key: [\"{MARK}\"]\n"),
        ),
    ];
    for (i, (what, yaml)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("web-{i}.yml"));
        std::fs::write(&file, yaml).unwrap();
        refused_everywhere(
            what,
            &["--web.config.file", file.to_str().unwrap()],
            &[],
            dir.path(),
            &[&format!("web-{i}.yml")],
        );
    }
}
