//! What `/readyz` answers without queueing behind writes: whether the writer
//! runs and whether the last transaction or probe could write to the disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockWriteGuard};

use crate::metrics::telemetry::Telemetry;

/// The writer's state as seen from outside.
#[derive(Debug)]
pub struct Health {
    writer_up: AtomicBool,
    writable: AtomicBool,
    problem: Mutex<Option<String>>,
    telemetry: Arc<Telemetry>,
}

impl Health {
    /// A running, writable store.
    pub(super) fn new(telemetry: Arc<Telemetry>) -> Self {
        telemetry.set_store_writable(true);
        Self {
            writer_up: AtomicBool::new(true),
            writable: AtomicBool::new(true),
            problem: Mutex::new(None),
            telemetry,
        }
    }

    /// `Ok` when a write would be accepted now; else why not.
    pub fn ready(&self) -> Result<(), String> {
        if self.writer_up.load(Ordering::SeqCst) && self.writable.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(self
            .problem
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "store not writable".into()))
    }

    /// The last transaction or probe committed.
    pub(super) fn wrote(&self) {
        if !self.writable.swap(true, Ordering::SeqCst) {
            tracing::info!("store writable again");
        }
        self.telemetry.set_store_writable(self.is_up());
    }

    /// The last transaction or probe failed.
    pub(super) fn write_failed(&self, why: String) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
        self.writable.store(false, Ordering::SeqCst);
        self.telemetry.set_store_writable(false);
    }

    /// The writer stopped (panicked or lost its connection) and is restarting.
    pub(super) fn writer_down(&self, why: String) {
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
        self.writer_up.store(false, Ordering::SeqCst);
        self.telemetry.set_store_writable(false);
    }

    /// The writer runs again, on a fresh connection.
    pub(super) fn writer_up(&self) {
        self.writer_up.store(true, Ordering::SeqCst);
        self.writable.store(true, Ordering::SeqCst);
        self.telemetry.set_store_writable(true);
    }

    fn is_up(&self) -> bool {
        self.writer_up.load(Ordering::SeqCst) && self.writable.load(Ordering::SeqCst)
    }
}

/// The aggregates' write lock, whether or not a panic poisoned it: the writer
/// replaces poisoned contents with a fresh load from disk.
pub(super) fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
