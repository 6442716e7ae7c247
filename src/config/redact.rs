//! What counts as a secret in the configuration, and blanking the values a
//! parser's error text may quote, so that no error prints one.

/// Whether the key at `path` (`webhooks.github.secret`, `api_token_file`)
/// may hold a secret or name where one is kept: any part of it naming a
/// secret, a token, a password or a credential, a private key, or a
/// basic-auth user's hash. Such values are never printed.
pub fn is_secret_key(path: &str) -> bool {
    path.split(['.', '[', ']']).any(|part| {
        let p = part.to_ascii_lowercase();
        [
            "secret",
            "token",
            "password",
            "passwd",
            "credential",
            "private",
        ]
        .iter()
        .any(|w| p.contains(w))
            || p == "key"
            || p.ends_with("_key")
            || p == "basic_auth_users"
    })
}

/// `message` of a serde error with every value it quotes blanked: serde
/// writes an unexpected string as `string "…"` (escaped by `{:?}`, so the
/// closing quote is the first unescaped one) and other scalars as
/// `` integer `…` ``; the type stays, the value goes.
pub fn serde_message(message: &str) -> String {
    let quoted = regex::Regex::new(r#"string "(?:[^"\\]|\\.)*""#).expect("valid regex");
    let ticked =
        regex::Regex::new(r"(integer|floating point|character|unit variant|bytes?) `[^`]*`")
            .expect("valid regex");
    let out = quoted.replace_all(message, "a string");
    ticked.replace_all(&out, "$1").into_owned()
}

/// A URL as an error may show it: credentials written into it
/// (`https://user:token@host`) replaced.
pub fn url(v: &str) -> String {
    let Some(at) = v.rfind('@') else {
        return v.to_owned();
    };
    let start = v.find("://").map_or(0, |i| i + 3).min(at);
    format!("{}<credentials hidden>{}", &v[..start], &v[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised_by_any_part_of_their_path() {
        for k in [
            "api_token",
            "api_token_file",
            "webhooks.github.secret",
            "webhooks.gitlab.signing_secret_file",
            "webhooks.gitlab.token",
            "webhooks.sentry.api_token",
            "basic_auth_users.alice",
            "tls_server_config.key",
            "oauth.client_secret",
            "password",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "max_connections",
            "webhooks.github.repositories",
            "stages[2].phase",
            "keys",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn quoted_values_are_blanked_types_kept() {
        let m = r#"basic_auth_users: invalid type: string "$2y$10$ab\"cd", expected a map at line 2 column 3"#;
        let out = serde_message(m);
        assert!(!out.contains("$2y") && !out.contains("cd"), "{out}");
        assert!(
            out.contains("invalid type: a string, expected a map at line 2"),
            "{out}"
        );
        let out = serde_message("invalid type: integer `12345`, expected a string");
        assert_eq!(out, "invalid type: integer, expected a string");
    }

    #[test]
    fn credentials_in_a_url_are_hidden() {
        assert_eq!(
            url("htps://bot:hunter2@git.example"),
            "htps://<credentials hidden>@git.example"
        );
        assert_eq!(url("bot:hunter2@host"), "<credentials hidden>@host");
        assert_eq!(url("ftp://host/x"), "ftp://host/x");
    }
}
