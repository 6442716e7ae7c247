//! The `BUG_ESCAPE_*` environment: refused whole when a variable is not
//! UTF-8, and read as settings verbatim, each value typed by its key's
//! default rather than guessed from its text (so `BUG_ESCAPE_API_TOKEN=0012`
//! stays the text `0012`, and `BUG_ESCAPE_MAX_BODY_BYTES=abc` is an error
//! naming the variable).

use std::ffi::OsString;

use serde_json::{Map, Value};

use super::{ConfigError, ENV_KEYS, Settings, ranges};

/// The prefix of every variable the exporter reads.
pub const PREFIX: &str = "BUG_ESCAPE_";

/// Refuses the first `BUG_ESCAPE_*` variable of `vars` whose name or value
/// is not UTF-8, naming it: such a value would otherwise be altered (a
/// different database file) or skipped without a word. The value is never
/// shown.
pub fn check_unicode(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), ConfigError> {
    for (name, value) in vars {
        // The lossy form keeps an ASCII prefix as it is.
        let shown = name.to_string_lossy();
        if !shown.starts_with(PREFIX) {
            continue;
        }
        if name.to_str().is_none() {
            return Err(ConfigError(format!(
                "environment variable {shown}: its name is not valid UTF-8; unset it"
            )));
        }
        if value.to_str().is_none() {
            return Err(ConfigError(format!(
                "environment variable {shown}: its value is not valid UTF-8 (not shown); \
                 set it to UTF-8 text or unset it"
            )));
        }
    }
    Ok(())
}

/// [`check_unicode`] over the process environment.
pub fn check_process() -> Result<(), ConfigError> {
    check_unicode(std::env::vars_os())
}

/// The settings the environment sets (`BUG_ESCAPE_<KEY>` for each of
/// [`ENV_KEYS`]), read through `var`: text keys verbatim, counts as whole
/// numbers within their range, flags as `true`/`false`. Errors name the
/// variable; the value is shown only for counts and flags, never for a key
/// that may hold a secret.
pub fn layer(var: impl Fn(&str) -> Option<String>) -> Result<Map<String, Value>, ConfigError> {
    let defaults = match serde_json::to_value(Settings::default()) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut out = Map::new();
    for key in ENV_KEYS {
        let name = format!("{PREFIX}{}", key.to_uppercase());
        let Some(text) = var(&name) else { continue };
        let value = match defaults.get(*key) {
            Some(Value::Number(_)) => Value::from(count(&name, key, &text)?),
            Some(Value::Bool(_)) => Value::Bool(flag(&name, &text)?),
            _ => Value::String(text),
        };
        out.insert((*key).to_owned(), value);
    }
    Ok(out)
}

/// Variables read outside the settings: the log filter (`logging`) and
/// `healthcheck`'s URL (the command line).
const OTHER_VARIABLES: &[&str] = &["BUG_ESCAPE_LOG", "BUG_ESCAPE_HEALTHCHECK_URL"];

/// Every variable the exporter reads: one per key of [`ENV_KEYS`], the
/// webhooks' secrets and tokens (and their `_FILE` forms), and the others.
pub fn known_variables() -> Vec<String> {
    let mut out: Vec<String> = ENV_KEYS
        .iter()
        .map(|k| format!("{PREFIX}{}", k.to_uppercase()))
        .collect();
    // Every variable the webhooks would read, as applying all of them tells.
    let mut hooks = super::webhooks::WebhooksSettings::default();
    out.extend(
        hooks
            .apply_env(|_| Some(String::new()))
            .into_iter()
            .map(|(v, _)| v),
    );
    out.extend(OTHER_VARIABLES.iter().map(|v| (*v).to_owned()));
    out
}

/// A warning for each `BUG_ESCAPE_*` variable of `names` that nothing reads
/// but that is a typo away from one that is read (`BUG_ESCAPE_LISEN`): it
/// would otherwise leave its setting at the default without a word. Other
/// unread variables (a deployment's own) are left alone.
pub fn near_misses(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = known_variables();
    let mut out = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if known.contains(&name) {
            continue;
        }
        let suffixes = known.iter().filter_map(|k| k.strip_prefix(PREFIX));
        if let Some(near) = super::suggest::nearest(rest, suffixes) {
            out.push(format!(
                "environment variable {name} is not read by the exporter; \
                 did you mean {PREFIX}{near}?"
            ));
        }
    }
    out
}

/// [`near_misses`] of the process environment.
pub fn process_near_misses() -> Vec<String> {
    near_misses(std::env::vars_os().filter_map(|(n, _)| n.into_string().ok()))
}

/// A whole number for `key`, checked against the key's range here so the
/// error names the variable it came from.
fn count(name: &str, key: &str, text: &str) -> Result<u64, ConfigError> {
    let range = ranges::count_range(key);
    let shown = |why: &str| {
        let within = range.map_or(String::new(), |r| format!(" from {}", r.describe()));
        ConfigError(format!(
            "environment variable {name}: `{text}` {why}{within} ({key})"
        ))
    };
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| shown("is not a whole number"))?;
    match range {
        Some(r) if !r.contains(n) => Err(shown("is out of range: expected a whole number")),
        _ => Ok(n),
    }
}

/// `true` or `false`.
fn flag(name: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(ConfigError(format!(
            "environment variable {name}: `{other}` is not `true` or `false`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn os(s: &[u8]) -> OsString {
        OsString::from_vec(s.to_vec())
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_refused_by_name_without_its_value() {
        let e = check_unicode([
            (os(b"HOME"), os(b"\xff")),
            (os(b"BUG_ESCAPE_DB"), os(b"/data/a\xffb.db")),
        ])
        .unwrap_err()
        .0;
        assert!(e.contains("BUG_ESCAPE_DB") && !e.contains("/data"), "{e}");
        assert!(check_unicode([(os(b"PATH"), os(b"\xfe"))]).is_ok());
        let e = check_unicode([(os(b"BUG_ESCAPE_\xff"), os(b"x"))])
            .unwrap_err()
            .0;
        assert!(e.contains("BUG_ESCAPE_"), "{e}");
    }

    #[test]
    fn a_variable_one_typo_from_a_read_one_is_warned_of() {
        let known = known_variables();
        for v in [
            "BUG_ESCAPE_LISTEN",
            "BUG_ESCAPE_GITHUB_SECRET_FILE",
            "BUG_ESCAPE_SENTRY_API_TOKEN",
            "BUG_ESCAPE_LOG",
        ] {
            assert!(known.iter().any(|k| k == v), "{v}");
        }
        let w = near_misses(
            [
                "BUG_ESCAPE_LISEN",
                "BUG_ESCAPE_LISTEN",
                "BUG_ESCAPE_GITHUB_SECRETS",
                "BUG_ESCAPE_REQUIRE_E2E",
                "LISEN",
            ]
            .map(String::from),
        );
        assert_eq!(
            w,
            [
                "environment variable BUG_ESCAPE_LISEN is not read by the exporter; \
                 did you mean BUG_ESCAPE_LISTEN?",
                "environment variable BUG_ESCAPE_GITHUB_SECRETS is not read by the exporter; \
                 did you mean BUG_ESCAPE_GITHUB_SECRET?",
            ]
        );
    }

    #[test]
    fn values_are_typed_by_their_key_and_errors_name_the_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let m = layer(env(&[
            ("BUG_ESCAPE_API_TOKEN", "0012"),
            ("BUG_ESCAPE_MAX_BODY_BYTES", "2048"),
            ("BUG_ESCAPE_ALLOW_VENDOR_SOURCES", "true"),
        ]))
        .expect("valid");
        assert_eq!(m["api_token"], Value::from("0012"));
        assert_eq!(m["max_body_bytes"], Value::from(2048));
        assert_eq!(m["allow_vendor_sources"], Value::Bool(true));
        for (pairs, name) in [
            (
                &[("BUG_ESCAPE_MAX_BODY_BYTES", "lots")][..],
                "BUG_ESCAPE_MAX_BODY_BYTES",
            ),
            (
                &[("BUG_ESCAPE_MAX_CONNECTIONS", "2305843009213693952")][..],
                "BUG_ESCAPE_MAX_CONNECTIONS",
            ),
            (
                &[("BUG_ESCAPE_ALLOW_VENDOR_SOURCES", "yes")][..],
                "BUG_ESCAPE_ALLOW_VENDOR_SOURCES",
            ),
        ] {
            let e = layer(env(pairs)).unwrap_err().0;
            assert!(e.contains(name), "{e}");
        }
    }
}
