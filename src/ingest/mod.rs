//! Ingestion: every path into the store. Each source (the generic API here,
//! vendor webhooks beside it) turns its payload into [`Item`]s; [`record`] is the
//! one write path they share.

pub mod conventions;
pub mod generic;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod sentry;
pub mod signature;
pub mod webhook;

use crate::http::AppState;
use crate::http::error::AppError;
use crate::model::event::Ingress;
use crate::store::{Batch, Item, Outcome};

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

/// Commits `items` from `ingress` and answers with what happened.
pub async fn record(
    state: &AppState,
    ingress: Ingress,
    items: Vec<Item>,
    delivery: Option<String>,
    received_at: i64,
) -> Result<Outcome, AppError> {
    let batch = Batch {
        ingress,
        items,
        delivery,
        received_at,
    };
    state.store.write(batch).await.map_err(|e| {
        state.telemetry.rejected(ingress, "store_unavailable");
        AppError::StoreUnavailable(e.to_string())
    })
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
