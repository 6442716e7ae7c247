//! The `sync` driver shared by every source: a pass over the configured
//! scopes, each listing page by page under its cursor (`sync_cursors`: a
//! killed pass resumes from its last committed page), the writes, the
//! deletion sweep after a full listing, counts and metrics.

use std::collections::HashSet;

use super::client::{Answer, Client};
use super::origin;
use super::redact::Redact;
use super::sink::Sink;
use super::sink::Stored;
use crate::config::Config;
use crate::ingest::FieldError;
use crate::model::event::{Change, DefectEvent, Ingress};
use crate::model::item::Item;
use crate::model::time::{Millis, now_ms};
use crate::store::Outcome;
use crate::store::sync::{Cursor, WHOLE_SOURCE};
use crate::telemetry::sync::SyncTelemetry;
use serde_json::Value;

/// The sources `sync` knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Github,
    Gitlab,
    Jira,
    Sentry,
}

impl Source {
    /// Every source, in the order of `telemetry::sync::SOURCES`.
    pub const ALL: &[Source] = &[Source::Github, Source::Gitlab, Source::Jira, Source::Sentry];

    /// The label value (`github`).
    pub fn as_str(self) -> &'static str {
        self.ingress().as_str()
    }

    /// The ingress of its items.
    pub fn ingress(self) -> Ingress {
        match self {
            Source::Github => Ingress::Github,
            Source::Gitlab => Ingress::Gitlab,
            Source::Jira => Ingress::Jira,
            Source::Sentry => Ingress::Sentry,
        }
    }

    /// `serve`'s reconcile interval for it, when configured.
    pub fn interval(self, config: &Config) -> Option<std::time::Duration> {
        match self {
            Source::Github => config.webhooks.github.sync_interval,
            Source::Gitlab => config.webhooks.gitlab.sync_interval,
            Source::Jira => config.webhooks.jira.sync_interval,
            Source::Sentry => config.webhooks.sentry.sync_interval,
        }
    }
}

/// What a listing reads in a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// Issues updated since a time, oldest update first; a cursor marks them.
    Issues,
    /// Release times (few; listed whole each pass).
    Releases,
}

impl Feed {
    fn as_str(self) -> &'static str {
        match self {
            Feed::Issues => "issues",
            Feed::Releases => "releases",
        }
    }
}

/// One object of a page, converted.
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

/// What one vendor adds to the shared driver: the URLs of its listings, the
/// shapes of its answers and the conversions (the webhook adapter's own
/// functions). See ARCHITECTURE.md, "Adding a vendor to sync".
pub trait Vendor {
    /// A resolved scope (GitHub: the repository with its numeric id).
    type Scope;

    /// The source it reads.
    fn source(&self) -> Source;

    /// Headers sent with every call: `(name, value, sensitive)`; a token is
    /// sensitive (never printed).
    fn headers(&self) -> Vec<(&'static str, String, bool)>;

    /// The configured scopes' names, in order (none: nothing to sync).
    fn configured(&self) -> Vec<String>;

    /// The call that resolves the scope named `name`.
    fn resolve_url(&self, name: &str) -> String;

    /// The scope from that call's answer.
    fn resolve(&self, name: &str, answer: &Answer) -> Result<Self::Scope, SyncError>;

    /// A key of the scope that never changes (its numeric id): cursors use it.
    fn key(&self, scope: &Self::Scope) -> String;

    /// The scope's name for people (`acme/payments`).
    fn name(&self, scope: &Self::Scope) -> String;

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
    /// before [`Vendor::page`]. `None`: the listing says all.
    fn detail_url(&self, _scope: &Self::Scope, _feed: Feed, _object: &Value) -> Option<String> {
        None
    }

    /// Converts one page of `feed`.
    fn page(
        &self,
        config: &Config,
        scope: &Self::Scope,
        feed: Feed,
        answer: &Answer,
        now: Millis,
    ) -> Result<Page, SyncError>;

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

/// Why a pass (or a part of it) failed. Nothing names a token.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Config(String),
    #[error("GET {url}: {status} {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GET {url}: failed {attempts} times: {error}")]
    Transport {
        url: String,
        attempts: u32,
        error: String,
    },
    #[error(
        "GET {url}: rate limited until {}; run sync again then (or raise sync.max_wait)",
        time(*until)
    )]
    RateLimited { url: String, until: Millis },
    #[error("GET {url}: {reason}")]
    Shape { url: String, reason: String },
    #[error(
        "refused to call {url}: it is not the configured api_url's origin {origin} \
         (scheme, host and port); the pass stops so no credential leaves it"
    )]
    Refused { url: String, origin: String },
    #[error(
        "GET {url}: the answer is larger than sync.max_response_bytes ({limit} bytes); refused"
    )]
    TooLarge { url: String, limit: u64 },
    #[error("GET {url}: {reason}; the pass stops")]
    Endless { url: String, reason: String },
    #[error(
        "GET {url}: the pass took longer than sync.pass_timeout ({}); it stops here",
        humantime::format_duration(*limit)
    )]
    Deadline {
        url: String,
        limit: std::time::Duration,
    },
    #[error("store: {0}")]
    Store(String),
}

impl SyncError {
    /// The error with every configured secret blanked out of its text (what
    /// a vendor sent: messages, URLs, field values).
    pub fn redacted(self, r: &Redact) -> SyncError {
        use SyncError::*;
        let t = |s: String| r.text(&s);
        match self {
            Config(m) => Config(t(m)),
            Http {
                url,
                status,
                message,
            } => Http {
                url: t(url),
                status,
                message: t(message),
            },
            Transport {
                url,
                attempts,
                error,
            } => Transport {
                url: t(url),
                attempts,
                error: t(error),
            },
            RateLimited { url, until } => RateLimited { url: t(url), until },
            Shape { url, reason } => Shape {
                url: t(url),
                reason: t(reason),
            },
            Refused { url, origin } => Refused {
                url: t(url),
                origin: t(origin),
            },
            TooLarge { url, limit } => TooLarge { url: t(url), limit },
            Endless { url, reason } => Endless {
                url: t(url),
                reason: t(reason),
            },
            Deadline { url, limit } => Deadline { url: t(url), limit },
            Store(m) => Store(t(m)),
        }
    }
}

/// A time for messages (RFC 3339).
fn time(at: Millis) -> String {
    // A server's reset can be any number: one past the calendar is said so.
    crate::model::time::format_rfc3339(at, chrono::SecondsFormat::AutoSi)
        .unwrap_or_else(|| format!("a time past any date ({at} ms after 1970)"))
}

impl From<rusqlite::Error> for SyncError {
    fn from(e: rusqlite::Error) -> Self {
        SyncError::Store(e.to_string())
    }
}

/// What a pass changes beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// List issues updated since this time instead of the cursor's mark.
    pub since: Option<Millis>,
    /// List every issue whatever the cursor (and sweep for deletions).
    pub full: bool,
}

/// Counts of a pass, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub imported: u64,
    pub unchanged: u64,
    pub stale: u64,
    pub ignored: u64,
    pub rejected: u64,
    pub deleted: u64,
    /// Imported or deleted items of a reconcile (not the first complete pass).
    pub differences: u64,
    pub pages: u64,
}

impl Summary {
    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "imported {}, unchanged {}, stale {}, ignored {}, rejected {}, deleted {}; \
             differences {} ({} pages)",
            self.imported,
            self.unchanged,
            self.stale,
            self.ignored,
            self.rejected,
            self.deleted,
            self.differences,
            self.pages
        )
    }
}

/// Something that shows a pass's progress (the sub-command's bar).
pub trait Progress: Sync {
    /// Called after each page with the scope's name and the totals so far.
    fn page(&self, source: Source, scope: &str, summary: &Summary);
}

/// No progress shown (`serve`).
pub struct Quiet;

impl Progress for Quiet {
    fn page(&self, _: Source, _: &str, _: &Summary) {}
}

/// The result of a pass: its counts, and the errors of the scopes that failed
/// (a pass with errors is not a success: its time is not recorded).
#[derive(Debug, Default)]
pub struct PassResult {
    pub summary: Summary,
    pub errors: Vec<SyncError>,
}

/// One pass over `source`: every configured scope, issues then releases.
/// Records the pass's success (cursor row `*` and the metric) when every
/// scope completed.
pub async fn pass(
    source: Source,
    config: &Config,
    sink: &mut Sink<'_>,
    options: Options,
    telemetry: &SyncTelemetry,
    progress: &dyn Progress,
) -> PassResult {
    match source {
        Source::Github => {
            let vendor = super::github::sync::Github::new(config);
            run(&vendor, config, sink, options, telemetry, progress).await
        }
        Source::Gitlab => {
            let vendor = super::gitlab::sync::Gitlab::new(config);
            run(&vendor, config, sink, options, telemetry, progress).await
        }
        Source::Jira => {
            let vendor = super::jira::sync::Jira::new(config);
            run(&vendor, config, sink, options, telemetry, progress).await
        }
        Source::Sentry => {
            let vendor = super::sentry::sync::Sentry::new(config);
            run(&vendor, config, sink, options, telemetry, progress).await
        }
    }
}

async fn run<V: Vendor>(
    vendor: &V,
    config: &Config,
    sink: &mut Sink<'_>,
    options: Options,
    telemetry: &SyncTelemetry,
    progress: &dyn Progress,
) -> PassResult {
    let source = vendor.source();
    let mut result = PassResult::default();
    let names = vendor.configured();
    if names.is_empty() {
        result.errors.push(SyncError::Config(format!(
            "nothing to sync: no repositories or projects are configured for {} \
             (see `webhooks.{}` in docs/configuration.md)",
            source.as_str(),
            source.as_str()
        )));
        return result;
    }
    let redact = Redact::of(config);
    let client = Client::new(
        config.sync,
        vendor.api_url(),
        vendor.headers(),
        redact.clone(),
    );
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            result.errors.push(e.redacted(&redact));
            return result;
        }
    };
    for name in names {
        let scope = match client.get(&vendor.resolve_url(&name), &[]).await {
            Ok(answer) => vendor.resolve(&name, &answer),
            Err(e) => Err(e),
        };
        let scope = match scope.map_err(|e| e.redacted(&redact)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(source = source.as_str(), scope = %name, error = %e, "sync of this scope failed");
                result.errors.push(e);
                continue;
            }
        };
        for feed in [Feed::Issues, Feed::Releases] {
            let listed = listing(
                vendor,
                config,
                &mut client,
                sink,
                &scope,
                feed,
                options,
                telemetry,
                progress,
                &mut result.summary,
            )
            .await;
            if let Err(e) = listed.map_err(|e| e.redacted(&redact)) {
                tracing::error!(source = source.as_str(), scope = %vendor.name(&scope), feed = feed.as_str(), error = %e, "sync of this scope failed");
                result.errors.push(e);
                break;
            }
        }
    }
    if result.errors.is_empty() {
        let at = now_ms();
        match sink
            .complete(source.as_str(), WHOLE_SOURCE, "", None, at)
            .await
        {
            Ok(()) => telemetry.succeeded(source.as_str(), at),
            Err(e) => result.errors.push(e),
        }
    }
    result
}

/// Counts one write's outcome into `summary` and the metrics.
fn count(
    source: Source,
    telemetry: &SyncTelemetry,
    summary: &mut Summary,
    outcome: &Outcome,
    deletions: bool,
    reconcile: bool,
) {
    let s = source.as_str();
    let changed = if deletions { "deleted" } else { "imported" };
    telemetry.items(s, changed, outcome.accepted);
    telemetry.items(s, "unchanged", outcome.unchanged);
    telemetry.items(s, "stale", outcome.stale);
    telemetry.items(s, "ignored", outcome.ignored);
    if deletions {
        summary.deleted += outcome.accepted;
    } else {
        summary.imported += outcome.accepted;
    }
    summary.unchanged += outcome.unchanged;
    summary.stale += outcome.stale;
    summary.ignored += outcome.ignored;
    if reconcile {
        telemetry.differences(s, outcome.accepted);
        summary.differences += outcome.accepted;
    }
}

/// One listing (a feed of a scope), page by page, then its deletion sweep.
#[allow(clippy::too_many_arguments)]
async fn listing<V: Vendor>(
    vendor: &V,
    config: &Config,
    client: &mut Client,
    sink: &mut Sink<'_>,
    scope: &V::Scope,
    feed: Feed,
    options: Options,
    telemetry: &SyncTelemetry,
    progress: &dyn Progress,
    summary: &mut Summary,
) -> Result<(), SyncError> {
    let source = vendor.source();
    let s = source.as_str();
    let key = format!("{}:{}", feed.as_str(), vendor.key(scope));
    let name = vendor.name(scope);
    let cursor: Cursor = sink.cursor(s, &key).await?;
    // A reconcile: this listing completed before, so what it changes now is
    // what the store missed meanwhile.
    let reconcile = cursor.last_success_at.is_some();
    let since = match feed {
        Feed::Releases => None,
        Feed::Issues if options.full => None,
        Feed::Issues => options.since.or(cursor.progress).or(cursor.done_until),
    };
    let full = since.is_none();
    let mut seen: HashSet<String> = HashSet::new();
    let mut newest = if options.full || options.since.is_some() {
        None
    } else {
        cursor.progress
    };
    let mut url = Some(vendor.list_url(scope, feed, since));
    // Every page this listing read: a server naming one again as the next
    // (a cursor, link, token or offset that repeats) would loop forever.
    let mut read: HashSet<String> = HashSet::new();
    tracing::info!(source = s, scope = %name, feed = feed.as_str(), since = ?since.map(time), "listing");
    while let Some(u) = url.take() {
        if summary.pages >= config.sync.max_pages {
            return Err(SyncError::Endless {
                url: origin::shown(&u),
                reason: format!(
                    "this pass has read sync.max_pages ({}) pages; raise it if the listing \
                     is really that long",
                    config.sync.max_pages
                ),
            });
        }
        let mut answer = client.get(&u, &[]).await?;
        read.insert(origin::page_key(&u));
        details(vendor, client, scope, feed, &mut answer).await?;
        let page = vendor.page(config, scope, feed, &answer, now_ms())?;
        summary.pages += 1;
        let mut items = Vec::new();
        for entry in page.entries {
            match entry {
                Entry::Item(item) => {
                    if let Item::Defect(d) = &item {
                        seen.insert(d.id.clone());
                    }
                    items.push(item);
                }
                Entry::Ignored => {
                    telemetry.items(s, "ignored", 1);
                    summary.ignored += 1;
                }
                Entry::Rejected { what, error } => {
                    let r = client.redact();
                    tracing::warn!(source = s, scope = %name, item = %r.text(&what), field = %error.field, reason = %r.text(&error.reason), "item rejected");
                    telemetry.items(s, "rejected", 1);
                    summary.rejected += 1;
                }
            }
        }
        newest = match (newest, page.newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mark = match feed {
            Feed::Issues if !vendor.newest_first(feed) => {
                newest.map(|at| (key.as_str(), name.as_str(), at))
            }
            _ => None,
        };
        let outcome = sink.write(source.ingress(), items, mark).await?;
        count(source, telemetry, summary, &outcome, false, reconcile);
        progress.page(source, &name, summary);
        url = vendor.next_url(&answer)?;
        if let Some(next) = url
            .as_deref()
            .filter(|n| read.contains(&origin::page_key(n)))
        {
            return Err(SyncError::Endless {
                url: origin::shown(next),
                reason: "the server named a page already read as the next one (a cursor, link, \
                         token or offset that repeats)"
                    .into(),
            });
        }
    }
    if feed == Feed::Issues && full {
        sweep(
            vendor, client, sink, scope, &seen, reconcile, telemetry, summary,
        )
        .await?;
    }
    sink.complete(s, &key, &name, newest, now_ms()).await?;
    Ok(())
}

/// Replaces each object of a listed page by its detail, for vendors whose
/// listing lacks fields (see [`Vendor::detail_url`]). An object gone in the
/// meantime (404) keeps its listed form.
async fn details<V: Vendor>(
    vendor: &V,
    client: &mut Client,
    scope: &V::Scope,
    feed: Feed,
    answer: &mut Answer,
) -> Result<(), SyncError> {
    let Value::Array(objects) = &mut answer.body else {
        return Ok(());
    };
    for object in objects.iter_mut() {
        let Some(url) = vendor.detail_url(scope, feed, object) else {
            continue;
        };
        let detail = client.get(&url, &[404]).await?;
        if detail.status != 404 && detail.body.is_object() {
            *object = detail.body;
        }
    }
    Ok(())
}

/// After a full listing: each stored, undeleted defect of the scope the
/// listing did not show is asked for on its own; those the vendor says are
/// gone (deleted, transferred away) are deleted.
#[allow(clippy::too_many_arguments)]
async fn sweep<V: Vendor>(
    vendor: &V,
    client: &mut Client,
    sink: &mut Sink<'_>,
    scope: &V::Scope,
    seen: &HashSet<String>,
    reconcile: bool,
    telemetry: &SyncTelemetry,
    summary: &mut Summary,
) -> Result<(), SyncError> {
    let Some(prefix) = vendor.id_prefix(scope) else {
        return Ok(());
    };
    let source = vendor.source();
    let since = vendor.sweep_since().unwrap_or(Millis::MIN);
    let stored = match vendor.sweep_namespace(scope) {
        Some(ns) => {
            sink.stored(source.as_str(), Stored::Namespace(&ns), since)
                .await?
        }
        None => {
            sink.stored(source.as_str(), Stored::Prefix(&prefix), since)
                .await?
        }
    };
    let mut gone = Vec::new();
    let mut moved = Vec::new();
    for id in stored.into_iter().filter(|id| !seen.contains(id)) {
        let Some((url, accept)) = vendor.probe_url(scope, &id) else {
            continue;
        };
        let answer = client.get(&url, accept).await?;
        match vendor.gone(scope, &id, &answer, now_ms()) {
            Some(
                item @ Item::Defect(DefectEvent {
                    change: Change::Delete,
                    ..
                }),
            ) => {
                tracing::info!(source = source.as_str(), scope = %vendor.name(scope), id, "gone at the source; deleting");
                gone.push(item);
            }
            Some(item) => {
                tracing::info!(source = source.as_str(), scope = %vendor.name(scope), id, "moved at the source; applying its state there");
                moved.push(item);
            }
            None => {}
        }
    }
    if !gone.is_empty() {
        let outcome = sink.write(source.ingress(), gone, None).await?;
        count(source, telemetry, summary, &outcome, true, reconcile);
    }
    if !moved.is_empty() {
        let outcome = sink.write(source.ingress(), moved, None).await?;
        count(source, telemetry, summary, &outcome, false, reconcile);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_its_metrics_initialised() {
        use clap::ValueEnum;
        let names: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, crate::telemetry::sync::SOURCES);
        assert_eq!(Source::ALL, Source::value_variants());
    }
}
