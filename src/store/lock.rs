//! Who writes the database: `serve` and `import` each hold an exclusive
//! `flock` on `<db>.lock` while they run, so an import cannot run beside the
//! server that would never see it (its aggregates live in memory), and a
//! server cannot start in the middle of an import. The kernel drops the lock
//! when its process ends, however it ends: a crash never leaves it stale. The
//! file itself stays (deleting it would let two processes lock two different
//! files of the same name); what it holds (`serve, pid 123`) only names the
//! holder in messages.
//!
//! The lock file is named after the database's canonical path (symlinks and
//! `..` resolved), so two spellings of one database take one lock: `import`
//! through a symlink is refused beside `serve` like any other. It is not the
//! database itself: that descriptor would have to be closed some day, and
//! closing any descriptor of a file drops the POSIX locks SQLite holds on it.
//!
//! A database that vanished while its lock file, `-wal` or `-shm` stayed is
//! not silently recreated empty: taking the lock says which files remain.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock, held until dropped.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

impl Drop for DbLock {
    /// Unlocks before the descriptor closes: a child forked at that moment
    /// (by a test harness, a hook) shares the open file, and closing ours
    /// alone would leave the lock held until that child execs.
    fn drop(&mut self) {
        // SAFETY: flock on the descriptor this value owns, still open here.
        unsafe { libc::flock(self._file.as_raw_fd(), libc::LOCK_UN) };
    }
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
    /// The database is missing but files of an earlier run remain beside it.
    #[error(
        "database {db} does not exist, but {} remain{}: the database was deleted or moved \
         away after it was used. Put it back (with its -wal file) to keep its data; to start \
         with an empty store on purpose, delete {} first",
        list(left), if left.len() == 1 { "s" } else { "" }, list(left)
    )]
    Vanished { db: PathBuf, left: Vec<PathBuf> },
    /// The database file has another name (a hard link): SQLite keeps its
    /// `-wal` and `-shm` by name, so a writer through the other name would
    /// write a second journal beside the one `serve` writes, and the lock
    /// file (named after one path) cannot see it.
    #[error(
        "database {db} has {links} names (hard links): a writer through another name would \
         keep a second -wal journal and take a second lock. Remove the other links (`find / \
         -samefile {db}`), or copy the file instead of linking it"
    )]
    Linked { db: PathBuf, links: u64 },
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
        error: super::space::explain(&config.db, error),
    })?;
    Ok((lock, opened))
}

fn list(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}

/// Most symbolic links followed to find a database that does not exist yet
/// (the kernel's own limit is 40).
const MAX_LINKS: usize = 40;

/// The path `db` stands for with every symlink and `..` resolved: the file
/// SQLite opens (it follows symlinks too). A database not created yet is its
/// directory's canonical path with the name (through a dangling symlink, the
/// link's target).
pub fn canonical(db: &Path) -> PathBuf {
    let mut path = db.to_path_buf();
    for _ in 0..MAX_LINKS {
        if let Ok(c) = std::fs::canonicalize(&path) {
            return c;
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::read_link(&path) {
            Ok(target) => path = dir.join(target),
            Err(_) => {
                let Some(name) = path.file_name() else {
                    return path;
                };
                return std::fs::canonicalize(&dir).map_or(path.clone(), |d| d.join(name));
            }
        }
    }
    path
}

/// The lock file of database `db`: `<canonical db>.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = canonical(db).into_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of `db` for `role` (`serve`, `import`) without waiting.
/// Refuses a database that vanished while its lock file, `-wal` or `-shm`
/// remained ([`LockError::Vanished`]).
pub fn acquire(db: &Path, role: &str) -> Result<DbLock, LockError> {
    let lock = lock_path(db);
    let io = |source| LockError::Io {
        db: db.to_path_buf(),
        lock: lock.clone(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    let (mut file, existed) = match options.clone().create_new(true).open(&lock) {
        Ok(f) => (f, false),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            (options.open(&lock).map_err(io)?, true)
        }
        Err(e) => return Err(io(e)),
    };
    // SAFETY: flock on a descriptor this function owns; no memory involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(held(db, lock, &mut file));
        }
        return Err(io(e));
    }
    vanished(db, &lock, existed)?;
    single_name(db)?;
    // Best effort: the name only improves the other side's message.
    let _ = file.set_len(0).and_then(|()| {
        file.rewind()?;
        write!(file, "{role}, pid {}", std::process::id())
    });
    Ok(DbLock { _file: file })
}

/// Whether the database is missing while files of an earlier run remain:
/// the lock file (when it was there before this process), `-wal`, `-shm`.
fn vanished(db: &Path, lock: &Path, lock_existed: bool) -> Result<(), LockError> {
    let real = canonical(db);
    if real.exists() {
        return Ok(());
    }
    let beside = |suffix: &str| {
        let mut name = real.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    let mut left: Vec<PathBuf> = ["-wal", "-shm"]
        .iter()
        .map(|s| beside(s))
        .filter(|p| p.exists())
        .collect();
    if lock_existed {
        left.push(lock.to_path_buf());
    }
    if left.is_empty() {
        return Ok(());
    }
    Err(LockError::Vanished {
        db: db.to_path_buf(),
        left,
    })
}

/// Refuses a database file with more than one hard link: two names of one
/// file take two lock files and keep two journals. Checked on every taking of
/// the lock, so whichever of two writers comes second through another name
/// is refused.
fn single_name(db: &Path) -> Result<(), LockError> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(db) {
        // A directory has links of its own; SQLite refuses to open it anyway.
        Ok(m) if m.is_file() && m.nlink() > 1 => Err(LockError::Linked {
            db: db.to_path_buf(),
            links: m.nlink(),
        }),
        _ => Ok(()), // missing: created by this writer, one name
    }
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
    Some(held(db, lock, &mut file))
}

/// [`LockError::Held`] naming the holder the lock file says (`serve, pid N`).
fn held(db: &Path, lock: PathBuf, file: &mut File) -> LockError {
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    let holder = holder.trim();
    LockError::Held {
        db: db.to_path_buf(),
        lock,
        holder: if holder.is_empty() {
            "another process".into()
        } else {
            format!("`{holder}`")
        },
    }
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
        std::fs::write(&db, b"").expect("the database exists");
        let _again = acquire(&db, "import").expect("free once dropped");
        assert_eq!(lock_path(&db), canonical(dir.path()).join("x.db.lock"));
    }

    #[test]
    fn a_symlink_or_dot_dot_spelling_takes_the_same_lock_even_before_the_file_exists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        let db = dir.path().join("x.db");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).expect("symlink");
        let dotted = sub.join("..").join("x.db");
        // Not created yet: the dangling link and `..` still name one lock.
        assert_eq!(lock_path(&link), lock_path(&db));
        assert_eq!(lock_path(&dotted), lock_path(&db));
        let _serve = acquire(&db, "serve").expect("first");
        for other in [&link, &dotted] {
            assert!(
                matches!(acquire(other, "import"), Err(LockError::Held { .. })),
                "{} took a second lock",
                other.display()
            );
        }
    }

    #[test]
    fn a_hard_link_to_the_database_is_refused_by_either_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"").expect("the database exists");
        let serve = acquire(&db, "serve").expect("one name");
        let other = dir.path().join("hard.db");
        std::fs::hard_link(&db, &other).expect("link");
        let err = acquire(&other, "import").expect_err("a second name");
        assert!(matches!(err, LockError::Linked { links: 2, .. }), "{err}");
        drop(serve);
        let text = acquire(&db, "serve").expect_err("linked").to_string();
        assert!(
            text.contains("hard links") && text.contains("x.db"),
            "{text}"
        );
        std::fs::remove_file(&other).expect("rm link");
        drop(acquire(&db, "serve").expect("one name again"));
        // A directory's links are its own (SQLite then refuses to open it).
        std::fs::create_dir_all(dir.path().join("d").join("sub")).expect("mkdir");
        assert!(single_name(&dir.path().join("d")).is_ok());
    }

    #[test]
    fn a_database_gone_while_its_lock_or_wal_remains_is_named_not_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("x.db");
        // A first start: nothing there yet.
        drop(acquire(&db, "serve").expect("fresh"));
        // The lock file stays after a run; the database is gone.
        let err = acquire(&db, "serve").expect_err("lock left, database gone");
        let text = err.to_string();
        assert!(matches!(err, LockError::Vanished { .. }), "{text}");
        assert!(
            text.contains("x.db.lock") && text.contains("does not exist"),
            "{text}"
        );
        std::fs::remove_file(lock_path(&db)).expect("rm lock");
        std::fs::write(dir.path().join("x.db-wal"), b"frames").expect("wal");
        let text = acquire(&db, "import").expect_err("wal left").to_string();
        assert!(text.contains("x.db-wal"), "{text}");
    }
}
