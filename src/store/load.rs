//! Start-up work: re-key stored rows when the keying configuration changed, then
//! build the aggregates from the rows once.

use std::collections::HashMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use super::defect;
use crate::config::Config;
use crate::metrics::aggregate::{
    Aggregates, Class, Cold, Contribution, DefectView, Rank, ReleaseAgg, ReleaseMeta,
};
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
            time: Some((time, vec![[0, 0]; config.maturity_ages.len()])),
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

/// The best cold releases of a product (all but `resident`), loaded, and what
/// stays cold, counted from the store.
pub fn promote(
    conn: &Connection,
    config: &Config,
    scratch: &Aggregates,
    product: &str,
    resident: &[String],
) -> rusqlite::Result<(Vec<(String, ReleaseAgg)>, Cold)> {
    let stages = stage_index(config);
    let mut counted: HashMap<String, Seen> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT release, found_at, stage FROM defects INDEXED BY defects_counted \
             WHERE product = ?1 AND release IS NOT NULL AND deleted = 0 AND status = 'valid'",
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
    let ranked = ranks(counted, times);
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

/// A product's releases in rank order, each with its release time.
type Ranked = Vec<(Rank, Option<Millis>)>;

/// One product's rows while the loader walks the index.
struct Walk {
    product: String,
    releases: HashMap<String, Seen>,
    unattributed: Vec<u64>,
    unknown_stage: u64,
    no_stage: u64,
}

/// Builds the aggregates from the store (at start, and after a failure).
///
/// One pass over the partial index of counted defects (product, release,
/// found_at, stage: the table itself is not read) ranks every product's
/// releases and counts its unattributed and unclassified defects; only the
/// releases a product keeps resident are then read in full, one indexed
/// query each. Memory and time follow the exported releases, not history.
pub fn aggregates(conn: &Connection, config: &Config) -> anyhow::Result<Aggregates> {
    let mut agg = Aggregates::new(config);
    let stages = stage_index(config);
    let started = std::time::Instant::now();
    let mut times = release_times(conn, None)?;
    let mut unknown_stages = 0u64;
    let mut residents: Vec<(String, Ranked)> = Vec::new();
    let mut finish =
        |agg: &mut Aggregates, w: Walk, times: &mut HashMap<String, HashMap<String, Millis>>| {
            let t = times.remove(&w.product).unwrap_or_default();
            let ranked = ranks(w.releases, t);
            let keep = target(agg).min(ranked.len());
            let rest = &ranked[keep..];
            agg.seed_product(
                &w.product,
                w.unattributed,
                w.unknown_stage,
                w.no_stage,
                Cold {
                    releases: rest.len() as u64,
                    with_data: rest.iter().filter(|(r, _)| r.data).count() as u64,
                    bound: rest.first().map(|(r, _)| r.clone()),
                },
            );
            residents.push((w.product, ranked.into_iter().take(keep).collect()));
        };
    {
        let mut stmt = conn.prepare(
            // The covering partial index, in (product, release) order: no table reads.
            "SELECT product, release, found_at, stage FROM defects INDEXED BY defects_counted \
             WHERE deleted = 0 AND status = 'valid'",
        )?;
        let mut rows = stmt.query([])?;
        let mut walk: Option<Walk> = None;
        while let Some(r) = rows.next()? {
            let product = r.get_ref(0)?.as_str()?;
            if walk.as_ref().is_none_or(|w| w.product != product) {
                if let Some(done) = walk.take() {
                    finish(&mut agg, done, &mut times);
                }
                walk = Some(Walk {
                    product: product.to_owned(),
                    releases: HashMap::new(),
                    unattributed: vec![0; config.pipeline.stages().len()],
                    unknown_stage: 0,
                    no_stage: 0,
                });
            }
            let w = walk.as_mut().expect("set above");
            let stage = match r.get_ref(3)? {
                ValueRef::Text(s) => match stages.get(s) {
                    Some(i) => Some(*i),
                    None => {
                        w.unknown_stage += 1;
                        unknown_stages += 1;
                        continue;
                    }
                },
                _ => {
                    w.no_stage += 1;
                    continue;
                }
            };
            let stage = stage.expect("matched above");
            match r.get_ref(1)? {
                ValueRef::Text(rel) => {
                    let found_at: Millis = r.get(2)?;
                    let rel = std::str::from_utf8(rel)?;
                    let seen = match w.releases.get_mut(rel) {
                        Some(s) => s,
                        None => w.releases.entry(rel.to_owned()).or_default(),
                    };
                    seen.total += 1;
                    seen.first_found = Some(seen.first_found.map_or(found_at, |f| f.min(found_at)));
                }
                _ => w.unattributed[stage] += 1,
            }
        }
        if let Some(done) = walk.take() {
            finish(&mut agg, done, &mut times);
        }
    }
    // Products known only by release times.
    let only_timed: Vec<String> = times.keys().cloned().collect();
    for product in only_timed {
        let w = Walk {
            product,
            releases: HashMap::new(),
            unattributed: vec![0; config.pipeline.stages().len()],
            unknown_stage: 0,
            no_stage: 0,
        };
        finish(&mut agg, w, &mut times);
    }
    let ranked_in = started.elapsed();
    // Resident releases in full: their release times, then one sequential
    // pass over the table (an indexed lookup per release costs more once
    // residents are many) adding the rows of resident releases only.
    let mut wanted: HashMap<String, HashMap<String, Option<Millis>>> = HashMap::new();
    for (product, ranks) in residents {
        let w = wanted.entry(product).or_default();
        for (rank, time) in ranks {
            w.insert(rank.name, time);
        }
    }
    for (product, releases) in &wanted {
        for (release, time) in releases {
            if time.is_some() {
                agg.set_release_meta(
                    product,
                    release,
                    &ReleaseMeta {
                        first_found: None,
                        time: Some((*time, vec![[0, 0]; config.maturity_ages.len()])),
                    },
                );
            }
        }
    }
    let mut stmt = conn.prepare(
        "SELECT product, release, stage, detected_by, cause, severity, found_at \
         FROM defects NOT INDEXED \
         WHERE deleted = 0 AND status = 'valid' AND release IS NOT NULL",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let product = r.get_ref(0)?.as_str()?;
        let release = r.get_ref(1)?.as_str()?;
        if !wanted.get(product).is_some_and(|w| w.contains_key(release)) {
            continue;
        }
        let text = |i: usize| -> rusqlite::Result<Option<&str>> {
            match r.get_ref(i)? {
                ValueRef::Text(t) => Ok(Some(
                    std::str::from_utf8(t).map_err(rusqlite::Error::Utf8Error)?,
                )),
                _ => Ok(None),
            }
        };
        let view = DefectView {
            product,
            release: Some(release),
            stage: text(2)?,
            detected_by: text(3)?,
            cause: text(4)?,
            severity: text(5)?,
            status: "valid",
            deleted: false,
            found_at: r.get(6)?,
        };
        if let Some(c) = Contribution::of(config, view) {
            if matches!(c.class, Class::Stage(_)) {
                agg.add(&c);
            }
        }
    }
    agg.refresh_times();
    tracing::info!(
        products = agg.products.len(),
        resident = agg.products.values().map(|p| p.releases.len()).sum::<usize>(),
        cold = agg.products.values().map(|p| p.cold.releases).sum::<u64>(),
        ranked_ms = ranked_in.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "aggregates loaded"
    );
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
