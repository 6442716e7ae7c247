//! `backup`: a consistent copy of a live database, made beside a running
//! `serve` without its lock.
//!
//! The copy is SQLite's `VACUUM INTO` on a read-only WAL connection
//! ([`super::read::open`]): one read transaction, so the copy is the last
//! commit before it began, whatever the writer commits meanwhile (WAL lets
//! both run; the writer never waits for it). Chosen over the online backup
//! API because it needs a read-only connection only (the backup API writes
//! a destination connection page by page and, stepped, restarts whenever
//! the source changes), needs no extra rusqlite feature, and writes a
//! compact file (no free pages). The copy is written to a temporary file
//! beside `out`, checked (`integrity_check`, schema version), synced, and
//! renamed onto `out`: `out` is either the old file or a whole checked copy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::schema::{Integrity, SCHEMA_VERSION, integrity};

/// What a backup wrote.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// Defect rows in the copy (deleted ones included).
    pub defects: u64,
    /// Milliseconds from the start to the rename.
    pub millis: u128,
}

/// Copies `db` to `out`. An existing `out` is refused unless `replace`;
/// a `-wal`, `-shm` or `-journal` file beside `out` always is (SQLite would
/// apply it to the copy).
pub fn backup(db: &Path, out: &Path, replace: bool) -> anyhow::Result<Copied> {
    let started = Instant::now();
    check_target(db, out, replace)?;
    let conn = super::read::open(db)?;
    let tmp = temporary(out);
    let _ = std::fs::remove_file(&tmp);
    let done = copy(&conn, db, &tmp).and_then(|defects| {
        let bytes = finish(&tmp, out)?;
        Ok(Copied {
            bytes,
            defects,
            millis: started.elapsed().as_millis(),
        })
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Refuses a target that is the database itself, exists (without
/// `replace`), is not a file, or has a journal beside it.
fn check_target(db: &Path, out: &Path, replace: bool) -> anyhow::Result<()> {
    let shown = out.display();
    if let (Ok(a), Ok(b)) = (db.canonicalize(), out.canonicalize()) {
        if a == b {
            anyhow::bail!("{shown} is the database itself: give another file to copy it to");
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        if !meta.is_file() {
            anyhow::bail!("{shown} exists and is not a regular file: refusing to replace it");
        }
        if !replace {
            anyhow::bail!("{shown} exists: refusing to overwrite it (pass --force to replace it)");
        }
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let side = beside(out, suffix);
        if side.exists() {
            anyhow::bail!(
                "{} exists beside {shown}: SQLite would apply it to the copy. If it is left \
                 from an old database, delete it (and the other -wal/-shm files) first",
                side.display()
            );
        }
    }
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => {
            anyhow::bail!("directory {} does not exist", dir.display())
        }
        _ => Ok(()),
    }
}

/// `VACUUM INTO` `tmp`, then checks the copy; returns its defect rows. The
/// copy keeps the database's damage (`VACUUM INTO` copies index trees as
/// they are), so a broken restore fails here: `backup` is also how a
/// restore is checked (docs/operations.md).
fn copy(conn: &rusqlite::Connection, db: &Path, tmp: &Path) -> anyhow::Result<u64> {
    let target = tmp.to_str().ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not valid UTF-8: SQLite cannot name it",
            tmp.display()
        )
    })?;
    conn.execute("VACUUM INTO ?1", [target])
        .map_err(|e| anyhow::anyhow!("cannot copy {} to {}: {e}", db.display(), tmp.display()))?;
    match integrity(tmp) {
        Integrity::Intact => {}
        Integrity::Corrupt(lines) => anyhow::bail!(
            "the copy {} fails integrity_check: {}",
            tmp.display(),
            lines.join("; ")
        ),
        Integrity::Unreadable(why) => {
            anyhow::bail!("cannot check the copy {}: {why}", tmp.display())
        }
    }
    let copy =
        rusqlite::Connection::open_with_flags(tmp, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let version: usize = copy.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        anyhow::bail!("the copy has schema version {version}, expected {SCHEMA_VERSION}");
    }
    let defects: i64 = copy.query_row("SELECT COUNT(*) FROM defects", [], |r| r.get(0))?;
    Ok(u64::try_from(defects).unwrap_or(0))
}

/// Syncs `tmp`, renames it onto `out` and syncs the directory; returns the size.
fn finish(tmp: &Path, out: &Path) -> anyhow::Result<u64> {
    let file = std::fs::File::open(tmp)
        .map_err(|e| anyhow::anyhow!("cannot open the copy {}: {e}", tmp.display()))?;
    file.sync_all()
        .map_err(|e| anyhow::anyhow!("cannot sync the copy {}: {e}", tmp.display()))?;
    let bytes = file.metadata()?.len();
    std::fs::rename(tmp, out)
        .map_err(|e| anyhow::anyhow!("cannot rename the copy onto {}: {e}", out.display()))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

/// The temporary file beside `out` the copy is written to.
fn temporary(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    name.into()
}

/// `path` with `suffix` appended to its name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// A database whose index lacks the rows inserted while SQLite did not
    /// know of it: what a broken restore looks like (`row N missing from
    /// index`), with every table row intact.
    fn with_index_entries_missing(db: &Path) {
        let conn = Connection::open(db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); CREATE INDEX t_x ON t(x);
             INSERT INTO t VALUES (1), (2);",
        )
        .unwrap();
        let entry: (String, i64, String) = conn
            .query_row(
                "SELECT tbl_name, rootpage, sql FROM sqlite_schema WHERE name = 't_x'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        conn.execute_batch(
            "PRAGMA writable_schema=ON; DELETE FROM sqlite_schema WHERE name = 't_x';",
        )
        .unwrap();
        drop(conn);
        let conn = Connection::open(db).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (3), (4);")
            .unwrap();
        // The version `read::open` asks for: the check comes before the copy.
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .unwrap();
        conn.execute_batch("PRAGMA writable_schema=ON;").unwrap();
        conn.execute(
            "INSERT INTO sqlite_schema VALUES ('index', 't_x', ?1, ?2, ?3)",
            rusqlite::params![entry.0, entry.1, entry.2],
        )
        .unwrap();
    }

    #[test]
    fn a_database_with_index_entries_missing_is_refused_as_a_broken_restore() {
        let dir = tempfile::tempdir().unwrap();
        let (db, out) = (dir.path().join("restored.db"), dir.path().join("copy.db"));
        with_index_entries_missing(&db);
        assert!(
            matches!(integrity(&db), Integrity::Corrupt(ref l) if l.iter().any(|l| l.contains("missing from index"))),
            "{:?}",
            integrity(&db)
        );
        let err = backup(&db, &out, false).unwrap_err().to_string();
        assert!(err.contains("fails integrity_check"), "{err}");
        assert!(err.contains("missing from index"), "{err}");
        assert!(!out.exists());
        assert!(!temporary(&out).exists());
    }
}
