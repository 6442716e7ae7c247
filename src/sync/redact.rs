//! Blanking every configured secret out of text a vendor sent (error
//! messages, bodies, URLs) before `sync` or `serve` prints or logs it: an API
//! that quotes the credentials it received (`you sent authorization: Bearer
//! …`) must not make the exporter print them. One function for every vendor.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::config::Config;

/// What stands for a secret in printed text.
pub const MASK: &str = "***";

/// Shortest text treated as a secret: blanking one or two characters would
/// garble every message and hide nothing.
const SHORTEST: usize = 4;

/// The configured secrets, longest first (so a secret containing another is
/// blanked whole), in every form they travel in.
#[derive(Clone, Default)]
pub struct Redact {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redact({} forms of secrets)", self.secrets.len())
    }
}

impl Redact {
    /// Every secret of `config`: the vendors' API tokens (and the forms they
    /// are sent in: Jira's `user:token` and its base64), the webhook
    /// secrets and the write API's token.
    pub fn of(config: &Config) -> Self {
        let w = &config.webhooks;
        let mut raw: Vec<String> = Vec::new();
        for api in [&w.github.api, &w.gitlab.api, &w.jira.api] {
            raw.extend(api.token());
        }
        let text = |s: &crate::config::webhooks::Secrets| {
            s.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        };
        if let Some(t) = &w.sentry.api_token {
            raw.extend(text(t));
        }
        if let (Some(user), Some(token)) = (&w.jira.api_user, w.jira.api.token()) {
            let pair = format!("{user}:{token}");
            raw.push(BASE64.encode(&pair));
            raw.push(pair);
        }
        for s in [
            &w.github.secrets,
            &w.gitlab.secrets,
            &w.jira.secrets,
            &w.sentry.secrets,
        ] {
            raw.extend(text(s));
        }
        raw.extend(config.api_token.clone());
        Self::new(raw)
    }

    /// From the secrets themselves (tests, and [`Redact::of`]).
    pub fn new(secrets: Vec<String>) -> Self {
        let mut all: Vec<String> = Vec::new();
        for s in secrets {
            let s = s.trim().to_owned();
            if s.len() < SHORTEST {
                continue;
            }
            // A server echoing a token inside a URL sends it encoded.
            let encoded: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
            if encoded != s {
                all.push(encoded);
            }
            all.push(s);
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Self { secrets: all }
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_blanked() {
        let r = Redact::new(vec![
            "tok-en/+=1".into(),
            "ab".into(),
            BASE64.encode("bot@x:tok-en/+=1"),
        ]);
        let said = format!(
            "you sent authorization: Bearer tok-en/+=1 (basic {}) at ?t=tok-en%2F%2B%3D1 ab",
            BASE64.encode("bot@x:tok-en/+=1")
        );
        let shown = r.text(&said);
        assert_eq!(
            shown,
            "you sent authorization: Bearer *** (basic ***) at ?t=*** ab"
        );
    }
}
