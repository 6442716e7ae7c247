//! Webhook authentication, in one place: HMAC-SHA256 signatures of the raw body
//! (GitHub, Jira, Sentry), shared tokens (GitLab) and Standard Webhooks
//! signatures (GitLab signed webhooks), each checked against every configured
//! secret (rotation) in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use subtle::ConstantTimeEq;

use axum::http::HeaderMap;

use crate::config::webhooks::Secrets;

type HmacSha256 = Hmac<Sha256>;

/// Why a request is not authenticated (the reason is sent to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The signature or token header is absent.
    Missing(&'static str),
    /// It is present but matches no configured secret.
    Wrong(&'static str),
}

/// Whether two secrets are equal, in constant time (for equal lengths; the
/// length itself is not hidden).
pub fn secret_eq(given: &[u8], expected: &[u8]) -> bool {
    bool::from(given.ct_eq(expected))
}

/// The lowercase hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A header's value as text; `None` when absent or not visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The webhook check of the sources that sign the body with HMAC-SHA256 in
/// one header (`header`, lower-case; `shown` in errors): nothing to check
/// before the body is read.
pub fn hmac_header(
    secrets: &Secrets,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    (header_name, prefix, shown): (&str, &str, &'static str),
) -> Result<(), AuthError> {
    let Some(body) = body else {
        return Ok(());
    };
    verify_hmac(secrets, body, header(headers, header_name), prefix, shown)
}

/// Checks a hex HMAC-SHA256 signature of `body`, optionally after a `prefix`
/// (`sha256=`), against every secret. Every secret is tried, so the time taken
/// does not tell which one matched.
pub fn verify_hmac(
    secrets: &Secrets,
    body: &[u8],
    header: Option<&str>,
    prefix: &str,
    name: &'static str,
) -> Result<(), AuthError> {
    let given = header.ok_or(AuthError::Missing(name))?.trim();
    let hex_sig = given
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &given[prefix.len()..])
        .ok_or(AuthError::Wrong(name))?;
    let sig = hex::decode(hex_sig).map_err(|_| AuthError::Wrong(name))?;
    let mut ok = false;
    for secret in secrets.iter() {
        if let Ok(mut mac) = HmacSha256::new_from_slice(secret) {
            mac.update(body);
            // verify_slice compares in constant time.
            ok |= mac.verify_slice(&sig).is_ok();
        }
    }
    if ok {
        Ok(())
    } else {
        Err(AuthError::Wrong(name))
    }
}

/// Checks a shared token sent as is (GitLab `X-Gitlab-Token`) against every
/// secret, in constant time.
pub fn verify_token(
    secrets: &Secrets,
    header: Option<&str>,
    name: &'static str,
) -> Result<(), AuthError> {
    let given = header.ok_or(AuthError::Missing(name))?;
    let mut ok = false;
    for secret in secrets.iter() {
        ok |= secret_eq(given.as_bytes(), secret);
    }
    if ok {
        Ok(())
    } else {
        Err(AuthError::Wrong(name))
    }
}

/// How far `webhook-timestamp` may be from now, either way (replay window).
pub const STANDARD_TOLERANCE_SECS: u64 = 5 * 60;

/// The headers of a Standard Webhooks delivery, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHeaders<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`: Unix seconds.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`: space-separated `v1,<base64>` entries.
    pub signature: Option<&'a str>,
}

/// Checks a Standard Webhooks signature: any `v1,<base64>` entry of
/// `webhook-signature` must be the HMAC-SHA256 of `"{id}.{timestamp}.{body}"`
/// under one of `keys`, and the timestamp within five minutes of `now_secs`.
/// Other entries (`v1a,…`) are skipped. Every key and entry is compared.
pub fn verify_standard(
    keys: &Secrets,
    headers: StandardHeaders<'_>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), AuthError> {
    let signature = headers
        .signature
        .ok_or(AuthError::Missing("webhook-signature"))?;
    let id = headers.id.ok_or(AuthError::Missing("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(AuthError::Missing("webhook-timestamp"))?;
    let stale = AuthError::Wrong("webhook-timestamp");
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(stale);
    }
    let sent: i64 = timestamp.parse().map_err(|_| stale)?;
    if sent.abs_diff(now_secs) > STANDARD_TOLERANCE_SECS {
        return Err(stale);
    }
    let given: Vec<Vec<u8>> = signature
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .collect();
    let mut ok = false;
    for key in keys.iter() {
        if let Ok(mut mac) = HmacSha256::new_from_slice(key) {
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            let expected = mac.finalize().into_bytes();
            for sig in &given {
                ok |= secret_eq(sig, &expected);
            }
        }
    }
    if ok {
        Ok(())
    } else {
        Err(AuthError::Wrong("webhook-signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(v: &[&str]) -> Secrets {
        Secrets::new(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn matches_the_github_documentation_example() {
        // GitHub docs, "Validating webhook deliveries": secret "It's a Secret to
        // Everybody", payload "Hello, World!".
        let sig = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            sig,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        let s = secrets(&["old", "It's a Secret to Everybody"]);
        let header = format!("sha256={sig}");
        assert_eq!(
            verify_hmac(&s, b"Hello, World!", Some(&header), "sha256=", "X"),
            Ok(())
        );
    }

    #[test]
    fn refuses_missing_wrong_and_malformed_signatures() {
        let s = secrets(&["k"]);
        let good = sign(b"k", b"body");
        let v = |h: Option<&str>| verify_hmac(&s, b"body", h, "sha256=", "X");
        assert_eq!(v(None), Err(AuthError::Missing("X")));
        assert_eq!(v(Some(&good)), Err(AuthError::Wrong("X"))); // no prefix
        assert_eq!(v(Some("sha256=zz")), Err(AuthError::Wrong("X")));
        assert_eq!(v(Some("sha1=00")), Err(AuthError::Wrong("X")));
        assert_eq!(
            v(Some(&format!("sha256={}", sign(b"other", b"body")))),
            Err(AuthError::Wrong("X"))
        );
        assert_eq!(v(Some(&format!("SHA256={good}"))), Ok(()));
        assert_eq!(verify_hmac(&s, b"body", Some(&good), "", "S"), Ok(()));
    }

    /// The test vector of the Standard Webhooks (Svix) reference libraries.
    #[test]
    fn matches_the_standard_webhooks_example() {
        let keys = Secrets::from_keys(vec![
            BASE64
                .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_or_default(),
        ]);
        let h = StandardHeaders {
            id: Some("msg_p5jXN8AQM9LWM0D4loKWxJek"),
            timestamp: Some("1614265330"),
            signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        };
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(verify_standard(&keys, h, body, 1_614_265_330), Ok(()));
        assert_eq!(
            verify_standard(&keys, h, body, 1_614_265_330 + 301),
            Err(AuthError::Wrong("webhook-timestamp"))
        );
        let several = StandardHeaders {
            signature: Some("v1a,abc v1,AAAA v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            ..h
        };
        assert_eq!(verify_standard(&keys, several, body, 1_614_265_030), Ok(()));
        let bad = |signature| StandardHeaders {
            signature: Some(signature),
            ..h
        };
        for sig in [
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,%%%",
            "v2,x",
            "",
        ] {
            assert_eq!(
                verify_standard(&keys, bad(sig), body, 1_614_265_330),
                Err(AuthError::Wrong("webhook-signature")),
                "{sig}"
            );
        }
        let no_id = StandardHeaders { id: None, ..h };
        assert_eq!(
            verify_standard(&keys, no_id, body, 1_614_265_330),
            Err(AuthError::Missing("webhook-id"))
        );
        let signed_ms = StandardHeaders {
            timestamp: Some("-1614265330"),
            ..h
        };
        assert_eq!(
            verify_standard(&keys, signed_ms, body, 1_614_265_330),
            Err(AuthError::Wrong("webhook-timestamp"))
        );
    }

    #[test]
    fn tokens_compare_whole() {
        let s = secrets(&["t0k3n", "next"]);
        assert_eq!(verify_token(&s, Some("next"), "T"), Ok(()));
        assert_eq!(
            verify_token(&s, Some("t0k3"), "T"),
            Err(AuthError::Wrong("T"))
        );
        assert_eq!(verify_token(&s, None, "T"), Err(AuthError::Missing("T")));
        assert_eq!(
            verify_token(&secrets(&[]), Some(""), "T"),
            Err(AuthError::Wrong("T"))
        );
    }
}
