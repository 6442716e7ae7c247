//! Sentry integration-platform webhooks (docs/api.md). An `issue` resource is a
//! defect found in production by monitoring (both configurable); an `error`
//! resource attributes its issue to the release it carries (the first one
//! wins). Issue payloads carry no release: on `created`, the handler asks
//! Sentry's issue API for `firstRelease` when a token is configured.
//!
//! A defect is identified by Sentry's issue id; the product is the project slug,
//! mapped by `sources = ["sentry:payments-api"]`.
//!
//! [`issue_item`] and [`release_item`] are the one conversion of Sentry's
//! issue and release objects: the webhook and `sync` (which reads the same
//! objects from the REST API) both call them.
//!
//! Issue payloads have no update time, and `lastSeen` (the issue's last event)
//! does not move when its status does: archiving and unarchiving an issue send
//! two snapshots with the same `lastSeen`, where the deletion-wins rule on
//! equal times would keep an `archived = "delete"` issue deleted for good. So
//! a snapshot is ordered by the latest of `lastSeen`, `Sentry-Hook-Timestamp`
//! (when Sentry sent it, Unix seconds) and, in the API's issue detail, the
//! newest `activity` entry (a status change is one): a status change orders
//! after the one before it, and a redelivery of an older snapshot (same
//! bytes, same header) stays stale. Two changes within one second of each other cannot be told
//! apart (a deletion then wins). Sentry sends no stable delivery id
//! (`Request-ID` is random per attempt), so nothing is deduplicated by
//! delivery; a repeated snapshot is simply unchanged.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::config::webhooks::Disposition;
use crate::ingest::FieldError;
use crate::model::event::{Change, Classification, DefectEvent, LinkRef, ProductRef, Status};
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::sources::conventions;
use crate::sources::links::{self, LinkTargets};
use crate::sources::sentry::external;
use crate::sources::webhook::{
    AdapterError, Ahead, At, FollowUp, Parsed, Stamp, header, release_event, required_header,
};

/// Source of Sentry defects.
pub const SOURCE: &str = "sentry";

/// Parses one Sentry delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &Value,
    config: &Config,
    now: Millis,
) -> Result<Parsed, AdapterError> {
    let resource = required_header(headers, "sentry-hook-resource", "Sentry-Hook-Resource")?;
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
    let action = root.get("action").str()?;
    let issue = root.get("data").get("issue");
    let item = issue_item(config, &issue, Some(action), sent, now)?;
    let follow_up = match &item {
        Item::Defect(d)
            if action == "created"
                && config.webhooks.sentry.api_token.is_some()
                && first_release(issue.value().unwrap_or(&Value::Null)).is_none() =>
        {
            Some(FollowUp::SentryFirstRelease {
                issue_id: d.id.clone(),
                product: d.product.clone(),
            })
        }
        _ => None,
    };
    Ok(Parsed {
        items: vec![item],
        follow_up,
        ..Parsed::default()
    })
}

/// The product of a Sentry project object (`{"slug": …}`): its slug.
pub fn project_product(project: &At<'_>) -> Result<ProductRef, FieldError> {
    let slug = project.get("slug");
    let namespace =
        conventions::sanitize(slug.str()?).ok_or_else(|| slug.err("must not be empty"))?;
    Ok(ProductRef {
        kind: SOURCE.into(),
        namespace,
    })
}

/// The one conversion of a Sentry issue object (the webhook's `data.issue`,
/// an item of `GET /api/0/projects/{org}/{project}/issues/`, the answer of
/// `GET /api/0/organizations/{org}/issues/{id}/`) into its defect event: at
/// the configured stage, detected by `detected_by`; `resolved` keeps it
/// counted; `ignored`/`archived` (the `action`, or the `status`) follows
/// `archived`; `deleted` (or `status: pending_deletion`) deletes it. Its
/// release is `firstRelease.version` when the object carries it (the issue
/// detail does); otherwise the stored one is kept. Its links are those of
/// its `annotations` (the tickets made from it).
///
/// Ordered by the latest of `lastSeen` (the last event), the newest
/// `activity` entry's `dateCreated` (status changes, assignments, …; the
/// issue detail lists them) and `sent` (the webhook's
/// `Sentry-Hook-Timestamp`): Sentry has no `updated_at`, and each of those
/// is a time the state shown was already true, so a snapshot never orders
/// after a later change it does not show.
pub fn issue_item(
    config: &Config,
    issue: &At<'_>,
    action: Option<&str>,
    sent: Option<Stamp>,
    now: Millis,
) -> Result<Item, FieldError> {
    let sentry = &config.webhooks.sentry;
    issue.object()?;
    let id = issue.get("id").id()?;
    let product = project_product(&issue.get("project"))?;
    let first_seen = issue.get("firstSeen").stamp_opt()?;
    let found_at = first_seen.as_ref().map(|s| s.checked(now)).transpose()?;
    let last_seen = issue.get("lastSeen").stamp_opt()?.or(first_seen);
    let updated_at = [last_seen, latest_activity(issue)?, sent]
        .into_iter()
        .flatten()
        .reduce(Stamp::later)
        .map(|t| t.checked(now))
        .transpose()?;
    let status = issue.get("status").str_opt()?;
    let archived = matches!(action, Some("archived" | "ignored")) || status == Some("ignored");
    let deleted = action == Some("deleted") || status == Some("pending_deletion");
    let release = match issue.get("firstRelease").value() {
        None | Some(Value::Null) => None,
        Some(_) => issue
            .get("firstRelease")
            .get("version")
            .str_opt()?
            .and_then(conventions::sanitize),
    };
    let change = match (archived, sentry.archived) {
        (true, Disposition::Delete) => Change::Delete,
        (true, Disposition::Invalid) => upsert(sentry, Status::Invalid, found_at, release),
        _ if deleted => Change::Delete,
        _ => upsert(sentry, Status::Valid, found_at, release),
    };
    Ok(Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id,
        product,
        change,
        updated_at,
        links: external::with_external(config, issue, annotations(config, issue)),
    }))
}

/// The links of the issue's `annotations` (docs/semantics.md, "Linked
/// records"): `None` when linking is off or the object has no
/// `annotations` (the stored links are kept); `null` is an empty list.
fn annotations(config: &Config, issue: &At<'_>) -> Option<Vec<LinkRef>> {
    let value = issue
        .get("annotations")
        .raw()
        .filter(|_| config.webhooks.sentry.links)?;
    Some(links::annotation_links(&LinkTargets::of(config), value))
}

/// The newest `dateCreated` of the issue's `activity` (absent: `None`).
fn latest_activity(issue: &At<'_>) -> Result<Option<Stamp>, FieldError> {
    let activity = issue.get("activity");
    if matches!(activity.value(), None | Some(Value::Null)) {
        return Ok(None);
    }
    let mut newest: Option<Stamp> = None;
    for a in activity.items()? {
        if let Some(t) = a.get("dateCreated").stamp_opt()? {
            newest = Some(match newest {
                Some(n) => n.later(t),
                None => t,
            });
        }
    }
    Ok(newest)
}

fn upsert(
    sentry: &crate::config::webhooks::SentryConfig,
    status: Status,
    found_at: Option<Millis>,
    release: Option<String>,
) -> Change {
    Change::UpsertKeepRelease {
        class: Classification {
            stage: sentry.default_stage.clone(),
            detected_by: Some(sentry.detected_by.clone()),
            release,
            ..Classification::default()
        },
        status,
        found_at,
    }
}

/// The deletion of stored issue `id` of `product` at `at`, for an issue
/// Sentry no longer has (`sync` finds it gone, or merged into another).
pub fn gone(product: ProductRef, id: &str, at: Millis) -> Item {
    Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id: id.to_owned(),
        product,
        change: Change::Delete,
        updated_at: Some(at),
        links: None,
    })
}

/// The one conversion of a Sentry release object (an item of
/// `GET /api/0/projects/{org}/{project}/releases/`): its `version` shipped
/// at `dateReleased`, else `dateCreated`. A release dated in the future is
/// not shipped yet (ignored, `upcoming_release`).
pub fn release_item(
    config: &Config,
    product: ProductRef,
    rel: &At<'_>,
    now: Millis,
) -> Result<Parsed, FieldError> {
    rel.object()?;
    let shipped = match rel.get("dateReleased").stamp_opt()? {
        Some(t) => t,
        None => rel.get("dateCreated").stamp()?,
    };
    release_event(
        config,
        product,
        &rel.get("version"),
        shipped,
        Ahead::Upcoming,
        now,
    )
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
        links: None,
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

    fn config() -> Config {
        Config::from_settings(crate::config::Settings::default()).expect("valid")
    }

    #[test]
    fn an_issue_detail_is_ordered_by_its_newest_activity_and_carries_its_release() {
        let detail = serde_json::json!({
            "id": "1", "shortId": "PUMP-STATION-1", "status": "resolved",
            "firstSeen": "2020-03-10T16:08:53.520970Z", "lastSeen": "2020-03-10T16:08:53Z",
            "project": {"id": "2", "slug": "pump-station"},
            "firstRelease": {"version": "pump-station@1.2.0"},
            "activity": [
                {"type": "set_resolved", "dateCreated": "2020-03-11T09:00:00Z"},
                {"type": "first_seen", "dateCreated": "2020-03-10T16:08:53.520970Z"}
            ]
        });
        let item =
            issue_item(&config(), &At::root(&detail), None, None, i64::MAX / 2).expect("converted");
        let Item::Defect(d) = item else {
            panic!("{item:?}")
        };
        assert_eq!(d.id, "1");
        assert_eq!(d.product.namespace, "pump-station");
        assert_eq!(d.updated_at, Some(1_583_917_200_000));
        let Change::UpsertKeepRelease { class, status, .. } = d.change else {
            panic!("{:?}", d.change)
        };
        assert_eq!(class.release.as_deref(), Some("pump-station@1.2.0"));
        assert_eq!(class.stage.as_deref(), Some("production"));
        assert_eq!(status, Status::Valid);
        // A listing's object (no activity, no firstRelease): lastSeen, and
        // the stored release kept.
        let listed = serde_json::json!({
            "id": "1", "status": "pending_deletion", "lastSeen": "2020-03-10T16:08:53Z",
            "project": {"slug": "pump-station"}
        });
        let Item::Defect(d) =
            issue_item(&config(), &At::root(&listed), None, None, i64::MAX / 2).expect("converted")
        else {
            panic!()
        };
        assert_eq!(d.updated_at, Some(1_583_856_533_000));
        assert_eq!(d.change, Change::Delete);
        let bad = serde_json::json!({"id": "1", "project": {"slug": "p"}, "activity": [{"dateCreated": "soon"}]});
        let e = issue_item(&config(), &At::root(&bad), None, None, 0).unwrap_err();
        assert_eq!(e.field, "activity[0].dateCreated");
    }

    #[test]
    fn annotations_are_the_issues_links_absent_keeps_them() {
        let mut s = crate::config::Settings::default();
        s.webhooks.jira.api.api_url = "https://acme.atlassian.net".into();
        let on = Config::from_settings(s.clone()).expect("valid");
        s.webhooks.sentry.links = false;
        let off = Config::from_settings(s).expect("valid");
        let links = |config: &Config, issue: serde_json::Value| {
            let item = issue_item(config, &At::root(&issue), None, None, i64::MAX / 2);
            match item.expect("converted") {
                Item::Defect(d) => d.links,
                other => panic!("{other:?}"),
            }
        };
        let issue = |annotations: Option<serde_json::Value>| {
            let mut v = serde_json::json!({"id": "1", "project": {"slug": "web"}});
            if let Some(a) = annotations {
                v["annotations"] = a;
            }
            v
        };
        let html = serde_json::json!([
            "<a href=\"https://acme.atlassian.net/browse/PAY-1\">PAY-1</a>",
            "<a href=\"https://other.atlassian.net/browse/PAY-2\">PAY-2</a>"
        ]);
        let pay1 = crate::model::event::LinkRef {
            source: "jira".into(),
            id: "PAY-1".into(),
        };
        assert_eq!(links(&on, issue(Some(html.clone()))), Some(vec![pay1]));
        assert_eq!(links(&on, issue(Some(serde_json::json!([])))), Some(vec![]));
        assert_eq!(
            links(&on, issue(Some(serde_json::Value::Null))),
            Some(vec![])
        );
        assert_eq!(links(&on, issue(None)), None, "absent: stored links kept");
        assert_eq!(links(&off, issue(Some(html))), None, "switched off");
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
