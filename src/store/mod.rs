//! Durable storage. One thread owns the SQLite connection (the single writer);
//! callers send it commands and await the answer, which comes only after the
//! transaction holding their change has committed. The writer drains queued
//! commands into one transaction (group commit); a failure that ends the
//! transaction fails the whole group, so no batch is ever committed outside
//! it. The writer is supervised: a panic rolls back, rebuilds the aggregates
//! from disk and restarts it (see [`health::Health`] for what `/readyz` reads).

pub mod backup;
mod defect;
mod engine;
pub mod export;
pub mod fault;
pub mod format;
pub mod health;
pub mod identity;
pub mod import;
pub(crate) mod links;
mod load;
pub mod lock;
pub mod read;
mod rules;
pub mod schema;
pub mod space;
pub mod sync;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::telemetry::Telemetry;
pub use fault::Fault;
pub use health::Health;

/// Everything one request writes: committed all-or-nothing.
#[derive(Debug, Clone)]
pub struct Batch {
    pub ingress: Ingress,
    pub items: Vec<Item>,
    /// Vendor delivery id; a batch whose id was seen before is a no-op.
    pub delivery: Option<String>,
    /// Read from the vendor's API by `sync`, not delivered: it does not mark
    /// its source active (`bug_escape_last_event_timestamp_seconds`, so a
    /// silent webhook stays visible) and `sync` counts its outcome itself.
    pub reconcile: bool,
    pub received_at: Millis,
    /// A batch still queued at this instant is not applied (its caller gets
    /// [`StoreError::Timeout`]); once its transaction starts, it is committed
    /// and answered whatever the time.
    pub deadline: Option<Instant>,
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Items that changed stored state.
    pub accepted: u64,
    /// Items equal to the stored state (their time still advanced).
    pub unchanged: u64,
    /// Items older than the stored state, not applied.
    pub stale: u64,
    /// Retractions of defects that were never stored: nothing to do.
    #[serde(skip_serializing_if = "is_zero")]
    pub ignored: u64,
    /// Links refused because the group they would join holds
    /// [`crate::model::event::MAX_GROUP_RECORDS`] records already.
    #[serde(skip_serializing_if = "is_zero")]
    pub links_refused: u64,
    /// The whole batch was a repeated delivery and was not applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate_delivery: bool,
}

/// What a command's summary line adds for `n` links refused by a group's
/// cap: nothing when none was.
pub fn refused_links_note(n: u64) -> String {
    if n == 0 {
        return String::new();
    }
    format!(
        "; {n} links refused: their group was at its cap of {} records",
        crate::model::event::MAX_GROUP_RECORDS
    )
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Nothing of the batch was stored; retryable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refuses writes for a reason an operator must act on (the
    /// database file removed or replaced, the disk full), in words fit for
    /// the client's answer.
    #[error("store refuses writes: {0}")]
    Refused(String),
    /// The batch waited in the queue past its deadline and was not applied.
    #[error("timed out in the write queue")]
    Timeout,
}

enum Command {
    Write(Batch, oneshot::Sender<Result<Outcome, StoreError>>, Hold),
    Inject(Fault),
}

/// Something a caller wants released only once the writer is done with its
/// batch (answered, refused or dropped), such as room in a write queue: if the
/// caller goes away early, the batch still holds it.
pub type Hold = Option<Box<dyn Send>>;

/// Handle to the writer thread. Cloning shares the writer.
#[derive(Clone)]
pub struct Store {
    tx: std::sync::mpsc::Sender<Command>,
    health: Arc<Health>,
    pending: Arc<Pending>,
}

/// Writes handed to the writer and not yet answered, and the most seen at
/// once since the writer last looked: how many callers a group may wait for
/// (the writer's group commit).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Pending {
    fn enter(self: &Arc<Self>) -> PendingGuard {
        let n = self.now.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(n, Ordering::AcqRel);
        PendingGuard(self.clone())
    }

    /// The peak since the last call; the count restarts from the writes
    /// pending now.
    pub(crate) fn take_peak(&self) -> usize {
        self.peak
            .swap(self.now.load(Ordering::Acquire), Ordering::AcqRel)
    }
}

/// One pending write; counted out when dropped (answered or cancelled).
struct PendingGuard(Arc<Pending>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The writer thread, to join at shutdown.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    /// Waits for the writer to finish the queued work and close the database.
    /// Every [`Store`] handle must have been dropped first.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("store writer thread panicked");
        }
    }
}

impl Store {
    /// Opens (creating and migrating) the database, re-keys stored rows when the
    /// keying configuration changed, loads the aggregates, starts the writer.
    /// A damaged database, or one written by a newer version, stops here with
    /// a message naming the file and what to do.
    pub fn open(
        config: Arc<Config>,
        aggregates: Arc<RwLock<Aggregates>>,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<(Store, WriterThread)> {
        let (mut conn, loaded, file) =
            open_and_load(&config).map_err(|e| explain(&config.db, e))?;
        *health::write_lock(&aggregates) = loaded;
        for (source, at) in load::last_events(&conn)? {
            telemetry.set_last_event(&source, at);
        }
        let health = Arc::new(Health::new(telemetry.clone()));
        health.watch(file.clone());
        // Readiness tells the truth from the first probe: a start on a full
        // disk is 503 at once, not 200 until the first periodic probe.
        if let Err(e) = writer::probe(&mut conn) {
            let why = writer::write_failure(&config.db, &e);
            tracing::error!(error = %e, "the store does not take a write at start");
            telemetry.store_error("probe");
            health.write_failed(why);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let pending = Arc::new(Pending::default());
        let supervisor = writer::Supervisor {
            file,
            config,
            aggregates,
            telemetry,
            health: health.clone(),
            pending: pending.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || supervisor.run(conn, rx))?;
        Ok((
            Store {
                tx,
                health,
                pending,
            },
            WriterThread(handle),
        ))
    }

    /// Commits `batch`; answers only once it is durable and counted.
    pub async fn write(&self, batch: Batch) -> Result<Outcome, StoreError> {
        self.write_holding(batch, None).await
    }

    /// Like [`write`](Self::write); `hold` is dropped by the writer once it is
    /// done with the batch.
    pub async fn write_holding(&self, batch: Batch, hold: Hold) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let _pending = self.pending.enter();
        self.tx
            .send(Command::Write(batch, reply, hold))
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// What `/readyz` reports: whether a write would be accepted now.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Injects a fault into the writer, for tests of the failure paths.
    #[doc(hidden)]
    pub fn inject(&self, fault: Fault) {
        let _ = self.tx.send(Command::Inject(fault));
    }
}

/// Opens the file, re-keys if needed and loads the aggregates; with the
/// identity of the file opened, read at once.
fn open_and_load(
    config: &Config,
) -> Result<(rusqlite::Connection, Aggregates, identity::FileIdentity), anyhow::Error> {
    let mut conn = schema::open(&config.db)?;
    let file = identity::FileIdentity::of(&config.db)?;
    load::rekey_if_changed(&mut conn, config)?;
    let loaded = load::aggregates(&conn, config)?;
    Ok((conn, loaded, file))
}

/// Turns a start-up failure into a message naming the file, saying whether it
/// is damaged (with `integrity_check`'s findings) and what to do.
fn explain(path: &Path, e: anyhow::Error) -> anyhow::Error {
    if let Some(newer @ schema::OpenError::Newer { .. }) = e.downcast_ref::<schema::OpenError>() {
        return anyhow::anyhow!("{newer}");
    }
    let file = path.display();
    let sqlite_code = space::sqlite_code(&e);
    if sqlite_code == Some(rusqlite::ErrorCode::NotADatabase) {
        return anyhow::anyhow!(
            "database {file} is not a SQLite database (or its header is damaged): {e}. \
             Restore it from a backup, or move it aside to start with an empty store"
        );
    }
    if space::full(sqlite_code, path) {
        return anyhow::anyhow!("cannot start: {:#}", space::explain(path, e));
    }
    if matches!(
        sqlite_code,
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::PermissionDenied)
    ) {
        return anyhow::anyhow!("cannot open database {file}: {e}");
    }
    match schema::integrity(path) {
        schema::Integrity::Corrupt(problems) => anyhow::anyhow!(
            "database {file} is corrupt: {e}. PRAGMA integrity_check reports:\n  {}\n\
             Stop every process using it and restore {file} from a backup (or move it aside \
             to start empty; `sqlite3 {file} .recover` may salvage rows)",
            problems.join("\n  ")
        ),
        schema::Integrity::Intact => anyhow::anyhow!(
            "cannot load database {file}: {e}. PRAGMA integrity_check finds no damage, so a \
             row holds a value this version cannot read (written by another program?); \
             restore {file} from a backup or move it aside to start empty"
        ),
        schema::Integrity::Unreadable(why) => anyhow::anyhow!(
            "cannot read database {file}: {e} (PRAGMA integrity_check could not run either: \
             {why}). Check the volume and the file's permissions; nothing says the file is \
             damaged"
        ),
    }
}
