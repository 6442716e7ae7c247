//! The store side of the `import` sub-command: the database opened as `serve`
//! opens it (migrations, re-keying), under the database lock, and every
//! imported item applied by the writer's own rules (`rules::decide`) in
//! **one transaction**: an import that fails or is interrupted leaves the
//! database as it was, and one that succeeds is on disk (`synchronous=FULL`).
//! The database stays in WAL mode throughout, as `serve` keeps it: readers
//! (`report`, `export`, the read API) see the last commit before the import
//! until it commits, and a killed import leaves only uncommitted WAL frames,
//! which every reader ignores. A failed one gives its WAL space back
//! ([`Importer::abandon`]).
//!
//! Bulk loading, not one write per event: each chunk of items is sorted by
//! defect key and folded in memory (all of a defect's events in the chunk,
//! against its stored row), then only the final rows are written, in key
//! order. While most defects are new to the database, a defect with one
//! upsert in the chunk is inserted unless its key is stored (one descent of
//! the `(source, id)` index), and only a stored one is read and folded; a
//! re-import reads first. When the import is large against what is stored,
//! the secondary indexes of `defects` are dropped inside the transaction and
//! built again (a sort) before it commits: readers meanwhile see them, as
//! the schema of the last commit.

use std::collections::HashSet;

use rusqlite::Connection;

use super::bulk::Inserter;
use super::defect::{self, InsertFirst, Row, RowRef, TEXT_COLUMNS};
use super::lock::{self, DbLock, ExclusiveOpenError};
use super::rules::{self, Decision, Effect, ReleaseKeys, ReleaseTimeRow, Upsert};
use super::writeback::WriteBehind;
use super::{Outcome, writer};
use crate::config::Config;
use crate::model::event::{
    Change, Classification, DefectEvent, Ingress, ProductRef, ReleaseEvent, Status,
};
use crate::model::item::Item;
use crate::model::time::Millis;

/// Page cache while importing (KiB, SQLite's negative `cache_size`): the
/// `(source, id)` index of a million random tracker ids is about 60 MiB; with
/// all of it cached, each insert dirties pages already in memory.
const IMPORT_CACHE_KIB: i64 = 256 * 1024;

/// Threads SQLite may use to sort an index being built.
const SORT_THREADS: i64 = 4;

/// Page cache while the dropped indexes are built (KiB; see [`Importer::commit`]).
const SORT_CACHE_KIB: i64 = 8 * 1024;

/// One line of an import, made ready on a parser thread by [`Stager`].
#[derive(Debug)]
pub enum Staged {
    /// An upsert, as the row it stores when nothing is stored for its defect
    /// (the common case of an import), built by moving the event's strings.
    Row(FreshRow),
    /// Any other defect event (boxed: rare, and large).
    Event(Box<DefectEvent>),
    /// A release time.
    Release(ReleaseEvent),
    /// Already applied by the importer (never made by [`Stager::stage`]).
    Taken,
}

impl Staged {
    /// The defect's `(source, id)` (`text`: its part's); empty for a
    /// release time.
    fn key<'a>(&'a self, text: &'a str) -> (&'a str, &'a str) {
        match self {
            Staged::Row(f) => f.key(text),
            Staged::Event(ev) => (&ev.source, &ev.id),
            Staged::Release(_) | Staged::Taken => ("", ""),
        }
    }
}

/// An upsert as the row `rules::decide` puts for it when nothing is stored
/// for its defect, packed: its text in one allocation, so the importer reads
/// each row from one place (rows are visited in key order, at random in
/// memory) and frees one block per row. Times the event left out are set to
/// the time received by `FreshRow::view`; `FreshRow::into_event` gives the
/// event back whole, for a defect that has a stored row or several events.
#[derive(Debug)]
pub struct FreshRow {
    /// Where its text starts in its part's text.
    start: u32,
    /// Where each text column ends in its part's text.
    ends: [u32; TEXT_COLUMNS],
    /// Bit `i`: text column `i` is NULL.
    nulls: u16,
    found_at: Millis,
    updated_at: Millis,
    keep_release: bool,
    /// The event carried `found_at` (else it is the time received).
    has_found_at: bool,
    /// The event carried `updated_at` (else it is the time received).
    has_updated_at: bool,
}

impl FreshRow {
    /// The row of an upsert; any other event back as it was.
    /// Its text is appended to `text` (its part's).
    fn of(
        config: &Config,
        ev: DefectEvent,
        keys: &mut ReleaseKeys,
        text: &mut String,
    ) -> Result<Self, Box<DefectEvent>> {
        let (class, status, found_at, keep_release) = match &ev.change {
            Change::Upsert {
                class,
                status,
                found_at,
            } => (class, *status, *found_at, false),
            Change::UpsertKeepRelease {
                class,
                status,
                found_at,
            } => (class, *status, *found_at, true),
            _ => return Err(Box::new(ev)),
        };
        let updated_at = ev.updated_at;
        let row = rules::upsert_view(
            config,
            &Upsert {
                source: &ev.source,
                id: &ev.id,
                product: &ev.product,
                class,
                release: class.release.as_deref(),
                status,
                found_at: found_at.unwrap_or_default(),
                updated_at: updated_at.unwrap_or_default(),
            },
            keys,
        );
        let columns = row.texts();
        let len: usize = columns.iter().flatten().map(|c| c.len()).sum();
        let Ok(_) = u32::try_from(text.len() + len) else {
            // Not packable (a part of over 4 GiB of text): folded as an event.
            return Err(Box::new(ev));
        };
        let start = text.len() as u32;
        let mut ends = [0; TEXT_COLUMNS];
        let mut nulls = 0;
        for (i, c) in columns.iter().enumerate() {
            match c {
                Some(c) => text.push_str(c),
                None => nulls |= 1 << i,
            }
            ends[i] = text.len() as u32;
        }
        Ok(Self {
            start,
            ends,
            nulls,
            found_at: row.found_at,
            updated_at: row.updated_at,
            keep_release,
            has_found_at: found_at.is_some(),
            has_updated_at: updated_at.is_some(),
        })
    }

    /// Text column `i` (`text`: its part's).
    fn text<'a>(&self, text: &'a str, i: usize) -> &'a str {
        let start = if i == 0 { self.start } else { self.ends[i - 1] };
        text.get(start as usize..self.ends[i] as usize)
            .unwrap_or_default()
    }

    /// Optional text column `i`.
    fn optional<'a>(&self, text: &'a str, i: usize) -> Option<&'a str> {
        (self.nulls & (1 << i) == 0).then(|| self.text(text, i))
    }

    /// The defect's `(source, id)`.
    fn key<'a>(&self, text: &'a str) -> (&'a str, &'a str) {
        (self.text(text, 0), self.text(text, 1))
    }

    /// The row stored for the event received at `received_at`.
    fn view<'a>(&self, text: &'a str, received_at: Millis) -> RowRef<'a> {
        RowRef {
            source: self.text(text, 0),
            id: self.text(text, 1),
            product_kind: self.text(text, 2),
            product_ns: self.text(text, 3),
            product: self.text(text, 4),
            release_raw: self.optional(text, 5),
            release: self.optional(text, 6),
            stage: self.optional(text, 7),
            detected_by: self.optional(text, 8),
            cause: self.optional(text, 9),
            severity: self.optional(text, 10),
            team: self.optional(text, 11),
            status: self.text(text, 12),
            deleted: false,
            found_at: if self.has_found_at {
                self.found_at
            } else {
                received_at
            },
            updated_at: if self.has_updated_at {
                self.updated_at
            } else {
                received_at
            },
        }
    }

    /// Whether it says exactly what `stored` holds, so that the rules leave
    /// the row as it is and count the event unchanged: a re-import of an
    /// export, without turning the row back into an event. Only when the
    /// event carried both times and needs nothing of the stored row (a
    /// release-keeping upsert without a release takes the stored one);
    /// anything else goes through the rules.
    fn restates(&self, text: &str, stored: &Row, received_at: Millis) -> bool {
        if !(self.has_found_at && self.has_updated_at) {
            return false;
        }
        let row = self.view(text, received_at);
        !(self.keep_release && row.release_raw.is_none()) && row == stored.borrowed()
    }

    /// The event it was made from.
    fn into_event(self, text: &str) -> DefectEvent {
        let row = self.view(text, 0).to_row();
        let found_at = self.has_found_at.then_some(self.found_at);
        let updated_at = self.has_updated_at.then_some(self.updated_at);
        FreshRow::unpacked(row, self.keep_release, found_at, updated_at)
    }

    /// The upsert `row` was made from by [`rules::upsert_view`].
    fn unpacked(
        row: Row,
        keep_release: bool,
        found_at: Option<Millis>,
        updated_at: Option<Millis>,
    ) -> DefectEvent {
        let class = Classification {
            stage: row.stage,
            release: row.release_raw,
            detected_by: row.detected_by,
            cause: row.cause,
            severity: row.severity,
            team: row.team,
        };
        let status = Status::parse(&row.status).unwrap_or(Status::Valid);
        DefectEvent {
            source: row.source,
            id: row.id,
            product: ProductRef {
                kind: row.product_kind,
                namespace: row.product_ns,
            },
            change: if keep_release {
                Change::UpsertKeepRelease {
                    class,
                    status,
                    found_at,
                }
            } else {
                Change::Upsert {
                    class,
                    status,
                    found_at,
                }
            },
            updated_at,
        }
    }
}

/// What the rules need to fold a chunk.
struct Folder {
    config: Config,
    keys: ReleaseKeys,
    /// Whether a defect with one upsert in the chunk is inserted before
    /// anything is read (unless its key is stored): while most are new to
    /// the database. Otherwise (a re-import) its stored row is read first.
    first: InsertFirst,
}

impl Folder {
    /// Applies one defect's events (`group`, in input order) to its stored
    /// row: what to write. The common case — one upsert of a defect not
    /// stored — is written as staged: with [`Folder::first`] on,
    /// `inserter` inserts the row unless its key is stored, so a defect new
    /// to the database costs one descent of the `(source, id)` index, not a
    /// lookup and then an insert.
    fn settle(
        &mut self,
        conn: &Connection,
        inserter: &mut Inserter<'_>,
        parts: &mut [Part],
        group: &[(usize, usize)],
        received_at: Millis,
        outcome: &mut Outcome,
    ) -> rusqlite::Result<Settled> {
        let (p, i) = group[0];
        let text = &parts[p].text;
        let (source, id) = parts[p].items[i].key(text);
        let stored = match (group, &parts[p].items[i]) {
            ([_], Staged::Row(fresh)) => {
                let looked_up = if self.first.on {
                    None
                } else {
                    Row::get(conn, source, id)?
                };
                if looked_up.is_none() && inserter.insert(fresh.view(text, received_at))? {
                    self.first.counted(false);
                    count(outcome, Effect::Accepted);
                    return Ok(Settled::Same);
                }
                self.first.counted(true);
                let stored = match looked_up {
                    Some(row) => Some(row),
                    None => Row::get(conn, source, id)?,
                };
                if let Some(s) = &stored {
                    if fresh.restates(text, s, received_at) {
                        count(outcome, Effect::Unchanged);
                        return Ok(Settled::Same);
                    }
                }
                stored
            }
            _ => Row::get(conn, source, id)?,
        };
        let events: Vec<DefectEvent> = group
            .iter()
            .filter_map(
                |&(p, i)| match std::mem::replace(&mut parts[p].items[i], Staged::Taken) {
                    Staged::Row(fresh) => Some(fresh.into_event(&parts[p].text)),
                    Staged::Event(ev) => Some(*ev),
                    Staged::Release(_) | Staged::Taken => None,
                },
            )
            .collect();
        Ok(self.fold(&events, stored, received_at, outcome))
    }

    /// Applies one defect's events (in order) to its stored row: what to
    /// write.
    fn fold(
        &mut self,
        events: &[DefectEvent],
        stored: Option<Row>,
        received_at: Millis,
        outcome: &mut Outcome,
    ) -> Settled {
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
            (None, _) => Settled::Same,
            (Some(row), Some(s)) if row == *s => Settled::Same,
            (Some(row), Some(_)) => Settled::Changed(Box::new(row)),
            (Some(row), None) => Settled::New(Box::new(row)),
        }
    }
}

/// What one defect's events in a chunk write.
enum Settled {
    /// Nothing more: the stored row stands, or the staged row was inserted.
    Same,
    /// A new row folded from several events.
    New(Box<Row>),
    /// A stored row changed.
    Changed(Box<Row>),
}

/// Staged lines of one piece of the input, in input order, with the text
/// of their packed rows (one allocation per piece, not one per row).
#[derive(Debug, Default)]
pub struct Part {
    text: String,
    items: Vec<Staged>,
}

impl Part {
    /// How many lines it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Keeps the first `at` lines and gives the others as a new part (with a
    /// copy of the text).
    pub fn split_off(&mut self, at: usize) -> Part {
        Part {
            text: self.text.clone(),
            items: self.items.split_off(at),
        }
    }
}

/// Stages parsed items for the importer on a parser thread, into a
/// [`Part`] (one per thread: it remembers release keys).
#[derive(Default)]
pub struct Stager {
    keys: ReleaseKeys,
    part: Part,
}

impl Stager {
    /// Adds `item`, made ready for [`Importer::apply`], to the part.
    pub fn stage(&mut self, config: &Config, item: Item) {
        let staged = match item {
            Item::Release(ev) => Staged::Release(ev),
            Item::Defect(ev) => {
                match FreshRow::of(config, ev, &mut self.keys, &mut self.part.text) {
                    Ok(fresh) => Staged::Row(fresh),
                    Err(ev) => Staged::Event(ev),
                }
            }
        };
        self.part.items.push(staged);
    }

    /// Makes room for `lines` more items and `bytes` more text.
    pub fn reserve(&mut self, lines: usize, bytes: usize) {
        self.part.items.reserve(lines);
        self.part.text.reserve(bytes);
    }

    /// The part staged so far; the next one starts empty.
    pub fn take(&mut self) -> Part {
        std::mem::take(&mut self.part)
    }
}

/// An open database taking an import, inside its transaction.
pub struct Importer {
    conn: Connection,
    folder: Folder,
    /// The secondary indexes of `defects` dropped for the import (their
    /// `CREATE INDEX` statements), built again by [`Importer::commit`];
    /// `None` until the first chunk decides.
    dropped: Option<Vec<String>>,
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
            // Helper threads for the sorts of `CREATE INDEX`.
            conn.pragma_update(None, "threads", SORT_THREADS)?;
            // Whatever is committed goes into the database file first (a new
            // file's migrations, a crashed writer's last commits), so the WAL
            // holds nothing but this import: if it fails, rolling back and
            // truncating the WAL gives all its space back, with no page to
            // copy into a database file a full disk could not grow.
            checkpoint_truncate(&conn);
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let empty = conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM defects)", [], |r| {
                r.get(0)
            })?;
            Ok((conn, empty))
        })?;
        Ok(Self {
            conn,
            folder: Folder {
                config: config.clone(),
                keys: ReleaseKeys::default(),
                first: InsertFirst::starting(empty),
            },
            dropped: None,
            stored_at: None,
            _lock: lock,
        })
    }

    /// Applies one chunk of the input (`parts`, in input order, as the
    /// parser threads staged it) as the writer would apply it as
    /// `POST /api/v1/events` batches received at `received_at`; nothing is
    /// committed before [`Importer::commit`].
    pub fn apply(
        &mut self,
        mut parts: Vec<Part>,
        received_at: Millis,
    ) -> rusqlite::Result<Outcome> {
        let mut outcome = Outcome::default();
        // Release times are independent of defects: applied in input order.
        let mut defects = 0;
        for staged in parts.iter().flat_map(|p| &p.items) {
            match staged {
                Staged::Release(ev) => {
                    let effect = match ReleaseTimeRow::of(&self.folder.config, ev) {
                        None => Effect::Stale,
                        Some(row) if row.upsert(&self.conn)? => Effect::Accepted,
                        Some(_) => Effect::Unchanged,
                    };
                    count(&mut outcome, effect);
                }
                Staged::Row(_) | Staged::Event(_) => defects += 1,
                Staged::Taken => {}
            }
        }
        if self.dropped.is_none() {
            self.dropped = Some(self.drop_indexes_if_large(defects)?);
        }
        // Only the order of one defect's events matters: a stable sort by key
        // keeps it, groups each defect's events, and writes the new rows in
        // key order (the `(source, id)` index is walked, not hit at random).
        // Each row is written as soon as it is settled, while its text is
        // still in the processor's cache.
        let order = key_order(&parts);
        let mut inserter = Inserter::new(&self.conn, defect::INSERT_NEW)?;
        let mut start = 0;
        while start < order.len() {
            // Key order visits the chunk at random: the slots and text of
            // the defects a few steps ahead are fetched into the cache while
            // this one is written.
            if let Some(&(p, i)) = order.get(start + 2 * PREFETCH_AHEAD) {
                prefetch(&parts[p].items[i]);
            }
            if let Some(&(p, i)) = order.get(start + PREFETCH_AHEAD) {
                if let Staged::Row(fresh) = &parts[p].items[i] {
                    let text = parts[p].text.as_bytes();
                    for at in
                        (fresh.start as usize..fresh.ends[TEXT_COLUMNS - 1] as usize).step_by(64)
                    {
                        if let Some(b) = text.get(at) {
                            prefetch(b);
                        }
                    }
                }
            }
            let key_at = |(p, i): (usize, usize)| parts[p].items[i].key(&parts[p].text);
            let key = key_at(order[start]);
            let mut end = start + 1;
            while end < order.len() && key_at(order[end]) == key {
                end += 1;
            }
            let group = &order[start..end];
            match self.folder.settle(
                &self.conn,
                &mut inserter,
                &mut parts,
                group,
                received_at,
                &mut outcome,
            )? {
                Settled::Same => {}
                // Looked up and not stored: inserted, or it is an error.
                Settled::New(row) => {
                    if !inserter.insert(row.borrowed())? {
                        return Err(rusqlite::Error::StatementChangedRows(0));
                    }
                }
                Settled::Changed(row) => row.put(&self.conn)?,
            }
            start = end;
        }
        // Insert first in the next chunk if most of this one's lone
        // upserts were new to the database.
        self.folder.first.adapt();
        if outcome.accepted + outcome.unchanged > 0 {
            self.stored_at = Some(received_at);
        }
        Ok(outcome)
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
    /// folds the WAL back into the database. A failure abandons the import
    /// ([`Importer::abandon`]): the database is as it was, the space given back.
    pub fn commit(mut self) -> Result<Committed, Abandoned> {
        let started = std::time::Instant::now();
        if let Err(error) = self.finish() {
            return Err(Abandoned {
                error,
                release: self.abandon(),
            });
        }
        let indexed = started.elapsed();
        // Committed: what follows is housekeeping, which `serve` also does
        // when it opens the database: the WAL folded back into the database.
        let tidied = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        tracing::debug!(
            checkpoint_ms = (started.elapsed() - indexed).as_millis() as u64,
            "import: checkpointed"
        );
        let closed = self.conn.close().map_err(|(_, e)| e);
        Ok(Committed {
            housekeeping: tidied.and(closed).err(),
        })
    }

    /// The dropped indexes built again, the activity recorded, the
    /// transaction committed.
    fn finish(&mut self) -> rusqlite::Result<()> {
        // A small cache makes the index sorter work in several runs, sorted by
        // its helper threads at once, instead of one run on this thread.
        self.conn
            .pragma_update(None, "cache_size", -SORT_CACHE_KIB)?;
        let started = std::time::Instant::now();
        // The table's pages leave the cache while the indexes are sorted:
        // their write to disk starts then, not at the commit's fsync.
        let behind = WriteBehind::start(&self.folder.config.db);
        for sql in self.dropped.iter().flatten() {
            self.conn.execute_batch(sql)?;
        }
        let indexed = started.elapsed();
        if let Some(at) = self.stored_at {
            writer::record_source_activity(&self.conn, Ingress::Generic, at)?;
        }
        self.conn.execute_batch("COMMIT")?;
        drop(behind);
        tracing::debug!(
            index_ms = indexed.as_millis() as u64,
            commit_ms = (started.elapsed() - indexed).as_millis() as u64,
            "import: committed"
        );
        Ok(())
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

/// How many defects ahead of the one being written [`Importer::apply`]
/// fetches the text of (and twice as far, its slot).
const PREFETCH_AHEAD: usize = 8;

/// Asks the processor to start loading the cache line of `p`: a hint, with
/// no effect on what is computed (none at all where there is no such
/// instruction).
#[inline(always)]
fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and never faults;
    // `p` is a valid reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (p as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Where each defect event of `parts` is (part, index), in `(source, id)`
/// order, input order among equal keys. Sorted as small entries — the
/// source's rank, the id's first eight bytes, the place — so most
/// comparisons never leave the entry; only ids sharing the prefix are
/// compared in full.
fn key_order(parts: &[Part]) -> Vec<(usize, usize)> {
    let keyed = || {
        parts.iter().enumerate().flat_map(|(p, part)| {
            part.items
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, Staged::Row(_) | Staged::Event(_)))
                .map(move |(i, s)| (p, i, s.key(&part.text)))
        })
    };
    let distinct: HashSet<&str> = keyed().map(|(_, _, (source, _))| source).collect();
    let mut sources: Vec<&str> = distinct.into_iter().collect();
    sources.sort_unstable();
    let rank = |s: &str| sources.binary_search(&s).unwrap_or(0) as u32;
    let prefix = |id: &str| {
        let mut b = [0u8; 8];
        let n = id.len().min(8);
        b[..n].copy_from_slice(&id.as_bytes()[..n]);
        u64::from_be_bytes(b)
    };
    let mut entries: Vec<(u32, u64, u32, u32)> = keyed()
        .map(|(p, i, (source, id))| (rank(source), prefix(id), p as u32, i as u32))
        .collect();
    let id = |e: &(u32, u64, u32, u32)| {
        let part = &parts[e.2 as usize];
        part.items[e.3 as usize].key(&part.text).1
    };
    entries.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| id(a).cmp(id(b)))
            .then((a.2, a.3).cmp(&(b.2, b.3)))
    });
    entries
        .into_iter()
        .map(|e| (e.2 as usize, e.3 as usize))
        .collect()
}

fn count(outcome: &mut Outcome, effect: Effect) {
    match effect {
        Effect::Accepted => outcome.accepted += 1,
        Effect::Unchanged => outcome.unchanged += 1,
        Effect::Stale => outcome.stale += 1,
        Effect::Ignored => outcome.ignored += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::model::event::Classification;

    fn upsert(found_at: Option<Millis>, updated_at: Option<Millis>, keep: bool) -> DefectEvent {
        let class = Classification {
            stage: Some("production".into()),
            release: Some("v1.2.0".into()),
            detected_by: None,
            cause: Some("coverage".into()),
            severity: None,
            team: Some("ünïcode".into()),
        };
        let status = Status::Duplicate;
        DefectEvent {
            source: "tracker".into(),
            id: "PROJ-1".into(),
            product: ProductRef {
                kind: String::new(),
                namespace: "payments".into(),
            },
            change: if keep {
                Change::UpsertKeepRelease {
                    class,
                    status,
                    found_at,
                }
            } else {
                Change::Upsert {
                    class,
                    status,
                    found_at,
                }
            },
            updated_at,
        }
    }

    /// A staged upsert is the row the writer's rules put for it when nothing
    /// is stored, and gives back the event it was made from.
    #[test]
    fn a_packed_row_is_the_rules_row_and_the_event() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let received = 1_800_000_000_000;
        for (found, updated, keep) in [
            (Some(1_700_000_000_000), Some(1_700_000_100_000), false),
            (None, Some(1_700_000_100_000), true),
            (Some(1_700_000_000_000), None, false),
            (None, None, true),
        ] {
            let ev = upsert(found, updated, keep);
            let Decision::Put(expected) =
                rules::decide(&config, &ev, None, received, &mut ReleaseKeys::default())
            else {
                panic!("an upsert of a new defect is put");
            };
            let mut stager = Stager::default();
            // A row after another in the same part.
            stager.stage(&config, Item::Defect(upsert(None, None, false)));
            stager.stage(&config, Item::Defect(ev.clone()));
            let Part { text, mut items } = stager.take();
            let Staged::Row(fresh) = items.remove(1) else {
                panic!("an upsert is staged as a row");
            };
            assert_eq!(fresh.view(&text, received).to_row(), expected);
            assert_eq!(fresh.key(&text), ("tracker", "PROJ-1"));
            assert_eq!(fresh.into_event(&text), ev);
        }
    }

    /// A staged row that restates its stored row is one the rules leave as
    /// it is and count unchanged; it is taken for exactly that case.
    #[test]
    fn a_restated_row_is_what_the_rules_leave_unchanged() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let (earlier, received) = (1_700_000_500_000, 1_800_000_000_000);
        for found in [Some(1_700_000_000_000), None] {
            for updated in [Some(1_700_000_100_000), None] {
                for keep in [false, true] {
                    for release in [Some("v1.2.0"), None] {
                        let mut ev = upsert(found, updated, keep);
                        if let Change::Upsert { class, .. }
                        | Change::UpsertKeepRelease { class, .. } = &mut ev.change
                        {
                            class.release = release.map(str::to_owned);
                        }
                        let mut keys = ReleaseKeys::default();
                        let Decision::Put(row) =
                            rules::decide(&config, &ev, None, earlier, &mut keys)
                        else {
                            panic!("an upsert of a new defect is put");
                        };
                        let changed = [
                            Row {
                                updated_at: row.updated_at - 1,
                                ..row.clone()
                            },
                            Row {
                                deleted: true,
                                ..row.clone()
                            },
                            Row {
                                stage: None,
                                ..row.clone()
                            },
                            Row {
                                release_raw: Some("v9".into()),
                                release: Some("9".into()),
                                ..row.clone()
                            },
                        ];
                        for (n, stored) in std::iter::once(row.clone()).chain(changed).enumerate() {
                            let mut stager = Stager::default();
                            stager.stage(&config, Item::Defect(ev.clone()));
                            let Part { text, mut items } = stager.take();
                            let Some(Staged::Row(fresh)) = items.pop() else {
                                panic!("an upsert is staged as a row");
                            };
                            let restates = fresh.restates(&text, &stored, received);
                            let decision =
                                rules::decide(&config, &ev, Some(&stored), received, &mut keys);
                            if restates {
                                let left = match decision {
                                    Decision::Unchanged { touch: None } => true,
                                    Decision::Unchanged { touch: Some(t) } => {
                                        t == stored.updated_at
                                    }
                                    _ => false,
                                };
                                assert!(left, "{n} {found:?} {updated:?} {keep} {release:?}");
                            }
                            let applies = n == 0
                                && found.is_some()
                                && updated.is_some()
                                && !(keep && release.is_none());
                            assert_eq!(
                                restates, applies,
                                "{n} {found:?} {updated:?} {keep} {release:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Anything but an upsert stays an event.
    #[test]
    fn other_events_stay_events() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let ev = DefectEvent {
            change: Change::Delete,
            ..upsert(None, None, false)
        };
        let mut stager = Stager::default();
        stager.stage(&config, Item::Defect(ev.clone()));
        match stager.take().items.pop() {
            Some(Staged::Event(staged)) => assert_eq!(*staged, ev),
            other => panic!("{other:?}"),
        }
    }
}
