//! Domain values, parsed once at the edge and trusted after: the stage pipeline,
//! release-name normalisation, label values and the events the store applies
//! and the [`item::Item`] every adapter returns.

pub mod event;
pub mod item;
pub mod label;
pub mod release;
pub mod stage;
pub mod time;
