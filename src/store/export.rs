//! The store side of the `export` sub-command: every stored defect (deleted
//! ones included) and every release time, read in one read transaction, so
//! the export is one consistent snapshot even while `serve` writes.

use std::path::Path;

use crate::model::time::Millis;

/// A stored release time, with the raw names it was recorded under.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseRecord {
    pub product_kind: String,
    pub product_ns: String,
    pub release_raw: String,
    pub released_at: Millis,
}

/// A stored defect's raw values (the derived keys are recomputed on import).
#[derive(Debug, Clone, PartialEq)]
pub struct DefectRecord {
    pub source: String,
    pub id: String,
    pub product_kind: String,
    pub product_ns: String,
    pub release_raw: Option<String>,
    pub stage: Option<String>,
    pub detected_by: Option<String>,
    pub cause: Option<String>,
    pub severity: Option<String>,
    pub team: Option<String>,
    pub status: String,
    pub deleted: bool,
    pub found_at: Millis,
    pub updated_at: Millis,
    /// The records it links to (`(source, id)`, in key order).
    pub links: Vec<(String, String)>,
}

/// Reads the database at `db` (which must exist) in one read transaction:
/// every release time, then every defect in the order they were first stored.
/// A callback's error stops the export and is returned.
pub fn export(
    db: &Path,
    mut release: impl FnMut(ReleaseRecord) -> anyhow::Result<()>,
    mut defect: impl FnMut(DefectRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // A reader like `report`: never creates, migrates or writes the database,
    // and sees its last commit whatever runs on it (an import included).
    let mut conn = super::read::open(db)?;
    let tx = conn.transaction()?; // deferred: a read snapshot
    {
        let mut stmt = tx.prepare(
            "SELECT product_kind, product_ns, release_raw, released_at FROM release_times \
             ORDER BY product_kind, product_ns, released_at, release_raw",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            release(ReleaseRecord {
                product_kind: r.get(0)?,
                product_ns: r.get(1)?,
                release_raw: r.get(2)?,
                released_at: r.get(3)?,
            })?;
        }
        let mut stmt = tx.prepare(
            "SELECT source, id, product_kind, product_ns, release_raw, stage, detected_by, \
             cause, severity, team, status, deleted, found_at, updated_at FROM defects \
             WHERE source != '' ORDER BY rowid",
        )?;
        // The groups' rows (source '') are derived: an import computes them.
        let linked = super::links::any(&tx)?;
        let mut held = tx.prepare(
            "SELECT to_source, to_id FROM links WHERE source = ?1 AND id = ?2 \
             ORDER BY to_source, to_id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let (source, id): (String, String) = (r.get(0)?, r.get(1)?);
            let links = if linked {
                held.query_map(rusqlite::params![source, id], |l| {
                    Ok((l.get(0)?, l.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            } else {
                Vec::new()
            };
            defect(DefectRecord {
                links,
                source,
                id,
                product_kind: r.get(2)?,
                product_ns: r.get(3)?,
                release_raw: r.get(4)?,
                stage: r.get(5)?,
                detected_by: r.get(6)?,
                cause: r.get(7)?,
                severity: r.get(8)?,
                team: r.get(9)?,
                status: r.get(10)?,
                deleted: r.get(11)?,
                found_at: r.get(12)?,
                updated_at: r.get(13)?,
            })?;
        }
    }
    tx.rollback()?;
    Ok(())
}
