//! Connection set-up and numbered migrations (`PRAGMA user_version`), each step
//! applied with its version bump in one transaction.

use std::path::Path;

use rusqlite::Connection;

/// WAL pages after which a commit checkpoints (SQLite's default is 1,000):
/// 8 MiB of 4 KiB pages. Low enough that, on a volume filling up, the WAL
/// holds little the main file has not taken yet (a full disk heals as soon
/// as that much space is freed: see `docs/runbook.md`); high enough that a
/// page changed by many groups in a row is written back once, not per group.
/// Measured with `scripts/ingest.py` in `docs/benchmarks.md`.
pub const WAL_AUTOCHECKPOINT: i64 = 2_048;

/// WAL pages after which a commit checkpoints (PASSIVE) with `checkpoint =
/// "external"`: above Litestream's own thresholds (a PASSIVE checkpoint at
/// 1,000 pages, a RESTART at 10,000), so while it runs it checkpoints first
/// and the writer never races it; without it, the WAL still stays bounded
/// (64 MiB of 4 KiB pages). See `docs/operations.md`.
pub const EXTERNAL_AUTOCHECKPOINT: i64 = 16_384;

/// The WAL file is truncated back to this size when a checkpoint has copied
/// it all (bytes): one checkpoint's worth, so a burst's large groups do not
/// keep their high-water mark on the volume.
pub const JOURNAL_SIZE_LIMIT: i64 = WAL_AUTOCHECKPOINT * 4096;

/// Migration steps; step `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: defects with raw source values and derived keys, release times, delivery
    //    ids, per-source bookkeeping, settings the store was keyed with.
    r#"
    CREATE TABLE defects (
        source       TEXT NOT NULL,
        id           TEXT NOT NULL,
        product_kind TEXT NOT NULL,
        product_ns   TEXT NOT NULL,
        product      TEXT NOT NULL,
        release_raw  TEXT,
        release      TEXT,
        stage        TEXT,
        detected_by  TEXT,
        cause        TEXT,
        severity     TEXT,
        team         TEXT,
        status       TEXT NOT NULL,
        deleted      INTEGER NOT NULL,
        found_at     INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        PRIMARY KEY (source, id)
    ) WITHOUT ROWID;
    CREATE INDEX defects_by_release ON defects (product, release, found_at);
    CREATE TABLE release_times (
        product_kind TEXT NOT NULL,
        product_ns   TEXT NOT NULL,
        release_raw  TEXT NOT NULL,
        product      TEXT NOT NULL,
        release      TEXT NOT NULL,
        prerelease   INTEGER NOT NULL,
        released_at  INTEGER NOT NULL,
        PRIMARY KEY (product_kind, product_ns, release_raw)
    ) WITHOUT ROWID;
    CREATE INDEX release_times_by_key ON release_times (product, release);
    CREATE TABLE deliveries (
        source      TEXT NOT NULL,
        delivery_id TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (source, delivery_id)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_by_age ON deliveries (received_at);
    CREATE TABLE sources (
        source        TEXT PRIMARY KEY,
        last_event_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 2: the hot queries (first found, a release's contributions) read only
    //    valid, undeleted defects: a partial index serves them and costs no
    //    write for tombstones and invalid defects. Release times keep their raw
    //    name even when the rules no longer give it a key (`release` NULL), so
    //    a reverted configuration restores them. `probe` holds the readiness
    //    probe's short-lived filler row.
    r#"
    DROP INDEX defects_by_release;
    CREATE INDEX defects_counted ON defects (product, release, found_at)
        WHERE deleted = 0 AND status = 'valid';
    CREATE TABLE release_times_v2 (
        product_kind TEXT NOT NULL,
        product_ns   TEXT NOT NULL,
        release_raw  TEXT NOT NULL,
        product      TEXT NOT NULL,
        release      TEXT,
        prerelease   INTEGER NOT NULL,
        released_at  INTEGER NOT NULL,
        PRIMARY KEY (product_kind, product_ns, release_raw)
    ) WITHOUT ROWID;
    INSERT INTO release_times_v2 SELECT * FROM release_times;
    DROP TABLE release_times;
    ALTER TABLE release_times_v2 RENAME TO release_times;
    CREATE INDEX release_times_by_key ON release_times (product, release);
    CREATE TABLE probe (
        id     INTEGER PRIMARY KEY,
        filler BLOB NOT NULL
    );
    "#,
    // 3: defects in a rowid table, rows appended in arrival order, found by a
    //    unique index on (source, id). Tracker ids arrive in no order: as the
    //    primary key of a WITHOUT ROWID table each insert dirtied a random
    //    page of whole rows; now only a page of the narrow index.
    r#"
    CREATE TABLE defects_v3 (
        source       TEXT NOT NULL,
        id           TEXT NOT NULL,
        product_kind TEXT NOT NULL,
        product_ns   TEXT NOT NULL,
        product      TEXT NOT NULL,
        release_raw  TEXT,
        release      TEXT,
        stage        TEXT,
        detected_by  TEXT,
        cause        TEXT,
        severity     TEXT,
        team         TEXT,
        status       TEXT NOT NULL,
        deleted      INTEGER NOT NULL,
        found_at     INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    INSERT INTO defects_v3 SELECT * FROM defects;
    DROP TABLE defects;
    ALTER TABLE defects_v3 RENAME TO defects;
    CREATE UNIQUE INDEX defects_by_key ON defects (source, id);
    CREATE INDEX defects_counted ON defects (product, release, found_at)
        WHERE deleted = 0 AND status = 'valid';
    "#,
    // 4: the index of counted defects carries the stage, so start-up ranks
    //    every release from the index alone and reads in full only the
    //    releases kept in memory.
    r#"
    DROP INDEX defects_counted;
    CREATE INDEX defects_counted ON defects (product, release, found_at, stage)
        WHERE deleted = 0 AND status = 'valid';
    "#,
    // 5: the index of counted defects holds every column a contribution
    //    depends on, so loading a cold release (the writer does it before an
    //    event changes one) reads the index alone, never the table.
    r#"
    DROP INDEX defects_counted;
    CREATE INDEX defects_counted
        ON defects (product, release, found_at, stage, detected_by, cause, severity)
        WHERE deleted = 0 AND status = 'valid';
    "#,
    // 6: where `sync` stands in each vendor listing it reads (a source's
    //    repository, project…: its `scope`), so a pass killed half-way
    //    resumes and the next one asks only for what changed. `done_until`
    //    is the vendor's own `updated_at` of the newest item the last
    //    completed listing applied (never our clock: no skew); `progress`
    //    the same mark for the pages committed by a listing still under way;
    //    `last_success_at` (our clock) when a listing, or for scope `*` a
    //    whole pass over the source, last completed.
    r#"
    CREATE TABLE sync_cursors (
        source          TEXT NOT NULL,
        scope           TEXT NOT NULL,
        name            TEXT NOT NULL,
        done_until      INTEGER,
        progress        INTEGER,
        last_success_at INTEGER,
        PRIMARY KEY (source, scope)
    ) WITHOUT ROWID;
    "#,
    // 7: links between records that are one defect (docs/semantics.md,
    //    "Linked records"): each record's own links, found from either end.
    //    A record folded into a group of two or more stored records
    //    (`folded = 1`) leaves the counted index; its group is counted once,
    //    by a row of source `''` (a name no source can write) whose id is the
    //    key of the group's least record and whose values are the group's.
    r#"
    ALTER TABLE defects ADD COLUMN folded INTEGER NOT NULL DEFAULT 0;
    DROP INDEX defects_counted;
    CREATE INDEX defects_counted
        ON defects (product, release, found_at, stage, detected_by, cause, severity)
        WHERE deleted = 0 AND status = 'valid' AND folded = 0;
    CREATE TABLE links (
        source    TEXT NOT NULL,
        id        TEXT NOT NULL,
        to_source TEXT NOT NULL,
        to_id     TEXT NOT NULL,
        PRIMARY KEY (source, id, to_source, to_id)
    ) WITHOUT ROWID;
    CREATE INDEX links_to ON links (to_source, to_id);
    "#,
    // 8: the records folded into link groups, by product, for
    //    `bug_escape_linked_records` at start (a few, in a small index).
    r#"
    CREATE INDEX defects_folded ON defects (product) WHERE folded = 1;
    "#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Why a database cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "database {path} has schema version {found}, newer than version {known} that this \
         binary knows: it was written by a newer bug-escape-exporter. Run that version (or \
         newer), or restore a backup made by this one"
    )]
    Newer {
        path: String,
        found: usize,
        known: usize,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// How long a connection waits for another's lock before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens the database file with the exporter's pragmas: WAL, and
/// `synchronous=FULL` so a commit is on disk before a 2xx is sent. Refuses a
/// schema newer than this binary's.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    configure(Connection::open(path)?, path)
}

/// Like [`open`], but never creates the file: for reopening a database the
/// process had open, which must not come back empty if it was deleted.
pub fn open_existing(path: &Path) -> Result<Connection, OpenError> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    configure(Connection::open_with_flags(path, flags)?, path)
}

/// The exporter's pragmas, then the migrations.
fn configure(conn: Connection, path: &Path) -> Result<Connection, OpenError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode, NORMAL can lose the last commits on power loss; our
    // contract is that a 2xx means durable. Group commit amortises the fsync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // After a checkpoint the WAL shrinks back to this, so one burst does not
    // keep its high-water mark until shutdown.
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    // A 32 MiB page cache (SQLite's default is 8 MiB): random defect ids touch
    // pages all over the table, and every miss is a read from the OS.
    // Measured: realistic batches 14.7k -> 22.7k events/s (scripts/ingest.py).
    conn.pragma_update(None, "cache_size", -32768)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Applies the migrations the database has not seen yet.
fn migrate(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::Newer {
            path: path.display().to_string(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// What `PRAGMA integrity_check` says of a database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// It says `ok`.
    Intact,
    /// Its first lines of findings, or the corruption error it stopped at.
    Corrupt(Vec<String>),
    /// The check could not run (the file cannot be opened or read: no space
    /// for its `-shm`, permissions, an I/O error): no verdict on the file.
    Unreadable(String),
}

/// Runs `PRAGMA integrity_check` on the file read-only. Only its findings
/// (or SQLite's own corruption codes) make a file corrupt; an error opening
/// or reading it is [`Integrity::Unreadable`].
pub fn integrity(path: &Path) -> Integrity {
    let conn = match Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(e) => return Integrity::Unreadable(e.to_string()),
    };
    let lines: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect());
    match lines {
        Ok(l) if l.len() == 1 && l[0] == "ok" => Integrity::Intact,
        Ok(l) => Integrity::Corrupt(l),
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            Integrity::Corrupt(vec![e.to_string()])
        }
        Err(e) => Integrity::Unreadable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_database_migrates_with_every_row_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v2.db");
        let conn = Connection::open(&path).expect("open");
        for (i, step) in MIGRATIONS[..2].iter().enumerate() {
            conn.execute_batch(step).expect("old migration");
            conn.pragma_update(None, "user_version", i + 1)
                .expect("version");
        }
        for i in 0..50 {
            conn.execute(
                "INSERT INTO defects VALUES ('generic', ?1, '', 'p', 'p', 'v1.0', '1.0', 'qa', \
                 NULL, NULL, NULL, NULL, 'valid', ?2, ?3, ?3)",
                rusqlite::params![format!("d{i}"), i % 7 == 0, i],
            )
            .expect("row");
        }
        drop(conn);
        let conn = open(&path).expect("migrates");
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let (n, deleted, sum): (i64, i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), SUM(deleted), SUM(found_at) FROM defects",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("count");
        assert_eq!((n, deleted, sum), (50, 8, (0..50).sum::<i64>()));
        // (source, id) is still unique.
        let dup = conn.execute(
            "INSERT INTO defects (source, id, product_kind, product_ns, product, status, deleted, \
             found_at, updated_at) VALUES ('generic', 'd3', '', 'p', 'p', 'valid', 0, 0, 0)",
            [],
        );
        assert!(dup.is_err());
        assert_eq!(integrity(&path), Integrity::Intact);
    }

    #[test]
    fn only_a_readable_file_with_findings_is_called_corrupt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-dir").join("x.db");
        assert!(matches!(integrity(&missing), Integrity::Unreadable(_)));
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5Au8; 8192]).expect("write");
        assert!(matches!(integrity(&garbage), Integrity::Corrupt(_)));
        // A page of a real database overwritten with junk: findings.
        let db = dir.path().join("db.db");
        let conn = open(&db).expect("open");
        conn.execute_batch(
            "CREATE TABLE t (x); INSERT INTO t SELECT zeroblob(2000) FROM \
             (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             SELECT i FROM n); PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .expect("fill");
        drop(conn);
        let mut bytes = std::fs::read(&db).expect("read");
        let last = bytes.len() - 4096;
        bytes[last..].fill(0xEE);
        std::fs::write(&db, bytes).expect("damage");
        assert!(matches!(integrity(&db), Integrity::Corrupt(_)));
    }
}
