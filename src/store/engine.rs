//! The one write engine. Every path that stores events — `serve`'s writer
//! (the HTTP API and the webhooks, a group of batches per transaction),
//! `sync` (a page per transaction) and `import` (chunks in one transaction)
//! — applies each batch through [`Engine::apply`], inside the caller's
//! transaction, with the rules of [`rules::decide`] and the connection's
//! cached prepared statements. What differs between the paths is only what
//! they keep beside the database: the writer keeps the in-memory aggregates
//! up to date ([`Residency`], the queued [`Op`]s); `sync` and `import` run in
//! their own process and keep none (a server loads the aggregates from disk
//! when it starts).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::RwLock;

use rusqlite::{CachedStatement, Connection, params};

use super::defect::{self, InsertFirst, Row};
use super::links;
use super::rules::{self, Decision, Effect, ReleaseKeys, ReleaseTimeRow};
use super::{Batch, Outcome, load};
use crate::aggregate::{Aggregates, Contribution, ReleaseAgg, ReleaseMeta};
use crate::config::Config;
use crate::model::event::{DefectEvent, Ingress, MAX_GROUP_RECORDS, ReleaseEvent};
use crate::model::item::Item;
use crate::model::time::Millis;

mod linked;

/// Most cold releases whose committed state the writer keeps (see
/// [`ColdCache`]); past it the cache starts over. A few hundred bytes each.
const COLD_CACHE_MAX: usize = 32_768;

/// A change to the aggregates, applied only once its transaction committed.
pub(super) enum Op {
    /// A cold release made resident with its state before the group.
    Load(String, String, Option<ReleaseAgg>),
    Add(Contribution),
    Remove(Contribution),
    Meta(String, String, ReleaseMeta),
    /// Records of a product folded into link groups, more or fewer.
    Linked(String, i64),
}

impl Op {
    pub(super) fn product(&self) -> &str {
        match self {
            Op::Load(p, ..) | Op::Meta(p, ..) | Op::Linked(p, _) => p,
            Op::Add(c) | Op::Remove(c) => &c.product,
        }
    }
}

/// The committed state of releases that went cold after a group changed
/// them, so the next change to one does not read every defect of it back
/// from disk (with many releases per product most events touch a cold one,
/// and reading it back made a group's cost grow with the table).
///
/// Invariant: an entry is a cold release with exactly the state a load from
/// disk gives. Entries are added after a commit, only for releases the group
/// loaded that are cold once the product is rebalanced; taken out when a
/// change makes the release resident again, or when it is promoted; dropped
/// whole when the aggregates are rebuilt. Bounded by [`COLD_CACHE_MAX`].
#[derive(Default)]
pub(super) struct ColdCache(pub(super) HashMap<(String, String), ReleaseAgg>);

impl ColdCache {
    pub(super) fn insert(&mut self, key: (String, String), r: ReleaseAgg) {
        if self.0.len() >= COLD_CACHE_MAX {
            self.0.clear();
        }
        self.0.insert(key, r);
    }
}

/// Loads a cold release before a change touches it, inside the transaction
/// and before the change, so its `Op::Load` carries the state the change's
/// `Remove`/`Add` apply to.
pub(super) struct Residency<'a> {
    aggregates: &'a RwLock<Aggregates>,
    scratch: &'a Aggregates,
    /// Cold releases' committed state, taken out when loaded.
    cache: &'a mut ColdCache,
    /// Releases the group has settled, by product: resident (the aggregates
    /// change only after the commit, so they stay resident for the group) or
    /// loaded by the group (their loads not applied yet). Looked up by
    /// borrowed names: most events touch a release settled already.
    settled: HashMap<String, HashSet<String>>,
    /// Of those, the ones the current batch loaded (forgotten if it rolls back).
    batch: Vec<(String, String)>,
}

impl<'a> Residency<'a> {
    pub(super) fn new(
        aggregates: &'a RwLock<Aggregates>,
        scratch: &'a Aggregates,
        cache: &'a mut ColdCache,
    ) -> Self {
        Self {
            aggregates,
            scratch,
            cache,
            settled: HashMap::new(),
            batch: Vec::new(),
        }
    }

    fn ensure(
        &mut self,
        tx: &Connection,
        config: &Config,
        product: &str,
        release: &str,
        ops: &mut Vec<Op>,
    ) -> rusqlite::Result<()> {
        if self
            .settled
            .get(product)
            .is_some_and(|r| r.contains(release))
        {
            return Ok(());
        }
        let cold = self
            .aggregates
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .needs_load(product, release);
        if cold {
            let key = (product.to_owned(), release.to_owned());
            let stored = match self.cache.0.remove(&key) {
                Some(cached) => Some(cached),
                None => load::release(tx, config, self.scratch, product, release)?,
            };
            ops.push(Op::Load(key.0.clone(), key.1.clone(), stored));
            self.batch.push(key);
        }
        match self.settled.get_mut(product) {
            Some(r) => r.insert(release.to_owned()),
            None => self
                .settled
                .entry(product.to_owned())
                .or_default()
                .insert(release.to_owned()),
        };
        Ok(())
    }

    fn rolled_back(&mut self) {
        for (product, release) in self.batch.drain(..) {
            if let Some(r) = self.settled.get_mut(&product) {
                r.remove(&release);
            }
        }
    }
}

/// Applies batches inside a transaction the caller holds. One per round of
/// writes (the writer's group, a `sync` page, an import chunk): it remembers
/// release keys and which cold releases the round made resident.
pub(super) struct Engine<'a> {
    config: &'a Config,
    /// Configured stage names as a JSON array, for `first_found`.
    stages: &'a str,
    /// Release keys, computed once per raw name and round.
    keys: ReleaseKeys,
    /// Whether defects are inserted before they are looked up, and what
    /// this round found (the caller carries it to the next round).
    pub first: InsertFirst,
    /// The writer's aggregates; `None` for `sync` and `import`, which keep
    /// none (nothing is made resident, no [`Op`] is queued).
    memory: Option<Residency<'a>>,
    /// Per source, whether any stored link is held by or points at one of
    /// its records, read once per round and source; an event of a source
    /// no link touches does not look for links of its own record.
    linked: std::collections::HashMap<String, bool>,
    /// Links the current batch refused (a group past its cap).
    refused: u64,
}

impl<'a> Engine<'a> {
    /// An engine for the writer, which keeps `memory` up to date.
    pub(super) fn new(
        config: &'a Config,
        stages: &'a str,
        first: InsertFirst,
        memory: Option<Residency<'a>>,
    ) -> Self {
        Self {
            config,
            stages,
            keys: ReleaseKeys::default(),
            first,
            memory,
            linked: std::collections::HashMap::new(),
            refused: 0,
        }
    }

    /// An engine for a process without aggregates (`sync`, `import`).
    pub(super) fn detached(config: &'a Config, stages: &'a str, first: InsertFirst) -> Self {
        Self::new(config, stages, first, None)
    }

    /// Applies `batch` inside `tx`: its delivery id checked, its release
    /// times and then its defect events applied by [`rules::decide`], the
    /// defects in key order (a stable sort: one defect's events keep their
    /// order, and the rows and the `(source, id)` index are written in
    /// order rather than at random). The effects are those of the input
    /// order: what an event does depends only on its own defect's earlier
    /// events, and release times on nothing else in the batch. Changes to
    /// the aggregates are queued on `ops` (the writer's engine only).
    pub(super) fn apply(
        &mut self,
        tx: &Connection,
        batch: &Batch,
        ops: &mut Vec<Op>,
    ) -> rusqlite::Result<Outcome> {
        let mut outcome = Outcome::default();
        if let Some(id) = &batch.delivery {
            let fresh = tx
                .prepare_cached("INSERT OR IGNORE INTO deliveries VALUES (?1, ?2, ?3)")?
                .execute(params![batch.ingress.as_str(), id, batch.received_at])?;
            if fresh == 0 {
                outcome.duplicate_delivery = true;
                return Ok(outcome);
            }
        }
        if let Some(memory) = &mut self.memory {
            memory.batch.clear();
        }
        self.refused = 0;
        let mut at = Writes {
            tx,
            insert_new: tx.prepare_cached(defect::INSERT_NEW)?,
            ops,
            touched: BTreeSet::new(),
        };
        for i in key_order(&batch.items) {
            let effect = match &batch.items[i] {
                Item::Defect(ev) => self.defect(&mut at, ev, batch.received_at)?,
                Item::Release(ev) => self.release(tx, ev, at.ops)?,
            };
            count(&mut outcome, effect);
        }
        outcome.links_refused = self.refused;
        let Writes { ops, touched, .. } = at;
        for (product, release) in touched {
            let first_found = defect::first_found(tx, self.stages, &product, &release)?;
            let time = None;
            ops.push(Op::Meta(
                product,
                release,
                ReleaseMeta { first_found, time },
            ));
        }
        Ok(outcome)
    }

    /// After the last [`apply`](Self::apply) failed and its batch was rolled
    /// back alone: forgets the releases it made resident.
    pub(super) fn rolled_back(&mut self) {
        if let Some(memory) = &mut self.memory {
            memory.rolled_back();
        }
    }

    /// Applies one defect event by the rules of [`rules::decide`].
    fn defect(
        &mut self,
        at: &mut Writes<'_, '_>,
        ev: &DefectEvent,
        received_at: Millis,
    ) -> rusqlite::Result<Effect> {
        let tx = at.tx;
        if self.linking(tx, ev)? {
            return self.linked(at, ev, received_at);
        }
        if self.first.on {
            if let Some(inserted) = self.insert_if_new(at, ev, received_at)? {
                self.first.counted(!inserted);
                if inserted {
                    return Ok(Effect::Accepted);
                }
            }
        }
        let old = Row::get(tx, &ev.source, &ev.id)?;
        if !self.first.on {
            self.first.counted(old.is_some());
        }
        let decision = rules::decide(self.config, ev, old.as_ref(), received_at, &mut self.keys);
        self.settle(at, ev, old.as_ref(), decision)
    }

    /// Stores what the rules decided for a record counted alone (no other
    /// stored record shares its group) and queues the change it makes.
    fn settle(
        &mut self,
        at: &mut Writes<'_, '_>,
        ev: &DefectEvent,
        old: Option<&Row>,
        decision: Decision,
    ) -> rusqlite::Result<Effect> {
        match decision {
            Decision::Put(new) => self.put(at, old, &new),
            Decision::Unchanged { touch: Some(t) } => {
                touch(at.tx, ev, t)?;
                Ok(Effect::Unchanged)
            }
            d => Ok(d.effect()),
        }
    }

    /// What the rules store for a defect never seen, inserted unless its key
    /// is stored (one descent of the `(source, id)` index, where a lookup
    /// and then a write take more): exactly what [`Engine::put`] does with no
    /// stored row. Its release is made resident before the insert changes
    /// it. Whether it inserted; `None` for a change that is not an upsert.
    fn insert_if_new(
        &mut self,
        at: &mut Writes<'_, '_>,
        ev: &DefectEvent,
        received_at: Millis,
    ) -> rusqlite::Result<Option<bool>> {
        let config = self.config;
        let Some(new) = rules::new_row(config, ev, received_at, &mut self.keys) else {
            return Ok(None);
        };
        let Some(memory) = &mut self.memory else {
            return Ok(Some(new.insert_new(&mut at.insert_new)?));
        };
        let after = new.contribution(config);
        if let Some(Contribution {
            product,
            release: Some(r),
            ..
        }) = &after
        {
            memory.ensure(at.tx, config, product, r, at.ops)?;
        }
        if !new.insert_new(&mut at.insert_new)? {
            return Ok(Some(false));
        }
        at.ops.extend(after.map(Op::Add));
        Ok(Some(true))
    }

    /// Stores `new` and queues the change of its contribution (a cold
    /// release it touches is loaded first, as it was before the change).
    fn put(
        &mut self,
        at: &mut Writes<'_, '_>,
        old: Option<&Row>,
        new: &Row,
    ) -> rusqlite::Result<Effect> {
        let Writes {
            tx, ops, touched, ..
        } = at;
        let tx: &Connection = tx;
        let Some(memory) = &mut self.memory else {
            new.put(tx)?;
            return Ok(Effect::Accepted);
        };
        let before = old.and_then(|o| o.contribution(self.config));
        let after = new.contribution(self.config);
        if before == after {
            new.put(tx)?;
            return Ok(Effect::Accepted);
        }
        for c in before.iter().chain(after.iter()) {
            if let Some(r) = &c.release {
                memory.ensure(tx, self.config, &c.product, r, ops)?;
            }
        }
        new.put(tx)?;
        // An addition keeps the release's earliest `found_at` itself (the
        // aggregates take the minimum); only a removal may take away the
        // minimum, so only then is it queried again (`Op::Meta`).
        if let Some(Contribution {
            product,
            release: Some(r),
            ..
        }) = &before
        {
            touched.insert((product.clone(), r.clone()));
        }
        ops.extend(before.map(Op::Remove));
        ops.extend(after.map(Op::Add));
        Ok(Effect::Accepted)
    }

    /// Records a release time and recomputes what depends on it.
    fn release(
        &mut self,
        tx: &Connection,
        ev: &ReleaseEvent,
        ops: &mut Vec<Op>,
    ) -> rusqlite::Result<Effect> {
        let Some(row) = ReleaseTimeRow::of(self.config, ev) else {
            return Ok(Effect::Stale);
        };
        if let Some(memory) = &mut self.memory {
            memory.ensure(tx, self.config, &row.product, &row.release, ops)?;
        }
        if !row.upsert(tx)? {
            return Ok(Effect::Unchanged);
        }
        if self.memory.is_some() {
            let meta = release_meta(tx, self.config, self.stages, &row.product, &row.release)?;
            ops.push(Op::Meta(row.product, row.release, meta));
        }
        Ok(Effect::Accepted)
    }
}

/// What one batch writes through: its transaction, the statement of the
/// common write (a new defect's insert) prepared once for the batch rather
/// than looked up in the statement cache per row, the changes queued for the
/// aggregates and the releases whose earliest `found_at` must be read again.
struct Writes<'t, 'o> {
    tx: &'t Connection,
    insert_new: CachedStatement<'t>,
    ops: &'o mut Vec<Op>,
    touched: BTreeSet<(String, String)>,
}

/// The order `batch`'s items are applied in: release times first, in input
/// order, then defect events by `(source, id)`, input order among equal keys.
fn key_order(items: &[Item]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| match &items[i] {
        Item::Release(_) => None,
        Item::Defect(ev) => Some((ev.source.as_str(), ev.id.as_str())),
    });
    order
}

/// Advances the stored time of `ev`'s unchanged record to `t`.
fn touch(tx: &Connection, ev: &DefectEvent, t: Millis) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE defects SET updated_at = ?3 WHERE source = ?1 AND id = ?2")?
        .execute(params![ev.source, ev.id, t])?;
    Ok(())
}

fn count(outcome: &mut Outcome, effect: Effect) {
    match effect {
        Effect::Accepted => outcome.accepted += 1,
        Effect::Unchanged => outcome.unchanged += 1,
        Effect::Stale => outcome.stale += 1,
        Effect::Ignored => outcome.ignored += 1,
    }
}

/// Whether a batch stored or confirmed anything (and so counts as activity).
pub(super) fn stored_something(o: &Outcome) -> bool {
    o.accepted + o.unchanged > 0
}

/// Records `source` as active at `at` (the latest time wins).
pub(super) fn record_source_activity(
    tx: &Connection,
    source: Ingress,
    at: Millis,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO sources VALUES (?1, ?2) ON CONFLICT (source) \
         DO UPDATE SET last_event_at = max(last_event_at, excluded.last_event_at)",
    )?
    .execute(params![source.as_str(), at])?;
    Ok(())
}

/// Everything recomputed for a release whose time may have changed.
pub(super) fn release_meta(
    tx: &Connection,
    config: &Config,
    stages: &str,
    product: &str,
    release: &str,
) -> rusqlite::Result<ReleaseMeta> {
    let time = defect::release_time(tx, product, release)?;
    let contributions = defect::release_contributions(tx, config, product, release)?;
    let at_age = Aggregates::new(config).at_age_counts(time, contributions.iter());
    Ok(ReleaseMeta {
        first_found: defect::first_found(tx, stages, product, release)?,
        time: Some((time, at_age)),
    })
}
