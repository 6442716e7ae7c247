//! Read-only access beside the writer: `report` (while `serve` runs on the
//! same file) and `GET /api/v1/defects/…`. A connection opened here is
//! `SQLITE_OPEN_READ_ONLY`: it never migrates, re-keys or writes; WAL lets it
//! read while the writer commits.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::defect::Row;
use super::schema::SCHEMA_VERSION;
use crate::config::Config;
use crate::metrics::aggregate::Aggregates;
use crate::metrics::report::rfc3339;

/// Opens `path` read-only and checks it holds this version's schema.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let file = path.display();
    if !path.is_file() {
        anyhow::bail!("database {file} does not exist (or is not a file)");
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // With no `-wal` beside it, no process has the database open (`serve`
    // keeps its WAL while it runs) and every commit is in the main file. A
    // read-only connection would still create `-wal` and `-shm` files, owned
    // by whoever runs `report` and left behind (a later `serve` under another
    // user could not open them): read the quiescent file as immutable instead.
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let conn = if Path::new(&wal).exists() {
        Connection::open_with_flags(path, flags)
    } else {
        Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
    }
    .map_err(|e| anyhow::anyhow!("cannot open database {file} read-only: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| anyhow::anyhow!("cannot read database {file}: {e}"))?;
    if version != SCHEMA_VERSION {
        anyhow::bail!(
            "database {file} has schema version {version}, this binary reads version \
             {SCHEMA_VERSION}: run `serve` of this version on it once (it migrates), or \
             use the binary that wrote it"
        );
    }
    Ok(conn)
}

/// `path` for a `file:` URI: every byte but unreserved ones and `/`
/// percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The aggregates `serve` would load from `config.db` at start, read through a
/// read-only connection; the flag says whether the store was keyed with this
/// configuration's product mapping and release rules (if not, `serve` would
/// re-key first and the numbers may differ).
pub fn aggregates(config: &Config) -> anyhow::Result<(Aggregates, bool)> {
    let conn = open(&config.db)?;
    // One read transaction: the whole load sees one snapshot.
    conn.execute_batch("BEGIN")?;
    let keyed: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'keying'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let loaded = super::load::aggregates(&conn, config)?;
    conn.execute_batch("COMMIT")?;
    Ok((
        loaded,
        keyed.is_none_or(|k| k == config.keying_fingerprint()),
    ))
}

/// Where a stored defect came from, as the source named it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    /// `""` for the generic API, else the webhook source.
    pub kind: String,
    /// The product (generic API) or the source's namespace.
    pub namespace: String,
}

/// A stored defect as `GET /api/v1/defects/{source}/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredDefect {
    pub source: String,
    pub id: String,
    /// The product key it is counted under.
    pub product: String,
    pub origin: Origin,
    /// The release as sent.
    pub release_raw: Option<String>,
    /// The normalised release key it is counted under.
    pub release: Option<String>,
    pub stage: Option<String>,
    pub cause: Option<String>,
    pub severity: Option<String>,
    pub detected_by: Option<String>,
    pub team: Option<String>,
    pub status: String,
    pub deleted: bool,
    pub found_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<Row> for StoredDefect {
    fn from(r: Row) -> Self {
        Self {
            source: r.source,
            id: r.id,
            product: r.product,
            origin: Origin {
                kind: r.product_kind,
                namespace: r.product_ns,
            },
            release_raw: r.release_raw,
            release: r.release,
            stage: r.stage,
            cause: r.cause,
            severity: r.severity,
            detected_by: r.detected_by,
            team: r.team,
            status: r.status,
            deleted: r.deleted,
            found_at: rfc3339(r.found_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// The stored defect `(source, id)`, tombstones included.
pub fn defect(conn: &Connection, source: &str, id: &str) -> anyhow::Result<Option<StoredDefect>> {
    Ok(Row::get(conn, source, id)?.map(StoredDefect::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn a_missing_or_foreign_file_is_refused_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.db");
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(!path.exists());
        // An empty SQLite file has schema version 0: not migrated, not read.
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE x (a)")
            .unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 0"), "{err}");
    }

    #[test]
    fn reads_what_the_store_wrote_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_settings(Settings {
            db: dir.path().join("b.db"),
            ..Settings::default()
        })
        .unwrap();
        let conn = super::super::schema::open(&config.db).unwrap();
        conn.execute(
            "INSERT INTO defects VALUES ('generic', 'D-1', '', 'pay', 'pay', 'v1.0', '1.0', 'qa', \
             NULL, NULL, NULL, NULL, 'valid', 0, 1000, 2000)",
            [],
        )
        .unwrap();
        let ro = open(&config.db).unwrap();
        let d = defect(&ro, "generic", "D-1").unwrap().unwrap();
        assert_eq!(d.release.as_deref(), Some("1.0"));
        assert_eq!(d.release_raw.as_deref(), Some("v1.0"));
        assert_eq!(d.found_at.as_deref(), Some("1970-01-01T00:00:01Z"));
        assert!(defect(&ro, "generic", "D-2").unwrap().is_none());
        assert!(ro.execute("DELETE FROM defects", []).is_err());
        let (agg, _) = aggregates(&config).unwrap();
        assert_eq!(agg.products["pay"].releases["1.0"].total(), 1);
        drop(ro);
        drop(conn);
        // Closed by the writer: no `-wal` is left, and reading creates none.
        let wal = dir.path().join("b.db-wal");
        assert!(!wal.exists());
        let (agg, _) = aggregates(&config).unwrap();
        assert_eq!(agg.products["pay"].releases["1.0"].total(), 1);
        assert!(!wal.exists() && !dir.path().join("b.db-shm").exists());
    }

    #[test]
    fn odd_paths_are_encoded_for_the_uri() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%")), "/a%20b/c%3Fd%23e%25");
    }
}
