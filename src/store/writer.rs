//! The writer thread: owns the connection, applies batches in group commits,
//! and updates the in-memory aggregates after each commit.

use std::collections::BTreeSet;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};

use rusqlite::{Connection, TransactionBehavior, params};

use super::defect::{self, Row};
use super::{Batch, Command, Item, Outcome, StoreError};
use crate::config::Config;
use crate::metrics::aggregate::{Aggregates, Contribution, ReleaseMeta};
use crate::metrics::telemetry::Telemetry;
use crate::model::event::{Change, DefectEvent, ReleaseEvent};
use crate::model::time::{Millis, now_ms};

/// Most commands folded into one transaction.
const MAX_GROUP: usize = 512;
/// How long a delivery id is remembered for deduplication.
pub const DELIVERY_TTL_MS: Millis = 7 * 24 * 3600 * 1000;

/// A change to the aggregates, applied only once its transaction committed.
enum Op {
    Add(Contribution),
    Remove(Contribution),
    Meta(String, String, ReleaseMeta),
}

pub(super) struct Writer {
    conn: Connection,
    config: Arc<Config>,
    aggregates: Arc<RwLock<Aggregates>>,
    telemetry: Arc<Telemetry>,
    last_prune: Millis,
}

impl Writer {
    pub(super) fn new(
        conn: Connection,
        config: Arc<Config>,
        aggregates: Arc<RwLock<Aggregates>>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Self {
            conn,
            config,
            aggregates,
            telemetry,
            last_prune: 0,
        }
    }

    /// Serves commands until every sender is dropped, then closes the database.
    pub(super) fn run(mut self, rx: Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            self.commit_group(group);
        }
        // Fold the WAL back so the file is complete on its own.
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "WAL checkpoint at shutdown failed");
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, "closing the database failed");
        }
        tracing::info!("store closed");
    }

    /// Commits a group of commands in one transaction, then updates the
    /// aggregates and answers each caller; on failure every caller gets a 503.
    fn commit_group(&mut self, group: Vec<Command>) {
        let mut ops = Vec::new();
        match self.apply_group(&group, &mut ops) {
            Ok(outcomes) => {
                {
                    let mut agg = self.aggregates.write().expect("aggregates lock");
                    for op in &ops {
                        match op {
                            Op::Add(c) => agg.add(c),
                            Op::Remove(c) => agg.remove(c),
                            Op::Meta(p, r, m) => agg.set_release_meta(p, r, m),
                        }
                    }
                }
                for (cmd, outcome) in group.into_iter().zip(outcomes) {
                    match cmd {
                        Command::Write(batch, reply) => {
                            if let Ok(o) = &outcome {
                                self.count(&batch, o);
                            }
                            let _ = reply.send(outcome);
                        }
                        Command::Ping(reply) => {
                            let _ = reply.send(outcome.map(|_| ()));
                        }
                    }
                }
            }
            Err(e) => {
                self.telemetry.store_error("commit");
                tracing::error!(error = %e, "transaction failed; nothing committed");
                let err = || StoreError::Unavailable(e.to_string());
                for cmd in group {
                    match cmd {
                        Command::Write(_, reply) => {
                            let _ = reply.send(Err(err()));
                        }
                        Command::Ping(reply) => {
                            let _ = reply.send(Err(err()));
                        }
                    }
                }
            }
        }
    }

    /// Applies every command inside one transaction; each batch in its own
    /// savepoint, so a failing batch is rolled back alone.
    fn apply_group(
        &mut self,
        group: &[Command],
        ops: &mut Vec<Op>,
    ) -> rusqlite::Result<Vec<Result<Outcome, StoreError>>> {
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(group.len());
        for cmd in group {
            let outcome = match cmd {
                Command::Ping(_) => tx
                    .execute(
                        "INSERT OR REPLACE INTO meta VALUES ('ping', ?1)",
                        params![now_ms().to_string()],
                    )
                    .map(|_| Outcome::default())
                    .map_err(|e| StoreError::Unavailable(e.to_string())),
                Command::Write(batch, _) => {
                    let mut batch_ops = Vec::new();
                    let sp = tx.savepoint()?;
                    match apply_batch(&sp, &self.config, batch, &mut batch_ops) {
                        Ok(o) => {
                            if stored_something(&o) {
                                record_source_activity(&sp, batch)?;
                            }
                            sp.commit()?;
                            ops.append(&mut batch_ops);
                            Ok(o)
                        }
                        Err(e) => {
                            drop(sp); // rolls back this batch only
                            self.telemetry.store_error("write");
                            tracing::error!(error = %e, "batch failed; rolled back");
                            Err(StoreError::Unavailable(e.to_string()))
                        }
                    }
                }
            };
            outcomes.push(outcome);
        }
        let now = now_ms();
        if now - self.last_prune > 3600 * 1000 {
            tx.execute(
                "DELETE FROM deliveries WHERE received_at < ?1",
                params![now - DELIVERY_TTL_MS],
            )?;
            self.last_prune = now;
        }
        tx.commit()?;
        Ok(outcomes)
    }

    /// Self-metrics of a committed batch.
    fn count(&self, batch: &Batch, o: &Outcome) {
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

/// Whether a batch stored or confirmed anything (and so counts as activity).
fn stored_something(o: &Outcome) -> bool {
    o.accepted + o.unchanged > 0
}

/// Records the batch's source as active at the time it was received.
fn record_source_activity(tx: &Connection, batch: &Batch) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO sources VALUES (?1, ?2) ON CONFLICT (source) \
         DO UPDATE SET last_event_at = max(last_event_at, excluded.last_event_at)",
        params![batch.ingress.as_str(), batch.received_at],
    )?;
    Ok(())
}

/// Applies one batch inside its savepoint.
fn apply_batch(
    tx: &Connection,
    config: &Config,
    batch: &Batch,
    ops: &mut Vec<Op>,
) -> rusqlite::Result<Outcome> {
    let mut outcome = Outcome::default();
    if let Some(id) = &batch.delivery {
        let fresh = tx.execute(
            "INSERT OR IGNORE INTO deliveries VALUES (?1, ?2, ?3)",
            params![batch.ingress.as_str(), id, batch.received_at],
        )?;
        if fresh == 0 {
            outcome.duplicate_delivery = true;
            return Ok(outcome);
        }
    }
    let mut touched = BTreeSet::new();
    for item in &batch.items {
        let effect = match item {
            Item::Defect(ev) => apply_defect(tx, config, ev, batch.received_at, ops, &mut touched)?,
            Item::Release(ev) => apply_release(tx, config, ev, ops)?,
        };
        match effect {
            Effect::Accepted => outcome.accepted += 1,
            Effect::Unchanged => outcome.unchanged += 1,
            Effect::Stale => outcome.stale += 1,
        }
    }
    for (product, release) in touched {
        let first_found = defect::first_found(tx, &product, &release)?;
        ops.push(Op::Meta(
            product,
            release,
            ReleaseMeta {
                first_found,
                time: None,
            },
        ));
    }
    Ok(outcome)
}

enum Effect {
    Accepted,
    Unchanged,
    Stale,
}

/// Applies one defect event with the ordering rules of SPEC §4.
fn apply_defect(
    tx: &Connection,
    config: &Config,
    ev: &DefectEvent,
    received_at: Millis,
    ops: &mut Vec<Op>,
    touched: &mut BTreeSet<(String, String)>,
) -> rusqlite::Result<Effect> {
    let updated_at = ev.updated_at.unwrap_or(received_at);
    let old = Row::get(tx, &ev.source, &ev.id)?;
    let deleting = matches!(ev.change, Change::Delete);
    if let Some(old) = &old {
        // Older never wins; on equal times a deletion wins, otherwise the later
        // arrival does.
        if updated_at < old.updated_at || (updated_at == old.updated_at && old.deleted && !deleting)
        {
            return Ok(Effect::Stale);
        }
    }
    let new = match (&ev.change, &old) {
        (Change::Delete, Some(old)) => Row {
            deleted: true,
            updated_at,
            ..old.clone()
        },
        (Change::Delete, None) => Row {
            source: ev.source.clone(),
            id: ev.id.clone(),
            product_kind: ev.product.kind.clone(),
            product_ns: ev.product.namespace.clone(),
            product: config.product_for(&ev.product.kind, &ev.product.namespace),
            release_raw: None,
            release: None,
            stage: None,
            detected_by: None,
            cause: None,
            severity: None,
            team: None,
            status: "valid".into(),
            deleted: true,
            found_at: received_at,
            updated_at,
        },
        (
            Change::Upsert {
                class,
                status,
                found_at,
            },
            old,
        ) => Row {
            source: ev.source.clone(),
            id: ev.id.clone(),
            product_kind: ev.product.kind.clone(),
            product_ns: ev.product.namespace.clone(),
            product: config.product_for(&ev.product.kind, &ev.product.namespace),
            release: class
                .release
                .as_deref()
                .and_then(|raw| defect::release_key(config, &ev.product.kind, raw))
                .map(|(k, _)| k),
            release_raw: class.release.clone(),
            stage: class.stage.clone(),
            detected_by: class.detected_by.clone(),
            cause: class.cause.clone(),
            severity: class.severity.clone(),
            team: class.team.clone(),
            status: status.as_str().into(),
            deleted: false,
            found_at: found_at
                .or(old.as_ref().map(|o| o.found_at))
                .unwrap_or(received_at),
            updated_at,
        },
    };
    if let Some(old) = &old {
        if old.same_state(&new) {
            tx.execute(
                "UPDATE defects SET updated_at = ?3 WHERE source = ?1 AND id = ?2",
                params![ev.source, ev.id, updated_at],
            )?;
            return Ok(Effect::Unchanged);
        }
    }
    new.put(tx)?;
    let before = old.as_ref().and_then(|o| o.contribution(config));
    let after = new.contribution(config);
    if before != after {
        for c in before.iter().chain(after.iter()) {
            if let Some(r) = &c.release {
                touched.insert((c.product.clone(), r.clone()));
            }
        }
        ops.extend(before.map(Op::Remove));
        ops.extend(after.map(Op::Add));
    }
    Ok(Effect::Accepted)
}

/// Records a release time and recomputes what depends on it.
fn apply_release(
    tx: &Connection,
    config: &Config,
    ev: &ReleaseEvent,
    ops: &mut Vec<Op>,
) -> rusqlite::Result<Effect> {
    let Some((release, prerelease)) = defect::release_key(config, &ev.product.kind, &ev.release)
    else {
        return Ok(Effect::Stale);
    };
    let product = config.product_for(&ev.product.kind, &ev.product.namespace);
    let changed = tx.execute(
        "INSERT INTO release_times VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (product_kind, product_ns, release_raw) DO UPDATE SET released_at = excluded.released_at \
         WHERE released_at != excluded.released_at",
        params![ev.product.kind, ev.product.namespace, ev.release, product, release, prerelease, ev.released_at],
    )?;
    if changed == 0 {
        return Ok(Effect::Unchanged);
    }
    ops.push(Op::Meta(
        product.clone(),
        release.clone(),
        release_meta(tx, config, &product, &release)?,
    ));
    Ok(Effect::Accepted)
}

/// Everything recomputed for a release whose time may have changed.
pub(super) fn release_meta(
    tx: &Connection,
    config: &Config,
    product: &str,
    release: &str,
) -> rusqlite::Result<ReleaseMeta> {
    let time = defect::release_time(tx, product, release)?;
    let contributions = defect::release_contributions(tx, config, product, release)?;
    let at_age = Aggregates::new(config).at_age_counts(time, contributions.iter());
    Ok(ReleaseMeta {
        first_found: defect::first_found(tx, product, release)?,
        time: Some((time, at_age)),
    })
}
