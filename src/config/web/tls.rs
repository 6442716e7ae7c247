//! `tls_server_config`: the certificate and key, the client-certificate
//! policy and its CA, built into the rustls server configuration the accept
//! loop uses (HTTP/1.1 only). PEM is inline or in files relative to the web
//! configuration file; a private key is never quoted in an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use super::{Warning, crypto, warnings};

/// Prefix of every key in this section, for errors.
const K: &str = "tls_server_config";

/// `tls_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

impl TlsFile {
    /// No key set at all: the toolkit serves plain HTTP then.
    pub(super) fn is_empty(&self) -> bool {
        self.cert.is_none()
            && self.key.is_none()
            && self.client_ca.is_none()
            && self.cert_file.is_none()
            && self.key_file.is_none()
            && self.client_ca_file.is_none()
            && self.client_auth_type.is_none()
            && self.client_allowed_sans.is_none()
            && self.min_version.is_none()
            && self.max_version.is_none()
            && self.cipher_suites.is_none()
            && self.prefer_server_cipher_suites.is_none()
            && self.curve_preferences.is_none()
    }
}

/// Client-certificate policy (`client_auth_type`, Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub(super) const ALL: &'static [(&'static str, ClientAuth)] = &[
        ("NoClientCert", ClientAuth::NoClientCert),
        ("RequestClientCert", ClientAuth::RequestClientCert),
        ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
        // The toolkit's older name, kept by it for compatibility.
        ("RequireClientCert", ClientAuth::RequireAnyClientCert),
        (
            "VerifyClientCertIfGiven",
            ClientAuth::VerifyClientCertIfGiven,
        ),
        (
            "RequireAndVerifyClientCert",
            ClientAuth::RequireAndVerifyClientCert,
        ),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequestClientCert => "RequestClientCert",
            ClientAuth::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// The rustls server configuration `t` describes, the client-certificate
/// policy, and what deserves a word at start (a certificate outside its
/// dates).
pub(super) fn tls_config(
    t: TlsFile,
    dir: &Path,
) -> Result<(ServerConfig, ClientAuth, Vec<Warning>), String> {
    if t.client_allowed_sans.is_some() {
        return Err(format!(
            "{K}.client_allowed_sans: not supported by this exporter; give its clients certificates from a CA of their own (client_ca_file) instead"
        ));
    }
    let pem = Pem { dir };
    let (cert_pem, cert_key) = pem
        .one_of(t.cert, t.cert_file, "cert", "cert_file")?
        .ok_or_else(|| format!("{K}: missing `cert_file` (or `cert`)"))?;
    let (key_pem, key_key) = pem
        .one_of(t.key, t.key_file, "key", "key_file")?
        .ok_or_else(|| format!("{K}: missing `key_file` (or `key`)"))?;
    let ca = pem.one_of(t.client_ca, t.client_ca_file, "client_ca", "client_ca_file")?;

    let certs = certificates(&cert_pem, &cert_key)?;
    let warnings = warnings::certificates(&cert_key, &certs, chrono::Utc::now().timestamp());
    // The error of a private key's parser could quote it: it is not shown.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| format!("{key_key}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"))?;
    let auth = ClientAuth::named(t.client_auth_type.as_deref())?;

    let versions = crypto::protocol_versions(t.min_version.as_deref(), t.max_version.as_deref())?;
    let provider = Arc::new(crypto::provider(
        t.cipher_suites.as_deref(),
        t.curve_preferences.as_deref(),
        &versions,
    )?);
    let verifier = client_verifier(auth, ca, &provider)?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{K}: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("{cert_key}, {key_key}: not a usable certificate and key: {e}"))?;
    // The accept loop speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(false);
    Ok((config, auth, warnings))
}

/// Reads PEM given inline or as a file relative to `dir` (the web
/// configuration file's directory, as the toolkit does).
struct Pem<'a> {
    dir: &'a Path,
}

impl Pem<'_> {
    /// The PEM of `inline` or of `file` (not both), with the key it was
    /// given under, for errors; `None` when neither is set.
    fn one_of(
        &self,
        inline: Option<String>,
        file: Option<PathBuf>,
        inline_key: &str,
        file_key: &str,
    ) -> Result<Option<(Vec<u8>, String)>, String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!(
                "{K}: give `{inline_key}` or `{file_key}`, not both"
            )),
            (Some(text), None) => Ok(Some((text.into_bytes(), format!("{K}.{inline_key}")))),
            (None, Some(path)) => Ok(Some((
                self.read(file_key, &path)?,
                format!("{K}.{file_key}"),
            ))),
            (None, None) => Ok(None),
        }
    }

    fn read(&self, key: &str, path: &Path) -> Result<Vec<u8>, String> {
        let full = self.dir.join(path);
        std::fs::read(&full).map_err(|e| format!("{K}.{key}: cannot read {}: {e}", full.display()))
    }
}

/// The certificate chain in `pem` (at least one); `key` names it in errors.
fn certificates(pem: &[u8], key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key}: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key}: holds no PEM certificate"));
    }
    Ok(certs)
}

impl ClientAuth {
    /// The policy `client_auth_type` names (`NoClientCert` when absent).
    fn named(name: Option<&str>) -> Result<Self, String> {
        let Some(name) = name else {
            return Ok(ClientAuth::NoClientCert);
        };
        ClientAuth::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let names: Vec<&str> = ClientAuth::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "{K}.client_auth_type: `{name}` is not one of {}",
                    names.join(", ")
                )
            })
    }
}

/// How client certificates are checked under `auth`, with the CA `ca`
/// (PEM and the key it was given under) when one is set; a CA without
/// verification, or verification without a CA, is refused.
fn client_verifier(
    auth: ClientAuth,
    ca: Option<(Vec<u8>, String)>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    match (auth, ca) {
        (ClientAuth::NoClientCert, Some((_, key))) => Err(format!(
            "{key}: a client CA is set but client_auth_type is NoClientCert; set client_auth_type: RequireAndVerifyClientCert"
        )),
        (ClientAuth::NoClientCert, None) => Ok(WebPkiClientVerifier::no_client_auth()),
        (a, None) if a.verifies() => Err(format!(
            "{K}.client_auth_type: {} needs client_ca_file (or client_ca) to verify client certificates with",
            a.as_str()
        )),
        (a, Some((pem, key))) if a.verifies() => ca_verifier(a, &pem, &key, provider),
        // Request or require a certificate, without verifying its issuer
        // (what Go does); its signature over the handshake is still checked.
        (a, _) => Ok(Arc::new(AnyClientCert {
            mandatory: a == ClientAuth::RequireAnyClientCert,
            algorithms: provider.signature_verification_algorithms,
        })),
    }
}

/// A verifier of client certificates issued by the CAs in `pem`; under
/// `VerifyClientCertIfGiven` a client may also send none.
fn ca_verifier(
    auth: ClientAuth,
    pem: &[u8],
    key: &str,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("{key}: not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{key}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("{key}: holds no PEM certificate"));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| format!("{key}: cannot verify client certificates with it: {e}"))
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate is taken
/// (its issuer is not checked); the client still proves it holds its key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
