//! Who writes the database: `serve` and `import` each hold an exclusive
//! `flock` on `<db>.lock` while they run, so an import cannot run beside the
//! server that would never see it (its aggregates live in memory), and a
//! server cannot start in the middle of an import. The kernel drops the lock
//! when its process ends, however it ends: a crash never leaves it stale. The
//! file itself stays (deleting it would let two processes lock two different
//! files of the same name); what it holds (`serve, pid 123`) only names the
//! holder in messages.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("database {db} is in use by {holder} (lock file {lock})")]
    Held {
        db: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("cannot lock database {db} (lock file {lock}): {source}")]
    Io {
        db: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// Why a one-off writer (`import`, `sync`) could not open the database.
#[derive(Debug, thiserror::Error)]
pub enum ExclusiveOpenError {
    /// `serve` (or another import or sync) holds the database.
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("cannot open database {db}: {error:#}")]
    Open { db: PathBuf, error: anyhow::Error },
}

/// Takes the lock of `config.db` for `role`, then opens the database
/// (creating and migrating it like `serve`), re-keys stored rows if the
/// keying configuration changed, and hands the connection to `then` to
/// finish; an error of either step names the database.
pub(super) fn open_exclusive<T>(
    config: &crate::config::Config,
    role: &str,
    then: impl FnOnce(rusqlite::Connection) -> anyhow::Result<T>,
) -> Result<(DbLock, T), ExclusiveOpenError> {
    let lock = acquire(&config.db, role)?;
    let open = || -> anyhow::Result<T> {
        let mut conn = super::schema::open(&config.db)?;
        super::load::rekey_if_changed(&mut conn, config)?;
        then(conn)
    };
    let opened = open().map_err(|error| ExclusiveOpenError::Open {
        db: config.db.clone(),
        error,
    })?;
    Ok((lock, opened))
}

/// The lock file of database `db`: `<db>.lock` beside it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `db` for `role` (`serve`, `import`) without waiting.
pub fn acquire(db: &Path, role: &str) -> Result<DbLock, LockError> {
    let lock = lock_path(db);
    let io = |source| LockError::Io {
        db: db.to_path_buf(),
        lock: lock.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(io)?;
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(LockError::Held {
                db: db.to_path_buf(),
                lock,
                holder: if holder.is_empty() {
                    "another process".into()
                } else {
                    format!("`{holder}`")
                },
            });
        }
        return Err(io(e));
    }
    // Best effort: the name only improves the other side's message.
    let _ = file.set_len(0).and_then(|()| {
        file.rewind()?;
        write!(file, "{role}, pid {}", std::process::id())
    });
    Ok(DbLock { _file: file })
}

/// The lock of `db` as held by another process, if one holds it (for a
/// reader's message). Probed with a shared lock taken and dropped at once;
/// never creates the lock file.
pub fn held_by(db: &Path) -> Option<LockError> {
    let lock = lock_path(db);
    let mut file = File::open(&lock).ok()?;
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EWOULDBLOCK) {
        return None; // free (dropping the file lets go), or not lockable here
    }
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    let holder = holder.trim();
    Some(LockError::Held {
        db: db.to_path_buf(),
        lock,
        holder: if holder.is_empty() {
            "another process".into()
        } else {
            format!("`{holder}`")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        let first = acquire(&db, "serve").expect("first");
        match acquire(&db, "import") {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, format!("`serve, pid {}`", std::process::id()))
            }
            other => panic!("expected Held, got {other:?}"),
        }
        let held = held_by(&db).expect("held").to_string();
        assert!(
            held.contains("serve, pid") && held.contains("x.db.lock"),
            "{held}"
        );
        drop(first);
        assert!(held_by(&db).is_none());
        let _again = acquire(&db, "import").expect("free once dropped");
        assert_eq!(lock_path(&db), dir.path().join("x.db.lock"));
    }
}
