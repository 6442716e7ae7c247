//! `AppError`: every refusal the HTTP layer answers, as JSON naming the field
//! and the reason. Internal causes are logged, not sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::json::Json;
use crate::ingest::FieldError;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("invalid field {}: {}", .0.field, .0.reason)]
    InvalidField(FieldError),
    /// A malformed part of the body that has a name (a form field): 400.
    #[error("malformed field {}: {}", .0.field, .0.reason)]
    MalformedField(FieldError),
    #[error("missing or wrong credentials")]
    Unauthorized(&'static str),
    /// Missing or wrong basic-auth credentials (`basic_auth_users`).
    #[error("missing or wrong user name or password")]
    BasicAuth(&'static str),
    #[error("missing or wrong webhook signature or token")]
    WebhookAuth(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("store unavailable")]
    StoreUnavailable(String),
    /// The store refuses writes for a reason the client is told (the
    /// database file removed or replaced, the disk full): 503 naming it.
    #[error("store unavailable: {0}")]
    StoreRefused(String),
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// No room to take the write now; nothing was stored (503, `Retry-After`).
    #[error("busy: {0}")]
    Busy(String),
    /// No room for more webhook bytes not yet authenticated (503, `Retry-After`).
    #[error("too many unauthenticated bytes are being read; nothing was stored; retry later")]
    UnauthenticatedFull,
    /// The request body did not arrive in time; nothing was stored (408).
    #[error(
        "the request body did not arrive in time (body_read_timeout or write_timeout); nothing was stored"
    )]
    RequestTimeout,
}

impl AppError {
    /// The `reason` label under which the refusal is counted.
    pub fn reason_label(&self) -> &'static str {
        match self {
            AppError::Malformed(_) | AppError::MalformedField(_) => "malformed",
            AppError::InvalidField(f) if f.future => "future_timestamp",
            AppError::InvalidField(_) => "invalid_field",
            AppError::Unauthorized(_) | AppError::BasicAuth(_) | AppError::WebhookAuth(_) => "auth",
            AppError::Forbidden(_) => "forbidden",
            AppError::TooLarge(_) => "too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::StoreUnavailable(_) | AppError::StoreRefused(_) => "store_unavailable",
            AppError::NotConfigured(_) => "not_configured",
            AppError::Busy(_) => "queue_full",
            AppError::UnauthenticatedFull => "unauthenticated_full",
            AppError::RequestTimeout => "timeout",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            AppError::Malformed(_) | AppError::MalformedField(_) => StatusCode::BAD_REQUEST,
            AppError::InvalidField(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthorized(_) | AppError::BasicAuth(_) | AppError::WebhookAuth(_) => {
                StatusCode::UNAUTHORIZED
            }
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::StoreUnavailable(_)
            | AppError::StoreRefused(_)
            | AppError::NotConfigured(_)
            | AppError::Busy(_)
            | AppError::UnauthenticatedFull => StatusCode::SERVICE_UNAVAILABLE,
            AppError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        AppError::InvalidField(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (field, reason) = match &self {
            AppError::InvalidField(f) | AppError::MalformedField(f) => {
                (Some(f.field.clone()), f.reason.clone())
            }
            AppError::Unauthorized(why) | AppError::BasicAuth(why) | AppError::WebhookAuth(why) => {
                (None, (*why).to_owned())
            }
            AppError::StoreUnavailable(cause) => {
                tracing::error!(%cause, "store unavailable");
                (None, "the store could not commit; retry later".to_owned())
            }
            AppError::StoreRefused(why) => {
                tracing::error!(reason = %why, "store refuses writes");
                (None, why.clone())
            }
            AppError::Busy(why) => (None, why.clone()),
            other => (None, other.to_string()),
        };
        let body = json!({ "error": self.reason_label(), "field": field, "reason": reason });
        let mut resp = (status, Json(body)).into_response();
        match self {
            AppError::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::BasicAuth(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Basic realm="bug-escape-exporter", charset="UTF-8""#,
                    ),
                );
            }
            AppError::StoreUnavailable(_) | AppError::StoreRefused(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            AppError::Busy(_) | AppError::UnauthenticatedFull => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        resp
    }
}
