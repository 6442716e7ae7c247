//! The writer thread: owns the connection, applies batches in group commits,
//! and updates the in-memory aggregates after each commit. [`Supervisor`]
//! restarts it, with the aggregates rebuilt from disk, when it panics or its
//! connection breaks.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;

mod aggregates;
mod group;
mod supervisor;

pub(super) use supervisor::Supervisor;
use supervisor::{Exit, panic_message};

use super::defect::{self, InsertFirst};
use super::engine::{ColdCache, stored_something};
use super::fault::{Armed, Fault};
use super::health::Health;
use super::identity::FileIdentity;
use super::{Batch, Command, Hold, Outcome, StoreError, schema, space};
use crate::aggregate::Aggregates;
use crate::config::{Checkpoint, Config};
use crate::model::time::Millis;
use crate::telemetry::Telemetry;

/// Most requests folded into one transaction.
const MAX_GROUP: usize = 512;
/// Most items folded into one transaction (a larger batch still commits whole).
const MAX_GROUP_ITEMS: usize = 20_000;
/// Under concurrent load, the callers answered by the previous commit come
/// back while the writer applies the writes that queued meanwhile: the writer
/// takes them into the open transaction, so one fsync covers both instead of
/// the groups alternating half full. It waits for them until the group holds
/// as many writes as were in the store at once during the last commit
/// ([`super::Pending`]), for as long as the last commit took (its fsync),
/// within [`MIN_LINGER`] and this: on a fast disk the callers take longer to
/// come back than a commit, and a group left half full makes the other half
/// wait a whole cycle anyway.
const MAX_LINGER: Duration = Duration::from_millis(5);
/// The shortest wait for the expected writes (see [`MAX_LINGER`]).
const MIN_LINGER: Duration = Duration::from_millis(1);
/// A write arriving later than this after the previous one ends the wait.
const LINGER_GAP: Duration = Duration::from_millis(1);
/// How long the writer waits for work before doing its idle chores.
const IDLE_TICK: Duration = Duration::from_millis(500);
/// How often an idle, healthy writer proves the disk still takes a write (a
/// failing write flips readiness at once; this catches a disk that filled
/// while nothing was written, at about 1 KiB/s of writes).
const PROBE_EVERY: Duration = Duration::from_secs(30);
/// Size of the readiness probe's filler row: four pages, so the WAL must grow.
const PROBE_BYTES: i64 = 16 * 1024;
/// Below this much free space on its volume the writer checkpoints after
/// every commit ([`Writer::fold_when_short_of_space`]): twice the most the
/// WAL holds before its automatic checkpoint.
const SHORT_OF_SPACE: u64 = 2 * schema::JOURNAL_SIZE_LIMIT as u64;
/// How long a delivery id is remembered for deduplication.
pub const DELIVERY_TTL_MS: Millis = 7 * 24 * 3600 * 1000;

type Reply = oneshot::Sender<Result<Outcome, StoreError>>;

pub(super) struct Writer {
    conn: Connection,
    config: Arc<Config>,
    aggregates: Arc<RwLock<Aggregates>>,
    telemetry: Arc<Telemetry>,
    health: Arc<Health>,
    armed: Arc<Armed>,
    /// Configured stage names as a JSON array, for `first_found`.
    stages: String,
    /// Empty aggregates shaped by the configuration, to build loaded releases in.
    scratch: Aggregates,
    cold: ColdCache,
    last_prune: Millis,
    /// Last commit or probe that reached the disk.
    last_write: Instant,
    /// Written since the WAL was last truncated.
    wal_dirty: bool,
    /// A command that arrived while a group was open and must wait for the
    /// next one (an injected fault).
    deferred: Option<Command>,
    /// Requests of the last committed group.
    last_group: usize,
    /// How long the last `COMMIT` took (its fsync, mostly).
    last_commit: Duration,
    /// Writes in the store (queued or being applied) and their recent peak.
    pending: Arc<super::Pending>,
    /// Whether the next group inserts defects before looking them up.
    insert_first: InsertFirst,
    /// The database file opened at start (see [`Supervisor::file`]).
    file: FileIdentity,
    /// The path named another file (or none) when last checked: writes are
    /// refused, and if the file comes back the aggregates are reloaded from
    /// it first (a group may have committed to it unanswered).
    lost: bool,
    /// The last write failed for a full volume: the WAL is folded into the
    /// database before anything else is written (see [`Writer::heal`]).
    full: bool,
}

/// What becomes of a command taken from the queue.
enum Taken {
    Write(Batch, Reply, Hold),
    /// Answered (deadline passed) or dropped (caller gone).
    Done,
    Inject(Fault),
}

impl Writer {
    fn new(conn: Connection, s: &Supervisor, armed: Arc<Armed>) -> Self {
        if s.config.checkpoint == Checkpoint::External {
            if let Err(e) =
                conn.pragma_update(None, "wal_autocheckpoint", schema::EXTERNAL_AUTOCHECKPOINT)
            {
                tracing::warn!(error = %e, "cannot raise the WAL's checkpoint threshold");
            }
        }
        Self {
            conn,
            stages: defect::stages_json(&s.config),
            scratch: Aggregates::new(&s.config),
            cold: ColdCache::default(),
            config: s.config.clone(),
            aggregates: s.aggregates.clone(),
            telemetry: s.telemetry.clone(),
            health: s.health.clone(),
            armed,
            last_prune: 0,
            last_write: Instant::now(),
            wal_dirty: false,
            deferred: None,
            last_group: 0,
            last_commit: Duration::ZERO,
            pending: s.pending.clone(),
            insert_first: InsertFirst::starting(true),
            file: s.file.clone(),
            lost: false,
            full: s.health.failing(),
        }
    }

    /// Serves commands until every sender is dropped or the connection breaks.
    fn serve(&mut self, rx: &Receiver<Command>) -> Exit {
        loop {
            let next = match self.deferred.take() {
                Some(cmd) => Ok(cmd),
                None => rx.recv_timeout(IDLE_TICK),
            };
            let result = match next {
                Ok(first) => {
                    let mut holds = Vec::new();
                    let group = self.gather(first, rx, &mut holds);
                    if group.is_empty() {
                        Ok(())
                    } else {
                        self.commit_group(group, holds, rx)
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.idle(),
                Err(RecvTimeoutError::Disconnected) => return Exit::Shutdown,
            };
            if let Err(why) = result {
                return Exit::Broken(why);
            }
        }
    }

    /// Folds the waiting writes into one group (bounded by requests and
    /// items); applies injected faults; answers writes whose deadline passed.
    fn gather(
        &mut self,
        first: Command,
        rx: &Receiver<Command>,
        holds: &mut Vec<Hold>,
    ) -> Vec<(Batch, Reply)> {
        let mut group = Vec::new();
        let mut items = 0;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match take(&self.telemetry, cmd) {
                Taken::Inject(f) => self.inject(f),
                Taken::Done => {}
                Taken::Write(batch, reply, hold) => {
                    items += batch.items.len();
                    holds.push(hold);
                    group.push((batch, reply));
                }
            }
            if group.len() < MAX_GROUP && items < MAX_GROUP_ITEMS {
                next = rx.try_recv().ok();
            }
        }
        group
    }

    fn inject(&mut self, fault: Fault) {
        if let Fault::MaxPageCount(n) = fault {
            let n = if n == 0 { i64::MAX } else { n as i64 };
            if let Err(e) = self.conn.pragma_update(None, "max_page_count", n) {
                tracing::warn!(error = %e, "cannot set max_page_count");
            }
        }
        self.armed.arm(fault);
    }

    /// Commits a group in one transaction, then updates the aggregates and
    /// answers each caller. When the transaction fails, nothing of the group
    /// is stored and every caller gets a 503. `Err` when the connection is left
    /// in a state the writer cannot trust.
    fn commit_group(
        &mut self,
        mut group: Vec<(Batch, Reply)>,
        mut holds: Vec<Hold>,
        rx: &Receiver<Command>,
    ) -> Result<(), String> {
        if let Err(why) = self.writable_file().and_then(|()| self.heal()) {
            drop(holds);
            self.telemetry.store_error("commit");
            refuse(group, &why);
            return Ok(());
        }
        let mut ops = Vec::new();
        let result = match catch_unwind(AssertUnwindSafe(|| {
            self.apply_group(&mut group, &mut holds, rx, &mut ops)
        })) {
            Ok(r) => r,
            Err(panic) => {
                // Rolled back while unwinding. Readiness turns 503 before any
                // caller hears back; the supervisor restarts the writer.
                let why = format!("writer panicked: {}", panic_message(&*panic));
                self.health.writer_down(why.clone());
                drop(holds);
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Unavailable(why.clone())));
                }
                return Err(why);
            }
        };
        // What callers hold for their batches (room in the write queue) is
        // released before they hear back, so an answered request is no longer
        // counted as waiting.
        drop(holds);
        match result {
            Ok(outcomes) => {
                self.last_group = group.len();
                // Committed to the file the process opened: if the path no
                // longer names it, a restart would not find the group, so
                // it is neither answered 2xx nor counted.
                if let Err(why) = self.file.check() {
                    self.file_lost(&why);
                    self.telemetry.store_error("commit");
                    refuse(group, &why);
                    return Ok(());
                }
                self.wrote();
                self.fold_when_short_of_space();
                self.apply_ops(&ops)?;
                for ((batch, reply), outcome) in group.into_iter().zip(outcomes) {
                    if let Ok(o) = &outcome {
                        self.count(&batch, o);
                    }
                    let _ = reply.send(outcome);
                }
                Ok(())
            }
            Err(e) => {
                self.telemetry.store_error("commit");
                tracing::error!(error = %e, batches = group.len(), "transaction failed; nothing of the group committed");
                // A full disk is named to the callers: theirs to know, and
                // nothing internal in it.
                let full = space::full_error(&e, &self.config.db);
                self.full |= full;
                let refused = full.then(|| space::message(&self.config.db));
                self.health.write_failed(
                    refused
                        .clone()
                        .unwrap_or_else(|| format!("the last transaction failed: {e}")),
                );
                for (_, reply) in group {
                    let _ = reply.send(Err(match &refused {
                        Some(why) => StoreError::Refused(why.clone()),
                        None => StoreError::Unavailable(e.to_string()),
                    }));
                }
                self.ensure_no_transaction()
            }
        }
    }

    /// `Ok` while the database path names the file the writer has open. When
    /// it names it again after a while, the aggregates are first reloaded
    /// from it (a group may have committed there without being counted).
    fn writable_file(&mut self) -> Result<(), String> {
        if let Err(why) = self.file.check() {
            self.file_lost(&why);
            return Err(why);
        }
        if self.lost {
            tracing::info!("the database file is back; reloading the aggregates from it");
            self.rebuild()?;
            self.lost = false;
        }
        Ok(())
    }

    fn file_lost(&mut self, why: &str) {
        if !self.lost {
            tracing::error!(reason = %why, "the database file is gone; refusing writes");
        }
        self.lost = true;
        self.health.write_failed(why.to_owned());
    }

    /// After a write failed for a full volume, folds the WAL into the
    /// database and truncates it before anything else is written: freed
    /// space goes to the pages the WAL holds first, so the store heals as
    /// soon as that much is free (a write first would take it for the WAL,
    /// and the checkpoint could then never grow the file). `Err` (the answer
    /// for the group) while the checkpoint cannot complete for want of space.
    fn heal(&mut self) -> Result<(), String> {
        if !self.full {
            return Ok(());
        }
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(_) => Ok(()),
            Err(e) if space::full_error(&e, &self.config.db) => {
                Err(space::message(&self.config.db))
            }
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint on a full volume failed");
                Ok(())
            }
        }
    }

    /// On a volume with less free space than the WAL may grow to before its
    /// automatic checkpoint, folds each commit into the database at once, so
    /// what space there is goes to the data rather than to WAL frames a
    /// checkpoint could no longer copy (it must grow the database file). A
    /// write is then as dear as SQLite's default of checkpointing often; a
    /// volume with room never pays it. PASSIVE: never waits for a reader.
    fn fold_when_short_of_space(&mut self) {
        let short = space::free_bytes(&self.config.db).is_some_and(|f| f < SHORT_OF_SPACE);
        if short {
            if let Err(e) = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
            {
                tracing::debug!(error = %e, "checkpoint on a volume short of space failed");
            }
        }
    }

    /// After a failure: the connection must not be left inside a transaction.
    fn ensure_no_transaction(&mut self) -> Result<(), String> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        match self.conn.execute_batch("ROLLBACK") {
            Ok(()) => Ok(()),
            Err(e) => Err(format!("cannot roll back a failed transaction: {e}")),
        }
    }

    fn wrote(&mut self) {
        self.last_write = Instant::now();
        self.wal_dirty = true;
        self.full = false;
        self.health.wrote();
    }

    /// Chores while no write waits: fold the WAL back after a burst, forget old
    /// delivery ids, and prove the disk still takes a write (at once while the
    /// last write failed, every [`PROBE_EVERY`] otherwise).
    fn idle(&mut self) -> Result<(), String> {
        // Nothing is written to a file the path no longer names, not even a
        // probe (it would succeed, and readiness would lie).
        if self.writable_file().is_err() {
            return Ok(());
        }
        let failing = self.health.failing();
        if failing || self.last_write.elapsed() >= PROBE_EVERY {
            let tried = self.heal().map_err(|why| (why, None)).and_then(|()| {
                probe(&mut self.conn).map_err(|e| (write_failure(&self.config.db, &e), Some(e)))
            });
            match tried {
                Ok(()) => self.wrote(),
                Err((why, e)) => {
                    self.telemetry.store_error("probe");
                    if !failing {
                        tracing::error!(reason = %why, "the store no longer takes a write");
                    }
                    if e.as_ref()
                        .is_some_and(|e| space::full_error(e, &self.config.db))
                    {
                        self.full = true;
                    }
                    self.health.write_failed(why);
                    self.last_write = Instant::now(); // retried at the next tick anyway
                    return self.ensure_no_transaction();
                }
            }
        }
        if self.wal_dirty && self.config.checkpoint == Checkpoint::Exporter {
            self.truncate_wal();
        }
        Ok(())
    }

    /// Folds the WAL back and truncates it to zero bytes, without waiting: a
    /// reader holding a snapshot (`backup`, `export`, Litestream's read
    /// transaction) would otherwise hold the writer, and every write behind
    /// it, for the whole busy timeout. Busy: tried again at the next tick.
    fn truncate_wal(&mut self) {
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        let _ = self.conn.busy_timeout(schema::BUSY_TIMEOUT);
        match done {
            Ok(0) => self.wal_dirty = false,
            Ok(_) => {} // busy: try again at the next tick
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }

    /// Folds the WAL back and closes the database (at shutdown).
    fn close(self) {
        if self.config.checkpoint == Checkpoint::External {
            // The replicator checkpoints; a TRUNCATE here would wait for its
            // read transaction for the whole busy timeout, then give up.
        } else if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, "closing the database failed");
        }
        tracing::info!("store closed");
    }

    /// Self-metrics of a committed batch.
    fn count(&self, batch: &Batch, o: &Outcome) {
        // Refused links count whatever wrote them, `serve`'s sync passes too.
        self.telemetry.links_refused(batch.ingress, o.links_refused);
        if batch.reconcile {
            return;
        }
        self.telemetry.ignored(batch.ingress, "stale", o.stale);
        if o.duplicate_delivery {
            self.telemetry
                .ignored(batch.ingress, "duplicate_delivery", 1);
        }
        if stored_something(o) {
            self.telemetry
                .set_last_event(batch.ingress.as_str(), batch.received_at);
        }
    }
}

/// Answers every write of a group refused unapplied, for `why`.
fn refuse(group: Vec<(Batch, Reply)>, why: &str) {
    for (_, reply) in group {
        let _ = reply.send(Err(StoreError::Refused(why.to_owned())));
    }
}

/// Writes, commits and removes a row large enough to need fresh pages: the
/// proof that the disk takes a write (at start and while idle).
pub(super) fn probe(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT OR REPLACE INTO probe VALUES (1, zeroblob(?1))",
        params![PROBE_BYTES],
    )?;
    tx.commit()?;
    conn.execute("DELETE FROM probe", [])?;
    Ok(())
}

/// What readiness says when a write to `db` failed with `e`.
pub(super) fn write_failure(db: &std::path::Path, e: &rusqlite::Error) -> String {
    if space::full_error(e, db) {
        space::message(db)
    } else {
        format!("the store does not take a write: {e}")
    }
}

/// Takes a command from the queue: a write whose caller is gone is dropped,
/// one past its deadline answered [`StoreError::Timeout`] unapplied.
fn take(telemetry: &Telemetry, cmd: Command) -> Taken {
    match cmd {
        Command::Inject(f) => Taken::Inject(f),
        Command::Write(_, reply, _hold) if reply.is_closed() => Taken::Done, // caller gone
        Command::Write(batch, reply, hold)
            if batch.deadline.is_some_and(|d| d <= Instant::now()) =>
        {
            drop(hold);
            telemetry.store_error("queue_timeout");
            let _ = reply.send(Err(StoreError::Timeout));
            Taken::Done
        }
        Command::Write(batch, reply, hold) => Taken::Write(batch, reply, hold),
    }
}

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod tests;
