//! Where a pass may send its credentials: the configured `api_url`'s scheme,
//! host and port, and nowhere else. Every URL a pass calls (pages, the next
//! page a server names, follow-ups, redirects) is checked against it; URLs
//! are built with one encoder, `url`'s (path segments, query values).

use reqwest::redirect;
use url::Url;

use super::SyncError;

/// Redirects followed within the origin before the call is an error.
const MAX_REDIRECTS: usize = 10;

/// A scheme, host and port (the port the scheme implies when none is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// The origin of `url`.
    pub fn of(url: &Url) -> Self {
        Self {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }

    /// The origin of the configured `api_url`.
    pub fn of_api(api_url: &str) -> Result<Self, SyncError> {
        match Url::parse(api_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(Self::of(&u))
            }
            _ => Err(SyncError::Config(format!(
                "api_url `{}` is not an http(s) URL with a host",
                shown(api_url)
            ))),
        }
    }

    /// `url` parsed, when it is within this origin; the refusal otherwise.
    pub fn check(&self, url: &str) -> Result<Url, SyncError> {
        // A user name or password in a URL would replace the configured
        // credentials (reqwest sends them as basic auth): refused as well.
        let parsed = Url::parse(url).ok().filter(|u| self.holds(u));
        parsed.ok_or_else(|| SyncError::Refused {
            url: shown(url),
            origin: self.to_string(),
        })
    }

    /// `url` is within this origin and carries no user name or password.
    fn holds(&self, url: &Url) -> bool {
        Origin::of(url) == *self && url.username().is_empty() && url.password().is_none()
    }

    /// A redirect policy following only redirects within this origin (at
    /// most `MAX_REDIRECTS`); any other is not followed, and the client
    /// turns the `3xx` into a refusal. reqwest strips only `Authorization`
    /// and `Cookie` on a redirect to another host, never `PRIVATE-TOKEN`:
    /// nothing is ever sent elsewhere, so no header can leak.
    pub fn redirects(&self) -> redirect::Policy {
        let origin = self.clone();
        redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() < MAX_REDIRECTS && origin.holds(attempt.url()) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}://{}:{p}", self.scheme, self.host),
            None => write!(f, "{}://{}", self.scheme, self.host),
        }
    }
}

/// What identifies the page `url` asks for, so that a next page named
/// again in another spelling (a `#fragment`, which is never sent, the
/// query's parameters in another order or encoding, the host's case, the
/// scheme's own port) is known as a page already read.
pub fn page_key(url: &str) -> String {
    let Ok(mut u) = Url::parse(url) else {
        return url.to_owned();
    };
    u.set_fragment(None);
    let mut pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// `url` for messages: without a user name or password in it (secrets the
/// configuration holds are blanked later by `redact`).
pub fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => super::redact::excerpt(url, 300),
    }
}

/// `base` (an `api_url`, which may carry a path such as `/api/v4`) with
/// `segments` appended, each percent-encoded as one path segment (a `/` in
/// an id becomes `%2F`; `.` and `..` are dropped), then `query`, each value
/// encoded. An empty last segment makes a trailing `/` (Sentry's URLs).
pub fn endpoint(base: &str, segments: &[&str], query: &[(&str, &str)]) -> String {
    let Ok(mut url) = Url::parse(base) else {
        // The client refuses it (`Origin::of_api`) before any call.
        return base.to_owned();
    };
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    let mut out = url.to_string();
    for (i, (name, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

/// `v` encoded for a query value (`url`'s form encoder: a space is `+`).
pub fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `url` with its query parameter `name` set to `value` (encoded here),
/// replacing the one there: how GitLab's `x-next-page` and Jira's
/// `nextPageToken` and `startAt` make the next page's URL from the last.
pub fn with_query(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let prefix = format!("{name}=");
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    params.push(format!("{prefix}{}", encode(value)));
    format!("{base}?{}", params.join("&"))
}

/// The value of query parameter `name` in `url`, decoded.
pub fn query_value(url: &str, name: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_scheme_host_and_port_pass() {
        let o = Origin::of_api("https://gitlab.example.com/api/v4").expect("valid");
        assert!(
            o.check("https://gitlab.example.com/api/v4/x?page=2")
                .is_ok()
        );
        assert!(o.check("https://GITLAB.example.com:443/x").is_ok());
        for refused in [
            "http://gitlab.example.com/api/v4/x",
            "https://gitlab.example.com:8443/x",
            "https://evil.example.com/api/v4/x",
            "https://gitlab.example.com.evil.example/x",
            "/api/v4/x",
            "not a url",
        ] {
            let e = o.check(refused).expect_err(refused).to_string();
            assert!(e.contains("https://gitlab.example.com:443"), "{e}");
        }
        let e = o
            .check("https://bot:hunter2@evil.example.com/x")
            .expect_err("refused")
            .to_string();
        assert!(!e.contains("hunter2") && !e.contains("bot"), "{e}");
        assert!(o.check("https://x:y@gitlab.example.com/x").is_err());
        assert!(Origin::of_api("ftp://x").is_err());
    }

    #[test]
    fn one_page_in_other_spellings_has_one_key() {
        let key = page_key("http://127.0.0.1:8080/r/issues?page=2&per_page=100");
        for same in [
            "http://127.0.0.1:8080/r/issues?page=2&per_page=100#1",
            "http://127.0.0.1:8080/r/issues?per_page=100&page=2",
            "HTTP://127.0.0.1:8080/r/./issues?p%61ge=%32&per_page=100#x",
        ] {
            assert_eq!(page_key(same), key, "{same}");
        }
        assert_eq!(
            page_key("https://GitHub.com:443/x#f"),
            page_key("https://github.com/x")
        );
        assert_ne!(
            page_key("http://127.0.0.1:8080/r/issues?page=3&per_page=100"),
            key
        );
    }

    #[test]
    fn ids_are_encoded_as_one_segment() {
        assert_eq!(
            endpoint("https://gitlab.com/api/v4", &["projects", "acme/web"], &[]),
            "https://gitlab.com/api/v4/projects/acme%2Fweb"
        );
        assert_eq!(
            endpoint(
                "http://127.0.0.1:9",
                &["api", "0", "issues", "1 2?#%", ".."],
                &[]
            ),
            "http://127.0.0.1:9/api/0/issues/1%202%3F%23%25"
        );
        assert_eq!(
            endpoint(
                "https://sentry.io",
                &["a", ""],
                &[("q", "a b:c"), ("n", "1")]
            ),
            "https://sentry.io/a/?q=a+b%3Ac&n=1"
        );
        assert_eq!(
            with_query("http://x/s?jql=a&pagex=1&page=1", "page", "a b/="),
            "http://x/s?jql=a&pagex=1&page=a+b%2F%3D"
        );
        assert_eq!(
            query_value("http://x/s?a=1&startAt=42", "startAt").as_deref(),
            Some("42")
        );
    }
}
