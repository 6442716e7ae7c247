//! One group commit: the writer's queued batches applied through the engine
//! in one transaction, each in its own savepoint only once one of them
//! failed for its own data, with the writes that arrive meanwhile joining it.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior, params};

use super::{
    Command, DELIVERY_TTL_MS, Hold, LINGER_GAP, MAX_GROUP, MAX_GROUP_ITEMS, MAX_LINGER, MIN_LINGER,
    Reply, Taken, Writer, take,
};
use crate::model::event::Ingress;
use crate::model::time::{Millis, now_ms};
use crate::store::engine::{self, Engine, Op, Residency, stored_something};
use crate::store::{Batch, Outcome, StoreError};
use crate::telemetry::Telemetry;

impl Writer {
    /// Applies every batch inside one transaction. A batch whose own data is
    /// at fault is rolled back alone: the group is then applied again with
    /// each batch in its own savepoint (savepoints are not taken otherwise:
    /// each one copies every page its batch first changes into the statement
    /// journal). Any failure that may have ended the transaction (disk full,
    /// I/O error, …) fails the whole group, so no batch is committed outside
    /// the group it was in. Writes that arrive while it applies join the group
    /// (see [`MAX_LINGER`]).
    pub(super) fn apply_group(
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
