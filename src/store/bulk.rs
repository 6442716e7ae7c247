//! The bulk importer's insert: one prepared statement stepped once per row,
//! its text bound without a copy (`SQLITE_STATIC`), which `rusqlite` does not
//! offer (it binds every string as `SQLITE_TRANSIENT`: a copy and a free per
//! column per row, a sixth of an import's writing thread).

use std::ffi::{CStr, CString, c_int};
use std::ptr::{self, NonNull};

use rusqlite::{Connection, ffi};

use super::defect::RowRef;

/// A prepared `INSERT` of [`RowRef`]s whose text columns are bound in place.
pub struct Inserter<'c> {
    db: *mut ffi::sqlite3,
    stmt: NonNull<ffi::sqlite3_stmt>,
    _conn: &'c Connection,
}

impl<'c> Inserter<'c> {
    /// Prepares `sql`: an `INSERT` of the sixteen columns of `defects` in
    /// [`super::defect::Row`] order (which may do nothing on a conflict).
    pub fn new(conn: &'c Connection, sql: &str) -> rusqlite::Result<Self> {
        let sql = CString::new(sql).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the handle is valid while `conn` lives, and `_conn` keeps
        // it borrowed for as long as this statement exists.
        let db = unsafe { conn.handle() };
        let mut stmt = ptr::null_mut();
        // SAFETY: `sql` is a NUL-terminated string; `stmt` receives the
        // statement, finalized in `drop`.
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
        check(db, rc)?;
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        Ok(Self {
            db,
            stmt,
            _conn: conn,
        })
    }

    /// Inserts `row`: whether a row was inserted (`false` when the
    /// statement's conflict clause did nothing).
    pub fn insert(&mut self, row: RowRef<'_>) -> rusqlite::Result<bool> {
        let texts = row.texts();
        let ints = [i64::from(row.deleted), row.found_at, row.updated_at];
        let stmt = self.stmt.as_ptr();
        let mut result = Ok(());
        for (i, text) in texts.iter().enumerate() {
            let at = i as c_int + 1;
            let rc = match text {
                // SAFETY: `t` outlives the step below, after which the
                // statement is reset and its bindings cleared (so no pointer
                // to `t` is kept); its length is given, so it needs no NUL.
                Some(t) => match c_int::try_from(t.len()) {
                    Ok(len) => unsafe {
                        ffi::sqlite3_bind_text(
                            stmt,
                            at,
                            t.as_ptr().cast(),
                            len,
                            ffi::SQLITE_STATIC(),
                        )
                    },
                    Err(_) => ffi::SQLITE_TOOBIG,
                },
                // SAFETY: binds NULL to a parameter of this statement.
                None => unsafe { ffi::sqlite3_bind_null(stmt, at) },
            };
            result = result.and(check(self.db, rc));
        }
        for (i, v) in ints.iter().enumerate() {
            let at = (texts.len() + i) as c_int + 1;
            // SAFETY: binds an integer to a parameter of this statement.
            let rc = unsafe { ffi::sqlite3_bind_int64(stmt, at, *v) };
            result = result.and(check(self.db, rc));
        }
        if result.is_ok() {
            // SAFETY: every parameter is bound to values that live until the
            // reset below.
            let rc = unsafe { ffi::sqlite3_step(stmt) };
            if rc != ffi::SQLITE_DONE {
                result = check(self.db, rc).and(Err(rusqlite::Error::ExecuteReturnedResults));
            }
        }
        // SAFETY: reads the connection's count of rows the statement just
        // completed changed (0 when its conflict clause did nothing).
        let inserted = result.is_ok() && unsafe { ffi::sqlite3_changes64(self.db) } > 0;
        // SAFETY: resets the statement and drops its bindings (pointers into
        // `row`), whatever happened above.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result.map(|()| inserted)
    }
}

impl Drop for Inserter<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on a connection that `_conn`
        // keeps open, and is finalized once.
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

/// `rc` as a result, with the connection's message on an error.
fn check(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK || rc == ffi::SQLITE_DONE {
        return Ok(());
    }
    // SAFETY: `db` is an open connection; its message is a NUL-terminated
    // string owned by SQLite, copied at once.
    let message = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::defect::{INSERT_NEW, Row};
    use crate::store::schema;

    fn row(id: &str) -> Row {
        Row {
            source: "tracker".into(),
            id: id.into(),
            product_kind: String::new(),
            product_ns: "payments".into(),
            product: "payments".into(),
            release_raw: Some("v1.0".into()),
            release: Some("1.0".into()),
            stage: Some("production".into()),
            detected_by: None,
            cause: Some("ünïcode, and a \0 inside".into()),
            severity: None,
            team: Some(String::new()),
            status: "valid".into(),
            deleted: true,
            found_at: 1_700_000_000_000,
            updated_at: -5,
        }
    }

    /// Rows read back as they were inserted (NULLs, empty and non-ASCII
    /// text, a NUL byte, negative times); a stored key is left as it was
    /// and said so; a failed insert is an error that leaves the statement
    /// usable.
    #[test]
    fn rows_are_stored_as_given_and_errors_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let conn = schema::open(&dir.path().join("x.db")).unwrap();
        let (a, b) = (row("A-1"), row("B-2"));
        let other_a = Row {
            stage: None,
            ..a.clone()
        };
        {
            let mut inserter = Inserter::new(&conn, INSERT_NEW).unwrap();
            assert!(inserter.insert(a.borrowed()).unwrap());
            // The same key again: nothing done, and said so.
            assert!(!inserter.insert(other_a.borrowed()).unwrap());
            assert!(inserter.insert(b.borrowed()).unwrap());
        }
        assert_eq!(Row::get(&conn, "tracker", "A-1").unwrap(), Some(a.clone()));
        assert_eq!(Row::get(&conn, "tracker", "B-2").unwrap(), Some(b));
        // Without the conflict clause the unique index refuses it.
        let plain = INSERT_NEW.split(" ON CONFLICT").next().unwrap();
        let mut inserter = Inserter::new(&conn, plain).unwrap();
        match inserter.insert(a.borrowed()) {
            Err(rusqlite::Error::SqliteFailure(e, Some(m))) => {
                assert_eq!(e.code, rusqlite::ErrorCode::ConstraintViolation);
                assert!(m.contains("UNIQUE"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert!(inserter.insert(row("C-3").borrowed()).unwrap());
    }
}
