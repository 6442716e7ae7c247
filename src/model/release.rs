//! Release-name normalisation (docs/semantics.md): one release, one key, whatever a source
//! calls it. The raw name is always stored, so changed rules re-key old defects.
//!
//! Rules rewrite the trimmed name in order; a rule whose result would be empty
//! is skipped, and the name is trimmed after each step, so a key is never empty
//! and normalising a key again leaves it as it is (with the default rules).
//! Folding then turns a pre-release into its final release: only a dotted
//! numeric core followed by `-<suffix>`, where the core has three or more parts
//! (`2.4.0-rc.1`, `2.4.0-1`) or the suffix starts with a letter (`2.4-beta`);
//! `2024.06-1`, `2024-06` and `victoria-7` are names, not pre-releases.

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
            // A full `x.y.z` core with any semver pre-release part, or a dotted
            // core with a pre-release part that starts with a letter.
            prerelease: Regex::new(
                r"^(?:([0-9]+(?:\.[0-9]+){2,})-[0-9A-Za-z][0-9A-Za-z.-]*|([0-9]+(?:\.[0-9]+)+)-[A-Za-z][0-9A-Za-z.-]*)$",
            )
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

    /// The release key and prerelease flag of a raw release name from a
    /// source of `product_kind` (empty: the generic API).
    pub fn key(&self, product_kind: &str, raw: &str) -> Option<(String, bool)> {
        let kind = if product_kind.is_empty() {
            "generic"
        } else {
            product_kind
        };
        self.normalise(kind, raw).map(|k| (k.key, k.prerelease))
    }

    /// Normalises `raw` as seen from a source of `kind`; `None` only when `raw`
    /// is blank.
    pub fn normalise(&self, kind: &str, raw: &str) -> Option<ReleaseKey> {
        let mut v = raw.trim().to_owned();
        if v.is_empty() {
            return None;
        }
        for r in &self.rules {
            if r.source.as_deref().is_none_or(|s| s == kind) {
                let next = r.pattern.replace(&v, r.replace.as_str());
                let next = next.trim();
                if !next.is_empty() && next != v {
                    v = next.to_owned();
                }
            }
        }
        let mut prerelease = false;
        if let Some(c) = self.prerelease.captures(&v) {
            prerelease = true;
            if self.fold {
                v = c
                    .get(1)
                    .or(c.get(2))
                    .expect("one core matches")
                    .as_str()
                    .to_owned();
            }
        }
        Some(ReleaseKey { key: v, prerelease })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::config::{Config, Settings};

    fn rules() -> super::ReleaseRules {
        Config::from_settings(Settings::default())
            .unwrap()
            .release_rules
    }

    fn key(r: &super::ReleaseRules, raw: &str) -> String {
        r.normalise("generic", raw).expect("non-blank").key
    }

    /// The table of docs/semantics.md (Release names), and the issue's counter-examples.
    #[test]
    fn default_rules_by_example() {
        let r = rules();
        for (raw, expected) in [
            ("v2.4.0", "2.4.0"),
            ("V2.4.0", "2.4.0"),
            ("payments@2.4.0", "2.4.0"),
            ("@acme/web@2.4.0", "2.4.0"),
            ("@acme/web@1.2.3", "1.2.3"),
            ("2.4.0+build.7", "2.4.0"),
            ("2.4.0-rc.1", "2.4.0"),
            ("2.4.0-1", "2.4.0"),
            ("v2.4.0-beta.2", "2.4.0"),
            ("2.4-beta", "2.4"),
            ("2.4-SNAPSHOT", "2.4"),
            ("payments@v2.4.0-rc.1+b5", "2.4.0"),
            ("payments@ v2.4.0 ", "2.4.0"),
            ("2.4", "2.4"),
            ("2024.06", "2024.06"),
            ("2024.06-1", "2024.06-1"),
            ("2024-06", "2024-06"),
            ("release-2024-11", "release-2024-11"),
            ("release-train-7", "release-train-7"),
            ("victoria-7", "victoria-7"),
            ("Venus", "Venus"),
            ("v-next", "v-next"),
            ("v", "v"),
            ("C++", "C++"),
            ("build+7", "build+7"),
            ("payments@", "payments@"),
            ("@acme/web", "@acme/web"),
        ] {
            assert_eq!(key(&r, raw), expected, "{raw}");
        }
        assert_eq!(r.normalise("generic", "  "), None);
    }

    #[test]
    fn prerelease_flag_marks_names_folded_into_their_release() {
        let r = rules();
        let pre = |raw: &str| r.normalise("generic", raw).unwrap().prerelease;
        assert!(pre("2.4.0-rc.1") && pre("v2.4-beta") && pre("payments@2.4.0-1+b"));
        assert!(!pre("2.4.0") && !pre("2024.06-1") && !pre("victoria-7") && !pre("2.4.0+b"));
    }

    /// Names with no decoration: words, word-number names, calendar names,
    /// plain versions.
    fn plain_name() -> impl Strategy<Value = String> {
        let word = "[A-Za-z][a-z]{0,9}";
        prop_oneof![
            proptest::string::string_regex(&format!("{word}([-_.]({word}|[0-9]{{1,4}})){{0,3}}"))
                .unwrap(),
            (2000..2100u32, 1..13u32, proptest::option::of(1..20u32)).prop_map(|(y, m, n)| {
                match n {
                    Some(n) => format!("{y}.{m:02}-{n}"),
                    None => format!("{y}.{m:02}"),
                }
            }),
            (2000..2100u32, 1..13u32).prop_map(|(y, m)| format!("{y}-{m:02}")),
            (2000..2100u32, 1..13u32).prop_map(|(y, m)| format!("release-{y}-{m:02}")),
            proptest::string::string_regex("[0-9]{1,3}(\\.[0-9]{1,3}){0,3}").unwrap(),
        ]
    }

    /// Any name, decorated or not, from the characters release names use.
    fn any_name() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::string::string_regex("[ @vV0-9a-z.+_/-]{0,20}").unwrap(),
            (
                proptest::option::of("@?[a-z]{1,6}(/[a-z]{1,6})?@"),
                proptest::option::of("[vV]"),
                "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}",
                proptest::option::of("-([a-z]{1,5}|[0-9]{1,2})(\\.[0-9])?"),
                proptest::option::of("\\+[a-z0-9.]{0,5}"),
            )
                .prop_map(|(p, v, core, pre, build)| {
                    [p, v, Some(core), pre, build]
                        .into_iter()
                        .flatten()
                        .collect()
                }),
        ]
    }

    proptest! {
        #[test]
        fn normalising_a_key_again_keeps_it(raw in any_name()) {
            let r = rules();
            if let Some(k) = r.normalise("generic", &raw) {
                prop_assert_eq!(key(&r, &k.key), k.key.clone(), "raw {:?}", raw);
            }
        }

        #[test]
        fn a_key_is_never_empty(raw in any_name()) {
            let k = rules().normalise("generic", &raw);
            prop_assert_eq!(k.is_some(), !raw.trim().is_empty());
            prop_assert!(k.is_none_or(|k| !k.key.is_empty() && k.key == k.key.trim()));
        }

        #[test]
        fn a_name_without_decoration_is_its_own_key(raw in plain_name()) {
            prop_assert_eq!(key(&rules(), &raw), raw);
        }
    }
}
