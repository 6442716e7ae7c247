//! The writer thread: owns the connection, applies batches in group commits,
//! and updates the in-memory aggregates after each commit. [`Supervisor`]
//! restarts it, with the aggregates rebuilt from disk, when it panics or its
//! connection breaks.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::defect::{self, InsertFirst};
use super::engine::{self, ColdCache, Engine, Op, Residency, stored_something};
use super::fault::{Armed, Fault};
use super::health::{Health, write_lock};
use super::identity::FileIdentity;
use super::{Batch, Command, Hold, Outcome, StoreError, load, schema, space};
use crate::aggregate::Aggregates;
use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::time::{Millis, now_ms};
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
/// How long the supervisor keeps trying to reopen the database before the
/// process exits for its own supervisor (systemd, Kubernetes) to restart it.
const REOPEN_FOR: Duration = Duration::from_secs(60);
/// How long a delivery id is remembered for deduplication.
pub const DELIVERY_TTL_MS: Millis = 7 * 24 * 3600 * 1000;

type Reply = oneshot::Sender<Result<Outcome, StoreError>>;

/// Runs the writer and restarts it when it fails.
pub(super) struct Supervisor {
    /// The database file opened at start; the writer refuses to write once
    /// the path names another file, and is only ever reopened on this one.
    pub file: FileIdentity,
    pub config: Arc<Config>,
    pub aggregates: Arc<RwLock<Aggregates>>,
    pub telemetry: Arc<Telemetry>,
    pub health: Arc<Health>,
    pub pending: Arc<super::Pending>,
}

/// Why [`Writer::serve`] returned.
enum Exit {
    /// Every sender is gone: shut down.
    Shutdown,
    /// The connection is in a state the writer cannot trust: reopen.
    Broken(String),
}

impl Supervisor {
    /// Serves commands until every sender is dropped, restarting the writer on
    /// a fresh connection (and fresh aggregates) whenever it fails.
    pub(super) fn run(self, conn: Connection, rx: Receiver<Command>) {
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
fn replace_aggregates(lock: &RwLock<Aggregates>, fresh: Aggregates) {
    *write_lock(lock) = fresh;
    lock.clear_poison();
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Whether an error of one batch leaves the transaction usable (the batch's
/// savepoint is rolled back and the others go on); any other error fails the
/// whole group.
fn batch_local(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => true,
        other => matches!(
            other.sqlite_error_code(),
            Some(ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig)
        ),
    }
}

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

    /// Applies every batch inside one transaction. A batch whose own data is
    /// at fault is rolled back alone: the group is then applied again with
    /// each batch in its own savepoint (savepoints are not taken otherwise:
    /// each one copies every page its batch first changes into the statement
    /// journal). Any failure that may have ended the transaction (disk full,
    /// I/O error, …) fails the whole group, so no batch is committed outside
    /// the group it was in. Writes that arrive while it applies join the group
    /// (see [`MAX_LINGER`]).
    fn apply_group(
        &mut self,
        group: &mut Vec<(Batch, Reply)>,
        holds: &mut Vec<Hold>,
        rx: &Receiver<Command>,
        ops: &mut Vec<Op>,
    ) -> rusqlite::Result<Vec<Result<Outcome, StoreError>>> {
        // As many writes as were in the store at once since the last group
        // began: those answered by the last commit are coming back.
        let late = Late {
            rx,
            started: Instant::now(),
            linger: self.last_commit.clamp(MIN_LINGER, MAX_LINGER),
            target: self
                .pending
                .take_peak()
                .clamp(self.last_group.min(1), MAX_GROUP),
        };
        let mut items: usize = group.iter().map(|(b, _)| b.items.len()).sum();
        let mut careful = false;
        // Dropping `tx` at `continue` rolls the attempt back.
        loop {
            ops.clear();
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.armed.in_transaction();
            let memory = Residency::new(&self.aggregates, &self.scratch, &mut self.cold);
            let mut engine =
                Engine::new(&self.config, &self.stages, self.insert_first, Some(memory));
            let mut outcomes = Vec::with_capacity(group.len());
            // Each source's latest activity among the group's batches that
            // stored something: one write per source and group, not per batch.
            let mut active: Vec<(Ingress, Millis)> = Vec::new();
            let mut next = 0;
            let applied = 'group: loop {
                while let Some((batch, _)) = group.get(next) {
                    next += 1;
                    match apply_one(&tx, &mut engine, batch, careful, ops)? {
                        Applied::Done(o) => {
                            if stored_something(&o) && !batch.reconcile {
                                note_activity(&mut active, batch);
                            }
                            outcomes.push(Ok(o));
                        }
                        Applied::Again => break 'group false,
                        Applied::Alone(e) => {
                            self.telemetry.store_error("write");
                            tracing::error!(error = %e, "batch failed; rolled back alone");
                            outcomes.push(Err(StoreError::Unavailable(e.to_string())));
                        }
                    }
                }
                match late.next(&self.telemetry, group.len(), items, &mut self.deferred) {
                    Some((batch, reply, hold)) => {
                        items += batch.items.len();
                        holds.push(hold);
                        group.push((batch, reply));
                    }
                    None => break true,
                }
            };
            if !applied {
                careful = true;
                continue;
            }
            for (source, at) in active {
                engine::record_source_activity(&tx, source, at)?;
            }
            prune_deliveries(&tx, &mut self.last_prune)?;
            let mut first = engine.first;
            drop(engine);
            let committing = Instant::now();
            tx.commit()?;
            self.last_commit = committing.elapsed();
            first.adapt();
            self.insert_first = first;
            return Ok(outcomes);
        }
    }

    /// Applies committed changes to the aggregates. A panic half-way leaves
    /// them unknown: they are rebuilt from disk, which holds the commit.
    fn apply_ops(&mut self, ops: &[Op]) -> Result<(), String> {
        if ops.is_empty() {
            return Ok(());
        }
        let applied = catch_unwind(AssertUnwindSafe(|| {
            let mut agg = write_lock(&self.aggregates);
            self.armed.in_aggregates();
            let mut products = BTreeSet::new();
            let mut loaded = Vec::new();
            for op in ops {
                match op {
                    Op::Load(p, r, stored) => {
                        agg.load(p, r, stored.clone());
                        loaded.push((p, r));
                    }
                    Op::Add(c) => agg.add(c),
                    Op::Remove(c) => agg.remove(c),
                    Op::Meta(p, r, m) => agg.set_release_meta(p, r, m),
                }
                products.insert(op.product());
            }
            // The committed state of the releases the group loaded, kept for
            // those the rebalance sends back to cold.
            let states: Vec<_> = loaded
                .into_iter()
                .filter_map(|(p, r)| {
                    let state = agg.products.get(p)?.releases.get(r)?.clone();
                    Some(((p.clone(), r.clone()), state))
                })
                .collect();
            let mut short = Vec::new();
            for p in products {
                if agg.rebalance(p) {
                    short.push((p.to_owned(), agg.resident(p)));
                }
            }
            for (key, state) in states {
                let cold = agg
                    .products
                    .get(&key.0)
                    .is_some_and(|p| !p.releases.contains_key(&key.1));
                if cold {
                    self.cold.insert(key, state);
                }
            }
            short
        }));
        let short = match applied {
            Ok(short) => short,
            Err(panic) => {
                self.cold.0.clear();
                self.telemetry.store_error("aggregates");
                tracing::error!(
                    reason = %panic_message(&*panic),
                    "updating the aggregates failed after a commit; rebuilding them from disk"
                );
                return self.rebuild();
            }
        };
        // Products left with fewer resident releases than `/metrics` reads get
        // their best cold ones back (read outside the lock: the writer is the
        // only one that changes either).
        for (product, resident) in short {
            match load::promote(&self.conn, &self.config, &self.scratch, &product, &resident) {
                Ok((loaded, cold)) => {
                    for (release, _) in &loaded {
                        self.cold.0.remove(&(product.clone(), release.clone()));
                    }
                    write_lock(&self.aggregates).promote(&product, loaded, cold);
                }
                Err(e) => {
                    self.telemetry.store_error("aggregates");
                    tracing::error!(error = %e, product, "cannot load releases back; rebuilding the aggregates from disk");
                    return self.rebuild();
                }
            }
        }
        Ok(())
    }

    /// Rebuilds the aggregates from disk, which holds every commit.
    fn rebuild(&mut self) -> Result<(), String> {
        self.cold.0.clear();
        let fresh = load::aggregates(&self.conn, &self.config)
            .map_err(|e| format!("cannot rebuild the aggregates: {e}"))?;
        replace_aggregates(&self.aggregates, fresh);
        Ok(())
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
        if self.wal_dirty {
            // TRUNCATE: the writer is the only connection, so the checkpoint
            // completes and the WAL file goes back to zero bytes.
            match self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    r.get::<_, i64>(0)
                }) {
                Ok(0) => self.wal_dirty = false,
                Ok(_) => {} // busy: try again at the next tick
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
            }
        }
        Ok(())
    }

    /// Folds the WAL back and closes the database (at shutdown).
    fn close(self) {
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, "closing the database failed");
        }
        tracing::info!("store closed");
    }

    /// Self-metrics of a committed batch.
    fn count(&self, batch: &Batch, o: &Outcome) {
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

/// Runs a statement without parameters from the connection's statement cache
/// (`SAVEPOINT`, `RELEASE`: parsed once, not once per batch).
fn run_cached(tx: &Connection, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// How a batch of a group went.
enum Applied {
    Done(Outcome),
    /// Its own data is at fault: the group must be applied again, each
    /// batch in its own savepoint.
    Again,
    /// Its own data is at fault: rolled back to its savepoint alone.
    Alone(rusqlite::Error),
}

/// Applies one batch of a group through the engine; `careful`: inside its
/// own savepoint, so that a failure of its own rolls back only it. Its
/// changes to the aggregates join `ops` only once it is applied.
fn apply_one(
    tx: &Connection,
    engine: &mut Engine<'_>,
    batch: &Batch,
    careful: bool,
    ops: &mut Vec<Op>,
) -> rusqlite::Result<Applied> {
    if careful {
        run_cached(tx, "SAVEPOINT batch")?;
    }
    let mut batch_ops = Vec::new();
    match engine.apply(tx, batch, &mut batch_ops) {
        Ok(o) => {
            if careful {
                run_cached(tx, "RELEASE batch")?;
            }
            ops.append(&mut batch_ops);
            Ok(Applied::Done(o))
        }
        Err(e) => {
            engine.rolled_back();
            if !batch_local(&e) || tx.is_autocommit() {
                return Err(e);
            }
            if !careful {
                return Ok(Applied::Again);
            }
            run_cached(tx, "ROLLBACK TO batch")?;
            run_cached(tx, "RELEASE batch")?;
            Ok(Applied::Alone(e))
        }
    }
}

/// Keeps the latest time each source was active at in a group.
fn note_activity(active: &mut Vec<(Ingress, Millis)>, batch: &Batch) {
    match active.iter_mut().find(|(i, _)| *i == batch.ingress) {
        Some((_, at)) => *at = (*at).max(batch.received_at),
        None => active.push((batch.ingress, batch.received_at)),
    }
}

/// Forgets delivery ids older than [`DELIVERY_TTL_MS`], once an hour.
fn prune_deliveries(tx: &Connection, last_prune: &mut Millis) -> rusqlite::Result<()> {
    let now = now_ms();
    if now - *last_prune > 3600 * 1000 {
        tx.execute(
            "DELETE FROM deliveries WHERE received_at < ?1",
            params![now - DELIVERY_TTL_MS],
        )?;
        *last_prune = now;
    }
    Ok(())
}

/// The writes a group waits for after those it began with (see
/// [`MAX_LINGER`]).
struct Late<'r> {
    rx: &'r Receiver<Command>,
    started: Instant,
    /// How long the group waits for them at most.
    linger: Duration,
    /// How many writes the group waits to hold.
    target: usize,
}

impl Late<'_> {
    /// The next write to join a group of `group` writes and `items` items,
    /// if one is expected and comes in time. An injected fault waits in
    /// `deferred` for the next group, and ends this one.
    fn next(
        &self,
        telemetry: &Telemetry,
        group: usize,
        items: usize,
        deferred: &mut Option<Command>,
    ) -> Option<(Batch, Reply, Hold)> {
        loop {
            if group >= self.target || items >= MAX_GROUP_ITEMS || deferred.is_some() {
                return None;
            }
            let cmd = match self.rx.try_recv() {
                Ok(cmd) => cmd,
                Err(_) => {
                    let left = self.linger.checked_sub(self.started.elapsed())?;
                    self.rx.recv_timeout(left.min(LINGER_GAP)).ok()?
                }
            };
            match take(telemetry, cmd) {
                Taken::Write(batch, reply, hold) => return Some((batch, reply, hold)),
                Taken::Done => {}
                // Faults apply between groups, as when gathered.
                Taken::Inject(f) => *deferred = Some(Command::Inject(f)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::model::event::{Change, Classification, Ingress, ProductRef, Status};
    use crate::model::event::{DefectEvent, ReleaseEvent};
    use crate::model::item::Item;
    use crate::store::defect::Row;

    struct Db {
        _dir: tempfile::TempDir,
        conn: Connection,
        config: Config,
        /// Whether events are inserted before they are looked up.
        insert_first: bool,
    }

    fn db(insert_first: bool) -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = super::super::schema::open(&dir.path().join("t.db")).expect("open");
        let config = Config::from_settings(Settings::default()).expect("config");
        Db {
            _dir: dir,
            conn,
            config,
            insert_first,
        }
    }

    /// A database for each way the writer applies a defect event.
    fn both() -> [Db; 2] {
        [db(true), db(false)]
    }

    fn event(change: Change, updated_at: Millis) -> DefectEvent {
        DefectEvent {
            source: "sentry".into(),
            id: "42".into(),
            product: ProductRef {
                kind: "sentry".into(),
                namespace: "api".into(),
            },
            change,
            updated_at: Some(updated_at),
        }
    }

    fn upsert(release: Option<&str>, keep: bool) -> Change {
        let class = Classification {
            stage: Some("production".into()),
            release: release.map(str::to_owned),
            ..Classification::default()
        };
        if keep {
            Change::UpsertKeepRelease {
                class,
                status: Status::Valid,
                found_at: Some(1),
            }
        } else {
            Change::Upsert {
                class,
                status: Status::Valid,
                found_at: Some(1),
            }
        }
    }

    /// Applies one event; returns the outcome and the net contribution change.
    fn apply(db: &Db, ev: DefectEvent) -> (Outcome, i64) {
        let batch = Batch {
            ingress: Ingress::Sentry,
            items: vec![Item::Defect(ev)],
            delivery: None,
            reconcile: false,
            received_at: 1_000,
            deadline: None,
        };
        let mut ops = Vec::new();
        let stages = defect::stages_json(&db.config);
        let aggregates = RwLock::new(Aggregates::new(&db.config));
        let scratch = Aggregates::new(&db.config);
        let mut cache = ColdCache::default();
        let memory = Residency::new(&aggregates, &scratch, &mut cache);
        let first = InsertFirst::starting(db.insert_first);
        let mut engine = Engine::new(&db.config, &stages, first, Some(memory));
        let outcome = engine.apply(&db.conn, &batch, &mut ops).expect("apply");
        let net = ops
            .iter()
            .map(|o| match o {
                Op::Add(_) => 1,
                Op::Remove(_) => -1,
                Op::Meta(..) | Op::Load(..) => 0,
            })
            .sum();
        (outcome, net)
    }

    fn row(db: &Db) -> Option<Row> {
        Row::get(&db.conn, "sentry", "42").expect("get")
    }

    #[test]
    fn retract_of_an_unknown_defect_stores_nothing() {
        for db in both() {
            let (o, net) = apply(&db, event(Change::Retract, 10));
            assert_eq!((o.ignored, o.accepted, net), (1, 0, 0));
            assert!(row(&db).is_none());
        }
    }

    #[test]
    fn retract_removes_a_stored_defect_and_a_later_upsert_revives_it() {
        for db in both() {
            assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 10)).1, 1);
            let (o, net) = apply(&db, event(Change::Retract, 20));
            assert_eq!((o.accepted, net), (1, -1));
            assert!(row(&db).is_some_and(|r| r.deleted));
            // Older than the retraction: stale.
            assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 15)).0.stale, 1);
            // Equal time: the retraction, like a deletion, wins.
            assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 20)).0.stale, 1);
            assert_eq!(apply(&db, event(upsert(Some("1.0"), false), 30)).1, 1);
            assert!(row(&db).is_some_and(|r| !r.deleted));
        }
    }

    #[test]
    fn attach_release_sets_only_a_missing_release_and_keeps_the_order() {
        for db in both() {
            apply(&db, event(upsert(None, true), 10));
            let (o, net) = apply(
                &db,
                event(
                    Change::AttachRelease {
                        release: "v2.0".into(),
                    },
                    99,
                ),
            );
            assert_eq!((o.accepted, net), (1, 0)); // removed unattributed, added to 2.0
            let r = row(&db).expect("row");
            assert_eq!(
                (r.release_raw.as_deref(), r.release.as_deref(), r.updated_at),
                (Some("v2.0"), Some("2.0"), 10)
            );
            let (o, _) = apply(
                &db,
                event(
                    Change::AttachRelease {
                        release: "3.0".into(),
                    },
                    99,
                ),
            );
            assert_eq!(o.unchanged, 1);
            assert_eq!(row(&db).and_then(|r| r.release), Some("2.0".into()));
            // A later upsert without a release keeps it; one with a release replaces it.
            apply(&db, event(upsert(None, true), 20));
            assert_eq!(row(&db).and_then(|r| r.release), Some("2.0".into()));
            apply(&db, event(upsert(Some("2.1"), true), 30));
            assert_eq!(row(&db).and_then(|r| r.release), Some("2.1".into()));
            // A plain upsert replaces the whole state, release included.
            apply(&db, event(upsert(None, false), 40));
            assert_eq!(row(&db).and_then(|r| r.release), None);
        }
    }

    #[test]
    fn attach_release_before_the_defect_is_announced_leaves_a_tombstone() {
        for db in both() {
            let (o, net) = apply(
                &db,
                event(
                    Change::AttachRelease {
                        release: "1.4".into(),
                    },
                    5,
                ),
            );
            assert_eq!((o.accepted, net), (1, 0));
            let r = row(&db).expect("row");
            assert!(r.deleted);
            assert_eq!(r.updated_at, 0);
            let (_, net) = apply(&db, event(upsert(None, true), 10));
            assert_eq!(net, 1);
            let r = row(&db).expect("row");
            assert!(!r.deleted);
            assert_eq!(r.release.as_deref(), Some("1.4"));
        }
    }

    /// A writer on `db` with `config`, loaded as at start-up.
    fn start(db: &std::path::Path, config: Config) -> Writer {
        let mut conn = schema::open(db).expect("open");
        load::rekey_if_changed(&mut conn, &config).expect("rekey");
        let agg = load::aggregates(&conn, &config).expect("load");
        let telemetry = Arc::new(Telemetry::default());
        let sup = Supervisor {
            file: FileIdentity::of(db).expect("identity"),
            config: Arc::new(config),
            aggregates: Arc::new(RwLock::new(agg)),
            health: Arc::new(Health::new(telemetry.clone())),
            telemetry,
            pending: Arc::default(),
        };
        Writer::new(conn, &sup, Arc::new(Armed::default()))
    }

    fn defect(id: &str, stage: &str) -> Item {
        Item::Defect(DefectEvent {
            source: "generic".into(),
            id: id.into(),
            product: ProductRef {
                kind: String::new(),
                namespace: "shop".into(),
            },
            change: Change::Upsert {
                class: Classification {
                    stage: Some(stage.into()),
                    release: Some("1.0".into()),
                    ..Classification::default()
                },
                status: Status::Valid,
                found_at: Some(1),
            },
            updated_at: Some(2_000),
        })
    }

    /// A batch whose own data is at fault (here a stored row that no longer
    /// reads back) fails alone, whichever way the group applies defects: the
    /// others of its group are committed, its own changes are not.
    #[test]
    fn a_batch_at_fault_fails_alone_and_its_group_commits() {
        for insert_first in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("w.db");
            let config = || Config::from_settings(Settings::default()).expect("config");
            let mut w = start(&path, config());
            let batch = |items: Vec<Item>| Batch {
                ingress: Ingress::Generic,
                items,
                delivery: None,
                reconcile: false,
                received_at: 1_000,
                deadline: None,
            };
            let (_tx, rx) = std::sync::mpsc::channel();
            let (reply, _answer) = oneshot::channel();
            w.commit_group(
                vec![(batch(vec![defect("bad", "qa")]), reply)],
                Vec::new(),
                &rx,
            )
            .expect("commit");
            w.conn
                .execute(
                    "UPDATE defects SET found_at = 'not a time' WHERE id = 'bad'",
                    [],
                )
                .expect("corrupt");
            w.insert_first.on = insert_first;
            let mut answers = Vec::new();
            let group = [
                vec![defect("a", "production")],
                vec![defect("b", "production"), defect("bad", "production")],
                vec![defect("c", "production")],
            ]
            .into_iter()
            .map(|items| {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                (batch(items), reply)
            })
            .collect();
            w.commit_group(group, Vec::new(), &rx).expect("commit");
            let got: Vec<bool> = answers
                .into_iter()
                .map(|mut a| a.try_recv().expect("answered").is_ok())
                .collect();
            assert_eq!(got, [true, false, true], "insert first: {insert_first}");
            let stored = |id: &str| Row::get(&w.conn, "generic", id).expect("get").is_some();
            assert!(stored("a") && stored("c"));
            assert!(
                !stored("b"),
                "the failed batch's other event is rolled back"
            );
            let stage: String = w
                .conn
                .query_row("SELECT stage FROM defects WHERE id = 'bad'", [], |r| {
                    r.get(0)
                })
                .expect("bad row");
            assert_eq!(stage, "qa");
            w.close();
        }
    }

    mod live_equals_reload {
        //! After any history, the aggregates kept live by the writer equal a
        //! fresh load from disk, field for field: one rule for every count and
        //! for the time that orders releases, at run time and at start-up.

        use super::*;
        use crate::config::{ProductSettings, Settings};
        use crate::model::event::{Classification, Ingress, ProductRef, Status};
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Ev {
            Upsert {
                id: u8,
                github: bool,
                product: u8,
                release: Option<u8>,
                stage: u8,
                status: u8,
                found_at: i64,
                updated_at: i64,
                keep: bool,
            },
            Delete {
                id: u8,
                github: bool,
                updated_at: i64,
            },
            Retract {
                id: u8,
                github: bool,
                updated_at: i64,
            },
            Attach {
                id: u8,
                release: u8,
            },
            Release {
                github: bool,
                product: u8,
                release: u8,
                at: i64,
            },
        }

        const RELEASES: &[&str] = &["1.0", "v1.0", "1.0.0-rc.1", "2.0.0", "nightly-3", "Venus"];
        const STAGES: &[&str] = &["development", "qa", "production", "staging"];

        fn ev() -> impl Strategy<Value = Ev> {
            prop_oneof![
                6 => (0..10u8, any::<bool>(), 0..2u8, proptest::option::of(0..6u8), 0..5u8, 0..6u8, 0..50i64, 1..40i64, any::<bool>())
                    .prop_map(|(id, github, product, release, stage, status, found_at, updated_at, keep)| Ev::Upsert {
                        id, github, product, release, stage, status, found_at: found_at * 86_400_000, updated_at, keep,
                    }),
                1 => (0..10u8, any::<bool>(), 1..40i64).prop_map(|(id, github, updated_at)| Ev::Delete { id, github, updated_at }),
                1 => (0..10u8, any::<bool>(), 1..40i64).prop_map(|(id, github, updated_at)| Ev::Retract { id, github, updated_at }),
                1 => (0..10u8, 0..6u8).prop_map(|(id, release)| Ev::Attach { id, release }),
                2 => (any::<bool>(), 0..2u8, 0..6u8, 0..60i64).prop_map(|(github, product, release, at)| Ev::Release {
                    github, product, release, at: at * 86_400_000,
                }),
            ]
        }

        fn product(github: bool, p: u8) -> ProductRef {
            if github {
                ProductRef {
                    kind: "github".into(),
                    namespace: format!("acme/r{p}"),
                }
            } else {
                ProductRef {
                    kind: String::new(),
                    namespace: format!("p{p}"),
                }
            }
        }

        fn item(e: &Ev) -> Item {
            let defect = |id: u8, github: bool, p: u8, change, updated_at| {
                Item::Defect(DefectEvent {
                    source: if github {
                        "github".into()
                    } else {
                        "generic".into()
                    },
                    id: id.to_string(),
                    product: product(github, p),
                    change,
                    updated_at,
                })
            };
            match e.clone() {
                Ev::Upsert {
                    id,
                    github,
                    product: p,
                    release,
                    stage,
                    status,
                    found_at,
                    updated_at,
                    keep,
                } => {
                    let class = Classification {
                        stage: STAGES.get(stage as usize).map(|s| (*s).to_owned()),
                        release: release.map(|r| RELEASES[r as usize].to_owned()),
                        cause: Some("coverage".into()),
                        ..Classification::default()
                    };
                    let status = match status {
                        0 => Status::Invalid,
                        1 => Status::Duplicate,
                        _ => Status::Valid,
                    };
                    let change = if keep {
                        Change::UpsertKeepRelease {
                            class,
                            status,
                            found_at: Some(found_at),
                        }
                    } else {
                        Change::Upsert {
                            class,
                            status,
                            found_at: Some(found_at),
                        }
                    };
                    defect(id, github, p, change, Some(updated_at))
                }
                Ev::Delete {
                    id,
                    github,
                    updated_at,
                } => defect(id, github, 0, Change::Delete, Some(updated_at)),
                Ev::Retract {
                    id,
                    github,
                    updated_at,
                } => defect(id, github, 0, Change::Retract, Some(updated_at)),
                Ev::Attach { id, release } => defect(
                    id,
                    true,
                    0,
                    Change::AttachRelease {
                        release: RELEASES[release as usize].to_owned(),
                    },
                    None,
                ),
                Ev::Release {
                    github,
                    product: p,
                    release,
                    at,
                } => Item::Release(ReleaseEvent {
                    product: product(github, p),
                    release: RELEASES[release as usize].to_owned(),
                    released_at: at,
                }),
            }
        }

        /// Three configurations: the defaults but one release kept per
        /// product (so releases go cold and come back); folding off, a product
        /// mapping, a 7-day age and two releases kept; and a pipeline without
        /// `qa`.
        fn config(variant: u8, db: &std::path::Path) -> Config {
            let mut s = Settings {
                db: db.to_path_buf(),
                max_releases: [1, 2, 20][variant as usize % 3],
                recent_releases: 1,
                ..Settings::default()
            };
            match variant {
                1 => {
                    s.releases.fold_prereleases = false;
                    s.maturity_ages = vec!["7d".into(), "30d".into()];
                    s.products.insert(
                        "payments".into(),
                        ProductSettings {
                            sources: vec!["github:acme/r0".into(), "github:acme/r1".into()],
                            ..ProductSettings::default()
                        },
                    );
                }
                2 => {
                    s.stages.retain(|st| st.name != "qa");
                }
                _ => {}
            }
            Config::from_settings(s).expect("config")
        }

        fn assert_live_equals_reload(w: &Writer) -> Result<(), TestCaseError> {
            // What is resident may differ (a load keeps fewer); what
            // `/metrics` reads may not.
            let live = w.aggregates.read().unwrap().view();
            let reload = load::aggregates(&w.conn, &w.config).expect("reload").view();
            prop_assert_eq!(live, reload);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            #[test]
            fn live_aggregates_equal_a_fresh_load(
                phases in proptest::collection::vec(
                    (0..3u8, proptest::collection::vec(proptest::collection::vec(ev(), 1..6), 1..10)),
                    1..4,
                )
            ) {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("p.db");
                let mut n = 0;
                for (variant, batches) in phases {
                    // A restart with this phase's configuration (re-keying).
                    let mut w = start(&db, config(variant, &db));
                    assert_live_equals_reload(&w)?;
                    for events in batches {
                        let (reply, _answer) = oneshot::channel();
                        let batch = Batch {
                            ingress: Ingress::Generic,
                            items: events.iter().map(item).collect(),
                            delivery: None,
                            reconcile: false,
                            received_at: 1_000,
                            deadline: None,
                        };
                        let (_tx, rx) = std::sync::mpsc::channel();
                        // Both ways of applying a defect event, whatever
                        // the last group's would choose.
                        n += 1;
                        w.insert_first.on = n % 2 == 0;
                        w.commit_group(vec![(batch, reply)], Vec::new(), &rx)
                            .expect("commit");
                        assert_live_equals_reload(&w)?;
                    }
                    w.close();
                }
            }
        }
    }
}
