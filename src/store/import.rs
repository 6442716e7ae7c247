//! The store side of the `import` sub-command: the database opened as `serve`
//! opens it (migrations, re-keying), under the database lock, and every
//! imported chunk applied by the writer's own engine (`Engine::apply`, the
//! rules of `rules::decide`) in **one transaction**: an import that fails or
//! is interrupted leaves the database as it was, and one that succeeds is on
//! disk (`synchronous=FULL`).
//!
//! The database stays in WAL mode throughout, as `serve` keeps it: readers
//! (`report`, `export`, the read API) see the last commit before the import
//! until it commits, and a killed import leaves only uncommitted WAL frames,
//! which every reader ignores. A failed one gives its WAL space back
//! ([`Importer::abandon`]).

use rusqlite::Connection;

use super::Batch;
use super::Outcome;
use super::defect::{self, InsertFirst};
use super::engine::{self, Engine, stored_something};
use super::lock::{self, DbLock, ExclusiveOpenError};
use crate::config::{Checkpoint, Config};
use crate::model::event::Ingress;
use crate::model::item::Item;
use crate::model::time::Millis;

/// Page cache while importing (KiB, SQLite's negative `cache_size`): the
/// `(source, id)` index of a million random tracker ids is about 60 MiB; with
/// all of it cached, each insert dirties pages already in memory.
const IMPORT_CACHE_KIB: i64 = 256 * 1024;

/// An open database taking an import, inside its transaction.
pub struct Importer {
    conn: Connection,
    config: Config,
    /// Configured stage names as a JSON array (the engine's `first_found`).
    stages: String,
    /// Whether the next chunk inserts defects before looking them up: on
    /// while most are new to the database (an empty one to start with).
    first: InsertFirst,
    /// When the last chunk that stored something was received (recorded as
    /// the generic source's activity).
    stored_at: Option<Millis>,
    _lock: DbLock,
}

impl Importer {
    /// Locks and opens `config.db` (creating and migrating it like `serve`),
    /// re-keying stored rows first if the keying configuration changed, and
    /// begins the import's transaction.
    pub fn open(config: &Config) -> Result<Self, ExclusiveOpenError> {
        let (lock, (conn, empty)) = lock::open_exclusive(config, "import", |conn| {
            conn.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
            // Whatever is committed goes into the database file first (a new
            // file's migrations, a crashed writer's last commits), so the WAL
            // holds nothing but this import: if it fails, rolling back and
            // truncating the WAL gives all its space back, with no page to
            // copy into a database file a full disk could not grow.
            // (Not with `checkpoint = "external"`: Litestream checkpoints.)
            if config.checkpoint == Checkpoint::Exporter {
                checkpoint_truncate(&conn);
            }
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let empty = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM defects)", [], |r| {
                r.get(0)
            })?;
            Ok((conn, empty))
        })?;
        Ok(Self {
            conn,
            stages: defect::stages_json(config),
            config: config.clone(),
            first: InsertFirst::starting(empty),
            stored_at: None,
            _lock: lock,
        })
    }

    /// Applies one chunk of the input (`items`, in input order) exactly as
    /// the writer applies a `POST /api/v1/events` batch received at
    /// `received_at`; nothing is committed before [`Importer::commit`].
    pub fn apply(&mut self, items: Vec<Item>, received_at: Millis) -> rusqlite::Result<Outcome> {
        let batch = Batch {
            ingress: Ingress::Generic,
            items,
            delivery: None,
            reconcile: false,
            received_at,
            deadline: None,
        };
        let mut engine = Engine::detached(&self.config, &self.stages, self.first);
        let outcome = engine.apply(&self.conn, &batch, &mut Vec::new())?;
        self.first = engine.first;
        // Insert first in the next chunk if most of this one's defects were
        // new to the database.
        self.first.adapt();
        if stored_something(&outcome) {
            self.stored_at = Some(received_at);
        }
        Ok(outcome)
    }

    /// Records the activity, commits, and folds the WAL back into the
    /// database. A failure abandons the import ([`Importer::abandon`]): the
    /// database is as it was, the space given back.
    pub fn commit(self) -> Result<Committed, Abandoned> {
        let started = std::time::Instant::now();
        let committed = match self.stored_at {
            Some(at) => engine::record_source_activity(&self.conn, Ingress::Generic, at),
            None => Ok(()),
        }
        .and_then(|()| self.conn.execute_batch("COMMIT"));
        if let Err(error) = committed {
            return Err(Abandoned {
                error,
                release: self.abandon(),
            });
        }
        let commit_ms = started.elapsed().as_millis() as u64;
        // Committed: what follows is housekeeping, which `serve` also does
        // when it opens the database: the WAL folded back into the database.
        let tidied = if self.config.checkpoint == Checkpoint::External {
            Ok(()) // Litestream checkpoints
        } else {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        };
        tracing::debug!(
            commit_ms,
            checkpoint_ms = started.elapsed().as_millis() as u64 - commit_ms,
            "import: committed and checkpointed"
        );
        let closed = self.conn.close().map_err(|(_, e)| e);
        Ok(Committed {
            housekeeping: tidied.and(closed).err(),
        })
    }

    /// Ends an import that failed (or is given up) and gives back the disk
    /// space it took: its transaction rolled back (SQLite may have done it
    /// already, after a full disk), the WAL — which held nothing but this
    /// import's pages ([`Importer::open`] folded the rest into the database
    /// first) — truncated to nothing, the database closed (the last
    /// connection deletes the WAL). Readers saw none of it. What could not
    /// be done, if anything: `serve` or the next import truncates the WAL
    /// when it opens the database.
    pub fn abandon(self) -> Option<String> {
        let rolled_back = if self.conn.is_autocommit() {
            Ok(())
        } else {
            self.conn.execute_batch("ROLLBACK")
        };
        // `busy` is 1 when a reader of an older snapshot kept the WAL.
        let truncated = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        let closed = self.conn.close().map_err(|(_, e)| e);
        match (rolled_back, truncated, closed) {
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Some(e.to_string()),
            (Ok(()), Ok(busy), Ok(())) if busy != 0 => {
                Some("a reader kept the WAL open; it was not truncated".into())
            }
            _ => None,
        }
    }
}

/// Folds what the WAL holds into the database and truncates it, as far as
/// readers let it (a reader of an older snapshot keeps its frames): best
/// effort, the import is correct either way.
fn checkpoint_truncate(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!(error = %e, "import: checkpoint before the import failed");
    }
}

/// Whether `e` says the disk (or the database's size limit) is full.
pub fn disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// An import that failed to commit, abandoned ([`Importer::abandon`]).
#[derive(Debug)]
pub struct Abandoned {
    /// Why it failed.
    pub error: rusqlite::Error,
    /// What could not be given back, if anything.
    pub release: Option<String>,
}

/// A committed import.
pub struct Committed {
    /// What failed after the commit (the checkpoint, closing): nothing lost,
    /// `serve` does it again when it opens the file.
    pub housekeeping: Option<rusqlite::Error>,
}
