//! The store side of `sync`: the cursor table (`sync_cursors`, schema v6),
//! the stored defects a full listing compares with the vendor's, and the two
//! ways a reconcile pass writes:
//!
//! - [`Local`], for the `sync` sub-command: the database opened as `import`
//!   opens it (under the `<db>.lock`, migrated, re-keyed), each page applied
//!   by the writer's own engine (`engine::Engine::apply`) in one
//!   transaction **with its cursor**: a page is either applied and marked
//!   done, or neither.
//! - [`Cursors`], beside `serve`'s writer: pages go through the writer like
//!   every other batch ([`super::Store::write`]); this connection only reads
//!   and writes `sync_cursors` (and reads stored ids), always after the page's
//!   commit, so a cursor never runs ahead of the data it vouches for. Its
//!   calls run on tokio's blocking pool, never on an async worker.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::defect::{self, InsertFirst};
use super::engine::Engine;
use super::lock::{self, DbLock, ExclusiveOpenError};
use super::{Batch, Outcome, schema};
use crate::config::Config;
use crate::model::event::Ingress;
use crate::model::item::Item;
use crate::model::time::Millis;

/// The scope of the row that marks a whole pass over a source.
pub const WHOLE_SOURCE: &str = "*";

/// Where a listing stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Vendor `updated_at` of the newest item the last completed listing saw.
    pub done_until: Option<Millis>,
    /// The same for the pages committed by a listing still under way.
    pub progress: Option<Millis>,
    /// When the last listing completed (our clock).
    pub last_success_at: Option<Millis>,
}

/// Reads the cursor of `(source, scope)`; the default when none is stored.
pub fn cursor(conn: &Connection, source: &str, scope: &str) -> rusqlite::Result<Cursor> {
    Ok(conn
        .prepare_cached(
            "SELECT done_until, progress, last_success_at FROM sync_cursors \
             WHERE source = ?1 AND scope = ?2",
        )?
        .query_row(params![source, scope], |r| {
            Ok(Cursor {
                done_until: r.get(0)?,
                progress: r.get(1)?,
                last_success_at: r.get(2)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// Records that the pages of a listing up to vendor time `progress` are applied.
pub fn save_progress(
    conn: &Connection,
    source: &str,
    scope: &str,
    name: &str,
    progress: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_cursors (source, scope, name, progress) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (source, scope) DO UPDATE SET name = excluded.name, \
         progress = max(coalesce(progress, excluded.progress), excluded.progress)",
    )?
    .execute(params![source, scope, name, progress])?;
    Ok(())
}

/// Records a completed listing: the next one starts from `done_until` (the
/// mark never moves back; kept when `None`: nothing was listed), nothing is
/// in progress.
pub fn complete(
    conn: &Connection,
    source: &str,
    scope: &str,
    name: &str,
    done_until: Option<Millis>,
    at: Millis,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sync_cursors VALUES (?1, ?2, ?3, ?4, NULL, ?5) \
         ON CONFLICT (source, scope) DO UPDATE SET name = excluded.name, \
         done_until = CASE WHEN done_until IS NULL THEN excluded.done_until \
         WHEN excluded.done_until IS NULL THEN done_until \
         ELSE max(done_until, excluded.done_until) END, progress = NULL, \
         last_success_at = excluded.last_success_at",
    )?
    .execute(params![source, scope, name, done_until, at])?;
    Ok(())
}

/// The time of the last whole pass over each source that completed.
pub fn last_successes(conn: &Connection) -> rusqlite::Result<Vec<(String, Millis)>> {
    let mut stmt = conn.prepare(
        "SELECT source, last_success_at FROM sync_cursors \
         WHERE scope = ?1 AND last_success_at IS NOT NULL",
    )?;
    stmt.query_map([WHOLE_SOURCE], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Ids of `source`'s stored defects that start with `prefix`, are not
/// deleted and were last updated at or after `since` (a walk of the
/// `(source, id)` index).
pub fn stored_ids(
    conn: &Connection,
    source: &str,
    prefix: &str,
    since: Millis,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM defects WHERE source = ?1 AND id >= ?2 AND id < ?3 AND deleted = 0 \
         AND updated_at >= ?4",
    )?;
    let end = format!("{prefix}\u{10FFFF}");
    stmt.query_map(params![source, prefix, end, since], |r| r.get(0))?
        .filter(|id| {
            id.as_ref()
                .map_or(true, |id: &String| id.starts_with(prefix))
        })
        .collect()
}

/// Ids of `source`'s stored defects of product namespace `namespace` that are
/// not deleted and were last updated at or after `since`, for sources whose
/// ids do not carry their scope (Jira's and Sentry's issue ids).
pub fn stored_ids_in(
    conn: &Connection,
    source: &str,
    namespace: &str,
    since: Millis,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM defects WHERE source = ?1 AND product_ns = ?2 AND deleted = 0 \
         AND updated_at >= ?3",
    )?;
    stmt.query_map(params![source, namespace, since], |r| r.get(0))?
        .collect()
}

/// The database opened by the `sync` sub-command.
pub struct Local {
    conn: Connection,
    config: Config,
    stages: String,
    _lock: DbLock,
}

impl Local {
    /// Locks and opens `config.db` (creating and migrating it like `serve`),
    /// re-keying stored rows first if the keying configuration changed.
    pub fn open(config: &Config) -> Result<Self, ExclusiveOpenError> {
        let (lock, conn) = lock::open_exclusive(config, "sync", Ok)?;
        Ok(Self {
            conn,
            stages: defect::stages_json(config),
            config: config.clone(),
            _lock: lock,
        })
    }

    /// The connection, for cursors and stored ids.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Applies `items` (read from `ingress`'s API at `received_at`) as the
    /// writer would, and records `progress` for `(source, scope, name)` in
    /// the same transaction.
    pub fn apply(
        &mut self,
        ingress: Ingress,
        items: Vec<Item>,
        received_at: Millis,
        progress: Option<(&str, &str, Millis)>,
    ) -> rusqlite::Result<Outcome> {
        let batch = Batch {
            ingress,
            items,
            delivery: None,
            reconcile: true,
            received_at,
            deadline: None,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // What `sync` reconciles is mostly stored already: looked up first.
        let first = InsertFirst::starting(false);
        let mut engine = Engine::detached(&self.config, &self.stages, first);
        let outcome = engine.apply(&tx, &batch, &mut Vec::new())?;
        if let Some((scope, name, at)) = progress {
            save_progress(&tx, ingress.as_str(), scope, name, at)?;
        }
        tx.commit()?;
        Ok(outcome)
    }

    /// Folds the WAL back into the database and closes it.
    /// (Not with `checkpoint = "external"`: Litestream checkpoints.)
    pub fn close(self) -> rusqlite::Result<()> {
        if self.config.checkpoint == crate::config::Checkpoint::Exporter {
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        self.conn.close().map_err(|(_, e)| e)
    }
}

/// `serve`'s connection for the cursor table (the writer keeps the rest).
///
/// Every call runs on tokio's blocking pool: a statement may wait up to the
/// busy timeout (5 s) for another writer, and on an async worker that wait
/// would stall `/metrics` and the webhooks with it. Cloning shares the
/// connection (one statement at a time, under its mutex).
#[derive(Clone)]
pub struct Cursors {
    conn: Arc<Mutex<Connection>>,
}

impl Cursors {
    /// Opens the database `serve` already opened and migrated (on the
    /// blocking pool: opening reads the schema and may wait for a lock).
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let db = config.db.clone();
        let conn = tokio::task::spawn_blocking(move || schema::open(&db))
            .await
            .map_err(|e| anyhow::anyhow!("opening the database for sync failed: {e}"))??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, off the async workers. A panic inside
    /// `f` is resumed in the caller, so a supervisor awaiting it sees it.
    async fn call<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let run = move || {
            // A panic while it was held leaves the connection usable: every
            // call is one autocommit statement, reset when dropped.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only when the runtime shuts down under it.
            Err(_) => Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                Some("cancelled: the runtime is shutting down".into()),
            )),
        }
    }

    /// [`cursor`], off the async workers.
    pub async fn cursor(&self, source: &str, scope: &str) -> rusqlite::Result<Cursor> {
        let (source, scope) = (source.to_owned(), scope.to_owned());
        self.call(move |c| cursor(c, &source, &scope)).await
    }

    /// [`save_progress`], off the async workers.
    pub async fn save_progress(
        &self,
        source: &str,
        scope: &str,
        name: &str,
        progress: Millis,
    ) -> rusqlite::Result<()> {
        let (source, scope, name) = (source.to_owned(), scope.to_owned(), name.to_owned());
        self.call(move |c| save_progress(c, &source, &scope, &name, progress))
            .await
    }

    /// [`complete`], off the async workers.
    pub async fn complete(
        &self,
        source: &str,
        scope: &str,
        name: &str,
        done_until: Option<Millis>,
        at: Millis,
    ) -> rusqlite::Result<()> {
        let (source, scope, name) = (source.to_owned(), scope.to_owned(), name.to_owned());
        self.call(move |c| complete(c, &source, &scope, &name, done_until, at))
            .await
    }

    /// [`stored_ids`], off the async workers.
    pub async fn stored_ids(
        &self,
        source: &str,
        prefix: &str,
        since: Millis,
    ) -> rusqlite::Result<Vec<String>> {
        let (source, prefix) = (source.to_owned(), prefix.to_owned());
        self.call(move |c| stored_ids(c, &source, &prefix, since))
            .await
    }

    /// [`stored_ids_in`], off the async workers.
    pub async fn stored_ids_in(
        &self,
        source: &str,
        namespace: &str,
        since: Millis,
    ) -> rusqlite::Result<Vec<String>> {
        let (source, namespace) = (source.to_owned(), namespace.to_owned());
        self.call(move |c| stored_ids_in(c, &source, &namespace, since))
            .await
    }

    /// [`last_successes`], off the async workers.
    pub async fn last_successes(&self) -> rusqlite::Result<Vec<(String, Millis)>> {
        self.call(last_successes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_move_forward_and_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = schema::open(&dir.path().join("s.db")).expect("open");
        assert_eq!(
            cursor(&conn, "github", "issues:1").expect("read"),
            Cursor::default()
        );
        save_progress(&conn, "github", "issues:1", "a/b", 50).expect("save");
        // A page re-read after a resume never moves the mark back.
        save_progress(&conn, "github", "issues:1", "a/b", 40).expect("save");
        let c = cursor(&conn, "github", "issues:1").expect("read");
        assert_eq!((c.done_until, c.progress), (None, Some(50)));
        complete(&conn, "github", "issues:1", "a/b", Some(70), 1_000).expect("done");
        let c = cursor(&conn, "github", "issues:1").expect("read");
        assert_eq!(
            (c.done_until, c.progress, c.last_success_at),
            (Some(70), None, Some(1_000))
        );
        // An empty listing keeps the mark it started from.
        complete(&conn, "github", "issues:1", "a/b", None, 2_000).expect("done");
        let c = cursor(&conn, "github", "issues:1").expect("read");
        assert_eq!((c.done_until, c.last_success_at), (Some(70), Some(2_000)));
        assert!(last_successes(&conn).expect("read").is_empty());
        complete(&conn, "github", WHOLE_SOURCE, "", None, 3_000).expect("done");
        assert_eq!(
            last_successes(&conn).expect("read"),
            vec![("github".to_owned(), 3_000)]
        );
    }

    #[test]
    fn stored_ids_are_those_of_the_prefix_or_namespace_not_deleted_nor_older() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = schema::open(&dir.path().join("s.db")).expect("open");
        for (id, deleted, updated) in [
            ("12#1", 0, 50),
            ("12#2", 1, 50),
            ("123#1", 0, 50),
            ("12#30", 0, 50),
            ("12#4", 0, 10),
        ] {
            conn.execute(
                "INSERT INTO defects (source, id, product_kind, product_ns, product, status, \
                 deleted, found_at, updated_at) VALUES ('github', ?1, 'github', 'a/b', 'a/b', \
                 'valid', ?2, 0, ?3)",
                params![id, deleted, updated],
            )
            .expect("row");
        }
        let mut ids = stored_ids(&conn, "github", "12#", Millis::MIN).expect("ids");
        ids.sort();
        assert_eq!(ids, ["12#1", "12#30", "12#4"]);
        let mut ids = stored_ids(&conn, "github", "12#", 20).expect("ids");
        ids.sort();
        assert_eq!(ids, ["12#1", "12#30"]);
        let mut ids = stored_ids_in(&conn, "github", "a/b", Millis::MIN).expect("ids");
        ids.sort();
        assert_eq!(ids, ["12#1", "12#30", "12#4", "123#1"]);
        let mut ids = stored_ids_in(&conn, "github", "a/b", 20).expect("ids");
        ids.sort();
        assert_eq!(ids, ["12#1", "12#30", "123#1"]);
        assert!(
            stored_ids_in(&conn, "github", "a/c", Millis::MIN)
                .expect("ids")
                .is_empty()
        );
    }
}
