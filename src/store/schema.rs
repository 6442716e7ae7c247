//! Connection set-up and numbered migrations (`PRAGMA user_version`), each step
//! applied with its version bump in one transaction.

use rusqlite::Connection;

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
];

/// Opens the database file with the exporter's pragmas: WAL, and
/// `synchronous=FULL` so a commit is on disk before a 2xx is sent.
pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: in WAL mode, NORMAL can lose the last commits on power loss; our
    // contract is that a 2xx means durable. Group commit amortises the fsync.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&conn)?;
    Ok(conn)
}

/// Applies the migrations the database has not seen yet.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
