//! What every adapter returns and the store applies: one defect or release
//! event. It lives in the model, below both, so a source never needs the
//! store to say what it produced.

use super::event::{DefectEvent, ReleaseEvent};

/// One item of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Defect(DefectEvent),
    Release(ReleaseEvent),
}
