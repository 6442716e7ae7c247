//! Which file the store has open, so that it notices when its path names
//! another file (or none): the database deleted with its `-wal` and `-shm`,
//! another database moved over it, the file moved away. SQLite keeps writing
//! to the inode it opened, so without this check a deleted database keeps
//! taking writes that no restart will ever find.
//!
//! The identity is the (device, inode) pair of the path, read right after
//! SQLite opened it. No descriptor of our own is kept: closing a second
//! descriptor of the database would drop the POSIX locks SQLite holds on it.
//! The inode cannot be reused while SQLite keeps the file open, so a stat of
//! the path that shows the same pair is the same file.
//!
//! The `-wal` beside it is watched the same way: acknowledged writes live
//! there until a checkpoint, so a journal deleted or replaced under a running
//! store loses them at the next crash while every probe still said ready.
//! SQLite deletes the journal only when its last connection closes, never
//! while the store holds one, so a journal gone while the store runs was
//! removed by someone else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// The (device, inode) of an open database file and the path it was opened by.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// The (device, inode) of the `-wal` once seen (shared by the clones:
    /// the writer re-reads it when it opens a new connection).
    wal: Arc<Mutex<Option<(u64, u64)>>>,
}

/// The `-wal` path of database `db`.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn pair(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

impl FileIdentity {
    /// Reads the identity of the file `path` names now (call it right after
    /// opening the database).
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            wal: Arc::new(Mutex::new(pair(&wal_path(path)).ok())),
        })
    }

    /// Re-reads the `-wal`'s identity: call it right after opening a new
    /// connection (closing the last one deletes the journal, the next one
    /// creates another).
    pub fn rewatch_wal(&self) {
        *self.wal.lock().unwrap_or_else(PoisonError::into_inner) = pair(&wal_path(&self.path)).ok();
    }

    /// `Ok` while the path names the database file that was opened (its
    /// `-wal` not checked: for a reopen, whose old connection may have
    /// deleted the journal on close).
    pub fn check_file(&self) -> Result<(), String> {
        self.check_main()
    }

    /// `Ok` while the path still names the file that was opened; else what
    /// happened to it, in words for an operator. One `stat`: cheap enough for
    /// every probe and every group, and one for the `-wal`.
    pub fn check(&self) -> Result<(), String> {
        self.check_main()?;
        self.check_wal()
    }

    fn check_wal(&self) -> Result<(), String> {
        let wal = wal_path(&self.path);
        let mut seen = self.wal.lock().unwrap_or_else(PoisonError::into_inner);
        let now = pair(&wal);
        let Some(known) = *seen else {
            // Not there when the database was opened: watched once created.
            *seen = now.ok();
            return Ok(());
        };
        let file = wal.display();
        match now {
            Ok(p) if p == known => Ok(()),
            Ok(_) => Err(format!(
                "database journal replaced: {file} now names another file than the journal \
                 this process writes; nothing more is written or counted. Stop the exporter \
                 cleanly (its checkpoint on close saves what it acknowledged) and start it again"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "database journal removed: {file} no longer exists (deleted or moved away while \
                 open); nothing more is written or counted. Stop the exporter cleanly (its \
                 checkpoint on close saves what it acknowledged) and start it again"
            )),
            Err(e) => Err(format!("cannot check database journal {file}: {e}")),
        }
    }

    fn check_main(&self) -> Result<(), String> {
        let file = self.path.display();
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => Ok(()),
            Ok(_) => Err(format!(
                "database file replaced: {file} now names another file than the one this \
                 process opened; nothing more is written or counted. Restart the exporter to \
                 serve the file now at {file}"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "database file removed: {file} no longer exists (deleted or moved away while \
                 open); nothing more is written or counted. Restore it and restart the exporter"
            )),
            Err(e) => Err(format!("cannot check database file {file}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_names_another_file_or_none_is_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("d.db");
        std::fs::write(&db, b"one").expect("write");
        let id = FileIdentity::of(&db).expect("identity");
        assert!(id.check().is_ok());
        // Rewritten in place: still the same file.
        std::fs::write(&db, b"one more").expect("rewrite");
        assert!(id.check().is_ok());
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"two").expect("write");
        // Keep the first inode alive, as SQLite's descriptor would.
        let _held = std::fs::File::open(&db).expect("hold");
        std::fs::rename(&other, &db).expect("mv");
        let why = id.check().expect_err("replaced");
        assert!(why.contains("replaced"), "{why}");
        std::fs::remove_file(&db).expect("rm");
        let why = id.check().expect_err("removed");
        assert!(why.contains("removed"), "{why}");
    }

    #[test]
    fn a_journal_removed_or_replaced_under_the_open_database_is_told() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("d.db");
        let wal = dir.path().join("d.db-wal");
        std::fs::write(&db, b"db").expect("write");
        let id = FileIdentity::of(&db).expect("identity");
        // No journal yet: adopted once it appears.
        assert!(id.check().is_ok());
        std::fs::write(&wal, b"frames").expect("wal");
        let _held = std::fs::File::open(&wal).expect("hold");
        assert!(id.check().is_ok());
        std::fs::remove_file(&wal).expect("rm wal");
        let why = id.check().expect_err("journal removed");
        assert!(
            why.contains("journal removed") && why.contains("d.db-wal"),
            "{why}"
        );
        assert!(
            id.check_file().is_ok(),
            "the database itself is still there"
        );
        std::fs::write(&wal, b"other").expect("another wal");
        let why = id.check().expect_err("journal replaced");
        assert!(why.contains("journal replaced"), "{why}");
        // A new connection's own journal is watched from then on.
        id.rewatch_wal();
        assert!(id.check().is_ok());
    }
}
