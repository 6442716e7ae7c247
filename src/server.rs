//! The accept loop: HTTP/1.1 connections served by hyper with the bounds
//! `axum::serve` does not offer.
//!
//! - `header_read_timeout`: a connection waiting for a request head (just
//!   accepted, or after an answer) is closed when the whole head has not
//!   arrived in time (hyper's timer; slow-header clients).
//! - `idle_timeout`: a connection with no request in flight and no byte moving
//!   either way is closed (idle keep-alive sockets, silent sockets).
//! - `max_connections`: connections served at once. When all are taken, a new
//!   connection takes the place of the one waiting longest for a request (no
//!   request in flight, quiet for [`EVICTABLE_AFTER`]), which is closed: idle
//!   and slow-header sockets cannot crowd out a scrape. When every connection
//!   is busy, up to [`RESERVE`] more are served one request each for the
//!   read-only probes (`/metrics`, `/healthz`, `/readyz`), anything else being
//!   answered a JSON 503 with `Retry-After`; beyond the reserve a connection
//!   gets that 503 at once, without reading. Accepting never stops, so a flood
//!   cannot hold the listener at the file limit.
//! - Accept errors (`EMFILE`, …) are logged and retried after a short pause.
//! - TLS (`--web.config.file`): the handshake runs in the connection's own
//!   task, holding its slot, bounded by `header_read_timeout` (slow or silent
//!   handshakes are closed like slow headers, and may be evicted like them);
//!   a client that fails it (plain HTTP, no client certificate when one is
//!   required) is closed. Beyond the reserve a TLS connection is closed at
//!   once: a plain-text 503 would mean nothing to it.
//! - Shutdown: stop accepting, let in-flight requests finish (idle connections
//!   close at once), then return.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::http::body::discard;
use crate::http::edge::{App, serve_one};
use crate::telemetry::Telemetry;

/// Connections served beyond `max_connections`, one probe request each.
pub const RESERVE: usize = 32;

/// A connection quiet this long with no request in flight may be closed to
/// make room for a new one when `max_connections` are open.
pub const EVICTABLE_AFTER: Duration = Duration::from_millis(100);

/// How long a reserve connection may take to send its request head.
const RESERVE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (`EMFILE`: wait for descriptors to be freed).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The connection bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Largest body drained before a refusal is answered.
    pub max_body_bytes: usize,
}

/// The body of every connection-level refusal (the shape of `AppError`'s).
const BUSY_JSON: &str = r#"{"error":"too_many_connections","field":null,"reason":"the server has too many open connections; retry later"}"#;

fn busy_response() -> Response<Body> {
    let mut resp = Response::new(Body::from(BUSY_JSON));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves, then waits for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: App,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    telemetry: Arc<Telemetry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let full = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        next: AtomicU64::new(0),
        conns: std::sync::Mutex::default(),
    });
    let reserve = Arc::new(Semaphore::new(RESERVE));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone; `recv` returns `None` once all ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ctx = Ctx {
            router: router.clone(),
            limits,
            tls: tls.clone(),
            telemetry: telemetry.clone(),
            registry: registry.clone(),
            reserve: reserve.clone(),
            stop: stop_rx.clone(),
            alive: alive_tx.clone(),
        };
        match full.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(ctx.serve(stream, peer, permit));
            }
            Err(_) if registry.evict_one() => {
                telemetry.connection_refused("evicted");
                let full = full.clone();
                tokio::spawn(async move {
                    // The chosen connection closes at once and frees its slot;
                    // should another new connection take it first, choose again.
                    for _ in 0..4 {
                        let wait = Duration::from_millis(50);
                        if let Ok(Ok(permit)) =
                            tokio::time::timeout(wait, full.clone().acquire_owned()).await
                        {
                            return ctx.serve(stream, peer, permit).await;
                        }
                        if ctx.registry.evict_one() {
                            ctx.telemetry.connection_refused("evicted");
                        }
                    }
                    ctx.over_cap(stream, peer);
                });
            }
            Err(_) => ctx.over_cap(stream, peer),
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
    Ok(())
}

/// What a connection's task needs.
struct Ctx {
    router: App,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    telemetry: Arc<Telemetry>,
    registry: Arc<Registry>,
    reserve: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

impl Ctx {
    /// Serves a connection holding one of the `max_connections` slots.
    async fn serve(self, stream: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
        self.telemetry.connection_opened();
        let (id, activity) = self.registry.add();
        let conn = Connection {
            peer,
            router: self.router,
            limits: self.limits,
            stop: self.stop,
            activity,
            epoch: self.registry.epoch,
        };
        serve_connection(stream, self.tls, conn).await;
        self.registry.remove(id);
        self.telemetry.connection_closed();
        drop((permit, self.alive));
    }

    /// A connection with no slot: the reserve, else the 503 at once.
    fn over_cap(self, stream: TcpStream, peer: SocketAddr) {
        if let Ok(permit) = self.reserve.clone().try_acquire_owned() {
            self.telemetry.connection_refused("reserve");
            tokio::spawn(async move {
                serve_reserve(stream, peer, self.router, self.limits, self.tls).await;
                drop((permit, self.alive));
            });
        } else {
            self.telemetry.connection_refused("full");
            if self.tls.is_some() {
                // A TLS client could not read a plain-text 503: closed.
                drop(stream);
            } else {
                refuse_now(stream);
            }
        }
    }
}

/// Answers the 503 without reading and closes (beyond the reserve).
fn refuse_now(stream: TcpStream) {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 2\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_JSON}",
        BUSY_JSON.len()
    );
    // A fresh socket's send buffer is empty: the answer fits in one write.
    let _ = stream.try_write(head.as_bytes());
    if let Ok(std) = stream.into_std() {
        let _ = std.shutdown(std::net::Shutdown::Write);
    }
}

/// What the idle watcher of one connection reads.
#[derive(Default)]
struct Activity {
    /// Milliseconds since the server's epoch of the last byte read or written.
    last: AtomicU64,
    in_flight: AtomicUsize,
    /// Set once the connection is chosen to make room; it closes at once.
    evicted: std::sync::atomic::AtomicBool,
    evict: tokio::sync::Notify,
}

/// The served connections, to choose one to close when all slots are taken.
struct Registry {
    epoch: Instant,
    next: AtomicU64,
    conns: std::sync::Mutex<std::collections::HashMap<u64, Arc<Activity>>>,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn add(&self) -> (u64, Arc<Activity>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        activity.last.store(self.now_ms(), Ordering::Release);
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(id, activity.clone());
        }
        (id, activity)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    /// Closes the connection quiet the longest with no request in flight, if
    /// one has been quiet for [`EVICTABLE_AFTER`].
    fn evict_one(&self) -> bool {
        let now = self.now_ms();
        let grace = EVICTABLE_AFTER.as_millis() as u64;
        let Ok(conns) = self.conns.lock() else {
            return false;
        };
        let victim = conns
            .values()
            .filter(|a| {
                a.in_flight.load(Ordering::Acquire) == 0
                    && !a.evicted.load(Ordering::Acquire)
                    && now.saturating_sub(a.last.load(Ordering::Acquire)) >= grace
            })
            .min_by_key(|a| a.last.load(Ordering::Acquire));
        match victim {
            Some(a) if !a.evicted.swap(true, Ordering::AcqRel) => {
                a.evict.notify_one();
                true
            }
            _ => false,
        }
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that records when bytes last moved.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.activity.last.store(ms, Ordering::Release);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves once the connection has had no request in flight and no traffic
/// for `idle`.
async fn idle(activity: &Activity, epoch: Instant, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    loop {
        let now = epoch.elapsed().as_millis() as u64;
        let last = activity.last.load(Ordering::Acquire);
        let quiet = now.saturating_sub(last);
        if activity.in_flight.load(Ordering::Acquire) == 0 && quiet >= idle_ms {
            return;
        }
        let wait = if quiet >= idle_ms {
            idle_ms
        } else {
            idle_ms - quiet
        };
        tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
    }
}

/// One served connection: whom it is from, what answers it, what bounds and
/// ends it.
struct Connection {
    peer: SocketAddr,
    router: App,
    limits: Limits,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    /// The registry's clock origin, which `activity` times are counted from.
    epoch: Instant,
}

/// Serves `stream`, after a TLS handshake when `tls` is set.
async fn serve_connection(stream: TcpStream, tls: Option<TlsAcceptor>, mut conn: Connection) {
    let tracked = Tracked {
        inner: stream,
        activity: conn.activity.clone(),
        epoch: conn.epoch,
    };
    let Some(acceptor) = tls else {
        return serve_http(tracked, conn).await;
    };
    let (peer, limits, activity) = (conn.peer, conn.limits, conn.activity.clone());
    // The handshake holds the slot like a request head does: bounded by the
    // header timeout, ended by eviction or shutdown.
    let handshake = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tracked));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = activity.evict.notified() => {
            tracing::debug!(%peer, "connection closed during its TLS handshake to make room");
            return;
        }
        _ = conn.stop.changed() => return,
    };
    serve_http(stream, conn).await;
}

/// HTTP/1.1 on an accepted (and, with TLS, handshaken) connection.
async fn serve_http<I>(io: I, conn: Connection)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        peer,
        router,
        limits,
        mut stop,
        activity,
        epoch,
    } = conn;
    let io = TokioIo::new(io);
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            activity.in_flight.fetch_add(1, Ordering::AcqRel);
            let guard = InFlight(activity.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            let answered = serve_one(router.clone(), req.map(Body::new));
            async move {
                let resp = answered.await;
                drop(guard);
                resp
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            () = idle(&activity, epoch, limits.idle_timeout) => {
                tracing::debug!(%peer, "idle connection closed");
                return;
            }
            () = activity.evict.notified() => {
                if activity.in_flight.load(Ordering::Acquire) > 0 {
                    // A request began since it was chosen: it stays.
                    activity.evicted.store(false, Ordering::Release);
                    continue;
                }
                tracing::debug!(%peer, "connection closed to make room for a new one");
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() || *stop.borrow() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// One request on a connection over the cap: the read-only probes are served,
/// anything else gets the 503 (its body drained, bounded, so the client reads
/// the answer rather than a reset).
async fn serve_reserve(
    stream: TcpStream,
    peer: SocketAddr,
    router: App,
    limits: Limits,
    tls: Option<TlsAcceptor>,
) {
    match tls {
        None => reserve_http(stream, peer, router, limits).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(RESERVE_HEADER_TIMEOUT, acceptor.accept(stream));
            if let Ok(Ok(stream)) = handshake.await {
                reserve_http(stream, peer, router, limits).await;
            }
        }
    }
}

async fn reserve_http<I>(stream: I, peer: SocketAddr, router: App, limits: Limits)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let router = router.clone();
        let limit = limits.max_body_bytes;
        async move {
            let probe = req.method() == Method::GET
                && matches!(req.uri().path(), "/metrics" | "/healthz" | "/readyz");
            if probe {
                req.extensions_mut().insert(ConnectInfo(peer));
                serve_one(router, req.map(Body::new)).await
            } else {
                discard(Body::new(req.into_body()), limit).await;
                Ok(busy_response())
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(RESERVE_HEADER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    let deadline = RESERVE_HEADER_TIMEOUT + Duration::from_secs(30);
    let _ = tokio::time::timeout(deadline, conn).await;
}
