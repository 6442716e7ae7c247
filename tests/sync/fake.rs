//! A loopback stand-in for GitHub's REST API, built from the shapes of its
//! documentation: `GET /repos/{owner}/{repo}` (the repository), `…/issues`
//! (`state=all&sort=updated&direction=asc&since=…&per_page=…&page=…`, pull
//! requests included, `Link` pagination to `/repositories/{id}/issues`),
//! `…/issues/{number}` (`410` deleted, `301` transferred), `…/releases`,
//! and the `x-ratelimit-*` headers on every answer. Faults are scripted per
//! request; every request is logged.
//!
//! Served through the skeleton every stand-in shares (`crate::stand`).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub const TOKEN: &str = "ghp_test-token-never-printed";
pub const REPO: &str = "acme/payments";
pub const REPO_ID: u64 = 1296269;
pub const OTHER_REPO: &str = "acme/elsewhere";

pub use crate::stand::{Fault, Logged};
use crate::stand::{Stand, Switches};

#[derive(Default)]
pub struct World {
    /// REST issue objects of REPO (pull requests included).
    pub issues: Vec<Value>,
    pub releases: Vec<Value>,
    /// Issue numbers deleted (410) and transferred away (301).
    pub deleted: Vec<u64>,
    pub transferred: Vec<u64>,
    /// Faults, stall, log (`stall_after`: issue pages).
    pub switches: Switches,
}

crate::stand::derefs_to_switches!(World);

/// The GitHub stand-in.
pub type Fake = crate::stand::Fake<World>;

impl Stand for World {
    fn routes(world: Arc<Mutex<World>>) -> Router {
        Router::new()
            .route("/repos/{owner}/{repo}", get(repo))
            .route("/repos/{owner}/{repo}/issues", get(issues))
            .route("/repositories/{id}/issues", get(issues_by_id))
            .route("/repos/{owner}/{repo}/issues/{number}", get(issue))
            .route("/repositories/{id}/issues/{number}", get(issue_by_id))
            .route("/repos/{owner}/{repo}/releases", get(releases))
            .with_state(world)
    }

    fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
        json_answer(status, extra, body)
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
    /// The logged issue-list requests (not single issues).
    pub fn issue_lists(&self) -> Vec<Logged> {
        self.logged(|p| p.ends_with("/issues"))
    }
}

type Shared = State<Arc<Mutex<World>>>;

fn rate_headers(h: &mut HeaderMap) {
    let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
    for (k, v) in [
        ("x-ratelimit-limit", "5000".to_owned()),
        ("x-ratelimit-remaining", "4999".to_owned()),
        ("x-ratelimit-used", "1".to_owned()),
        ("x-ratelimit-reset", reset),
        ("x-ratelimit-resource", "core".to_owned()),
    ] {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    }
}

fn json_answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response {
    let mut resp = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response();
    rate_headers(resp.headers_mut());
    for (k, v) in extra {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
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

fn repository(full_name: &str, id: u64, base: &str) -> Value {
    json!({
        "id": id, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": full_name.split('/').nth(1), "full_name": full_name, "private": false,
        "owner": {"login": full_name.split('/').next(), "id": 1, "type": "Organization"},
        "html_url": format!("https://github.com/{full_name}"),
        "url": format!("{base}/repos/{full_name}"),
        "default_branch": "main", "has_issues": true
    })
}

async fn repo(
    State(w): Shared,
    Path((owner, name)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let full = format!("{owner}/{name}");
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    let status = if full == REPO { 200 } else { 404 };
    log(&State(w.clone()), &uri, &headers, status);
    if status == 404 {
        return json_answer(
            404,
            vec![],
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository", "status": "404"}),
        );
    }
    json_answer(200, vec![], repository(REPO, REPO_ID, &base))
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    since: Option<String>,
    per_page: Option<usize>,
    page: Option<usize>,
    state: Option<String>,
    sort: Option<String>,
    direction: Option<String>,
}

async fn issues(
    s: Shared,
    Path((owner, name)): Path<(String, String)>,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if format!("{owner}/{name}") != REPO {
        log(&s, &uri, &headers, 404);
        return json_answer(404, vec![], json!({"message": "Not Found"}));
    }
    list_issues(s, q, uri, headers).await
}

async fn issues_by_id(
    s: Shared,
    Path(id): Path<u64>,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if id != REPO_ID {
        log(&s, &uri, &headers, 404);
        return json_answer(404, vec![], json!({"message": "Not Found"}));
    }
    list_issues(s, q, uri, headers).await
}

fn link(base: &str, path: &str, q: &ListQuery, page: usize, last: usize) -> String {
    let mut params = vec![];
    if let Some(st) = &q.state {
        params.push(format!("state={st}"));
    }
    if let Some(st) = &q.sort {
        params.push(format!("sort={st}"));
    }
    if let Some(d) = &q.direction {
        params.push(format!("direction={d}"));
    }
    if let Some(since) = &q.since {
        params.push(format!("since={since}"));
    }
    params.push(format!("per_page={}", q.per_page.unwrap_or(30)));
    let url = |p: usize| format!("<{base}{path}?{}&page={p}>", params.join("&"));
    let mut parts = vec![];
    if page > 1 {
        parts.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    if page < last {
        parts.push(format!("{}; rel=\"next\"", url(page + 1)));
        parts.push(format!("{}; rel=\"last\"", url(last)));
    }
    if page > 1 {
        parts.push(format!("{}; rel=\"first\"", url(1)));
    }
    parts.join(", ")
}

async fn list_issues(
    s: Shared,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = crate::stand::switches(&s.0, &uri, &headers).await {
        return r;
    }
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    let since = q.since.as_deref().map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .expect("since is RFC 3339")
            .timestamp()
    });
    let mut list: Vec<Value> = {
        let w = s.lock().unwrap();
        w.issues
            .iter()
            .filter(|i| !w.deleted.contains(&i["number"].as_u64().unwrap()))
            .filter(|i| !w.transferred.contains(&i["number"].as_u64().unwrap()))
            .filter(|i| {
                let t = chrono::DateTime::parse_from_rfc3339(i["updated_at"].as_str().unwrap())
                    .unwrap()
                    .timestamp();
                since.is_none_or(|s| t >= s)
            })
            .cloned()
            .collect()
    };
    assert_eq!(q.sort.as_deref(), Some("updated"));
    assert_eq!(q.direction.as_deref(), Some("asc"));
    assert_eq!(q.state.as_deref(), Some("all"));
    list.sort_by_key(|i| {
        (
            i["updated_at"].as_str().unwrap().to_owned(),
            i["number"].as_u64(),
        )
    });
    let per = q.per_page.unwrap_or(30).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let last = list.len().div_ceil(per).max(1);
    let items: Vec<Value> = list.into_iter().skip((page - 1) * per).take(per).collect();
    let link = link(
        &base,
        &format!("/repositories/{REPO_ID}/issues"),
        &q,
        page,
        last,
    );
    log(&s, &uri, &headers, 200);
    s.lock().unwrap().pages_served += 1;
    let extra = if link.is_empty() {
        vec![]
    } else {
        vec![("link", link)]
    };
    json_answer(200, extra, Value::Array(items))
}

async fn issue(
    s: Shared,
    Path((owner, name, number)): Path<(String, String, u64)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    if format!("{owner}/{name}") != REPO {
        log(&s, &uri, &headers, 404);
        return json_answer(404, vec![], json!({"message": "Not Found"}));
    }
    let (deleted, moved, found) = {
        let w = s.lock().unwrap();
        (
            w.deleted.contains(&number),
            w.transferred.contains(&number),
            w.issues.iter().find(|i| i["number"] == number).cloned(),
        )
    };
    if deleted {
        log(&s, &uri, &headers, 410);
        return json_answer(
            410,
            vec![],
            json!({"message": "This issue was deleted", "documentation_url": "https://docs.github.com/rest/issues/issues#get-an-issue", "status": "410"}),
        );
    }
    if moved {
        log(&s, &uri, &headers, 301);
        return json_answer(
            301,
            vec![("location", format!("{base}/repositories/7/issues/{number}"))],
            json!({"message": "Moved Permanently", "url": format!("{base}/repositories/7/issues/{number}")}),
        );
    }
    match found {
        Some(i) => {
            log(&s, &uri, &headers, 200);
            json_answer(200, vec![], i)
        }
        None => {
            log(&s, &uri, &headers, 404);
            json_answer(404, vec![], json!({"message": "Not Found"}))
        }
    }
}

/// Where a transferred issue answers from: the other repository.
async fn issue_by_id(
    s: Shared,
    Path((id, number)): Path<(u64, u64)>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    log(&s, &uri, &headers, 200);
    let mut i = issue_object(
        &base,
        OTHER_REPO,
        number,
        &["bug"],
        "2024-01-01T00:00:00Z",
        "2024-06-01T00:00:00Z",
    );
    i["repository_url"] = json!(format!("{base}/repos/{OTHER_REPO}"));
    let _ = id;
    json_answer(200, vec![], i)
}

async fn releases(
    s: Shared,
    q: Query<ListQuery>,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Response {
    let base = format!(
        "http://{}",
        headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    let list = s.lock().unwrap().releases.clone();
    let per = q.per_page.unwrap_or(30).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let last = list.len().div_ceil(per).max(1);
    let items: Vec<Value> = list.into_iter().skip((page - 1) * per).take(per).collect();
    let link = link(&base, &format!("/repos/{REPO}/releases"), &q, page, last);
    log(&s, &uri, &headers, 200);
    let extra = if link.is_empty() {
        vec![]
    } else {
        vec![("link", link)]
    };
    json_answer(200, extra, Value::Array(items))
}

/// A REST issue object as `GET /repos/{owner}/{repo}/issues` lists it.
pub fn issue_object(
    base: &str,
    repo: &str,
    number: u64,
    labels: &[&str],
    created: &str,
    updated: &str,
) -> Value {
    let labels: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| json!({"id": 208045946 + i, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=", "url": format!("{base}/repos/{repo}/labels/{l}"), "name": l, "description": null, "color": "f29513", "default": false}))
        .collect();
    json!({
        "id": 1_000_000 + number,
        "node_id": "MDU6SXNzdWUx",
        "url": format!("{base}/repos/{repo}/issues/{number}"),
        "repository_url": format!("{base}/repos/{repo}"),
        "html_url": format!("https://github.com/{repo}/issues/{number}"),
        "number": number,
        "state": "open",
        "state_reason": null,
        "title": "Found a bug",
        "body": "I'm having a problem with this.",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "labels": labels,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "locked": false,
        "comments": 0,
        "closed_at": null,
        "created_at": created,
        "updated_at": updated,
        "author_association": "COLLABORATOR",
        "type": null
    })
}

/// A pull request as the issues API lists it.
pub fn pull_request(base: &str, number: u64, updated: &str) -> Value {
    let mut pr = issue_object(base, REPO, number, &["bug"], updated, updated);
    pr["pull_request"] = json!({
        "url": format!("{base}/repos/{REPO}/pulls/{number}"),
        "html_url": format!("https://github.com/{REPO}/pull/{number}"),
        "merged_at": null
    });
    pr
}

/// A release object as `GET /repos/{owner}/{repo}/releases` lists it.
pub fn release_object(tag: &str, published: &str, draft: bool) -> Value {
    json!({
        "id": 1, "tag_name": tag, "target_commitish": "main", "name": tag,
        "draft": draft, "prerelease": false,
        "created_at": published, "published_at": if draft { Value::Null } else { json!(published) },
        "author": {"login": "octocat", "id": 1}, "assets": [], "body": "notes"
    })
}
