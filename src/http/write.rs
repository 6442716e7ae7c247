//! The one write path every source shares, and the write queue's bound.
//!
//! A write request first takes room in the write queue, sized by its declared
//! body (or the body limit when it declares none), and keeps it until it is
//! answered: what waits for the writer — bodies, parsed items — is bounded by
//! `write_queue_bytes`, and a request that finds no room within
//! `write_queue_wait` gets a 503 with `Retry-After`. Once admitted, it has
//! `write_timeout` to be read and taken into a transaction; a batch whose
//! transaction started is committed and answered, never cut off by a timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::body::read_limited;
use super::error::AppError;
use crate::model::event::Ingress;
use crate::model::item::Item;
use crate::store::{Batch, Outcome, StoreError};
use crate::telemetry::Telemetry;

/// A bound on request bytes held at once, exported as a pair of gauges
/// (held, capacity). The write queue and the unauthenticated budget are two.
#[derive(Clone)]
struct Budget {
    room: Arc<Semaphore>,
    /// Set by every admission; cleared by [`Budget::idle_after_use`].
    used: Arc<AtomicBool>,
    capacity: usize,
    wait: Duration,
    telemetry: Arc<Telemetry>,
    gauge: fn(&Telemetry, u64, u64),
}

/// Room held in a [`Budget`]; released (and the gauge updated) when dropped.
struct Held {
    permit: OwnedSemaphorePermit,
    budget: Budget,
}

impl Drop for Held {
    fn drop(&mut self) {
        // The permit is released after this body runs: count it as gone.
        let size = self.permit.num_permits();
        self.budget
            .report(self.budget.room.available_permits() + size);
    }
}

impl Budget {
    fn new(
        capacity: usize,
        wait: Duration,
        telemetry: Arc<Telemetry>,
        gauge: fn(&Telemetry, u64, u64),
    ) -> Self {
        let capacity = capacity.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        let b = Self {
            room: Arc::new(Semaphore::new(capacity)),
            used: Arc::default(),
            capacity,
            wait,
            telemetry,
            gauge,
        };
        b.report(capacity);
        b
    }

    fn report(&self, available: usize) {
        let held = self.capacity.saturating_sub(available);
        (self.gauge)(&self.telemetry, held as u64, self.capacity as u64);
    }

    /// Whether room was taken since the last call and none is held now.
    fn idle_after_use(&self) -> bool {
        self.room.available_permits() == self.capacity && self.used.swap(false, Ordering::AcqRel)
    }

    /// The room a request of at most `limit` bytes takes: its declared length
    /// when it has one (a longer body is refused, 413, while it is read).
    fn want(&self, headers: &HeaderMap, limit: usize) -> usize {
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(limit)
            .clamp(1, limit.min(self.capacity))
    }

    /// `want` bytes of room, waiting at most the budget's `wait`.
    async fn take(&self, want: usize) -> Option<Held> {
        let want = want.clamp(1, self.capacity) as u32;
        let permit = match self.room.clone().try_acquire_many_owned(want) {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(self.wait, self.room.clone().acquire_many_owned(want))
                .await
                .ok()?
                .ok()?,
        };
        self.report(self.room.available_permits());
        self.used.store(true, Ordering::Release);
        Some(Held {
            permit,
            budget: self.clone(),
        })
    }
}

/// The bound on bytes admitted and not yet answered.
#[derive(Clone)]
pub struct WriteQueue(Budget);

/// Room held in the write queue; released when dropped.
pub struct Admitted {
    _held: Held,
    /// When the request must have reached the writer.
    pub deadline: Instant,
}

impl WriteQueue {
    /// A queue of `capacity` bytes; a request waits at most `wait` for room.
    pub fn new(capacity: usize, wait: Duration, telemetry: Arc<Telemetry>) -> Self {
        Self(Budget::new(
            capacity,
            wait,
            telemetry,
            Telemetry::set_write_queue,
        ))
    }

    /// Whether writes were admitted since the last call and none waits now.
    pub fn idle_after_writes(&self) -> bool {
        self.0.idle_after_use()
    }

    /// Takes room for a request whose body is at most `limit` bytes.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        limit: usize,
        timeout: Duration,
    ) -> Result<Admitted, AppError> {
        let want = self.0.want(headers, limit);
        self.admit_until(want, Instant::now() + timeout).await
    }

    /// Takes room for `len` bytes already read (a webhook body whose signature
    /// was checked), keeping `deadline`.
    pub async fn admit_until(&self, len: usize, deadline: Instant) -> Result<Admitted, AppError> {
        match self.0.take(len).await {
            Some(held) => Ok(Admitted {
                _held: held,
                deadline,
            }),
            None => Err(AppError::Busy(
                "the write queue is full; nothing was stored; retry later".into(),
            )),
        }
    }
}

/// The bound on webhook body bytes read before their signature is checked:
/// unauthenticated senders compete for this budget only, never for the write
/// queue, which signed deliveries enter once checked.
#[derive(Clone)]
pub struct Unauthenticated(Budget);

/// Room held for an unauthenticated body; released when dropped.
pub struct Unverified {
    _held: Held,
}

impl Unauthenticated {
    /// A budget of `capacity` bytes; a request waits at most `wait` for room.
    pub fn new(capacity: usize, wait: Duration, telemetry: Arc<Telemetry>) -> Self {
        Self(Budget::new(
            capacity,
            wait,
            telemetry,
            Telemetry::set_unauthenticated,
        ))
    }

    /// Whether bodies were admitted since the last call and none is held now.
    pub fn idle_after_reads(&self) -> bool {
        self.0.idle_after_use()
    }

    /// Takes room for a body of at most `limit` bytes (its declared length
    /// when it has one), before it is read.
    pub async fn admit(&self, headers: &HeaderMap, limit: usize) -> Result<Unverified, AppError> {
        let want = self.0.want(headers, limit);
        match self.0.take(want).await {
            Some(held) => Ok(Unverified { _held: held }),
            None => Err(AppError::UnauthenticatedFull),
        }
    }
}

/// Reads the body of an admitted request, within its deadline and
/// `body_timeout` from now, whichever comes first (408 after it).
pub async fn read_body(
    admitted: &Admitted,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    body_timeout: Duration,
) -> Result<Bytes, AppError> {
    read_body_until(admitted.deadline, headers, body, limit, body_timeout).await
}

/// Reads a body of at most `limit` bytes by `deadline` and within
/// `body_timeout` from now (408 after it): every body the exporter reads is
/// bounded in size and time.
pub async fn read_body_until(
    deadline: Instant,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    body_timeout: Duration,
) -> Result<Bytes, AppError> {
    let deadline = deadline.min(Instant::now() + body_timeout);
    let deadline = tokio::time::Instant::from_std(deadline);
    match tokio::time::timeout_at(deadline, read_limited(headers, body, limit)).await {
        Ok(read) => read,
        Err(_) => Err(AppError::RequestTimeout),
    }
}

/// Counts a refused write in `bug_escape_events_rejected_total` (by its
/// reason) and passes the result on; the store counts its own failures.
pub fn count_refusal<T>(
    state: &AppState,
    ingress: Ingress,
    result: Result<T, AppError>,
) -> Result<T, AppError> {
    if let Err(e) = &result {
        if !matches!(e, AppError::StoreUnavailable(_)) {
            state.telemetry.rejected(ingress, e.reason_label());
        }
    }
    result
}

/// Commits `items` from `ingress` and answers with what happened: 2xx only
/// once committed and counted; 503 when nothing of it was stored.
pub async fn record(
    state: &AppState,
    admitted: Admitted,
    ingress: Ingress,
    items: Vec<Item>,
    delivery: Option<String>,
    received_at: i64,
) -> Result<Outcome, AppError> {
    let batch = Batch {
        ingress,
        items,
        delivery,
        reconcile: false,
        received_at,
        deadline: Some(admitted.deadline),
    };
    // The room is released by the writer once it is done with the batch, even
    // if this request is cancelled first.
    let hold: Box<dyn Send> = Box::new(admitted);
    state
        .store
        .write_holding(batch, Some(hold))
        .await
        .map_err(|e| {
            state.telemetry.rejected(ingress, "store_unavailable");
            match e {
                StoreError::Timeout => AppError::Busy(
                    "the write waited too long for the store; nothing was stored; retry later"
                        .into(),
                ),
                StoreError::Unavailable(cause) => AppError::StoreUnavailable(cause),
                StoreError::Refused(why) => AppError::StoreRefused(why),
            }
        })
}

/// The last step of every generic-API write (`POST /api/v1/events`,
/// `POST /api/v1/releases`, `DELETE /api/v1/defects/…`): counts `items` as
/// received, then [`record`]s them.
pub async fn record_generic(
    state: &AppState,
    admitted: Admitted,
    items: Vec<Item>,
    received_at: i64,
) -> Result<Outcome, AppError> {
    state
        .telemetry
        .received(Ingress::Generic, items.len() as u64);
    record(state, admitted, Ingress::Generic, items, None, received_at).await
}

/// Bodies at least this large are parsed on the blocking pool.
const PARSE_OFF_WORKERS: usize = 64 * 1024;

/// Runs CPU-heavy work for a body of `len` bytes: inline when small, else on
/// the blocking pool, so the async workers stay free for `/readyz` and
/// `/metrics` while large batches are parsed.
pub async fn off_workers<T: Send + 'static>(
    len: usize,
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    if len < PARSE_OFF_WORKERS {
        return work();
    }
    // As many parses at once as there are cores: more would only hold more
    // JSON trees in memory at the same time, not finish sooner.
    static SLOTS: std::sync::OnceLock<Arc<Semaphore>> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(cores))
    });
    let _slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::Busy("shutting down".into()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Malformed(format!("parsing the body failed: {e}")))?
}
