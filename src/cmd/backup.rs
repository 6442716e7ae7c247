//! The `backup` sub-command: a consistent, checked copy of the database,
//! safe while `serve` runs on it (it does not take the database's lock; see
//! [`crate::store::backup`]).

use std::path::Path;

use super::{complain, say};

/// Exit status: the copy is written and checked.
pub const EXIT_OK: u8 = 0;
/// Exit status: usage, database or I/O error (nothing replaced).
pub const EXIT_ERROR: u8 = 2;

/// Copies `db` to `out` (replacing an existing `out` only when `force`);
/// returns the exit status.
pub fn run(db: &Path, out: &Path, force: bool) -> u8 {
    match crate::store::backup::backup(db, out, force) {
        Ok(c) => {
            say(&format!(
                "backed up {} to {}: {} defects, {} bytes, integrity ok, {} ms",
                db.display(),
                out.display(),
                c.defects,
                c.bytes,
                c.millis
            ));
            EXIT_OK
        }
        Err(e) => {
            complain(&format!("backup failed: {e:#}"));
            EXIT_ERROR
        }
    }
}
