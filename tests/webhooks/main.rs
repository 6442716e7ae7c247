//! Source webhooks end to end: a real exporter, real fixture bytes, real
//! signatures, effects read from `/metrics`.

mod budget;
mod fixtures;
mod github;
mod gitlab;
mod helpers;
mod jira;
mod links;
mod namespaces;
mod parsers;
mod sentry;
mod times;
