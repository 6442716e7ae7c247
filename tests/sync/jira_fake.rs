//! A loopback stand-in for Jira's REST API, built from the shapes of its
//! documentation: `GET /rest/api/2/project/{key}`, the enhanced search
//! `GET /rest/api/3/search/jql` (`jql`, `fields`, `maxResults`,
//! `nextPageToken`; `{issues, nextPageToken, isLast}`, the last page without
//! a token), the Data Center search `GET /rest/api/2/search` (`startAt`;
//! `{startAt, maxResults, total, issues}`), `GET /rest/api/2/issue/{id}`
//! (`404` with `errorMessages` once deleted), its remote links
//! `GET /rest/api/2/issue/{id}/remotelink` (`500` while `remote_fails`), and
//! `GET /rest/api/2/project/{key}/versions`. It reads the JQL it is sent
//! (`project = "KEY"`, `updated >= "-Nm"` relative to its own clock,
//! `ORDER BY updated ASC`) and answers `401` without the expected
//! `Authorization`. Faults are scripted per search request.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub use crate::stand::{Fault, Logged};
use crate::stand::{Stand, Switches};

pub const TOKEN: &str = "ATATT-jira-token-never-printed";
pub const USER: &str = "sync-bot@acme.example";
pub const KEY: &str = "PAY";
pub const PROJECT_ID: &str = "10000";

#[derive(Default)]
pub struct World {
    /// Issue objects (`id`, `key`, `fields`), of PAY or elsewhere.
    pub issues: Vec<Value>,
    pub versions: Vec<Value>,
    /// Remote links by issue id (Jira's `remotelink` objects).
    pub remote_links: std::collections::HashMap<String, Vec<Value>>,
    /// Whether `remotelink` answers 500.
    pub remote_fails: bool,
    /// Issue ids deleted (gone from searches, 404 alone).
    pub deleted: Vec<String>,
    /// The `Authorization` header every call must carry.
    pub auth: String,
    /// Each search's `updated >=` bound, resolved on this server's clock.
    pub windows: Vec<Option<i64>>,
    /// Faults, stall, log (`stall_after`: search pages).
    pub switches: Switches,
}

crate::stand::derefs_to_switches!(World);

/// The Jira stand-in; its `url` is the site.
pub type Fake = crate::stand::Fake<World>;

impl Stand for World {
    fn routes(world: Arc<Mutex<World>>) -> Router {
        Router::new()
            .route("/rest/api/2/project/{key}", get(project))
            .route("/rest/api/2/project/{key}/versions", get(versions))
            .route("/rest/api/3/search/jql", get(search))
            .route("/rest/api/2/search", get(search))
            .route("/rest/api/2/issue/{id}", get(issue))
            .route("/rest/api/2/issue/{id}/remotelink", get(remote_links))
            .with_state(world)
    }

    fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
        answer(status, extra, body)
    }

    fn empty_page() -> Value {
        json!({"issues": []})
    }

    fn log(
        world: &Arc<Mutex<World>>,
        uri: &OriginalUri,
        headers: &HeaderMap,
        status: u16,
    ) -> Option<Response> {
        log(&State(world.clone()), uri, headers, status)
    }
}

impl Fake {
    /// The logged search requests.
    pub fn searches(&self) -> Vec<Logged> {
        self.logged(|p| p.ends_with("/search") || p.ends_with("/search/jql"))
    }
}

type Shared = State<Arc<Mutex<World>>>;

fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response();
    for (k, v) in extra {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

fn errors(status: u16, message: &str) -> Response {
    answer(
        status,
        vec![],
        json!({"errorMessages": [message], "errors": {}}),
    )
}

/// Logs the request; the `401` to send without the right credentials.
fn log(s: &Shared, uri: &OriginalUri, headers: &HeaderMap, status: u16) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut w = s.lock().unwrap();
    let ok = auth.as_deref() == Some(w.auth.as_str());
    w.log.push(Logged {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        auth,
        status: if ok { status } else { 401 },
    });
    (!ok).then(|| {
        errors(
            401,
            "You are not authenticated. Authentication required to perform this operation.",
        )
    })
}

async fn project(
    s: Shared,
    Path(key): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let ours = key == KEY;
    if let Some(r) = log(&s, &uri, &headers, if ours { 200 } else { 404 }) {
        return r;
    }
    if !ours {
        return errors(404, &format!("No project could be found with key '{key}'."));
    }
    answer(
        200,
        vec![],
        json!({
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
            "self": format!("https://acme.atlassian.net/rest/api/2/project/{PROJECT_ID}"),
            "id": PROJECT_ID, "key": KEY, "name": "Payments",
            "projectTypeKey": "software", "simplified": false, "style": "classic",
            "isPrivate": false, "archived": false
        }),
    )
}

async fn versions(
    s: Shared,
    Path(key): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = log(&s, &uri, &headers, 200) {
        return r;
    }
    let list = if key == KEY {
        s.lock().unwrap().versions.clone()
    } else {
        vec![]
    };
    answer(200, vec![], Value::Array(list))
}

#[derive(serde::Deserialize, Default)]
struct SearchQuery {
    jql: String,
    fields: Option<String>,
    #[serde(rename = "maxResults")]
    max_results: Option<usize>,
    #[serde(rename = "startAt")]
    start_at: Option<usize>,
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
}

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap()
        .timestamp_millis()
}

/// The project key and `updated >=` bound of the JQL `sync` sends.
fn read_jql(jql: &str) -> (String, Option<i64>) {
    let key = jql
        .strip_prefix("project = \"")
        .and_then(|r| r.split_once('"'))
        .map(|(k, _)| k.to_owned())
        .expect("project = \"KEY\" first");
    assert!(
        jql.ends_with("ORDER BY updated ASC, id ASC"),
        "ordered by update: {jql}"
    );
    let since = jql.split_once("updated >= \"-").map(|(_, rest)| {
        let minutes: i64 = rest
            .split_once("m\"")
            .and_then(|(n, _)| n.parse().ok())
            .expect("a relative time in minutes");
        chrono::Utc::now().timestamp_millis() - minutes * 60_000
    });
    (key, since)
}

async fn search(
    s: Shared,
    q: Query<SearchQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = crate::stand::switches(&s.0, &uri, &headers).await {
        return r;
    }
    if let Some(r) = log(&s, &uri, &headers, 200) {
        return r;
    }
    let (key, since) = read_jql(&q.jql);
    let fields = q.fields.clone().unwrap_or_default();
    assert!(
        fields.contains("updated") && fields.contains("labels"),
        "{fields}"
    );
    let mut list: Vec<Value> = {
        let mut w = s.lock().unwrap();
        w.windows.push(since);
        w.pages_served += 1;
        w.issues
            .iter()
            .filter(|i| !w.deleted.contains(&i["id"].as_str().unwrap().to_owned()))
            .filter(|i| i["fields"]["project"]["key"] == key.as_str())
            .filter(|i| since.is_none_or(|t| millis(&i["fields"]["updated"]) >= t))
            .cloned()
            .collect()
    };
    list.sort_by_key(|i| {
        (
            millis(&i["fields"]["updated"]),
            i["id"].as_str().unwrap().parse::<u64>().unwrap(),
        )
    });
    let per = q.max_results.unwrap_or(50).clamp(1, 100);
    let total = list.len();
    if uri.path().ends_with("/search/jql") {
        let start = q
            .next_page_token
            .as_deref()
            .map(|t| t.strip_prefix("tok-").unwrap().parse().unwrap())
            .unwrap_or(0usize);
        let issues: Vec<Value> = list.into_iter().skip(start).take(per).collect();
        let mut body = json!({"issues": issues});
        if start + per < total {
            body["nextPageToken"] = json!(format!("tok-{}", start + per));
        } else {
            // As Jira Cloud answers: the last page has no token at all.
            body["isLast"] = json!(true);
        }
        answer(200, vec![], body)
    } else {
        let start = q.start_at.unwrap_or(0);
        let issues: Vec<Value> = list.into_iter().skip(start).take(per).collect();
        answer(
            200,
            vec![],
            json!({"expand": "schema,names", "startAt": start, "maxResults": per, "total": total, "issues": issues}),
        )
    }
}

async fn issue(
    s: Shared,
    Path(id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let found = {
        let w = s.lock().unwrap();
        (!w.deleted.contains(&id))
            .then(|| w.issues.iter().find(|i| i["id"] == id.as_str()).cloned())
            .flatten()
    };
    if let Some(r) = log(&s, &uri, &headers, if found.is_some() { 200 } else { 404 }) {
        return r;
    }
    match found {
        Some(i) => answer(200, vec![], i),
        None => errors(
            404,
            "Issue does not exist or you do not have permission to see it.",
        ),
    }
}

async fn remote_links(
    s: Shared,
    Path(id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let (fails, found) = {
        let w = s.lock().unwrap();
        let known = !w.deleted.contains(&id) && w.issues.iter().any(|i| i["id"] == id.as_str());
        (
            w.remote_fails,
            known.then(|| w.remote_links.get(&id).cloned().unwrap_or_default()),
        )
    };
    let status = match (fails, &found) {
        (true, _) => 500,
        (false, Some(_)) => 200,
        (false, None) => 404,
    };
    if let Some(r) = log(&s, &uri, &headers, status) {
        return r;
    }
    match found {
        _ if fails => errors(500, "Internal server error"),
        Some(links) => answer(200, vec![], Value::Array(links)),
        None => errors(
            404,
            "Issue does not exist or you do not have permission to see it.",
        ),
    }
}

/// A remote link object as `GET /rest/api/2/issue/{id}/remotelink` lists it.
pub fn remote_link(id: u64, url: &str, title: &str) -> Value {
    json!({
        "id": id,
        "self": format!("https://acme.atlassian.net/rest/api/2/issue/PAY-1/remotelink/{id}"),
        "globalId": format!("system={url}"),
        "application": {"type": "com.acme.tracker", "name": "Tracker"},
        "relationship": "relates to",
        "object": {"url": url, "title": title, "summary": "linked from elsewhere",
                   "icon": {"url16x16": "https://example.com/favicon.ico"}}
    })
}

/// A version object as `GET /rest/api/2/project/{key}/versions` lists it.
pub fn version(id: &str, name: &str, released: bool, date: Option<&str>) -> Value {
    let mut v = json!({
        "self": format!("https://acme.atlassian.net/rest/api/2/version/{id}"),
        "id": id, "name": name, "archived": false, "released": released,
        "projectId": 10000
    });
    if let Some(d) = date {
        v["releaseDate"] = json!(d);
        v["userReleaseDate"] = json!("1/Feb/24");
    }
    v
}

/// An issue object as the searches list it (and the webhooks carry it).
pub fn issue_object(
    id: u64,
    key: &str,
    issue_type: &str,
    labels: &[&str],
    versions: &[Value],
    updated: &str,
) -> Value {
    let project = key.split('-').next().unwrap();
    json!({
        "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
        "id": id.to_string(),
        "self": format!("https://acme.atlassian.net/rest/api/2/issue/{id}"),
        "key": key,
        "fields": {
            "project": {"self": "https://acme.atlassian.net/rest/api/2/project/10000",
                        "id": if project == KEY { PROJECT_ID } else { "10001" },
                        "key": project, "name": project, "projectTypeKey": "software"},
            "issuetype": {"self": "https://acme.atlassian.net/rest/api/2/issuetype/10004",
                          "id": "10004", "name": issue_type, "subtask": false, "hierarchyLevel": 0},
            "labels": labels,
            "versions": versions,
            "resolution": null,
            "created": "2024-01-10T09:00:00.000+0000",
            "updated": updated
        }
    })
}
