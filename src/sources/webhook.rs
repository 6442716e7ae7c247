//! What every webhook adapter shares: the result of parsing one delivery, its
//! errors, reading nested JSON with error paths, vendor time formats and
//! delivery ids.

use crate::ingest::json_kind;
use axum::http::HeaderMap;
use serde_json::Value;

use super::conventions;
use crate::config::Config;
use crate::ingest::FieldError;
pub use crate::ingest::check_future;
use crate::model::event::{MAX_ID_LEN, ProductRef, ReleaseEvent};
use crate::model::item::Item;
use crate::model::time::{MAX_FUTURE_MS, Millis, parse_time};

/// What an adapter made of one delivery.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// What to write (empty when ignored).
    pub items: Vec<Item>,
    /// The vendor's delivery id, deduplicated by the store.
    pub delivery: Option<String>,
    /// Why the delivery is acknowledged but not stored (counted as ignored).
    pub ignored: Option<&'static str>,
    /// Classification fields whose values did not map (counted once stored).
    pub unmapped: Vec<&'static str>,
    /// Work the handler does before writing (the only I/O an adapter asks for).
    pub follow_up: Option<FollowUp>,
}

impl Parsed {
    /// A delivery acknowledged and counted as ignored for `reason`.
    pub fn ignore(reason: &'static str, delivery: Option<String>) -> Self {
        Self {
            ignored: Some(reason),
            delivery,
            ..Self::default()
        }
    }
}

/// Work left to the HTTP layer.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUp {
    /// Ask Sentry's issue API for the issue's `firstRelease` and attach it.
    SentryFirstRelease {
        issue_id: String,
        product: ProductRef,
    },
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AdapterError {
    /// A header is missing or wrong (400).
    Header(String),
    /// A payload field is missing or wrong (422).
    Field(FieldError),
}

impl From<FieldError> for AdapterError {
    fn from(e: FieldError) -> Self {
        AdapterError::Field(e)
    }
}

/// A header's value as text, trimmed; `None` when absent or empty.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AdapterError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
            .map_err(|_| AdapterError::Header(format!("header {name} is not visible ASCII"))),
    }
}

/// Header `name`, which the delivery must carry (`shown`: its name as the
/// vendor spells it, for the error).
pub fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
    shown: &str,
) -> Result<&'a str, AdapterError> {
    header(headers, name)?.ok_or_else(|| AdapterError::Header(format!("missing {shown} header")))
}

/// A delivery id from `name`: 1..=256 visible characters.
pub fn delivery_id(headers: &HeaderMap, name: &str) -> Result<Option<String>, AdapterError> {
    match header(headers, name)? {
        None => Ok(None),
        Some(v) if v.len() <= MAX_ID_LEN => Ok(Some(v.to_owned())),
        Some(v) => Err(AdapterError::Header(format!(
            "header {name} is {} characters long; the limit is {MAX_ID_LEN}",
            v.len()
        ))),
    }
}

/// A JSON value with its path, for errors that name the field
/// (`issue.fields.updated`).
#[derive(Clone)]
pub struct At<'a> {
    value: Option<&'a Value>,
    path: String,
}

impl<'a> At<'a> {
    /// The root of a payload.
    pub fn root(value: &'a Value) -> Self {
        Self {
            value: Some(value),
            path: String::new(),
        }
    }

    /// The raw value; `None` when absent or `null`.
    pub fn value(&self) -> Option<&'a Value> {
        self.value.filter(|v| !v.is_null())
    }

    /// The raw value, `null` included; `None` only when absent.
    pub fn raw(&self) -> Option<&'a Value> {
        self.value
    }

    /// The path of this value.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// An error about this value.
    pub fn err(&self, reason: impl Into<String>) -> FieldError {
        FieldError::new(self.path.clone(), reason)
    }

    /// A child field (absent when this is not an object).
    pub fn get(&self, name: &str) -> At<'a> {
        At {
            value: self.value.and_then(|v| v.get(name)),
            path: if self.path.is_empty() {
                name.to_owned()
            } else {
                format!("{}.{name}", self.path)
            },
        }
    }

    /// Element `i` of an array.
    pub fn index(&self, i: usize) -> At<'a> {
        At {
            value: self.value.and_then(|v| v.get(i)),
            path: format!("{}[{i}]", self.path),
        }
    }

    /// The elements of an optional array (absent or `null`: none).
    pub fn items(&self) -> Result<Vec<At<'a>>, FieldError> {
        let n = self.array()?.len();
        Ok((0..n).map(|i| self.index(i)).collect())
    }

    /// An optional string.
    pub fn str_opt(&self) -> Result<Option<&'a str>, FieldError> {
        match self.value() {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(format!("must be a string, not {}", json_kind(other)))),
        }
    }

    /// A required string.
    pub fn str(&self) -> Result<&'a str, FieldError> {
        self.str_opt()?.ok_or_else(|| self.err("is required"))
    }

    /// A required id: a string or an integer, 1..=256 characters.
    pub fn id(&self) -> Result<String, FieldError> {
        let v = match self.value() {
            None => return Err(self.err("is required")),
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            Some(other) => {
                return Err(self.err(format!(
                    "must be a string or an integer, not {}",
                    json_kind(other)
                )));
            }
        };
        if v.is_empty() || v.len() > MAX_ID_LEN || v.chars().any(char::is_control) {
            return Err(self.err(format!("must be 1..{MAX_ID_LEN} visible characters")));
        }
        Ok(v)
    }

    /// An optional array (absent or `null`: empty).
    pub fn array(&self) -> Result<&'a [Value], FieldError> {
        match self.value() {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(self.err(format!("must be an array, not {}", json_kind(other)))),
        }
    }

    /// Requires an object here.
    pub fn object(&self) -> Result<(), FieldError> {
        match self.value() {
            Some(Value::Object(_)) => Ok(()),
            None => Err(self.err("is required")),
            Some(other) => Err(self.err(format!("must be an object, not {}", json_kind(other)))),
        }
    }

    /// An optional boolean.
    pub fn bool_opt(&self) -> Result<Option<bool>, FieldError> {
        match self.value() {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(format!("must be a boolean, not {}", json_kind(other)))),
        }
    }

    /// A required vendor time, at most five minutes in the future.
    pub fn time(&self, now: Millis) -> Result<Millis, FieldError> {
        self.stamp()?.checked(now)
    }

    /// An optional vendor time, at most five minutes in the future.
    pub fn time_opt(&self, now: Millis) -> Result<Option<Millis>, FieldError> {
        self.stamp_opt()?.map(|s| s.checked(now)).transpose()
    }

    /// A required vendor time as sent, before the future check.
    pub fn stamp(&self) -> Result<Stamp, FieldError> {
        self.stamp_opt()?.ok_or_else(|| self.err("is required"))
    }

    /// An optional vendor time as sent (a string in one of the vendor formats
    /// [`parse_time`] reads), before the future check.
    pub fn stamp_opt(&self) -> Result<Option<Stamp>, FieldError> {
        let Some(v) = self.str_opt()? else {
            return Ok(None);
        };
        let t = parse_time(v).ok_or_else(|| self.err(format!("`{v}` is not a time")))?;
        Ok(Some(Stamp::new(&self.path, v, t)))
    }

    /// An optional time in epoch milliseconds (Jira's `timestamp`); anything
    /// but an integer counts as absent, since captures carry other shapes.
    pub fn epoch_millis_opt(&self) -> Option<Stamp> {
        let t = self.value()?.as_i64()?;
        Some(Stamp::new(&self.path, &t.to_string(), t))
    }
}

/// A time a vendor sent, with where it came from. The only way to its value is
/// [`Stamp::checked`], so every vendor time obeys the same future limit as the
/// generic API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    field: String,
    raw: String,
    at: Millis,
}

impl Stamp {
    /// A time read from `field` (a JSON path or a header name), as sent (`raw`).
    pub fn new(field: &str, raw: &str, at: Millis) -> Self {
        Self {
            field: field.to_owned(),
            raw: raw.to_owned(),
            at,
        }
    }

    /// The time the delivery was received, for events that carry none.
    pub fn received(now: Millis) -> Self {
        Self::new("", "", now)
    }

    /// The time, refused (422, counted as `future_timestamp`) when it is more
    /// than five minutes ahead of `now`.
    pub fn checked(&self, now: Millis) -> Result<Millis, FieldError> {
        check_future(&self.field, &self.raw, self.at, now)?;
        Ok(self.at)
    }

    /// Whether it is more than five minutes ahead of `now`.
    pub fn is_ahead(&self, now: Millis) -> bool {
        self.at > now + MAX_FUTURE_MS
    }

    /// The earlier of two times (the first on a tie).
    pub fn earlier(self, other: Stamp) -> Stamp {
        if other.at < self.at { other } else { self }
    }

    /// The later of two times (the first on a tie).
    pub fn later(self, other: Stamp) -> Stamp {
        if other.at > self.at { other } else { self }
    }
}

/// What a release time more than five minutes ahead means for a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ahead {
    /// A broken clock: refused like every vendor time (422, `future_timestamp`).
    Refuse,
    /// A release scheduled for later (GitLab's upcoming releases): not shipped,
    /// so acknowledged, not stored, and counted as ignored (`upcoming_release`).
    Upcoming,
}

/// The one release-event parser of the sources with release hooks (GitHub
/// `release`, GitLab Release Hook, Jira `jira:version_released`): the release
/// named at `name` of `product`, shipped at `shipped`. A name that is empty
/// once normalised is ignored (`no_release`); the time obeys the future limit
/// as `ahead` says.
pub fn release_event(
    config: &Config,
    product: ProductRef,
    name: &At<'_>,
    shipped: Stamp,
    ahead: Ahead,
    now: Millis,
) -> Result<Parsed, FieldError> {
    let release =
        conventions::sanitize(name.str()?).ok_or_else(|| name.err("must not be empty"))?;
    if config.release_rules.key(&product.kind, &release).is_none() {
        return Ok(Parsed::ignore("no_release", None));
    }
    if ahead == Ahead::Upcoming && shipped.is_ahead(now) {
        return Ok(Parsed::ignore("upcoming_release", None));
    }
    let released_at = shipped.checked(now)?;
    Ok(Parsed {
        items: vec![Item::Release(ReleaseEvent {
            product,
            release,
            released_at,
        })],
        ..Parsed::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_ids_are_refused() {
        let body = serde_json::json!({"a": "   ", "b": "\t\u{3000}", "c": " 42 ", "d": 7});
        let root = At::root(&body);
        assert_eq!(root.get("a").id().map_err(|e| e.field), Err("a".into()));
        assert_eq!(root.get("b").id().map_err(|e| e.field), Err("b".into()));
        assert_eq!(root.get("c").id(), Ok("42".into()));
        assert_eq!(root.get("d").id(), Ok("7".into()));
    }

    #[test]
    fn parses_every_vendor_time_format() {
        let t = |s| parse_time(s);
        assert_eq!(t("2019-05-15T15:20:18Z"), Some(1_557_933_618_000));
        assert_eq!(t("2019-05-15 15:20:18 UTC"), Some(1_557_933_618_000));
        assert_eq!(t("2019-05-15T17:20:18.000+0200"), Some(1_557_933_618_000));
        assert_eq!(t("2019-05-15 17:20:18 +0200"), Some(1_557_933_618_000));
        assert_eq!(t("2020-04-28T13:56:05.903736Z"), Some(1_588_082_165_903));
        assert_eq!(t("2019-05-15"), Some(1_557_878_400_000));
        assert_eq!(t("09/Sep/20"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn errors_name_the_nested_field() {
        let v = serde_json::json!({"issue": {"fields": {"updated": 3}}});
        let e = At::root(&v)
            .get("issue")
            .get("fields")
            .get("updated")
            .time(0)
            .unwrap_err();
        assert_eq!(e.field, "issue.fields.updated");
        assert!(e.reason.contains("must be a string"));
    }
}
