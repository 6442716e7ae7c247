//! Reading request bodies: media type checked, size limited, bytes kept raw
//! (webhook signatures are computed over them).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use super::error::AppError;
use crate::ingest::FieldError;

/// The declared media type, lower-cased, without parameters (`""` when absent).
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `media` is JSON (`application/json` or `application/…+json`).
pub fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Checks that the body is declared JSON (`application/json` or `…+json`).
pub fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let media = media_type(headers);
    if is_json(&media) {
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

/// Reads and discards up to `limit` bytes of a body that is refused before
/// being read (for at most one second), so the client, still sending, gets the
/// refusal rather than a reset connection. Nothing is kept.
pub async fn discard(mut body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// Parses JSON, naming where it broke.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, AppError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::Malformed(format!("body is not valid JSON: {e}")))
}

/// Parses JSON for the generic API: as [`parse_json`], and an object that
/// repeats a key is refused (422) naming the key by its path (`[3].stage`).
pub fn parse_json_unique(bytes: &[u8]) -> Result<serde_json::Value, AppError> {
    use crate::ingest::json::{JsonError, from_slice_unique};
    from_slice_unique(bytes).map_err(|e| match e {
        JsonError::Syntax(e) => AppError::Malformed(format!("body is not valid JSON: {e}")),
        JsonError::Duplicate(field) => AppError::InvalidField(field),
    })
}

/// The one value of the field `name` of an `application/x-www-form-urlencoded`
/// body; a missing or repeated field is refused (400) naming it.
pub fn form_field(bytes: &[u8], name: &str) -> Result<String, AppError> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(bytes) {
        if key == name {
            if found.is_some() {
                return Err(AppError::MalformedField(FieldError::new(
                    name,
                    "appears more than once in the form",
                )));
            }
            found = Some(value.into_owned());
        }
    }
    found.ok_or_else(|| AppError::MalformedField(FieldError::new(name, "is missing from the form")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: AppError) -> String {
        match err {
            AppError::MalformedField(f) => f.field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn form_fields_are_decoded_once() {
        let got = form_field(b"a=1&payload=%7B%22k%22%3A+%22v+w%22%7D&b=", "payload");
        assert_eq!(got.ok().as_deref(), Some(r#"{"k": "v w"}"#));
        let missing = form_field(b"payloads=x&", "payload").map_err(field_of);
        assert_eq!(missing, Err("payload".to_owned()));
        let twice = form_field(b"payload=1&payload=2", "payload").map_err(field_of);
        assert_eq!(twice, Err("payload".to_owned()));
        assert_eq!(form_field(b"payload=", "payload").ok().as_deref(), Some(""));
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), "");
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        );
        assert_eq!(media_type(&h), "application/x-www-form-urlencoded");
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/json"));
    }
}
