//! One JSON object of scalar fields, read without building a tree: the
//! shape of a generic event or release-time line. Strings without escapes
//! are borrowed from the input. `import` reads its lines with it; anything
//! it does not take — not an object, a repeated key, a nested array or
//! object, broken JSON — is read again by [`super::json::from_slice_unique`],
//! whose errors are the API's.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A field's value as the parsers see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Str(&'a str),
    /// A number (or, from a `serde_json` map, an array or object): its kind
    /// as [`super::json_kind`] says it.
    Other(&'static str),
}

/// An object the field parsers read: a `serde_json` map, or a [`Flat`] line.
pub trait Object {
    /// The value of field `name`, if present.
    fn field(&self, name: &str) -> Option<Scalar<'_>>;
    /// The first field name `known` does not accept.
    fn first_key_not(&self, known: &dyn Fn(&str) -> bool) -> Option<&str>;

    /// The first field name that is not in `known`.
    fn unknown(&self, known: &[&str]) -> Option<&str> {
        self.first_key_not(&|k| known.iter().any(|n| same_name(n, k)))
    }

    /// The value of field `name` when it is an array or an object (only a
    /// `serde_json` map holds one: a [`Flat`] line never does).
    fn nested(&self, _name: &str) -> Option<&Value> {
        None
    }
}

/// `a == b` for field names, which are short and mostly differ in length or
/// first byte: those are compared inline, before a call to compare the rest
/// (a sixth of the import's parsing went to `memcmp` calls on names).
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

impl Object for Map<String, Value> {
    fn field(&self, name: &str) -> Option<Scalar<'_>> {
        self.get(name).map(|v| match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::String(s) => Scalar::Str(s),
            other => Scalar::Other(super::json_kind(other)),
        })
    }

    fn first_key_not(&self, known: &dyn Fn(&str) -> bool) -> Option<&str> {
        self.keys().map(String::as_str).find(|k| !known(k))
    }

    fn nested(&self, name: &str) -> Option<&Value> {
        self.get(name).filter(|v| v.is_array() || v.is_object())
    }
}

/// `inner` without the fields named in `hidden` (read by the caller first).
pub struct Without<'a, O: ?Sized> {
    pub inner: &'a O,
    pub hidden: &'a [&'a str],
}

impl<O: Object + ?Sized> Object for Without<'_, O> {
    fn field(&self, name: &str) -> Option<Scalar<'_>> {
        if self.hidden.contains(&name) {
            return None;
        }
        self.inner.field(name)
    }

    fn first_key_not(&self, known: &dyn Fn(&str) -> bool) -> Option<&str> {
        self.inner
            .first_key_not(&|k| known(k) || self.hidden.contains(&k))
    }

    fn nested(&self, name: &str) -> Option<&Value> {
        if self.hidden.contains(&name) {
            return None;
        }
        self.inner.nested(name)
    }
}

/// A JSON object of scalar fields, in input order, keys unique.
#[derive(Debug, Default)]
pub struct Flat<'a> {
    fields: Vec<(Cow<'a, str>, Owned<'a>)>,
}

#[derive(Debug)]
enum Owned<'a> {
    Null,
    Bool(bool),
    Str(Cow<'a, str>),
    Other(&'static str),
}

impl<'a> Flat<'a> {
    /// `text` as one object with unique keys, or `None` when it is anything
    /// else (the caller reads it again for the precise error). Text, not
    /// bytes: a caller checks a whole buffer of lines as UTF-8 at once, which
    /// is much cheaper than `serde_json` checking each string it reads.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let flat = (&mut de).deserialize_map(FlatVisitor).ok()?;
        de.end().ok()?;
        Some(flat)
    }
}

impl Object for Flat<'_> {
    fn field(&self, name: &str) -> Option<Scalar<'_>> {
        self.fields
            .iter()
            .find(|(k, _)| same_name(k, name))
            .map(|(_, v)| match v {
                Owned::Null => Scalar::Null,
                Owned::Bool(b) => Scalar::Bool(*b),
                Owned::Str(s) => Scalar::Str(s),
                Owned::Other(kind) => Scalar::Other(kind),
            })
    }

    fn first_key_not(&self, known: &dyn Fn(&str) -> bool) -> Option<&str> {
        self.fields
            .iter()
            .map(|(k, _)| k.as_ref())
            .find(|k| !known(k))
    }
}

/// A request body of flat objects: one, or an array of them.
#[derive(Debug)]
pub enum FlatBody<'a> {
    One(Flat<'a>),
    Many(Vec<Flat<'a>>),
}

impl<'a> FlatBody<'a> {
    /// `text` as one flat object or an array of flat objects, each with
    /// unique keys, or `None` when it is anything else (the caller reads it
    /// again with the full parser, whose errors are the API's).
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let body = (&mut de).deserialize_any(BodyVisitor).ok()?;
        de.end().ok()?;
        Some(body)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = FlatBody<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        FlatVisitor.visit_map(map).map(FlatBody::One)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Element(flat)) = seq.next_element()? {
            all.push(flat);
        }
        Ok(FlatBody::Many(all))
    }
}

/// One element of an array body: a flat object.
struct Element<'de>(Flat<'de>);

impl<'de> de::Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FlatVisitor).map(Element)
    }
}

struct FlatVisitor;

impl<'de> Visitor<'de> for FlatVisitor {
    type Value = Flat<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Flat<'de>, A::Error> {
        let mut fields: Vec<(Cow<'de, str>, Owned<'de>)> = Vec::with_capacity(16);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if fields.iter().any(|(k, _)| *k == key.0) {
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value::<Value1<'de>>()?;
            fields.push((key.0, value.0));
        }
        Ok(Flat { fields })
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor).map(Key)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// One field's value.
struct Value1<'de>(Owned<'de>);

impl<'de> de::Deserialize<'de> for Value1<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(Value1)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Owned<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Owned::Bool(v))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Owned::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Owned::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Owned::Other("a number"))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Owned::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Owned::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Owned::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Owned::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Owned::Null)
    }

    // A nested value is refused by the field parsers anyway; the full parser
    // reads the line again, so its errors (a repeated key inside the nested
    // value first) stay the API's.
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("nested array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom("nested object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_object_reads_as_the_map_does() {
        let text = r#"{"id":"a\"b","n":3,"f":-1.5,"t":true,"z":null,"s":"plain"}"#;
        let flat = Flat::parse(text).expect("an object");
        let map: Map<String, Value> = serde_json::from_str(text).expect("valid");
        for name in ["id", "n", "f", "t", "z", "s", "absent"] {
            assert_eq!(flat.field(name), map.field(name), "{name}");
        }
        assert_eq!(flat.field("id"), Some(Scalar::Str("a\"b")));
        assert_eq!(flat.unknown(&["id", "n", "f", "t", "z"]), Some("s"));
        assert_eq!(map.unknown(&["id", "n", "f", "t", "z"]), Some("s"));
        let hidden = Without {
            inner: &flat,
            hidden: &["s"],
        };
        assert_eq!(hidden.field("s"), None);
        assert_eq!(hidden.unknown(&["id", "n", "f", "t", "z"]), None);
    }

    #[test]
    fn anything_but_one_object_of_unique_keys_is_left_to_the_full_parser() {
        for text in [
            r#"{"id":"a","id":"b"}"#,
            r#"{"id":"a","\u0069d":"b"}"#,
            r#"{"id":"a","stage":["qa"]}"#,
            r#"{"id":"a","stage":{"k":"v"}}"#,
            r#"[{"id":"a"}]"#,
            r#""id""#,
            r#"{"id":"a"} x"#,
            r#"{"id":"a""#,
            "",
        ] {
            assert!(Flat::parse(text).is_none(), "{text}");
        }
    }

    #[test]
    fn a_body_is_one_flat_object_or_an_array_of_them_or_left_to_the_full_parser() {
        assert!(matches!(
            FlatBody::parse(r#"{"id":"a"}"#),
            Some(FlatBody::One(_))
        ));
        match FlatBody::parse(r#" [ {"id":"a"}, {"id":"b","n":1} ] "#) {
            Some(FlatBody::Many(all)) => {
                let ids: Vec<_> = all.iter().map(|f| f.field("id")).collect();
                assert_eq!(ids, [Some(Scalar::Str("a")), Some(Scalar::Str("b"))]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(FlatBody::parse("[]"), Some(FlatBody::Many(v)) if v.is_empty()));
        for text in [
            r#"[{"id":"a"},{"id":"b","id":"c"}]"#,
            r#"[{"id":"a"},3]"#,
            r#"[{"id":"a"},[]]"#,
            r#"[{"id":"a","stage":{"k":"v"}}]"#,
            r#"{"id":"a","id":"b"}"#,
            r#""id""#,
            "3",
            "[{}] x",
            "[{}",
            "",
        ] {
            assert!(FlatBody::parse(text).is_none(), "{text}");
        }
    }
}
