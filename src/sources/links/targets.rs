//! Which links count: the issues of each configured source that a text may
//! name (`LinkTargets`), read once from the configuration. A source whose
//! `links` is `false` is no target (and its records read no links).

use std::collections::BTreeSet;

use crate::config::Config;

/// The Sentry organisation whose issue URLs count as links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentryTarget {
    /// Organisation slug, lowercase.
    pub org: String,
    /// Host (and `:port`) of `api_url`, lowercase: where the
    /// `/organizations/<org>/issues/<id>/` form counts.
    pub host: Option<String>,
}

impl SentryTarget {
    /// The configured target; `None` without `[webhooks.sentry] organization`
    /// (the switch `links` is [`LinkTargets::of`]'s business).
    pub fn of(config: &Config) -> Option<Self> {
        let se = &config.webhooks.sentry;
        let org = se.organization.as_ref()?.trim().to_ascii_lowercase();
        if org.is_empty() {
            return None;
        }
        let host = Site::of(&se.api_url, "").map(|s| s.host);
        Some(Self { org, host })
    }

    /// The URLs that count, for `check-config`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "sentry issues of {0} at {0}.sentry.io/issues/<id>",
            self.org
        );
        if let Some(h) = &self.host {
            s.push_str(&format!(" and {h}/organizations/{}/issues/<id>", self.org));
        }
        s
    }
}

/// Where a tracker's web pages are: a host (and `:port`), lowercase, and the
/// path its pages sit under (`""`, or `/jira` for a Data Center context path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub host: String,
    /// Without a trailing `/`; `""` at the root.
    pub base: String,
}

impl Site {
    /// The site of an API URL, with `api_suffix` (`/api/v4`) removed from
    /// its path; `None` when it is not a URL with a host.
    pub fn of(api_url: &str, api_suffix: &str) -> Option<Self> {
        let u = url::Url::parse(api_url.trim()).ok()?;
        let h = u.host_str()?.to_ascii_lowercase();
        let host = match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h,
        };
        let path = u.path().trim_end_matches('/');
        let base = match path.len().checked_sub(api_suffix.len()) {
            Some(cut)
                if !api_suffix.is_empty()
                    && path.is_char_boundary(cut)
                    && path[cut..].eq_ignore_ascii_case(api_suffix) =>
            {
                &path[..cut]
            }
            _ => path,
        };
        Some(Self {
            host,
            base: base.to_owned(),
        })
    }
}

/// Jira: browse URLs of the site, and bare keys of the configured projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JiraTarget {
    /// The site of `[webhooks.jira] api_url`; `None`: unset, only bare keys count.
    pub site: Option<Site>,
    /// Project keys, uppercase: `jira:` namespaces of the products,
    /// `[webhooks.jira] projects` and `project_keys`.
    pub projects: BTreeSet<String>,
}

/// GitHub: issue URLs and `owner/repo#n` of the configured repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubTarget {
    /// `github.com` for `api.github.com`; a GitHub Enterprise host otherwise.
    pub site: Site,
    /// `owner/repo`, lowercase: `github:` namespaces and
    /// `[webhooks.github] repositories`.
    pub repos: BTreeSet<String>,
}

/// GitLab: issue URLs and `group/project#iid` of the configured projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitlabTarget {
    /// The site of `[webhooks.gitlab] api_url` (without `/api/v4`).
    pub site: Site,
    /// Paths, lowercase: `gitlab:` namespaces and the paths of
    /// `[webhooks.gitlab] projects` (numeric ids cannot be told from a URL).
    pub projects: BTreeSet<String>,
}

/// Every configured source's issues that count as links; `None` where a
/// source is not configured (nothing could match) or its `links` is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTargets {
    pub sentry: Option<SentryTarget>,
    pub jira: Option<JiraTarget>,
    pub github: Option<GithubTarget>,
    pub gitlab: Option<GitlabTarget>,
}

/// The namespaces of the products' `<kind>:` sources.
fn namespaces<'a>(config: &'a Config, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    config.source_map.keys().filter_map(move |k| {
        let (k, ns) = k.split_once(':')?;
        (k == kind).then_some(ns.trim())
    })
}

impl LinkTargets {
    /// The targets of `config`.
    pub fn of(config: &Config) -> Self {
        let w = &config.webhooks;
        Self {
            sentry: SentryTarget::of(config).filter(|_| w.sentry.links),
            jira: jira(config).filter(|_| w.jira.links),
            github: github(config).filter(|_| w.github.links),
            gitlab: gitlab(config).filter(|_| w.gitlab.links),
        }
    }

    /// Nothing counts.
    pub fn is_empty(&self) -> bool {
        self.sentry.is_none()
            && self.jira.is_none()
            && self.github.is_none()
            && self.gitlab.is_none()
    }

    /// One line per target: the URLs and names that count, for `check-config`.
    pub fn describe(&self) -> Vec<String> {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        let mut out = Vec::new();
        if let Some(s) = &self.sentry {
            out.push(s.describe());
        }
        if let Some(j) = &self.jira {
            let keys = format!("bare keys of projects {}", list(&j.projects));
            out.push(match (&j.site, j.projects.is_empty()) {
                (Some(s), true) => format!("jira issues at {}{}/browse/<KEY-n>", s.host, s.base),
                (Some(s), false) => {
                    format!(
                        "jira issues at {}{}/browse/<KEY-n> and {keys}",
                        s.host, s.base
                    )
                }
                (None, _) => format!("jira issues by {keys} (no api_url: no URL counts)"),
            });
        }
        if let Some(g) = &self.github {
            out.push(format!(
                "github issues at {}{}/<owner>/<repo>/issues/<n> and <owner>/<repo>#<n> of {}",
                g.site.host,
                g.site.base,
                list(&g.repos)
            ));
        }
        if let Some(g) = &self.gitlab {
            out.push(format!(
                "gitlab issues at {}{}/<project>/-/issues/<iid> and <project>#<iid> of {}",
                g.site.host,
                g.site.base,
                list(&g.projects)
            ));
        }
        out
    }
}

fn jira(config: &Config) -> Option<JiraTarget> {
    let j = &config.webhooks.jira;
    let site = if j.api.url.trim().is_empty() {
        None
    } else {
        Site::of(&j.api.url, "")
    };
    let projects: BTreeSet<String> = namespaces(config, "jira")
        .chain(j.projects.iter().map(String::as_str))
        .chain(j.project_keys.values().map(String::as_str))
        .map(|k| k.trim().to_ascii_uppercase())
        .filter(|k| is_project_key(k))
        .collect();
    (site.is_some() || !projects.is_empty()).then_some(JiraTarget { site, projects })
}

/// A Jira project key: an ASCII letter, then letters, digits or `_`.
pub(super) fn is_project_key(k: &str) -> bool {
    k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn github(config: &Config) -> Option<GithubTarget> {
    let g = &config.webhooks.github;
    let repos: BTreeSet<String> = namespaces(config, "github")
        .chain(g.repositories.iter().map(String::as_str))
        .map(|r| r.trim().to_lowercase())
        .filter(|r| r.split('/').count() == 2 && !r.starts_with('/') && !r.ends_with('/'))
        .collect();
    if repos.is_empty() {
        return None;
    }
    let mut site = Site::of(&g.api.url, "/api/v3")?;
    if site.host == "api.github.com" {
        site = Site {
            host: "github.com".into(),
            base: String::new(),
        };
    }
    Some(GithubTarget { site, repos })
}

fn gitlab(config: &Config) -> Option<GitlabTarget> {
    let g = &config.webhooks.gitlab;
    let projects: BTreeSet<String> = namespaces(config, "gitlab")
        .chain(g.projects.iter().map(String::as_str))
        .map(|p| p.trim().to_lowercase())
        .filter(|p| p.contains('/') && !p.starts_with('/') && !p.ends_with('/'))
        .collect();
    if projects.is_empty() {
        return None;
    }
    let site = Site::of(&g.api.url, "/api/v4")?;
    Some(GitlabTarget { site, projects })
}
