//! The parser threads of an import: each line checked and read by the
//! generic API's own parser (`ingest::generic`), with the import format's
//! additions (`kind`, `product_kind`); a rejected line is kept with its field
//! and reason.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use super::read::{Chunk, Raw};
use crate::config::Config;
use crate::ingest::FieldError;
use crate::ingest::flat::{Flat, Object, Scalar, Without};
use crate::ingest::generic::{self, ReleaseMemo, Rules, WEBHOOK_SOURCES};
use crate::ingest::json::{JsonError, from_slice_unique};
use crate::model::item::Item;
use crate::model::time::{Millis, now_ms};
use crate::store::format::{self, KIND_DEFECT, KIND_RELEASE, PRODUCT_KIND};

/// A line that failed validation.
pub struct Rejection {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

pub(super) struct Parsed {
    pub(super) seq: u64,
    pub(super) file: Arc<str>,
    pub(super) bytes: u64,
    /// The good lines, in input order.
    pub(super) items: Vec<Item>,
    /// The rejected lines, in input order.
    pub(super) rejected: Vec<Rejection>,
}

pub(super) fn parse_chunks(config: &Config, rx: &Mutex<Receiver<Chunk>>, tx: &SyncSender<Parsed>) {
    let mut memo = ReleaseMemo::new();
    loop {
        let chunk = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            }
        };
        let now = now_ms();
        let mut items = Vec::with_capacity(chunk.lines.len());
        let mut rejected = Vec::new();
        // The chunk's text checked as UTF-8 once (when it is), not string by
        // string as the JSON parser reads it.
        let utf8 = std::str::from_utf8(&chunk.text).ok();
        let rules = if chunk.stored {
            Rules::Stored
        } else {
            Rules::Api
        };
        for (line, raw) in chunk.lines {
            match parse_line(config, raw, &chunk.text, utf8, now, &mut memo, rules) {
                Ok(item) => items.push(item),
                Err(e) => rejected.push(Rejection {
                    line,
                    field: e.field,
                    reason: e.reason,
                }),
            }
        }
        let parsed = Parsed {
            seq: chunk.seq,
            file: chunk.file,
            bytes: chunk.bytes,
            items,
            rejected,
        };
        if tx.send(parsed).is_err() {
            return;
        }
    }
}

/// One line → one item, or the field at fault and why (the API's 422).
fn parse_line(
    config: &Config,
    raw: Raw,
    text: &[u8],
    utf8: Option<&str>,
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Item, FieldError> {
    match raw {
        // The common case read without a tree; anything else is read again
        // by the API's own parser, for its errors.
        Raw::Json(at) => {
            let bytes = text.get(at.clone()).unwrap_or_default();
            let line = match utf8 {
                Some(t) => t.get(at),
                None => std::str::from_utf8(bytes).ok(),
            };
            match line.and_then(Flat::parse) {
                Some(flat) => parse_object(config, &flat, now, memo, rules),
                None => parse_json(config, bytes, now, memo, rules),
            }
        }
        Raw::Csv(cells, names) => {
            parse_object(config, &csv_object(&cells, &names)?, now, memo, rules)
        }
        Raw::Broken(why) => Err(FieldError::new("", why)),
    }
}

/// A JSON line read by the API's own parser (a tree, duplicate keys refused).
fn parse_json(
    config: &Config,
    bytes: &[u8],
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Item, FieldError> {
    match from_slice_unique(bytes) {
        Ok(Value::Object(o)) => parse_object(config, &o, now, memo, rules),
        Ok(_) => Err(FieldError::new("", "a line must be a JSON object")),
        Err(JsonError::Syntax(e)) => Err(FieldError::new("", format!("not valid JSON: {e}"))),
        Err(JsonError::Duplicate(e)) => Err(e),
    }
}

/// A CSV row as the JSON object the same line would be: an empty cell is an
/// absent field; `deleted` is `true` or `false`.
fn csv_object(
    cells: &[Option<String>],
    names: &[String],
) -> Result<Map<String, Value>, FieldError> {
    let mut o = Map::new();
    for (cell, name) in cells.iter().zip(names) {
        let Some(cell) = cell else {
            return Err(FieldError::new(name.as_str(), "is not valid UTF-8"));
        };
        if cell.is_empty() {
            continue;
        }
        let value = match (name.as_str(), cell.as_str()) {
            ("deleted", "true") => Value::Bool(true),
            ("deleted", "false") => Value::Bool(false),
            // An export's links: the JSON array, as NDJSON holds it.
            ("links", text) => serde_json::from_str(text).map_err(|e| {
                FieldError::new("links", format!("must be a JSON array of links: {e}"))
            })?,
            _ => Value::String(cell.clone()),
        };
        o.insert(name.clone(), value);
    }
    Ok(o)
}

/// The import format's additions to the API's objects — `kind` (`release`
/// for a release time) and `product_kind` (a vendor's product namespace) —
/// then the API's own parser.
fn parse_object(
    config: &Config,
    o: &dyn Object,
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Item, FieldError> {
    let kind = match o.field("kind") {
        None | Some(Scalar::Null) => KIND_DEFECT,
        Some(Scalar::Str(s)) => s,
        Some(other) => {
            return Err(FieldError::new(
                "kind",
                format!("must be a string, not {}", generic::kind(other)),
            ));
        }
    };
    let product_kind = match o.field(PRODUCT_KIND) {
        None | Some(Scalar::Null) => String::new(),
        Some(Scalar::Str(s)) if s.is_empty() || s == "generic" => String::new(),
        Some(Scalar::Str(s)) if WEBHOOK_SOURCES.contains(&s) => s.to_owned(),
        Some(other) => {
            let shown = match other {
                Scalar::Str(s) => format!("`{s}`"),
                v => generic::kind(v).to_owned(),
            };
            return Err(FieldError::new(
                PRODUCT_KIND,
                format!(
                    "must be one of: {} (or absent for the API's products), not {shown}",
                    WEBHOOK_SOURCES.join(", ")
                ),
            ));
        }
    };
    let o = &Without {
        inner: o,
        hidden: &["kind", PRODUCT_KIND],
    };
    match kind {
        KIND_DEFECT => {
            let mut ev = generic::parse_event_as(config, o, "", now, memo, rules)?;
            ev.product.kind = product_kind;
            Ok(Item::Defect(ev))
        }
        KIND_RELEASE => {
            let mut ev = generic::parse_release_as(config, o, "", now, memo, rules)?;
            if !product_kind.is_empty() {
                // The key depends on the source's release rules.
                if config
                    .release_rules
                    .key(&product_kind, &ev.release)
                    .is_none()
                {
                    return Err(FieldError::new(
                        "release",
                        format!("`{}` is empty once normalised", ev.release),
                    ));
                }
            }
            ev.product.kind = product_kind;
            Ok(Item::Release(ev))
        }
        format::KIND_EXPORT => Err(FieldError::new(
            "kind",
            "an export's version line is read only as the first line of its file",
        )),
        other => Err(FieldError::new(
            "kind",
            format!("unknown value `{other}`; expected one of: {KIND_DEFECT}, {KIND_RELEASE}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// A line read the fast way gives what the API's own parser gives: the
    /// same item, or the same field and reason.
    #[test]
    fn a_line_reads_as_the_api_reads_it() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let now = 1_800_000_000_000;
        let lines = [
            r#"{"id":"a","stage":"production","release":"1.0","found_at":"2024-01-02T03:04:05Z"}"#,
            r#"{"id":"a\u0062","source":"tr\"acker","stage":"qa","deleted":false,"status":"invalid"}"#,
            r#"{"kind":"release","product":"p","release":"v2","released_at":"2024-01-02T00:00:00Z"}"#,
            r#"{"kind":"release","product_kind":"github","release":"v2","released_at":"2024-01-02T00:00:00Z"}"#,
            r#"{"id":"a","stage":3}"#,
            r#"{"id":"a","stage":null,"deleted":true}"#,
            r#"{"id":"a","deleted":"yes"}"#,
            r#"{"id":"a","stage":["qa"]}"#,
            r#"{"id":"a","stage":{"x":1,"x":2}}"#,
            r#"{"id":"a","stage":"qa","stage":"qa"}"#,
            r#"{"id":"a","colour":"red"}"#,
            r#"{"kind":7}"#,
            r#"{"kind":"other"}"#,
            r#"{"id":"a","product_kind":"gitlab","stage":"qa"}"#,
            r#"{"id":"a","product_kind":true,"stage":"qa"}"#,
            r#"{"id":"a","product_kind":"svn","stage":"qa"}"#,
            r#"[{"id":"a"}]"#,
            r#"{"id":"a""#,
            r#"{"id":"a","found_at":"yesterday","stage":"qa"}"#,
            r#"{"id":"a","stage":"qa+production","cause":"weird","found_at":"2999-01-01T00:00:00Z"}"#,
            r#"{"id":"a","stage":null,"deleted":true,"release":"v1","status":"duplicate"}"#,
            r#"{"id":"a","deleted":false,"detected_by":"robot","severity":"extreme"}"#,
        ];
        let not_utf8: &[u8] = b"{\"id\":\"a\xff\",\"stage\":\"qa\"}";
        let cases = lines.iter().map(|l| l.as_bytes()).chain([not_utf8]);
        for line in cases {
            // Its chunk checked as UTF-8 already, or not (a chunk that is not).
            // Under the API's rules and as a stored record alike.
            let variants = [std::str::from_utf8(line).ok(), None]
                .into_iter()
                .flat_map(|u| [(u, Rules::Api), (u, Rules::Stored)]);
            for (utf8, rules) in variants {
                let mut memo = ReleaseMemo::new();
                let raw = Raw::Json(0..line.len());
                let fast = parse_line(&config, raw, line, utf8, now, &mut memo, rules);
                let full = parse_json(&config, line, now, &mut memo, rules);
                let line = format!("{rules:?} {}", String::from_utf8_lossy(line));
                match (fast, full) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{line}"),
                    (Err(a), Err(b)) => {
                        assert_eq!((a.field, a.reason), (b.field, b.reason), "{line}")
                    }
                    (a, b) => panic!("{line}: {a:?} vs {b:?}"),
                }
            }
        }
    }
}
