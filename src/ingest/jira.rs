//! Jira webhooks (SPEC §4): `jira:issue_created|updated|deleted` upsert or
//! delete the issue, `jira:version_released` records a release time. The event
//! is named in the body (`webhookEvent`), not in a header.
//!
//! A defect is identified by Jira's numeric `issue.id` (an issue keeps it when
//! it moves and its key changes). The product is the project key (`PAY`),
//! mapped by `sources = ["jira:PAY"]`. The release is the earliest of the
//! issue's *Affects versions* (by release date, then by version id).

use axum::http::HeaderMap;
use serde_json::Value;

use super::FieldError;
use super::conventions::{self, Mapped};
use super::webhook::{AdapterError, Ahead, At, Parsed, Stamp, delivery_id, release_event};
use crate::config::Config;
use crate::model::event::{Change, DefectEvent, ProductRef, Status};
use crate::model::time::Millis;
use crate::store::Item;

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
    let jira = &config.webhooks.jira;
    let issue = root.get("issue");
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
        None if deleted => event_time(root)
            .ok_or_else(|| fields.get("updated").err("is required"))?
            .checked(now)?,
        None => return Err(fields.get("updated").err("is required").into()),
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
            let Mapped {
                mut class,
                mut status,
                unmapped: u,
            } = conventions::classify(conv, config, SOURCE, &labels);
            unmapped = u;
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
            Change::Upsert {
                class,
                status,
                found_at,
            }
        }
    };
    Ok(Parsed {
        items: vec![Item::Defect(DefectEvent {
            source: SOURCE.into(),
            id,
            product: ProductRef {
                kind: SOURCE.into(),
                namespace,
            },
            change,
            updated_at: Some(updated_at),
        })],
        unmapped,
        ..Parsed::default()
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
/// the time of the event. A release date after the event is a planned date the
/// version beat (released early, or a date in a time zone ahead of UTC): it
/// shipped when it was marked released, at the event's time.
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
    let marked = event_time(root);
    let shipped = match (v.get("releaseDate").stamp_opt()?, marked) {
        (Some(date), marked) => date.earlier(marked.unwrap_or(Stamp::received(now))),
        (None, Some(marked)) => marked,
        (None, None) => {
            return Err(root
                .get("timestamp")
                .err("is required (epoch milliseconds) when the version has no releaseDate")
                .into());
        }
    };
    let product = ProductRef {
        kind: SOURCE.into(),
        namespace,
    };
    Ok(release_event(
        config,
        product,
        &v.get("name"),
        shipped,
        Ahead::Refuse,
        now,
    )?)
}
