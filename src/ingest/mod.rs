//! Ingestion: every path into the store. Each source (the generic API here,
//! vendor webhooks beside it) turns its payload into `store::Item`s; the HTTP
//! layer's `record` is the one write path they share.

pub mod conventions;
pub mod flat;
pub mod generic;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod json;
pub mod sentry;
pub mod signature;
pub mod webhook;

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
