//! Who may write to `/api/v1/*`: the bearer token when one is configured, else
//! loopback clients only.

use std::net::SocketAddr;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::error::AppError;

/// Checks the caller of the write API.
pub fn check_writer(
    token: Option<&str>,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<(), AppError> {
    match token {
        Some(expected) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .ok_or(AppError::Unauthorized("missing `Authorization: Bearer <token>` header"))?;
            if bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())) {
                Ok(())
            } else {
                Err(AppError::Unauthorized("wrong bearer token"))
            }
        }
        None if peer.ip().is_loopback() => Ok(()),
        None => Err(AppError::Forbidden(
            "no BUG_ESCAPE_API_TOKEN is configured, so only loopback clients may write; set a token to accept remote writers".into(),
        )),
    }
}

/// Whether two secrets are equal, in constant time.
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    bool::from(given.ct_eq(expected))
}
