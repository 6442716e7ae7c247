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
use crate::sources::signature::secret_eq;

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

/// Paths basic auth leaves to their own authentication (webhooks: HMAC
/// signature or token; `/api/v1/*`: bearer token or loopback) or open for
/// probes (`/healthz`, `/readyz`).
pub fn open_to_all(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
        || path.starts_with("/webhooks/")
        || path.starts_with("/api/v1/")
}

/// A configured user: the hash and its cost, read once at start.
struct User {
    hash: String,
    cost: u32,
}

/// Basic auth against bcrypt hashes, with a cache of successes. bcrypt runs
/// on the blocking pool, one check at a time (as exporter-toolkit does), so
/// a flood of wrong passwords takes one core at most.
///
/// Every check that reaches bcrypt does the work of one verification at the
/// highest configured cost, whoever is asked for: an unknown user is checked
/// against a dummy hash of that cost, and a user whose hash is cheaper is
/// padded with bcrypt runs up to it (see `BasicAuth::verify`). So neither
/// a user's existence nor the cost of its hash shows in the answer's time.
pub struct BasicAuth {
    users: BTreeMap<String, User>,
    /// The highest cost among the users' hashes.
    max_cost: u32,
    /// Checked for unknown users: never matches, costs `max_cost`.
    dummy: String,
    /// SHA-256 digests of (user, password, hash) that verified.
    cache: Mutex<VecDeque<[u8; 32]>>,
    bcrypt: Semaphore,
    /// Checks that ran bcrypt so far (tests check that the cache spares them).
    runs: AtomicU64,
}

impl BasicAuth {
    /// `users` maps names to bcrypt hashes (checked when the web
    /// configuration was read; one that does not parse never verifies).
    pub fn new(users: BTreeMap<String, String>) -> Self {
        let users: BTreeMap<String, User> = users
            .into_iter()
            .map(|(name, hash)| {
                let cost = hash
                    .parse::<bcrypt::HashParts>()
                    .map_or(MIN_COST, |h| h.get_cost());
                (name, User { hash, cost })
            })
            .collect();
        let max_cost = users.values().map(|u| u.cost).max().unwrap_or(MIN_COST);
        Self {
            users,
            max_cost,
            dummy: dummy_hash(max_cost),
            cache: Mutex::default(),
            bcrypt: Semaphore::new(1),
            runs: AtomicU64::new(0),
        }
    }

    /// Checks that ran bcrypt so far.
    pub fn bcrypt_runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Result<(), AppError> {
        let (decoded, colon) = credentials(authorization)?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let known = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get(u));
        let (hash, cost) = match known {
            Some(u) => (u.hash.clone(), u.cost),
            None => (self.dummy.clone(), self.max_cost),
        };
        let digest = {
            let mut d = Sha256::new();
            for part in [user, password, hash.as_bytes()] {
                d.update((part.len() as u64).to_be_bytes());
                d.update(part);
            }
            <[u8; 32]>::from(d.finalize())
        };
        // Only successes are cached, so a hit is a known user with the right
        // password; every other caller takes the bcrypt path below.
        if self.cached(&digest) && known.is_some() {
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
            let max_cost = self.max_cost;
            tokio::task::spawn_blocking(move || Self::verify(&password, &hash, cost, max_cost))
                .await
                .unwrap_or(false)
        };
        if !(known.is_some() && verified) {
            return Err(AppError::BasicAuth("wrong user name or password"));
        }
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.pop_front();
            }
            cache.push_back(digest);
        }
        Ok(())
    }

    /// Verifies `password` against `hash` (of `cost`), then pads the work to
    /// one verification at `max_cost`: bcrypt's time doubles with each cost
    /// step, so runs at `cost`, `cost + 1`, … `max_cost - 1` add up to what
    /// the one run at `cost` lacks (2^c + 2^c + … + 2^(m-1) = 2^m). Equal
    /// work rather than a sleep: the padding takes the same CPU as a real
    /// check, so nothing else (load, a busy core) tells them apart either.
    fn verify(password: &[u8], hash: &str, cost: u32, max_cost: u32) -> bool {
        let verified = bcrypt::verify(password, hash).unwrap_or(false);
        let salt = [0x5a; 16];
        for padding in cost..max_cost {
            let _ = std::hint::black_box(bcrypt::hash_with_salt(password, padding, salt));
        }
        verified
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

/// bcrypt's lowest cost.
const MIN_COST: u32 = 4;

/// A hash no password verifies against that costs `cost` to check: a real
/// hash (random salt) made at the lowest cost, its cost field then raised.
/// Checking it runs bcrypt at `cost` over that salt, whose output cannot
/// equal the cost-4 output stored; made this way it costs nothing at start,
/// whatever the configured cost.
fn dummy_hash(cost: u32) -> String {
    let cheap = bcrypt::hash("no password verifies against this hash", MIN_COST)
        .unwrap_or_else(|_| "$2b$04$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi".into());
    // `$2b$04$<salt and hash>`: the cost is the two digits at 4..6.
    format!("{}{cost:02}{}", &cheap[..4], &cheap[6..])
}

/// The user name and password of `Basic` credentials (as bytes: a name
/// that is not UTF-8 is an unknown user, checked like any other).
/// The decoded `user:password` of `Basic` credentials and where its colon
/// is.
fn credentials(authorization: Option<&[u8]>) -> Result<(Vec<u8>, usize), AppError> {
    let not_basic = AppError::BasicAuth("the Authorization header is not `Basic <credentials>`");
    let value = authorization.ok_or(AppError::BasicAuth(
        "missing `Authorization: Basic` credentials",
    ))?;
    let Some((scheme, encoded)) = value
        .iter()
        .position(|b| *b == b' ')
        .map(|i| value.split_at(i))
    else {
        return Err(not_basic);
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(not_basic);
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
    Ok((decoded, colon))
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

    #[test]
    fn the_dummy_hash_costs_the_highest_configured_cost_and_never_verifies() {
        let users = BTreeMap::from([
            ("a".to_owned(), bcrypt::hash("pw", 4).unwrap()),
            ("b".to_owned(), bcrypt::hash("pw", 6).unwrap()),
        ]);
        let auth = BasicAuth::new(users);
        assert_eq!(auth.max_cost, 6);
        let parts: bcrypt::HashParts = auth.dummy.parse().expect("a bcrypt hash");
        assert_eq!(parts.get_cost(), 6);
        for guess in ["", "pw", "no password verifies against this hash"] {
            assert!(!bcrypt::verify(guess, &auth.dummy).unwrap(), "{guess}");
        }
        assert_ne!(dummy_hash(6), auth.dummy, "a fresh salt each start");
    }

    #[test]
    fn a_cheaper_hash_is_padded_and_still_verifies_only_its_password() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        assert!(BasicAuth::verify(b"pw", &hash, 4, 7));
        assert!(!BasicAuth::verify(b"px", &hash, 4, 7));
        assert!(BasicAuth::verify(b"pw", &hash, 4, 4));
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
