//! The sentry source: its webhook (payload -> items, authentication) and its
//! `sync` listing.

pub mod sync;
pub mod webhook;
