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
    /// The secrets as configured: what a base64 run of a text is decoded
    /// and searched for (`user:token` in basic credentials, a bare token).
    plain: Vec<String>,
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
        let mut plain: Vec<String> = Vec::new();
        for s in secrets {
            let s = s.trim().to_owned();
            if s.len() < SHORTEST {
                continue;
            }
            // A server echoing a token inside a URL sends it encoded: as a
            // form value (`+` for a space) or percent-encoded in either case.
            let form: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
            // Python's `quote_plus` (and others after RFC 3986) leave `~` as
            // it is where `url`'s form encoder escapes it.
            let form_tilde = form.replace("%7E", "~");
            for encoded in [form, form_tilde, percent(&s, false), percent(&s, true)] {
                if encoded != s {
                    all.push(encoded);
                }
            }
            plain.push(s.clone());
            all.push(s);
        }
        plain.sort_by_key(|s| std::cmp::Reverse(s.len()));
        plain.dedup();
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Self {
            secrets: all,
            plain,
        }
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn text(&self, text: &str) -> String {
        // Characters that show as nothing (a zero-width space, a soft
        // hyphen, a control character) would hide a secret from the search
        // while the printed line still reads as the secret: dropped first.
        let mut out: String = text.chars().filter(|c| !invisible(*c)).collect();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        self.base64_runs(&self.percent_runs(&out))
    }

    /// `text` with every whitespace-free run holding a `%` that decodes
    /// (percent escapes, in either case, of any character) to something
    /// holding a secret replaced by [`MASK`]: a server may encode more than
    /// it must.
    fn percent_runs(&self, text: &str) -> String {
        if !text.contains('%') {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        for (i, run) in text.split(' ').enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let decoded = run
                .contains('%')
                .then(|| percent_encoding::percent_decode_str(run).collect::<Vec<u8>>());
            let holds = decoded.is_some_and(|d| {
                self.plain
                    .iter()
                    .any(|s| d.windows(s.len()).any(|w| w == s.as_bytes()))
            });
            out.push_str(if holds { MASK } else { run });
        }
        out
    }

    /// `text` with every base64 run that decodes to something holding a
    /// secret replaced by [`MASK`]. The run is decoded from each of its
    /// four offsets, so a secret encoded after a prefix (`x-access-token:…`,
    /// `user:…`) or glued to other letters is found wherever it starts.
    fn base64_runs(&self, text: &str) -> String {
        use base64::alphabet::STANDARD;
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        // Lenient: a run cut at any length (its padding is not part of it).
        const LENIENT: GeneralPurpose = GeneralPurpose::new(
            &STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(DecodePaddingMode::RequireNone),
        );
        if self.plain.is_empty() {
            return text.to_owned();
        }
        let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_');
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(is_b64) {
            out.push_str(&rest[..start]);
            let run_len = rest[start..]
                .find(|c| !is_b64(c))
                .unwrap_or(rest.len() - start);
            let run = &rest[start..start + run_len];
            // URL-safe base64 is the standard alphabet with two letters changed.
            let std: String = run
                .chars()
                .map(|c| match c {
                    '-' => '+',
                    '_' => '/',
                    c => c,
                })
                .collect();
            let holds_secret = (0..4.min(std.len())).any(|k| {
                let part = &std[k..];
                // One letter alone after the last group of four is no byte.
                let part = &part[..part.len() - usize::from(part.len() % 4 == 1)];
                LENIENT.decode(part).is_ok_and(|bytes| {
                    self.plain
                        .iter()
                        .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
                })
            });
            // Its padding goes with it.
            let pad = rest[start + run_len..].len()
                - rest[start + run_len..].trim_start_matches('=').len();
            let whole = &rest[start..start + run_len + pad];
            out.push_str(if holds_secret && run.len() >= 8 {
                MASK
            } else {
                whole
            });
            rest = &rest[start + run_len + pad..];
        }
        out.push_str(rest);
        out
    }
}

/// Whether `c` prints as nothing: a control character, or one of Unicode's
/// default-ignorable code points (zero-width spaces and joiners, soft
/// hyphen, bidirectional marks, variation selectors, tags, the BOM).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{AD}'
                | '\u{34F}'
                | '\u{61C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// `text` whole when it has at most `max` characters, else only its length.
/// Never a part: the secrets are blanked out of an error's text after it is
/// made, and a secret cut in two would no longer be found.
pub fn excerpt(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        text.to_owned()
    } else {
        format!("({n} characters)")
    }
}

/// `s` percent-encoded (everything but unreserved characters), with upper-
/// or lowercase hex digits.
fn percent(s: &str, lower: bool) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    // The encoder writes each escape as its own piece: only those are lowered.
    percent_encoding::utf8_percent_encode(s, RESERVED)
        .map(|piece| {
            if lower && piece.starts_with('%') {
                piece.to_ascii_lowercase()
            } else {
                piece.to_owned()
            }
        })
        .collect()
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

    #[test]
    fn a_secret_form_encoded_with_its_tilde_left_as_it_is_is_blanked() {
        // Python's `quote_plus("tok en~1/x")`.
        let r = Redact::new(vec!["tok en~1/x".into()]);
        assert_eq!(r.text("echo: ?t=tok+en~1%2Fx end"), "echo: ?t=*** end");
    }

    #[test]
    fn a_secret_split_by_characters_that_print_as_nothing_is_blanked() {
        let token = "ghp_SECRETtoken12";
        let r = Redact::new(vec![token.into()]);
        for sep in [
            '\u{200B}',
            '\u{AD}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{1}',
            '\u{E0041}',
        ] {
            let said = format!(
                "bad credentials: {}{sep}{} (sent)",
                &token[..8],
                &token[8..]
            );
            let shown = r.text(&said);
            assert_eq!(shown, "bad credentials: *** (sent)", "{sep:?}");
        }
        // Visible text around them is kept as it was.
        assert_eq!(r.text("caf\u{e9} ok"), "caf\u{e9} ok");
    }

    #[test]
    fn base64_and_percent_forms_are_blanked_wherever_they_start() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = "ghp_SECRET/token+12";
        let r = Redact::new(vec![token.into()]);
        for prefix in ["", "x", "x-access-token:", "ab:", "abc:"] {
            let b64 = BASE64.encode(format!("{prefix}{token}"));
            let url = URL_SAFE_NO_PAD.encode(format!("{prefix}{token}"));
            let said = format!(
                "basic {b64}, glued x{b64}y, url-safe {url}, lower ghp_SECRET%2ftoken%2b12"
            );
            let shown = r.text(&said);
            assert!(
                !shown.contains(&b64) && !shown.contains(&url),
                "{prefix}: {shown}"
            );
            assert!(!shown.contains("SECRET"), "{prefix}: {shown}");
            assert!(shown.starts_with("basic ***, glued ***"), "{shown}");
            assert!(shown.contains(", url-safe ***, lower ***"), "{shown}");
        }
        // Over-encoded: every character escaped, in lowercase.
        let over: String = token.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_eq!(r.text(&format!("at ?t={over} 50%")), "at *** 50%");
        // Text without a secret is left alone, base64 or not.
        let plain = format!(
            "see {} and /repos/acme/payments/issues",
            BASE64.encode("harmless words")
        );
        assert_eq!(r.text(&plain), plain);
    }
}
