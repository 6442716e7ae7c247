//! Reading request bodies: media type checked, size limited, bytes kept raw
//! (webhook signatures are computed over them).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::error::AppError;

/// Checks that the body is declared JSON (`application/json` or `…+json`).
pub fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media == "application/json"
        || (media.starts_with("application/") && media.ends_with("+json"))
    {
        Ok(())
    } else if media.is_empty() {
        Err(AppError::UnsupportedMediaType(
            "Content-Type is missing; send application/json".into(),
        ))
    } else {
        Err(AppError::UnsupportedMediaType(format!(
            "`{media}` is not JSON; send application/json"
        )))
    }
}

/// Reads at most `limit` bytes of `body`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AppError::TooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            AppError::TooLarge(limit)
        } else {
            AppError::Malformed(format!("could not read the body: {e}"))
        }
    })
}

/// Parses JSON, naming where it broke.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, AppError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::Malformed(format!("body is not valid JSON: {e}")))
}
