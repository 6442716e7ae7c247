//! Domain values, parsed once at the edge and trusted after: the stage pipeline,
//! release-name normalisation, label values and the events the store applies.

pub mod event;
pub mod label;
pub mod release;
pub mod stage;
pub mod time;
