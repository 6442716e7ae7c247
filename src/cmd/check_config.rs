//! `check-config`: loads a configuration (and a web configuration) as `serve`
//! would, says what it found, and prints the web configuration's warnings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{complain, load, say};
use crate::config::{Config, Overrides};
use crate::sources::links::SentryTarget;

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
    if let Some(line) = links(&c) {
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

/// Which URLs count as links to Sentry issues, and whose descriptions are
/// read for them; `None` when none are.
fn links(c: &Config) -> Option<String> {
    let target = SentryTarget::of(c)?;
    let w = &c.webhooks;
    let readers: Vec<&str> = [
        ("github", w.github.links),
        ("gitlab", w.gitlab.links),
        ("jira", w.jira.links),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    if readers.is_empty() {
        return None;
    }
    Some(format!(
        "links: {}, read from {} issues",
        target.describe(),
        readers.join(", ")
    ))
}
