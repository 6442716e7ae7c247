//! JSON that refuses duplicate object keys. `serde_json::Value` keeps the last
//! of two equal keys without a word, so `{"stage":"qa","stage":"production"}`
//! would be read as production; the generic API refuses it instead, naming the
//! key by its path (`[3].stage`) like every other field error.
//!
//! The tree is built by one visitor (the same work as `serde_json`'s own); the
//! path is assembled only on the way out of an error, so a valid body pays
//! nothing for it.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::FieldError;

/// Why a body is not accepted as JSON.
#[derive(Debug)]
pub enum JsonError {
    /// Not JSON at all (400).
    Syntax(serde_json::Error),
    /// An object repeats a key (422), named by its path.
    Duplicate(FieldError),
}

/// Parses `bytes` as one JSON value, refusing any object that repeats a key.
pub fn from_slice_unique(bytes: &[u8]) -> Result<Value, JsonError> {
    let trail = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Unique { trail: &trail }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => match trail.into_inner() {
            Some(segments) => Err(JsonError::Duplicate(FieldError::new(
                path(&segments),
                "duplicate key: an object may name each field once",
            ))),
            None => Err(JsonError::Syntax(e)),
        },
    }
}

/// One step of a path, innermost first while an error travels out.
enum Segment {
    Key(String),
    Index(usize),
}

/// `[3].stage`, `a.b[0].c`: the spelling of [`FieldError`] paths.
fn path(innermost_first: &[Segment]) -> String {
    let mut out = String::new();
    for s in innermost_first.iter().rev() {
        match s {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Where a duplicate was found: `Some` once one was, filled outwards.
type Trail = RefCell<Option<Vec<Segment>>>;

#[derive(Clone, Copy)]
struct Unique<'t> {
    trail: &'t Trail,
}

impl Unique<'_> {
    /// Adds `segment` to the path of a duplicate found below it.
    fn mark(self, segment: Segment) {
        if let Some(segments) = self.trail.borrow_mut().as_mut() {
            segments.push(segment);
        }
    }
}

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always a number.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        loop {
            match seq.next_element_seed(self) {
                Ok(Some(v)) => out.push(v),
                Ok(None) => return Ok(Value::Array(out)),
                Err(e) => {
                    self.mark(Segment::Index(out.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match map.next_value_seed(self) {
                Ok(v) => v,
                Err(e) => {
                    self.mark(Segment::Key(key));
                    return Err(e);
                }
            };
            match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(slot) => {
                    *self.trail.borrow_mut() = Some(vec![Segment::Key(slot.key().clone())]);
                    return Err(de::Error::custom("duplicate key"));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(text: &str) -> String {
        match from_slice_unique(text.as_bytes()) {
            Err(JsonError::Duplicate(f)) => f.field,
            other => panic!("expected a duplicate in {text}, got {other:?}"),
        }
    }

    #[test]
    fn the_same_tree_as_serde_json_when_keys_are_unique() {
        let text = r#"[{"id":"a","n":-3,"u":18446744073709551615,"f":1.5,"t":true,"z":null,
            "nested":{"list":[1,{"k":"v"}],"e":{}}}, [], "s"]"#;
        let ours = from_slice_unique(text.as_bytes()).expect("valid");
        let theirs: Value = serde_json::from_str(text).expect("valid");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_repeated_key_is_named_by_its_path() {
        assert_eq!(
            dup(r#"{"id":"d","stage":"qa","stage":"production"}"#),
            "stage"
        );
        assert_eq!(
            dup(r#"[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d","stage":"qa","stage":"qa"}]"#),
            "[3].stage"
        );
        assert_eq!(dup(r#"{"a":{"b":[0,{"c":1,"c":2}]}}"#), "a.b[1].c");
        // Escapes are compared decoded: `\u0069d` is `id`.
        assert_eq!(dup(r#"{"id":"a","\u0069d":"b"}"#), "id");
    }

    #[test]
    fn broken_json_stays_a_syntax_error() {
        for text in [r#"{"a":1"#, r#"{"a":1} x"#, "", r#"{"a":1,"a""#] {
            assert!(
                matches!(
                    from_slice_unique(text.as_bytes()),
                    Err(JsonError::Syntax(_))
                ),
                "{text}"
            );
        }
    }
}
