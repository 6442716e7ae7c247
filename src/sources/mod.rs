//! Sources: the vendors that report defects and releases (GitHub, GitLab,
//! Jira, Sentry), one folder each. A source is its webhook (payload ->
//! items, authentication) and its `sync` listing (backfill and reconcile
//! from the vendor's REST API through the **same conversion the webhook
//! uses**, written through the store's writer rules page by page:
//! idempotent, and stale-safe because an item is ordered by the vendor's
//! own `updated_at` exactly like a webhook delivery of it).
//!
//! Shared by every source:
//! - [`signature`]: webhook authentication (HMAC, tokens, Standard Webhooks);
//!   [`conventions`]: label conventions; [`webhook`]: field readers, vendor
//!   time formats, the release-event parser.
//! - [`client`]: pagination helpers, rate limits, retries with backoff,
//!   bounded answers; [`origin`]: the one origin a pass calls and the URL
//!   encoder; [`ratelimit`]: the rate-limit headers read into a wait;
//!   [`redact`]: configured secrets blanked out of vendor text;
//!   [`sink`]: the store as a pass writes to it.
//! - [`Vendor`]: what one source adds to `sync` (URLs, page shapes,
//!   conversions); `pass` is the driver; [`periodic`]: `serve`'s reconcile.
//!
//! `sources` sits between the commands (`http`, `cmd`, `app`) and `ingest`:
//! it uses `ingest`, `store`, `metrics`, `config`, `model`, never `http` or
//! `cmd`.

pub mod client;
pub mod conventions;
pub mod origin;
mod pass;
pub mod periodic;
pub mod ratelimit;
pub mod redact;
pub mod signature;
pub mod sink;
pub mod webhook;

pub mod github;
pub mod gitlab;
pub mod jira;
pub mod sentry;

pub use pass::*;
pub use sink::Sink;
