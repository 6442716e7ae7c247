//! The writer's supervisor: runs the writer thread and restarts it, on a
//! fresh connection with the aggregates rebuilt from disk, when it panics or
//! its connection breaks.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::Writer;
use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::store::fault::Armed;
use crate::store::health::{Health, write_lock};
use crate::store::identity::FileIdentity;
use crate::store::{Command, StoreError, load, schema};
use crate::telemetry::Telemetry;

/// How long the supervisor keeps trying to reopen the database before the
/// process exits for its own supervisor (systemd, Kubernetes) to restart it.
const REOPEN_FOR: Duration = Duration::from_secs(60);

/// Runs the writer and restarts it when it fails.
pub(in crate::store) struct Supervisor {
    /// The database file opened at start; the writer refuses to write once
    /// the path names another file, and is only ever reopened on this one.
    pub file: FileIdentity,
    pub config: Arc<Config>,
    pub aggregates: Arc<RwLock<Aggregates>>,
    pub telemetry: Arc<Telemetry>,
    pub health: Arc<Health>,
    pub pending: Arc<crate::store::Pending>,
}

/// Why [`Writer::serve`] returned.
pub(super) enum Exit {
    /// Every sender is gone: shut down.
    Shutdown,
    /// The connection is in a state the writer cannot trust: reopen.
    Broken(String),
}

impl Supervisor {
    /// Serves commands until every sender is dropped, restarting the writer on
    /// a fresh connection (and fresh aggregates) whenever it fails.
    pub(in crate::store) fn run(self, conn: Connection, rx: Receiver<Command>) {
        let _exit = ExitGuard(self.health.clone());
        let armed = Arc::new(Armed::default());
        let mut conn = Some(conn);
        loop {
            let conn = match conn.take() {
                Some(c) => c,
                None => match self.reopen(&rx, &armed) {
                    Some(c) => c,
                    None => return,
                },
            };
            let mut writer = Writer::new(conn, &self, armed.clone());
            let why = match catch_unwind(AssertUnwindSafe(|| writer.serve(&rx))) {
                Ok(Exit::Shutdown) => return writer.close(),
                Ok(Exit::Broken(why)) => why,
                Err(panic) => format!("writer panicked: {}", panic_message(&*panic)),
            };
            // Dropping the writer closes its connection; an open transaction
            // rolls back with it.
            drop(writer);
            tracing::error!(reason = %why, "store writer failed; restarting it");
            self.telemetry.writer_restarted();
            self.health.writer_down(why);
        }
    }

    /// Opens the database again and rebuilds the aggregates from it; answers
    /// 503 to whatever arrives meanwhile. `None` when every sender is gone.
    fn reopen(&self, rx: &Receiver<Command>, armed: &Armed) -> Option<Connection> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            // Never the file another database was moved to, never a new
            // empty one where the database was deleted.
            let attempt = self
                .file
                .check_file()
                .map_err(anyhow::Error::msg)
                .and_then(|()| Ok(schema::open_existing(&self.config.db)?))
                .and_then(|c| {
                    // The old connection may have deleted the journal on
                    // close; this one's is the one to watch.
                    self.file.rewatch_wal();
                    self.file.check().map_err(anyhow::Error::msg)?;
                    Ok(c)
                })
                .and_then(|mut c| {
                    load::rekey_if_changed(&mut c, &self.config)?;
                    let fresh = load::aggregates(&c, &self.config)?;
                    Ok((c, fresh))
                });
            match attempt {
                Ok((conn, fresh)) => {
                    replace_aggregates(&self.aggregates, fresh);
                    self.health.writer_up();
                    tracing::info!("store writer restarted; aggregates rebuilt from disk");
                    return Some(conn);
                }
                Err(e) if started.elapsed() > REOPEN_FOR => {
                    tracing::error!(error = %e, "cannot reopen the database; exiting so the service manager restarts the exporter");
                    std::process::exit(70);
                }
                Err(e) => tracing::warn!(error = %e, "cannot reopen the database yet"),
            }
            let until = Instant::now() + pause;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(Command::Write(_, reply, _hold)) => {
                        let _ = reply.send(Err(StoreError::Unavailable(
                            "the store writer is restarting".into(),
                        )));
                    }
                    Ok(Command::Inject(f)) => armed.arm(f),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return None,
                }
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// Marks the store down when the writer thread ends; if it ends by a panic the
/// supervisor could not catch, exits the process rather than live on refusing
/// every write.
struct ExitGuard(Arc<Health>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.writer_down("the store writer stopped".into());
        if std::thread::panicking() {
            tracing::error!("the store writer's supervisor panicked; exiting");
            std::process::exit(70);
        }
    }
}

/// Swaps in aggregates loaded from disk and clears a poisoned lock.
pub(super) fn replace_aggregates(lock: &RwLock<Aggregates>, fresh: Aggregates) {
    *write_lock(lock) = fresh;
    lock.clear_poison();
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
