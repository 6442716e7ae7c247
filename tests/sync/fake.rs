//! A loopback stand-in for GitHub's REST API, built from the shapes of its
//! documentation: `GET /repos/{owner}/{repo}` (the repository), `…/issues`
//! (`state=all&sort=updated&direction=asc&since=…&per_page=…&page=…`, pull
//! requests included, `Link` pagination to `/repositories/{id}/issues`),
//! `…/issues/{number}` (`410` deleted, `301` transferred), `…/releases`,
//! and the `x-ratelimit-*` headers on every answer. Faults are scripted per
//! request; every request is logged.
//!
//! It also holds the skeleton every stand-in is served through ([`serve`]):
//! a [`Hostile`] layer over the vendor's router that logs every request with
//! all its headers and, when scripted, answers in the vendor's place or
//! changes its answer (a `Link` elsewhere, a redirect, a repeating cursor, a
//! huge streamed body, a 401 quoting the credentials). A second server on
//! another origin is the same skeleton over no routes.

use std::net::SocketAddr;
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

impl std::ops::Deref for World {
    type Target = Switches;
    fn deref(&self) -> &Switches {
        &self.switches
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut Switches {
        &mut self.switches
    }
}

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

/// What the hostile layer does to a request whose path ends with its rule's.
#[derive(Debug, Clone)]
pub enum Act {
    /// The vendor's answer with these headers added (or replaced).
    Headers(Vec<(&'static str, String)>),
    /// The vendor's JSON answer with these top-level keys replaced.
    Merge(Value),
    /// This answer instead of the vendor's.
    Answer(u16, Vec<(&'static str, String)>, Value),
    /// A redirect to this URL.
    Redirect(u16, String),
    /// A `200` JSON array of `bytes` bytes, streamed in 64 KiB chunks, its
    /// length in `Content-Length` when `declared`.
    Huge { bytes: u64, declared: bool },
}

#[derive(Debug, Clone)]
struct Rule {
    path: String,
    act: Act,
    times: usize,
}

/// A request as the hostile layer saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
struct HostileState {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

/// The scripted misbehaviour of a stand-in, and its log of every request.
#[derive(Clone, Default)]
pub struct Hostile(Arc<Mutex<HostileState>>);

impl Hostile {
    /// `act` on the next `times` requests whose path ends with `path`.
    pub fn on(&self, path: &str, act: Act, times: usize) {
        self.0.lock().unwrap().rules.push(Rule {
            path: path.to_owned(),
            act,
            times,
        });
    }

    /// Every request received.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }

    /// The requests that carried `secret` in any header.
    pub fn carrying(&self, secret: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.headers.iter().any(|(_, v)| v.contains(secret)))
            .collect()
    }

    /// The action for this request, counting it.
    fn take(&self, path: &str) -> Option<Act> {
        let mut st = self.0.lock().unwrap();
        let rule = st
            .rules
            .iter_mut()
            .find(|r| r.times > 0 && path.ends_with(&r.path))?;
        rule.times -= 1;
        Some(rule.act.clone())
    }
}

/// Serves `app` behind `hostile` on `ip` (`127.0.0.1`, `127.0.0.2`), any port.
pub async fn serve(ip: &str, app: Router, hostile: &Hostile) -> SocketAddr {
    // The layer runs for unknown paths too only when a fallback is set first.
    let app = app.fallback(|| async { StatusCode::NOT_FOUND }).layer(
        axum::middleware::from_fn_with_state(hostile.clone(), hostile_layer),
    );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A server on another origin with no routes: it only logs what reaches it.
pub async fn elsewhere(ip: &str) -> (String, Hostile) {
    let hostile = Hostile::default();
    let addr = serve(ip, Router::new(), &hostile).await;
    (format!("http://{addr}"), hostile)
}

async fn hostile_layer(
    State(h): State<Hostile>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = req.uri().clone();
    h.0.lock().unwrap().seen.push(Seen {
        path: uri.path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
    });
    let with = |mut resp: Response, headers: Vec<(&'static str, String)>| {
        for (k, v) in headers {
            resp.headers_mut()
                .insert(k, HeaderValue::from_str(&v).unwrap());
        }
        resp
    };
    match h.take(uri.path()) {
        None => next.run(req).await,
        Some(Act::Headers(headers)) => with(next.run(req).await, headers),
        Some(Act::Merge(keys)) => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut v: Value = serde_json::from_slice(&bytes).unwrap();
            for (k, x) in keys.as_object().unwrap() {
                v[k] = x.clone();
            }
            let mut parts = parts;
            parts.headers.remove("content-length");
            Response::from_parts(parts, axum::body::Body::from(v.to_string()))
        }
        Some(Act::Answer(status, headers, body)) => with(
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response(),
            headers,
        ),
        Some(Act::Redirect(status, to)) => with(
            StatusCode::from_u16(status).unwrap().into_response(),
            vec![("location", to)],
        ),
        Some(Act::Huge { bytes, declared }) => huge(bytes, declared),
    }
}

/// `[{"n":0},{"n":0},…]` of `bytes` bytes, made as it is sent.
fn huge(bytes: u64, declared: bool) -> Response {
    const CHUNK: usize = 64 * 1024;
    let item = b"{\"n\":0},";
    let mut block = Vec::with_capacity(CHUNK);
    while block.len() + item.len() <= CHUNK {
        block.extend_from_slice(item);
    }
    let block = axum::body::Bytes::from(block);
    let mut left = bytes.saturating_sub(2);
    let mut parts: Vec<axum::body::Bytes> = vec![axum::body::Bytes::from_static(b"[")];
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::iter(std::iter::from_fn(move || {
            if let Some(p) = parts.pop() {
                return Some(p);
            }
            if left == 0 {
                return None;
            }
            let n = left.min(block.len() as u64) as usize;
            left -= n as u64;
            Some(block.slice(..n))
        })),
        Ok::<_, std::io::Error>,
    );
    let mut resp = Response::new(axum::body::Body::from_stream(stream));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    if declared {
        resp.headers_mut()
            .insert("content-length", HeaderValue::from(bytes - 1));
    }
    resp
}
