//! The generic JSON API (docs/api.md): `POST /api/v1/events` and
//! `POST /api/v1/releases`. Fields are checked one by one so an error names
//! the field (`[3].stage`) and the reason.

use serde_json::Value;

use super::FieldError;
use super::check_future;
use super::flat::{FlatBody, Object, Scalar};
use crate::config::Config;
use crate::model::event::{
    Change, Classification, DETECTORS, DefectEvent, LinkRef, MAX_ID_LEN, MAX_LINKS_PER_RECORD,
    ProductRef, ReleaseEvent, Status,
};
use crate::model::item::Item;
use crate::model::label::{Facts, check_label};
use crate::model::time::{MAX_FUTURE_MS, Millis, parse_rfc3339};

/// The fields of an event object.
pub const EVENT_FIELDS: &[&str] = &[
    "id",
    "source",
    "product",
    "stage",
    "release",
    "detected_by",
    "cause",
    "severity",
    "team",
    "status",
    "deleted",
    "found_at",
    "updated_at",
    "links",
];
/// The fields of one of an event's `links`.
pub const LINK_FIELDS: &[&str] = &["source", "id"];
/// The fields of a release-time object.
pub const RELEASE_FIELDS: &[&str] = &["product", "release", "released_at"];

/// The events of a request body: one object or an array of them.
pub fn parse_events(config: &Config, body: &Value, now: Millis) -> Result<Vec<Item>, FieldError> {
    match body {
        Value::Object(o) => Ok(vec![Item::Defect(parse_event(config, o, "", now)?)]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => {
                    parse_event(config, o, &format!("[{i}]."), now).map(Item::Defect)
                }
                _ => Err(FieldError::new(format!("[{i}]"), "must be an object")),
            })
            .collect(),
        _ => Err(FieldError::new(
            "",
            "body must be a JSON object or an array of objects",
        )),
    }
}

/// [`parse_events`] straight from the body's bytes, without building a JSON
/// tree, for a body of flat objects with unique keys (what senders send);
/// `None` for anything else — not UTF-8, a repeated key, a nested value,
/// broken JSON — which the caller parses in full for the precise error.
/// Either way the events and errors are the same.
pub fn parse_events_flat(
    config: &Config,
    body: &[u8],
    now: Millis,
) -> Option<Result<Vec<Item>, FieldError>> {
    let text = std::str::from_utf8(body).ok()?;
    Some(match FlatBody::parse(text)? {
        FlatBody::One(o) => parse_event(config, &o, "", now).map(|e| vec![Item::Defect(e)]),
        FlatBody::Many(all) => {
            // The release names of a batch repeat: each checked once.
            let mut memo = ReleaseMemo::new();
            all.iter()
                .enumerate()
                .map(|(i, o)| {
                    parse_event_as(config, o, &format!("[{i}]."), now, &mut memo, Rules::Api)
                        .map(Item::Defect)
                })
                .collect()
        }
    })
}

/// The release times of a request body: one object or an array of them.
pub fn parse_releases(config: &Config, body: &Value, now: Millis) -> Result<Vec<Item>, FieldError> {
    match body {
        Value::Object(o) => Ok(vec![Item::Release(parse_release(config, o, "", now)?)]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => {
                    parse_release(config, o, &format!("[{i}]."), now).map(Item::Release)
                }
                _ => Err(FieldError::new(format!("[{i}]"), "must be an object")),
            })
            .collect(),
        _ => Err(FieldError::new(
            "",
            "body must be a JSON object or an array of objects",
        )),
    }
}

/// Which values an event may hold: the API's, or whatever the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// The generic API's: configured stages, causes, severities and teams,
    /// a stage unless deleted, release names that normalise, times no more
    /// than five minutes ahead.
    Api,
    /// A stored record (a row of an export): any label value a webhook may
    /// have stored (no stage, an unknown stage, `qa+production`, an unknown
    /// cause…), still checked for type, length and control characters, and
    /// times that parse, however far ahead (the clock of the machine that
    /// restores is not the one that stored them). A deleted record keeps
    /// its values ([`Change::Restore`]).
    Stored,
}

/// Longest defect id a stored record may hold: the webhooks' ids join two
/// vendor ids (`<repository id>#<number>`), each up to [`MAX_ID_LEN`].
pub const MAX_STORED_ID_LEN: usize = 2 * MAX_ID_LEN + 1;

/// Reads the fields of one object, with `prefix` for error paths.
struct Fields<'a> {
    obj: &'a dyn Object,
    prefix: &'a str,
}

impl<'a> Fields<'a> {
    fn new(obj: &'a dyn Object, prefix: &'a str, known: &[&str]) -> Result<Self, FieldError> {
        if let Some(k) = obj.unknown(known) {
            return Err(FieldError::new(
                format!("{prefix}{k}"),
                format!("unknown field; known fields: {}", known.join(", ")),
            ));
        }
        Ok(Self { obj, prefix })
    }

    fn err(&self, name: &str, reason: impl Into<String>) -> FieldError {
        FieldError::new(format!("{}{name}", self.prefix), reason)
    }

    /// A string field; `null` or absent is `None`.
    fn string(&self, name: &str) -> Result<Option<&'a str>, FieldError> {
        match self.obj.field(name) {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(name, format!("must be a string, not {}", kind(other)))),
        }
    }

    /// A string field that becomes a label value.
    fn label(&self, name: &str) -> Result<Option<String>, FieldError> {
        match self.string(name)? {
            None => Ok(None),
            Some(v) => check_label(v)
                .map(|_| Some(v.to_owned()))
                .map_err(|r| self.err(name, r)),
        }
    }

    /// A label value that must be one of `allowed` (an iterator, so the
    /// configured lists are read in place, not collected per event); any
    /// label value under [`Rules::Stored`].
    fn one_of<'n>(
        &self,
        name: &str,
        allowed: impl Iterator<Item = &'n str> + Clone,
        rules: Rules,
    ) -> Result<Option<String>, FieldError> {
        let v = self.label(name)?;
        if rules == Rules::Stored {
            return Ok(v);
        }
        match &v {
            Some(s) if !allowed.clone().any(|a| a == s) => Err(self.err(
                name,
                format!(
                    "unknown value `{s}`; expected one of: {}",
                    allowed.collect::<Vec<_>>().join(", ")
                ),
            )),
            _ => Ok(v),
        }
    }

    /// An RFC 3339 time no more than five minutes in the future (any time,
    /// under [`Rules::Stored`]).
    fn time(&self, name: &str, now: Millis, rules: Rules) -> Result<Option<Millis>, FieldError> {
        let Some(v) = self.string(name)? else {
            return Ok(None);
        };
        let t = parse_rfc3339(v).map_err(|r| self.err(name, r))?;
        // The field's full name is only built for an error.
        if rules == Rules::Api && t > now.saturating_add(MAX_FUTURE_MS) {
            check_future(&format!("{}{name}", self.prefix), v, t, now)?;
        }
        Ok(Some(t))
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, FieldError> {
        match self.obj.field(name) {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.err(name, format!("must be a boolean, not {}", kind(other)))),
        }
    }
}

/// What [`super::json_kind`] calls a value of this kind.
pub fn kind(v: Scalar<'_>) -> &'static str {
    match v {
        Scalar::Null => "null",
        Scalar::Bool(_) => "a boolean",
        Scalar::Str(_) => "a string",
        Scalar::Other(k) => k,
    }
}

/// The namespaces the webhook adapters write defects into: the names of
/// `sources::REGISTRY` (a test there keeps the two equal; `ingest` sits below
/// `sources` and cannot read it).
pub const WEBHOOK_SOURCES: [&str; 4] = ["github", "gitlab", "jira", "sentry"];

/// Keeps generic events out of the webhook sources' namespaces, where they
/// would overwrite (or move to another product) a defect a webhook owns. The
/// comparison ignores case and surrounding white space, so a look-alike
/// (`GitHub`, `github `) is refused too: it would be a second namespace that
/// corrects nothing. With `allow_vendor_sources`, the exact name is accepted
/// (corrections).
fn check_source(config: &Config, source: &str) -> Result<(), String> {
    let folded = source.trim().to_lowercase();
    let Some(vendor) = WEBHOOK_SOURCES.into_iter().find(|v| *v == folded) else {
        return Ok(());
    };
    if !config.allow_vendor_sources {
        return Err(format!(
            "`{source}` is the namespace of the {vendor} webhook; the generic API may not write there (set `allow_vendor_sources = true` to correct its defects)"
        ));
    }
    if source != vendor {
        return Err(format!(
            "`{source}` is not the {vendor} webhook's namespace; write `{vendor}` exactly to correct its defects"
        ));
    }
    Ok(())
}

/// Whether release names of the generic API are empty once normalised,
/// remembered for a stream of events (a history names a few hundred
/// releases, each normalised once instead of once per event). Bounded: past
/// [`ReleaseMemo::MAX`] names it starts over. Valid for one configuration.
#[derive(Default)]
pub struct ReleaseMemo(Option<std::collections::HashMap<String, bool>>);

impl ReleaseMemo {
    /// Most names remembered.
    pub const MAX: usize = 4096;

    /// A memo for a stream of events.
    pub fn new() -> Self {
        Self(Some(Default::default()))
    }

    fn keyed(&mut self, config: &Config, raw: &str) -> bool {
        let Some(memo) = &mut self.0 else {
            // One request's events: nothing worth remembering.
            return config.release_rules.key("", raw).is_some();
        };
        if let Some(k) = memo.get(raw) {
            return *k;
        }
        let k = config.release_rules.key("", raw).is_some();
        if memo.len() >= Self::MAX {
            memo.clear();
        }
        memo.insert(raw.to_owned(), k);
        k
    }
}

/// One event object, as one element of a `POST /api/v1/events` body;
/// `prefix` starts error paths.
pub fn parse_event(
    config: &Config,
    o: &dyn Object,
    prefix: &str,
    now: Millis,
) -> Result<DefectEvent, FieldError> {
    parse_event_as(
        config,
        o,
        prefix,
        now,
        &mut ReleaseMemo::default(),
        Rules::Api,
    )
}

/// [`parse_event`] for one of a stream of events (a batch's items, the
/// `import` sub-command's lines), with the release names checked so far in
/// `memo`, under `rules`: the API's, or a stored record's (a row of an
/// export, restored as it was stored).
pub fn parse_event_as(
    config: &Config,
    o: &dyn Object,
    prefix: &str,
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<DefectEvent, FieldError> {
    let f = Fields::new(o, prefix, EVENT_FIELDS)?;
    let id = event_id(&f, rules)?;
    let source = f.label("source")?.unwrap_or_else(|| "generic".into());
    check_source(config, &source).map_err(|reason| f.err("source", reason))?;
    let product = f
        .label("product")?
        .unwrap_or_else(|| config.default_product.clone());
    let updated_at = f.time("updated_at", now, rules)?;
    let found_at = f.time("found_at", now, rules)?;
    let deleted = f.bool("deleted")?.unwrap_or(false);
    let class = classification(config, &f, memo, rules)?;
    let status = status(&f)?;
    let links = links(&f, rules)?;
    let change = if deleted {
        match rules {
            Rules::Api => Change::Delete,
            Rules::Stored => Change::Restore {
                class,
                status,
                found_at,
            },
        }
    } else {
        if rules == Rules::Api && class.stage.is_none() {
            return Err(f.err(
                "stage",
                format!(
                    "is required unless `deleted` is true; configured stages: {}",
                    config.pipeline.names()
                ),
            ));
        }
        Change::Upsert {
            class,
            status,
            found_at,
        }
    };
    Ok(DefectEvent {
        source,
        id: id.to_owned(),
        product: ProductRef {
            kind: String::new(),
            namespace: product,
        },
        change,
        updated_at,
        links,
    })
}

/// The event's `links`: absent or `null` keeps the record's links; an array
/// of at most [`MAX_LINKS_PER_RECORD`] `{"source", "id"}` objects replaces
/// them (`[]` removes them).
fn links(f: &Fields<'_>, rules: Rules) -> Result<Option<Vec<LinkRef>>, FieldError> {
    let items = match f.obj.field("links") {
        None | Some(Scalar::Null) => return Ok(None),
        Some(v) => match f.obj.nested("links") {
            Some(Value::Array(items)) => items,
            _ => {
                let kind = match f.obj.nested("links") {
                    Some(_) => "an object",
                    None => kind(v),
                };
                return Err(f.err(
                    "links",
                    format!("must be an array of {{\"source\", \"id\"}} objects, not {kind}"),
                ));
            }
        },
    };
    if items.len() > MAX_LINKS_PER_RECORD {
        return Err(f.err(
            "links",
            format!(
                "holds {} links; the limit is {MAX_LINKS_PER_RECORD}",
                items.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("{}links[{i}].", f.prefix);
        let Value::Object(o) = item else {
            return Err(FieldError::new(
                format!("{}links[{i}]", f.prefix),
                "must be an object with `source` and `id`",
            ));
        };
        let l = Fields::new(o, &prefix, LINK_FIELDS)?;
        let source = l
            .label("source")?
            .ok_or_else(|| l.err("source", "is required"))?;
        let id = event_id(&l, rules)?.to_owned();
        out.push(LinkRef { source, id });
    }
    Ok(Some(out))
}

/// The event's `id`: required, 1..the limit of `rules` characters, not
/// blank, no control characters.
fn event_id<'a>(f: &Fields<'a>, rules: Rules) -> Result<&'a str, FieldError> {
    let id = f.string("id")?.ok_or_else(|| f.err("id", "is required"))?;
    let facts = Facts::of(id);
    let id_len = facts.chars;
    let max_id = match rules {
        Rules::Api => MAX_ID_LEN,
        Rules::Stored => MAX_STORED_ID_LEN,
    };
    if id_len == 0 || id_len > max_id {
        return Err(f.err("id", format!("must be 1..{max_id} characters, is {id_len}")));
    }
    if facts.blank {
        return Err(f.err("id", "must not be blank (white space only)"));
    }
    if facts.control {
        return Err(f.err("id", "must not contain control characters"));
    }
    Ok(id)
}

/// The event's stage, release, detector, cause, severity and team, each
/// one of the configured values (under `rules`); a release must key to a
/// name once normalised.
fn classification(
    config: &Config,
    f: &Fields<'_>,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Classification, FieldError> {
    let stage_names = config.pipeline.stages().iter().map(|s| s.name.as_str());
    let stage = f.one_of("stage", stage_names, rules)?;
    let release = f.label("release")?;
    if let Some(r) = &release {
        // A stored row keeps a raw release that keys to nothing (under
        // this configuration) as it was: unattributed.
        if rules == Rules::Api && !memo.keyed(config, r) {
            return Err(f.err("release", format!("`{r}` is empty once normalised")));
        }
    }
    Ok(Classification {
        stage,
        release,
        detected_by: f.one_of("detected_by", DETECTORS.into_iter(), rules)?,
        cause: f.one_of(
            "cause",
            config.causes.iter().map(|(n, _)| n.as_str()),
            rules,
        )?,
        severity: f.one_of(
            "severity",
            config.severities.iter().map(String::as_str),
            rules,
        )?,
        team: if config.teams.is_empty() {
            f.label("team")?
        } else {
            f.one_of("team", config.teams.iter().map(String::as_str), rules)?
        },
    })
}

/// The event's `status` (`valid` when absent).
fn status(f: &Fields<'_>) -> Result<Status, FieldError> {
    match f.string("status")? {
        None => Ok(Status::Valid),
        Some(s) => Status::parse(s).ok_or_else(|| {
            f.err(
                "status",
                format!("unknown value `{s}`; expected one of: valid, invalid, duplicate"),
            )
        }),
    }
}

/// One release-time object, as one element of a `POST /api/v1/releases` body.
pub fn parse_release(
    config: &Config,
    o: &dyn Object,
    prefix: &str,
    now: Millis,
) -> Result<ReleaseEvent, FieldError> {
    parse_release_as(
        config,
        o,
        prefix,
        now,
        &mut ReleaseMemo::default(),
        Rules::Api,
    )
}

/// [`parse_release`] for one of a stream, with the names checked so far,
/// under `rules` (a stored release time may be any time).
pub fn parse_release_as(
    config: &Config,
    o: &dyn Object,
    prefix: &str,
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<ReleaseEvent, FieldError> {
    let f = Fields::new(o, prefix, RELEASE_FIELDS)?;
    let product = f
        .label("product")?
        .unwrap_or_else(|| config.default_product.clone());
    let release = f
        .label("release")?
        .ok_or_else(|| f.err("release", "is required"))?;
    if !memo.keyed(config, &release) {
        return Err(f.err("release", format!("`{release}` is empty once normalised")));
    }
    let released_at = f
        .time("released_at", now, rules)?
        .ok_or_else(|| f.err("released_at", "is required"))?;
    Ok(ReleaseEvent {
        product: ProductRef {
            kind: String::new(),
            namespace: product,
        },
        release,
        released_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// The flat path reads every body it takes exactly as the full parser
    /// does, errors included, and leaves the rest to it.
    #[test]
    fn flat_bodies_read_as_the_full_parser_reads_them() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let now = 1_800_000_000_000;
        let taken = [
            r#"{"id":"a","stage":"qa"}"#,
            r#"{"id":"a\u00e9\"b","stage":"production","release":"v1.2.0","product":"shop","source":"jira-x","detected_by":"user","cause":"coverage","severity":"high","team":"payments","status":"valid","found_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T00:00:00Z"}"#,
            r#"[{"id":"a","stage":"qa"},{"id":"b","deleted":true},{"id":"c","stage":"qa","release":null}]"#,
            r#"[{"id":"a","stage":"qa"},{"id":"b","stage":"nowhere"}]"#,
            r#"[{"id":"a","stage":"qa"},{"id":"   ","stage":"qa"}]"#,
            r#"[{"id":"a","stage":"qa","colour":"red"}]"#,
            r#"{"id":3,"stage":"qa"}"#,
            r#"{"id":"a","stage":"qa","deleted":"yes"}"#,
            r#"{"id":"a","stage":"qa","updated_at":"2999-01-01T00:00:00Z"}"#,
            r#"{"stage":"qa"}"#,
            "[]",
        ];
        for body in taken {
            let flat = parse_events_flat(&config, body.as_bytes(), now)
                .unwrap_or_else(|| panic!("taken: {body}"));
            let tree = crate::ingest::json::from_slice_unique(body.as_bytes()).expect("valid");
            let full = parse_events(&config, &tree, now);
            assert_eq!(format!("{flat:?}"), format!("{full:?}"), "{body}");
        }
        for body in [
            r#"{"id":"a","id":"b"}"#.as_bytes(),
            br#"[{"id":"a","stage":["qa"]}]"#,
            br#"[{"id":"a"},"b"]"#,
            br#""a""#,
            b"{\"id\":\"\xff\"}",
            b"{",
        ] {
            assert!(parse_events_flat(&config, body, now).is_none());
        }
    }
}
