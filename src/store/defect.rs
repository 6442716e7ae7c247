//! Stored rows and the queries the writer and the loader share.

use rusqlite::{Connection, OptionalExtension, ToSql, params};

use crate::aggregate::{Contribution, DefectView};
use crate::config::Config;
use crate::model::time::Millis;

/// One row of `defects`: raw values as the source gave them plus the keys
/// derived from them by the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub source: String,
    pub id: String,
    pub product_kind: String,
    pub product_ns: String,
    pub product: String,
    pub release_raw: Option<String>,
    pub release: Option<String>,
    pub stage: Option<String>,
    pub detected_by: Option<String>,
    pub cause: Option<String>,
    pub severity: Option<String>,
    pub team: Option<String>,
    pub status: String,
    pub deleted: bool,
    pub found_at: Millis,
    pub updated_at: Millis,
}

/// The values of a [`Row`], borrowed (from a `Row`, or from the event a new
/// defect's row is made of): what a write binds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowRef<'a> {
    pub source: &'a str,
    pub id: &'a str,
    pub product_kind: &'a str,
    pub product_ns: &'a str,
    pub product: &'a str,
    pub release_raw: Option<&'a str>,
    pub release: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub detected_by: Option<&'a str>,
    pub cause: Option<&'a str>,
    pub severity: Option<&'a str>,
    pub team: Option<&'a str>,
    pub status: &'a str,
    pub deleted: bool,
    pub found_at: Millis,
    pub updated_at: Millis,
}

/// Text columns of a [`Row`]: `source`, `id`, `product_kind`, `product_ns`,
/// `product`, the optional `release_raw`, `release`, `stage`, `detected_by`,
/// `cause`, `severity`, `team`, then `status`.
pub const TEXT_COLUMNS: usize = 13;

impl<'a> RowRef<'a> {
    /// The text columns in [`Row`] order (`None`: NULL); `deleted`,
    /// `found_at` and `updated_at` follow them.
    pub fn texts(&self) -> [Option<&'a str>; TEXT_COLUMNS] {
        [
            Some(self.source),
            Some(self.id),
            Some(self.product_kind),
            Some(self.product_ns),
            Some(self.product),
            self.release_raw,
            self.release,
            self.stage,
            self.detected_by,
            self.cause,
            self.severity,
            self.team,
            Some(self.status),
        ]
    }

    /// The values owned.
    pub fn to_row(self) -> Row {
        let own = |v: Option<&str>| v.map(str::to_owned);
        Row {
            source: self.source.to_owned(),
            id: self.id.to_owned(),
            product_kind: self.product_kind.to_owned(),
            product_ns: self.product_ns.to_owned(),
            product: self.product.to_owned(),
            release_raw: own(self.release_raw),
            release: own(self.release),
            stage: own(self.stage),
            detected_by: own(self.detected_by),
            cause: own(self.cause),
            severity: own(self.severity),
            team: own(self.team),
            status: self.status.to_owned(),
            deleted: self.deleted,
            found_at: self.found_at,
            updated_at: self.updated_at,
        }
    }

    /// Inserts these values unless their key is stored; whether it did. One
    /// descent of the `(source, id)` index for a new defect, where a lookup
    /// and then an upsert take three.
    /// `stmt` is [`INSERT_NEW`], prepared.
    pub fn insert_new(&self, stmt: &mut rusqlite::CachedStatement<'_>) -> rusqlite::Result<bool> {
        Ok(self.execute(stmt)? == 1)
    }

    /// What this row adds to the aggregates.
    pub fn contribution(&self, config: &Config) -> Option<Contribution> {
        Contribution::of(
            config,
            DefectView {
                product: self.product,
                release: self.release,
                stage: self.stage,
                detected_by: self.detected_by,
                cause: self.cause,
                severity: self.severity,
                status: self.status,
                deleted: self.deleted,
                found_at: self.found_at,
            },
        )
    }

    /// Runs `stmt` (an `INSERT` of the columns in [`Row`] order) with these
    /// values: the [`texts`](Self::texts), then `deleted`, `found_at`,
    /// `updated_at`. Returns the rows it changed.
    fn execute(&self, stmt: &mut rusqlite::CachedStatement<'_>) -> rusqlite::Result<usize> {
        let texts = self.texts();
        let ints: [&dyn ToSql; 3] = [&self.deleted, &self.found_at, &self.updated_at];
        let values = texts.iter().map(|t| t as &dyn ToSql).chain(ints);
        stmt.execute(rusqlite::params_from_iter(values))
    }
}

/// The columns of `defects`, in [`Row`] order, as a literal (for `concat!`:
/// the writer's statements are constant strings, not built per call).
macro_rules! columns {
    () => {
        "source, id, product_kind, product_ns, product, release_raw, release, \
         stage, detected_by, cause, severity, team, status, deleted, found_at, updated_at"
    };
}

/// Whether defects are inserted before they are looked up. While most are
/// new (a tracker announcing them, an import), an insert that does nothing
/// when the key is stored ([`RowRef::insert_new`]) costs one descent of the `(source, id)` index
/// where a lookup and then a write cost more. Chosen per round (the writer's
/// group, the importer's chunk) from the last round's defects: insert first
/// while most were new, look up first (counting what is found) while most
/// were stored, so updates do not pay for a failed insert.
#[derive(Debug, Clone, Copy)]
pub(super) struct InsertFirst {
    /// Whether this round inserts first.
    pub on: bool,
    /// Defects of this round found new, and found stored.
    new: usize,
    stored: usize,
}

impl InsertFirst {
    /// Starting on (`on`) or off, nothing counted.
    pub(super) fn starting(on: bool) -> Self {
        Self {
            on,
            new: 0,
            stored: 0,
        }
    }

    /// Counts a defect found stored, or new.
    pub(super) fn counted(&mut self, stored: bool) {
        if stored {
            self.stored += 1;
        } else {
            self.new += 1;
        }
    }

    /// Chooses for the next round from this one's defects.
    pub(super) fn adapt(&mut self) {
        if self.new + self.stored > 0 {
            self.on = self.new >= self.stored;
        }
        (self.new, self.stored) = (0, 0);
    }
}

const GET: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM defects WHERE source = ?1 AND id = ?2"
);

/// An insert of every column that does nothing when the key is stored, for
/// [`RowRef::insert_new`] (which tells which happened).
pub(super) const INSERT_NEW: &str = concat!(
    "INSERT INTO defects (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
     ON CONFLICT (source, id) DO NOTHING"
);

const PUT: &str = concat!(
    "INSERT INTO defects (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
     ON CONFLICT (source, id) DO UPDATE SET product_kind = excluded.product_kind, \
     product_ns = excluded.product_ns, product = excluded.product, \
     release_raw = excluded.release_raw, release = excluded.release, \
     stage = excluded.stage, detected_by = excluded.detected_by, cause = excluded.cause, \
     severity = excluded.severity, team = excluded.team, status = excluded.status, \
     deleted = excluded.deleted, found_at = excluded.found_at, updated_at = excluded.updated_at"
);

impl Row {
    /// Reads a row selected with the columns of `defects` in [`Row`] order.
    pub fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            source: r.get(0)?,
            id: r.get(1)?,
            product_kind: r.get(2)?,
            product_ns: r.get(3)?,
            product: r.get(4)?,
            release_raw: r.get(5)?,
            release: r.get(6)?,
            stage: r.get(7)?,
            detected_by: r.get(8)?,
            cause: r.get(9)?,
            severity: r.get(10)?,
            team: r.get(11)?,
            status: r.get(12)?,
            deleted: r.get(13)?,
            found_at: r.get(14)?,
            updated_at: r.get(15)?,
        })
    }

    /// The stored defect `(source, id)`, if any.
    pub fn get(tx: &Connection, source: &str, id: &str) -> rusqlite::Result<Option<Self>> {
        tx.prepare_cached(GET)?
            .query_row(params![source, id], Self::from_sql)
            .optional()
    }

    /// Inserts this row, or updates the stored one in place.
    pub fn put(&self, tx: &Connection) -> rusqlite::Result<()> {
        self.borrowed().execute(&mut tx.prepare_cached(PUT)?)?;
        Ok(())
    }

    /// Its values, borrowed.
    pub fn borrowed(&self) -> RowRef<'_> {
        RowRef {
            source: &self.source,
            id: &self.id,
            product_kind: &self.product_kind,
            product_ns: &self.product_ns,
            product: &self.product,
            release_raw: self.release_raw.as_deref(),
            release: self.release.as_deref(),
            stage: self.stage.as_deref(),
            detected_by: self.detected_by.as_deref(),
            cause: self.cause.as_deref(),
            severity: self.severity.as_deref(),
            team: self.team.as_deref(),
            status: &self.status,
            deleted: self.deleted,
            found_at: self.found_at,
            updated_at: self.updated_at,
        }
    }

    /// Whether two versions hold the same state (everything but `updated_at`).
    pub fn same_state(&self, other: &Row) -> bool {
        Row {
            updated_at: other.updated_at,
            ..self.clone()
        } == *other
    }

    /// What this row adds to the aggregates.
    pub fn contribution(&self, config: &Config) -> Option<Contribution> {
        self.borrowed().contribution(config)
    }
}

/// The configured stage names as a JSON array, the `stages` argument of
/// [`first_found`].
pub fn stages_json(config: &Config) -> String {
    let names: Vec<&str> = config
        .pipeline
        .stages()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

/// Earliest `found_at` among the defects a release counts: valid, undeleted,
/// at a configured stage (`stages`, from [`stages_json`]). The same rule as
/// the aggregates' own, so run time and start-up order releases alike.
pub fn first_found(
    tx: &Connection,
    stages: &str,
    product: &str,
    release: &str,
) -> rusqlite::Result<Option<Millis>> {
    tx.prepare_cached(
        "SELECT MIN(found_at) FROM defects \
         WHERE product = ?1 AND release = ?2 AND deleted = 0 AND status = 'valid' \
         AND folded = 0 AND stage IN (SELECT value FROM json_each(?3))",
    )?
    .query_row(params![product, release, stages], |r| r.get(0))
}

/// Contributions of every defect of a release, read from the counted index
/// alone (it holds every column a contribution depends on), without building
/// a [`Row`] per defect.
pub fn release_contributions(
    tx: &Connection,
    config: &Config,
    product: &str,
    release: &str,
) -> rusqlite::Result<Vec<Contribution>> {
    let mut stmt = tx.prepare_cached(
        "SELECT found_at, stage, detected_by, cause, severity \
         FROM defects INDEXED BY defects_counted \
         WHERE product = ?1 AND release = ?2 AND deleted = 0 AND status = 'valid' \
         AND folded = 0",
    )?;
    let mut rows = stmt.query(params![product, release])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> rusqlite::Result<Option<&str>> {
            match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => Ok(None),
                v => v.as_str().map(Some).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(i, v.data_type(), Box::new(e))
                }),
            }
        };
        out.extend(Contribution::of(
            config,
            DefectView {
                product,
                release: Some(release),
                stage: text(1)?,
                detected_by: text(2)?,
                cause: text(3)?,
                severity: text(4)?,
                status: "valid",
                deleted: false,
                found_at: r.get(0)?,
            },
        ));
    }
    Ok(out)
}

/// A release's time: the earliest time recorded for its final release when one
/// is known, else the earliest of its pre-releases.
pub fn release_time(
    tx: &Connection,
    product: &str,
    release: &str,
) -> rusqlite::Result<Option<Millis>> {
    tx.prepare_cached(
        "SELECT MIN(released_at) FROM release_times WHERE product = ?1 AND release = ?2 \
         GROUP BY prerelease ORDER BY prerelease LIMIT 1",
    )?
    .query_row(params![product, release], |r| r.get(0))
    .optional()
}
