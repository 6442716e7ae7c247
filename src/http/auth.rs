//! Who may write to `/api/v1/*`: the bearer token when one is configured, else
//! loopback clients only.

use std::net::SocketAddr;

use axum::http::{HeaderMap, header};

use super::error::AppError;
use crate::ingest::signature::secret_eq;

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
            if secret_eq(given.trim().as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(AppError::Unauthorized("wrong bearer token"))
            }
        }
        // A listener on `[::]` sees IPv4 clients as `::ffff:a.b.c.d`.
        None if peer.ip().to_canonical().is_loopback() => Ok(()),
        None => Err(AppError::Forbidden(
            "no BUG_ESCAPE_API_TOKEN is configured, so only loopback clients may write; set a token to accept remote writers".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn without_a_token_only_loopback_writes() {
        let h = HeaderMap::new();
        assert!(check_writer(None, &h, peer("127.0.0.1")).is_ok());
        assert!(check_writer(None, &h, peer("::1")).is_ok());
        assert!(check_writer(None, &h, peer("::ffff:127.0.0.1")).is_ok());
        assert!(check_writer(None, &h, peer("::ffff:127.8.9.10")).is_ok());
        for remote in [
            "192.0.2.7",
            "::ffff:192.0.2.7",
            "::127.0.0.1",
            "2001:db8::1",
        ] {
            let err = check_writer(None, &h, peer(remote)).unwrap_err();
            assert_eq!(err.reason_label(), "forbidden", "{remote}");
        }
    }

    #[test]
    fn with_a_token_every_client_needs_it() {
        let mut h = HeaderMap::new();
        let err = check_writer(Some("t0k"), &h, peer("127.0.0.1")).unwrap_err();
        assert_eq!(err.reason_label(), "auth");
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(check_writer(Some("t0k"), &h, peer("192.0.2.7")).is_err());
        h.insert(header::AUTHORIZATION, "Bearer t0k".parse().unwrap());
        assert!(check_writer(Some("t0k"), &h, peer("192.0.2.7")).is_ok());
    }
}
