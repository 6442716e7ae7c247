//! The `sync` driver shared by every source: a pass over the configured
//! scopes, each listing page by page under its cursor (`sync_cursors`: a
//! killed pass resumes from its last committed page), the writes, the
//! deletion sweep after a full listing, counts and metrics.

use std::collections::HashSet;

use serde_json::Value;

use super::client::{Answer, Client};
use super::listing::{Entry, Feed, Listing, Scoped, page};
use super::origin;
use super::redact::Redact;
use super::sink::{Sink, Stored};
use super::webhook::At;
use super::{Source, SyncError};
use crate::config::Config;
use crate::model::event::{Change, DefectEvent, Ingress};
use crate::model::item::Item;
use crate::model::time::{Millis, now_ms};
use crate::store::Outcome;
use crate::store::sync::{Cursor, WHOLE_SOURCE};
use crate::telemetry::Telemetry;
use crate::telemetry::sync::SyncTelemetry;

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
    /// Links not stored: their group was at its cap (docs/semantics.md).
    pub links_refused: u64,
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
        ) + &crate::store::refused_links_note(self.links_refused)
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

/// What a pass runs with, besides the store it writes to.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub config: &'a Config,
    pub options: Options,
    pub telemetry: &'a SyncTelemetry,
    pub progress: &'a dyn Progress,
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
    let run = Run {
        config,
        options,
        telemetry,
        progress,
    };
    (source.vendor().pass)(source, run, sink).await
}

/// A pass's fixed parts, handed down to each listing.
struct Pass<'a, L: ?Sized> {
    listing: &'a L,
    source: Source,
    run: Run<'a>,
    redact: Redact,
}

/// [`pass`] through one source's [`Listing`]: what each source's
/// [`super::Vendor::pass`] is.
pub async fn run<L: Listing + Sync + ?Sized>(
    listing: &L,
    source: Source,
    run: Run<'_>,
    sink: &mut Sink<'_>,
) -> PassResult {
    let mut result = PassResult::default();
    let names = listing.configured();
    if names.is_empty() {
        result.errors.push(SyncError::Config(format!(
            "nothing to sync: no repositories or projects are configured for {} \
             (see `webhooks.{}` in docs/configuration.md)",
            source.as_str(),
            source.as_str()
        )));
        return result;
    }
    let p = Pass {
        listing,
        source,
        run,
        redact: Redact::of(run.config),
    };
    let client = Client::new(
        run.config.sync,
        listing.api_url(),
        listing.headers(),
        p.redact.clone(),
    );
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            result.errors.push(e.redacted(&p.redact));
            return result;
        }
    };
    for name in names {
        if let Err(e) = scope(&p, &mut client, sink, &name, &mut result.summary).await {
            result.errors.push(e);
        }
    }
    if result.errors.is_empty() {
        let at = now_ms();
        match sink
            .complete(source.as_str(), WHOLE_SOURCE, "", None, at)
            .await
        {
            Ok(()) => run.telemetry.succeeded(source.as_str(), at),
            Err(e) => result.errors.push(e),
        }
    }
    result
}

/// One configured scope: resolved, then its issues and its releases. The
/// error (logged here) is redacted.
async fn scope<L: Listing + ?Sized>(
    p: &Pass<'_, L>,
    client: &mut Client,
    sink: &mut Sink<'_>,
    name: &str,
    summary: &mut Summary,
) -> Result<(), SyncError> {
    let s = p.source.as_str();
    let scope = match client.get(&p.listing.resolve_url(name), &[]).await {
        Ok(answer) => p
            .listing
            .scope(&At::root(&answer.body))
            .map_err(|e| SyncError::Shape {
                url: answer.url.clone(),
                reason: format!("{}: {}", e.field, e.reason),
            }),
        Err(e) => Err(e),
    };
    let scope = scope.map_err(|e| e.redacted(&p.redact)).inspect_err(|e| {
        tracing::error!(target: "bug_escape_exporter::sync", source = s, scope = %name, error = %e, "sync of this scope failed");
    })?;
    for feed in [Feed::Issues, Feed::Releases] {
        let listed = listing(p, client, sink, &scope, feed, summary).await;
        listed.map_err(|e| e.redacted(&p.redact)).inspect_err(|e| {
            tracing::error!(target: "bug_escape_exporter::sync", source = s, scope = %scope.name, feed = feed.as_str(), error = %e, "sync of this scope failed");
        })?;
    }
    Ok(())
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
    summary.links_refused += outcome.links_refused;
    if reconcile {
        telemetry.differences(s, outcome.accepted);
        summary.differences += outcome.accepted;
    }
}

/// Where a listing starts: the time it lists from (`None`: everything), and
/// the mark it resumes with.
fn start(feed: Feed, options: Options, cursor: &Cursor) -> (Option<Millis>, Option<Millis>) {
    let since = match feed {
        Feed::Releases => None,
        Feed::Issues if options.full => None,
        Feed::Issues => options.since.or(cursor.progress).or(cursor.done_until),
    };
    let newest = if options.full || options.since.is_some() {
        None
    } else {
        cursor.progress
    };
    (since, newest)
}

/// One listing (a feed of a scope), page by page, then its deletion sweep.
async fn listing<L: Listing + ?Sized>(
    p: &Pass<'_, L>,
    client: &mut Client,
    sink: &mut Sink<'_>,
    scope: &Scoped<L::Scope>,
    feed: Feed,
    summary: &mut Summary,
) -> Result<(), SyncError> {
    let (source, config) = (p.source, p.run.config);
    let s = source.as_str();
    let key = format!("{}:{}", feed.as_str(), scope.key);
    let name = scope.name.as_str();
    let cursor: Cursor = sink.cursor(s, &key).await?;
    // A reconcile: this listing completed before, so what it changes now is
    // what the store missed meanwhile.
    let reconcile = cursor.last_success_at.is_some();
    let (since, mut newest) = start(feed, p.run.options, &cursor);
    let mut seen: HashSet<String> = HashSet::new();
    let mut url = Some(p.listing.list_url(&scope.of, feed, since));
    // Every page this listing read: a server naming one again as the next
    // (a cursor, link, token or offset that repeats) would loop forever.
    let mut read: HashSet<String> = HashSet::new();
    tracing::info!(target: "bug_escape_exporter::sync", source = s, scope = %name, feed = feed.as_str(), since = ?since.map(super::error::time), "listing");
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
        details(p.listing, client, &scope.of, feed, &mut answer).await?;
        let page = page(p.listing, config, &scope.of, feed, &answer, now_ms())?;
        summary.pages += 1;
        let items = sort(p, client, name, page.entries, &mut seen, summary);
        newest = match (newest, page.newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let mark = match feed {
            Feed::Issues if !p.listing.newest_first(feed) => {
                newest.map(|at| (key.as_str(), name, at))
            }
            _ => None,
        };
        let outcome = sink.write(source.ingress(), items, mark).await?;
        count(source, p.run.telemetry, summary, &outcome, false, reconcile);
        p.run.progress.page(source, name, summary);
        url = next(p.listing, &answer, &read)?;
    }
    if feed == Feed::Issues && since.is_none() {
        let swept = Swept {
            seen: &seen,
            reconcile,
        };
        sweep(p, client, sink, scope, swept, summary).await?;
    }
    sink.complete(s, &key, name, newest, now_ms()).await?;
    Ok(())
}

/// The next page's URL; an error when the server names one already read.
fn next<L: Listing + ?Sized>(
    listing: &L,
    answer: &Answer,
    read: &HashSet<String>,
) -> Result<Option<String>, SyncError> {
    let url = listing.next_url(answer)?;
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
    Ok(url)
}

/// A page's entries: the items to write (their ids noted in `seen`); the
/// ignored and rejected ones counted (and the rejected logged) here.
fn sort<L: ?Sized>(
    p: &Pass<'_, L>,
    client: &Client,
    name: &str,
    entries: Vec<Entry>,
    seen: &mut HashSet<String>,
    summary: &mut Summary,
) -> Vec<Item> {
    let s = p.source.as_str();
    let mut items = Vec::new();
    for entry in entries {
        match entry {
            Entry::Item(item) => {
                if let Item::Defect(d) = &item {
                    seen.insert(d.id.clone());
                }
                items.push(item);
            }
            Entry::Ignored => {
                p.run.telemetry.items(s, "ignored", 1);
                summary.ignored += 1;
            }
            Entry::Rejected { what, error } => {
                let r = client.redact();
                tracing::warn!(target: "bug_escape_exporter::sync", source = s, scope = %name, item = %r.text(&what), field = %error.field, reason = %r.text(&error.reason), "item rejected");
                p.run.telemetry.items(s, "rejected", 1);
                summary.rejected += 1;
            }
        }
    }
    items
}

/// Replaces each object of a listed page by its detail, for vendors whose
/// listing lacks fields (see [`Listing::detail_url`]). An object gone in the
/// meantime (404) keeps its listed form.
async fn details<L: Listing + ?Sized>(
    listing: &L,
    client: &mut Client,
    scope: &L::Scope,
    feed: Feed,
    answer: &mut Answer,
) -> Result<(), SyncError> {
    let list = match listing.page_list(feed) {
        Some(key) => answer.body.get_mut(key),
        None => Some(&mut answer.body),
    };
    let Some(Value::Array(objects)) = list else {
        return Ok(());
    };
    for object in objects.iter_mut() {
        let Some(url) = listing.detail_url(scope, feed, object) else {
            continue;
        };
        let detail = client.get(&url, &[404]).await?;
        if detail.status != 404 && detail.body.is_object() {
            *object = detail.body;
        }
    }
    for object in objects.iter_mut() {
        complete(listing, client, feed, object).await?;
    }
    Ok(())
}

/// Puts the answers of `object`'s [`Listing::parts`] into it: each one that
/// is a JSON array under its key; a 404 (gone meanwhile) puts nothing.
async fn complete<L: Listing + ?Sized>(
    listing: &L,
    client: &mut Client,
    feed: Feed,
    object: &mut Value,
) -> Result<(), SyncError> {
    for (key, url) in listing.parts(feed, object) {
        let answer = client.get(&url, &[404]).await?;
        match (answer.body, object.as_object_mut()) {
            (body @ Value::Array(_), Some(o)) if answer.status != 404 => {
                o.insert(key.to_owned(), body);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The longest a webhook delivery waits for the API that completes it.
pub const DELIVERY_CALL_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Completes the issue object of a webhook delivery (`payload`) with its
/// [`Listing::parts`], through the same client a pass uses (one origin,
/// bounded answers), with one try of at most `sync.timeout` and
/// [`DELIVERY_CALL_TIME`]: a webhook does not wait out rate limits. A part
/// that cannot be read is left out (the conversion then keeps what is
/// stored: see the vendor's conversion), the failure logged, without
/// secrets, and counted as an API error.
pub async fn complete_delivery<L: Listing + ?Sized>(
    listing: &L,
    config: &Config,
    telemetry: &Telemetry,
    ingress: Ingress,
    payload: &mut Value,
) {
    let Some(object) = listing
        .delivered_issue()
        .and_then(|p| payload.pointer_mut(p))
        .filter(|o| o.is_object())
    else {
        return;
    };
    if listing.parts(Feed::Issues, object).is_empty() {
        return;
    }
    let redact = Redact::of(config);
    let mut cfg = config.sync;
    cfg.max_attempts = 1;
    cfg.timeout = cfg.timeout.min(DELIVERY_CALL_TIME);
    cfg.pass_timeout = cfg.timeout;
    let done = match Client::new(cfg, listing.api_url(), listing.headers(), redact.clone()) {
        Ok(mut client) => complete(listing, &mut client, Feed::Issues, object).await,
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        telemetry.source_api_error(ingress);
        let e = e.redacted(&redact);
        tracing::warn!(target: "bug_escape_exporter::webhook", source = ingress.as_str(), error = %e, "could not complete the delivery's issue from the API; its stored links are kept");
    }
}

/// What a full listing hands its deletion sweep.
struct Swept<'a> {
    /// The defect ids the listing showed.
    seen: &'a HashSet<String>,
    /// Whether the listing completed before (its changes are differences).
    reconcile: bool,
}

/// After a full listing: each stored, undeleted defect of the scope the
/// listing did not show is asked for on its own; those the vendor says are
/// gone (deleted, transferred away) are deleted.
async fn sweep<L: Listing + ?Sized>(
    p: &Pass<'_, L>,
    client: &mut Client,
    sink: &mut Sink<'_>,
    scoped: &Scoped<L::Scope>,
    swept: Swept<'_>,
    summary: &mut Summary,
) -> Result<(), SyncError> {
    let (listing, scope) = (p.listing, &scoped.of);
    let Some(prefix) = listing.id_prefix(scope) else {
        return Ok(());
    };
    let s = p.source.as_str();
    let since = listing.sweep_since().unwrap_or(Millis::MIN);
    let stored = match listing.sweep_namespace(scope) {
        Some(ns) => sink.stored(s, Stored::Namespace(&ns), since).await?,
        None => sink.stored(s, Stored::Prefix(&prefix), since).await?,
    };
    let mut gone = Vec::new();
    let mut moved = Vec::new();
    for id in stored.into_iter().filter(|id| !swept.seen.contains(id)) {
        let Some((url, accept)) = listing.probe_url(scope, &id) else {
            continue;
        };
        let answer = client.get(&url, accept).await?;
        match listing.gone(scope, &id, &answer, now_ms()) {
            Some(
                item @ Item::Defect(DefectEvent {
                    change: Change::Delete,
                    ..
                }),
            ) => {
                tracing::info!(target: "bug_escape_exporter::sync", source = s, scope = %scoped.name, id, "gone at the source; deleting");
                gone.push(item);
            }
            Some(item) => {
                tracing::info!(target: "bug_escape_exporter::sync", source = s, scope = %scoped.name, id, "moved at the source; applying its state there");
                moved.push(item);
            }
            None => {}
        }
    }
    for (items, deletions) in [(gone, true), (moved, false)] {
        if !items.is_empty() {
            let outcome = sink.write(p.source.ingress(), items, None).await?;
            count(
                p.source,
                p.run.telemetry,
                summary,
                &outcome,
                deletions,
                swept.reconcile,
            );
        }
    }
    Ok(())
}
