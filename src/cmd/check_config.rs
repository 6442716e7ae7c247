//! `check-config`: loads a configuration (and a web configuration) as `serve`
//! would, says what it found, and prints the web configuration's warnings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{complain, load, say};
use crate::config::{Config, Overrides};
use crate::sources::links::LinkTargets;

/// Checks the configuration of `file` and `web_config_file`.
pub fn run(file: Option<&Path>, web_config_file: Option<PathBuf>) -> ExitCode {
    let flags = Overrides {
        web_config_file,
        ..Overrides::default()
    };
    let c = match load(file, &flags) {
        Ok(c) => c,
        Err(e) => {
            complain(&e);
            return ExitCode::FAILURE;
        }
    };
    say(&format!("configuration OK: stages {}", c.pipeline.names()));
    for line in links(&c) {
        say(&line);
    }
    if let Some(file) = &c.web.file {
        say(&format!(
            "web configuration OK ({}): TLS {}, client certificates {}, {} basic-auth user(s)",
            file.display(),
            if c.web.tls.is_some() { "on" } else { "off" },
            c.web.client_auth.map_or("none", |a| a.as_str()),
            c.web.basic_auth_users.len()
        ));
    }
    for warning in &c.web.warnings {
        complain(&format!("warning: {warning}"));
    }
    ExitCode::SUCCESS
}

/// Which URLs and names count as links to whose issues (one line each),
/// and which sources' records are read for them; empty when none count.
fn links(c: &Config) -> Vec<String> {
    let targets = LinkTargets::of(c);
    if targets.is_empty() {
        return Vec::new();
    }
    let w = &c.webhooks;
    let mut lines: Vec<String> = targets
        .describe()
        .into_iter()
        .map(|t| format!("links: {t}"))
        .collect();
    let issues: Vec<&str> = [
        ("github", w.github.links),
        ("gitlab", w.gitlab.links),
        ("jira", w.jira.links),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    let mut read = Vec::new();
    if !issues.is_empty() {
        read.push(format!(
            "{} issues (each also linked by its own name)",
            issues.join(", ")
        ));
    }
    if crate::sources::jira::remote::wanted(c) {
        read.push("jira remote links (one API call per issue)".to_owned());
    }
    if crate::sources::sentry::external::wanted(c) {
        read.push("sentry annotations and external issues (one API call per issue)".to_owned());
    } else if w.sentry.links {
        read.push("sentry annotations".to_owned());
    }
    if !read.is_empty() {
        lines.push(format!("links read from: {}", read.join(", ")));
    }
    lines
}
