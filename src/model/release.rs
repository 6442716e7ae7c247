//! Release-name normalisation (SPEC §2): one release, one key, whatever a source
//! calls it. The raw name is always stored, so changed rules re-key old defects.

use regex::Regex;

/// One regex rewrite, optionally limited to a source kind.
#[derive(Debug, Clone)]
pub struct ReleaseRule {
    pub source: Option<String>,
    pub pattern: Regex,
    pub replace: String,
}

/// The configured rules plus pre-release folding.
#[derive(Debug, Clone)]
pub struct ReleaseRules {
    rules: Vec<ReleaseRule>,
    fold: bool,
    prerelease: Regex,
}

/// A normalised release key and whether the raw name was a pre-release of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseKey {
    pub key: String,
    pub prerelease: bool,
}

impl ReleaseRules {
    /// Builds the normaliser.
    pub fn new(rules: Vec<ReleaseRule>, fold: bool) -> Self {
        Self {
            rules,
            fold,
            // A dotted version core followed by a semver pre-release part
            // (`2.4.0-rc.1`); `2024-06` is a calendar name, not a pre-release.
            prerelease: Regex::new(r"^([0-9]+(?:\.[0-9]+)+)-[0-9A-Za-z.-]+$")
                .expect("static regex"),
        }
    }

    /// The configured rules.
    pub fn rules(&self) -> &[ReleaseRule] {
        &self.rules
    }

    /// Whether pre-releases fold into their final release.
    pub fn folds(&self) -> bool {
        self.fold
    }

    /// Normalises `raw` as seen from a source of `kind`; `None` when nothing is left.
    pub fn normalise(&self, kind: &str, raw: &str) -> Option<ReleaseKey> {
        let mut v = raw.trim().to_owned();
        for r in &self.rules {
            if r.source.as_deref().is_none_or(|s| s == kind) {
                v = r.pattern.replace(&v, r.replace.as_str()).into_owned();
            }
        }
        let mut prerelease = false;
        if let Some(c) = self.prerelease.captures(&v) {
            prerelease = true;
            if self.fold {
                v = c[1].to_owned();
            }
        }
        let v = v.trim().to_owned();
        (!v.is_empty()).then_some(ReleaseKey { key: v, prerelease })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Settings};

    fn rules() -> super::ReleaseRules {
        Config::from_settings(Settings::default())
            .unwrap()
            .release_rules
    }

    #[test]
    fn default_rules_strip_prefixes_build_and_fold_prereleases() {
        let r = rules();
        let k = |s: &str| r.normalise("generic", s).map(|k| k.key);
        assert_eq!(k("v2.4.0").as_deref(), Some("2.4.0"));
        assert_eq!(k("payments@2.4.0").as_deref(), Some("2.4.0"));
        assert_eq!(k("2.4.0+build.7").as_deref(), Some("2.4.0"));
        assert_eq!(k("v2.4.0-rc.1").as_deref(), Some("2.4.0"));
        assert_eq!(k("payments@v2.4.0-rc.1+b5").as_deref(), Some("2.4.0"));
        assert_eq!(k("2024-06").as_deref(), Some("2024-06"));
        assert_eq!(k("release-train-7").as_deref(), Some("release-train-7"));
        assert_eq!(k("v"), None);
        assert!(r.normalise("generic", "2.4.0-rc.1").unwrap().prerelease);
        assert!(!r.normalise("generic", "2.4.0").unwrap().prerelease);
    }
}
