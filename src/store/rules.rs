//! What one event does to the stored state: the ordering and merge rules of
//! defect events and the release-time upsert, which the one write engine
//! (`engine::Engine::apply`) applies for every path that stores events.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::defect::{Row, RowRef};
use crate::config::Config;
use crate::model::event::{Change, Classification, DefectEvent, ProductRef, ReleaseEvent, Status};
use crate::model::time::Millis;

/// What an item did, as counted in an [`super::Outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    Accepted,
    Unchanged,
    Stale,
    /// A retraction of a defect that was never stored.
    Ignored,
}

/// What one defect event does to the stored row.
// Returned and consumed at once, one per event: boxing the row would cost an
// allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Decision {
    /// Older than the stored state: not applied.
    Stale,
    /// A retraction of a defect never stored: nothing to do.
    Ignored,
    /// The same state; `touch` is the event's time, recorded so that an
    /// older event arriving later is stale.
    Unchanged { touch: Option<Millis> },
    /// The row to store.
    Put(Row),
}

impl Decision {
    /// How the decision is counted.
    pub(super) fn effect(&self) -> Effect {
        match self {
            Decision::Stale => Effect::Stale,
            Decision::Ignored => Effect::Ignored,
            Decision::Unchanged { .. } => Effect::Unchanged,
            Decision::Put(_) => Effect::Accepted,
        }
    }
}

/// Release keys by product kind and raw name, normalised once per kind and
/// name ([`defect::release_key`]).
#[derive(Default)]
pub(super) struct ReleaseKeys {
    /// Per product kind (a handful: the generic API's and one per vendor),
    /// each raw name's place in `keys`.
    kinds: Vec<(String, HashMap<String, usize>)>,
    keys: Vec<Option<String>>,
}

impl ReleaseKeys {
    /// The key of release `raw` from a source of `kind`.
    pub(super) fn key(&mut self, config: &Config, kind: &str, raw: &str) -> Option<String> {
        self.key_ref(config, kind, raw).map(str::to_owned)
    }

    /// The key of release `raw` from a source of `kind`, borrowed: one hash
    /// lookup for a name seen before, with nothing allocated.
    pub(super) fn key_ref(&mut self, config: &Config, kind: &str, raw: &str) -> Option<&str> {
        let k = match self.kinds.iter().position(|(k, _)| k == kind) {
            Some(k) => k,
            None => {
                self.kinds.push((kind.to_owned(), HashMap::new()));
                self.kinds.len() - 1
            }
        };
        let names = &mut self.kinds[k].1;
        let at = match names.get(raw) {
            Some(&at) => at,
            None => {
                self.keys
                    .push(config.release_rules.key(kind, raw).map(|(k, _)| k));
                names.insert(raw.to_owned(), self.keys.len() - 1);
                self.keys.len() - 1
            }
        };
        self.keys[at].as_deref()
    }
}

/// The ordering rules of a defect event against the stored row `old`: older
/// never wins; on equal times a deletion wins, otherwise the later arrival
/// does; a release attached by a later signal never reorders.
pub(super) fn decide(
    config: &Config,
    ev: &DefectEvent,
    old: Option<&Row>,
    received_at: Millis,
    keys: &mut ReleaseKeys,
) -> Decision {
    let updated_at = ev.updated_at.unwrap_or(received_at);
    if let Change::AttachRelease { release } = &ev.change {
        return attach_release(config, ev, release, old, received_at, keys);
    }
    let deleting = matches!(
        ev.change,
        Change::Delete | Change::Retract | Change::Restore { .. }
    );
    if let Some(old) = old {
        if updated_at < old.updated_at || (updated_at == old.updated_at && old.deleted && !deleting)
        {
            return Decision::Stale;
        }
    }
    let new = match (&ev.change, old) {
        (Change::Delete | Change::Retract, Some(old)) => Row {
            deleted: true,
            updated_at,
            ..old.clone()
        },
        // A retraction of what was never stored changes nothing.
        (Change::Retract, None) => return Decision::Ignored,
        (Change::Delete, None) => Row {
            updated_at,
            ..tombstone(config, ev, received_at)
        },
        // An upsert or a restore (`AttachRelease` was handled above, before
        // the ordering rules).
        _ => match upsert_row(config, ev, old, received_at, keys) {
            Some(row) => row.to_row(),
            None => return Decision::Unchanged { touch: None },
        },
    };
    match old {
        Some(old) if old.same_state(&new) => Decision::Unchanged {
            touch: Some(updated_at),
        },
        _ => Decision::Put(new),
    }
}

/// What [`decide`] stores for an upsert of a defect never stored, borrowed
/// (the writer inserts it unless the key turns out stored); `None` for the
/// other changes, which the writer decides against a lookup.
pub(super) fn new_row<'a>(
    config: &'a Config,
    ev: &'a DefectEvent,
    received_at: Millis,
    keys: &'a mut ReleaseKeys,
) -> Option<RowRef<'a>> {
    if matches!(ev.change, Change::Restore { .. }) {
        return None;
    }
    upsert_row(config, ev, None, received_at, keys)
}

/// The row an upsert stores over `old` (a release-keeping upsert without a
/// release keeps `old`'s, a missing `found_at` is `old`'s), borrowed; for a
/// [`Change::Restore`], its own values, deleted; `None` for any other change.
fn upsert_row<'a>(
    config: &'a Config,
    ev: &'a DefectEvent,
    old: Option<&'a Row>,
    received_at: Millis,
    keys: &'a mut ReleaseKeys,
) -> Option<RowRef<'a>> {
    let (Change::Upsert {
        class,
        status,
        found_at,
    }
    | Change::UpsertKeepRelease {
        class,
        status,
        found_at,
    }
    | Change::Restore {
        class,
        status,
        found_at,
    }) = &ev.change
    else {
        return None;
    };
    let keep = matches!(ev.change, Change::UpsertKeepRelease { .. });
    let release = match (&class.release, old) {
        (None, Some(old)) if keep => old.release_raw.as_deref(),
        (r, _) => r.as_deref(),
    };
    let view = upsert_view(
        config,
        &Upsert {
            source: &ev.source,
            id: &ev.id,
            product: &ev.product,
            class,
            release,
            status: *status,
            found_at: found_at.or(old.map(|o| o.found_at)).unwrap_or(received_at),
            updated_at: ev.updated_at.unwrap_or(received_at),
        },
        keys,
    );
    Some(RowRef {
        deleted: matches!(ev.change, Change::Restore { .. }),
        ..view
    })
}

/// An upsert's values, borrowed from its event.
struct Upsert<'a> {
    pub source: &'a str,
    pub id: &'a str,
    pub product: &'a ProductRef,
    /// Its classification; the release is `release`.
    pub class: &'a Classification,
    /// The raw release name the row keeps.
    pub release: Option<&'a str>,
    pub status: Status,
    pub found_at: Millis,
    pub updated_at: Millis,
}

/// The row an upsert stores, borrowed: the event's values keyed by the
/// configuration (owned with [`RowRef::to_row`] when it is kept; a new
/// defect's row is inserted straight from it).
fn upsert_view<'a>(config: &'a Config, u: &Upsert<'a>, keys: &'a mut ReleaseKeys) -> RowRef<'a> {
    RowRef {
        source: u.source,
        id: u.id,
        product_kind: &u.product.kind,
        product_ns: &u.product.namespace,
        product: config.product_name(&u.product.kind, &u.product.namespace),
        release_raw: u.release,
        release: u
            .release
            .and_then(|raw| keys.key_ref(config, &u.product.kind, raw)),
        stage: u.class.stage.as_deref(),
        detected_by: u.class.detected_by.as_deref(),
        cause: u.class.cause.as_deref(),
        severity: u.class.severity.as_deref(),
        team: u.class.team.as_deref(),
        status: u.status.as_str(),
        deleted: false,
        found_at: u.found_at,
        updated_at: u.updated_at,
    }
}

/// A deleted row holding only the defect's identity and product.
fn tombstone(config: &Config, ev: &DefectEvent, received_at: Millis) -> Row {
    Row {
        source: ev.source.clone(),
        id: ev.id.clone(),
        product_kind: ev.product.kind.clone(),
        product_ns: ev.product.namespace.clone(),
        product: config.product_for(&ev.product.kind, &ev.product.namespace),
        release_raw: None,
        release: None,
        stage: None,
        detected_by: None,
        cause: None,
        severity: None,
        team: None,
        status: "valid".into(),
        deleted: true,
        found_at: received_at,
        updated_at: received_at,
    }
}

/// [`Change::AttachRelease`]: the first release wins, ordering is untouched.
fn attach_release(
    config: &Config,
    ev: &DefectEvent,
    raw: &str,
    old: Option<&Row>,
    received_at: Millis,
    keys: &mut ReleaseKeys,
) -> Decision {
    let base = match old {
        Some(o) if o.release_raw.is_some() => return Decision::Unchanged { touch: None },
        Some(o) => o.clone(),
        // Not announced yet: a tombstone that orders before any real event
        // (updated_at 0), so the announcing event replaces it and keeps the
        // release.
        None => Row {
            updated_at: 0,
            ..tombstone(config, ev, received_at)
        },
    };
    Decision::Put(Row {
        release: keys.key(config, &base.product_kind, raw),
        release_raw: Some(raw.to_owned()),
        ..base
    })
}

/// A release-time event keyed by the configuration: the row it stores.
pub(super) struct ReleaseTimeRow<'a> {
    ev: &'a ReleaseEvent,
    pub product: String,
    pub release: String,
    prerelease: bool,
}

impl<'a> ReleaseTimeRow<'a> {
    /// `None` when the release name is empty once normalised (counted stale).
    pub(super) fn of(config: &Config, ev: &'a ReleaseEvent) -> Option<Self> {
        let (release, prerelease) = config.release_rules.key(&ev.product.kind, &ev.release)?;
        Some(Self {
            ev,
            product: config.product_for(&ev.product.kind, &ev.product.namespace),
            release,
            prerelease,
        })
    }

    /// Stores the time; whether it changed what was stored.
    pub(super) fn upsert(&self, tx: &Connection) -> rusqlite::Result<bool> {
        let ev = self.ev;
        let changed = tx
            .prepare_cached(
                "INSERT INTO release_times VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (product_kind, product_ns, release_raw) \
                 DO UPDATE SET released_at = excluded.released_at \
                 WHERE released_at != excluded.released_at",
            )?
            .execute(params![
                ev.product.kind,
                ev.product.namespace,
                ev.release,
                self.product,
                self.release,
                self.prerelease,
                ev.released_at
            ])?;
        Ok(changed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn event(change: Change, updated_at: Option<Millis>) -> DefectEvent {
        DefectEvent {
            source: "jira".into(),
            id: "PAY-1".into(),
            product: ProductRef {
                kind: String::new(),
                namespace: "payments".into(),
            },
            change,
            updated_at,
            links: None,
        }
    }

    /// The row the writer inserts first for a defect never stored is the
    /// one the rules put for it; changes that are not upserts are left to
    /// the rules.
    #[test]
    fn a_new_row_is_what_the_rules_put_for_a_defect_never_stored() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let received = 1_800_000_000_000;
        for found_at in [Some(1_700_000_000_000), None] {
            for updated_at in [Some(1_700_000_100_000), None] {
                for release in [Some("v1.2.0"), None] {
                    for keep in [false, true] {
                        let class = Classification {
                            stage: Some("qa".into()),
                            release: release.map(str::to_owned),
                            cause: Some("coverage".into()),
                            ..Classification::default()
                        };
                        let status = Status::Valid;
                        let change = if keep {
                            Change::UpsertKeepRelease {
                                class,
                                status,
                                found_at,
                            }
                        } else {
                            Change::Upsert {
                                class,
                                status,
                                found_at,
                            }
                        };
                        let ev = event(change, updated_at);
                        let mut keys = ReleaseKeys::default();
                        let Decision::Put(put) = decide(&config, &ev, None, received, &mut keys)
                        else {
                            panic!("an upsert of a new defect is put");
                        };
                        let mut keys = ReleaseKeys::default();
                        let new = new_row(&config, &ev, received, &mut keys).map(RowRef::to_row);
                        assert_eq!(
                            new,
                            Some(put),
                            "{found_at:?} {updated_at:?} {release:?} {keep}"
                        );
                    }
                }
            }
        }
        let mut keys = ReleaseKeys::default();
        for change in [
            Change::Delete,
            Change::Retract,
            Change::AttachRelease {
                release: "1.0".into(),
            },
        ] {
            let ev = event(change, Some(1));
            assert!(new_row(&config, &ev, received, &mut keys).is_none());
        }
    }
}
