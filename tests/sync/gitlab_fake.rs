//! A loopback stand-in for GitLab's REST API v4, built from the shapes of
//! its documentation: `GET /projects/:id` (the id or the URL-encoded path),
//! `GET /projects/:id/issues` (`scope=all&order_by=updated_at&sort=asc&
//! updated_after=…&per_page=…&page=…`, offset pagination with `x-page`,
//! `x-next-page` (empty on the last page), `x-total`, and a `Link` header
//! when asked), `GET /projects/:id/issues/:iid` (`404` once deleted),
//! `GET /projects/:id/releases`, `RateLimit-*` headers on every answer and
//! `401` without the `PRIVATE-TOKEN`. Faults are scripted per issue-list
//! request; every request is logged.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub const TOKEN: &str = "glpat-test-token-never-printed";
pub const PROJECT: &str = "acme/payments";
pub const PROJECT_ID: u64 = 42;

pub use crate::stand::{Fault, Logged};
use crate::stand::{Stand, Switches};

#[derive(Default)]
pub struct World {
    /// REST issue objects of PROJECT.
    pub issues: Vec<Value>,
    pub releases: Vec<Value>,
    /// Issue iids deleted (gone from lists, 404 alone).
    pub deleted: Vec<u64>,
    /// Send a `Link` header besides `x-next-page`.
    pub link: bool,
    /// `RateLimit-Remaining: 0` (reset in a second) on this issue page.
    pub exhaust_on_page: Option<usize>,
    /// Faults, stall, log (`stall_after`: issue pages).
    pub switches: Switches,
}

crate::stand::derefs_to_switches!(World);

/// The GitLab stand-in.
pub type Fake = crate::stand::Fake<World>;

impl Stand for World {
    const API: &'static str = "/api/v4";

    fn routes(world: Arc<Mutex<World>>) -> Router {
        Router::new()
            .route("/api/v4/projects/{id}", get(project))
            .route("/api/v4/projects/{id}/issues", get(issues))
            .route("/api/v4/projects/{id}/issues/{iid}", get(issue))
            .route("/api/v4/projects/{id}/releases", get(releases))
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
        log(&State(world.clone()), uri, headers, status)
    }
}

impl Fake {
    /// The logged issue-list requests.
    pub fn issue_lists(&self) -> Vec<Logged> {
        self.logged(|p| p.ends_with("/issues"))
    }
}

type Shared = State<Arc<Mutex<World>>>;

fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    let reset = (chrono::Utc::now().timestamp() + 60).to_string();
    for (k, v) in [
        ("ratelimit-name", "throttle_authenticated_api".to_owned()),
        ("ratelimit-limit", "2000".to_owned()),
        ("ratelimit-observed", "1".to_owned()),
        ("ratelimit-remaining", "1999".to_owned()),
        ("ratelimit-reset", reset),
    ] {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    for (k, v) in extra {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

/// Logs the request; `Some(401)` without the right token.
fn log(w: &Shared, uri: &OriginalUri, headers: &HeaderMap, status: u16) -> Option<Response> {
    let auth = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ok = auth.as_deref() == Some(TOKEN);
    w.lock().unwrap().log.push(Logged {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        auth,
        status: if ok { status } else { 401 },
    });
    (!ok).then(|| answer(401, vec![], json!({"message": "401 Unauthorized"})))
}

fn not_found(what: &str) -> Response {
    answer(
        404,
        vec![],
        json!({"message": format!("404 {what} Not Found")}),
    )
}

fn ours(id: &str) -> bool {
    id == PROJECT_ID.to_string() || id == PROJECT
}

async fn project(
    s: Shared,
    Path(id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let status = if ours(&id) { 200 } else { 404 };
    if let Some(r) = log(&s, &uri, &headers, status) {
        return r;
    }
    if status == 404 {
        return not_found("Project");
    }
    answer(
        200,
        vec![],
        json!({
            "id": PROJECT_ID, "description": null, "name": "payments",
            "name_with_namespace": "Acme / payments", "path": "payments",
            "path_with_namespace": PROJECT, "created_at": "2023-01-01T00:00:00.000Z",
            "default_branch": "main",
            "web_url": format!("https://gitlab.example.com/{PROJECT}"),
            "namespace": {"id": 7, "name": "acme", "path": "acme", "kind": "group", "full_path": "acme"},
            "issues_enabled": true
        }),
    )
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    updated_after: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
    scope: Option<String>,
    order_by: Option<String>,
    sort: Option<String>,
}

/// Offset pagination headers (and a `Link`, when asked) for `page` of `last`.
fn pages(
    uri: &OriginalUri,
    headers: &HeaderMap,
    page: usize,
    per: usize,
    total: usize,
    link: bool,
) -> Vec<(&'static str, String)> {
    let last = total.div_ceil(per).max(1);
    let next = if page < last {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let mut out = vec![
        ("x-page", page.to_string()),
        ("x-per-page", per.to_string()),
        ("x-next-page", next.clone()),
        (
            "x-prev-page",
            if page > 1 {
                (page - 1).to_string()
            } else {
                String::new()
            },
        ),
        ("x-total", total.to_string()),
        ("x-total-pages", last.to_string()),
    ];
    if link && !next.is_empty() {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let query: Vec<&str> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.starts_with("page="))
            .collect();
        // Marked, so a test tells a followed Link from an x-next-page.
        let url = |p: &str| {
            format!(
                "<http://{host}{}?{}&page={p}&via=link>",
                uri.path(),
                query
                    .iter()
                    .filter(|q| !q.starts_with("via="))
                    .copied()
                    .collect::<Vec<_>>()
                    .join("&")
            )
        };
        out.push((
            "link",
            format!(
                "{}; rel=\"next\", {}; rel=\"first\", {}; rel=\"last\"",
                url(&next),
                url("1"),
                url(&last.to_string())
            ),
        ));
    }
    out
}

async fn issues(
    s: Shared,
    Path(id): Path<String>,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if !ours(&id) {
        let _ = log(&s, &uri, &headers, 404);
        return not_found("Project");
    }
    if let Some(r) = crate::stand::switches(&s.0, &uri, &headers).await {
        return r;
    }
    assert_eq!(q.scope.as_deref(), Some("all"));
    assert_eq!(q.order_by.as_deref(), Some("updated_at"));
    assert_eq!(q.sort.as_deref(), Some("asc"));
    let after = q.updated_after.as_deref().map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .expect("updated_after is ISO 8601")
            .timestamp_millis()
    });
    let (mut list, link, exhaust) = {
        let w = s.lock().unwrap();
        let list: Vec<Value> = w
            .issues
            .iter()
            .filter(|i| !w.deleted.contains(&i["iid"].as_u64().unwrap()))
            .filter(|i| after.is_none_or(|a| millis(&i["updated_at"]) >= a))
            .cloned()
            .collect();
        (list, w.link, w.exhaust_on_page == Some(w.pages_served + 1))
    };
    list.sort_by_key(|i| (millis(&i["updated_at"]), i["iid"].as_u64()));
    let per = q.per_page.unwrap_or(20).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let total = list.len();
    let items: Vec<Value> = list.into_iter().skip((page - 1) * per).take(per).collect();
    if let Some(r) = log(&s, &uri, &headers, 200) {
        return r;
    }
    s.lock().unwrap().pages_served += 1;
    let mut extra = pages(&uri, &headers, page, per, total, link);
    if exhaust {
        extra.push(("ratelimit-remaining", "0".into()));
        extra.push((
            "ratelimit-reset",
            (chrono::Utc::now().timestamp() + 1).to_string(),
        ));
    }
    answer(200, extra, Value::Array(items))
}

fn millis(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

async fn issue(
    s: Shared,
    Path((id, iid)): Path<(String, u64)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let found = {
        let w = s.lock().unwrap();
        if w.deleted.contains(&iid) || !ours(&id) {
            None
        } else {
            w.issues.iter().find(|i| i["iid"] == iid).cloned()
        }
    };
    if let Some(r) = log(&s, &uri, &headers, if found.is_some() { 200 } else { 404 }) {
        return r;
    }
    match found {
        Some(i) => answer(200, vec![], i),
        None => not_found(""),
    }
}

async fn releases(
    s: Shared,
    Path(id): Path<String>,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = log(&s, &uri, &headers, if ours(&id) { 200 } else { 404 }) {
        return r;
    }
    let list = s.lock().unwrap().releases.clone();
    let per = q.per_page.unwrap_or(20).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let total = list.len();
    let items: Vec<Value> = list.into_iter().skip((page - 1) * per).take(per).collect();
    answer(
        200,
        pages(&uri, &headers, page, per, total, false),
        Value::Array(items),
    )
}

/// A REST issue object as `GET /projects/:id/issues` lists it.
pub fn issue_object(iid: u64, labels: &[&str], created: &str, updated: &str) -> Value {
    json!({
        "id": 1000 + iid,
        "iid": iid,
        "project_id": PROJECT_ID,
        "title": "Something is broken",
        "description": "Steps to reproduce",
        "state": "opened",
        "created_at": created,
        "updated_at": updated,
        "closed_at": null,
        "closed_by": null,
        "labels": labels,
        "milestone": null,
        "author": {"id": 1, "username": "root", "name": "Administrator", "state": "active"},
        "assignees": [],
        "assignee": null,
        "type": "ISSUE",
        "user_notes_count": 0,
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": null,
        "confidential": false,
        "discussion_locked": null,
        "issue_type": "issue",
        "web_url": format!("https://gitlab.example.com/{PROJECT}/-/issues/{iid}"),
        "time_stats": {"time_estimate": 0, "total_time_spent": 0, "human_time_estimate": null, "human_total_time_spent": null},
        "task_completion_status": {"count": 0, "completed_count": 0},
        "has_tasks": false,
        "_links": {
            "self": format!("https://gitlab.example.com/api/v4/projects/{PROJECT_ID}/issues/{iid}"),
            "notes": format!("https://gitlab.example.com/api/v4/projects/{PROJECT_ID}/issues/{iid}/notes"),
            "award_emoji": format!("https://gitlab.example.com/api/v4/projects/{PROJECT_ID}/issues/{iid}/award_emoji"),
            "project": format!("https://gitlab.example.com/api/v4/projects/{PROJECT_ID}"),
            "closed_as_duplicate_of": null
        },
        "references": {"short": format!("#{iid}"), "relative": format!("#{iid}"), "full": format!("{PROJECT}#{iid}")},
        "severity": "UNKNOWN",
        "moved_to_id": null,
        "service_desk_reply_to": null
    })
}

/// A release object as `GET /projects/:id/releases` lists it.
pub fn release_object(tag: &str, released: &str, upcoming: bool) -> Value {
    json!({
        "name": format!("Release {tag}"),
        "tag_name": tag,
        "description": "notes",
        "created_at": "2024-01-01T00:00:00.000Z",
        "released_at": released,
        "upcoming_release": upcoming,
        "author": {"id": 1, "name": "Administrator", "username": "root"},
        "commit": {"id": "f8d3d94cbd347e924aa7b715845e439d00e80ca4", "short_id": "f8d3d94c"},
        "milestones": [],
        "assets": {"count": 0, "sources": [], "links": []},
        "_links": {"self": format!("https://gitlab.example.com/{PROJECT}/-/releases/{tag}")}
    })
}
