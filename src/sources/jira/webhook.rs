//! Jira webhooks (docs/api.md): `jira:issue_created|updated|deleted` upsert or
//! delete the issue, `jira:version_released` records a release time. The event
//! is named in the body (`webhookEvent`), not in a header.
//!
//! A defect is identified by Jira's numeric `issue.id` (an issue keeps it when
//! it moves and its key changes); its key (`PAY-123`) is its alias, the name
//! other records link to it by (docs/semantics.md, "Linked records"). The product is the project key (`PAY`),
//! mapped by `sources = ["jira:PAY"]`. The release is the earliest of the
//! issue's *Affects versions* (by release date, then by version id).

use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::event::{Change, DefectEvent, ProductRef, Status};
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::sources::conventions::{self, Mapped};
use crate::sources::jira::remote;
use crate::sources::links;
use crate::sources::webhook::{AdapterError, Ahead, At, Parsed, Stamp, delivery_id, release_event};

/// Source of Jira defects.
pub const SOURCE: &str = "jira";

/// Parses one Jira delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &Value,
    config: &Config,
    now: Millis,
) -> Result<Parsed, AdapterError> {
    let delivery = delivery_id(headers, "x-atlassian-webhook-identifier")?;
    let root = At::root(body);
    root.object()?;
    let event = root.get("webhookEvent").str()?;
    let mut parsed = match event {
        "jira:issue_created" | "jira:issue_updated" => issue(&root, config, now, false)?,
        "jira:issue_deleted" => issue(&root, config, now, true)?,
        "jira:version_released" => version(&root, config, now)?,
        _ => Parsed::ignore("unsupported_event", None),
    };
    parsed.delivery = delivery;
    Ok(parsed)
}

fn issue(
    root: &At<'_>,
    config: &Config,
    now: Millis,
    deleted: bool,
) -> Result<Parsed, AdapterError> {
    let deletion = deleted.then(|| event_time(root));
    let (item, unmapped) = issue_item(config, &root.get("issue"), deletion, now)?;
    Ok(Parsed {
        items: vec![item],
        unmapped,
        ..Parsed::default()
    })
}

/// The one conversion of a Jira issue object (the webhook's `issue`, an item
/// of the REST search's `issues` or `GET /rest/api/2/issue/{id}`: the same
/// shape, `id`, `key`, `fields`) into its defect event, ordered by
/// `fields.updated`; and the fields that did not map. `deletion` is
/// `Some` for a deleted issue, with the event's own time, which orders it
/// when the deletion comes without `fields.updated`.
pub fn issue_item(
    config: &Config,
    issue: &At<'_>,
    deletion: Option<Option<Stamp>>,
    now: Millis,
) -> Result<(Item, Vec<&'static str>), FieldError> {
    let jira = &config.webhooks.jira;
    let deleted = deletion.is_some();
    issue.object()?;
    let id = issue.get("id").id()?;
    let fields = issue.get("fields");
    fields.object()?;
    let project = fields.get("project").get("key");
    let namespace =
        conventions::sanitize(project.str()?).ok_or_else(|| project.err("must not be empty"))?;
    let updated_at = match fields.get("updated").time_opt(now)? {
        Some(t) => t,
        // A deletion may come without the fields' time: order it by the
        // event's own (epoch milliseconds).
        None if deleted => deletion
            .flatten()
            .ok_or_else(|| fields.get("updated").err("is required"))?
            .checked(now)?,
        None => return Err(fields.get("updated").err("is required")),
    };
    let found_at = fields.get("created").time_opt(now)?;
    let mut labels = Vec::new();
    for l in fields.get("labels").items()? {
        labels.push(l.str()?);
    }
    let issue_type = fields.get("issuetype").get("name").str_opt()?;
    let conv = &jira.conventions;
    let defect = conventions::is_defect(conv, &labels, issue_type);
    let mut unmapped = Vec::new();
    let change = match (deleted, defect) {
        (true, true) => Change::Delete,
        (_, false) => Change::Retract,
        (false, true) => {
            let (change, u) = upsert(config, &fields, &labels, found_at)?;
            unmapped = u;
            change
        }
    };
    Ok((
        Item::Defect(DefectEvent {
            source: SOURCE.into(),
            id,
            product: product(namespace),
            change,
            updated_at: Some(updated_at),
            links: remote::with_remote(
                config,
                issue,
                links::record_links(
                    config,
                    jira.links,
                    links::jira_alias(issue.get("key").value().and_then(Value::as_str)),
                    fields.get("description").raw(),
                ),
            ),
        }),
        unmapped,
    ))
}

/// The upsert of an issue that is a defect: its labels classified, the stage
/// field, the earliest affected version and the resolution read; and the
/// fields that did not map.
fn upsert(
    config: &Config,
    fields: &At<'_>,
    labels: &[&str],
    found_at: Option<Millis>,
) -> Result<(Change, Vec<&'static str>), FieldError> {
    let jira = &config.webhooks.jira;
    let conv = &jira.conventions;
    let Mapped {
        mut class,
        mut status,
        unmapped: u,
    } = conventions::classify(conv, config, SOURCE, labels);
    let mut unmapped = u;
    if let Some(field) = &jira.stage_field {
        let mut u = Vec::new();
        let value = field_text(&fields.get(field))?;
        let values: Vec<&str> = value.iter().map(String::as_str).collect();
        class.stage = conventions::stage(conv, config, &values, &mut u);
        unmapped.retain(|f| *f != "stage");
        unmapped.extend(u);
    }
    if class.release.is_none() {
        if let Some(v) = earliest_version(&fields.get("versions"))? {
            class.release = conventions::release(config, SOURCE, &[v], &mut unmapped);
        }
    }
    if status == Status::Valid {
        let resolution = fields
            .get("resolution")
            .get("name")
            .str_opt()?
            .map(|r| r.trim().to_lowercase());
        if let Some(r) = resolution {
            if jira.duplicate_resolutions.contains(&r) {
                status = Status::Duplicate;
            } else if jira.invalid_resolutions.contains(&r) {
                status = Status::Invalid;
            }
        }
    }
    let change = Change::Upsert {
        class,
        status,
        found_at,
    };
    Ok((change, unmapped))
}

/// The product of a project key.
pub fn product(key: String) -> ProductRef {
    ProductRef {
        kind: SOURCE.into(),
        namespace: key,
    }
}

/// The deletion of stored defect `id` (Jira's numeric issue id) of project
/// `key` at `at`, for an issue Jira no longer has (`sync` finds it gone).
pub fn gone(key: &str, id: &str, at: Millis) -> Item {
    Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id: id.to_owned(),
        product: product(key.to_owned()),
        change: Change::Delete,
        updated_at: Some(at),
        links: None,
    })
}

/// The event's `timestamp` (epoch milliseconds), when it is one.
fn event_time(root: &At<'_>) -> Option<Stamp> {
    root.get("timestamp").epoch_millis_opt()
}

/// The text of a custom field: a string, an option (`{"value": …}` or
/// `{"name": …}`), or an array of those.
fn field_text(at: &At<'_>) -> Result<Vec<String>, FieldError> {
    let one = |v: &At<'_>| -> Result<Option<String>, FieldError> {
        match v.value() {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Object(_)) => {
                let text = match v.get("value").str_opt()? {
                    Some(t) => Some(t),
                    None => v.get("name").str_opt()?,
                };
                Ok(text.map(str::to_owned))
            }
            Some(_) => Err(v.err("must be a string, an option or an array of them")),
        }
    };
    match at.value() {
        Some(Value::Array(_)) => {
            let mut out = Vec::new();
            for v in at.items()? {
                out.extend(one(&v)?);
            }
            Ok(out)
        }
        _ => Ok(one(at)?.into_iter().collect()),
    }
}

/// The earliest Affects version: by `releaseDate` (undated versions last), then
/// by numeric id (creation order).
fn earliest_version<'a>(versions: &At<'a>) -> Result<Option<&'a str>, FieldError> {
    let mut best: Option<((bool, String, u64), &'a str)> = None;
    for v in versions.items()? {
        let name = v.get("name").str()?;
        let date = v.get("releaseDate").str_opt()?.map(str::to_owned);
        let id = v
            .get("id")
            .value()
            .and_then(|i| match i {
                Value::String(s) => s.parse().ok(),
                other => other.as_u64(),
            })
            .unwrap_or(u64::MAX);
        let key = (date.is_none(), date.unwrap_or_default(), id);
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, name));
        }
    }
    Ok(best.map(|(_, n)| n))
}

/// `jira:version_released`: the version's release date when it has one, else
/// the time of the event.
fn version(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let jira = &config.webhooks.jira;
    let v = root.get("version");
    v.object()?;
    let project_id = v.get("projectId").id()?;
    let namespace = jira
        .project_keys
        .get(&project_id)
        .cloned()
        .unwrap_or(project_id);
    let marked = match (event_time(root), v.get("releaseDate").value()) {
        (Some(t), _) => t,
        (None, Some(_)) => Stamp::received(now),
        (None, None) => {
            return Err(root
                .get("timestamp")
                .err("is required (epoch milliseconds) when the version has no releaseDate")
                .into());
        }
    };
    Ok(version_item(
        config,
        product(namespace),
        &v,
        Marked::Event(marked),
        now,
    )?)
}

/// When a version was marked released, as far as the caller knows.
#[derive(Debug, Clone)]
pub enum Marked {
    /// At this time (the `jira:version_released` event's).
    Event(Stamp),
    /// Unknown: the version was listed (`GET /rest/api/2/project/{key}/versions`).
    Listed,
}

/// The one conversion of a Jira version object (the webhook's `version`, an
/// item of the project's versions) into a release time: its `releaseDate`,
/// unless it was marked released earlier than that date (a planned date the
/// version beat, or a date in a time zone ahead of UTC): then it shipped when
/// marked. A listed version counts only once `released`, and only with a
/// `releaseDate` that is not ahead of now (without the event's time, a
/// version released early or undated has no time `sync` could tell; it is
/// ignored, and its webhook's time stays).
pub fn version_item(
    config: &Config,
    product: ProductRef,
    v: &At<'_>,
    marked: Marked,
    now: Millis,
) -> Result<Parsed, FieldError> {
    v.object()?;
    let date = v.get("releaseDate").stamp_opt()?;
    let shipped = match (date, marked) {
        (Some(date), Marked::Event(marked)) => date.earlier(marked),
        (None, Marked::Event(marked)) => marked,
        (_, Marked::Listed) if v.get("released").bool_opt()? != Some(true) => {
            return Ok(Parsed::ignore("unreleased_version", None));
        }
        (Some(date), Marked::Listed) if !date.is_ahead(now) => date,
        (_, Marked::Listed) => return Ok(Parsed::ignore("no_release_date", None)),
    };
    release_event(config, product, &v.get("name"), shipped, Ahead::Refuse, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    /// A version as the project's versions list it: only a released one
    /// with a date that has come counts.
    #[test]
    fn listed_versions_count_once_released_with_a_past_date() {
        let config = Config::from_settings(Settings::default()).expect("valid");
        let now = 1_800_000_000_000;
        let parse = |v: Value| {
            version_item(
                &config,
                product("PAY".into()),
                &At::root(&v),
                Marked::Listed,
                now,
            )
            .expect("parsed")
        };
        let shipped = parse(
            json!({"id": "10000", "name": "2.4.0", "released": true, "releaseDate": "2024-05-01", "projectId": 10002}),
        );
        assert_eq!(
            shipped.items,
            vec![Item::Release(crate::model::event::ReleaseEvent {
                product: product("PAY".into()),
                release: "2.4.0".into(),
                released_at: 1_714_521_600_000,
            })]
        );
        for v in [
            json!({"name": "2.5.0", "released": false, "releaseDate": "2024-05-01"}),
            json!({"name": "2.5.0", "released": true}),
            json!({"name": "2.5.0", "released": true, "releaseDate": "2099-01-01"}),
        ] {
            let p = parse(v.clone());
            assert!(p.items.is_empty() && p.ignored.is_some(), "{v}: {p:?}");
        }
    }
}
