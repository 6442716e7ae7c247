//! The rustls side of `tls_server_config`: protocol versions, TLS 1.2
//! cipher suites and key-exchange curves, named as Go (and so the
//! exporter-toolkit) names them, mapped onto the ring provider; names it does
//! not implement are refused by name.

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

/// The ring provider, with the suites and curves limited and ordered as
/// `cipher_suites` and `curve_preferences` say (all of them when absent).
pub(super) fn provider(
    cipher_suites: Option<&[String]>,
    curve_preferences: Option<&[String]>,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = cipher_suites {
        choose_cipher_suites(&mut provider, names, versions)?;
    }
    if let Some(names) = curve_preferences {
        choose_curves(&mut provider, names)?;
    }
    Ok(provider)
}

/// `min_version`/`max_version` (default TLS12 … TLS13).
pub(super) fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |key: &str, v: &str| match v {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: `{v}` is not supported (TLS12 and TLS13 only)"
        )),
        other => Err(format!(
            "tls_server_config.{key}: `{other}` is not one of TLS12, TLS13"
        )),
    };
    let lo = min.map_or(Ok(2), |v| rank("min_version", v))?;
    let hi = max.map_or(Ok(3), |v| rank("max_version", v))?;
    if lo > hi {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let mut out = Vec::new();
    if hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    if lo <= 2 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// Keeps the TLS 1.2 suites named (in that order) and every TLS 1.3 suite.
fn choose_cipher_suites(
    provider: &mut CryptoProvider,
    names: &[String],
    versions: &[&'static SupportedProtocolVersion],
) -> Result<(), String> {
    let key = "tls_server_config.cipher_suites";
    let all = provider.cipher_suites.clone();
    let tls13: Vec<_> = all
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    let mut tls12 = Vec::new();
    // Go's names: rustls' `TLS13_` prefix is Go's `TLS_`, and Go also names
    // the ChaCha20 suites without their `_SHA256`.
    let go_name = |s: &rustls::SupportedCipherSuite| {
        let n = s.suite().as_str().unwrap_or("");
        n.strip_prefix("TLS13_")
            .map_or_else(|| n.to_owned(), |rest| format!("TLS_{rest}"))
    };
    for name in names {
        let found = all.iter().find(|s| {
            let n = go_name(s);
            n == *name || n.strip_suffix("_SHA256") == Some(name.as_str())
        });
        match found {
            Some(s) if s.version() == &rustls::version::TLS13 => {} // not configurable
            Some(s) if !tls12.contains(s) => tls12.push(*s),
            Some(_) => {}
            None => {
                let known: Vec<String> = all.iter().map(go_name).collect();
                return Err(format!(
                    "{key}: `{name}` is not supported (rustls implements {})",
                    known.join(", ")
                ));
            }
        }
    }
    if tls12.is_empty() && versions.contains(&&rustls::version::TLS12) {
        return Err(format!(
            "{key}: names no TLS 1.2 suite while TLS12 is allowed; name one or set min_version: TLS13"
        ));
    }
    provider.cipher_suites = tls12.into_iter().chain(tls13).collect();
    Ok(())
}

/// Orders (and limits) the key-exchange groups as `curve_preferences` says.
fn choose_curves(provider: &mut CryptoProvider, names: &[String]) -> Result<(), String> {
    use rustls::NamedGroup;
    let key = "tls_server_config.curve_preferences";
    let all = provider.kx_groups.clone();
    let mut chosen = Vec::new();
    for name in names {
        let group = match name.as_str() {
            "CurveP256" => NamedGroup::secp256r1,
            "CurveP384" => NamedGroup::secp384r1,
            "CurveP521" => NamedGroup::secp521r1,
            "X25519" => NamedGroup::X25519,
            "X25519MLKEM768" => NamedGroup::X25519MLKEM768,
            other => {
                return Err(format!(
                    "{key}: `{other}` is not one of CurveP256, CurveP384, CurveP521, X25519, X25519MLKEM768"
                ));
            }
        };
        let Some(kx) = all.iter().find(|k| k.name() == group) else {
            return Err(format!(
                "{key}: `{name}` is not supported by this build (X25519, CurveP256, CurveP384 are)"
            ));
        };
        if !chosen
            .iter()
            .any(|k: &&dyn rustls::crypto::SupportedKxGroup| k.name() == group)
        {
            chosen.push(*kx);
        }
    }
    if chosen.is_empty() {
        return Err(format!("{key}: is empty; remove it or name a curve"));
    }
    provider.kx_groups = chosen;
    Ok(())
}
