//! The skeleton every vendor's stand-in shares: [`Fake<W>`] serves a
//! vendor's world `W` (its objects and its routes, [`Stand`]) behind the
//! [`Hostile`] layer, and [`Switches`] are what every fake can be told to do,
//! written once here: scripted faults on the next list request (a rate limit
//! or a 5xx: [`Fault::Status`]; a timeout: [`Fault::Hang`]), a stall after
//! some pages, and the log of every request. A world holds its switches and
//! derefs to them, so a test writes `w.faults.push_back(…)` whatever the
//! vendor.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use crate::fake::Hostile;

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
        let addr = crate::fake::serve("127.0.0.1", W::routes(world.clone()), &hostile).await;
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
