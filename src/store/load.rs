//! Start-up work: re-key stored rows when the keying configuration changed, then
//! build the aggregates from the rows once.

use rusqlite::{Connection, OptionalExtension, params};

use super::defect::{self, COLUMNS, Row};
use crate::config::Config;
use crate::metrics::aggregate::{Aggregates, ReleaseMeta};
use crate::model::time::Millis;

/// Re-derives every row's product and release keys when the product mapping or
/// the release rules differ from those the store was keyed with.
pub fn rekey_if_changed(conn: &mut Connection, config: &Config) -> anyhow::Result<()> {
    let fingerprint = config.keying_fingerprint();
    // A read error is an error, never a reason to re-key everything.
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'keying'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if stored.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let mut rekeyed = 0u64;
    {
        let mut select =
            tx.prepare("SELECT source, id, product_kind, product_ns, release_raw FROM defects")?;
        let mut update =
            tx.prepare("UPDATE defects SET product = ?3, release = ?4 WHERE source = ?1 AND id = ?2 AND (product IS NOT ?3 OR release IS NOT ?4)")?;
        let mut rows = select.query([])?;
        while let Some(r) = rows.next()? {
            let (source, id, kind, ns, raw): (String, String, String, String, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let product = config.product_for(&kind, &ns);
            let release = raw
                .and_then(|raw| defect::release_key(config, &kind, &raw))
                .map(|(k, _)| k);
            rekeyed += update.execute(params![source, id, product, release])? as u64;
        }
        let mut select =
            tx.prepare("SELECT product_kind, product_ns, release_raw FROM release_times")?;
        // A name the rules give no key keeps its row (release NULL), so a
        // reverted configuration brings it back.
        let mut update = tx.prepare(
            "UPDATE release_times SET product = ?4, release = ?5, prerelease = ?6 \
             WHERE product_kind = ?1 AND product_ns = ?2 AND release_raw = ?3",
        )?;
        let mut rows = select.query([])?;
        while let Some(r) = rows.next()? {
            let (kind, ns, raw): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let product = config.product_for(&kind, &ns);
            let (release, pre) = match defect::release_key(config, &kind, &raw) {
                Some((release, pre)) => (Some(release), pre),
                None => (None, false),
            };
            update.execute(params![kind, ns, raw, product, release, pre])?;
        }
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta VALUES ('keying', ?1)",
        params![fingerprint],
    )?;
    tx.commit()?;
    if stored.is_some() {
        tracing::info!(
            rekeyed,
            "product or release rules changed: stored defects re-keyed"
        );
    }
    Ok(())
}

/// Builds the aggregates from every stored row (once, at start).
pub fn aggregates(conn: &Connection, config: &Config) -> anyhow::Result<Aggregates> {
    let mut agg = Aggregates::new(config);
    // Release times first, so defects land in the right at-age counts.
    let mut keys = conn
        .prepare("SELECT DISTINCT product, release FROM release_times WHERE release IS NOT NULL")?;
    let keys: Vec<(String, String)> = keys
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (product, release) in &keys {
        let time = defect::release_time(conn, product, release)?;
        let meta = ReleaseMeta {
            first_found: None,
            time: Some((time, vec![[0, 0]; config.maturity_ages.len()])),
        };
        agg.set_release_meta(product, release, &meta);
    }
    let mut stmt = conn.prepare(&format!(
        // No WHERE: one sequential pass over the table (tombstones and invalid
        // rows count nowhere and are skipped below). A filter matching the
        // partial index makes SQLite walk that index and look every row up:
        // measured twice as slow at start-up.
        "SELECT {COLUMNS} FROM defects"
    ))?;
    let mut rows = stmt.query([])?;
    let mut unknown_stages = 0u64;
    while let Some(r) = rows.next()? {
        let row = Row::from_sql(r)?;
        if let Some(c) = row.contribution(config) {
            if row
                .stage
                .as_deref()
                .is_some_and(|s| config.pipeline.index(s).is_none())
            {
                unknown_stages += 1;
            }
            agg.add(&c);
        }
    }
    if unknown_stages > 0 {
        tracing::warn!(
            defects = unknown_stages,
            "stored defects name stages the configuration does not know; they are shown as data quality, not counted"
        );
    }
    Ok(agg)
}

/// Last accepted event time per source.
pub fn last_events(conn: &Connection) -> anyhow::Result<Vec<(String, Millis)>> {
    let mut stmt = conn.prepare("SELECT source, last_event_at FROM sources")?;
    let out = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(out)
}
