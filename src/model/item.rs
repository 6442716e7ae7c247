//! What every adapter returns and the store applies: one defect or release
//! event. It lives in the model, below both, so a source never needs the
//! store to say what it produced.

use super::event::{DefectEvent, ReleaseEvent};

/// One item of a batch.
// Almost every item is a defect: boxing it would cost an allocation per
// event to save room in the few release times.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Defect(DefectEvent),
    Release(ReleaseEvent),
}
