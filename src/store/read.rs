//! Read-only access beside the writer: `report` (while `serve` runs on the
//! same file) and `GET /api/v1/defects/…`. A connection opened here is
//! `SQLITE_OPEN_READ_ONLY`: it never migrates, re-keys or writes; WAL lets it
//! read while the writer commits.

mod escapes;

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::defect::Row;
use super::links;
use super::schema::SCHEMA_VERSION;
use crate::aggregate::{Aggregates, ReleaseAgg};
use crate::config::Config;
use crate::model::time::format_rfc3339;
pub use escapes::{DEFAULT_ESCAPES, Escape, Escapes, MAX_ESCAPES, escapes, escapes_of, no_release};

/// Opens `path` read-only and checks it holds this version's schema.
///
/// Always as a WAL reader, never `immutable`: whatever runs or ran on the
/// file (`serve`, an import, one killed half-way), SQLite shows the last
/// commit and nothing else. A WAL reader needs the database's `-wal` and
/// `-shm` files and creates them when they are missing (SQLite gives them
/// the database's owner when it runs as root); a reader that cannot use
/// them, or would leave them owned by a user the database's owner is not,
/// is refused with the reason, never answered from a guess.
pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let file = path.display();
    if !path.is_file() {
        anyhow::bail!("database {file} does not exist (or is not a file)");
    }
    refuse_foreign_wal_files(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| anyhow::anyhow!("cannot open database {file} read-only: {e}"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // The first read takes a snapshot: it opens the WAL (or finds a hot
    // rollback journal), so its errors say why the file cannot be read.
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| unreadable(path, &e))?;
    if version < SCHEMA_VERSION {
        if let Some(held) = super::lock::held_by(path) {
            anyhow::bail!(
                "{held}, and has schema version {version} (this binary reads version \
                 {SCHEMA_VERSION}): it is being created or migrated; read it again once that \
                 is done"
            );
        }
    }
    if version != SCHEMA_VERSION {
        anyhow::bail!(
            "database {file} has schema version {version}, this binary reads version \
             {SCHEMA_VERSION}: run `serve` of this version on it once (it migrates), or \
             use the binary that wrote it"
        );
    }
    Ok(conn)
}

/// The file `path` with `suffix` appended to its name (`-wal`, `-shm`).
fn beside(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Refuses to read when SQLite would create the `-wal` or `-shm` file
/// owned by this (non-root) user while another owns the database: left
/// behind, `serve` running as the owner could not write them.
fn refuse_foreign_wal_files(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some(missing) = ["-wal", "-shm"]
        .into_iter()
        .map(|s| beside(path, s))
        .find(|p| !p.exists())
    else {
        return Ok(());
    };
    let owner = std::fs::metadata(path)?.uid();
    // SAFETY: geteuid only reads the process's effective user id.
    let me = unsafe { libc::geteuid() };
    if me != 0 && me != owner {
        let who = if owner == 0 {
            "root".to_owned()
        } else {
            format!("uid {owner} or root")
        };
        anyhow::bail!(
            "reading database {} would create {} owned by uid {me}, which the database's \
             owner (uid {owner}, who runs `serve`) could not write afterwards: run this as \
             {who}, or while `serve` runs on it",
            path.display(),
            missing.display()
        );
    }
    Ok(())
}

/// Why the first read of `path` failed, in the operator's terms.
fn unreadable(path: &Path, e: &rusqlite::Error) -> anyhow::Error {
    use rusqlite::ffi;
    let file = path.display();
    let code = match e {
        rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
        _ => 0,
    };
    match code {
        ffi::SQLITE_READONLY_ROLLBACK => anyhow::anyhow!(
            "database {file} holds an interrupted transaction (hot journal {}, left by a writer \
             that was killed, such as an import by an older version): a read-only reader cannot \
             roll it back and does not read past it. Start `serve` on it once (it rolls the \
             transaction back), then read again",
            beside(path, "-journal").display()
        ),
        ffi::SQLITE_CANTOPEN
        | ffi::SQLITE_READONLY_CANTINIT
        | ffi::SQLITE_READONLY_DIRECTORY
        | ffi::SQLITE_READONLY_RECOVERY
        | ffi::SQLITE_IOERR_SHMOPEN => anyhow::anyhow!(
            "cannot read database {file}: it is in WAL mode, and this user cannot create or \
             write its {} and {} files ({e}); run this as the user that runs `serve` (or root), \
             or while `serve` runs on it",
            beside(path, "-wal").display(),
            beside(path, "-shm").display()
        ),
        _ => anyhow::anyhow!("cannot read database {file}: {e}"),
    }
}

/// The aggregates `serve` would load from `config.db` at start, read through a
/// read-only connection; the flag says whether the store was keyed with this
/// configuration's product mapping and release rules (if not, `serve` would
/// re-key first and the numbers may differ).
pub fn aggregates(config: &Config) -> anyhow::Result<(Aggregates, bool)> {
    let (agg, keyed, _) = aggregates_and_history(config, |_| Vec::new(), None)?;
    Ok((agg, keyed))
}

/// The stored releases of some products, each with its releases best first
/// (releases with defects first, then newest): `(product, [(release, counts)])`.
pub type History = Vec<(String, Vec<(String, ReleaseAgg)>)>;

/// [`aggregates`], and in the same snapshot the first `n` stored releases
/// (all when `None`) of each product `products` names given the aggregates,
/// as `/metrics` would count each were it exported.
pub fn aggregates_and_history(
    config: &Config,
    products: impl FnOnce(&Aggregates) -> Vec<String>,
    n: Option<usize>,
) -> anyhow::Result<(Aggregates, bool, History)> {
    let conn = open(&config.db)?;
    // One read transaction: the whole load sees one snapshot.
    conn.execute_batch("BEGIN")?;
    let keyed: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'keying'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let loaded = super::load::aggregates(&conn, config)?;
    let history = history(&conn, config, &products(&loaded), n)?;
    conn.execute_batch("COMMIT")?;
    Ok((
        loaded,
        keyed.is_none_or(|k| k == config.keying_fingerprint()),
        history,
    ))
}

/// The first `n` stored releases (all when `None`) of each of `products`,
/// read through `conn` (see [`aggregates_and_history`]).
pub fn history(
    conn: &Connection,
    config: &Config,
    products: &[String],
    n: Option<usize>,
) -> anyhow::Result<History> {
    products
        .iter()
        .map(|p| Ok((p.clone(), super::load::history(conn, config, p, n)?)))
        .collect()
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
    /// The records it links to (docs/semantics.md, "Linked records").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkedRecord>,
    /// The link group it is counted in, when it is folded into one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Box<LinkGroup>>,
}

/// One record of a link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkedRecord {
    pub source: String,
    pub id: String,
}

/// A link group as the read API shows it: its stored records and the one
/// defect they count as.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkGroup {
    /// Its stored records, in key order.
    pub records: Vec<LinkedRecord>,
    /// What the group counts as (`source` and `id` are those of its row).
    pub counted: StoredDefect,
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
            found_at: format_rfc3339(r.found_at, chrono::SecondsFormat::AutoSi),
            updated_at: format_rfc3339(r.updated_at, chrono::SecondsFormat::AutoSi),
            links: Vec::new(),
            group: None,
        }
    }
}

/// The stored defect `(source, id)`, tombstones included, with its links
/// and the link group it is counted in.
pub fn defect(conn: &Connection, source: &str, id: &str) -> anyhow::Result<Option<StoredDefect>> {
    let Some(row) = Row::get(conn, source, id)? else {
        return Ok(None);
    };
    let mut d = StoredDefect::from(row);
    if !links::any(conn)? {
        return Ok(Some(d));
    }
    let key = (source.to_owned(), id.to_owned());
    d.links = links::outgoing(conn, &key)?
        .into_iter()
        .map(|(source, id)| LinkedRecord { source, id })
        .collect();
    let members = links::members(conn, &key)?;
    if let Some(rep) = members.first().filter(|_| members.len() >= 2) {
        if let Some(row) = Row::get(conn, links::GROUP_SOURCE, &links::group_id(rep))? {
            d.group = Some(Box::new(LinkGroup {
                records: members
                    .into_iter()
                    .map(|(source, id)| LinkedRecord { source, id })
                    .collect(),
                counted: StoredDefect::from(row),
            }));
        }
    }
    Ok(Some(d))
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
        // Not yet migrated while a writer holds it: being created, by whom.
        let lock = super::super::lock::acquire(&path, "import").unwrap();
        let err = open(&path).unwrap_err().to_string();
        assert!(
            err.contains("in use by `import, pid")
                && err.contains("none.db.lock")
                && err.contains("being created or migrated"),
            "{err}"
        );
        drop(lock);
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
             NULL, NULL, NULL, NULL, 'valid', 0, 1000, 2000, 0)",
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
        // Closed by the writer: no `-wal` is left. Read as WAL (never as
        // immutable), it is read again with nothing written: the database
        // file is unchanged and the WAL the reader opened is empty.
        let wal = dir.path().join("b.db-wal");
        assert!(!wal.exists());
        let before = std::fs::read(&config.db).unwrap();
        let (agg, _) = aggregates(&config).unwrap();
        assert_eq!(agg.products["pay"].releases["1.0"].total(), 1);
        assert_eq!(std::fs::read(&config.db).unwrap(), before);
        assert_eq!(std::fs::metadata(&wal).map_or(0, |m| m.len()), 0);
    }

    /// A database another writer left with a hot rollback journal (an
    /// import of an older version killed half-way, here copied mid-way
    /// through a transaction) is refused by name: never read past the
    /// journal, never called malformed.
    #[test]
    fn a_hot_rollback_journal_is_refused_by_name_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let conn = super::super::schema::open(&live).unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
        // A tiny cache: the transaction spills pages into the file, so the
        // journal is hot (synced, with the pages' old contents).
        conn.pragma_update(None, "cache_size", 2).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..2000 {
            conn.execute(
                "INSERT INTO defects VALUES ('generic', ?1, '', 'pay', 'pay', 'v1.0', '1.0', \
                 'qa', NULL, NULL, NULL, NULL, 'valid', 0, 1000, 2000, 0)",
                [format!("D-{i}")],
            )
            .unwrap();
        }
        let journal = dir.path().join("live.db-journal");
        assert!(std::fs::metadata(&journal).unwrap().len() > 0);
        // The files as a kill -9 at this moment leaves them.
        let db = dir.path().join("c.db");
        std::fs::copy(&live, &db).unwrap();
        std::fs::copy(&journal, dir.path().join("c.db-journal")).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        let err = open(&db).unwrap_err().to_string();
        assert!(
            err.contains("interrupted transaction") && err.contains("c.db-journal"),
            "{err}"
        );
        // A writer's open rolls it back; then it reads as it was, empty.
        drop(super::super::schema::open(&db).unwrap());
        let ro = open(&db).unwrap();
        let n: i64 = ro
            .query_row("SELECT count(*) FROM defects", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
