//! `--web.config.file`: the web configuration file of Prometheus'
//! exporter-toolkit (the one node_exporter reads), validated at start into
//! what the accept loop (TLS) and the router (basic auth, response headers)
//! use.
//!
//! Read once, at start: a change takes a restart (exporter-toolkit re-reads
//! it for every connection). Every error names the key at fault and never
//! echoes a secret. Relative paths are read from the file's own directory, as
//! exporter-toolkit does.
//!
//! What is accepted beyond the toolkit's mandatory keys, and what is refused:
//! - `cipher_suites` (TLS 1.2 suites by their IANA/Go names; TLS 1.3 suites
//!   are not configurable, as in Go), `curve_preferences` (Go names) and
//!   `prefer_server_cipher_suites` are mapped onto rustls; names rustls' ring
//!   provider does not implement are refused by name.
//! - `min_version`/`max_version`: `TLS12`, `TLS13` (rustls has no TLS 1.0/1.1).
//! - `http_server_config.http2: true` is refused (the exporter serves
//!   HTTP/1.1 only); `headers` are added to every answer.
//! - `client_allowed_sans` and `rate_limit` are refused.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::server::ServerConfig;
use serde::Deserialize;

use super::ConfigError;

mod crypto;
mod tls;
pub mod warnings;

pub use tls::ClientAuth;
pub use warnings::Warning;

use tls::{TlsFile, tls_config};

/// The file as written (exporter-toolkit's keys; unknown ones refused).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebFile {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default, deserialize_with = "unique_users")]
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Known to the toolkit, not implemented here: refused by name.
    #[serde(default)]
    rate_limit: Option<serde_yaml::Value>,
}

/// `basic_auth_users`, refusing a user listed twice (serde_yaml keeps the
/// last one silently; Go's strict YAML refuses it).
fn unique_users<'de, D>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Users;
    impl<'de> serde::de::Visitor<'de> for Users {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of user names to bcrypt hashes")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((user, hash)) = map.next_entry::<String, String>()? {
                if out.insert(user.clone(), hash).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "user `{user}` is listed twice"
                    )));
                }
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(Users)
}

/// `http_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// The validated web configuration. The default serves plain HTTP with no
/// basic auth and no extra headers.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// The file it was read from.
    pub file: Option<PathBuf>,
    /// TLS for the listener, when `tls_server_config` sets a certificate.
    pub tls: Option<Arc<ServerConfig>>,
    /// The client-certificate policy (`NoClientCert` without TLS).
    pub client_auth: Option<ClientAuth>,
    /// User name → bcrypt hash (every hash parsed at start).
    pub basic_auth_users: BTreeMap<String, String>,
    /// `http_server_config.headers`, added to every answer.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// What is accepted but deserves a word at start (cheap hashes, a
    /// certificate outside its dates): `serve` logs them, `check-config`
    /// prints them.
    pub warnings: Vec<Warning>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes are secrets too: only the user names are shown.
        f.debug_struct("WebConfig")
            .field("file", &self.file)
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field(
                "basic_auth_users",
                &self.basic_auth_users.keys().collect::<Vec<_>>(),
            )
            .field("headers", &self.headers)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// The headers `http_server_config.headers` may set, and the values the
/// toolkit allows for two of them (compared without case).
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

impl WebConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let at = |m: String| ConfigError(format!("web_config_file {}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read it: {e}")))?;
        let file: WebFile = if text.trim().is_empty() {
            WebFile::default()
        } else {
            // serde quotes an unexpected string whole: a hash or key written
            // one level off would be printed.
            serde_yaml::from_str(&text).map_err(|e| {
                at(super::suggest::serde_unknown_field(
                    &super::redact::serde_message(&e.to_string()),
                ))
            })?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_file(file, dir)
            .map(|mut c| {
                c.file = Some(path.to_path_buf());
                c
            })
            .map_err(at)
    }

    /// Whether answers (other than the open routes) need basic auth.
    pub fn basic_auth(&self) -> bool {
        !self.basic_auth_users.is_empty()
    }

    /// The costs bcrypt runs at (the crate keeps its bounds private).
    const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

    fn from_file(f: WebFile, dir: &Path) -> Result<Self, String> {
        if f.rate_limit.is_some() {
            return Err(
                "rate_limit: not supported by this exporter (its connection bounds apply instead); remove it"
                    .into(),
            );
        }
        let mut out = WebConfig::default();
        if let Some(tls) = f.tls_server_config.filter(|t| !t.is_empty()) {
            let (config, auth, warnings) = tls_config(tls, dir)?;
            out.tls = Some(Arc::new(config));
            out.client_auth = Some(auth);
            out.warnings.extend(warnings);
        }
        for (user, hash) in f.basic_auth_users.unwrap_or_default() {
            if user.is_empty() || user.contains(':') {
                return Err(
                    "basic_auth_users: a user name must be non-empty and hold no `:`".into(),
                );
            }
            let Ok(parts) = hash.parse::<bcrypt::HashParts>() else {
                return Err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (`$2y$10$…`, as `htpasswd -nBC 10 \"\" | tr -d ':\\n'` prints)"
                ));
            };
            // bcrypt refuses to run outside 4..=31, so such a hash never
            // verifies; worse, padding a cheaper user's check up to it would
            // run bcrypt at cost 31 (days), holding basic auth for everyone.
            let cost = parts.get_cost();
            if !Self::BCRYPT_COSTS.contains(&cost) {
                return Err(format!(
                    "basic_auth_users.{user}: the bcrypt hash has cost {cost}, outside bcrypt's {}..={}: no password verifies against it",
                    Self::BCRYPT_COSTS.start(),
                    Self::BCRYPT_COSTS.end()
                ));
            }
            out.warnings.extend(warnings::hash_cost(&user, cost));
            out.basic_auth_users.insert(user, hash);
        }
        if let Some(http) = f.http_server_config {
            if http.http2 == Some(true) {
                return Err(
                    "http_server_config.http2: `true` is not supported: the exporter serves HTTP/1.1 only; remove the key or set it to false"
                        .into(),
                );
            }
            for (name, value) in http.headers.unwrap_or_default() {
                out.headers.push(header(&name, &value)?);
            }
        }
        Ok(out)
    }
}

/// One `http_server_config.headers` entry, checked as the toolkit does.
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let key = format!("http_server_config.headers.{name}");
    let Some((canonical, allowed)) = HEADERS.iter().find(|(h, _)| h.eq_ignore_ascii_case(name))
    else {
        let known: Vec<&str> = HEADERS.iter().map(|(h, _)| *h).collect();
        return Err(format!(
            "{key}: not a header this file may set; known: {}",
            known.join(", ")
        ));
    };
    if let Some(allowed) = allowed {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value)) {
            return Err(format!(
                "{key}: `{value}` is not one of {}",
                allowed.join(", ")
            ));
        }
    }
    let value =
        HeaderValue::from_str(value).map_err(|_| format!("{key}: not a valid header value"))?;
    let name = HeaderName::from_bytes(canonical.as_bytes())
        .map_err(|_| format!("{key}: not a valid header name"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pki {
        dir: tempfile::TempDir,
    }

    /// A temp dir holding `cert.pem`/`key.pem` (for 127.0.0.1) and `ca.pem`,
    /// and a second key, `other.key`, that matches no certificate.
    fn pki() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("other.key"), other.serialize_pem()).unwrap();
        Pki { dir }
    }

    impl Pki {
        fn load(&self, yaml: &str) -> Result<WebConfig, ConfigError> {
            let file = self.dir.path().join("web.yml");
            std::fs::write(&file, yaml).unwrap();
            WebConfig::load(&file)
        }

        fn err(&self, yaml: &str) -> String {
            match self.load(yaml) {
                Ok(c) => panic!("accepted: {yaml}\n{c:?}"),
                Err(e) => e.0,
            }
        }
    }

    const TLS: &str = "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n";

    #[test]
    fn a_certificate_turns_tls_on_with_paths_relative_to_the_file() {
        let p = pki();
        let c = p.load(TLS).expect("valid");
        let tls = c.tls.clone().expect("tls on");
        assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(c.client_auth, Some(ClientAuth::NoClientCert));
        assert!(!c.basic_auth());
        // Inline PEM works too.
        let cert = std::fs::read_to_string(p.dir.path().join("cert.pem")).unwrap();
        let key = std::fs::read_to_string(p.dir.path().join("key.pem")).unwrap();
        let yaml = serde_yaml::to_string(&serde_json::json!({
            "tls_server_config": {"cert": cert, "key": key}
        }))
        .unwrap();
        assert!(p.load(&yaml).expect("inline").tls.is_some());
    }

    #[test]
    fn an_empty_file_or_basic_auth_alone_serves_plain_http() {
        let p = pki();
        let c = p.load("").expect("empty is valid");
        assert!(c.tls.is_none() && !c.basic_auth());
        let hash = bcrypt::hash("pw", 4).unwrap();
        let c = p
            .load(&format!("basic_auth_users:\n  prom: '{hash}'\n"))
            .expect("valid");
        assert!(c.tls.is_none());
        assert_eq!(c.basic_auth_users.get("prom"), Some(&hash));
        assert!(!format!("{c:?}").contains(&hash), "hashes are not printed");
    }

    #[test]
    fn a_hash_of_a_cost_bcrypt_refuses_is_an_error_naming_the_user_not_the_hash() {
        let p = pki();
        let hash = bcrypt::hash("pw", 4).unwrap();
        for cost in ["03", "32", "99"] {
            let bad = format!("{}{cost}{}", &hash[..4], &hash[6..]);
            let e = p.err(&format!("basic_auth_users:\n  prom: '{bad}'\n"));
            assert!(
                e.contains("basic_auth_users.prom")
                    && e.contains(&format!("cost {}", cost.trim_start_matches('0'))),
                "{e}"
            );
            assert!(!e.contains(&hash[7..]), "the hash is not printed: {e}");
        }
        for cost in ["04", "31"] {
            let ok = format!("{}{cost}{}", &hash[..4], &hash[6..]);
            p.load(&format!("basic_auth_users:\n  prom: '{ok}'\n"))
                .expect("bcrypt's own range is taken");
        }
    }

    #[test]
    fn every_client_auth_type_builds_and_unknown_ones_are_named() {
        let p = pki();
        for (name, auth) in ClientAuth::ALL {
            let ca = if *auth == ClientAuth::NoClientCert {
                ""
            } else {
                "  client_ca_file: ca.pem\n"
            };
            let c = p
                .load(&format!("{TLS}  client_auth_type: {name}\n{ca}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.client_auth, Some(*auth));
        }
        let e = p.err(&format!("{TLS}  client_auth_type: Sometimes\n"));
        assert!(
            e.contains("client_auth_type") && e.contains("Sometimes"),
            "{e}"
        );
        let e = p.err(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n"
        ));
        assert!(e.contains("client_ca_file"), "{e}");
        let e = p.err(&format!("{TLS}  client_ca_file: ca.pem\n"));
        assert!(e.contains("NoClientCert"), "{e}");
        let e = p.err(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nope.pem\n"
        ));
        assert!(
            e.contains("client_ca_file") && e.contains("nope.pem"),
            "{e}"
        );
    }

    #[test]
    fn versions_suites_and_curves_map_onto_rustls_or_are_refused_by_name() {
        let p = pki();
        let c = p
            .load(&format!(
                "{TLS}  min_version: TLS13\n  max_version: TLS13\n  curve_preferences: [X25519, CurveP256]\n"
            ))
            .expect("valid");
        assert!(c.tls.is_some());
        let c = p
            .load(&format!(
                "{TLS}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]\n  prefer_server_cipher_suites: true\n"
            ))
            .expect("valid");
        assert!(c.tls.expect("tls").ignore_client_order);
        for (yaml, names) in [
            ("  min_version: TLS10\n", ["min_version", "TLS10"]),
            ("  max_version: TLS14\n", ["max_version", "TLS14"]),
            (
                "  min_version: TLS13\n  max_version: TLS12\n",
                ["min_version", "max_version"],
            ),
            (
                "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
                ["cipher_suites", "TLS_RSA_WITH_AES_128_CBC_SHA"],
            ),
            (
                "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                ["cipher_suites", "TLS 1.2"],
            ),
            (
                "  curve_preferences: [CurveP521]\n",
                ["curve_preferences", "CurveP521"],
            ),
            (
                "  curve_preferences: [Curve9]\n",
                ["curve_preferences", "Curve9"],
            ),
            (
                "  client_allowed_sans: [a.example]\n",
                ["client_allowed_sans", "not supported"],
            ),
        ] {
            let e = p.err(&format!("{TLS}{yaml}"));
            assert!(names.iter().all(|n| e.contains(n)), "{yaml}: {e}");
        }
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        let p = pki();
        for (yaml, names) in [
            (
                "tls_server_config:\n  cert_fle: cert.pem\n",
                vec!["cert_fle"],
            ),
            ("tls_srever_config: {}\n", vec!["tls_srever_config"]),
            (
                "tls_server_config:\n  cert_file: missing.pem\n  key_file: key.pem\n",
                vec!["cert_file", "missing.pem"],
            ),
            (
                "tls_server_config:\n  cert_file: cert.pem\n",
                vec!["key_file"],
            ),
            (
                "tls_server_config:\n  cert_file: cert.pem\n  key_file: other.key\n",
                vec!["cert_file", "key_file"],
            ),
            (
                "tls_server_config:\n  cert_file: key.pem\n  key_file: key.pem\n",
                vec!["cert_file", "no PEM certificate"],
            ),
            (
                "basic_auth_users:\n  alice: not-a-hash\n",
                vec!["basic_auth_users.alice", "bcrypt"],
            ),
            ("http_server_config:\n  http2: true\n", vec!["http2"]),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                vec!["X-Frame-Options", "allow"],
            ),
            (
                "http_server_config:\n  headers:\n    X-Powered-By: me\n",
                vec!["X-Powered-By"],
            ),
            (
                "rate_limit:\n  interval: 1s\n  burst: 5\n",
                vec!["rate_limit"],
            ),
            (
                "basic_auth_users:\n  bob: x\n  bob: y\n",
                vec!["basic_auth_users", "`bob` is listed twice"],
            ),
            ("- a list\n", vec!["web_config_file"]),
        ] {
            let e = p.err(yaml);
            assert!(
                names.iter().all(|n| e.contains(n)) && e.contains("web.yml"),
                "{yaml}: {e}"
            );
        }
        assert!(
            !p.err("basic_auth_users:\n  alice: not-a-hash\n")
                .contains("not-a-hash")
        );
    }

    #[test]
    fn headers_and_http2_false_are_accepted() {
        let p = pki();
        let c = p
            .load(
                "http_server_config:\n  http2: false\n  headers:\n    x-frame-options: DENY\n    Strict-Transport-Security: max-age=31536000\n",
            )
            .expect("valid");
        let names: Vec<&str> = c.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["strict-transport-security", "x-frame-options"]);
    }
}
