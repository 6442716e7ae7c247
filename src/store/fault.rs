//! Faults injected into the writer by tests, so every failure path is
//! exercised against a real database: panics at the two places that matter
//! and a database that can no longer grow.

use std::sync::atomic::{AtomicBool, Ordering};

/// One fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The next transaction panics before it commits.
    PanicInTransaction,
    /// The next commit panics while holding the aggregates' write lock, after
    /// the transaction committed.
    PanicInAggregates,
    /// `PRAGMA max_page_count`: the database cannot grow past `n` pages (as on
    /// a full volume); `0` lifts the limit.
    MaxPageCount(u64),
}

/// Armed one-shot panics.
#[derive(Debug, Default)]
pub(super) struct Armed {
    in_transaction: AtomicBool,
    in_aggregates: AtomicBool,
}

impl Armed {
    /// Arms a panic fault; other faults are applied by the writer.
    pub(super) fn arm(&self, fault: Fault) {
        match fault {
            Fault::PanicInTransaction => self.in_transaction.store(true, Ordering::SeqCst),
            Fault::PanicInAggregates => self.in_aggregates.store(true, Ordering::SeqCst),
            Fault::MaxPageCount(_) => {}
        }
    }

    /// Panics if a fault for the transaction is armed.
    pub(super) fn in_transaction(&self) {
        if self.in_transaction.swap(false, Ordering::SeqCst) {
            panic!("injected fault: panic in the transaction");
        }
    }

    /// Panics if a fault for the aggregates is armed.
    pub(super) fn in_aggregates(&self) {
        if self.in_aggregates.swap(false, Ordering::SeqCst) {
            panic!("injected fault: panic while updating the aggregates");
        }
    }
}
