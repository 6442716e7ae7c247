//! The links a text names ([`text_links`]): URLs of the configured sources'
//! issues, then, outside URLs, Jira keys of configured projects (`PAY-123`)
//! and `owner/repo#n` of configured repositories and projects. One pass over
//! the URLs, one over the rest: linear in the text, never panicking.

use crate::model::event::{LinkRef, MAX_LINKS_PER_RECORD};

use super::targets::{GithubTarget, GitlabTarget, JiraTarget, LinkTargets, SentryTarget, Site};

/// Most digits of an issue number or id.
const MAX_DIGITS: usize = 18;

/// The issues of `targets` that `text` names, each once, in the order they
/// first appear, at most [`MAX_LINKS_PER_RECORD`].
pub fn text_links(targets: &LinkTargets, text: &str) -> Vec<LinkRef> {
    let mut out = Vec::new();
    if targets.is_empty() {
        return out;
    }
    let (urls, spans) = scan_urls(targets, text);
    let names = scan_names(targets, text, &spans);
    // Both lists are in text order and hold their first distinct links;
    // merged by position, the first distinct ones of the text.
    let (mut a, mut b) = (urls.into_iter().peekable(), names.into_iter().peekable());
    while out.len() < MAX_LINKS_PER_RECORD {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
            (Some(_), Some(_)) | (None, Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, None) => break,
        };
        if let Some((_, l)) = next {
            push(&mut out, l);
        }
    }
    out
}

/// Links found, with the position each was found at.
type Found = Vec<(usize, LinkRef)>;

/// Adds `l` unless held or the list is full.
pub(super) fn push(out: &mut Vec<LinkRef>, l: LinkRef) {
    if out.len() < MAX_LINKS_PER_RECORD && !out.contains(&l) {
        out.push(l);
    }
}

fn push_found(out: &mut Found, at: usize, l: LinkRef) {
    if out.len() < MAX_LINKS_PER_RECORD && !out.iter().any(|(_, x)| *x == l) {
        out.push((at, l));
    }
}

fn link(source: &str, id: String) -> LinkRef {
    LinkRef {
        source: source.into(),
        id,
    }
}

/// A character that ends a URL in text: space, control, quotes, brackets
/// (Markdown `(…)`, wiki `[…|…]`, HTML `"…"`, `<…>`).
fn ends_url(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '\\'
        )
}

/// Characters of a URL's host part.
fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')
}

/// Every `http(s)://` URL of `text`: the links of those that name an issue of
/// a target, and the spans (start, end) of all of them.
fn scan_urls(t: &LinkTargets, text: &str) -> (Found, Vec<(usize, usize)>) {
    let (mut found, mut spans) = (Found::new(), Vec::new());
    let (mut from, mut last_end) = (0, 0);
    while let Some(k) = text[from..].find("://") {
        let i = from + k;
        let n = text.as_bytes()[..i]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let start = i - n;
        let scheme = &text[start..i];
        let after = i + 3;
        from = after;
        // A `://` inside the URL before (`?u=https://…`) is part of it: each
        // character is read as part of one URL at most, so the scan stays
        // linear.
        if after <= last_end {
            continue;
        }
        let end = text[after..]
            .find(ends_url)
            .map_or(text.len(), |e| after + e);
        last_end = end;
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            continue;
        }
        spans.push((start, end));
        // Punctuation that ends a sentence or an emphasis is not the URL's.
        let url = text[after..end].trim_end_matches(['.', ',', ';', ':', '!', '?', '*', '~']);
        let host_end = url.find(|c| !is_host_char(c)).unwrap_or(url.len());
        let host = url[..host_end].to_ascii_lowercase();
        let rest = &url[host_end..];
        if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
            continue;
        }
        if found.len() < MAX_LINKS_PER_RECORD {
            for l in url_links(t, &host, rest) {
                push_found(&mut found, start, l);
            }
        }
    }
    (found, spans)
}

/// The issues a URL at `host` with `rest` (path, query, fragment) names.
fn url_links(t: &LinkTargets, host: &str, rest: &str) -> Vec<LinkRef> {
    let mut out = Vec::new();
    if let Some(s) = &t.sentry {
        out.extend(sentry_url(s, host, rest));
    }
    if let Some(j) = &t.jira {
        out.extend(jira_url(j, host, rest));
    }
    if let Some(g) = &t.github {
        out.extend(github_url(g, host, rest));
    }
    if let Some(g) = &t.gitlab {
        out.extend(gitlab_url(g, host, rest));
    }
    out
}

fn sentry_url(t: &SentryTarget, host: &str, path: &str) -> Option<LinkRef> {
    let id = if host.strip_suffix(".sentry.io") == Some(t.org.as_str()) {
        number_after(path, "/issues/")
    } else if t.host.as_deref() == Some(host) {
        let prefix = format!("/organizations/{}/issues/", t.org);
        number_after(path, &prefix)
    } else {
        None
    }?;
    Some(link("sentry", id.to_owned()))
}

/// The path of `rest` under `site`'s base (starting with `/`), when `host`
/// is the site's.
fn under<'a>(site: &Site, host: &str, rest: &'a str) -> Option<&'a str> {
    if site.host != host {
        return None;
    }
    let head = rest.get(..site.base.len())?;
    if !head.eq_ignore_ascii_case(&site.base) {
        return None;
    }
    let path = &rest[site.base.len()..];
    path.starts_with(['/', '?', '#']).then_some(path)
}

/// The path part (before `?` and `#`).
fn path_only(rest: &str) -> &str {
    rest.find(['?', '#']).map_or(rest, |i| &rest[..i])
}

fn jira_url(t: &JiraTarget, host: &str, rest: &str) -> Option<LinkRef> {
    let rest = under(t.site.as_ref()?, host, rest)?;
    let key = match strip_prefix_ci(rest, "/browse/") {
        Some(tail) => issue_key(tail).filter(|(_, n)| ends_segment(&tail[*n..])),
        None => None,
    };
    let key = key.map(|(k, _)| k).or_else(|| {
        // Boards and searches: `?selectedIssue=PAY-1`.
        let q = &rest[rest.find('?')? + 1..];
        let q = path_only_fragment(q);
        q.split('&').find_map(|kv| {
            // `&amp;` in HTML (Sentry's annotations).
            let kv = kv.strip_prefix("amp;").unwrap_or(kv);
            let v = kv.strip_prefix("selectedIssue=")?;
            issue_key(v).filter(|(_, n)| *n == v.len()).map(|(k, _)| k)
        })
    })?;
    Some(link("jira", key))
}

/// A query without its fragment.
fn path_only_fragment(q: &str) -> &str {
    q.find('#').map_or(q, |i| &q[..i])
}

fn github_url(t: &GithubTarget, host: &str, rest: &str) -> Option<LinkRef> {
    let path = path_only(under(&t.site, host, rest)?);
    let mut parts = path.strip_prefix('/')?.splitn(4, '/');
    let (owner, repo, kind, tail) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if kind != "issues" {
        return None;
    }
    let repo = format!("{owner}/{repo}").to_lowercase();
    let n = digits(tail).filter(|n| tail[*n..].is_empty() || tail[*n..].starts_with('/'))?;
    t.repos
        .contains(&repo)
        .then(|| link("github", format!("{repo}#{}", &tail[..n])))
}

fn gitlab_url(t: &GitlabTarget, host: &str, rest: &str) -> Option<LinkRef> {
    let path = path_only(under(&t.site, host, rest)?);
    let path = path.strip_prefix('/')?;
    let (project, tail) = ["/-/issues/", "/-/work_items/", "/issues/"]
        .iter()
        .find_map(|m| path.find(m).map(|i| (&path[..i], &path[i + m.len()..])))?;
    let project = project.to_lowercase();
    let n = digits(tail).filter(|n| tail[*n..].is_empty() || tail[*n..].starts_with('/'))?;
    t.projects
        .contains(&project)
        .then(|| link("gitlab", format!("{project}#{}", &tail[..n])))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Nothing, or a new part of the URL (`/`, `?`, `#`).
fn ends_segment(s: &str) -> bool {
    s.is_empty() || s.starts_with(['/', '?', '#'])
}

/// The count of leading ASCII digits, 1 to [`MAX_DIGITS`].
fn digits(s: &str) -> Option<usize> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (1..=MAX_DIGITS).contains(&n).then_some(n)
}

/// The digits after `prefix` (case-insensitive) at the start of `path`,
/// ended by anything but a letter, digit, `-` or `_`.
fn number_after<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let tail = strip_prefix_ci(path, prefix)?;
    let n = digits(tail)?;
    let next = tail[n..].chars().next();
    if next.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
        return None;
    }
    Some(&tail[..n])
}

/// A Jira key at the start of `s` (`pay-12`, `PAY-12`), uppercase, and its
/// length; `None` unless letters, digits or `_` (a letter first), `-`, digits.
fn issue_key(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_alphabetic() {
        return None;
    }
    let k = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if b.get(k) != Some(&b'-') {
        return None;
    }
    let n = digits(&s[k + 1..])?;
    let len = k + 1 + n;
    Some((s[..len].to_ascii_uppercase(), len))
}

/// A character that may not touch a name on either side: it would make the
/// name part of a longer word, path or version.
fn joins(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@')
}

/// `owner/repo` and `group/sub/project` characters.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')
}

/// Jira keys and `path#n` names outside the URL `spans` (sorted by start).
fn scan_names(t: &LinkTargets, text: &str, spans: &[(usize, usize)]) -> Found {
    let mut found = Found::new();
    let jira = t.jira.as_ref().filter(|j| !j.projects.is_empty());
    if jira.is_none() && t.github.is_none() && t.gitlab.is_none() {
        return found;
    }
    let mut pos = 0;
    for &(s, e) in spans.iter().chain([(text.len(), text.len())].iter()) {
        if s > pos {
            scan_gap(t, jira, text, pos, s, &mut found);
        }
        pos = pos.max(e);
        if found.len() >= MAX_LINKS_PER_RECORD {
            break;
        }
    }
    found
}

/// [`scan_names`] in `text[a..b]`.
fn scan_gap(
    t: &LinkTargets,
    jira: Option<&JiraTarget>,
    text: &str,
    a: usize,
    b: usize,
    found: &mut Found,
) {
    let bytes = text.as_bytes();
    let before = |i: usize| text[..i].chars().next_back();
    let mut i = a;
    while i < b && found.len() < MAX_LINKS_PER_RECORD {
        let c = bytes[i];
        if c.is_ascii_uppercase() && !before(i).is_some_and(joins) {
            if let Some(j) = jira {
                let (hit, len) = jira_key(j, &text[i..b]);
                if let Some(key) = hit {
                    push_found(found, i, link("jira", key));
                }
                i += len.max(1);
                continue;
            }
        } else if c == b'#' {
            for l in path_number(t, text, a, i, b) {
                push_found(found, i, l);
            }
        }
        i += 1;
    }
}

/// A configured project's key at the start of `s`, ended by a boundary, and
/// how far the scan may skip (the run of key characters).
fn jira_key(j: &JiraTarget, s: &str) -> (Option<String>, usize) {
    let b = s.as_bytes();
    let k = b
        .iter()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
        .count();
    let hit = (|| {
        if b.get(k) != Some(&b'-') || !j.projects.contains(&s[..k]) {
            return None;
        }
        let n = digits(&s[k + 1..])?;
        let len = k + 1 + n;
        let next = s[len..].chars().next();
        if next.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return None;
        }
        Some(s[..len].to_owned())
    })();
    (hit, k)
}

/// The `path#n` whose `#` is at `h` in `text[a..b]`: the path (the run of
/// path characters before `#`, not touching a word) a configured GitHub
/// repository or GitLab project, `n` digits ended by a boundary.
fn path_number(t: &LinkTargets, text: &str, a: usize, h: usize, b: usize) -> Vec<LinkRef> {
    let bytes = text.as_bytes();
    let r = h - bytes[a..h]
        .iter()
        .rev()
        .take_while(|c| is_path_byte(**c))
        .count();
    let path = &text[r..h];
    let tail = &text[h + 1..b];
    let Some(n) = digits(tail) else {
        return Vec::new();
    };
    let touches = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    if !path.contains('/')
        || touches(text[..r].chars().next_back())
        || touches(tail[n..].chars().next())
    {
        return Vec::new();
    }
    let path = path.to_lowercase();
    let id = format!("{path}#{}", &tail[..n]);
    let mut out = Vec::new();
    if t.github.as_ref().is_some_and(|g| g.repos.contains(&path)) {
        out.push(link("github", id.clone()));
    }
    if t.gitlab
        .as_ref()
        .is_some_and(|g| g.projects.contains(&path))
    {
        out.push(link("gitlab", id));
    }
    out
}
