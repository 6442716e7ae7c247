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

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The (device, inode) of an open database file and the path it was opened by.
#[derive(Debug, Clone)]
pub struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
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
        })
    }

    /// `Ok` while the path still names the file that was opened; else what
    /// happened to it, in words for an operator. One `stat`: cheap enough for
    /// every probe and every group.
    pub fn check(&self) -> Result<(), String> {
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
}
