//! A loopback stand-in for Sentry's REST API, built from the shapes of its
//! documentation: `GET /api/0/projects/{org}/{project}/` (the project),
//! `…/issues/` (`query` with `lastSeen:>=…`, `sort=date` newest first,
//! `limit`, `cursor`; `Link` headers with `rel="previous"`/`rel="next"`,
//! `results="true|false"` and `cursor="…"` as Sentry writes them),
//! `GET /api/0/organizations/{org}/issues/{id}/` (the detail, with
//! `firstRelease` and `activity`; `404` once deleted; a merged issue answers
//! as the one it was merged into), its external issues
//! `GET /api/0/organizations/{org}/issues/{id}/external-issues/`, `…/releases/`, and the
//! `X-Sentry-Rate-Limit-*` headers on every answer. Faults are scripted per
//! issue-list request; every request is logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub use crate::stand::{Fault, Logged};
use crate::stand::{Stand, Switches};

pub const TOKEN: &str = "sntrys_test-token-never-printed";
pub const ORG: &str = "acme";
pub const PROJECT: &str = "payments-api";
pub const PROJECT_ID: &str = "4505281256090153";

#[derive(Default)]
pub struct World {
    /// Issue objects as the issue list shows them, of PROJECT.
    pub issues: Vec<Value>,
    /// Issue id → `firstRelease.version` of its detail.
    pub first_release: BTreeMap<String, String>,
    /// Issue id → its `activity` (newest first), in its detail.
    pub activity: BTreeMap<String, Vec<Value>>,
    pub releases: Vec<Value>,
    /// Issue ids deleted (404), and merged (id → the issue it went into).
    pub deleted: Vec<String>,
    pub merged: BTreeMap<String, String>,
    /// Issue id → its external issues (the tickets Sentry's integrations hold).
    pub external: BTreeMap<String, Vec<Value>>,
    /// Faults, stall, log (`stall_after`: issue pages).
    pub switches: Switches,
}

crate::stand::derefs_to_switches!(World);

/// The Sentry stand-in.
pub type Fake = crate::stand::Fake<World>;

type Shared = State<Arc<Mutex<World>>>;

impl Stand for World {
    fn routes(world: Arc<Mutex<World>>) -> Router {
        Router::new()
            .route("/api/0/projects/{org}/{project}/", get(project))
            .route("/api/0/projects/{org}/{project}/issues/", get(issues))
            .route("/api/0/projects/{org}/{project}/releases/", get(releases))
            .route("/api/0/organizations/{org}/issues/{id}/", get(detail))
            .route(
                "/api/0/organizations/{org}/issues/{id}/external-issues/",
                get(external),
            )
            .with_state(world)
    }

    fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
        answer(status, extra, body)
    }

    fn log(
        world: &Arc<Mutex<World>>,
        uri: &OriginalUri,
        headers: &HeaderMap,
        status: u16,
    ) -> Option<Response> {
        log(&State(world.clone()), uri, headers, status);
        None
    }
}

impl Fake {
    /// The logged issue-list requests.
    pub fn issue_lists(&self) -> Vec<Logged> {
        self.logged(|p| p.ends_with("/issues/") && p.contains("/projects/"))
    }

    /// The logged issue-detail requests.
    pub fn details(&self) -> Vec<Logged> {
        self.logged(|p| p.contains("/organizations/") && !p.ends_with("/external-issues/"))
    }

    /// The logged external-issues requests.
    pub fn externals(&self) -> Vec<Logged> {
        self.logged(|p| p.ends_with("/external-issues/"))
    }
}

fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    let reset = (chrono::Utc::now().timestamp() + 1).to_string();
    for (k, v) in [
        ("x-sentry-rate-limit-limit", "40".to_owned()),
        ("x-sentry-rate-limit-remaining", "39".to_owned()),
        ("x-sentry-rate-limit-reset", reset),
        ("x-sentry-rate-limit-concurrentlimit", "25".to_owned()),
        ("x-sentry-rate-limit-concurrentremaining", "24".to_owned()),
    ]
    .into_iter()
    .chain(extra)
    {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

fn not_found() -> Response {
    answer(
        404,
        vec![],
        json!({"detail": "The requested resource does not exist"}),
    )
}

fn log(w: &Shared, uri: &OriginalUri, headers: &HeaderMap, status: u16) {
    w.lock().unwrap().log.push(Logged {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        status,
    });
}

fn base(headers: &HeaderMap) -> String {
    format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    )
}

async fn project(
    s: Shared,
    Path((org, slug)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if org != ORG || slug != PROJECT {
        log(&s, &uri, &headers, 404);
        return not_found();
    }
    log(&s, &uri, &headers, 200);
    answer(
        200,
        vec![],
        json!({
            "id": PROJECT_ID, "slug": PROJECT, "name": "Payments API", "platform": "python",
            "dateCreated": "2023-01-10T09:00:00.000000Z", "isBookmarked": false, "isMember": true,
            "features": [], "firstEvent": "2023-01-10T10:00:00Z", "hasAccess": true,
            "organization": {"id": "1", "slug": ORG, "name": "Acme"}
        }),
    )
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    query: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
    per_page: Option<usize>,
    cursor: Option<String>,
}

/// The `Link` header Sentry sends: both directions always, `results` saying
/// whether there is anything there.
fn link(url: &str, offset: usize, per: usize, total: usize) -> String {
    let prev = offset.saturating_sub(per);
    let next = offset + per;
    format!(
        "<{url}&cursor=0:{prev}:1>; rel=\"previous\"; results=\"{}\"; cursor=\"0:{prev}:1\", \
         <{url}&cursor=0:{next}:0>; rel=\"next\"; results=\"{}\"; cursor=\"0:{next}:0\"",
        offset > 0,
        next < total
    )
}

fn offset_of(cursor: Option<&str>) -> usize {
    cursor
        .and_then(|c| c.split(':').nth(1))
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

fn time(v: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v)
        .expect("RFC 3339")
        .timestamp_millis()
}

async fn issues(
    s: Shared,
    Path((org, slug)): Path<(String, String)>,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if org != ORG || slug != PROJECT {
        log(&s, &uri, &headers, 404);
        return not_found();
    }
    if let Some(r) = crate::stand::switches(&s.0, &uri, &headers).await {
        return r;
    }
    assert_eq!(q.sort.as_deref(), Some("date"));
    // Without `query` Sentry lists only `is:unresolved`: the sync must send one.
    let query = q.query.clone().expect("query is sent");
    let since = match query.trim() {
        "" => None,
        t => Some(time(
            t.strip_prefix("lastSeen:>=")
                .unwrap_or_else(|| panic!("unexpected query {t}")),
        )),
    };
    let mut list: Vec<Value> = {
        let w = s.lock().unwrap();
        w.issues
            .iter()
            .filter(|i| !w.deleted.iter().any(|d| i["id"] == d.as_str()))
            .filter(|i| !w.merged.contains_key(i["id"].as_str().unwrap()))
            .filter(|i| since.is_none_or(|s| time(i["lastSeen"].as_str().unwrap()) >= s))
            .cloned()
            .collect()
    };
    list.sort_by_key(|i| {
        std::cmp::Reverse((
            time(i["lastSeen"].as_str().unwrap()),
            i["id"].as_str().unwrap().parse::<u64>().unwrap(),
        ))
    });
    let per = q.limit.unwrap_or(25).clamp(1, 100);
    let offset = offset_of(q.cursor.as_deref());
    let total = list.len();
    let items: Vec<Value> = list.into_iter().skip(offset).take(per).collect();
    let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let url = format!(
        "{}/api/0/projects/{ORG}/{PROJECT}/issues/?query={encoded}&sort=date&limit={per}",
        base(&headers)
    );
    log(&s, &uri, &headers, 200);
    s.lock().unwrap().pages_served += 1;
    answer(
        200,
        vec![("link", link(&url, offset, per, total))],
        Value::Array(items),
    )
}

async fn detail(
    s: Shared,
    Path((org, id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let found = {
        let w = s.lock().unwrap();
        let id = w.merged.get(&id).cloned().unwrap_or(id.clone());
        (!w.deleted.contains(&id))
            .then(|| w.issues.iter().find(|i| i["id"] == id.as_str()).cloned())
            .flatten()
            .map(|mut i| {
                i["firstRelease"] = match w.first_release.get(&id) {
                    Some(v) => release_object(v, "2024-01-01T00:00:00Z", None),
                    None => Value::Null,
                };
                i["activity"] = json!(w.activity.get(&id).cloned().unwrap_or_default());
                i["seenBy"] = json!([]);
                i["participants"] = json!([]);
                i
            })
    };
    match found {
        Some(i) if org == ORG => {
            log(&s, &uri, &headers, 200);
            answer(200, vec![], i)
        }
        _ => {
            log(&s, &uri, &headers, 404);
            not_found()
        }
    }
}

async fn external(
    s: Shared,
    Path((org, id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let found = {
        let w = s.lock().unwrap();
        let known = !w.deleted.contains(&id) && w.issues.iter().any(|i| i["id"] == id.as_str());
        known.then(|| w.external.get(&id).cloned().unwrap_or_default())
    };
    match found {
        Some(list) if org == ORG => {
            log(&s, &uri, &headers, 200);
            answer(200, vec![], Value::Array(list))
        }
        _ => {
            log(&s, &uri, &headers, 404);
            not_found()
        }
    }
}

/// An external issue as `…/issues/{id}/external-issues/` lists it.
pub fn external_issue(key: &str, url: &str) -> Value {
    json!({"id": "113", "key": key, "url": url, "title": "ZeroDivisionError",
           "description": "Sentry Issue", "displayName": key,
           "integrationKey": "jira", "integrationName": "Jira", "serviceType": "jira"})
}

async fn releases(
    s: Shared,
    Path((org, slug)): Path<(String, String)>,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if org != ORG || slug != PROJECT {
        log(&s, &uri, &headers, 404);
        return not_found();
    }
    let list = s.lock().unwrap().releases.clone();
    let per = q.per_page.unwrap_or(25).clamp(1, 100);
    let offset = offset_of(q.cursor.as_deref());
    let total = list.len();
    let items: Vec<Value> = list.into_iter().skip(offset).take(per).collect();
    let url = format!(
        "{}/api/0/projects/{ORG}/{PROJECT}/releases/?per_page={per}",
        base(&headers)
    );
    log(&s, &uri, &headers, 200);
    answer(
        200,
        vec![("link", link(&url, offset, per, total))],
        Value::Array(items),
    )
}

/// An issue as the project's issue list shows it.
pub fn issue_object(id: u64, status: &str, first_seen: &str, last_seen: &str) -> Value {
    json!({
        "id": id.to_string(),
        "shortId": format!("PAYMENTS-API-{id}"),
        "title": "ZeroDivisionError: division by zero",
        "culprit": "payments.api in charge",
        "permalink": format!("https://acme.sentry.io/issues/{id}/"),
        "logger": null,
        "level": "error",
        "status": status,
        "statusDetails": {},
        "substatus": if status == "unresolved" { "ongoing" } else { "archived_forever" },
        "isPublic": false,
        "platform": "python",
        "project": {"id": PROJECT_ID, "name": "Payments API", "slug": PROJECT, "platform": "python"},
        "type": "error",
        "metadata": {"type": "ZeroDivisionError", "value": "division by zero"},
        "numComments": 0,
        "assignedTo": null,
        "isBookmarked": false,
        "isSubscribed": false,
        "subscriptionDetails": null,
        "hasSeen": false,
        "annotations": [],
        "issueType": "error",
        "issueCategory": "error",
        "isUnhandled": true,
        "count": "12",
        "userCount": 3,
        "firstSeen": first_seen,
        "lastSeen": last_seen,
        "stats": {"24h": [[1583769600, 0]]}
    })
}

/// A status-change entry of an issue's `activity`.
pub fn activity(kind: &str, at: &str) -> Value {
    json!({"id": "77", "type": kind, "data": {}, "dateCreated": at, "user": null})
}

/// A release object as the releases list (and `firstRelease`) shows it.
pub fn release_object(version: &str, created: &str, released: Option<&str>) -> Value {
    json!({
        "version": version, "shortVersion": version, "ref": null, "url": null,
        "dateCreated": created, "dateReleased": released, "newGroups": 0, "owner": null,
        "commitCount": 0, "deployCount": 0, "lastCommit": null, "lastDeploy": null,
        "authors": [], "data": {}, "firstEvent": null, "lastEvent": null,
        "projects": [{"name": "Payments API", "slug": PROJECT}]
    })
}
