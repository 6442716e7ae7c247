//! What `/readyz` answers without queueing behind writes: whether the writer
//! runs, whether the last transaction or probe could write to the disk, and
//! whether the database path still names the file the store has open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockWriteGuard};

use super::identity::FileIdentity;
use crate::telemetry::Telemetry;

/// The writer's state as seen from outside.
#[derive(Debug)]
pub struct Health {
    writer_up: AtomicBool,
    writable: AtomicBool,
    problem: Mutex<Option<String>>,
    /// The open database file, checked at every readiness probe (one `stat`).
    file: OnceLock<FileIdentity>,
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
            file: OnceLock::new(),
            telemetry,
        }
    }

    /// Watches `file`: readiness fails as soon as its path names another file.
    pub(super) fn watch(&self, file: FileIdentity) {
        let _ = self.file.set(file);
    }

    /// `Ok` when a write would be accepted now; else why not.
    pub fn ready(&self) -> Result<(), String> {
        if let Some(Err(why)) = self.file.get().map(FileIdentity::check) {
            self.telemetry.set_store_writable(false);
            return Err(why);
        }
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

    /// Whether the last transaction or probe failed (the writer then retries
    /// at every idle tick rather than every 30 s).
    pub(super) fn failing(&self) -> bool {
        !self.writable.load(Ordering::SeqCst)
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
