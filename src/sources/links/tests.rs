use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn sentry() -> SentryTarget {
    SentryTarget {
        org: "acme".into(),
        host: Some("sentry.example.com".into()),
    }
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn site(host: &str, base: &str) -> Site {
    Site {
        host: host.into(),
        base: base.into(),
    }
}

/// Every kind of target: Sentry `acme`, Jira at acme.atlassian.net with
/// PAY and OPS, GitHub acme/payments, GitLab group/sub/web at a self-managed
/// host under `/gitlab`.
fn all() -> LinkTargets {
    LinkTargets {
        sentry: Some(sentry()),
        jira: Some(JiraTarget {
            site: Some(site("acme.atlassian.net", "")),
            projects: set(&["PAY", "OPS", "A1_B"]),
        }),
        github: Some(GithubTarget {
            site: site("github.com", ""),
            repos: set(&["acme/payments"]),
        }),
        gitlab: Some(GitlabTarget {
            site: site("git.example.com", "/gitlab"),
            projects: set(&["group/sub/web"]),
        }),
    }
}

fn links(text: &str) -> Vec<String> {
    text_links(&all(), text)
        .into_iter()
        .map(|l| format!("{}:{}", l.source, l.id))
        .collect()
}

fn ids(text: &str) -> Vec<String> {
    let t = LinkTargets {
        sentry: Some(sentry()),
        ..LinkTargets::default()
    };
    text_links(&t, text)
        .into_iter()
        .map(|l| {
            assert_eq!(l.source, "sentry");
            l.id
        })
        .collect()
}

#[test]
fn configured_org_matches_with_query_and_fragment() {
    let t = "Sentry Issue: [PAY-1A](https://acme.sentry.io/issues/4711/?referrer=jira_integration)";
    assert_eq!(ids(t), ["4711"]);
    assert_eq!(ids("see https://ACME.sentry.io/issues/12#events"), ["12"]);
    assert_eq!(ids("https://acme.sentry.io/issues/13?x=1"), ["13"]);
    assert_eq!(ids("[x|https://acme.sentry.io/issues/14/]"), ["14"]);
}

#[test]
fn other_org_and_other_host_are_ignored() {
    assert!(ids("https://other.sentry.io/issues/4711/").is_empty());
    assert!(ids("https://acme.sentry.io.evil.com/issues/4711/").is_empty());
    assert!(ids("https://acme.sentry.io@evil.com/issues/4711/").is_empty());
    assert!(ids("https://evil.com/organizations/acme/issues/4711/").is_empty());
    assert!(ids("https://sentry.example.com/organizations/other/issues/4711/").is_empty());
    assert!(ids("ftp://acme.sentry.io/issues/4711/").is_empty());
}

#[test]
fn self_hosted_form_at_the_api_host() {
    assert_eq!(
        ids("http://sentry.example.com/organizations/acme/issues/99/?project=3"),
        ["99"]
    );
    // The self-hosted path form does not count at sentry.io unless
    // api_url names it; the SaaS form always does.
    assert!(ids("https://acme.sentry.io/organizations/acme/issues/5/").is_empty());
}

#[test]
fn duplicates_once_and_capped() {
    let t = "https://acme.sentry.io/issues/1/ https://acme.sentry.io/issues/2 \
             https://acme.sentry.io/issues/1/?a=b";
    assert_eq!(ids(t), ["1", "2"]);
    let many: String = (0..100)
        .map(|i| format!("https://acme.sentry.io/issues/{i}/ "))
        .collect();
    let got = ids(&many);
    assert_eq!(got.len(), MAX_LINKS_PER_RECORD);
    assert_eq!(got[0], "0");
    assert_eq!(got[31], "31");
}

#[test]
fn garbage_is_ignored() {
    for t in [
        "",
        "://",
        "https://",
        "https://acme.sentry.io",
        "https://acme.sentry.io/issues/",
        "https://acme.sentry.io/issues/abc/",
        "https://acme.sentry.io/issues/12abc/",
        "https://acme.sentry.io/issues/123456789012345678901234/",
        "https://acme.sentry.io/issue/12/",
        "ünïcödé://acme.sentry.io/issues/1é",
        "#",
        "/#1",
        "a/#1",
        "PAY-",
        "PAY--1",
        "-PAY-1",
        "https://acme.atlassian.net/browse/",
    ] {
        assert!(links(t).is_empty(), "{t}: {:?}", links(t));
    }
}

#[test]
fn jira_browse_urls_of_the_site_any_project_uppercase() {
    assert_eq!(
        links(
            "see https://acme.atlassian.net/browse/PAY-123 and https://ACME.atlassian.net/browse/web-7/?focusedCommentId=1"
        ),
        ["jira:PAY-123", "jira:WEB-7"]
    );
    assert_eq!(
        links(
            "https://acme.atlassian.net/jira/software/projects/PAY/boards/1?selectedIssue=PAY-9&x=1"
        ),
        ["jira:PAY-9"]
    );
    for t in [
        "https://other.atlassian.net/browse/PAY-123",
        "https://acme.atlassian.net.evil.com/browse/PAY-123",
        "https://acme.atlassian.net/browse/PAY-123x",
        "https://acme.atlassian.net/browse/PAY",
        "https://acme.atlassian.net/issues/PAY-123",
        "https://acme.atlassian.net/?selectedIssue=PAY-1x",
    ] {
        assert!(links(t).is_empty(), "{t}: {:?}", links(t));
    }
}

#[test]
fn jira_site_under_a_context_path() {
    let t = LinkTargets {
        jira: Some(JiraTarget {
            site: Some(site("jira.example.com:8443", "/jira")),
            projects: BTreeSet::new(),
        }),
        ..LinkTargets::default()
    };
    let got = |s: &str| text_links(&t, s).len();
    assert_eq!(got("https://jira.example.com:8443/jira/browse/PAY-1"), 1);
    assert_eq!(got("https://jira.example.com:8443/browse/PAY-1"), 0);
    assert_eq!(got("https://jira.example.com/jira/browse/PAY-1"), 0);
    assert_eq!(got("PAY-1"), 0, "no project configured: no bare key");
}

#[test]
fn bare_jira_keys_only_of_configured_projects_at_word_boundaries() {
    assert_eq!(
        links("Fixes PAY-123, see (OPS-4) and [PAY-5]: PAY-123 again; A1_B-9."),
        ["jira:PAY-123", "jira:OPS-4", "jira:PAY-5", "jira:A1_B-9"]
    );
    assert_eq!(links("branch PAY-77-login-fix"), ["jira:PAY-77"]);
    for t in [
        "UTF-8",
        "ISO-8601",
        "WEB-1",
        "pay-123",
        "Pay-123",
        "XPAY-1",
        "PAY-1x",
        "PAY-1_",
        "a.PAY-1",
        "x/PAY-1",
        "x-PAY-1",
        "user@PAY-1",
        "éPAY-1",
        "PAY-1é",
        "PAY1-1",
        "PAY-1234567890123456789",
    ] {
        assert!(links(t).is_empty(), "{t}: {:?}", links(t));
    }
}

#[test]
fn keys_and_names_inside_unconfigured_urls_do_not_count() {
    for t in [
        "https://other.atlassian.net/browse/PAY-123",
        "https://example.com/PAY-123",
        "https://github.com/other/repo/blob/main/acme/payments#12",
        "<a href=\"https://other.atlassian.net/browse/PAY-1\">x</a>",
    ] {
        assert!(links(t).is_empty(), "{t}: {:?}", links(t));
    }
    // The text of an HTML annotation names the same key as its URL: once.
    assert_eq!(
        links("<a href=\"https://acme.atlassian.net/browse/PAY-1\">PAY-1</a>"),
        ["jira:PAY-1"]
    );
    // The key of an unconfigured host's link text still counts on its own.
    assert_eq!(
        links("[PAY-2](https://other.atlassian.net/browse/PAY-2)"),
        ["jira:PAY-2"]
    );
}

#[test]
fn github_urls_and_shorthand_of_configured_repositories() {
    assert_eq!(
        links(
            "dup of https://github.com/Acme/Payments/issues/12#issuecomment-1 and acme/payments#13, Acme/Payments#12"
        ),
        ["github:acme/payments#12", "github:acme/payments#13"]
    );
    for t in [
        "https://github.com/acme/other/issues/12",
        "https://github.com/acme/payments/pull/12",
        "https://github.com/acme/payments/issues/12x",
        "https://github.com/acme/payments/issues/",
        "https://gitlab.com/acme/payments/issues/12",
        "https://github.com/acme/payments/issues",
        "acme/other#12",
        "xacme/payments#12",
        "acme/payments#12x",
        "acme/payments#",
        "#12",
        "payments#12",
        "éacme/payments#12",
    ] {
        assert!(links(t).is_empty(), "{t}: {:?}", links(t));
    }
}

#[test]
fn gitlab_urls_old_and_new_and_shorthand() {
    assert_eq!(
        links(
            "https://git.example.com/gitlab/group/sub/web/-/issues/4 \
             https://git.example.com/gitlab/Group/Sub/Web/issues/5/ \
             https://git.example.com/gitlab/group/sub/web/-/work_items/6?x \
             group/sub/web#7"
        ),
        [
            "gitlab:group/sub/web#4",
            "gitlab:group/sub/web#5",
            "gitlab:group/sub/web#6",
            "gitlab:group/sub/web#7"
        ]
    );
    for t in [
        "https://git.example.com/group/sub/web/-/issues/4",
        "https://git.example.com/gitlab/group/web/-/issues/4",
        "https://git.example.com/gitlab/group/sub/web/-/merge_requests/4",
        "https://evil.com/gitlab/group/sub/web/-/issues/4",
        "sub/web#7",
    ] {
        assert!(links(t).is_empty(), "{t}: {:?}", links(t));
    }
}

#[test]
fn punctuation_after_a_url_ends_it() {
    assert_eq!(
        links(
            "See https://acme.atlassian.net/browse/PAY-1. Also https://github.com/acme/payments/issues/2, \
             *https://git.example.com/gitlab/group/sub/web/-/issues/3*; https://acme.sentry.io/issues/4!"
        ),
        [
            "jira:PAY-1",
            "github:acme/payments#2",
            "gitlab:group/sub/web#3",
            "sentry:4"
        ]
    );
    assert_eq!(
        links(
            "<a href=\"https://acme.atlassian.net/secure/RapidBoard.jspa?rapidView=1&amp;selectedIssue=OPS-3\">x</a>"
        ),
        ["jira:OPS-3"]
    );
}

#[test]
fn mixed_text_in_order_each_once() {
    let t = "PAY-1 https://acme.sentry.io/issues/9/ acme/payments#3 \
             https://acme.atlassian.net/browse/PAY-1 group/sub/web#2 OPS-2";
    assert_eq!(
        links(t),
        [
            "jira:PAY-1",
            "sentry:9",
            "github:acme/payments#3",
            "gitlab:group/sub/web#2",
            "jira:OPS-2"
        ]
    );
}

#[test]
fn names_are_capped_too_and_keep_text_order_with_urls() {
    let keys: String = (0..50).map(|i| format!("PAY-{i} ")).collect();
    let got = links(&format!("https://acme.sentry.io/issues/1/ {keys}"));
    assert_eq!(got.len(), MAX_LINKS_PER_RECORD);
    assert_eq!(got[0], "sentry:1");
    assert_eq!(got[1], "jira:PAY-0");
    assert_eq!(got[31], "jira:PAY-30");
}

#[test]
fn a_long_text_of_nested_urls_and_names_is_read_in_one_pass() {
    // Each `://` inside one long URL: its end is found once, not once per
    // `://` (which would be quadratic in the text).
    let nested = "https://x.example/?u=".repeat(100_000);
    let text = format!("{nested}https://acme.sentry.io/issues/1/ PAY-2");
    assert_eq!(
        links(&text),
        ["jira:PAY-2"],
        "the nested URL is part of the first"
    );
    let names = "a/b#1 PAY-".repeat(100_000);
    assert!(links(&names).is_empty());
    let shorthand = format!("{}acme/payments#5", "acme/payments#".repeat(100_000));
    assert_eq!(links(&shorthand), ["github:acme/payments#5"]);
}

#[test]
fn nothing_configured_reads_nothing() {
    let t = LinkTargets::default();
    assert!(text_links(&t, "PAY-1 https://acme.sentry.io/issues/1/").is_empty());
}

fn config(org: Option<&str>) -> Config {
    let mut s = crate::config::Settings::default();
    s.webhooks.sentry.organization = org.map(str::to_owned);
    s.webhooks.sentry.api.api_url = "https://sentry.example.com".into();
    Config::from_settings(s).unwrap()
}

#[test]
fn ticket_text_present_absent_null_and_adf() {
    let c = config(Some("acme"));
    let one = |id: &str| {
        vec![LinkRef {
            source: "sentry".into(),
            id: id.into(),
        }]
    };
    let text = serde_json::json!("see https://acme.sentry.io/issues/7/");
    assert_eq!(record_links(&c, true, None, Some(&text)), Some(one("7")));
    assert_eq!(
        record_links(&c, false, None, Some(&text)),
        None,
        "switched off"
    );
    assert_eq!(
        record_links(&c, true, None, None),
        None,
        "absent keeps links"
    );
    let null = Value::Null;
    assert_eq!(record_links(&c, true, None, Some(&null)), Some(vec![]));
    let adf = serde_json::json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [
            {"type": "text", "text": "Sentry Issue: "},
            {"type": "text", "text": "FRONT-1", "marks": [{"type": "link", "attrs": {
                "href": "https://sentry.example.com/organizations/acme/issues/8/?referrer=jira"}}]},
            {"type": "inlineCard", "attrs": {"url": "https://other.sentry.io/issues/9/"}}
        ]}
    ]});
    assert_eq!(record_links(&c, true, None, Some(&adf)), Some(one("8")));
    assert_eq!(
        record_links(&config(None), true, None, Some(&text)),
        Some(vec![]),
        "no organisation: nothing links"
    );
}

#[test]
fn the_alias_comes_first_and_survives_the_cap() {
    let c = config(Some("acme"));
    let alias = jira_alias(Some("pay-5"));
    assert_eq!(
        alias,
        Some(LinkRef {
            source: "jira".into(),
            id: "PAY-5".into()
        })
    );
    let many: String = (0..100)
        .map(|i| format!("https://acme.sentry.io/issues/{i}/ "))
        .collect();
    let got = record_links(&c, true, alias.clone(), Some(&Value::String(many))).unwrap();
    assert_eq!(got.len(), MAX_LINKS_PER_RECORD);
    assert_eq!(got[0], alias.clone().unwrap());
    assert_eq!(got[1].id, "0");
    assert_eq!(
        record_links(&c, true, alias.clone(), Some(&Value::Null)),
        Some(vec![alias.clone().unwrap()])
    );
    assert_eq!(record_links(&c, true, alias.clone(), None), None);
    assert_eq!(record_links(&c, false, alias, Some(&Value::Null)), None);
    for bad in [
        None,
        Some(""),
        Some("PAY"),
        Some("PAY-"),
        Some("1PAY-2"),
        Some("PAY-x"),
    ] {
        assert_eq!(jira_alias(bad), None, "{bad:?}");
    }
    assert_eq!(
        path_alias("github", "Acme/Payments", "12").id,
        "acme/payments#12"
    );
}

#[test]
fn annotations_old_and_new_and_external_issues() {
    let t = all();
    let old = serde_json::json!([
        "<a href=\"https://acme.atlassian.net/browse/PAY-1\">PAY-1</a>",
        "<a href=\"https://other.atlassian.net/browse/XYZ-1\">XYZ-1</a>"
    ]);
    let new = serde_json::json!([
        {"displayName": "PAY-1", "url": "https://acme.atlassian.net/browse/PAY-1"},
        {"displayName": "acme/payments#4", "url": "https://github.com/acme/payments/issues/4"}
    ]);
    let external = serde_json::json!([
        {"id": "1", "key": "group/sub/web#3", "url": "https://git.example.com/gitlab/group/sub/web/-/issues/3",
         "serviceType": "gitlab", "displayName": "group/sub/web#3"}
    ]);
    let ids = |v: &Value| -> Vec<String> {
        annotation_links(&t, v)
            .into_iter()
            .map(|l| format!("{}:{}", l.source, l.id))
            .collect()
    };
    assert_eq!(ids(&old), ["jira:PAY-1"]);
    assert_eq!(ids(&new), ["jira:PAY-1", "github:acme/payments#4"]);
    assert_eq!(ids(&external), ["gitlab:group/sub/web#3"]);
    assert!(ids(&serde_json::json!([])).is_empty());
}

#[test]
fn targets_of_the_configuration() {
    let mut s = crate::config::Settings::default();
    s.webhooks.sentry.organization = Some("Acme".into());
    s.webhooks.jira.api.api_url = "https://jira.example.com/jira/".into();
    s.webhooks.jira.projects = vec!["pay".into()];
    s.webhooks.jira.project_keys = [("10000".to_owned(), "OPS".to_owned())].into();
    s.webhooks.github.api.api_url = "https://ghe.example.com/api/v3".into();
    s.webhooks.github.repositories = vec!["Acme/Web".into()];
    s.webhooks.gitlab.projects = vec!["42".into(), "Group/App".into()];
    let p = crate::config::ProductSettings {
        sources: vec![
            "jira:CORE".into(),
            "github:acme/payments".into(),
            "gitlab:group/lib".into(),
            "sentry:api".into(),
        ],
        ..Default::default()
    };
    s.products.insert("payments".into(), p);
    let c = Config::from_settings(s).unwrap();
    let t = LinkTargets::of(&c);
    assert_eq!(t.sentry.as_ref().unwrap().org, "acme");
    let j = t.jira.as_ref().unwrap();
    assert_eq!(j.site, Some(site("jira.example.com", "/jira")));
    assert_eq!(j.projects, set(&["CORE", "OPS", "PAY"]));
    let g = t.github.as_ref().unwrap();
    assert_eq!(g.site, site("ghe.example.com", ""));
    assert_eq!(g.repos, set(&["acme/payments", "acme/web"]));
    let g = t.gitlab.as_ref().unwrap();
    assert_eq!(g.site, site("gitlab.com", ""));
    assert_eq!(g.projects, set(&["group/app", "group/lib"]));
    assert_eq!(
        t.describe(),
        [
            "sentry issues of acme at acme.sentry.io/issues/<id> and \
             sentry.io/organizations/acme/issues/<id>",
            "jira issues at jira.example.com/jira/browse/<KEY-n> and bare keys of projects \
             CORE, OPS, PAY",
            "github issues at ghe.example.com/<owner>/<repo>/issues/<n> and <owner>/<repo>#<n> \
             of acme/payments, acme/web",
            "gitlab issues at gitlab.com/<project>/-/issues/<iid> and <project>#<iid> of \
             group/app, group/lib",
        ]
    );
    // github.com for the default API; a source switched off is no target.
    let mut s = crate::config::Settings::default();
    s.webhooks.github.repositories = vec!["acme/web".into()];
    s.webhooks.jira.projects = vec!["PAY".into()];
    s.webhooks.jira.api.api_url = "https://acme.atlassian.net".into();
    s.webhooks.jira.links = false;
    let t = LinkTargets::of(&Config::from_settings(s).unwrap());
    assert_eq!(t.github.unwrap().site, site("github.com", ""));
    assert_eq!(t.jira, None);
    assert_eq!(t.sentry, None);
}

proptest! {
    #[test]
    fn never_panics_and_stays_bounded(s in ".*", pre in "[a-zA-Z#/-]{0,3}") {
        let t = all();
        for text in [
            format!("{pre}https://acme.sentry.io/issues/{s}"),
            format!("{pre}https://acme.atlassian.net/browse/{s}"),
            format!("{pre}PAY-{s}"),
            format!("{s}acme/payments#{pre}{s}"),
            format!("https://git.example.com/gitlab/group/sub/web/{pre}{s}"),
            s.clone(),
        ] {
            let got = text_links(&t, &text);
            prop_assert!(got.len() <= MAX_LINKS_PER_RECORD);
            let distinct: BTreeSet<_> = got.iter().collect();
            prop_assert_eq!(distinct.len(), got.len());
        }
        let got = text_links(&t, &s);
        prop_assert!(got.iter().all(|l| l.source != "sentry" || l.id.bytes().all(|b| b.is_ascii_digit())));
    }

    #[test]
    fn arbitrary_bytes_of_the_alphabet_never_panic(
        s in proptest::collection::vec(
            prop_oneof![
                Just("https://"), Just("://"), Just("#"), Just("/"), Just("PAY-"), Just("1"),
                Just("acme/payments"), Just("é"), Just(" "), Just("acme.atlassian.net"),
                Just("/browse/"), Just("?selectedIssue="), Just("-/issues/"), Just(")"),
            ],
            0..40,
        )
    ) {
        let text: String = s.concat();
        let got = text_links(&all(), &text);
        prop_assert!(got.len() <= MAX_LINKS_PER_RECORD);
    }
}
