//! GitLab webhooks (docs/api.md): the Issue Hook (and Confidential Issue Hook)
//! upserts the issue snapshot it carries, the Release Hook records release
//! times.
//!
//! A defect is identified as `<project id>#<issue iid>`: the numeric project id
//! survives renames and namespace moves. The product is the project's
//! `path_with_namespace`, mapped by `sources = ["gitlab:group/project"]`; its
//! alias, the name other records link to it by, is `group/project#iid`
//! (lowercase). An
//! issue moved to another project (`moved_to_id`) leaves this one; one closed as
//! a duplicate (`duplicated_to_id`) is a duplicate.
//!
//! [`issue_item`] and [`release_item`] are the one conversion of GitLab's
//! issues and releases: the webhooks and `sync` (which lists them from the
//! REST API, in a slightly different shape: see [`Issue`]) both call them.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::config::webhooks::GitlabConfig;
use crate::ingest::FieldError;
use crate::model::event::{Change, DefectEvent, ProductRef, Status};
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::model::time::now_ms;
use crate::sources::conventions::{self, Mapped};
use crate::sources::links;
use crate::sources::signature::{self, AuthError, header as header_str};
use crate::sources::webhook::{
    AdapterError, Ahead, At, Parsed, delivery_id, release_event, required_header,
};

/// Source of GitLab defects.
pub const SOURCE: &str = "gitlab";

/// Parses one GitLab delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &Value,
    config: &Config,
    now: Millis,
) -> Result<Parsed, AdapterError> {
    let event = required_header(headers, "x-gitlab-event", "X-Gitlab-Event")?;
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

/// The project an issue or release belongs to: its numeric id (which
/// survives renames and namespace moves) and its `path_with_namespace` (the
/// product's namespace). The webhook's `project` and the REST project object
/// (`GET /projects/:id`) both carry the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub path: String,
}

impl Project {
    /// Reads a project object (`id`, `path_with_namespace`).
    pub fn of(at: &At<'_>) -> Result<Self, FieldError> {
        at.object()?;
        let path = at.get("path_with_namespace");
        let ns = conventions::sanitize(path.str()?).ok_or_else(|| path.err("must not be empty"))?;
        Ok(Self {
            id: at.get("id").id()?,
            path: ns,
        })
    }

    /// The product namespace of its defects and releases.
    pub fn product(&self) -> ProductRef {
        ProductRef {
            kind: SOURCE.into(),
            namespace: self.path.clone(),
        }
    }
}

/// What the conventions read of a GitLab issue, whichever shape it came in:
/// the Issue Hook's `object_attributes` (labels as objects with a `title`,
/// `milestone_id`, `duplicated_to_id`) or a REST issue of
/// `GET /projects/:id/issues` (labels as strings, a `milestone` object,
/// `_links.closed_as_duplicate_of`). [`issue_item`] applies the conventions
/// to it, once for both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue<'a> {
    pub iid: String,
    pub updated_at: Millis,
    pub found_at: Option<Millis>,
    pub labels: Vec<&'a str>,
    /// `Issue`, `Incident` (webhook) or `ISSUE`, `INCIDENT` (REST): the
    /// conventions compare case-insensitively.
    pub issue_type: Option<&'a str>,
    pub milestone_id: Option<String>,
    /// Moved to another project (`moved_to_id`): it leaves this one.
    pub moved: bool,
    /// Closed as a duplicate of another issue.
    pub duplicated: bool,
    /// The description (Markdown), where links are read.
    pub description: Option<&'a Value>,
}

/// Label names of a list: strings (REST), objects with a `title` (webhooks)
/// or a `name` (REST with `with_labels_details=true`).
fn label_names<'a>(list: &At<'a>) -> Result<Vec<&'a str>, FieldError> {
    let mut labels = Vec::new();
    for l in list.items()? {
        match l.value() {
            Some(Value::String(s)) => labels.push(s.as_str()),
            _ if l.get("title").value().is_none() && l.get("name").value().is_some() => {
                labels.push(l.get("name").str()?)
            }
            _ => labels.push(l.get("title").str()?),
        }
    }
    Ok(labels)
}

impl<'a> Issue<'a> {
    /// An Issue Hook's issue: `object_attributes`, with the labels at the
    /// top level (older payloads: only inside the issue).
    fn hook(root: &At<'a>, now: Millis) -> Result<Self, FieldError> {
        let attrs = root.get("object_attributes");
        attrs.object()?;
        let top = root.get("labels");
        let list = if top.value().is_some() {
            top
        } else {
            attrs.get("labels")
        };
        let milestone = attrs.get("milestone_id");
        Ok(Self {
            iid: attrs.get("iid").id()?,
            updated_at: attrs.get("updated_at").time(now)?,
            found_at: attrs.get("created_at").time_opt(now)?,
            labels: label_names(&list)?,
            issue_type: attrs.get("type").str_opt()?,
            milestone_id: milestone.value().map(|_| milestone.id()).transpose()?,
            moved: attrs.get("moved_to_id").value().is_some(),
            duplicated: attrs.get("duplicated_to_id").value().is_some(),
            description: attrs.get("description").raw(),
        })
    }

    /// A REST issue object (an item of `GET /projects/:id/issues`, or
    /// `GET /projects/:id/issues/:iid`).
    pub fn rest(issue: &At<'a>, now: Millis) -> Result<Self, FieldError> {
        issue.object()?;
        let milestone = issue.get("milestone").get("id");
        let issue_type = match issue.get("type").str_opt()? {
            Some(t) => Some(t),
            None => issue.get("issue_type").str_opt()?,
        };
        Ok(Self {
            iid: issue.get("iid").id()?,
            updated_at: issue.get("updated_at").time(now)?,
            found_at: issue.get("created_at").time_opt(now)?,
            labels: label_names(&issue.get("labels"))?,
            issue_type,
            milestone_id: milestone.value().map(|_| milestone.id()).transpose()?,
            moved: issue.get("moved_to_id").value().is_some(),
            duplicated: issue
                .get("_links")
                .get("closed_as_duplicate_of")
                .value()
                .is_some(),
            description: issue.get("description").raw(),
        })
    }
}

fn issue(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let project = Project::of(&root.get("project"))?;
    let issue = Issue::hook(root, now)?;
    let (item, unmapped) = issue_item(config, &project, &issue)?;
    Ok(Parsed {
        items: vec![item],
        unmapped,
        ..Parsed::default()
    })
}

/// The one conversion of a GitLab issue (webhook or REST, see [`Issue`])
/// into its defect event `<project id>#<iid>`, ordered by its `updated_at`;
/// and the fields that did not map.
pub fn issue_item(
    config: &Config,
    project: &Project,
    issue: &Issue<'_>,
) -> Result<(Item, Vec<&'static str>), FieldError> {
    let gl = &config.webhooks.gitlab;
    let conv = &gl.conventions;
    let defect = conventions::is_defect(conv, &issue.labels, issue.issue_type);
    let mut unmapped = Vec::new();
    let change = if issue.moved {
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
        } = conventions::classify(conv, config, SOURCE, &issue.labels);
        unmapped = u;
        if class.release.is_none() {
            if let Some(r) = issue
                .milestone_id
                .as_ref()
                .and_then(|m| gl.milestones.get(m))
            {
                class.release = conventions::release(config, SOURCE, &[r], &mut unmapped);
            }
        }
        if status == Status::Valid && issue.duplicated {
            status = Status::Duplicate;
        }
        Change::Upsert {
            class,
            status,
            found_at: issue.found_at,
        }
    };
    Ok((
        Item::Defect(DefectEvent {
            source: SOURCE.into(),
            id: format!("{}#{}", project.id, issue.iid),
            product: project.product(),
            change,
            updated_at: Some(issue.updated_at),
            links: links::record_links(
                config,
                gl.links,
                Some(links::path_alias(SOURCE, &project.path, &issue.iid)),
                issue.description,
            ),
        }),
        unmapped,
    ))
}

/// The deletion of stored defect `id` (`<project id>#<iid>`) of `project` at
/// `at`, for an issue GitLab no longer has (`sync` finds it gone).
pub fn gone(project: &Project, id: &str, at: Millis) -> Item {
    Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id: id.to_owned(),
        product: project.product(),
        change: Change::Delete,
        updated_at: Some(at),
        links: None,
    })
}

/// Release Hook: `create` and `update` record the release time.
fn release(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let action = root.get("action").str()?;
    if !matches!(action, "create" | "update") {
        return Ok(Parsed::ignore("unsupported_event", None));
    }
    let project = Project::of(&root.get("project"))?;
    Ok(release_item(config, &project, &root.get("tag"), root, now)?)
}

/// The one conversion of a GitLab release (the Release Hook's root, an item
/// of `GET /projects/:id/releases`; the tag is `tag` in one, `tag_name` in
/// the other): its tag shipped at `released_at`, else `created_at`. A
/// `released_at` ahead of now is an upcoming release (GitLab lets one be
/// scheduled): not shipped yet, so it is ignored (`upcoming_release`).
pub fn release_item(
    config: &Config,
    project: &Project,
    tag: &At<'_>,
    rel: &At<'_>,
    now: Millis,
) -> Result<Parsed, FieldError> {
    rel.object()?;
    let (shipped, ahead) = match rel.get("released_at").stamp_opt()? {
        Some(t) => (t, Ahead::Upcoming),
        None => (rel.get("created_at").stamp()?, Ahead::Refuse),
    };
    release_event(config, project.product(), tag, shipped, ahead, now)
}

/// GitLab: a Standard Webhooks signature when signing secrets are configured
/// and the delivery carries `webhook-signature` (checked once the body is
/// read); otherwise the `X-Gitlab-Token`.
pub fn authenticate(
    gitlab: &GitlabConfig,
    headers: &HeaderMap,
    body: Option<&[u8]>,
) -> Result<(), AuthError> {
    if !gitlab.signing_keys.is_empty() && headers.contains_key("webhook-signature") {
        let Some(body) = body else {
            return Ok(());
        };
        let sent = signature::StandardHeaders {
            id: header_str(headers, "webhook-id"),
            timestamp: header_str(headers, "webhook-timestamp"),
            signature: header_str(headers, "webhook-signature"),
        };
        return signature::verify_standard(&gitlab.signing_keys, sent, body, now_ms() / 1000);
    }
    if gitlab.secrets.is_empty() {
        return Err(AuthError::Missing("webhook-signature"));
    }
    signature::verify_token(
        &gitlab.secrets,
        header_str(headers, "x-gitlab-token"),
        "X-Gitlab-Token",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    /// One issue in both shapes GitLab sends it: the same defect.
    #[test]
    fn the_rest_issue_and_the_issue_hook_convert_alike() {
        let mut s = Settings::default();
        s.webhooks.gitlab.milestones = [("17".to_owned(), "v4.0".to_owned())].into();
        s.webhooks.gitlab.conventions.defect_types = vec!["Incident".into()];
        s.webhooks.gitlab.projects = vec!["acme/web".into()];
        let config = Config::from_settings(s).expect("valid");
        let now = 1_800_000_000_000;
        let project = json!({"id": 3, "path_with_namespace": "acme/web"});
        let hook = json!({
            "object_kind": "issue",
            "project": project,
            "object_attributes": {
                "iid": 6, "created_at": "2016-01-04 15:31:51 UTC",
                "updated_at": "2016-01-05 10:00:00 UTC", "milestone_id": 17,
                "type": "Incident", "moved_to_id": null, "duplicated_to_id": 75,
                "description": "same as acme/web#5"
            },
            "labels": [{"id": 1, "title": "stage:production"}, {"id": 2, "title": "cause:code"}]
        });
        let rest = json!({
            "id": 76, "iid": 6, "project_id": 3, "state": "closed",
            "created_at": "2016-01-04T15:31:51.000Z", "updated_at": "2016-01-05T10:00:00.000Z",
            "labels": ["stage:production", "cause:code"],
            "milestone": {"id": 17, "iid": 2, "project_id": 3, "title": "v4.0"},
            "type": "INCIDENT", "issue_type": "incident", "moved_to_id": null,
            "description": "same as acme/web#5",
            "_links": {"closed_as_duplicate_of": "https://gitlab.example.com/api/v4/projects/3/issues/75"}
        });
        let from_hook = issue(&At::root(&hook), &config, now).expect("hook");
        let p = Project::of(&At::root(&project)).expect("project");
        let r = Issue::rest(&At::root(&rest), now).expect("rest");
        let (item, unmapped) = issue_item(&config, &p, &r).expect("item");
        assert_eq!(from_hook.items, vec![item.clone()]);
        assert_eq!(from_hook.unmapped, unmapped);
        let Item::Defect(d) = item else {
            panic!("{item:?}")
        };
        assert_eq!(d.id, "3#6");
        // Its own alias first, then what its description names (a project
        // of `projects`).
        let ids: Vec<String> = d.links.iter().flatten().map(|l| l.id.clone()).collect();
        assert_eq!(ids, ["acme/web#6", "acme/web#5"]);
        let Change::Upsert { class, status, .. } = d.change else {
            panic!("{:?}", d.change)
        };
        assert_eq!(class.release.as_deref(), Some("v4.0"));
        assert_eq!(class.stage.as_deref(), Some("production"));
        assert_eq!(status, Status::Duplicate);
        // Moved away: out of this project's counts either way.
        let mut moved = rest.clone();
        moved["moved_to_id"] = json!(99);
        let r = Issue::rest(&At::root(&moved), now).expect("rest");
        let (Item::Defect(d), _) = issue_item(&config, &p, &r).expect("item") else {
            panic!()
        };
        assert_eq!(d.change, Change::Delete);
        // Labels with details (`with_labels_details=true`) read the same.
        let mut detailed = rest;
        detailed["labels"] =
            json!([{"id": 1, "name": "stage:production"}, {"id": 2, "name": "cause:code"}]);
        let r = Issue::rest(&At::root(&detailed), now).expect("rest");
        assert_eq!(r.labels, ["stage:production", "cause:code"]);
        let bad = json!({"iid": 6, "updated_at": "2016-01-05T10:00:00Z", "labels": [3]});
        assert_eq!(
            Issue::rest(&At::root(&bad), now).map_err(|e| e.field),
            Err("labels[0].title".to_owned())
        );
    }
}
