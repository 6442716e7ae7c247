//! The reference pages under `docs/` match what the exporter does:
//! `docs/metrics.md` lists exactly the families a real exporter serves (with
//! their type and label names), and `docs/configuration.md` lists exactly the
//! keys `Settings` accepts (with their environment variables and defaults),
//! every flag and sub-command of `--help`, and a file using every key that
//! `check-config` accepts. Every relative link of `README.md` and `docs/`
//! leads to a file that exists (and to a heading of it, for `#anchor`s), and
//! the README stays a front page (at most 400 lines) with the detail in
//! `docs/`.
//!
//! Adding a metric, a key, a flag or a sub-command makes these tests fail until
//! the page has a line for it; moving or renaming a page or a heading makes
//! them fail until the links follow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use bug_escape_exporter::config::webhooks::WebhooksSettings;
use bug_escape_exporter::config::{
    BandOverride, ENV_KEYS, ProductSettings, Settings, UnderReportingOverride,
};
use serde_json::{Value, json};

use crate::helpers::{Exposition, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between the line `start` and the next line starting with `end`
/// (or the end of the text).
fn section<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(&format!("\n{start}\n"))
        .unwrap_or_else(|| panic!("no `{start}` heading"))
        + start.len()
        + 2;
    let rest = &text[from..];
    match rest.find(&format!("\n{end}")) {
        Some(to) => &rest[..to],
        None => rest,
    }
}

/// Differences between two sets (`what` is "<real> vs <documented>"), as one
/// message naming what only one side has.
fn diff<T: std::fmt::Debug + Ord>(
    what: &str,
    documented: &BTreeSet<T>,
    real: &BTreeSet<T>,
) -> Option<String> {
    let missing: Vec<&T> = real.difference(documented).collect();
    let extra: Vec<&T> = documented.difference(real).collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let (left, right) = what.split_once(" vs ").unwrap_or((what, "the page"));
    Some(format!(
        "{what}: only in {left}: {missing:?}; only in {right}: {extra:?}"
    ))
}

// ---------------------------------------------------------------------------
// docs/metrics.md
// ---------------------------------------------------------------------------

/// Families that may be absent from a scrape even with data covering every
/// state the test can produce, with the reason. They must still be
/// documented; when served, their type and labels are checked like the rest.
const CONDITIONAL: &[(&str, &str)] = &[
    (
        "bug_escape_sync_last_success_timestamp_seconds",
        "absent until a sync pass of the source has completed",
    ),
    (
        "bug_escape_sync_last_failure_timestamp_seconds",
        "absent until a pass of serve's reconcile has failed",
    ),
    (
        "process_max_fds",
        "absent when the open-file limit is unlimited",
    ),
    #[cfg(not(target_os = "linux"))]
    (
        "process_cpu_seconds_total",
        "process metrics are Linux only",
    ),
    #[cfg(not(target_os = "linux"))]
    (
        "process_resident_memory_bytes",
        "process metrics are Linux only",
    ),
    #[cfg(not(target_os = "linux"))]
    (
        "process_virtual_memory_bytes",
        "process metrics are Linux only",
    ),
    #[cfg(not(target_os = "linux"))]
    ("process_open_fds", "process metrics are Linux only"),
    #[cfg(not(target_os = "linux"))]
    (
        "process_start_time_seconds",
        "process metrics are Linux only",
    ),
];

/// Each `### \`name\`` section of docs/metrics.md: its type and label names.
fn documented_metrics() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = doc("metrics.md");
    let heading = regex::Regex::new(r"(?m)^### `([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*$").unwrap();
    let backticked = regex::Regex::new(r"`([^`]+)`").unwrap();
    let starts: Vec<(usize, String)> = heading
        .captures_iter(&text)
        .map(|c| (c.get(0).unwrap().start(), c[1].to_owned()))
        .collect();
    let mut out = BTreeMap::new();
    for (i, (start, name)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |s| s.0);
        let body = &text[*start..end];
        let line = |prefix: &str| {
            body.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("docs/metrics.md: `{name}` has no `{prefix}` line"))
                .trim()
                .to_owned()
        };
        let kind = line("- type: ");
        let labels_line = line("- labels: ");
        let labels: BTreeSet<String> = if labels_line == "none" {
            BTreeSet::new()
        } else {
            backticked
                .captures_iter(&labels_line)
                .map(|c| c[1].to_owned())
                .collect()
        };
        assert!(
            body.contains("```promql\n"),
            "docs/metrics.md: `{name}` has no PromQL example"
        );
        let previous = out.insert(name.clone(), (kind, labels));
        assert!(previous.is_none(), "docs/metrics.md lists `{name}` twice");
    }
    assert!(
        out.len() > 40,
        "only {} metrics found in docs/metrics.md",
        out.len()
    );
    out
}

/// An exporter holding data for every family: defects at every stage, causes,
/// detectors, severities, an unattributed and an unclassified-free product,
/// a release time old enough for the maturity age, a leak target, more
/// releases than `max_releases` and more products than `max_products` (the
/// "left out" gauges), and webhook traffic.
async fn every_family() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = crate::helpers::settings(dir.path());
    s.stages[3].leak_target = Some(0.5);
    s.max_releases = 2;
    s.max_products = 2;
    let app = crate::helpers::spawn_with(s).await;
    let at = |days_ago: i64| (chrono::Utc::now() - chrono::Duration::days(days_ago)).to_rfc3339();
    let mut events = vec![];
    for (i, stage) in ["development", "code_review", "automated_tests", "qa", "qa"]
        .iter()
        .enumerate()
    {
        events.push(
            json!({"id": format!("d{i}"), "stage": stage, "release": "1.0", "found_at": at(59)}),
        );
    }
    events.push(
        json!({"id": "p1", "stage": "production", "release": "1.0", "found_at": at(58),
        "cause": "coverage", "detected_by": "user", "severity": "high"}),
    );
    events.push(json!({"id": "p2", "stage": "production", "release": "1.0", "found_at": at(10)}));
    // Enough defects past qa (12, 10 of them escaped) for qa to fail its target.
    for i in 3..11 {
        events.push(json!({"id": format!("p{i}"), "stage": "production", "release": "1.0", "found_at": at(10)}));
    }
    events.push(json!({"id": "unattributed", "stage": "production"}));
    for release in ["0.8", "0.9"] {
        events.push(json!({"id": format!("old-{release}"), "stage": "qa", "release": release, "found_at": at(200)}));
    }
    for product in ["alpha", "beta", "gamma"] {
        events.push(json!({"id": format!("{product}-1"), "stage": "qa", "product": product, "release": "1.0", "found_at": at(300)}));
    }
    app.events(Value::Array(events)).await;
    app.release("default", "1.0", &at(60)).await;
    // A webhook the exporter refuses (no secret configured): webhook counters move.
    let resp = app.post("/webhooks/github", &json!({"zen": "hello"})).await;
    assert_eq!(resp.status(), 503);
    (app, dir)
}

#[tokio::test]
async fn metrics_doc_lists_exactly_the_families_served() {
    let documented = documented_metrics();
    let (app, _dir) = every_family().await;
    let text = app.get_text("/metrics", "text/plain").await;
    app.stop().await;
    let exposition = Exposition::classic(&text);
    let mut served: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for (name, labels, _) in &exposition.samples {
        let kind = exposition.types.get(name).cloned().unwrap_or_default();
        served
            .entry(name.clone())
            .or_insert_with(|| (kind, BTreeSet::new()))
            .1
            .extend(labels.keys().cloned());
    }
    // The data above must reach the states that make families appear: check
    // the ones that need it, so a weaker fixture cannot pass by accident.
    for needed in [
        "bug_escape_rate_at_age_ratio",
        "bug_escape_release_defects_at_age",
        "bug_escape_escaped_defects_at_age_by_detector",
        "bug_escape_stage_leak_target_ratio",
        "bug_escape_release_failing_stage_info",
        "bug_escape_release_timestamp_seconds",
        "bug_escape_last_event_timestamp_seconds",
    ] {
        assert!(served.contains_key(needed), "{needed} not produced");
    }
    assert!(exposition.value("bug_escape_products_left_out", &[]) > 0.0);
    assert!(exposition.value("bug_escape_releases_left_out", &[("product", "default")]) > 0.0);
    assert!(
        exposition.value(
            "bug_escape_events_rejected_total",
            &[("source", "github"), ("reason", "not_configured")]
        ) > 0.0
    );

    let mut problems = Vec::new();
    let served_names: BTreeSet<String> = served.keys().cloned().collect();
    let mut documented_names: BTreeSet<String> = documented.keys().cloned().collect();
    for (name, reason) in CONDITIONAL {
        assert!(
            documented.contains_key(*name),
            "conditional family {name} ({reason}) is not documented"
        );
        if !served_names.contains(*name) {
            documented_names.remove(*name);
        }
    }
    problems.extend(diff(
        "families of /metrics vs docs/metrics.md",
        &documented_names,
        &served_names,
    ));
    for (name, (kind, labels)) in &served {
        if let Some((doc_kind, doc_labels)) = documented.get(name) {
            if doc_kind != kind {
                problems.push(format!(
                    "{name}: documented as {doc_kind}, served as {kind}"
                ));
            }
            if doc_labels != labels {
                problems.push(format!(
                    "{name}: documented labels {doc_labels:?}, served labels {labels:?}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// docs/configuration.md
// ---------------------------------------------------------------------------

/// Leaf keys of a serialised value, in the page's notation: `a.b`, `a[].b`
/// for arrays of tables, free-form tables (`{}`) and arrays of values as leaves.
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                leaves(&format!("{prefix}{k}."), v, out);
            }
        }
        Value::Array(a) if a.first().is_some_and(Value::is_object) => {
            let key = prefix.trim_end_matches('.');
            for item in a {
                leaves(&format!("{key}[]."), item, out);
            }
        }
        _ => {
            out.insert(prefix.trim_end_matches('.').to_owned(), v.clone());
        }
    }
}

/// Every key `Settings` accepts, with its default: the defaults serialised,
/// with one product (`<product>`, band overrides present) so that the
/// per-product keys show.
fn accepted_keys() -> BTreeMap<String, Value> {
    let mut s = Settings::default();
    s.products.insert(
        "<product>".into(),
        ProductSettings {
            bands: Some(BandOverride::default()),
            under_reporting: Some(UnderReportingOverride::default()),
            ..ProductSettings::default()
        },
    );
    let mut out = BTreeMap::new();
    leaves("", &serde_json::to_value(&s).unwrap(), &mut out);
    assert!(
        out.contains_key("webhooks.github.prefixes.stage"),
        "{out:?}"
    );
    assert!(out.contains_key("stages[].leak_target"), "{out:?}");
    out
}

/// The environment variable of each key that has one: the top-level keys of
/// `ENV_KEYS`, and the webhook secrets, found by giving each variable
/// `apply_env` asks for a marker value and seeing which key takes it.
fn env_of_keys() -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = ENV_KEYS
        .iter()
        .map(|k| ((*k).to_owned(), format!("BUG_ESCAPE_{}", k.to_uppercase())))
        .collect();
    let asked = std::cell::RefCell::new(Vec::<String>::new());
    WebhooksSettings::default().apply_env(|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    });
    let asked = asked.into_inner();
    assert!(asked.len() >= 10, "apply_env asked for {asked:?}");
    for name in asked {
        let mut w = WebhooksSettings::default();
        w.apply_env(|n| (n == name).then(|| "env-marker".to_owned()));
        let mut keys = BTreeMap::new();
        leaves("webhooks.", &serde_json::to_value(&w).unwrap(), &mut keys);
        let set: Vec<String> = keys
            .into_iter()
            .filter(|(_, v)| v.to_string().contains("env-marker"))
            .map(|(k, _)| k)
            .collect();
        assert_eq!(set.len(), 1, "{name} sets {set:?}");
        out.insert(set[0].clone(), name);
    }
    out
}

/// The rows of the key tables: key → (environment variable, default cell).
fn documented_keys(text: &str) -> BTreeMap<String, (String, String)> {
    let keys = section(text, "## Keys", "## ");
    let row =
        regex::Regex::new(r"(?m)^\| `([a-z][a-z0-9_.<>\[\]]*)` \|([^|]*)\|([^|]*)\|").unwrap();
    let mut out = BTreeMap::new();
    for c in row.captures_iter(keys) {
        let env = c[2].trim().trim_matches('`').to_owned();
        let previous = out.insert(c[1].to_owned(), (env, c[3].trim().to_owned()));
        assert!(
            previous.is_none(),
            "docs/configuration.md lists `{}` twice",
            &c[1]
        );
    }
    out
}

/// The default as the page writes it (TOML), for values that have one form.
fn as_toml(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(format!("\"{s}\"")),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(a) => a
            .iter()
            .map(as_toml)
            .collect::<Option<Vec<_>>>()
            .map(|items| format!("[{}]", items.join(", "))),
        Value::Object(m) if m.is_empty() => Some("{}".into()),
        _ => None,
    }
}

#[test]
fn configuration_doc_lists_every_accepted_key_with_its_variable_and_default() {
    let text = doc("configuration.md");
    let documented = documented_keys(&text);
    let accepted = accepted_keys();
    let env = env_of_keys();
    let mut problems = Vec::new();
    problems.extend(diff(
        "keys of Settings vs docs/configuration.md",
        &documented.keys().cloned().collect(),
        &accepted.keys().cloned().collect(),
    ));
    for (key, (doc_env, doc_default)) in &documented {
        let want = env.get(key).map_or("", String::as_str);
        if doc_env != want {
            problems.push(format!(
                "{key}: environment documented as `{doc_env}`, the exporter reads `{want}`"
            ));
        }
        // Defaults: checked where the page gives one value (not per stage,
        // cause or product, where the row describes the list).
        let Some(default) = accepted.get(key) else {
            continue;
        };
        if key.contains("[]") || key.contains("<product>") || default.is_null() {
            continue;
        }
        let cell = doc_default.trim_start_matches('`');
        let ok = match (default.as_f64(), as_toml(default)) {
            (Some(n), _) => {
                cell.split(['`', ' '])
                    .next()
                    .and_then(|t| t.parse::<f64>().ok())
                    == Some(n)
            }
            (None, Some(t)) => cell.starts_with(&format!("{t}`")),
            (None, None) => true,
        };
        if !ok {
            problems.push(format!(
                "{key}: default documented as {doc_default}, the exporter's is {default}"
            ));
        }
    }
    for (key, var) in &env {
        if documented.get(key).is_none_or(|(e, _)| e != var) {
            problems.push(format!(
                "{var} (key {key}) is not documented next to its key"
            ));
        }
    }
    // Every `BUG_ESCAPE_*` the page names is a key's variable or one of the
    // variables listed besides the keys, which the code must read.
    let besides = section(&text, "### Environment variables besides the keys", "#");
    let var = regex::Regex::new(r"BUG_ESCAPE_[A-Z0-9_]+").unwrap();
    let others: BTreeSet<&str> = var.find_iter(besides).map(|m| m.as_str()).collect();
    let known: BTreeSet<&str> = env.values().map(String::as_str).collect();
    for m in var.find_iter(&text) {
        let v = m.as_str();
        if !known.contains(v) && !others.contains(v) {
            problems.push(format!(
                "{v} is named but is neither a key's variable nor listed besides the keys"
            ));
        }
    }
    for v in others {
        if !read_by_the_code(v) {
            problems.push(format!("{v} is listed but no source file reads it"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether a file of `src/`, `tests/` (this one aside) or `build.rs` names `var`.
fn read_by_the_code(var: &str) -> bool {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("tests"), root.join("build.rs")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs")
            && !p.ends_with("tests/api/docs.rs")
            && std::fs::read_to_string(&p).is_ok_and(|t| t.contains(var))
        {
            return true;
        }
    }
    false
}

/// Keys set by a TOML text, in the page's notation (`[[stages]]` → `stages[].`,
/// `[products.<name>]` → `products.<product>.`); inline tables are values.
fn toml_keys(toml: &str) -> BTreeSet<String> {
    let table = regex::Regex::new(r"^\[(\[?)([A-Za-z0-9_.\x22-]+)\]?\]$").unwrap();
    let assignment = regex::Regex::new(r"^([A-Za-z0-9_]+)\s*=").unwrap();
    let product = regex::Regex::new(r"^products\.[^.]+").unwrap();
    let mut prefix = String::new();
    let mut out = BTreeSet::new();
    for line in toml.lines().map(str::trim) {
        if let Some(c) = table.captures(line) {
            let name = product.replace(&c[2], "products.<product>");
            prefix = if c[1].is_empty() {
                format!("{name}.")
            } else {
                format!("{name}[].")
            };
        } else if let Some(c) = assignment.captures(line) {
            out.insert(format!("{prefix}{}", &c[1]));
        }
    }
    out
}

/// What `check-config` says of the file with every key's links.
const LINK_LINES: [&str; 4] = [
    "links: sentry issues of acme at acme.sentry.io/issues/<id> and \
     sentry.io/organizations/acme/issues/<id>\n",
    "links: jira issues at acme.atlassian.net/browse/<KEY-n> and bare keys of projects PAY\n",
    "links: github issues at github.com/<owner>/<repo>/issues/<n> and \
     <owner>/<repo>#<n> of acme/payments\n",
    "links read from: github, gitlab, jira issues (each also linked by its own name), \
     jira remote links (one API call per issue), sentry annotations and external issues \
     (one API call per issue)\n",
];

#[test]
fn the_file_with_every_key_uses_each_documented_key_and_passes_check_config() {
    let text = doc("configuration.md");
    let example = section(&text, "## Every key in one file", "## ");
    let toml = example
        .split("```toml\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("a TOML block under `## Every key in one file`");
    let documented: BTreeSet<String> = documented_keys(&text).into_keys().collect();
    if let Some(d) = diff(
        "the key tables vs the file with every key",
        &toml_keys(toml),
        &documented,
    ) {
        panic!("{d}");
    }
    // The secret files it names, created; then the real binary checks it.
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    for (name, content) in [
        ("api-token", "file-token"),
        ("github", "file-secret"),
        ("github-api", "file-token"),
        ("gitlab", "file-token"),
        ("gitlab-api", "file-token"),
        ("gitlab-signing", "whsec_b2xkLWtleQ=="),
        ("jira", "file-secret"),
        ("jira-api", "file-token"),
        ("sentry", "file-secret"),
        ("sentry-api", "file-token"),
        // A web configuration with one basic-auth user (the README's example hash).
        (
            "web-config.yml",
            "basic_auth_users:\n  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG",
        ),
    ] {
        std::fs::write(secrets.join(name), format!("{content}\n")).unwrap();
    }
    let file = dir.path().join("every-key.toml");
    std::fs::write(
        &file,
        toml.replace("/run/secrets/", &format!("{}/", secrets.display())),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .expect("binary runs");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("configuration OK")
            && LINK_LINES
                .iter()
                .all(|l| String::from_utf8_lossy(&out.stdout).contains(l)),
        "check-config refused the file with every key: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And a misspelt key in the same file is refused: the check is real.
    std::fs::write(
        &file,
        format!(
            "{}\nmax_releasez = 3\n",
            std::fs::read_to_string(&file)
                .unwrap()
                .split("\n[")
                .next()
                .unwrap()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .expect("binary runs");
    assert!(!out.status.success(), "a misspelt key passed check-config");
}

/// `--help` of the binary and of each sub-command: (sub-commands, flags).
fn help() -> (BTreeSet<String>, BTreeSet<String>) {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("binary runs");
        assert!(out.status.success(), "{args:?} failed");
        String::from_utf8(out.stdout).expect("UTF-8 help")
    };
    let top = run(&["--help"]);
    let commands: BTreeSet<String> = top
        .split("Commands:\n")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(commands.contains("serve"), "{top}");
    let flag = regex::Regex::new(r"(?:^|[\s,\[])(--?[A-Za-z][A-Za-z0-9.-]*)").unwrap();
    let mut flags = BTreeSet::new();
    let mut texts = vec![top];
    for c in commands.iter().filter(|c| *c != "help") {
        texts.push(run(&[c.as_str(), "--help"]));
    }
    for text in &texts {
        let options = text.split("Options:\n").nth(1).unwrap_or("");
        for line in options.lines() {
            // Flags are named at the start of an option line, and as aliases.
            let head = line
                .split("  ")
                .find(|p| !p.trim().is_empty())
                .unwrap_or("");
            let aliases = line.split("[aliases: ").nth(1).unwrap_or("");
            for part in [head, aliases] {
                flags.extend(flag.captures_iter(part).map(|c| c[1].to_owned()));
            }
        }
    }
    assert!(
        flags.contains("--web.listen-address") && flags.contains("--listen"),
        "{flags:?}"
    );
    (commands, flags)
}

#[test]
fn configuration_doc_lists_every_flag_and_sub_command_of_help() {
    let text = doc("configuration.md");
    let (commands, flags) = help();
    let command_rows = regex::Regex::new(r"(?m)^\| `([a-z][a-z-]*)` \|").unwrap();
    let documented_commands: BTreeSet<String> = command_rows
        .captures_iter(section(&text, "### Sub-commands", "#"))
        .map(|c| c[1].to_owned())
        .collect();
    let flag = regex::Regex::new(r"`(--?[A-Za-z][A-Za-z0-9.-]*)[ `]").unwrap();
    let documented_flags: BTreeSet<String> =
        flag.captures_iter(&text).map(|c| c[1].to_owned()).collect();
    let problems: Vec<String> = [
        diff(
            "sub-commands of --help vs docs/configuration.md",
            &documented_commands,
            &commands,
        ),
        diff(
            "flags of --help vs docs/configuration.md",
            &documented_flags,
            &flags,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------
// Links between README.md and docs/
// ---------------------------------------------------------------------------

/// `README.md` and every Markdown file under `docs/`.
fn pages() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("README.md")];
    let mut stack = vec![root.join("docs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` outside fenced code blocks, with their numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The anchors GitHub gives the headings of `text`: lower case, punctuation
/// dropped (letters, digits, `-` and `_` kept), spaces as `-`, and `-1`,
/// `-2` … after a repeated one.
fn anchors(text: &str) -> BTreeSet<String> {
    let heading = regex::Regex::new(r"^#{1,6} (.+)$").unwrap();
    let link = regex::Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose(text) {
        let Some(c) = heading.captures(line) else {
            continue;
        };
        let title = link.replace_all(c[1].trim(), "$1").to_lowercase();
        let slug: String = title
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 { slug } else { format!("{slug}-{n}") });
        *n += 1;
    }
    out
}

#[test]
fn every_relative_link_of_the_readme_and_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let code = regex::Regex::new(r"`[^`]*`").unwrap();
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(root).unwrap().display().to_string();
        for (n, line) in prose(&text) {
            let line = code.replace_all(line, "");
            for c in link.captures_iter(&line) {
                let target = &c[1];
                if target.contains(':') && !target.starts_with('#') {
                    continue; // https:, mailto: …
                }
                checked += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                let file = if path.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(path)
                };
                if !file.exists() {
                    problems.push(format!("{name}:{n}: {target}: no such file"));
                    continue;
                }
                let is_page = file.extension().is_some_and(|e| e == "md");
                if !anchor.is_empty()
                    && is_page
                    && !anchors(&std::fs::read_to_string(&file).unwrap()).contains(anchor)
                {
                    problems.push(format!("{name}:{n}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} links found");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_stays_a_front_page_that_links_every_docs_page() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 400,
        "README.md has {lines} lines: move detail into a page of docs/"
    );
    // Every page is reachable: docs/README.md lists each one, and the README
    // links docs/README.md.
    assert!(
        readme.contains("(docs/README.md)"),
        "README.md links no index"
    );
    let index = std::fs::read_to_string(root.join("docs/README.md")).unwrap();
    let docs = root.join("docs");
    for page in pages().iter().filter(|p| p.starts_with(&docs)) {
        let rel = page.strip_prefix(&docs).unwrap().display().to_string();
        if rel != "README.md" {
            assert!(
                index.contains(&format!("]({rel})")),
                "docs/README.md does not list {rel}"
            );
        }
    }
}
