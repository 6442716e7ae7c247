//! GitHub webhooks (docs/api.md): `issues` events upsert the issue snapshot they
//! carry, `release` events record release times, `ping` is answered.
//!
//! A defect is identified as `<repository id>#<issue number>`: the repository's
//! numeric id survives renames and transfers of the repository, so a renamed
//! repository keeps its defects, while two repositories' issue #1 stay two
//! defects. The product is the repository's `full_name` (`acme/payments`),
//! mapped by `[products.*] sources = ["github:acme/payments"]`. Its alias, the
//! name other records link to it by, is `owner/repo#12` (lowercase).
//!
//! [`issue_item`] and [`release_item`] are the one conversion of GitHub's
//! REST issue and release objects: the webhooks and `sync` (which lists the
//! same objects from the REST API) both call them.

use axum::http::HeaderMap;
use serde_json::Value;

use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::event::{Change, DefectEvent, LinkRef, ProductRef, Status};
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::sources::conventions::{self, Mapped};
use crate::sources::links;
use crate::sources::webhook::{
    AdapterError, Ahead, At, Parsed, delivery_id, release_event, required_header,
};

/// Source of GitHub defects.
pub const SOURCE: &str = "github";

/// Parses one GitHub delivery.
pub fn parse(
    headers: &HeaderMap,
    body: &Value,
    config: &Config,
    now: Millis,
) -> Result<Parsed, AdapterError> {
    let event = required_header(headers, "x-github-event", "X-GitHub-Event")?;
    if event.len() > 64 || !event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(AdapterError::Header(format!(
            "X-GitHub-Event `{event}` is not a GitHub event name"
        )));
    }
    let delivery = delivery_id(headers, "x-github-delivery")?;
    let root = At::root(body);
    root.object()?;
    match event {
        "ping" => Ok(Parsed::ignore("ping", None)),
        "issues" => issues(&root, config, now).map(|mut p| {
            p.delivery = delivery;
            p
        }),
        "release" => release(&root, config, now).map(|mut p| {
            p.delivery = delivery;
            p
        }),
        _ => Ok(Parsed::ignore("unsupported_event", delivery)),
    }
}

fn issues(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let action = root.get("action").str()?;
    let repo = Repo::of(&root.get("repository"))?;
    let issue = root.get("issue");
    issue.object()?;
    let mut parsed = Parsed::default();
    match action {
        "deleted" => parsed.items.push(leaving(config, &repo, &issue, now)?),
        // The new issue is a new defect of the new repository, upserted from
        // the snapshot GitHub includes.
        "transferred" => {
            parsed.items.push(leaving(config, &repo, &issue, now)?);
            let changes = root.get("changes");
            let (new_issue, new_repo) = (changes.get("new_issue"), changes.get("new_repository"));
            if new_issue.value().is_some() && new_repo.value().is_some() {
                let repo = Repo::of(&new_repo)?;
                let (item, unmapped) = issue_item(config, &repo, &new_issue, now)?;
                parsed.items.push(item);
                parsed.unmapped = unmapped;
            }
        }
        // Every other action carries the full issue: upsert it.
        _ => {
            let (item, unmapped) = issue_item(config, &repo, &issue, now)?;
            parsed.items.push(item);
            parsed.unmapped = unmapped;
        }
    }
    Ok(parsed)
}

/// An issue deleted or transferred away: it leaves this repository's counts.
/// An issue that is not a defect only retracts what may have been stored.
pub fn leaving(
    config: &Config,
    repo: &Repo,
    issue: &At<'_>,
    now: Millis,
) -> Result<Item, FieldError> {
    let (labels, issue_type) = labels_and_type(issue)?;
    let change = if conventions::is_defect(&config.webhooks.github.conventions, &labels, issue_type)
    {
        Change::Delete
    } else {
        Change::Retract
    };
    Ok(defect(
        repo,
        issue.get("number").id()?,
        change,
        issue.get("updated_at").time(now)?,
    ))
}

/// The deletion of stored defect `id` (`<repository id>#<number>`) of `repo`
/// at `at`, for an issue GitHub no longer has (`sync` finds it gone).
pub fn gone(repo: &Repo, id: &str, at: Millis) -> Item {
    Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id: id.to_owned(),
        product: repo.product(),
        change: Change::Delete,
        updated_at: Some(at),
        links: None,
    })
}

/// The repository an event belongs to: its numeric id (which survives
/// renames and transfers) and its `full_name` (the product's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: String,
    pub full_name: String,
}

impl Repo {
    /// Reads a REST repository object (`id`, `full_name`).
    pub fn of(at: &At<'_>) -> Result<Self, FieldError> {
        at.object()?;
        let full_name = at.get("full_name");
        let name = full_name.str()?;
        let name = conventions::sanitize(name).ok_or_else(|| full_name.err("must not be empty"))?;
        Ok(Self {
            id: at.get("id").id()?,
            full_name: name,
        })
    }

    /// The product namespace of its defects and releases.
    pub fn product(&self) -> ProductRef {
        ProductRef {
            kind: SOURCE.into(),
            namespace: self.full_name.clone(),
        }
    }
}

/// An issue's label names and issue type.
fn labels_and_type<'a>(issue: &At<'a>) -> Result<(Vec<&'a str>, Option<&'a str>), FieldError> {
    let mut labels = Vec::new();
    for l in issue.get("labels").items()? {
        // Labels are objects with a `name` (some payloads: plain strings).
        match l.value() {
            Some(Value::String(s)) => labels.push(s.as_str()),
            _ => labels.push(l.get("name").str()?),
        }
    }
    let ty = issue.get("type");
    let issue_type = match ty.value() {
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => ty.get("name").str_opt()?,
        None => None,
    };
    Ok((labels, issue_type))
}

/// The one conversion of a GitHub issue object (REST shape: the webhook's
/// `issue`, an item of `GET /repos/{owner}/{repo}/issues`) into its defect
/// event, ordered by its `updated_at`; and the fields that did not map.
pub fn issue_item(
    config: &Config,
    repo: &Repo,
    issue: &At<'_>,
    now: Millis,
) -> Result<(Item, Vec<&'static str>), FieldError> {
    let gh = &config.webhooks.github;
    let number = issue.get("number").id()?;
    let updated_at = issue.get("updated_at").time(now)?;
    let found_at = issue.get("created_at").time_opt(now)?;
    let (labels, issue_type) = labels_and_type(issue)?;
    let alias = links::path_alias(SOURCE, &repo.full_name, &number);
    let links = links::record_links(config, gh.links, Some(alias), issue.get("body").raw());
    let conv = &gh.conventions;
    if !conventions::is_defect(conv, &labels, issue_type) {
        return Ok((
            with_links(defect(repo, number, Change::Retract, updated_at), links),
            Vec::new(),
        ));
    }
    let Mapped {
        mut class,
        mut status,
        mut unmapped,
    } = conventions::classify(conv, config, SOURCE, &labels);
    if class.release.is_none() && gh.milestone_as_release {
        if let Some(title) = issue.get("milestone").get("title").str_opt()? {
            class.release = conventions::release(config, SOURCE, &[title], &mut unmapped);
        }
    }
    let closed = issue.get("state").str_opt()? == Some("closed");
    let reason = issue.get("state_reason").str_opt()?.map(str::to_lowercase);
    if let (true, Status::Valid, Some(r)) = (closed, status, &reason) {
        if gh.duplicate_reasons.contains(r) {
            status = Status::Duplicate;
        } else if gh.invalid_reasons.contains(r) {
            status = Status::Invalid;
        }
    }
    let change = Change::Upsert {
        class,
        status,
        found_at,
    };
    Ok((
        with_links(defect(repo, number, change, updated_at), links),
        unmapped,
    ))
}

/// `item` holding `links` (docs/semantics.md, "Linked records").
fn with_links(mut item: Item, links: Option<Vec<LinkRef>>) -> Item {
    if let Item::Defect(d) = &mut item {
        d.links = links;
    }
    item
}

fn defect(repo: &Repo, number: String, change: Change, updated_at: Millis) -> Item {
    Item::Defect(DefectEvent {
        source: SOURCE.into(),
        id: format!("{}#{number}", repo.id),
        product: repo.product(),
        change,
        updated_at: Some(updated_at),
        links: None,
    })
}

/// `release` events: a published (or created, pre-released, released) release
/// that is not a draft records its time. GitHub sets that time itself, so one
/// ahead of now is a broken clock.
fn release(root: &At<'_>, config: &Config, now: Millis) -> Result<Parsed, AdapterError> {
    let action = root.get("action").str()?;
    if !matches!(action, "published" | "created" | "prereleased" | "released") {
        return Ok(Parsed::ignore("unsupported_event", None));
    }
    let repo = Repo::of(&root.get("repository"))?;
    Ok(release_item(config, &repo, &root.get("release"), now)?)
}

/// The one conversion of a GitHub release object (the webhook's `release`, an
/// item of `GET /repos/{owner}/{repo}/releases`): its tag shipped at
/// `published_at` (else `created_at`); a draft is ignored.
pub fn release_item(
    config: &Config,
    repo: &Repo,
    rel: &At<'_>,
    now: Millis,
) -> Result<Parsed, FieldError> {
    rel.object()?;
    if rel.get("draft").bool_opt()? == Some(true) {
        return Ok(Parsed::ignore("unsupported_event", None));
    }
    let shipped = match rel.get("published_at").stamp_opt()? {
        Some(t) => t,
        None => rel.get("created_at").stamp()?,
    };
    let name = rel.get("tag_name");
    release_event(config, repo.product(), &name, shipped, Ahead::Refuse, now)
}
