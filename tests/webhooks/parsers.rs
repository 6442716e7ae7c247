//! Property tests of every adapter's parser: arbitrary JSON, mutated real
//! payloads and arbitrary bytes never panic, and whatever is accepted is
//! storable (ids and label values within limits).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bug_escape_exporter::config::{Config, Settings};
use bug_escape_exporter::model::event::{Change, MAX_ID_LEN};
use bug_escape_exporter::model::item::Item;
use bug_escape_exporter::model::label::check_label;
use bug_escape_exporter::sources::webhook::{AdapterError, Parsed};
use bug_escape_exporter::sources::{github, gitlab, jira, sentry};
use proptest::prelude::*;
use serde_json::Value;

use crate::helpers::{self, fixture, fixture_names};

type Parser = fn(&HeaderMap, &Value, &Config, i64) -> Result<Parsed, AdapterError>;

const NOW: i64 = 1_700_000_000_000;

fn config() -> Config {
    let mut s = Settings::default();
    s.webhooks.github.conventions.default_stage = Some("qa".into());
    s.webhooks
        .gitlab
        .milestones
        .insert("103".into(), "v2.4.0".into());
    s.webhooks.jira.stage_field = Some("customfield_1".into());
    Config::from_settings(s).expect("config")
}

const KEYS: &[&str] = &[
    "action",
    "issue",
    "repository",
    "labels",
    "name",
    "title",
    "number",
    "id",
    "iid",
    "full_name",
    "updated_at",
    "created_at",
    "milestone",
    "state",
    "state_reason",
    "type",
    "changes",
    "new_issue",
    "new_repository",
    "release",
    "tag_name",
    "published_at",
    "draft",
    "object_kind",
    "object_attributes",
    "project",
    "path_with_namespace",
    "milestone_id",
    "moved_to_id",
    "duplicated_to_id",
    "tag",
    "released_at",
    "webhookEvent",
    "fields",
    "issuetype",
    "versions",
    "releaseDate",
    "updated",
    "created",
    "resolution",
    "version",
    "projectId",
    "timestamp",
    "key",
    "data",
    "error",
    "issue_id",
    "url",
    "slug",
    "lastSeen",
    "firstSeen",
    "status",
    "customfield_1",
];

const STRINGS: &[&str] = &[
    "2019-05-15T15:20:18Z",
    "2020-06-05 08:09:16 UTC",
    "2013-03-27T16:53:58.301+0000",
    "2999-01-01T00:00:00Z",
    "2024-01-01",
    "bug",
    "Bug",
    "stage:qa",
    "stage:",
    "release:v",
    "release:2.4.0",
    "cause:review",
    "severity:",
    "closed",
    "duplicate",
    "issue",
    "release",
    "opened",
    "deleted",
    "transferred",
    "published",
    "create",
    "jira:issue_created",
    "jira:issue_deleted",
    "jira:version_released",
    "created",
    "archived",
    "v",
    "",
    " ",
    "\u{0}",
    "a/b",
    "https://sentry.io/api/0/projects/o/p/events/1/",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_owned),
                        "[a-z_]{1,8}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Replaces the value found by walking `path` (child indices, modulo) with `new`.
fn mutate(v: &mut Value, path: &[usize], new: Value) {
    let Some((&i, rest)) = path.split_first() else {
        *v = new;
        return;
    };
    let child = match v {
        Value::Object(m) if !m.is_empty() => {
            let n = m.len();
            m.values_mut().nth(i % n)
        }
        Value::Array(a) if !a.is_empty() => {
            let n = a.len();
            a.get_mut(i % n)
        }
        _ => None,
    };
    match child {
        Some(c) if !rest.is_empty() => mutate(c, rest, new),
        Some(c) => *c = new,
        None => *v = new,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    h
}

/// Whatever an adapter accepts can be stored as it is.
fn check_storable(parsed: &Parsed) {
    for item in &parsed.items {
        match item {
            Item::Defect(d) => {
                assert!(
                    !d.id.is_empty() && d.id.chars().count() <= MAX_ID_LEN + 24,
                    "{d:?}"
                );
                assert!(check_label(&d.product.namespace).is_ok(), "{d:?}");
                if let Change::Upsert { class, .. } | Change::UpsertKeepRelease { class, .. } =
                    &d.change
                {
                    for v in [
                        &class.stage,
                        &class.release,
                        &class.cause,
                        &class.severity,
                        &class.team,
                        &class.detected_by,
                    ]
                    .into_iter()
                    .flatten()
                    {
                        assert!(check_label(v).is_ok(), "{v:?} in {d:?}");
                    }
                }
                if let Some(t) = d.updated_at {
                    assert!(t <= NOW + 5 * 60 * 1000, "{d:?}");
                }
            }
            Item::Release(r) => {
                assert!(check_label(&r.release).is_ok(), "{r:?}");
                assert!(r.released_at <= NOW + 5 * 60 * 1000, "{r:?}");
                assert!(check_label(&r.product.namespace).is_ok(), "{r:?}");
            }
        }
    }
}

fn sources() -> Vec<(Parser, &'static str, &'static str, Vec<&'static str>)> {
    vec![
        (
            github::webhook::parse,
            "github",
            "x-github-event",
            vec!["issues", "release", "ping", "push"],
        ),
        (
            gitlab::webhook::parse,
            "gitlab",
            "x-gitlab-event",
            vec![
                "Issue Hook",
                "Release Hook",
                "Confidential Issue Hook",
                "Push Hook",
            ],
        ),
        (
            jira::webhook::parse,
            "jira",
            "x-atlassian-webhook-identifier",
            vec!["id-1"],
        ),
        (
            sentry::webhook::parse,
            "sentry",
            "sentry-hook-resource",
            vec!["issue", "error", "installation"],
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_json_never_panics(value in json(), event in 0usize..4) {
        let config = config();
        for (parse, _, header, events) in sources() {
            let h = headers(&[(header, events[event % events.len()])]);
            if let Ok(p) = parse(&h, &value, &config, NOW) {
                check_storable(&p);
            }
        }
    }

    #[test]
    fn mutated_fixtures_never_panic(
        file in 0usize..64,
        path in prop::collection::vec(any::<usize>(), 0..6),
        new in json(),
    ) {
        let config = config();
        for (parse, dir, header, events) in sources() {
            let names = fixture_names(dir);
            let name = &names[file % names.len()];
            let mut v: Value = serde_json::from_slice(&fixture(&format!("{dir}/{name}"))).expect("json");
            mutate(&mut v, &path, new.clone());
            for event in &events {
                if let Ok(p) = parse(&headers(&[(header, event)]), &v, &config, NOW) {
                    check_storable(&p);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let config = config();
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            for (parse, _, header, events) in sources() {
                let _ = parse(&headers(&[(header, events[0])]), &v, &config, NOW);
            }
        }
    }
}

/// Through HTTP: signed arbitrary bodies get a 2xx or a 4xx, never a 5xx.
#[test]
fn signed_arbitrary_bodies_get_a_clear_answer_over_http() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(helpers::spawn());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(48));
    let strategy = (
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            json().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        ],
        0usize..4,
    );
    runner
        .run(&strategy, |(body, which)| {
            let status = rt.block_on(async {
                match which {
                    0 => app.github("issues", "fuzz", &body).await.status,
                    1 => app.gitlab("Issue Hook", "fuzz", &body).await.status,
                    2 => app.jira("fuzz", &body).await.status,
                    _ => app.sentry("issue", &body).await.status,
                }
            });
            prop_assert!((200..500).contains(&status), "status {status}");
            Ok(())
        })
        .expect("property");
    rt.block_on(app.stop());
}
