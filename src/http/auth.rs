//! Who may write to `/api/v1/*`: the bearer token when one is configured, else
//! loopback clients only. Who may read the metrics and pages: anyone, or the
//! `basic_auth_users` of the web configuration ([`BasicAuth`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

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

/// Successful verifications remembered (user, password, hash), so a scrape
/// every 15 s costs one bcrypt run, not one per scrape.
const CACHE_ENTRIES: usize = 64;

/// The hash checked for an unknown user, so that it costs as much time as a
/// known one (bcrypt of a random password, cost 10).
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Paths basic auth leaves to their own authentication (webhooks: HMAC
/// signature or token; `/api/v1/*`: bearer token or loopback) or open for
/// probes (`/healthz`, `/readyz`).
pub fn open_to_all(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
        || path.starts_with("/webhooks/")
        || path.starts_with("/api/v1/")
}

/// Basic auth against bcrypt hashes, with a cache of successes. bcrypt runs
/// on the blocking pool, one check at a time (as exporter-toolkit does), so
/// a flood of wrong passwords takes one core at most.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// SHA-256 digests of (user, password, hash) that verified.
    cache: Mutex<VecDeque<[u8; 32]>>,
    bcrypt: Semaphore,
    /// bcrypt runs so far (tests check that the cache spares them).
    runs: AtomicU64,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            cache: Mutex::default(),
            bcrypt: Semaphore::new(1),
            runs: AtomicU64::new(0),
        }
    }

    /// bcrypt verifications run so far.
    pub fn bcrypt_runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Result<(), AppError> {
        let missing = AppError::BasicAuth("missing `Authorization: Basic` credentials");
        let wrong = AppError::BasicAuth("wrong user name or password");
        let value = authorization.ok_or(missing)?;
        let (scheme, encoded) = value
            .iter()
            .position(|b| *b == b' ')
            .map(|i| value.split_at(i))
            .ok_or(AppError::BasicAuth(
                "the Authorization header is not `Basic <credentials>`",
            ))?;
        if !scheme.eq_ignore_ascii_case(b"basic") {
            return Err(AppError::BasicAuth(
                "the Authorization header is not `Basic <credentials>`",
            ));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim_ascii())
            .map_err(|_| AppError::BasicAuth("the Basic credentials are not base64"))?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or(AppError::BasicAuth(
                "the Basic credentials are not `user:password`",
            ))?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let (known, hash) = match std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get(u))
        {
            Some(h) => (true, h.clone()),
            None => (false, DUMMY_HASH.to_owned()),
        };
        let digest = {
            let mut d = Sha256::new();
            for part in [user, password, hash.as_bytes()] {
                d.update((part.len() as u64).to_be_bytes());
                d.update(part);
            }
            <[u8; 32]>::from(d.finalize())
        };
        if known && self.cached(&digest) {
            return Ok(());
        }
        let verified = {
            // The semaphore is never closed; a failure would only refuse.
            let _permit = self
                .bcrypt
                .acquire()
                .await
                .map_err(|_| AppError::BasicAuth("wrong user name or password"))?;
            self.runs.fetch_add(1, Ordering::Relaxed);
            let password = password.to_vec();
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .is_ok_and(|r| r.unwrap_or(false))
        };
        if !(known && verified) {
            return Err(wrong);
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.pop_front();
            }
            cache.push_back(digest);
        }
        Ok(())
    }

    /// Whether `digest` verified before; every entry is compared, in
    /// constant time.
    fn cached(&self, digest: &[u8; 32]) -> bool {
        let Ok(cache) = self.cache.lock() else {
            return false;
        };
        let mut hit = subtle::Choice::from(0);
        for entry in cache.iter() {
            hit |= entry.ct_eq(digest);
        }
        bool::from(hit)
    }
}

/// Middleware: basic auth on every path but [`open_to_all`] ones.
pub async fn require_basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    req: Request,
    next: Next,
) -> Response {
    if open_to_all(req.uri().path()) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match auth.check(given).await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
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

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {b64}").into_bytes()
    }

    #[tokio::test]
    async fn basic_auth_verifies_once_then_serves_from_the_cache() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prom".to_owned(), hash)]));
        assert!(auth.check(Some(&basic("prom", "s3cret"))).await.is_ok());
        assert_eq!(auth.bcrypt_runs(), 1);
        for _ in 0..5 {
            assert!(auth.check(Some(&basic("prom", "s3cret"))).await.is_ok());
        }
        assert_eq!(auth.bcrypt_runs(), 1, "successes come from the cache");
        // Failures are never cached as successes, and each costs a bcrypt run
        // (unknown users too, so their timing matches).
        for (user, pass) in [("prom", "wrong"), ("prom", "wrong"), ("nobody", "s3cret")] {
            let e = auth.check(Some(&basic(user, pass))).await.unwrap_err();
            assert_eq!(e.reason_label(), "auth");
        }
        assert_eq!(auth.bcrypt_runs(), 4);
    }

    #[tokio::test]
    async fn basic_auth_refuses_malformed_headers_without_running_bcrypt() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)]));
        for bad in [
            None,
            Some(b"Bearer abc".as_slice()),
            Some(b"Basic".as_slice()),
            Some(b"Basic !!!".as_slice()),
            Some(b"Basic dXNlcg==".as_slice()), // "user", no colon
        ] {
            assert!(auth.check(bad).await.is_err(), "{bad:?}");
        }
        assert_eq!(auth.bcrypt_runs(), 0);
        assert!(
            auth.check(Some(b"bAsIc dTpwdw==")).await.is_ok(),
            "u:pw, scheme in any case"
        );
    }

    #[test]
    fn probes_webhooks_and_the_api_stay_open() {
        for open in ["/healthz", "/readyz", "/webhooks/github", "/api/v1/events"] {
            assert!(open_to_all(open), "{open}");
        }
        for guarded in [
            "/",
            "/metrics",
            "/m",
            "/nope",
            "/api/v2/x",
            "/webhooks",
            "/healthz/x",
        ] {
            assert!(!open_to_all(guarded), "{guarded}");
        }
    }
}
