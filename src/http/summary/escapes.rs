//! The escapes of a product's newest release with defects on the summary
//! page: each escaped defect once, a link group with its records, each
//! record linking to the read API; a few, then how many more and where.

use std::fmt::Write;

use super::{date, html_attr};
use crate::store::read::Escapes;

/// A path segment percent-encoded: everything but unreserved characters,
/// so a `/`, `?` or `#` in a name stays inside its segment.
fn segment(v: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(v, KEEP).to_string()
}

/// The list of `found` (nothing when the release has no escape).
pub(super) fn escapes(out: &mut String, found: &Escapes) {
    let e = html_attr;
    if found.escaped == 0 {
        return;
    }
    let _ = write!(
        out,
        "<h3>Escapes of {r}</h3>\n<ul class=\"escapes\" data-release=\"{r}\" \
         data-escaped=\"{n}\">\n",
        r = e(&found.release),
        n = found.escaped,
    );
    for x in &found.escapes {
        let records: Vec<String> = x
            .records
            .iter()
            .map(|r| {
                format!(
                    "<a href=\"api/v1/defects/{}/{}\">{} {}</a>",
                    e(&segment(&r.source)),
                    e(&segment(&r.id)),
                    e(&r.source),
                    e(&r.id)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<li data-records=\"{n}\">{records} <small>{stage}{at}</small></li>",
            n = x.records.len(),
            records = records.join(" = "),
            stage = e(x.stage.as_deref().unwrap_or("")),
            at = x
                .found_at
                .as_deref()
                .map_or(String::new(), |t| format!(", {}", e(date(t)))),
        );
    }
    out.push_str("</ul>\n");
    let more = found.more();
    if more > 0 {
        let _ = writeln!(
            out,
            "<p class=\"muted escapes-more\" data-more=\"{more}\">{more} more: \
             <a href=\"{href}\">api/v1/releases/&#8203;{p}/{r}/escapes</a> (JSON, the write \
             API's credentials).</p>",
            href = e(&format!(
                "api/v1/releases/{}/{}/escapes",
                segment(&found.product),
                segment(&found.release)
            )),
            p = e(&found.product),
            r = e(&found.release),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read::{Escape, LinkedRecord};

    #[test]
    fn records_link_to_the_read_api_escaped_and_the_rest_is_counted() {
        let rec = |s: &str, i: &str| LinkedRecord {
            source: s.into(),
            id: i.into(),
        };
        let found = Escapes {
            product: "a/b".into(),
            release: "<2>".into(),
            escaped: 4,
            offset: 0,
            limit: 1,
            next_offset: Some(1),
            escapes: vec![Escape {
                records: vec![rec("sentry", "4711"), rec("github", "acme/pay#12 \"x\"")],
                stage: Some("production".into()),
                found_at: Some("2026-01-02T03:04:05Z".into()),
                detected_by: None,
                cause: None,
                severity: None,
                team: None,
            }],
        };
        let mut out = String::new();
        escapes(&mut out, &found);
        for part in [
            "<h3>Escapes of &lt;2&gt;</h3>",
            "data-escaped=\"4\"",
            "<li data-records=\"2\"><a href=\"api/v1/defects/sentry/4711\">sentry 4711</a> = \
             <a href=\"api/v1/defects/github/acme%2Fpay%2312%20%22x%22\">github acme/pay#12 \
             &quot;x&quot;</a> <small>production, 2026-01-02</small></li>",
            "data-more=\"3\">3 more: <a href=\"api/v1/releases/a%2Fb/%3C2%3E/escapes\">",
        ] {
            assert!(out.contains(part), "{part}\n{out}");
        }
        assert!(!out.contains("<2>"), "{out}");
        let mut none = String::new();
        escapes(
            &mut none,
            &Escapes {
                escaped: 0,
                next_offset: None,
                escapes: vec![],
                ..found
            },
        );
        assert_eq!(none, "");
    }
}
