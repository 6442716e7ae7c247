//! Sentry integration-platform webhooks (SPEC §4). An `issue` resource is a
//! defect found in production by monitoring (both configurable); an `error`
//! resource attributes its issue to the release it carries (the first one
//! wins). Issue payloads carry no release: on `created`, the handler asks
//! Sentry's issue API for `firstRelease` when a token is configured.
//!
//! A defect is identified by Sentry's issue id; the product is the project slug,
//! mapped by `sources = ["sentry:payments-api"]`.
//!
//! Issue payloads have no update time, and `lastSeen` (the issue's last event)
//! does not move when its status does: archiving and unarchiving an issue send
//! two snapshots with the same `lastSeen`, where the deletion-wins rule on
//! equal times would keep an `archived = "delete"` issue deleted for good. So
//! a snapshot is ordered by the later of `lastSeen` and `Sentry-Hook-Timestamp`
//! (when Sentry sent it, Unix seconds): a status change orders after the one
//! before it, and a redelivery of an older snapshot (same bytes, same header)
//! stays stale. Two changes within one second of each other cannot be told
//! apart (a deletion then wins). Sentry sends no stable delivery id
//! (`Request-ID` is random per attempt), so nothing is deduplicated by
//! delivery; a repeated snapshot is simply unchanged.

use axum::http::HeaderMap;
use serde_json::Value;

use super::FieldError;
use super::conventions;
use super::webhook::{AdapterError, At, FollowUp, Parsed, Stamp, header};
use crate::config::Config;
use crate::config::webhooks::Disposition;
use crate::model::event::{Change, Classification, DefectEvent, ProductRef, Status};
use crate::model::time::Millis;
use crate::store::Item;

/// Source of Sentry defects.
pub const SOURCE: &str = "sentry";

/// Parses one Sentry delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &Value,
    config: &Config,
    now: Millis,
) -> Result<Parsed, AdapterError> {
    let resource = header(headers, "sentry-hook-resource")?
        .ok_or_else(|| AdapterError::Header("missing Sentry-Hook-Resource header".into()))?;
    if resource.len() > 64
        || !resource
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
    {
        return Err(AdapterError::Header(format!(
            "Sentry-Hook-Resource `{resource}` is not a Sentry resource name"
        )));
    }
    let root = At::root(body);
    root.object()?;
    match resource {
        "issue" | "error" if !config.webhooks.sentry.count_issues => {
            Ok(Parsed::ignore("not_a_defect", None))
        }
        "issue" => Ok(issue(&root, hook_time(headers)?, config, now)?),
        "error" => Ok(error(&root)?),
        _ => Ok(Parsed::ignore("unsupported_event", None)),
    }
}

/// `Sentry-Hook-Timestamp`: when Sentry sent the delivery (Unix seconds).
fn hook_time(headers: &HeaderMap) -> Result<Option<Stamp>, AdapterError> {
    const NAME: &str = "Sentry-Hook-Timestamp";
    let Some(v) = header(headers, NAME)? else {
        return Ok(None);
    };
    v.parse::<i64>()
        .ok()
        .filter(|s| *s >= 0)
        .and_then(|s| s.checked_mul(1000))
        .map(|ms| Some(Stamp::new(NAME, v, ms)))
        .ok_or_else(|| AdapterError::Header(format!("{NAME} `{v}` is not Unix seconds")))
}

fn issue(
    root: &At<'_>,
    sent: Option<Stamp>,
    config: &Config,
    now: Millis,
) -> Result<Parsed, FieldError> {
    let sentry = &config.webhooks.sentry;
    let action = root.get("action").str()?;
    let issue = root.get("data").get("issue");
    issue.object()?;
    let id = issue.get("id").id()?;
    let slug = issue.get("project").get("slug");
    let namespace =
        conventions::sanitize(slug.str()?).ok_or_else(|| slug.err("must not be empty"))?;
    let product = ProductRef {
        kind: SOURCE.into(),
        namespace,
    };
    let first_seen = issue.get("firstSeen").stamp_opt()?;
    let found_at = first_seen.as_ref().map(|s| s.checked(now)).transpose()?;
    let last_seen = issue.get("lastSeen").stamp_opt()?.or(first_seen);
    let updated_at = match (last_seen, sent) {
        (Some(seen), Some(sent)) => Some(seen.later(sent)),
        (seen, sent) => seen.or(sent),
    }
    .map(|t| t.checked(now))
    .transpose()?;
    let status = issue.get("status").str_opt()?;
    let archived = matches!(action, "archived" | "ignored") || status == Some("ignored");
    let change = match (archived, sentry.archived) {
        (true, Disposition::Delete) => Change::Delete,
        (true, Disposition::Invalid) => upsert(sentry, Status::Invalid, found_at),
        _ if action == "deleted" => Change::Delete,
        _ => upsert(sentry, Status::Valid, found_at),
    };
    let follow_up =
        (action == "created" && sentry.api_token.is_some()).then(|| FollowUp::SentryFirstRelease {
            issue_id: id.clone(),
            product: product.clone(),
        });
    Ok(Parsed {
        items: vec![Item::Defect(DefectEvent {
            source: SOURCE.into(),
            id,
            product,
            change,
            updated_at,
        })],
        follow_up,
        ..Parsed::default()
    })
}

fn upsert(
    sentry: &crate::config::webhooks::SentryConfig,
    status: Status,
    found_at: Option<Millis>,
) -> Change {
    Change::UpsertKeepRelease {
        class: Classification {
            stage: sentry.default_stage.clone(),
            detected_by: Some(sentry.detected_by.clone()),
            ..Classification::default()
        },
        status,
        found_at,
    }
}

/// An `error` event: attributes its issue to its release (first one wins).
fn error(root: &At<'_>) -> Result<Parsed, FieldError> {
    let err = root.get("data").get("error");
    err.object()?;
    let release = err
        .get("release")
        .str_opt()?
        .and_then(conventions::sanitize);
    let Some(release) = release else {
        return Ok(Parsed::ignore("no_release", None));
    };
    let id = err.get("issue_id").id()?;
    let product = ProductRef {
        kind: SOURCE.into(),
        namespace: project_slug(err.get("url").str_opt()?)
            .map_or_else(|| err.get("project").id(), Ok)?,
    };
    Ok(Parsed {
        items: vec![attach_release(id, product, release)],
        ..Parsed::default()
    })
}

/// The item that attributes issue `id` to `release`, unless it already has one.
pub fn attach_release(id: String, product: ProductRef, release: String) -> Item {
    Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id,
        product,
        change: Change::AttachRelease { release },
        updated_at: None,
    })
}

/// The project slug in an event's API URL
/// (`…/api/0/projects/<org>/<project>/events/<id>/`).
fn project_slug(url: Option<&str>) -> Option<String> {
    let rest = url?.split("/projects/").nth(1)?;
    let mut parts = rest.split('/');
    let (_org, slug) = (parts.next()?, parts.next()?);
    conventions::sanitize(slug)
}

/// The `firstRelease.version` of an issue API answer, when set.
pub fn first_release(answer: &Value) -> Option<String> {
    answer
        .get("firstRelease")?
        .get("version")?
        .as_str()
        .and_then(conventions::sanitize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_slug_from_event_url() {
        assert_eq!(
            project_slug(Some(
                "https://sentry.io/api/0/projects/test-org/front-end/events/bb78/"
            ))
            .as_deref(),
            Some("front-end")
        );
        assert_eq!(project_slug(Some("https://sentry.io/")), None);
        assert_eq!(project_slug(None), None);
    }

    #[test]
    fn first_release_of_an_issue_answer() {
        let v = serde_json::json!({"id": "1", "firstRelease": {"version": "api@2.4.0"}});
        assert_eq!(first_release(&v).as_deref(), Some("api@2.4.0"));
        assert_eq!(
            first_release(&serde_json::json!({"firstRelease": null})),
            None
        );
    }
}
