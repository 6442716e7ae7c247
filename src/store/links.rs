//! Linked records (docs/semantics.md, "Linked records"): records joined by
//! links, directly or through a chain, are one defect. What the store keeps:
//! each record's own links (`links`), and for every group of two or more
//! stored records one row of source [`GROUP_SOURCE`] holding the group's
//! values ([`group_row`]), counted in place of its records, which are marked
//! `folded` and leave the counted index. Everything that counts (the load
//! at start, a cold release read back, the earliest `found_at`) reads the
//! counted index, so it counts each group once without knowing of links.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::{Connection, params};

use super::defect::Row;
use crate::aggregate::Contribution;
use crate::config::Config;

/// The source of a group's row: empty, a name no source can write (every
/// ingestion path refuses an empty source).
pub(super) const GROUP_SOURCE: &str = "";

/// A record's identity, `(source, id)`.
pub(super) type Key = (String, String);

/// The id of the row of the group whose least stored record is `rep`.
pub(super) fn group_id(rep: &Key) -> String {
    format!("{}\u{1f}{}", rep.0, rep.1)
}

/// The least stored record of the group whose row has id `id`: the inverse
/// of [`group_id`].
pub(super) fn group_rep(id: &str) -> Option<Key> {
    let (source, id) = id.split_once('\u{1f}')?;
    Some((source.to_owned(), id.to_owned()))
}

/// The stored records of `key`'s link group (itself, when stored, and no
/// other: a group of one), in key order.
pub(super) fn members(conn: &Connection, key: &Key) -> rusqlite::Result<Vec<Key>> {
    let mut nodes = BTreeSet::new();
    component(conn, key, &mut nodes)?;
    Ok(rows(conn, &nodes)?.into_keys().collect())
}

/// Whether any link is stored.
pub(super) fn any(tx: &Connection) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM links)")?
        .query_row([], |r| r.get(0))
}

/// Whether any stored link is held by or points at a record of `source`
/// (two probes of an index's first column).
pub(super) fn touches(tx: &Connection, source: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM links WHERE source = ?1) \
         OR EXISTS (SELECT 1 FROM links WHERE to_source = ?1)",
    )?
    .query_row(params![source], |r| r.get(0))
}

/// Whether record `(source, id)` holds a link or is linked to.
pub(super) fn has_edges(tx: &Connection, source: &str, id: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM links WHERE source = ?1 AND id = ?2) \
         OR EXISTS (SELECT 1 FROM links WHERE to_source = ?1 AND to_id = ?2)",
    )?
    .query_row(params![source, id], |r| r.get(0))
}

/// The links record `key` holds.
pub(super) fn outgoing(tx: &Connection, key: &Key) -> rusqlite::Result<BTreeSet<Key>> {
    let mut stmt =
        tx.prepare_cached("SELECT to_source, to_id FROM links WHERE source = ?1 AND id = ?2")?;
    let rows = stmt.query_map(params![key.0, key.1], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// The records linked to `key` from either end.
fn neighbours(tx: &Connection, key: &Key) -> rusqlite::Result<Vec<Key>> {
    let mut out: Vec<Key> = outgoing(tx, key)?.into_iter().collect();
    let mut stmt =
        tx.prepare_cached("SELECT source, id FROM links WHERE to_source = ?1 AND to_id = ?2")?;
    let rows = stmt.query_map(params![key.0, key.1], |r| Ok((r.get(0)?, r.get(1)?)))?;
    for r in rows {
        out.push(r?);
    }
    Ok(out)
}

/// Adds every record reachable from `start` over the stored links (`start`
/// included) to `into`. Bounded: links are only stored while a group holds
/// at most [`crate::model::event::MAX_GROUP_RECORDS`] records.
pub(super) fn component(
    tx: &Connection,
    start: &Key,
    into: &mut BTreeSet<Key>,
) -> rusqlite::Result<()> {
    if !into.insert(start.clone()) {
        return Ok(());
    }
    let mut queue = vec![start.clone()];
    while let Some(k) = queue.pop() {
        for n in neighbours(tx, &k)? {
            if into.insert(n.clone()) {
                queue.push(n);
            }
        }
    }
    Ok(())
}

/// Every stored link held by one of `nodes` (a union of whole groups, so
/// every link leads into `nodes`).
pub(super) fn edges_among(
    tx: &Connection,
    nodes: &BTreeSet<Key>,
) -> rusqlite::Result<BTreeSet<(Key, Key)>> {
    let mut out = BTreeSet::new();
    for n in nodes {
        for t in outgoing(tx, n)? {
            out.insert((n.clone(), t));
        }
    }
    Ok(out)
}

/// Replaces the links record `key` holds with `to`.
pub(super) fn replace(tx: &Connection, key: &Key, to: &BTreeSet<Key>) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM links WHERE source = ?1 AND id = ?2")?
        .execute(params![key.0, key.1])?;
    let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO links VALUES (?1, ?2, ?3, ?4)")?;
    for t in to {
        insert.execute(params![key.0, key.1, t.0, t.1])?;
    }
    Ok(())
}

/// The groups `nodes` fall into over `edges`: each group's records in key
/// order, the groups in order of their least record.
pub(super) fn partition(nodes: &BTreeSet<Key>, edges: &BTreeSet<(Key, Key)>) -> Vec<Vec<Key>> {
    let index: HashMap<&Key, usize> = nodes.iter().enumerate().map(|(i, k)| (k, i)).collect();
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (a, b) in edges {
        if let (Some(&a), Some(&b)) = (index.get(a), index.get(b)) {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            // The least index roots its group, so groups come out ordered.
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut groups: BTreeMap<usize, Vec<Key>> = BTreeMap::new();
    for (i, k) in nodes.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(k.clone());
    }
    groups.into_values().collect()
}

/// Whether a record is monitoring's (Sentry's) rather than a tracker's, whose
/// values a person set.
fn monitoring(r: &Row) -> bool {
    r.product_kind == "sentry"
}

/// A stage's place when the earliest is chosen: a configured stage by its
/// pipeline index, then a name the pipeline does not know, then none.
fn stage_rank<'r>(config: &Config, r: &'r Row) -> (u8, usize, &'r str) {
    match r.stage.as_deref() {
        Some(s) => match config.pipeline.index(s) {
            Some(i) => (0, i, ""),
            None => (1, 0, s),
        },
        None => (2, 0, ""),
    }
}

/// The row that counts a group of two or more stored records, as one defect
/// (the rule and its table of cases are in docs/semantics.md):
///
/// - deleted only when every record is; otherwise only the records not
///   deleted ("live") take part;
/// - invalid (its status the most telling of them: `duplicate` over
///   `invalid`) only when every live tracker record is invalid or a
///   duplicate; a group of monitoring records alone only when every one is;
/// - its stage the earliest among its valid records (configured stages in
///   pipeline order first, then unknown names, then none);
/// - its `found_at` the earliest among its valid records;
/// - its release, cause, severity and team each the first value given in
///   the order: tracker records before monitoring ones, then by stage,
///   `found_at` and key; the product (and the raw names keyed with it) that
///   of the first record in that order, the release that of the record
///   that gives it;
/// - `detected_by` the earliest-found valid record's when that is a
///   monitoring record (monitoring saw it first), else the first given in
///   that order.
///
/// A function of the set of records alone: the order in which records and
/// links arrived never matters.
pub(super) fn group_row(config: &Config, members: &[&Row]) -> Row {
    let mut sorted: Vec<&Row> = members.to_vec();
    sorted.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    let rep = sorted[0];
    let id = group_id(&(rep.source.clone(), rep.id.clone()));
    let updated_at = sorted.iter().map(|r| r.updated_at).max().unwrap_or(0);
    let live: Vec<&Row> = sorted.iter().copied().filter(|r| !r.deleted).collect();
    if live.is_empty() {
        return Row {
            source: GROUP_SOURCE.into(),
            id,
            deleted: true,
            updated_at,
            ..rep.clone()
        };
    }
    let trackers: Vec<&Row> = live.iter().copied().filter(|r| !monitoring(r)).collect();
    let deciding = if trackers.is_empty() {
        &live
    } else {
        &trackers
    };
    let invalid = deciding.iter().all(|r| r.status != "valid");
    let status = if !invalid {
        "valid"
    } else if deciding.iter().any(|r| r.status == "duplicate") {
        "duplicate"
    } else {
        "invalid"
    };
    let valid: Vec<&Row> = live
        .iter()
        .copied()
        .filter(|r| r.status == "valid")
        .collect();
    // An invalid group shows what its live records hold (it counts nowhere).
    let mut pool = if valid.is_empty() { live } else { valid };
    pool.sort_by(|a, b| {
        (monitoring(a), stage_rank(config, a), a.found_at).cmp(&(
            monitoring(b),
            stage_rank(config, b),
            b.found_at,
        ))
    });
    let first = pool[0];
    let stage = pool
        .iter()
        .min_by_key(|r| stage_rank(config, r))
        .and_then(|r| r.stage.clone());
    let earliest = pool
        .iter()
        .min_by_key(|r| (r.found_at, monitoring(r)))
        .copied()
        .unwrap_or(first);
    let fill = |f: fn(&Row) -> Option<&String>| pool.iter().find_map(|r| f(r)).cloned();
    let with_release = pool.iter().find(|r| r.release_raw.is_some());
    let detected_by = if monitoring(earliest) && earliest.detected_by.is_some() {
        earliest.detected_by.clone()
    } else {
        fill(|r| r.detected_by.as_ref())
    };
    Row {
        source: GROUP_SOURCE.into(),
        id,
        product_kind: first.product_kind.clone(),
        product_ns: first.product_ns.clone(),
        product: first.product.clone(),
        release_raw: with_release.and_then(|r| r.release_raw.clone()),
        release: with_release.and_then(|r| r.release.clone()),
        stage,
        detected_by,
        cause: fill(|r| r.cause.as_ref()),
        severity: fill(|r| r.severity.as_ref()),
        team: fill(|r| r.team.as_ref()),
        status: status.into(),
        deleted: false,
        found_at: earliest.found_at,
        updated_at,
    }
}

/// What `nodes` (a union of whole groups) count now: their records not
/// folded, and their groups' rows; and the product of each folded record.
pub(super) fn counted(
    tx: &Connection,
    config: &Config,
    nodes: &BTreeSet<Key>,
) -> rusqlite::Result<(Vec<Contribution>, Vec<String>)> {
    let mut out = Vec::new();
    let mut products = Vec::new();
    let mut folded =
        tx.prepare_cached("SELECT folded, product FROM defects WHERE source = ?1 AND id = ?2")?;
    for k in nodes {
        let f: Option<(bool, String)> = rusqlite::OptionalExtension::optional(
            folded.query_row(params![k.0, k.1], |r| Ok((r.get(0)?, r.get(1)?))),
        )?;
        let f = f.map(|(f, product)| {
            if f {
                products.push(product);
            }
            f
        });
        if f == Some(false) {
            if let Some(row) = Row::get(tx, &k.0, &k.1)? {
                out.extend(row.contribution(config));
            }
        }
        if let Some(row) = Row::get(tx, GROUP_SOURCE, &group_id(k))? {
            out.extend(row.contribution(config));
        }
    }
    Ok((out, products))
}

/// The stored records among `nodes`.
pub(super) fn rows(tx: &Connection, nodes: &BTreeSet<Key>) -> rusqlite::Result<BTreeMap<Key, Row>> {
    let mut out = BTreeMap::new();
    for k in nodes {
        if let Some(r) = Row::get(tx, &k.0, &k.1)? {
            out.insert(k.clone(), r);
        }
    }
    Ok(out)
}

/// What `nodes` store once regrouped: the groups' rows, and each stored
/// record with whether it is folded into one.
pub(super) struct Regrouped {
    pub groups: Vec<Row>,
    pub folded: Vec<(Key, bool)>,
}

impl Regrouped {
    /// The groups of `nodes` over `edges`, of the records `rows`.
    pub(super) fn of(
        config: &Config,
        nodes: &BTreeSet<Key>,
        edges: &BTreeSet<(Key, Key)>,
        rows: &BTreeMap<Key, Row>,
    ) -> Self {
        let mut groups = Vec::new();
        let mut folded = Vec::new();
        for part in partition(nodes, edges) {
            let members: Vec<&Row> = part.iter().filter_map(|k| rows.get(k)).collect();
            let fold = members.len() >= 2;
            if fold {
                groups.push(group_row(config, &members));
            }
            for k in part.iter().filter(|k| rows.contains_key(*k)) {
                folded.push((k.clone(), fold));
            }
        }
        Self { groups, folded }
    }

    /// What they count: the groups' rows and the records not folded.
    pub(super) fn contributions(
        &self,
        config: &Config,
        rows: &BTreeMap<Key, Row>,
    ) -> Vec<Contribution> {
        let mut out: Vec<Contribution> = self
            .groups
            .iter()
            .filter_map(|g| g.contribution(config))
            .collect();
        for (k, f) in &self.folded {
            if !f {
                out.extend(rows.get(k).and_then(|r| r.contribution(config)));
            }
        }
        out
    }

    /// Writes them for `nodes`: the groups' old rows dropped, the new ones
    /// stored, each record's `folded` set.
    pub(super) fn write(&self, tx: &Connection, nodes: &BTreeSet<Key>) -> rusqlite::Result<()> {
        let mut drop = tx.prepare_cached("DELETE FROM defects WHERE source = ?1 AND id = ?2")?;
        for k in nodes {
            drop.execute(params![GROUP_SOURCE, group_id(k)])?;
        }
        for g in &self.groups {
            g.put(tx)?;
        }
        let mut fold = tx.prepare_cached(
            "UPDATE defects SET folded = ?3 WHERE source = ?1 AND id = ?2 AND folded != ?3",
        )?;
        for (k, f) in &self.folded {
            fold.execute(params![k.0, k.1, f])?;
        }
        Ok(())
    }
}

/// Every group computed again from the stored records and links (after a
/// re-keying, or a changed pipeline, which the groups' values depend on).
pub(crate) fn regroup_all(tx: &Connection, config: &Config) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM defects WHERE source = ?1",
        params![GROUP_SOURCE],
    )?;
    tx.execute("UPDATE defects SET folded = 0 WHERE folded = 1", [])?;
    let mut nodes = BTreeSet::new();
    let mut edges = BTreeSet::new();
    {
        let mut stmt = tx.prepare("SELECT source, id, to_source, to_id FROM links")?;
        let mut rs = stmt.query([])?;
        while let Some(r) = rs.next()? {
            let a: Key = (r.get(0)?, r.get(1)?);
            let b: Key = (r.get(2)?, r.get(3)?);
            nodes.insert(a.clone());
            nodes.insert(b.clone());
            edges.insert((a, b));
        }
    }
    let stored = rows(tx, &nodes)?;
    Regrouped::of(config, &nodes, &edges, &stored).write(tx, &BTreeSet::new())
}
