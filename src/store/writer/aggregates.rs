//! After a commit: the group's changes applied to the in-memory aggregates,
//! the cold releases it loaded kept, and, when that fails, the aggregates
//! rebuilt from disk.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::Writer;
use super::supervisor::{panic_message, replace_aggregates};
use crate::store::engine::Op;
use crate::store::health::write_lock;
use crate::store::load;

impl Writer {
    /// Applies committed changes to the aggregates. A panic half-way leaves
    /// them unknown: they are rebuilt from disk, which holds the commit.
    pub(super) fn apply_ops(&mut self, ops: &[Op]) -> Result<(), String> {
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
                    Op::Linked(p, delta) => {
                        agg.link(p, *delta);
                        continue;
                    }
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
    pub(super) fn rebuild(&mut self) -> Result<(), String> {
        self.cold.0.clear();
        let fresh = load::aggregates(&self.conn, &self.config)
            .map_err(|e| format!("cannot rebuild the aggregates: {e}"))?;
        replace_aggregates(&self.aggregates, fresh);
        Ok(())
    }
}
