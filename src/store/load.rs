//! Start-up work: re-key stored rows when the keying configuration changed, then
//! build the aggregates from the rows once.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use super::{defect, links};
use crate::aggregate::{Aggregates, Cold, Contribution, Rank, ReleaseAgg, ReleaseMeta, Staged};
use crate::config::Config;
use crate::model::time::Millis;

/// Re-derives every row's product and release keys when the product mapping or
/// the release rules differ from those the store was keyed with, then the
/// link groups' rows when what they depend on changed.
pub fn rekey_if_changed(conn: &mut Connection, config: &Config) -> anyhow::Result<()> {
    rekey(conn, config)?;
    regroup_if_changed(conn, config)
}

/// Computes every link group's row again when the keys or the pipeline (the
/// order that picks a group's stage) differ from those they were computed
/// with (a fingerprint in `meta`).
fn regroup_if_changed(conn: &mut Connection, config: &Config) -> anyhow::Result<()> {
    let fingerprint = format!(
        "{}|{}",
        config.keying_fingerprint(),
        defect::stages_json(config)
    );
    let stored: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'grouping'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if stored.as_deref() == Some(fingerprint.as_str()) {
        return Ok(());
    }
    let tx = conn.transaction()?;
    if stored.is_some() || links::any(&tx)? {
        links::regroup_all(&tx, config)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta VALUES ('grouping', ?1)",
        params![fingerprint],
    )?;
    tx.commit()?;
    Ok(())
}

/// The re-keying of [`rekey_if_changed`].
fn rekey(conn: &mut Connection, config: &Config) -> anyhow::Result<()> {
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
            tx.prepare("SELECT source, id, product_kind, product_ns, release_raw FROM defects WHERE source != ''")?;
        let mut update =
            tx.prepare("UPDATE defects SET product = ?3, release = ?4 WHERE source = ?1 AND id = ?2 AND (product IS NOT ?3 OR release IS NOT ?4)")?;
        let mut rows = select.query([])?;
        while let Some(r) = rows.next()? {
            let (source, id, kind, ns, raw): (String, String, String, String, Option<String>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
            let product = config.product_for(&kind, &ns);
            let release = raw
                .and_then(|raw| config.release_rules.key(&kind, &raw))
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
            let (release, pre) = match config.release_rules.key(&kind, &raw) {
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

/// Per release, what orders it: the defects it counts and the first found.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    total: u64,
    first_found: Option<Millis>,
}

/// The order time and rank inputs of a product's stored releases, from the
/// counted defects and the release times.
fn ranks(
    counted: HashMap<String, Seen>,
    times: HashMap<String, Millis>,
) -> Vec<(Rank, Option<Millis>)> {
    let mut out: Vec<(Rank, Option<Millis>)> = Vec::with_capacity(counted.len() + times.len());
    for (name, seen) in &counted {
        let time = times.get(name).copied();
        out.push((
            Rank {
                data: seen.total > 0,
                time: time.or(seen.first_found),
                name: name.clone(),
            },
            time,
        ));
    }
    for (name, time) in times {
        if !counted.contains_key(&name) {
            out.push((
                Rank {
                    data: false,
                    time: Some(time),
                    name,
                },
                Some(time),
            ));
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Release times per product and release (the final release's earliest time
/// when one is recorded, else the earliest of its pre-releases), optionally of
/// one product.
fn release_times(
    conn: &Connection,
    product: Option<&str>,
) -> rusqlite::Result<HashMap<String, HashMap<String, Millis>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT product, release, prerelease, MIN(released_at) FROM release_times \
         WHERE release IS NOT NULL AND (?1 IS NULL OR product = ?1) \
         GROUP BY product, release, prerelease ORDER BY prerelease DESC",
    )?;
    let mut rows = stmt.query(params![product])?;
    let mut out: HashMap<String, HashMap<String, Millis>> = HashMap::new();
    // Pre-releases come first, so a final release's time replaces theirs.
    while let Some(r) = rows.next()? {
        let (p, rel, t): (String, String, Millis) = (r.get(0)?, r.get(1)?, r.get(3)?);
        out.entry(p).or_default().insert(rel, t);
    }
    Ok(out)
}

/// How many releases a product keeps resident after a load or a promotion:
/// room to lose some before the store is asked again.
fn target(agg: &Aggregates) -> usize {
    agg.keep() + agg.keep() / 2
}

/// The stored state of one release, as the aggregates hold it; `None` when
/// the store holds nothing that makes it a release (no counted defect, no
/// release time).
pub fn release(
    conn: &Connection,
    config: &Config,
    scratch: &Aggregates,
    product: &str,
    release: &str,
) -> rusqlite::Result<Option<ReleaseAgg>> {
    let time = defect::release_time(conn, product, release)?;
    let contributions = defect::release_contributions(conn, config, product, release)?;
    if time.is_none() && contributions.is_empty() {
        return Ok(None);
    }
    let mut one = scratch.clone();
    one.set_release_meta(
        product,
        release,
        &ReleaseMeta {
            first_found: None,
            time: Some((time, vec![Default::default(); config.maturity_ages.len()])),
        },
    );
    for c in &contributions {
        one.add(c);
    }
    Ok(one
        .products
        .get_mut(product)
        .and_then(|p| p.releases.remove(release))
        .filter(|r| r.total() > 0 || r.release_time.is_some()))
}

/// The rank of every stored release of a product but `resident`, best
/// first, with its release time: from the counted defects and the release
/// times.
fn stored_ranks(
    conn: &Connection,
    config: &Config,
    product: &str,
    resident: &[String],
) -> rusqlite::Result<Vec<(Rank, Option<Millis>)>> {
    let stages = stage_index(config);
    let mut counted: HashMap<String, Seen> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT release, found_at, stage FROM defects INDEXED BY defects_counted \
             WHERE product = ?1 AND release IS NOT NULL AND deleted = 0 AND status = 'valid' \
             AND folded = 0",
        )?;
        let mut rows = stmt.query(params![product])?;
        while let Some(r) = rows.next()? {
            let staged = match r.get_ref(2)? {
                ValueRef::Text(s) => stages.contains_key(s),
                _ => false,
            };
            if !staged {
                continue;
            }
            let found_at: Millis = r.get(1)?;
            let rel = r.get_ref(0)?.as_str()?;
            if resident.iter().any(|n| n == rel) {
                continue;
            }
            let seen = counted.entry(rel.to_owned()).or_default();
            seen.total += 1;
            seen.first_found = Some(seen.first_found.map_or(found_at, |f| f.min(found_at)));
        }
    }
    let mut times = release_times(conn, Some(product))?
        .remove(product)
        .unwrap_or_default();
    times.retain(|k, _| !resident.contains(k));
    Ok(ranks(counted, times))
}

/// The best cold releases of a product (all but `resident`), loaded, and what
/// stays cold, counted from the store.
pub fn promote(
    conn: &Connection,
    config: &Config,
    scratch: &Aggregates,
    product: &str,
    resident: &[String],
) -> rusqlite::Result<(Vec<(String, ReleaseAgg)>, Cold)> {
    let ranked = stored_ranks(conn, config, product, resident)?;
    let want = target(scratch).saturating_sub(resident.len());
    let mut loaded = Vec::new();
    for (rank, _) in ranked.iter().take(want) {
        if let Some(r) = release(conn, config, scratch, product, &rank.name)? {
            loaded.push((rank.name.clone(), r));
        }
    }
    let rest = ranked.get(want..).unwrap_or_default();
    let cold = Cold {
        releases: rest.len() as u64,
        with_data: rest.iter().filter(|(r, _)| r.data).count() as u64,
        bound: rest.first().map(|(r, _)| r.clone()),
    };
    Ok((loaded, cold))
}

/// The first `n` stored releases of a product in rank order (all of them
/// when `None`), each built as [`release`] builds a cold one when it is
/// loaded: what `/metrics` would show of each were it exported.
pub fn history(
    conn: &Connection,
    config: &Config,
    product: &str,
    n: Option<usize>,
) -> rusqlite::Result<Vec<(String, ReleaseAgg)>> {
    let scratch = Aggregates::new(config);
    let ranked = stored_ranks(conn, config, product, &[])?;
    let mut out = Vec::new();
    for (rank, _) in ranked.iter().take(n.unwrap_or(usize::MAX)) {
        if let Some(r) = release(conn, config, &scratch, product, &rank.name)? {
            out.push((rank.name.clone(), r));
        }
    }
    Ok(out)
}

/// Configured stage names to their pipeline index.
fn stage_index(config: &Config) -> HashMap<Vec<u8>, usize> {
    config
        .pipeline
        .stages()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_bytes().to_vec(), i))
        .collect()
}

/// One counted row of a release, kept while the loader walks its product.
#[derive(Debug, Clone, Copy)]
struct Counted {
    /// Index into [`Walk::releases`].
    release: u32,
    staged: Staged,
}

/// One product's rows while the loader walks the index.
struct Walk {
    product: String,
    /// Releases with counted rows, in index order, with what ranks them.
    releases: Vec<(String, Seen)>,
    rows: Vec<Counted>,
    unattributed: Vec<u64>,
    unknown_stage: u64,
    no_stage: u64,
}

impl Walk {
    fn new(product: &str, stages: usize) -> Self {
        Self {
            product: product.to_owned(),
            releases: Vec::new(),
            rows: Vec::new(),
            unattributed: vec![0; stages],
            unknown_stage: 0,
            no_stage: 0,
        }
    }

    /// Ranks the product's releases, keeps the first ones resident with
    /// their rows, counts the rest cold.
    fn finish(self, agg: &mut Aggregates, times: Option<HashMap<String, Millis>>) {
        let mut times = times.unwrap_or_default();
        // (rank, release time, index of counted rows)
        let mut ranked: Vec<(Rank, Option<Millis>, Option<u32>)> =
            Vec::with_capacity(self.releases.len() + times.len());
        for (i, (name, seen)) in self.releases.into_iter().enumerate() {
            let time = times.remove(&name);
            ranked.push((
                Rank {
                    data: seen.total > 0,
                    time: time.or(seen.first_found),
                    name,
                },
                time,
                Some(i as u32),
            ));
        }
        for (name, time) in times {
            ranked.push((
                Rank {
                    data: false,
                    time: Some(time),
                    name,
                },
                Some(time),
                None,
            ));
        }
        let keep = target(agg).min(ranked.len());
        if ranked.len() > keep {
            ranked.select_nth_unstable_by(keep, |a, b| a.0.cmp(&b.0));
        }
        let rest = &ranked[keep..];
        let cold = Cold {
            releases: rest.len() as u64,
            with_data: rest.iter().filter(|(r, ..)| r.data).count() as u64,
            bound: rest.iter().map(|(r, ..)| r).min().cloned(),
        };
        agg.seed_product(
            &self.product,
            self.unattributed,
            self.unknown_stage,
            self.no_stage,
            cold,
        );
        let mut resident: Vec<Option<&str>> = vec![None; ranked.len()];
        for (rank, time, rows) in &ranked[..keep] {
            if time.is_some() {
                agg.set_release_meta(
                    &self.product,
                    &rank.name,
                    &ReleaseMeta {
                        first_found: None,
                        time: Some((*time, vec![Default::default(); agg.ages()])),
                    },
                );
            }
            if let Some(i) = rows {
                resident[*i as usize] = Some(&rank.name);
            }
        }
        for row in &self.rows {
            if let Some(name) = resident[row.release as usize] {
                agg.add_staged(&self.product, name, row.staged);
            }
        }
    }
}

impl Walk {
    /// Counts one row of the counted index into this product's walk:
    /// whether its stage is one the configuration does not know (such a row
    /// is shown as data quality, not counted).
    fn count(
        &mut self,
        r: &rusqlite::Row<'_>,
        config: &Config,
        stage_names: &[&[u8]],
    ) -> anyhow::Result<bool> {
        let stage = match r.get_ref(3)? {
            ValueRef::Text(s) => match stage_names.iter().position(|n| *n == s) {
                Some(i) => i,
                None => {
                    self.unknown_stage += 1;
                    return Ok(true);
                }
            },
            _ => {
                self.no_stage += 1;
                return Ok(false);
            }
        };
        let ValueRef::Text(rel) = r.get_ref(1)? else {
            self.unattributed[stage] += 1;
            return Ok(false);
        };
        let found_at: Millis = r.get(2)?;
        if self
            .releases
            .last()
            .is_none_or(|(n, _)| n.as_bytes() != rel)
        {
            self.releases
                .push((std::str::from_utf8(rel)?.to_owned(), Seen::default()));
        }
        let index = (self.releases.len() - 1) as u32;
        let seen = &mut self.releases.last_mut().expect("pushed above").1;
        seen.total += 1;
        seen.first_found = Some(seen.first_found.map_or(found_at, |f| f.min(found_at)));
        let (cause, detector, severity) = Contribution::indices(
            config,
            r.get_ref(5)?.as_str_or_null()?,
            r.get_ref(4)?.as_str_or_null()?,
            r.get_ref(6)?.as_str_or_null()?,
        );
        self.rows.push(Counted {
            release: index,
            staged: Staged {
                stage,
                found_at,
                cause,
                detector,
                severity,
            },
        });
        Ok(false)
    }
}

/// Builds the aggregates from the store (at start, and after a failure).
///
/// One pass over the partial index of counted defects, which holds every
/// column a contribution needs, in (product, release) order: the table itself
/// is not read. Each product's rows are kept while it is walked, its releases
/// ranked at its end, and only the first ones in rank order made resident;
/// the rest are counted cold. Memory follows the exported releases (and the
/// largest product's rows, briefly), not history.
pub fn aggregates(conn: &Connection, config: &Config) -> anyhow::Result<Aggregates> {
    let started = std::time::Instant::now();
    let mut agg = Aggregates::new(config);
    let stage_names: Vec<&[u8]> = config
        .pipeline
        .stages()
        .iter()
        .map(|s| s.name.as_bytes())
        .collect();
    let mut times = release_times(conn, None)?;
    let mut unknown_stages = 0u64;
    let mut rows_read = 0u64;
    {
        let mut stmt = conn.prepare(
            "SELECT product, release, found_at, stage, detected_by, cause, severity \
             FROM defects INDEXED BY defects_counted \
             WHERE deleted = 0 AND status = 'valid' AND folded = 0",
        )?;
        let mut rows = stmt.query([])?;
        let mut walk: Option<Walk> = None;
        while let Some(r) = rows.next()? {
            rows_read += 1;
            let product = r.get_ref(0)?.as_str()?;
            if walk.as_ref().is_none_or(|w| w.product != product) {
                if let Some(done) = walk.take() {
                    let t = times.remove(&done.product);
                    done.finish(&mut agg, t);
                }
                walk = Some(Walk::new(product, stage_names.len()));
            }
            let w = walk.as_mut().expect("set above");
            if w.count(r, config, &stage_names)? {
                unknown_stages += 1;
            }
        }
        if let Some(done) = walk.take() {
            let t = times.remove(&done.product);
            done.finish(&mut agg, t);
        }
    }
    // Products known only by release times.
    for (product, t) in times {
        Walk::new(&product, stage_names.len()).finish(&mut agg, Some(t));
    }
    agg.refresh_times();
    load_linked(conn, &mut agg)?;
    log_loaded(&agg, rows_read, unknown_stages, started);
    Ok(agg)
}

/// Records folded into link groups, per product (from the index of folded
/// records: the table is not read).
fn load_linked(conn: &Connection, agg: &mut Aggregates) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT product, COUNT(*) FROM defects INDEXED BY defects_folded \
         WHERE folded = 1 GROUP BY product",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (product, n): (String, i64) = (r.get(0)?, r.get(1)?);
        agg.link(&product, n);
    }
    Ok(())
}

/// Says what [`aggregates`] loaded, and warns of unknown stages.
fn log_loaded(agg: &Aggregates, rows_read: u64, unknown_stages: u64, started: std::time::Instant) {
    tracing::info!(
        products = agg.products.len(),
        counted_defects = rows_read,
        resident = agg
            .products
            .values()
            .map(|p| p.releases.len())
            .sum::<usize>(),
        cold = agg.products.values().map(|p| p.cold.releases).sum::<u64>(),
        ms = started.elapsed().as_millis() as u64,
        "aggregates loaded"
    );
    if unknown_stages > 0 {
        tracing::warn!(
            defects = unknown_stages,
            "stored defects name stages the configuration does not know; they are shown as data quality, not counted"
        );
    }
}

/// Last accepted event time per source.
pub fn last_events(conn: &Connection) -> anyhow::Result<Vec<(String, Millis)>> {
    let mut stmt = conn.prepare("SELECT source, last_event_at FROM sources")?;
    let out = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(out)
}
