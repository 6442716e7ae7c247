//! What a source adds to `sync` ([`Listing`]): its scopes, the URLs and
//! shapes of its listings, and the conversion of each listed object; and
//! what the driver does with them that is the same for every source (a
//! page's objects converted into [`Entry`]s, the listing URLs of the
//! `per_page` APIs, the seconds-only times of their filters).

use serde_json::Value;

use super::SyncError;
use super::client::Answer;
use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::item::Item;
use crate::model::time::Millis;
use crate::model::time::parse_time;
use crate::sources::webhook::{At, Parsed};

/// What a listing reads in a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Issues updated since a time, oldest update first; a cursor marks them.
    Issues,
    /// Release times (few; listed whole each pass).
    Releases,
}

impl Feed {
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Issues => "issues",
            Feed::Releases => "releases",
        }
    }
}

/// One object of a page, converted.
// Mostly items, moved on at once: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Entry {
    /// To write (a defect's state, a retraction, a release time).
    Item(Item),
    /// Not ours to write (a pull request, a draft release, …).
    Ignored,
    /// The conversion refused it; `what` names it (`issue #12`).
    Rejected { what: String, error: FieldError },
}

/// One page, converted.
#[derive(Debug, Default)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// Newest vendor `updated_at` on the page (the cursor's mark).
    pub newest: Option<Millis>,
}

/// A resolved scope with the two names the driver keeps of it.
#[derive(Debug, Clone)]
pub struct Scoped<S> {
    /// A key that never changes (its numeric id): cursors use it.
    pub key: String,
    /// Its name for people (`acme/payments`).
    pub name: String,
    /// What the source's own calls need of it.
    pub of: S,
}

/// What the conversion of one listed object gave.
#[derive(Debug)]
pub enum Converted {
    /// An issue: its item, or why it was refused.
    Issue(Result<Item, FieldError>),
    /// A release: the parsed items (perhaps ignored), or why it was refused.
    Release(Result<Parsed, FieldError>),
    /// Not ours to write (a pull request, issues not counted).
    Ignored,
}

/// What one source adds to the shared `sync` driver: the URLs of its
/// listings, the shapes of its answers and the conversions (the webhook
/// adapter's own functions). See docs/adding-a-source.md.
pub trait Listing {
    /// A resolved scope (GitHub: the repository with its numeric id).
    type Scope;

    /// Headers sent with every call: `(name, value, sensitive)`; a token is
    /// sensitive (never printed).
    fn headers(&self) -> Vec<(&'static str, String, bool)>;

    /// The configured scopes' names, in order (none: nothing to sync).
    fn configured(&self) -> Vec<String>;

    /// The call that resolves the scope named `name`.
    fn resolve_url(&self, name: &str) -> String;

    /// The scope read from that call's answer (the driver names the call
    /// in the error).
    fn scope(&self, answer: &At<'_>) -> Result<Scoped<Self::Scope>, FieldError>;

    /// The first page of `feed` in `scope`, updated since `since` (all when `None`).
    fn list_url(&self, scope: &Self::Scope, feed: Feed, since: Option<Millis>) -> String;

    /// The next page after `answer`; `None` at the end; an error when the
    /// server's cursor or offset cannot be followed (it goes backwards,
    /// overflows). A next page already read is the driver's to refuse.
    fn next_url(&self, answer: &Answer) -> Result<Option<String>, SyncError> {
        Ok(answer.link_next())
    }

    /// The configured `api_url`: the one origin every call goes to.
    fn api_url(&self) -> &str;

    /// Whether `feed` lists the newest update first (Sentry sorts only that
    /// way): its pages then mark no progress (an older page may follow), so
    /// a pass cut short lists again from the last completed mark.
    fn newest_first(&self, _feed: Feed) -> bool {
        false
    }

    /// The call that completes one listed object (Sentry: the issue detail,
    /// with `firstRelease` and `activity`); its answer replaces the object
    /// before it is converted. `None`: the listing says all.
    fn detail_url(&self, _scope: &Self::Scope, _feed: Feed, _object: &Value) -> Option<String> {
        None
    }

    /// The calls whose answers complete one issue object with what neither
    /// its listing nor its detail carries (Jira: the issue's remote links;
    /// Sentry: its external issues): each `(key, url)`'s answer, when it is
    /// a JSON array, is put into the object under `key` before it is
    /// converted; a 404 puts nothing there. The webhook makes the same calls
    /// for a delivery's issue ([`super::pass::complete_delivery`]), so both
    /// convert the same object. `None` of them by default.
    fn parts(&self, _feed: Feed, _object: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// The key of a page's object that holds its list (Jira's search:
    /// `issues`); `None`: the page is the list. Where [`Self::detail_url`]
    /// and [`Self::parts`] find the objects to complete.
    fn page_list(&self, _feed: Feed) -> Option<&'static str> {
        None
    }

    /// Where a webhook delivery holds the issue object [`Self::parts`]
    /// completes, as a JSON pointer (Jira: `/issue`); `None`: deliveries are
    /// converted as they come.
    fn delivered_issue(&self) -> Option<&'static str> {
        None
    }

    /// The objects of a page of `feed`; `Err` says what the answer is
    /// instead (the default: a JSON array of objects at the root).
    fn objects<'a>(&self, _feed: Feed, root: At<'a>) -> Result<Vec<At<'a>>, String> {
        match root.value() {
            Some(Value::Array(_)) => Ok(root.items().unwrap_or_default()),
            _ => Err("the answer is not a JSON array of objects".into()),
        }
    }

    /// The listed issue's time the listing is ordered by (the cursor's
    /// mark); the default: `updated_at`.
    fn updated(&self, object: &At<'_>) -> Option<Millis> {
        object
            .get("updated_at")
            .value()?
            .as_str()
            .and_then(parse_time)
    }

    /// How a rejected object is named in the log (`issue #12`); `None`: by
    /// its place on the page.
    fn what(&self, feed: Feed, object: &At<'_>) -> Option<String>;

    /// Converts one listed object of `feed` with the webhook's conversion.
    fn convert(
        &self,
        config: &Config,
        scope: &Self::Scope,
        feed: Feed,
        object: &At<'_>,
        now: Millis,
    ) -> Converted;

    /// Prefix of the stored defect ids of `scope` (`<repository id>#`), for
    /// the deletion sweep; `None`: the API cannot tell deletions.
    fn id_prefix(&self, scope: &Self::Scope) -> Option<String>;

    /// The product namespace of `scope`'s stored defects, for vendors whose
    /// ids alone cannot tell the scope (Jira's and Sentry's issue ids): the
    /// deletion sweep then reads and probes the stored ids of that namespace
    /// only (and the prefix is not used).
    fn sweep_namespace(&self, _scope: &Self::Scope) -> Option<String> {
        None
    }

    /// Stored defects last updated before this time are not probed by the
    /// deletion sweep: the vendor forgets them (Sentry's retention), which
    /// is no deletion. `None`: every one is.
    fn sweep_since(&self) -> Option<Millis> {
        None
    }

    /// The call that tells whether stored defect `id` still exists in `scope`,
    /// and the statuses of it the driver hands back (besides 2xx).
    fn probe_url(&self, scope: &Self::Scope, id: &str) -> Option<(String, &'static [u16])>;

    /// The deletion of `id` when the probe's answer says it left `scope`
    /// (or, when the vendor keeps an issue's id across projects, its state
    /// where it went: not a deletion, counted as imported).
    fn gone(&self, scope: &Self::Scope, id: &str, answer: &Answer, now: Millis) -> Option<Item>;
}

/// Converts one page of `feed` through `listing`: the objects, the newest
/// mark of an issue page, and each object's entry.
pub fn page<L: Listing + ?Sized>(
    listing: &L,
    config: &Config,
    scope: &L::Scope,
    feed: Feed,
    answer: &Answer,
    now: Millis,
) -> Result<Page, SyncError> {
    let objects = listing
        .objects(feed, At::root(&answer.body))
        .map_err(|reason| SyncError::Shape {
            url: answer.url.clone(),
            reason,
        })?;
    let mut page = Page::default();
    for obj in objects {
        if feed == Feed::Issues {
            // Ordered by it, ignored objects included: the mark moves over
            // them too.
            if let Some(t) = listing.updated(&obj) {
                page.newest = Some(page.newest.map_or(t, |n: Millis| n.max(t)));
            }
        }
        let what = || {
            listing
                .what(feed, &obj)
                .unwrap_or_else(|| format!("{} of the page", obj.path()))
        };
        match listing.convert(config, scope, feed, &obj, now) {
            Converted::Ignored => page.entries.push(Entry::Ignored),
            Converted::Issue(Ok(item)) => page.entries.push(Entry::Item(item)),
            Converted::Release(Ok(parsed)) if parsed.ignored.is_some() => {
                page.entries.push(Entry::Ignored)
            }
            Converted::Release(Ok(parsed)) => page
                .entries
                .extend(parsed.items.into_iter().map(Entry::Item)),
            Converted::Issue(Err(error)) | Converted::Release(Err(error)) => {
                page.entries.push(Entry::Rejected {
                    what: what(),
                    error,
                })
            }
        }
    }
    Ok(page)
}

/// A time as the listing filters read it: ISO 8601 in whole seconds,
/// rounded down so the boundary item is listed again (and found unchanged).
pub fn whole_seconds(at: Millis) -> String {
    crate::model::time::format_rfc3339(at, chrono::SecondsFormat::Secs)
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A listing of the `per_page` APIs (GitHub's, GitLab's):
/// `{base}?{query}per_page={n}`, then `&{key}={since}` when it lists from a
/// time (`since`: the filter's key and the time).
pub fn per_page(base: String, query: &str, n: u32, since: Option<(&str, Millis)>) -> String {
    let mut url = format!("{base}?{query}per_page={n}");
    if let Some((key, at)) = since {
        url.push_str(&format!("&{key}={}", whole_seconds(at)));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_whole_seconds_rounded_down() {
        assert_eq!(whole_seconds(1_557_933_618_999), "2019-05-15T15:20:18Z");
    }
}
