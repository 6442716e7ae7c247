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
            Effect::Ignored => outcome.ignored += 1,
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
    /// A retraction of a defect that was never stored.
    Ignored,
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
    if let Change::AttachRelease { release } = &ev.change {
        return attach_release(tx, config, ev, release, old, received_at, ops, touched);
    }
    let deleting = matches!(ev.change, Change::Delete | Change::Retract);
    if let Some(old) = &old {
        // Older never wins; on equal times a deletion wins, otherwise the later
        // arrival does.
        if updated_at < old.updated_at || (updated_at == old.updated_at && old.deleted && !deleting)
        {
            return Ok(Effect::Stale);
        }
    }
    let new = match (&ev.change, &old) {
        (Change::Delete | Change::Retract, Some(old)) => Row {
            deleted: true,
            updated_at,
            ..old.clone()
        },
        // A retraction of what was never stored changes nothing.
        (Change::Retract, None) => return Ok(Effect::Ignored),
        (Change::Delete, None) => Row {
            updated_at,
            ..tombstone(config, ev, received_at)
        },
        (
            Change::Upsert {
                class,
                status,
                found_at,
            }
            | Change::UpsertKeepRelease {
                class,
                status,
                found_at,
            },
            old,
        ) => {
            let keep = matches!(ev.change, Change::UpsertKeepRelease { .. });
            let release_raw = match (&class.release, old) {
                (None, Some(old)) if keep => old.release_raw.clone(),
                (r, _) => r.clone(),
            };
            Row {
                source: ev.source.clone(),
                id: ev.id.clone(),
                product_kind: ev.product.kind.clone(),
                product_ns: ev.product.namespace.clone(),
                product: config.product_for(&ev.product.kind, &ev.product.namespace),
                release: release_raw
                    .as_deref()
                    .and_then(|raw| defect::release_key(config, &ev.product.kind, raw))
                    .map(|(k, _)| k),
                release_raw,
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
            }
        }
        // Handled above, before the ordering rules.
        (Change::AttachRelease { .. }, _) => return Ok(Effect::Unchanged),
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
    put(tx, config, old.as_ref(), &new, ops, touched)
}

/// A deleted row holding only the defect's identity and product.
fn tombstone(config: &Config, ev: &DefectEvent, received_at: Millis) -> Row {
    Row {
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
        updated_at: received_at,
    }
}

/// [`Change::AttachRelease`]: the first release wins, ordering is untouched.
#[allow(clippy::too_many_arguments)]
fn attach_release(
    tx: &Connection,
    config: &Config,
    ev: &DefectEvent,
    raw: &str,
    old: Option<Row>,
    received_at: Millis,
    ops: &mut Vec<Op>,
    touched: &mut BTreeSet<(String, String)>,
) -> rusqlite::Result<Effect> {
    let base = match &old {
        Some(o) if o.release_raw.is_some() => return Ok(Effect::Unchanged),
        Some(o) => o.clone(),
        // Not announced yet: a tombstone that orders before any real event
        // (updated_at 0), so the announcing event replaces it and keeps the
        // release.
        None => Row {
            updated_at: 0,
            ..tombstone(config, ev, received_at)
        },
    };
    let new = Row {
        release: defect::release_key(config, &base.product_kind, raw).map(|(k, _)| k),
        release_raw: Some(raw.to_owned()),
        ..base
    };
    put(tx, config, old.as_ref(), &new, ops, touched)
}

/// Stores `new` and queues the change of its contribution.
fn put(
    tx: &Connection,
    config: &Config,
    old: Option<&Row>,
    new: &Row,
    ops: &mut Vec<Op>,
    touched: &mut BTreeSet<(String, String)>,
) -> rusqlite::Result<Effect> {
    new.put(tx)?;
    let before = old.and_then(|o| o.contribution(config));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::model::event::{Classification, Ingress, ProductRef, Status};

    struct Db {
        _dir: tempfile::TempDir,
        conn: Connection,
        config: Config,
    }

    fn db() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = super::super::schema::open(&dir.path().join("t.db")).expect("open");
        let config = Config::from_settings(Settings::default()).expect("config");
        Db {
            _dir: dir,
            conn,
            config,
        }
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
            received_at: 1_000,
        };
        let mut ops = Vec::new();
        let outcome = apply_batch(&db.conn, &db.config, &batch, &mut ops).expect("apply");
        let net = ops
            .iter()
            .map(|o| match o {
                Op::Add(_) => 1,
                Op::Remove(_) => -1,
                Op::Meta(..) => 0,
            })
            .sum();
        (outcome, net)
    }

    fn row(db: &Db) -> Option<Row> {
        Row::get(&db.conn, "sentry", "42").expect("get")
    }

    #[test]
    fn retract_of_an_unknown_defect_stores_nothing() {
        let db = db();
        let (o, net) = apply(&db, event(Change::Retract, 10));
        assert_eq!((o.ignored, o.accepted, net), (1, 0, 0));
        assert!(row(&db).is_none());
    }

    #[test]
    fn retract_removes_a_stored_defect_and_a_later_upsert_revives_it() {
        let db = db();
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

    #[test]
    fn attach_release_sets_only_a_missing_release_and_keeps_the_order() {
        let db = db();
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

    #[test]
    fn attach_release_before_the_defect_is_announced_leaves_a_tombstone() {
        let db = db();
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
