//! The store side of the `import` sub-command: the database opened as `serve`
//! opens it (migrations, re-keying), under the database lock, and batches
//! applied by the writer's own rules, each in one transaction committed with
//! `synchronous=FULL`: every count an import reports is on disk.

use rusqlite::{Connection, TransactionBehavior};

use super::lock::{self, DbLock, LockError};
use super::{Batch, Item, Outcome, defect, load, schema, writer};
use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::time::Millis;

/// Page cache while importing (KiB, SQLite's negative `cache_size`): the
/// `(source, id)` index of a million random tracker ids is about 60 MiB; with
/// all of it cached, each insert dirties pages already in memory.
const IMPORT_CACHE_KIB: i64 = 256 * 1024;

/// An open database taking imported batches.
pub struct Importer {
    conn: Connection,
    config: Config,
    stages: String,
    _lock: DbLock,
}

/// Why the database cannot take an import.
#[derive(Debug, thiserror::Error)]
pub enum ImportOpenError {
    /// `serve` (or another import) holds the database.
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("cannot open database {db}: {error:#}")]
    Open {
        db: std::path::PathBuf,
        error: anyhow::Error,
    },
}

impl Importer {
    /// Locks and opens `config.db` (creating and migrating it like `serve`),
    /// re-keying stored rows first if the keying configuration changed.
    pub fn open(config: &Config) -> Result<Self, ImportOpenError> {
        let lock = lock::acquire(&config.db, "import")?;
        let open = || -> anyhow::Result<Connection> {
            let mut conn = schema::open(&config.db)?;
            load::rekey_if_changed(&mut conn, config)?;
            conn.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
            Ok(conn)
        };
        let conn = open().map_err(|error| ImportOpenError::Open {
            db: config.db.clone(),
            error,
        })?;
        Ok(Self {
            conn,
            stages: defect::stages_json(config),
            config: config.clone(),
            _lock: lock,
        })
    }

    /// Applies `items` in one transaction, in order for each defect, as the
    /// writer applies a `POST /api/v1/events` batch received at `received_at`;
    /// answers once committed.
    pub fn apply(
        &mut self,
        mut items: Vec<Item>,
        received_at: Millis,
    ) -> rusqlite::Result<Outcome> {
        // Only the order of one defect's events matters (and release times
        // are independent of defects): a stable sort by key keeps it, and
        // walks the `(source, id)` index in order instead of at random.
        // Indices are sorted, not the items (a few hundred bytes each).
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| key(&items[a]).cmp(&key(&items[b])));
        let mut slots: Vec<Option<Item>> = items.drain(..).map(Some).collect();
        items.extend(order.iter().filter_map(|&i| slots[i].take()));
        let batch = Batch {
            ingress: Ingress::Generic,
            items,
            delivery: None,
            reconcile: false,
            received_at,
            deadline: None,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = writer::apply_detached(&tx, &self.config, &self.stages, &batch)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Folds the WAL back into the database and closes it.
    pub fn close(self) -> rusqlite::Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        self.conn.close().map_err(|(_, e)| e)
    }
}

/// Sort key of an item: release times first, then defects by `(source, id)`.
fn key(item: &Item) -> (u8, &str, &str) {
    match item {
        Item::Release(_) => (0, "", ""),
        Item::Defect(d) => (1, d.source.as_str(), d.id.as_str()),
    }
}
