//! The store side of the `import` sub-command: the database opened as `serve`
//! opens it (migrations, re-keying), under the database lock, and every
//! imported item applied by the writer's own rules ([`rules::decide`]) in
//! **one transaction**: an import that fails or is interrupted leaves the
//! database as it was, and one that succeeds is on disk (`synchronous=FULL`).
//!
//! Bulk loading, not one write per event: each chunk of items is sorted by
//! defect key and folded in memory (all of a defect's events in the chunk,
//! against its stored row), then only the final rows are written, in key
//! order. When the import is large against what is stored, the secondary
//! indexes of `defects` are dropped inside the transaction and built again
//! (a sort) before it commits.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use rusqlite::Connection;

use super::defect::Row;
use super::lock::{self, DbLock, LockError};
use super::rules::{self, Decision, Effect, ReleaseKeys, ReleaseTimeRow};
use super::{Item, Outcome, load, schema, writer};
use crate::config::Config;
use crate::model::event::{DefectEvent, Ingress};
use crate::model::time::Millis;

/// Page cache while importing (KiB, SQLite's negative `cache_size`): the
/// `(source, id)` index of a million random tracker ids is about 60 MiB; with
/// all of it cached, each insert dirties pages already in memory.
const IMPORT_CACHE_KIB: i64 = 256 * 1024;

/// Threads SQLite may use to sort an index being built.
const SORT_THREADS: i64 = 4;

/// Page cache while the dropped indexes are built (KiB; see [`Importer::commit`]).
const SORT_CACHE_KIB: i64 = 16 * 1024;

/// Switches the database from WAL to a rollback journal for the import, when
/// no other connection has it open (a `report` or `export` may): pages then
/// go to the database file once, instead of to the WAL and again to the file
/// at the checkpoint, and the pages a fresh import appends need no journal.
/// An interrupted import leaves a hot journal, which the next open rolls
/// back; [`Importer::commit`] and `serve` put the database back in WAL.
/// Whether it switched.
fn rollback_journal(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(std::time::Duration::ZERO)?;
    // No statement may be open for the switch.
    conn.flush_prepared_statement_cache();
    // Refused (busy) while another connection reads: the import stays in WAL.
    let mode =
        conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0));
    conn.busy_timeout(schema::BUSY_TIMEOUT)?;
    Ok(mode.is_ok_and(|m| m.eq_ignore_ascii_case("delete")))
}

/// An open database taking an import, inside its transaction.
pub struct Importer {
    conn: Connection,
    config: Config,
    keys: ReleaseKeys,
    /// No defect was stored when the import began: a key this import did not
    /// write is not stored, and is not looked up.
    fresh: bool,
    /// Hashes of the keys this import wrote (a hash seen may still be another
    /// key's: then the row is looked up).
    written: HashSet<u64, BuildHasherDefault<DefaultHasher>>,
    /// The secondary indexes of `defects` dropped for the import (their
    /// `CREATE INDEX` statements), built again by [`Importer::commit`];
    /// `None` until the first chunk decides.
    dropped: Option<Vec<String>>,
    /// When the last chunk that stored something was received (recorded as
    /// the generic source's activity).
    stored_at: Option<Millis>,
    /// The import runs with a rollback journal, not the WAL.
    rollback: bool,
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
    /// re-keying stored rows first if the keying configuration changed, and
    /// begins the import's transaction.
    pub fn open(config: &Config) -> Result<Self, ImportOpenError> {
        let lock = lock::acquire(&config.db, "import")?;
        let open = || -> anyhow::Result<(Connection, bool, bool)> {
            let mut conn = schema::open(&config.db)?;
            load::rekey_if_changed(&mut conn, config)?;
            conn.pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
            // Helper threads for the sorts of `CREATE INDEX`.
            conn.pragma_update(None, "threads", SORT_THREADS)?;
            let rollback = rollback_journal(&conn)?;
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let fresh = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM defects)", [], |r| {
                r.get(0)
            })?;
            Ok((conn, fresh, rollback))
        };
        let (conn, fresh, rollback) = open().map_err(|error| ImportOpenError::Open {
            db: config.db.clone(),
            error,
        })?;
        Ok(Self {
            conn,
            config: config.clone(),
            keys: ReleaseKeys::default(),
            fresh,
            written: HashSet::default(),
            dropped: None,
            stored_at: None,
            rollback,
            _lock: lock,
        })
    }

    /// Applies `items` (one chunk of the input, in input order) as the writer
    /// would apply them as `POST /api/v1/events` batches received at
    /// `received_at`; nothing is committed before [`Importer::commit`].
    pub fn apply(&mut self, items: Vec<Item>, received_at: Millis) -> rusqlite::Result<Outcome> {
        let mut outcome = Outcome::default();
        let mut defects = Vec::with_capacity(items.len());
        // Release times are independent of defects: applied in input order.
        for item in items {
            match item {
                Item::Defect(ev) => defects.push(ev),
                Item::Release(ev) => {
                    let effect = match ReleaseTimeRow::of(&self.config, &ev) {
                        None => Effect::Stale,
                        Some(row) if row.upsert(&self.conn)? => Effect::Accepted,
                        Some(_) => Effect::Unchanged,
                    };
                    count(&mut outcome, effect);
                }
            }
        }
        if self.dropped.is_none() {
            self.dropped = Some(self.drop_indexes_if_large(defects.len())?);
        }
        // Only the order of one defect's events matters: a stable sort by key
        // keeps it, groups each defect's events, and writes the rows in key
        // order (the `(source, id)` index is walked, not hit at random).
        let order = key_order(&defects);
        let mut group: Vec<&DefectEvent> = Vec::new();
        let mut writes = Vec::new();
        for &i in &order {
            let ev = &defects[i as usize];
            if group
                .first()
                .is_some_and(|g| (&g.source, &g.id) != (&ev.source, &ev.id))
            {
                self.fold(&group, received_at, &mut outcome, &mut writes)?;
                group.clear();
            }
            group.push(ev);
        }
        if !group.is_empty() {
            self.fold(&group, received_at, &mut outcome, &mut writes)?;
        }
        // The events are done with: freed before the rows are written.
        drop(order);
        drop(defects);
        Row::insert_all(&self.conn, writes.iter().filter(|w| w.1).map(|w| &w.0))?;
        for (row, _) in writes.iter().filter(|w| !w.1) {
            row.put(&self.conn)?;
        }
        if outcome.accepted + outcome.unchanged > 0 {
            self.stored_at = Some(received_at);
        }
        Ok(outcome)
    }

    /// Applies one defect's events (in order) to its stored row; the result,
    /// if it differs, joins `writes` (`true`: a new row).
    fn fold(
        &mut self,
        events: &[&DefectEvent],
        received_at: Millis,
        outcome: &mut Outcome,
        writes: &mut Vec<(Row, bool)>,
    ) -> rusqlite::Result<()> {
        let (source, id) = (&events[0].source, &events[0].id);
        let hash = self.written.hasher().hash_one((source, id));
        let stored = if self.fresh && !self.written.contains(&hash) {
            None
        } else {
            Row::get(&self.conn, source, id)?
        };
        let mut current: Option<Row> = None;
        for ev in events {
            let old = current.as_ref().or(stored.as_ref());
            let decision = rules::decide(&self.config, ev, old, received_at, &mut self.keys);
            count(outcome, decision.effect());
            match decision {
                Decision::Put(row) => current = Some(row),
                // Only a stored row is ever unchanged.
                Decision::Unchanged { touch: Some(t) } => {
                    if let Some(mut row) = old.cloned() {
                        row.updated_at = t;
                        current = Some(row);
                    }
                }
                _ => {}
            }
        }
        match (current, &stored) {
            (None, _) => {}
            (Some(row), Some(s)) if row == *s => {}
            (Some(row), Some(_)) => writes.push((row, false)),
            (Some(row), None) => {
                writes.push((row, true));
                self.written.insert(hash);
            }
        }
        Ok(())
    }

    /// Drops the secondary (non-unique) indexes of `defects` when this first
    /// chunk alone holds at least as many defect events as the table holds
    /// rows: building an index once from sorted rows is cheaper than keeping
    /// it up to date through as many inserts as it has entries. The unique
    /// `(source, id)` index stays: lookups and upserts need it.
    fn drop_indexes_if_large(&self, events: usize) -> rusqlite::Result<Vec<String>> {
        let rows: i64 =
            self.conn
                .query_row("SELECT ifnull(max(rowid), 0) FROM defects", [], |r| {
                    r.get(0)
                })?;
        if (events as i64) < rows {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare(
            "SELECT l.name, m.sql FROM pragma_index_list('defects') AS l \
             JOIN sqlite_master AS m ON m.type = 'index' AND m.name = l.name \
             WHERE l.\"unique\" = 0 AND m.sql IS NOT NULL",
        )?;
        let indexes = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut dropped = Vec::new();
        for (name, sql) in indexes {
            self.conn
                .execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
            dropped.push(sql);
        }
        Ok(dropped)
    }

    /// Builds the dropped indexes again, records the activity, commits, and
    /// folds the WAL back into the database.
    pub fn commit(self) -> Result<Committed, rusqlite::Error> {
        // A small cache makes the index sorter work in several runs, sorted by
        // its helper threads at once, instead of one run on this thread.
        self.conn
            .pragma_update(None, "cache_size", -SORT_CACHE_KIB)?;
        for sql in self.dropped.iter().flatten() {
            self.conn.execute_batch(sql)?;
        }
        if let Some(at) = self.stored_at {
            writer::record_source_activity(&self.conn, Ingress::Generic, at)?;
        }
        self.conn.execute_batch("COMMIT")?;
        // Committed: what follows is housekeeping, which `serve` also does
        // when it opens the database.
        let tidy = || -> rusqlite::Result<()> {
            if self.rollback {
                // Back to WAL (no statement may be open for the switch).
                self.conn.flush_prepared_statement_cache();
                self.conn
                    .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
                    .map(drop)
            } else {
                // The WAL folded back into the database.
                self.conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            }
        };
        let tidied = tidy();
        let closed = self.conn.close().map_err(|(_, e)| e);
        Ok(Committed {
            housekeeping: tidied.and(closed).err(),
        })
    }
}

/// A committed import.
pub struct Committed {
    /// What failed after the commit (the switch back to WAL, the checkpoint,
    /// closing): nothing lost, `serve` does it again when it opens the file.
    pub housekeeping: Option<rusqlite::Error>,
}

/// The indices of `defects` in `(source, id)` order, input order among
/// equal keys. Sorted as small entries — the source's rank, the id's first
/// eight bytes, the index — so most comparisons never leave the entry; only
/// ids sharing the prefix are compared in full.
fn key_order(defects: &[DefectEvent]) -> Vec<u32> {
    let distinct: HashSet<&str> = defects.iter().map(|d| d.source.as_str()).collect();
    let mut sources: Vec<&str> = distinct.into_iter().collect();
    sources.sort_unstable();
    let rank = |s: &str| sources.binary_search(&s).unwrap_or(0) as u32;
    let prefix = |id: &str| {
        let mut b = [0u8; 8];
        let n = id.len().min(8);
        b[..n].copy_from_slice(&id.as_bytes()[..n]);
        u64::from_be_bytes(b)
    };
    let mut entries: Vec<(u32, u64, u32)> = defects
        .iter()
        .enumerate()
        .map(|(i, d)| (rank(&d.source), prefix(&d.id), i as u32))
        .collect();
    entries.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| defects[a.2 as usize].id.cmp(&defects[b.2 as usize].id))
            .then(a.2.cmp(&b.2))
    });
    entries.into_iter().map(|e| e.2).collect()
}

fn count(outcome: &mut Outcome, effect: Effect) {
    match effect {
        Effect::Accepted => outcome.accepted += 1,
        Effect::Unchanged => outcome.unchanged += 1,
        Effect::Stale => outcome.stale += 1,
        Effect::Ignored => outcome.ignored += 1,
    }
}
