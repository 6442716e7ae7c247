//! Telling a full disk from a damaged database. SQLite reports a volume out
//! of space as `SQLITE_FULL` where it knows (appending to the WAL), but as a
//! plain I/O error where it does not (growing the `-shm` mapping, extending
//! the file during a checkpoint): an I/O error on a volume with almost no
//! space left is taken for a full disk too, so an operator is told to free
//! space rather than to restore a healthy file from a backup.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::ErrorCode;

/// Below this many free bytes an I/O error is taken for a full volume: less
/// than one group of writes needs.
const NEARLY_FULL: u64 = 1024 * 1024;

/// Bytes an unprivileged process may still write on the volume holding `db`
/// (its directory), or `None` when that cannot be told.
pub fn free_bytes(db: &Path) -> Option<u64> {
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `st`
    // is a plain struct statvfs fills; nothing else is touched.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

/// Whether `code` (a SQLite error code) on database `db` means its volume is full.
pub fn full(code: Option<ErrorCode>, db: &Path) -> bool {
    match code {
        Some(ErrorCode::DiskFull) => true,
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
            free_bytes(db).is_some_and(|free| free < NEARLY_FULL)
        }
        _ => false,
    }
}

/// Whether a SQLite error on database `db` means its volume is full.
pub fn full_error(e: &rusqlite::Error, db: &Path) -> bool {
    full(e.sqlite_error_code(), db)
}

/// The SQLite error code somewhere in `e`'s chain.
pub fn sqlite_code(e: &anyhow::Error) -> Option<ErrorCode> {
    e.chain()
        .find_map(|c| {
            c.downcast_ref::<rusqlite::Error>().or(
                match c.downcast_ref::<super::schema::OpenError>() {
                    Some(super::schema::OpenError::Sqlite(inner)) => Some(inner),
                    _ => None,
                },
            )
        })
        .and_then(rusqlite::Error::sqlite_error_code)
}

/// `e` said as a full disk when it is one (for `import` and `sync`, which
/// cannot start either).
pub fn explain(db: &Path, e: anyhow::Error) -> anyhow::Error {
    if !full(sqlite_code(&e), db) {
        return e;
    }
    let free = free_bytes(db).map_or("unknown".into(), |b| b.to_string());
    anyhow::anyhow!(
        "disk full: the volume holding database {} has no space left ({free} bytes free): \
         {e:#}. Free space on that volume and try again; the database itself is not damaged \
         by a full disk",
        db.display()
    )
}

/// What a write refused for a full volume says (the HTTP answer and `/readyz`).
pub fn message(db: &Path) -> String {
    format!(
        "disk full: the volume holding {} has no space left; nothing was stored. The store \
         becomes writable again by itself once space is freed",
        db.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_disk_full_or_io_errors_on_a_nearly_full_volume_count_as_full() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        assert!(free_bytes(&db).is_some());
        assert!(full(Some(ErrorCode::DiskFull), &db));
        assert!(!full(Some(ErrorCode::DatabaseCorrupt), &db));
        assert!(!full(Some(ErrorCode::ConstraintViolation), &db));
        // The temp dir has room: an I/O error there is not a full disk.
        if free_bytes(&db).is_some_and(|f| f > NEARLY_FULL) {
            assert!(!full(Some(ErrorCode::SystemIoFailure), &db));
        }
    }
}
