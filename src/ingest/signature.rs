//! Webhook authentication, in one place: HMAC-SHA256 signatures of the raw body
//! (GitHub, Jira, Sentry) and shared tokens (GitLab), each checked against every
//! configured secret (rotation) in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::webhooks::Secrets;
use crate::http::auth::secret_eq;

type HmacSha256 = Hmac<Sha256>;

/// Why a request is not authenticated (the reason is sent to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// The signature or token header is absent.
    Missing(&'static str),
    /// It is present but matches no configured secret.
    Wrong(&'static str),
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
