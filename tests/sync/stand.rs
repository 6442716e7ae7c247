//! The skeleton every vendor's stand-in shares: [`Fake<W>`] serves a
//! vendor's world `W` (its objects and its routes, [`Stand`]) behind the
//! [`Hostile`] layer, and [`Switches`] are what every fake can be told to do,
//! written once here: scripted faults on the next list request (a rate limit
//! or a 5xx: [`Fault::Status`]; a timeout: [`Fault::Hang`]), a stall after
//! some pages, and the log of every request. A world holds its switches and
//! derefs to them, so a test writes `w.faults.push_back(…)` whatever the
//! vendor.
//!
//! Every stand-in is served through [`serve`]: a [`Hostile`] layer over the
//! vendor's router that logs every request with all its headers and, when
//! scripted ([`Act`]), answers in the vendor's place or changes its answer
//! (a `Link` elsewhere, a redirect, a repeating cursor, a huge streamed
//! body, a 401 quoting the credentials). A second server on another origin
//! ([`elsewhere`]) is the same skeleton over no routes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A scripted answer to the next list request (issues or releases pages).
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16, Vec<(&'static str, String)>, Value),
    /// Answer only after this long (longer than the client's timeout).
    Hang(Duration),
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub query: String,
    pub auth: Option<String>,
    pub status: u16,
}

/// What every fake can be told to do, and what it saw.
#[derive(Default)]
pub struct Switches {
    pub faults: VecDeque<Fault>,
    /// List pages served before every later list request hangs.
    pub stall_after: Option<usize>,
    pub pages_served: usize,
    pub log: Vec<Logged>,
}

/// A vendor's world: what it adds to the skeleton.
pub trait Stand: Send + Sized + 'static + std::ops::DerefMut<Target = Switches> {
    /// The `api_url` below the server's origin (GitLab: `/api/v4`).
    const API: &'static str = "";

    /// The vendor's routes over the shared world.
    fn routes(world: Arc<Mutex<Self>>) -> Router;

    /// A JSON answer as the vendor sends it (content type, rate-limit headers).
    fn answer(status: u16, extra: Vec<(&'static str, String)>, body: Value) -> Response;

    /// What a hung list request answers in the end: an empty page.
    fn empty_page() -> Value {
        json!([])
    }

    /// Logs a request; the vendor's 401 when the credentials are wrong.
    fn log(
        world: &Arc<Mutex<Self>>,
        uri: &OriginalUri,
        headers: &HeaderMap,
        status: u16,
    ) -> Option<Response>;
}

/// `Deref`/`DerefMut` of a vendor's world to its `switches`, which [`Stand`]
/// requires: tests write `w.faults.push_back(..)` for any vendor.
macro_rules! derefs_to_switches {
    ($world:ty) => {
        impl std::ops::Deref for $world {
            type Target = $crate::stand::Switches;
            fn deref(&self) -> &$crate::stand::Switches {
                &self.switches
            }
        }

        impl std::ops::DerefMut for $world {
            fn deref_mut(&mut self) -> &mut $crate::stand::Switches {
                &mut self.switches
            }
        }
    };
}
pub(crate) use derefs_to_switches;

/// A running stand-in for a vendor's REST API.
pub struct Fake<W> {
    pub addr: SocketAddr,
    pub world: Arc<Mutex<W>>,
    pub hostile: Hostile,
}

impl<W> Clone for Fake<W> {
    fn clone(&self) -> Self {
        Fake {
            addr: self.addr,
            world: self.world.clone(),
            hostile: self.hostile.clone(),
        }
    }
}

impl<W: Stand> Fake<W> {
    pub async fn start(world: W) -> Self {
        let world = Arc::new(Mutex::new(world));
        let hostile = Hostile::default();
        let addr = serve("127.0.0.1", W::routes(world.clone()), &hostile).await;
        Fake {
            addr,
            world,
            hostile,
        }
    }

    /// The `api_url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, W::API)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut W) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|w| w.log.clone())
    }

    /// The logged requests whose path `keep` accepts.
    pub fn logged(&self, keep: impl Fn(&str) -> bool) -> Vec<Logged> {
        self.log().into_iter().filter(|l| keep(&l.path)).collect()
    }
}

/// Before a list page: the next scripted fault, answered; then the stall
/// once `stall_after` pages were served. `Some`: the answer to send instead
/// of the page.
pub async fn switches<W: Stand>(
    world: &Arc<Mutex<W>>,
    uri: &OriginalUri,
    headers: &HeaderMap,
) -> Option<Response> {
    let next = world.lock().unwrap().faults.pop_front();
    match next {
        None => {}
        Some(Fault::Status(status, extra, body)) => {
            return Some(
                W::log(world, uri, headers, status)
                    .unwrap_or_else(|| W::answer(status, extra, body)),
            );
        }
        Some(Fault::Hang(d)) => {
            let _ = W::log(world, uri, headers, 0);
            tokio::time::sleep(d).await;
            return Some(W::answer(200, vec![], W::empty_page()));
        }
    }
    let stall = {
        let w = world.lock().unwrap();
        w.stall_after.is_some_and(|n| w.pages_served >= n)
    };
    if stall {
        let _ = W::log(world, uri, headers, 0);
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    None
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
