//! Where a pass writes, and where it reads its cursors and the stored ids of
//! the deletion sweep. Inside `serve` every SQLite call runs off the async
//! workers (the writer thread for pages, tokio's blocking pool for the cursor
//! connection), so a busy database never stalls `/metrics` or a webhook.
//! The `sync` sub-command's own database is called in place: that process
//! serves nothing else while a pass runs.

use super::SyncError;
use crate::model::event::Ingress;
use crate::model::item::Item;
use crate::model::time::{Millis, now_ms};
use crate::store::sync::{self as cursors, Cursor, Cursors, Local};
use crate::store::{Batch, Outcome, Store};

/// Where a pass writes.
pub enum Sink<'a> {
    /// The `sync` sub-command's own database.
    Local(&'a mut Local),
    /// Beside `serve`: the writer for the data, a connection for the cursors.
    Served {
        store: &'a Store,
        cursors: &'a Cursors,
    },
}

/// Which stored defects of a scope the deletion sweep reads.
pub(super) enum Stored<'a> {
    /// Ids starting with this prefix (`<repository id>#`).
    Prefix(&'a str),
    /// Ids of this product namespace (Jira's, Sentry's).
    Namespace(&'a str),
}

// Every method takes `&mut self`: a `Local` sink's connection is not `Sync`,
// and a pass's future must be `Send` to run as a task of its own.
impl Sink<'_> {
    /// The cursor of `(source, scope)`.
    pub(super) async fn cursor(&mut self, source: &str, scope: &str) -> Result<Cursor, SyncError> {
        Ok(match self {
            Sink::Local(l) => cursors::cursor(l.conn(), source, scope)?,
            Sink::Served { cursors, .. } => cursors.cursor(source, scope).await?,
        })
    }

    /// Records a completed listing (see [`cursors::complete`]).
    pub(super) async fn complete(
        &mut self,
        source: &str,
        scope: &str,
        name: &str,
        done_until: Option<Millis>,
        at: Millis,
    ) -> Result<(), SyncError> {
        match self {
            Sink::Local(l) => cursors::complete(l.conn(), source, scope, name, done_until, at)?,
            Sink::Served { cursors, .. } => {
                cursors
                    .complete(source, scope, name, done_until, at)
                    .await?;
            }
        }
        Ok(())
    }

    /// Stored, undeleted defects of `source` in `which`, changed at or
    /// after `since`.
    pub(super) async fn stored(
        &mut self,
        source: &str,
        which: Stored<'_>,
        since: Millis,
    ) -> Result<Vec<String>, SyncError> {
        Ok(match (self, which) {
            (Sink::Local(l), Stored::Prefix(p)) => cursors::stored_ids(l.conn(), source, p, since)?,
            (Sink::Local(l), Stored::Namespace(ns)) => {
                cursors::stored_ids_in(l.conn(), source, ns, since)?
            }
            (Sink::Served { cursors, .. }, Stored::Prefix(p)) => {
                cursors.stored_ids(source, p, since).await?
            }
            (Sink::Served { cursors, .. }, Stored::Namespace(ns)) => {
                cursors.stored_ids_in(source, ns, since).await?
            }
        })
    }

    /// Writes `items` and then (or, locally, with them) the listing's mark.
    pub(super) async fn write(
        &mut self,
        ingress: Ingress,
        items: Vec<Item>,
        progress: Option<(&str, &str, Millis)>,
    ) -> Result<Outcome, SyncError> {
        let now = now_ms();
        match self {
            Sink::Local(l) => Ok(l.apply(ingress, items, now, progress)?),
            Sink::Served { store, cursors } => {
                let outcome = if items.is_empty() {
                    Outcome::default()
                } else {
                    store
                        .write(Batch {
                            ingress,
                            items,
                            delivery: None,
                            reconcile: true,
                            received_at: now,
                            deadline: None,
                        })
                        .await
                        .map_err(|e| SyncError::Store(e.to_string()))?
                };
                if let Some((scope, name, at)) = progress {
                    cursors
                        .save_progress(ingress.as_str(), scope, name, at)
                        .await?;
                }
                Ok(outcome)
            }
        }
    }
}
