//! Write-behind for a long transaction: while the importer builds its
//! indexes, a helper thread asks the kernel every few milliseconds to start
//! writing the database's dirty pages to disk (`sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE`: it starts write-back and waits for nothing). The
//! commit's `fsync` then waits for what is left, not for the whole import's
//! pages. Durability is unchanged: the commit still syncs; this only moves
//! the disk's work earlier, beside the index sort. Linux only; elsewhere it
//! does nothing.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often write-back is started.
const EVERY: Duration = Duration::from_millis(50);

/// The helper thread; stopped (and joined) when dropped.
pub struct WriteBehind {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBehind {
    /// Starts write-back of the database at `db` and its WAL, if any.
    pub fn start(db: &Path) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let files = [db.to_path_buf(), wal_of(db)];
        let thread = std::thread::Builder::new()
            .name("write-behind".into())
            .spawn(move || {
                let mut open: Vec<Option<std::fs::File>> = vec![None, None];
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    for (path, file) in files.iter().zip(open.iter_mut()) {
                        if file.is_none() {
                            *file = std::fs::File::open(path).ok();
                        }
                        if let Some(f) = file {
                            start_write_back(f);
                        }
                    }
                }
            })
            .ok();
        Self {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The WAL file of the database at `db`.
fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Starts write-back of `file`'s dirty pages, waiting for none.
fn start_write_back(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `file` is open for as long as the call runs; the call
        // only starts the kernel's write-back of its pages.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Started and stopped around writes, it changes nothing in the file and
    /// stops promptly.
    #[test]
    fn write_behind_stops_and_leaves_the_file_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"").unwrap();
        let behind = WriteBehind::start(&db);
        let data: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(&db, &data).unwrap();
        std::thread::sleep(EVERY * 3);
        let started = std::time::Instant::now();
        drop(behind);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(std::fs::read(&db).unwrap(), data);
        assert_eq!(wal_of(&db), dir.path().join("x.db-wal"));
    }
}
