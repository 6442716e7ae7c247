//! Ingestion: the generic API's parsers (JSON, flat rows) and what every
//! path into the store shares (field errors). The vendors' adapters live in
//! `sources`; the HTTP layer's `record` is the one write path of both.

pub mod flat;
pub mod generic;
pub mod json;

use crate::model::time::{MAX_FUTURE_MS, Millis};

/// A field that failed validation, named by its JSON path.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
    /// The timestamp is too far in the future (counted apart).
    pub future: bool,
}

impl FieldError {
    /// An invalid field.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
            future: false,
        }
    }
}

/// Refuses a time more than five minutes ahead of `now`: the one future check
/// of every ingestion path.
pub fn check_future(field: &str, raw: &str, t: Millis, now: Millis) -> Result<(), FieldError> {
    if t > now + MAX_FUTURE_MS {
        let mut e = FieldError::new(
            field,
            format!("`{raw}` is more than 5 minutes in the future"),
        );
        e.future = true;
        return Err(e);
    }
    Ok(())
}

/// A JSON value's type, for error messages (`must be a string, not a number`).
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
