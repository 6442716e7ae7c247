//! Where each setting was written (the file's line, an environment variable,
//! a flag), so a validation error can say it, and every key name the
//! settings know, so a syntax error names a key only when it is one.

use std::collections::BTreeMap;

use super::{
    BandOverride, ConfigError, Overrides, ProductSettings, Settings, UnderReportingOverride, env,
    file,
};

/// Where each setting was written: `file:line`, an environment variable or
/// a flag, by key path (`stages[1].phase`), the later layers over the
/// earlier. Validation errors start with the key at fault; they are
/// prefixed with its place.
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<String, String>);

impl Origins {
    /// The places of the layers' keys: the file's lines, then the
    /// environment's variables (settings and secrets), then the flags.
    pub(super) fn of(
        parsed: Option<&file::Parsed>,
        from_env: &serde_json::Map<String, serde_json::Value>,
        secrets: Vec<(String, String)>,
        flags: &Overrides,
    ) -> Self {
        let mut origins: BTreeMap<String, String> = parsed
            .map(file::Parsed::origins)
            .unwrap_or_default()
            .into_iter()
            // Errors name the key, not its alias.
            .map(|(k, v)| match k.strip_prefix("allowlist") {
                Some(rest) => (format!("pinned_products{rest}"), v),
                None => (k, v),
            })
            .collect();
        for (var, key) in secrets {
            origins.insert(key, format!("environment variable {var}"));
        }
        for key in from_env.keys() {
            let var = format!("{}{}", env::PREFIX, key.to_uppercase());
            origins.insert(key.clone(), format!("environment variable {var}"));
        }
        for (key, flag) in flags.given() {
            origins.insert(key.into(), flag.into());
        }
        Self(origins)
    }

    /// `e` with the place of the key it names (or of the nearest enclosing
    /// key that has one) in front.
    pub(super) fn locate(&self, e: ConfigError) -> ConfigError {
        let Some((key, _)) = e.0.split_once(": ") else {
            return e;
        };
        let mut k = key;
        loop {
            if let Some(place) = self.0.get(k) {
                return ConfigError(format!("{place}: {}", e.0));
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return e,
            }
        }
    }
}

/// Every key name the settings know, at any depth (the names inside
/// `[webhooks.github]`, `[[stages]]`, `[products.<name>]` …): a syntax
/// error names the key it is on only when each part is one of them.
pub(super) fn known_names() -> std::collections::BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.insert(k.clone());
                    walk(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let product = ProductSettings {
        bands: Some(BandOverride::default()),
        under_reporting: Some(UnderReportingOverride::default()),
        ..ProductSettings::default()
    };
    let mut out = std::collections::BTreeSet::new();
    for v in [
        serde_json::to_value(Settings::default()),
        serde_json::to_value(product),
    ]
    .into_iter()
    .flatten()
    {
        walk(&v, &mut out);
    }
    out.insert("allowlist".into());
    out
}
