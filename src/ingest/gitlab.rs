//! GitLab webhooks (SPEC §4): the Issue Hook (and Confidential Issue Hook)
//! upserts the issue snapshot it carries, the Release Hook records release
//! times.
//!
//! A defect is identified as `<project id>#<issue iid>`: the numeric project id
//! survives renames and namespace moves. The product is the project's
//! `path_with_namespace`, mapped by `sources = ["gitlab:group/project"]`. An
//! issue moved to another project (`moved_to_id`) leaves this one; one closed as
//! a duplicate (`duplicated_to_id`) is a duplicate.

use axum::http::HeaderMap;
use serde_json::Value;

use super::FieldError;
use super::conventions::{self, Mapped};
use super::webhook::{AdapterError, Ahead, At, Parsed, delivery_id, header, release_event};
use crate::config::Config;
use crate::model::event::{Change, DefectEvent, ProductRef, Status};
use crate::model::time::Millis;
use crate::store::Item;

/// Source of GitLab defects.
pub const SOURCE: &str = "gitlab";

/// Parses one GitLab delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &Value,
    config: &Config,
    now: Millis,
) -> Result<Parsed, AdapterError> {
    let event = header(headers, "x-gitlab-event")?
        .ok_or_else(|| AdapterError::Header("missing X-Gitlab-Event header".into()))?;
    if event.len() > 64 || !event.ends_with(" Hook") {
        return Err(AdapterError::Header(format!(
            "X-Gitlab-Event `{event}` is not a GitLab event name (`Issue Hook`, `Release Hook`, …)"
        )));
    }
    // Idempotency-Key (GitLab 17.4+) is unchanged across retries and resends;
    // X-Gitlab-Event-UUID is the fallback on older GitLab, then the signed
    // webhooks' webhook-id (which GitLab sets to the Idempotency-Key).
    let mut delivery = None;
    for name in ["idempotency-key", "x-gitlab-event-uuid", "webhook-id"] {
        delivery = delivery_id(headers, name)?;
        if delivery.is_some() {
            break;
        }
    }
    let root = At::root(body);
    root.object()?;
    let mut parsed = match event {
        "Issue Hook" | "Confidential Issue Hook" => {
            expect_kind(&root, "issue")?;
            issue(&root, config, now)?
        }
        "Release Hook" => {
            expect_kind(&root, "release")?;
            release(&root, config, now)?
        }
        _ => return Ok(Parsed::ignore("unsupported_event", delivery)),
    };
    parsed.delivery = delivery;
    Ok(parsed)
}

fn expect_kind(root: &At<'_>, kind: &str) -> Result<(), FieldError> {
    let k = root.get("object_kind");
    match k.str()? {
        v if v == kind => Ok(()),
        v => Err(k.err(format!(
            "is `{v}` but the X-Gitlab-Event header announces `{kind}`"
        ))),
    }
}

fn product(root: &At<'_>) -> Result<(String, ProductRef), FieldError> {
    let project = root.get("project");
    project.object()?;
    let path = project.get("path_with_namespace");
    let ns = conventions::sanitize(path.str()?).ok_or_else(|| path.err("must not be empty"))?;
    Ok((
        project.get("id").id()?,
        ProductRef {
            kind: SOURCE.into(),
            namespace: ns,
        },
    ))
}

fn issue(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let gl = &config.webhooks.gitlab;
    let (project_id, product) = product(root)?;
    let attrs = root.get("object_attributes");
    attrs.object()?;
    let iid = attrs.get("iid").id()?;
    let updated_at = attrs.get("updated_at").time(now)?;
    let found_at = attrs.get("created_at").time_opt(now)?;
    // `labels[].title` at the top level; older payloads only inside the issue.
    let top = root.get("labels");
    let list = if top.value().is_some() {
        top
    } else {
        attrs.get("labels")
    };
    let mut labels = Vec::new();
    for l in list.items()? {
        labels.push(l.get("title").str()?);
    }
    let issue_type = attrs.get("type").str_opt()?;
    let conv = &gl.conventions;
    let defect = conventions::is_defect(conv, &labels, issue_type);
    let moved = attrs.get("moved_to_id").value().is_some();
    let mut unmapped = Vec::new();
    let change = if moved {
        if defect {
            Change::Delete
        } else {
            Change::Retract
        }
    } else if !defect {
        Change::Retract
    } else {
        let Mapped {
            mut class,
            mut status,
            unmapped: u,
        } = conventions::classify(conv, config, SOURCE, &labels);
        unmapped = u;
        if class.release.is_none() {
            let milestone = attrs.get("milestone_id");
            if milestone.value().is_some() {
                if let Some(r) = gl.milestones.get(&milestone.id()?) {
                    class.release = conventions::release(config, SOURCE, &[r], &mut unmapped);
                }
            }
        }
        if status == Status::Valid && attrs.get("duplicated_to_id").value().is_some() {
            status = Status::Duplicate;
        }
        Change::Upsert {
            class,
            status,
            found_at,
        }
    };
    Ok(Parsed {
        items: vec![Item::Defect(DefectEvent {
            source: SOURCE.into(),
            id: format!("{project_id}#{iid}"),
            product,
            change,
            updated_at: Some(updated_at),
        })],
        unmapped,
        ..Parsed::default()
    })
}

/// Release Hook: `create` and `update` record the release time. A
/// `released_at` ahead of now is an upcoming release (GitLab lets one be
/// scheduled): not shipped yet, so it is acknowledged and counted as ignored.
fn release(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let action = root.get("action").str()?;
    if !matches!(action, "create" | "update") {
        return Ok(Parsed::ignore("unsupported_event", None));
    }
    let (_, product) = product(root)?;
    let (shipped, ahead) = match root.get("released_at").stamp_opt()? {
        Some(t) => (t, Ahead::Upcoming),
        None => (root.get("created_at").stamp()?, Ahead::Refuse),
    };
    Ok(release_event(
        config,
        product,
        &root.get("tag"),
        shipped,
        ahead,
        now,
    )?)
}
