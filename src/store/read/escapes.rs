//! A release's escapes as the read API, `report --escapes` and the summary
//! page list them: the defects it counts at a production-phase stage, each
//! once, a link group with every stored record folded into it.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::LinkedRecord;
use crate::config::Config;
use crate::model::stage::Phase;
use crate::model::time::format_rfc3339;
use crate::store::links;

/// Most escapes one listing shows (`limit`).
pub const MAX_ESCAPES: usize = 200;

/// Escapes one listing shows when no `limit` is given.
pub const DEFAULT_ESCAPES: usize = 50;

/// One escaped defect, as counted: its records (one, or every stored record
/// of its link group, in key order) and the values it counts with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escape {
    /// The records it is: the first is the one it is listed under.
    pub records: Vec<LinkedRecord>,
    pub stage: Option<String>,
    pub found_at: Option<String>,
    pub detected_by: Option<String>,
    pub cause: Option<String>,
    pub severity: Option<String>,
    pub team: Option<String>,
}

/// One page of a release's escapes, earliest found first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escapes {
    pub product: String,
    pub release: String,
    /// Every escape of the release (P(R), as `/metrics` counts it).
    pub escaped: u64,
    pub offset: usize,
    pub limit: usize,
    /// The `offset` of the next page; `None` on the last.
    pub next_offset: Option<usize>,
    pub escapes: Vec<Escape>,
}

impl Escapes {
    /// Escapes after this page's.
    pub fn more(&self) -> u64 {
        (self.escaped).saturating_sub((self.offset + self.escapes.len()) as u64)
    }
}

/// Why a release has no escapes listing: it counts no defect.
pub fn no_release(product: &str, release: &str) -> String {
    format!(
        "release `{release}` of product `{product}` counts no defect (give the keys as \
         /metrics labels them)"
    )
}

/// The configured production-phase stages as a JSON array.
fn escape_stages(config: &Config) -> String {
    let names: Vec<&str> = config
        .pipeline
        .stages()
        .iter()
        .filter(|s| s.phase == Phase::Production)
        .map(|s| s.name.as_str())
        .collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

/// What a release counts at a production-phase stage, from the counted rows.
const WHERE: &str = "WHERE product = ?1 AND release = ?2 AND deleted = 0 AND status = 'valid' \
     AND folded = 0 AND stage IN (SELECT value FROM json_each(?3))";

/// The escapes `offset..offset + limit` of `release` of `product` (keys as
/// `/metrics` labels them), earliest found first, read through `conn`: run
/// it inside one read transaction so the count and the page agree. `None`
/// when the release counts no defect at all (at any stage: an unknown or
/// mistyped key).
pub fn escapes(
    conn: &Connection,
    config: &Config,
    product: &str,
    release: &str,
    offset: usize,
    limit: usize,
) -> anyhow::Result<Option<Escapes>> {
    let stages = escape_stages(config);
    let escaped: u64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM defects {WHERE}"))?
        .query_row(params![product, release, stages], |r| r.get(0))?;
    if escaped == 0 && !counts_any(conn, product, release)? {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT source, id, stage, found_at, detected_by, cause, severity, team \
         FROM defects {WHERE} ORDER BY found_at, source, id LIMIT ?4 OFFSET ?5"
    ))?;
    let rows = stmt.query_map(
        params![
            product,
            release,
            stages,
            limit as i64,
            i64::try_from(offset).unwrap_or(i64::MAX)
        ],
        |r| {
            let key: links::Key = (r.get(0)?, r.get(1)?);
            let found: i64 = r.get(3)?;
            Ok((
                key,
                Escape {
                    records: Vec::new(),
                    stage: r.get(2)?,
                    found_at: format_rfc3339(found, chrono::SecondsFormat::AutoSi),
                    detected_by: r.get(4)?,
                    cause: r.get(5)?,
                    severity: r.get(6)?,
                    team: r.get(7)?,
                },
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (key, mut e) = row?;
        e.records = records(conn, key)?;
        out.push(e);
    }
    let next = offset.saturating_add(out.len());
    Ok(Some(Escapes {
        product: product.to_owned(),
        release: release.to_owned(),
        escaped,
        offset,
        limit,
        next_offset: (!out.is_empty() && (next as u64) < escaped).then_some(next),
        escapes: out,
    }))
}

/// Whether `release` of `product` counts a defect at any stage (read from
/// the counted index).
fn counts_any(conn: &Connection, product: &str, release: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM defects WHERE product = ?1 AND release = ?2 \
         AND deleted = 0 AND status = 'valid' AND folded = 0)",
    )?
    .query_row(params![product, release], |r| r.get(0))
}

/// The escapes of each `(product, release)` of `wanted` (from `offset`, up
/// to `limit` each; `None` for a release that counts no defect), read from
/// `db` read-only in one snapshot.
pub fn escapes_of(
    db: &std::path::Path,
    config: &Config,
    wanted: &[(String, String)],
    offset: usize,
    limit: usize,
) -> anyhow::Result<Vec<Option<Escapes>>> {
    let conn = super::open(db)?;
    conn.execute_batch("BEGIN")?;
    let out = wanted
        .iter()
        .map(|(p, r)| escapes(&conn, config, p, r, offset, limit))
        .collect::<anyhow::Result<Vec<_>>>()?;
    conn.execute_batch("COMMIT")?;
    Ok(out)
}

/// The records a counted row stands for: itself, or, for a group's row,
/// every stored record of the group (at most
/// [`crate::model::event::MAX_GROUP_RECORDS`]), in key order.
fn records(conn: &Connection, key: links::Key) -> anyhow::Result<Vec<LinkedRecord>> {
    let record = |(source, id): links::Key| LinkedRecord { source, id };
    if key.0 != links::GROUP_SOURCE {
        return Ok(vec![record(key)]);
    }
    let Some(rep) = links::group_rep(&key.1) else {
        return Ok(vec![record(key)]);
    };
    Ok(links::members(conn, &rep)?
        .into_iter()
        .map(record)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_escape_stages_are_the_production_phase_ones() {
        let config = Config::from_settings(crate::config::Settings::default()).unwrap();
        let stages: Vec<String> = serde_json::from_str(&escape_stages(&config)).unwrap();
        assert_eq!(stages, ["production"]);
    }
}
