//! Tests of the `[webhooks.*]` settings and their validation.

use super::*;
use crate::config::{Config, Settings};
use std::time::Duration;

fn with(f: impl FnOnce(&mut WebhooksSettings)) -> Result<Config, ConfigError> {
    let mut s = Settings::default();
    f(&mut s.webhooks);
    Config::from_settings(s)
}

#[test]
fn secrets_split_on_commas_and_lines_and_are_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret");
    std::fs::write(&file, "from-file\n\n  second \n").expect("write");
    let c = with(|w| {
        w.github.auth.secret = Some(SecretSetting::One("a, b".into()));
        w.github.auth.secret_file = Some(file.clone());
    })
    .expect("valid");
    let got: Vec<&[u8]> = c.webhooks.github.secrets.iter().collect();
    assert_eq!(
        got,
        vec![&b"a"[..], &b"b"[..], &b"from-file"[..], &b"second"[..]]
    );
    assert!(!format!("{c:?}").contains("from-file"));
    assert!(c.webhooks.gitlab.secrets.is_empty());
}

#[test]
fn an_api_url_with_credentials_is_refused_naming_the_key_not_them() {
    let url = "https://bot:pw-SECRET@ghe.example.com/api/v3";
    let e = with(|w| w.github.api.api_url = url.into()).expect_err("refused");
    assert!(e.0.starts_with("webhooks.github.api_url:"), "{}", e.0);
    assert!(e.0.contains("user name or password"), "{}", e.0);
    assert!(!e.0.contains("SECRET"), "{}", e.0);
    let e = with(|w| w.sentry.api.api_url = "http://u:pw-SECRET@sentry.local".into())
        .expect_err("refused");
    assert!(e.0.starts_with("webhooks.sentry.api_url:") && !e.0.contains("SECRET"));
    // Without credentials, and with a port and a path, it is taken.
    let c = with(|w| w.github.api.api_url = "http://127.0.0.1:8080/api/".into()).expect("valid");
    assert_eq!(c.webhooks.github.api.url, "http://127.0.0.1:8080/api");
}

#[test]
fn environment_secrets_are_read_verbatim() {
    let mut w = WebhooksSettings::default();
    w.apply_env(|k| (k == "BUG_ESCAPE_JIRA_SECRET").then(|| "0012".to_owned()));
    let c = Config::from_settings(Settings {
        webhooks: w,
        ..Settings::default()
    })
    .expect("valid");
    assert_eq!(c.webhooks.jira.secrets.iter().next(), Some(&b"0012"[..]));
}

#[test]
fn one_mapping_reads_every_secret_variable() {
    let mut w = WebhooksSettings::default();
    w.apply_env(|k| {
        k.strip_prefix("BUG_ESCAPE_")
            .filter(|rest| !rest.contains("SIGNING"))
            .map(|rest| format!("{rest}, b"))
    });
    let one = |s: &Option<SecretSetting>| match s {
        Some(SecretSetting::One(v)) => v.clone(),
        other => panic!("{other:?}"),
    };
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    assert_eq!(one(&w.github.auth.secret), "GITHUB_SECRET, b");
    assert_eq!(
        path(&w.github.auth.secret_file).as_deref(),
        Some("GITHUB_SECRET_FILE, b")
    );
    assert_eq!(one(&w.gitlab.token), "GITLAB_TOKEN, b");
    assert_eq!(
        path(&w.gitlab.token_file).as_deref(),
        Some("GITLAB_TOKEN_FILE, b")
    );
    assert!(w.gitlab.signing_secret.is_none());
    assert_eq!(one(&w.jira.auth.secret), "JIRA_SECRET, b");
    assert_eq!(
        path(&w.jira.auth.secret_file).as_deref(),
        Some("JIRA_SECRET_FILE, b")
    );
    assert_eq!(one(&w.sentry.auth.secret), "SENTRY_SECRET, b");
    assert_eq!(
        path(&w.sentry.auth.secret_file).as_deref(),
        Some("SENTRY_SECRET_FILE, b")
    );
    // The API token is one token: taken whole, never split on commas.
    assert_eq!(
        w.sentry.api.api_token.as_deref(),
        Some("SENTRY_API_TOKEN, b")
    );
    assert_eq!(
        path(&w.sentry.api.api_token_file).as_deref(),
        Some("SENTRY_API_TOKEN_FILE, b")
    );
    let mut w = WebhooksSettings::default();
    w.apply_env(|k| (k == "BUG_ESCAPE_GITLAB_SIGNING_SECRET_FILE").then(|| "f".into()));
    assert_eq!(path(&w.gitlab.signing_secret_file).as_deref(), Some("f"));
}

#[test]
fn every_documented_key_of_every_table_still_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        r#"
[webhooks.github]
secret = "s"
defect_labels = ["kind/bug"]
defect_types = ["Bug"]
invalid_labels = ["wontdo"]
duplicate_labels = ["dupe"]
duplicate_reasons = ["duplicate"]
invalid_reasons = ["not_planned"]
milestone_as_release = true
default_stage = "qa"
prefixes = { release = "affects:" }
[webhooks.gitlab]
token = ["a", "b"]
defect_labels = ["bug"]
defect_types = ["Incident"]
invalid_labels = ["invalid"]
duplicate_labels = ["duplicate"]
milestones = { "7" = "1.0" }
default_stage = "production"
[webhooks.jira]
secret = "j"
defect_types = ["Bug"]
defect_labels = []
invalid_labels = ["invalid"]
duplicate_labels = ["duplicate"]
invalid_resolutions = ["Invalid"]
duplicate_resolutions = ["Duplicate"]
stage_field = "customfield_1"
project_keys = { "1" = "PAY" }
default_stage = "qa"
[webhooks.jira.prefixes]
team = "squad:"
[webhooks.sentry]
secret = ["s1", "s2"]
count_issues = false
default_stage = "production"
detected_by = "user"
archived = "delete"
api_token = "t,with,commas"
api_url = "https://sentry.example.com/"
organization = "acme"
api_timeout = "2s"
"#,
    )
    .expect("write");
    let s = Settings::load(Some(&file), &Default::default()).expect("load");
    let c = Config::from_settings(s).expect("valid");
    let w = &c.webhooks;
    assert_eq!(w.github.conventions.defect_labels, ["kind/bug"]);
    assert_eq!(w.github.conventions.release_prefix, "affects:");
    assert_eq!(w.github.conventions.stage_prefix, "stage:");
    assert_eq!(w.github.invalid_reasons, ["not_planned"]);
    assert_eq!(w.gitlab.secrets.iter().count(), 2);
    assert_eq!(w.gitlab.conventions.defect_types, ["incident"]);
    assert_eq!(
        w.gitlab.conventions.default_stage.as_deref(),
        Some("production")
    );
    assert!(w.jira.conventions.defect_labels.is_empty());
    assert_eq!(w.jira.conventions.team_prefix, "squad:");
    assert_eq!(w.jira.stage_field.as_deref(), Some("customfield_1"));
    assert_eq!(w.sentry.secrets.iter().count(), 2);
    assert!(!w.sentry.count_issues);
    assert_eq!(w.sentry.archived, Disposition::Delete);
    assert_eq!(w.sentry.api_url, "https://sentry.example.com");
    let token: Vec<&[u8]> = w.sentry.api_token.as_ref().expect("token").iter().collect();
    assert_eq!(token, vec![&b"t,with,commas"[..]]);
    // Defaults that differ per source survive the shared part.
    let d = Config::from_settings(Settings::default()).expect("valid");
    assert_eq!(d.webhooks.github.conventions.defect_types, ["bug"]);
    assert!(d.webhooks.gitlab.conventions.defect_types.is_empty());
    assert_eq!(d.webhooks.jira.conventions.defect_types, ["bug"]);
}

#[test]
fn gitlab_signing_secrets_are_decoded_and_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("signing");
    std::fs::write(&file, "whsec_b2xkLWtleQ==\n").expect("write");
    let mut w = WebhooksSettings::default();
    w.apply_env(|k| match k {
        "BUG_ESCAPE_GITLAB_SIGNING_SECRET" => Some("whsec_bmV3LWtleQ==".to_owned()),
        "BUG_ESCAPE_GITLAB_SIGNING_SECRET_FILE" => Some(file.display().to_string()),
        _ => None,
    });
    let c = Config::from_settings(Settings {
        webhooks: w,
        ..Settings::default()
    })
    .expect("valid");
    let keys: Vec<&[u8]> = c.webhooks.gitlab.signing_keys.iter().collect();
    assert_eq!(keys, vec![&b"new-key"[..], &b"old-key"[..]]);
    assert!(c.webhooks.gitlab.secrets.is_empty());
    assert!(!format!("{c:?}").contains("new-key"));
    for bad in ["bmV3LWtleQ==", "whsec_not base64!", "whsec_"] {
        let e = with(|w| w.gitlab.signing_secret = Some(SecretSetting::One(bad.into())));
        match e {
            Err(e) => {
                assert!(e.0.contains("webhooks.gitlab.signing_secret"), "{e}");
                assert!(bad == "whsec_" || !e.0.contains(bad), "{e}");
            }
            Ok(_) => panic!("`{bad}` was accepted"),
        }
    }
}

#[test]
fn bad_settings_name_the_key() {
    let e = with(|w| w.github.conventions.default_stage = Some("staging".into())).unwrap_err();
    assert!(e.0.contains("webhooks.github.default_stage"), "{e}");
    let e = with(|w| {
        w.gitlab.conventions.defect_labels.clear();
    })
    .unwrap_err();
    assert!(e.0.contains("webhooks.gitlab"), "{e}");
    let e = with(|w| w.jira.conventions.prefixes.stage = " ".into()).unwrap_err();
    assert!(e.0.contains("webhooks.jira.prefixes.stage"), "{e}");
    let e = with(|w| w.sentry.detected_by = "pager".into()).unwrap_err();
    assert!(e.0.contains("webhooks.sentry.detected_by"), "{e}");
    let e = with(|w| w.sentry.api.api_url = "sentry.io".into()).unwrap_err();
    assert!(e.0.contains("webhooks.sentry.api_url"), "{e}");
    let e = with(|w| w.sentry.api_timeout = "soon".into()).unwrap_err();
    assert!(e.0.contains("webhooks.sentry.api_timeout"), "{e}");
}

#[test]
fn github_sync_settings_are_validated_and_the_token_never_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "ghp_fromfile\n").expect("write");
    let mut w = WebhooksSettings::default();
    w.apply_env(|k| (k == "BUG_ESCAPE_GITHUB_API_TOKEN_FILE").then(|| file.display().to_string()));
    w.github.repositories = vec!["acme/payments".into(), " acme/web.site ".into()];
    w.github.sync_interval = Some("15m".into());
    w.github.api.api_url = "https://ghe.example.com/api/v3/".into();
    let c = Config::from_settings(Settings {
        webhooks: w,
        ..Settings::default()
    })
    .expect("valid");
    let gh = &c.webhooks.github;
    assert_eq!(gh.api.url, "https://ghe.example.com/api/v3");
    assert_eq!(gh.api.token().as_deref(), Some("ghp_fromfile"));
    assert_eq!(gh.repositories, ["acme/payments", "acme/web.site"]);
    assert_eq!(gh.sync_interval, Some(Duration::from_secs(900)));
    assert!(!format!("{c:?}").contains("ghp_fromfile"));
    let d = Config::from_settings(Settings::default()).expect("valid");
    assert_eq!(d.webhooks.github.api.url, "https://api.github.com");
    assert!(d.webhooks.github.api.token.is_none());
    assert_eq!(d.webhooks.github.sync_interval, None);
    for (f, key) in [
        (
            (|w: &mut WebhooksSettings| w.github.repositories = vec!["payments".into()])
                as fn(&mut WebhooksSettings),
            "webhooks.github.repositories[0]",
        ),
        (
            |w| w.github.repositories = vec!["a/b".into(), "A/B".into()],
            "webhooks.github.repositories[1]",
        ),
        (
            |w| w.github.api.api_url = "api.github.com".into(),
            "webhooks.github.api_url",
        ),
        (
            |w| w.github.api.api_token = Some(" ".into()),
            "webhooks.github.api_token",
        ),
        (
            |w| w.github.sync_interval = Some("0s".into()),
            "webhooks.github.sync_interval",
        ),
        // An interval with nothing to reconcile is a mistake, not a no-op.
        (
            |w| w.github.sync_interval = Some("1h".into()),
            "webhooks.github.sync_interval",
        ),
    ] {
        let e = with(f).unwrap_err();
        assert!(e.0.contains(key), "{key}: {e}");
    }
}

#[test]
fn gitlab_sync_settings_are_validated_and_the_token_never_printed() {
    let mut w = WebhooksSettings::default();
    w.apply_env(|k| (k == "BUG_ESCAPE_GITLAB_API_TOKEN").then(|| "glpat-secret".to_owned()));
    w.gitlab.projects = vec!["acme/sub/payments".into(), " 1234 ".into()];
    w.gitlab.sync_interval = Some("10m".into());
    w.gitlab.api.api_url = "https://gitlab.example.com/api/v4/".into();
    let c = Config::from_settings(Settings {
        webhooks: w,
        ..Settings::default()
    })
    .expect("valid");
    let gl = &c.webhooks.gitlab;
    assert_eq!(gl.api.url, "https://gitlab.example.com/api/v4");
    assert_eq!(gl.api.token().as_deref(), Some("glpat-secret"));
    assert_eq!(gl.projects, ["acme/sub/payments", "1234"]);
    assert_eq!(gl.sync_interval, Some(Duration::from_secs(600)));
    assert!(!format!("{c:?}").contains("glpat-secret"));
    let d = Config::from_settings(Settings::default()).expect("valid");
    assert_eq!(d.webhooks.gitlab.api.url, "https://gitlab.com/api/v4");
    for (f, key) in [
        (
            (|w: &mut WebhooksSettings| w.gitlab.projects = vec!["payments".into()])
                as fn(&mut WebhooksSettings),
            "webhooks.gitlab.projects[0]",
        ),
        (
            |w| w.gitlab.projects = vec!["a//b".into()],
            "webhooks.gitlab.projects[0]",
        ),
        (
            |w| w.gitlab.projects = vec!["a/b".into(), "A/B".into()],
            "webhooks.gitlab.projects[1]",
        ),
        (
            |w| w.gitlab.api.api_url = "gitlab.com".into(),
            "webhooks.gitlab.api_url",
        ),
        (
            |w| w.gitlab.sync_interval = Some("1h".into()),
            "webhooks.gitlab.sync_interval",
        ),
    ] {
        let e = with(f).unwrap_err();
        assert!(e.0.contains(key), "{key}: {e}");
    }
}

#[test]
fn jira_sync_settings_choose_the_search_and_name_bad_keys() {
    let c = with(|w| {
        w.jira.api.api_url = "https://acme.atlassian.net/".into();
        w.jira.api_user = Some("bot@acme.example".into());
        w.jira.projects = vec!["PAY".into(), "ops_2".into()];
        w.jira.sync_interval = Some("5m".into());
    })
    .expect("valid");
    let j = &c.webhooks.jira;
    assert_eq!(j.api.url, "https://acme.atlassian.net");
    assert_eq!(j.api_search, JiraSearch::Enhanced);
    assert_eq!(j.projects, ["PAY", "ops_2"]);
    let dc = with(|w| {
        w.jira.api.api_url = "https://jira.example.com/jira".into();
        w.jira.projects = vec!["PAY".into()];
    })
    .expect("valid");
    assert_eq!(dc.webhooks.jira.api_search, JiraSearch::V2);
    let d = Config::from_settings(Settings::default()).expect("valid");
    assert_eq!(d.webhooks.jira.api.url, "");
    for (f, key) in [
        (
            (|w: &mut WebhooksSettings| w.jira.projects = vec!["PAY".into()])
                as fn(&mut WebhooksSettings),
            "webhooks.jira.api_url",
        ),
        (
            |w| {
                w.jira.api.api_url = "https://j.example".into();
                w.jira.projects = vec!["PAY-1".into()];
            },
            "webhooks.jira.projects[0]",
        ),
        (
            |w| w.jira.api_search = Some("v3".into()),
            "webhooks.jira.api_search",
        ),
        (
            |w| w.jira.sync_interval = Some("1h".into()),
            "webhooks.jira.sync_interval",
        ),
    ] {
        let e = with(f).unwrap_err();
        assert!(e.0.contains(key), "{key}: {e}");
    }
}

#[test]
fn sentry_sync_needs_an_organization_and_projects() {
    let c = with(|w| {
        w.sentry.organization = Some("acme".into());
        w.sentry.projects = vec!["payments-api".into()];
        w.sentry.sync_interval = Some("15m".into());
    })
    .expect("valid");
    assert_eq!(c.webhooks.sentry.projects, ["payments-api"]);
    assert_eq!(
        c.webhooks.sentry.sync_interval,
        Some(Duration::from_secs(900))
    );
    assert_eq!(
        c.webhooks.sentry.retention,
        Duration::from_secs(90 * 86_400)
    );
    for (f, key) in [
        (
            (|w: &mut WebhooksSettings| w.sentry.projects = vec!["payments-api".into()])
                as fn(&mut WebhooksSettings),
            "webhooks.sentry.projects",
        ),
        (
            |w| w.sentry.sync_interval = Some("15m".into()),
            "webhooks.sentry.sync_interval",
        ),
        (
            |w| {
                w.sentry.organization = Some("acme".into());
                w.sentry.projects = vec!["Payments API".into()];
            },
            "webhooks.sentry.projects[0]",
        ),
        (
            |w| {
                w.sentry.organization = Some("acme".into());
                w.sentry.projects = vec!["a".into(), "a".into()];
            },
            "webhooks.sentry.projects[1]",
        ),
        (
            |w| w.sentry.retention = "forever".into(),
            "webhooks.sentry.retention",
        ),
    ] {
        let e = with(f).unwrap_err();
        assert!(e.0.contains(key), "{key}: {e}");
    }
}

#[test]
fn sentry_issues_land_in_the_first_production_stage_by_default() {
    let c = with(|_| {}).expect("valid");
    assert_eq!(
        c.webhooks.sentry.default_stage.as_deref(),
        Some("production")
    );
    let mut s = Settings::default();
    for st in &mut s.stages {
        if st.name == "production" {
            st.name = "live".into();
        }
    }
    let c = Config::from_settings(s).expect("valid");
    assert_eq!(c.webhooks.sentry.default_stage.as_deref(), Some("live"));
}

#[test]
fn toml_tables_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        r#"
[webhooks.github]
secret = ["one", "two"]
milestone_as_release = false
default_stage = "qa"
[webhooks.github.prefixes]
stage = "found-in:"
[webhooks.gitlab]
token = "t"
signing_secret = ["whsec_bmV3LWtleQ==", "whsec_b2xkLWtleQ=="]
milestones = { "103" = "v2.4.0" }
[webhooks.jira]
stage_field = "customfield_10050"
project_keys = { "10002" = "PAY" }
[webhooks.sentry]
archived = "invalid"
organization = "acme"
"#,
    )
    .expect("write");
    let s = Settings::load(Some(&file), &Default::default()).expect("load");
    let c = Config::from_settings(s).expect("valid");
    let w = &c.webhooks;
    assert_eq!(w.github.secrets.iter().count(), 2);
    assert!(!w.github.milestone_as_release);
    assert_eq!(w.github.conventions.stage_prefix, "found-in:");
    assert_eq!(w.github.conventions.default_stage.as_deref(), Some("qa"));
    assert_eq!(w.gitlab.milestones["103"], "v2.4.0");
    assert_eq!(w.gitlab.signing_keys.iter().count(), 2);
    assert_eq!(w.jira.project_keys["10002"], "PAY");
    assert_eq!(w.sentry.archived, Disposition::Invalid);
    assert_eq!(w.sentry.organization.as_deref(), Some("acme"));
}
