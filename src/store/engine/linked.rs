//! The path of linked records through the engine (docs/semantics.md,
//! "Linked records"): an event whose record carries or is the target of a
//! link has every link group it touches computed again, and what those
//! groups counted before is replaced in the aggregates by what they count now.

use super::*;
impl Engine<'_> {
    /// Whether `ev` takes the path of linked records: it carries links, or
    /// its record holds or is the target of one.
    pub(super) fn linking(&mut self, tx: &Connection, ev: &DefectEvent) -> rusqlite::Result<bool> {
        if ev.links.as_ref().is_some_and(|l| !l.is_empty()) {
            return Ok(true);
        }
        let touched = match self.linked.get(&ev.source) {
            Some(t) => *t,
            None => {
                let t = links::touches(tx, &ev.source)?;
                self.linked.insert(ev.source.clone(), t);
                t
            }
        };
        Ok(touched && links::has_edges(tx, &ev.source, &ev.id)?)
    }

    /// Applies one event of a linked record: the rules of [`rules::decide`]
    /// for its row, its links replaced when the event carries them (and is
    /// not stale), and every group it was or becomes part of computed again
    /// ([`links::Regrouped`]). What those groups counted before is removed
    /// from the aggregates and what they count now added.
    pub(super) fn linked(
        &mut self,
        at: &mut Writes<'_, '_>,
        ev: &DefectEvent,
        received_at: Millis,
    ) -> rusqlite::Result<Effect> {
        let tx = at.tx;
        let config = self.config;
        let key: links::Key = (ev.source.clone(), ev.id.clone());
        let old = Row::get(tx, &ev.source, &ev.id)?;
        self.first.counted(old.is_some());
        let decision = rules::decide(config, ev, old.as_ref(), received_at, &mut self.keys);
        let wanted: Option<BTreeSet<links::Key>> = match decision {
            Decision::Stale | Decision::Ignored => None,
            _ => ev.links.as_ref().map(|l| {
                l.iter()
                    .map(|t| (t.source.clone(), t.id.clone()))
                    .filter(|t| *t != key)
                    .collect()
            }),
        };
        let (nodes, held, holds) = self.reach(tx, &key, wanted)?;
        let mut rows = links::rows(tx, &nodes)?;
        if rows.keys().all(|k| *k == key) {
            // No other stored record in reach, before or after: no group
            // (it takes two stored records), so the record counts alone,
            // as one without links, and only its links change.
            let effect = self.settle(at, ev, old.as_ref(), decision)?;
            return self.hold(tx, &key, &held, holds, effect);
        }
        let mut edges = links::edges_among(tx, &nodes)?;
        edges.retain(|(from, _)| *from != key);
        edges.extend(holds.iter().map(|t| (key.clone(), t.clone())));
        match &decision {
            Decision::Put(new) => {
                rows.insert(key.clone(), new.clone());
            }
            Decision::Unchanged { touch: Some(t) } => {
                if let Some(r) = rows.get_mut(&key) {
                    r.updated_at = *t;
                }
            }
            _ => {}
        }
        let regrouped = links::Regrouped::of(config, &nodes, &edges, &rows);
        self.queue_regrouped(at, &nodes, &regrouped, &rows)?;
        let effect = decision.effect();
        match &decision {
            Decision::Put(new) => new.put(tx)?,
            Decision::Unchanged { touch: Some(t) } => super::touch(tx, ev, *t)?,
            _ => {}
        }
        let effect = self.hold(tx, &key, &held, holds, effect)?;
        regrouped.write(tx, &nodes)?;
        Ok(effect)
    }

    /// Stores the links record `key` `holds` when they are not those it
    /// `held`: then an event that changed nothing else is accepted.
    fn hold(
        &mut self,
        tx: &Connection,
        key: &links::Key,
        held: &BTreeSet<links::Key>,
        holds: BTreeSet<links::Key>,
        effect: Effect,
    ) -> rusqlite::Result<Effect> {
        if holds == *held {
            return Ok(effect);
        }
        links::replace(tx, key, &holds)?;
        for source in std::iter::once(&key.0).chain(holds.iter().map(|t| &t.0)) {
            self.linked.insert(source.clone(), true);
        }
        Ok(if effect == Effect::Unchanged {
            Effect::Accepted
        } else {
            effect
        })
    }
}

impl Engine<'_> {
    /// Queues what regrouping `nodes` changes in the aggregates (the
    /// writer's engine only): what their groups counted before removed,
    /// what they count now added, the folded records per product; cold
    /// releases it touches loaded first.
    fn queue_regrouped(
        &mut self,
        at: &mut Writes<'_, '_>,
        nodes: &BTreeSet<links::Key>,
        regrouped: &links::Regrouped,
        rows: &BTreeMap<links::Key, Row>,
    ) -> rusqlite::Result<()> {
        let (tx, config) = (at.tx, self.config);
        let Some(memory) = &mut self.memory else {
            return Ok(());
        };
        let (mut before, folded) = links::counted(tx, config, nodes)?;
        let mut after = regrouped.contributions(config, rows);
        let mut linked: BTreeMap<String, i64> = BTreeMap::new();
        for p in folded {
            *linked.entry(p).or_default() -= 1;
        }
        for (k, f) in &regrouped.folded {
            if let (true, Some(r)) = (*f, rows.get(k)) {
                *linked.entry(r.product.clone()).or_default() += 1;
            }
        }
        at.ops.extend(
            linked
                .into_iter()
                .filter(|(_, d)| *d != 0)
                .map(|(p, d)| Op::Linked(p, d)),
        );
        cancel(&mut before, &mut after);
        for c in before.iter().chain(after.iter()) {
            if let Some(r) = &c.release {
                memory.ensure(tx, config, &c.product, r, at.ops)?;
            }
        }
        for c in &before {
            if let Some(r) = &c.release {
                at.touched.insert((c.product.clone(), r.clone()));
            }
        }
        at.ops.extend(before.into_iter().map(Op::Remove));
        at.ops.extend(after.into_iter().map(Op::Add));
        Ok(())
    }

    /// The records whose groups an event of record `key` may change (its
    /// group, and those of the records it comes to link to), the links it
    /// holds, and those it will hold: `wanted` unless that would make a
    /// group larger than [`MAX_GROUP_RECORDS`], when only those it holds
    /// already are kept (the others counted refused).
    #[allow(clippy::type_complexity)]
    fn reach(
        &mut self,
        tx: &Connection,
        key: &links::Key,
        wanted: Option<BTreeSet<links::Key>>,
    ) -> rusqlite::Result<(
        BTreeSet<links::Key>,
        BTreeSet<links::Key>,
        BTreeSet<links::Key>,
    )> {
        let mut nodes = BTreeSet::new();
        links::component(tx, key, &mut nodes)?;
        let held = links::outgoing(tx, key)?;
        let Some(wanted) = wanted else {
            let holds = held.clone();
            return Ok((nodes, held, holds));
        };
        let mut merged = nodes.clone();
        for t in wanted.difference(&held) {
            links::component(tx, t, &mut merged)?;
        }
        if merged.len() > MAX_GROUP_RECORDS {
            self.refused += wanted.difference(&held).count() as u64;
            let holds = wanted.intersection(&held).cloned().collect();
            return Ok((nodes, held, holds));
        }
        Ok((merged, held, wanted))
    }
}

/// Drops what `a` and `b` hold alike (one for one): the changes that undo
/// each other.
fn cancel(a: &mut Vec<Contribution>, b: &mut Vec<Contribution>) {
    let mut i = 0;
    while i < a.len() {
        if let Some(j) = b.iter().position(|c| *c == a[i]) {
            a.swap_remove(i);
            b.swap_remove(j);
        } else {
            i += 1;
        }
    }
}
