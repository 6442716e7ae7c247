//! "Did you mean": the known name nearest a misspelt one (a configuration
//! key, a source kind, an environment variable), by edit distance.

/// The name of `known` nearest `word`, when it is close enough to be a
/// likely typo: at most one edit (insertion, deletion, substitution or
/// swap of neighbours) per three characters of `word`, at least one and at
/// most three; case is ignored. The first of equally near names wins.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = (lower.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .filter(|k| *k != word)
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `did you mean `name`?` for the name of `known` nearest `word`, or
/// nothing when none is near.
pub fn hint<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    nearest(word, known).map(|k| format!("did you mean `{k}`?"))
}

/// The reason of an unknown key `found` where `known` are the keys there
/// are: the nearest one when it is near (a typo), else all of them.
pub fn unknown_key(found: &str, known: &[&str]) -> String {
    match hint(found, known.iter().copied()) {
        Some(hint) => format!("unknown key; {hint}"),
        None => format!("unknown key; known keys: {}", known.join(", ")),
    }
}

/// serde's `unknown field `x`, expected one of `a`, `b`` (the web
/// configuration's YAML) with its list replaced by the nearest known key
/// when one is near; any other message as it is.
pub fn serde_unknown_field(message: &str) -> String {
    let Ok(re) = regex::Regex::new(
        r"unknown field `([^`]*)`, expected (?:one of )?((?:`[^`]*`(?:, | or )?)+)",
    ) else {
        return message.to_owned();
    };
    let Some(c) = re.captures(message) else {
        return message.to_owned();
    };
    let known: Vec<&str> = c[2].split('`').skip(1).step_by(2).collect();
    match hint(&c[1], known) {
        Some(h) => re
            .replace(message, format!("unknown field `{}`; {h}", &c[1]))
            .into_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_name_is_suggested_only_when_near() {
        let top = ["listen", "telemetry_path", "db", "max_body_bytes"];
        assert_eq!(nearest("lisen", top), Some("listen"));
        assert_eq!(nearest("LISTEN", top), Some("listen"));
        assert_eq!(nearest("max_bdoy_bytes", top), Some("max_body_bytes"));
        assert_eq!(nearest("dv", top), Some("db"));
        assert_eq!(nearest("colour", top), None);
        assert_eq!(nearest("listen", top), None);
        let kinds = ["github", "gitlab", "jira", "sentry"];
        assert_eq!(nearest("githb", kinds), Some("github"));
        assert_eq!(nearest("gitlba", kinds), Some("gitlab"));
        assert_eq!(nearest("GitHub", kinds), Some("github"));
        assert_eq!(nearest("linear", kinds), None);
        assert_eq!(
            hint("secrte", ["secret"]).as_deref(),
            Some("did you mean `secret`?")
        );
    }

    #[test]
    fn serde_unknown_fields_get_the_nearest_known_one() {
        assert_eq!(
            serde_unknown_field(
                "tls: unknown field `cert_fle`, expected one of `cert`, `cert_file` at line 2 column 3"
            ),
            "tls: unknown field `cert_fle`; did you mean `cert_file`? at line 2 column 3"
        );
        assert_eq!(
            serde_unknown_field("unknown field `zz`, expected `cert`"),
            "unknown field `zz`, expected `cert`"
        );
    }
}
