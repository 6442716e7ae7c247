//! Loading the settings: the embedded defaults, then the TOML file, then
//! `BUG_ESCAPE_*` environment variables, then flags, merged by figment; a
//! merge that fails is explained by key and place, never by a secret value.

use std::path::Path;

use figment::Figment;
use figment::providers::Serialized;

use super::origins::known_names;
use super::{ConfigError, Origins, Overrides, Settings, env, file, redact};

impl Settings {
    /// Merges defaults, the TOML file (when given), the environment and `flags`.
    /// Errors name the file, line and key, or the variable, or the flag, and
    /// never print a value that may be a secret.
    pub fn load(file: Option<&Path>, flags: &Overrides) -> Result<Self, ConfigError> {
        env::check_process()?;
        flags.check_unicode()?;
        let parsed = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError(format!(
                    "config file {} does not exist or is not a file",
                    path.display()
                )));
            }
            Some(path) => Some(file::read(path, &known_names())?),
            None => None,
        };
        let mut parsed = parsed;
        if let Some(p) = &mut parsed {
            // `allowlist` is another name of `pinned_products`: the defaults
            // hold the latter, so serde would see the field twice.
            if let Some(v) = p.dict.remove("allowlist") {
                if p.dict.contains_key("pinned_products") {
                    return Err(ConfigError(format!(
                        "{}: allowlist: is another name of pinned_products, which is also set; keep one",
                        p.file()
                    )));
                }
                p.dict.insert("pinned_products".into(), v);
            }
        }
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(p) = &parsed {
            figment = figment.merge(Serialized::defaults(&p.dict));
        }
        let from_env = env::layer(|name| std::env::var(name).ok())?;
        figment = figment
            .merge(Serialized::defaults(&from_env))
            .merge(Serialized::defaults(flags));
        let mut settings: Settings = match (figment.extract(), &parsed) {
            (Ok(s), _) => s,
            (Err(e), Some(p)) => {
                let trial = |d: &figment::value::Dict| {
                    Figment::from(Serialized::defaults(Settings::default()))
                        .merge(Serialized::defaults(d))
                        .extract::<Settings>()
                        .map(drop)
                        .map_err(Box::new)
                };
                return Err(p.explain(e, &trial));
            }
            (Err(e), None) => {
                let key = e.path.join(".");
                return Err(ConfigError(format!(
                    "{key}: invalid value{}",
                    if redact::is_secret_key(&key) {
                        " (not shown)"
                    } else {
                        ""
                    }
                )));
            }
        };
        let secrets = settings.webhooks.apply_env(|name| std::env::var(name).ok());
        settings.origins = Origins::of(parsed.as_ref(), &from_env, secrets, flags);
        Ok(settings)
    }
}

impl Overrides {
    /// The keys set by flags, with the flag.
    pub(super) fn given(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if self.listen.is_some() {
            out.push(("listen", "--web.listen-address"));
        }
        if self.telemetry_path.is_some() {
            out.push(("telemetry_path", "--web.telemetry-path"));
        }
        if self.db.is_some() {
            out.push(("db", "--db"));
        }
        if self.web_config_file.is_some() {
            out.push(("web_config_file", "--web.config.file"));
        }
        out
    }

    /// Refuses a path flag that is not UTF-8 by name (settings are text).
    fn check_unicode(&self) -> Result<(), ConfigError> {
        for (flag, path) in [
            ("--db", &self.db),
            ("--web.config.file", &self.web_config_file),
        ] {
            if let Some(p) = path.as_ref().filter(|p| p.to_str().is_none()) {
                return Err(ConfigError(format!(
                    "{flag}: `{}` is not valid UTF-8; give a UTF-8 path",
                    p.display()
                )));
            }
        }
        Ok(())
    }
}
