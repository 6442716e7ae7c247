//! Durable storage. One thread owns the SQLite connection (the single writer);
//! callers send it commands and await the answer, which comes only after the
//! transaction holding their change has committed. The writer drains every
//! queued command into one transaction (group commit), each inside its own
//! savepoint so one failure never undoes another caller's batch.

mod defect;
pub use defect::release_key;
mod load;
mod schema;
mod writer;

use std::sync::{Arc, RwLock};

use tokio::sync::oneshot;

use crate::config::Config;
use crate::metrics::aggregate::Aggregates;
use crate::metrics::telemetry::Telemetry;
use crate::model::event::{DefectEvent, Ingress, ReleaseEvent};
use crate::model::time::Millis;

/// One item of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Defect(DefectEvent),
    Release(ReleaseEvent),
}

/// Everything one request writes: committed all-or-nothing.
#[derive(Debug, Clone)]
pub struct Batch {
    pub ingress: Ingress,
    pub items: Vec<Item>,
    /// Vendor delivery id; a batch whose id was seen before is a no-op.
    pub delivery: Option<String>,
    pub received_at: Millis,
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
    /// The whole batch was a repeated delivery and was not applied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate_delivery: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The store could not commit: retryable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

enum Command {
    Write(Batch, oneshot::Sender<Result<Outcome, StoreError>>),
    Ping(oneshot::Sender<Result<(), StoreError>>),
}

/// Handle to the writer thread. Cloning shares the writer.
#[derive(Clone)]
pub struct Store {
    tx: std::sync::mpsc::Sender<Command>,
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
    pub fn open(
        config: Arc<Config>,
        aggregates: Arc<RwLock<Aggregates>>,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<(Store, WriterThread)> {
        let mut conn = schema::open(&config.db)
            .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", config.db.display()))?;
        load::rekey_if_changed(&mut conn, &config)?;
        let loaded = load::aggregates(&conn, &config)?;
        *aggregates.write().expect("aggregates lock") = loaded;
        for (source, at) in load::last_events(&conn)? {
            telemetry.set_last_event(&source, at);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = writer::Writer::new(conn, config, aggregates, telemetry);
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok((Store { tx }, WriterThread(handle)))
    }

    /// Commits `batch`; answers only once it is durable.
    pub async fn write(&self, batch: Batch) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Write(batch, reply))
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Proves the store writable (a write in a transaction).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Ping(reply))
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }
}
