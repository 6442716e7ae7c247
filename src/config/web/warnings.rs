//! What the web configuration allows but an operator should hear of at
//! start: a basic-auth hash too cheap to resist guessing, a server
//! certificate outside its validity period. `serve` logs each once as a
//! `warn` line, `check-config` prints them; neither ever shows a hash.

use std::fmt;

use rustls::pki_types::CertificateDer;

/// The lowest bcrypt cost taken without a warning (exporter-toolkit's
/// documentation and `htpasswd -B` use 10).
pub const MIN_QUIET_COST: u32 = 10;

/// One start-up warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// `basic_auth_users.<user>` has a hash of a cost below
    /// [`MIN_QUIET_COST`]: cheap to guess offline, and a check costs
    /// little, so guessing online is cheap too.
    CheapHash { user: String, cost: u32 },
    /// A certificate of the server's chain is not valid now (clients will
    /// refuse it). `position` is 1 for the server's own certificate.
    Certificate {
        key: String,
        position: usize,
        subject: String,
        not_before: String,
        not_after: String,
        expired: bool,
    },
    /// A certificate rustls took but whose dates could not be read.
    Unreadable { key: String, position: usize },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::CheapHash { user, cost } => write!(
                f,
                "basic_auth_users.{user}: the bcrypt hash has cost {cost}, below {MIN_QUIET_COST}; \
                 passwords are cheap to guess: hash it again with `htpasswd -nBC 12 \"\"`"
            ),
            Warning::Certificate {
                key,
                position,
                subject,
                not_before,
                not_after,
                expired,
            } => write!(
                f,
                "{key}: certificate {position} ({subject}) is {}: valid from {not_before} \
                 (notBefore) to {not_after} (notAfter); clients will refuse it",
                if *expired { "expired" } else { "not yet valid" }
            ),
            Warning::Unreadable { key, position } => write!(
                f,
                "{key}: the validity dates of certificate {position} cannot be read"
            ),
        }
    }
}

impl Warning {
    /// Logs it once, at `warn`.
    pub fn log(&self) {
        tracing::warn!("web configuration: {self}");
    }
}

/// The warning of a hash of `cost` for `user`, if any.
pub fn hash_cost(user: &str, cost: u32) -> Option<Warning> {
    (cost < MIN_QUIET_COST).then(|| Warning::CheapHash {
        user: user.to_owned(),
        cost,
    })
}

/// A warning for each certificate of `chain` (read from `key`) that is not
/// valid at `now` (seconds since the epoch).
pub fn certificates(key: &str, chain: &[CertificateDer<'_>], now: i64) -> Vec<Warning> {
    let mut out = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        let position = i + 1;
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            out.push(Warning::Unreadable {
                key: key.to_owned(),
                position,
            });
            continue;
        };
        let validity = cert.validity();
        let (from, to) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        if (from..=to).contains(&now) {
            continue;
        }
        out.push(Warning::Certificate {
            key: key.to_owned(),
            position,
            subject: cert.subject().to_string(),
            not_before: rfc3339(from),
            not_after: rfc3339(to),
            expired: now > to,
        });
    }
    out
}

/// `secs` as an RFC 3339 date and time (UTC).
fn rfc3339(secs: i64) -> String {
    crate::model::time::format_rfc3339(secs.saturating_mul(1000), chrono::SecondsFormat::Secs)
        .unwrap_or_else(|| format!("{secs} s after the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn cert(from: (i32, u8, u8), to: (i32, u8, u8)) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        p.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn only_certificates_outside_their_dates_are_named_with_them() {
        // 2026-06-01T00:00:00Z
        let now = 1_780_272_000;
        let chain = [
            cert((2020, 1, 1), (2026, 1, 2)),
            cert((2025, 1, 1), (2027, 1, 1)),
            cert((2030, 1, 1), (2031, 1, 1)),
        ];
        let w = certificates("tls_server_config.cert_file", &chain, now);
        assert_eq!(w.len(), 2, "{w:?}");
        let expired = w[0].to_string();
        assert!(
            expired.contains("certificate 1")
                && expired.contains("expired")
                && expired.contains("2020-01-01T00:00:00Z")
                && expired.contains("2026-01-02T00:00:00Z"),
            "{expired}"
        );
        let early = w[1].to_string();
        assert!(
            early.contains("certificate 3")
                && early.contains("not yet valid")
                && early.contains("2030-01-01T00:00:00Z"),
            "{early}"
        );
        let junk = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])];
        assert!(matches!(
            certificates("k", &junk, now)[..],
            [Warning::Unreadable { position: 1, .. }]
        ));
    }

    #[test]
    fn hashes_below_cost_10_are_named_by_user() {
        assert_eq!(hash_cost("alice", 10), None);
        let w = hash_cost("bob", 9).unwrap().to_string();
        assert!(
            w.contains("basic_auth_users.bob") && w.contains("cost 9"),
            "{w}"
        );
    }
}
