//! Readers beside a failing import (issue 21, item 2), with the real binary:
//! `report` and `export` see exactly what is committed after an import is
//! killed at random points, while one runs, and after one fails on a full
//! volume, whose space the failed import gives back. Never "malformed",
//! never the numbers of an uncommitted import.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::skip;

const BIN: &str = env!("CARGO_BIN_EXE_bug-escape-exporter");

/// Defects already committed before each large import.
const BASE: u64 = 2_000;

/// A small xorshift generator: the kill points and ids differ between runs,
/// and the seed in a failure message repeats one.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

/// Writes `n` defect lines (random tracker ids, product `p`, stage `qa`) of
/// `release` to `path`: every one counts in the release's defects.
fn write_defects(path: &Path, n: u64, release: &str, rng: &mut Rng) {
    let mut text = String::with_capacity(n as usize * 140);
    for _ in 0..n {
        text.push_str(&format!(
            "{{\"id\":\"{:016x}\",\"product\":\"p\",\"stage\":\"qa\",\"release\":\"{release}\",\
             \"found_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-02T00:00:00Z\"}}\n",
            rng.next()
        ));
    }
    std::fs::write(path, text).expect("input written");
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

fn spawn_import(db: &Path, file: &Path) -> Child {
    Command::new(BIN)
        .arg("import")
        .arg("--db")
        .arg(db)
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("import starts")
}

/// Imports `file` into `db` to the end: (exit status, stdout, stderr).
fn import(db: &Path, file: &Path) -> (i32, String, String) {
    let out = run(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `report --format json`: the defects of every release, or the error.
fn reported(db: &Path) -> Result<u64, String> {
    let out = run(&["report", "--db", db.to_str().unwrap(), "--format", "json"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(err);
    }
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report printed no JSON ({e}): {err}"));
    Ok(json["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| r["defects"].as_u64().expect("defects"))
        .sum())
}

/// `export`: the defects it says it wrote, or the error.
fn exported(db: &Path) -> Result<u64, String> {
    let out = run(&["export", "--db", db.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(err);
    }
    // "exported R release times and D defects (X deleted)": one line each,
    // after the format line.
    let words: Vec<&str> = err.split_whitespace().collect();
    let said = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    let lines = out.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
    match (said(1), said(5)) {
        (Some(r), Some(d)) if r + d + 1 == lines => Ok(d),
        _ => panic!("export wrote {lines} lines and said: {err}"),
    }
}

/// `PRAGMA integrity_check`, read-only.
fn integrity(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("opens");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// A database holding [`BASE`] committed defects of release `1.0`.
fn base_db(dir: &Path, rng: &mut Rng) -> PathBuf {
    let db = dir.join("base.db");
    let file = dir.join("base.ndjson");
    write_defects(&file, BASE, "1.0", rng);
    let (status, out, err) = import(&db, &file);
    assert_eq!(status, 0, "{out}{err}");
    db
}

/// Waits for `child` at most `limit`; kills it beyond.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the import did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (a) An import of 100,000 lines over 2,000 committed defects, killed
/// (`SIGKILL`) at a random point of each of four stretches of its run
/// (parsing and applying, index build and commit, the checkpoint after
/// it): `report` and `export` then succeed and show 2,000 defects, or
/// 102,000 when the kill came after the commit; the file is intact.
#[test]
fn after_an_import_killed_at_random_points_readers_see_exactly_what_is_committed() {
    let mut rng = Rng::seeded();
    let seed = rng.0;
    let dir = tempfile::tempdir().unwrap();
    let base = base_db(dir.path(), &mut rng);
    let big = dir.path().join("big.ndjson");
    let n = 100_000;
    write_defects(&big, n, "2.0", &mut rng);
    let full = BASE + n;
    // One import to its end: how long a whole one takes on this machine
    // now, and the full count.
    let db = dir.path().join("whole.db");
    std::fs::copy(&base, &db).unwrap();
    let started = Instant::now();
    let mut child = spawn_import(&db, &big);
    assert!(wait_bounded(&mut child, Duration::from_secs(300)).success());
    let whole = started.elapsed();
    assert_eq!(reported(&db), Ok(full));
    for (round, (lo, hi)) in [(0.02, 0.3), (0.3, 0.6), (0.6, 0.85), (0.85, 1.1)]
        .into_iter()
        .enumerate()
    {
        let db = dir.path().join(format!("killed-{round}.db"));
        std::fs::copy(&base, &db).unwrap();
        let at = whole.mul_f64(rng.between(lo, hi));
        let mut child = spawn_import(&db, &big);
        std::thread::sleep(at);
        let finished = child.try_wait().expect("wait").is_some();
        child.kill().ok();
        let status = child.wait().expect("reaped");
        let context = format!("round {round}, killed after {at:?} of {whole:?}, seed {seed}");
        let seen = reported(&db).unwrap_or_else(|e| panic!("{context}: report failed: {e}"));
        assert!(seen == BASE || seen == full, "{context}: {seen} defects");
        if finished {
            assert!(status.success(), "{context}: {status:?}");
            assert_eq!(seen, full, "{context}");
        }
        let written = exported(&db).unwrap_or_else(|e| panic!("{context}: export failed: {e}"));
        assert_eq!(written, seen, "{context}");
        assert_eq!(integrity(&db), "ok", "{context}");
    }
}

/// (b) `report` and `export` in a loop while a 100,000-line import runs on
/// a new database: each answers with the numbers before the import (none),
/// or those of its commit, or refuses by naming the lock (the database not
/// yet created or migrated) — never "malformed", never a part.
#[test]
fn readers_beside_a_running_import_see_the_last_commit_or_are_refused_by_name() {
    let mut rng = Rng::seeded();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.ndjson");
    let n = 100_000;
    write_defects(&big, n, "2.0", &mut rng);
    let db = dir.path().join("fresh.db");
    let mut child = spawn_import(&db, &big);
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut before, mut refused, mut reads) = (0, 0, 0);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the import did not end");
        let seen = if reads % 2 == 0 {
            reported(&db)
        } else {
            exported(&db)
        };
        reads += 1;
        match seen {
            Ok(0) => before += 1,
            Ok(c) => assert_eq!(c, n, "a reader saw part of the import"),
            Err(e) if e.contains("does not exist") => {
                assert_eq!(before, 0, "the database vanished: {e}")
            }
            Err(e) if e.contains("fresh.db.lock") && e.contains("import, pid") => refused += 1,
            Err(e) => panic!("a reader failed beside the import: {e}"),
        }
    }
    let status = child.wait_with_output().expect("import ends");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        before > 0,
        "no reader ran during the import ({reads} reads, {refused} refused)"
    );
    assert_eq!(reported(&db), Ok(n));
    assert_eq!(exported(&db), Ok(n));
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Volume(PathBuf);

impl Volume {
    /// Mounts a tmpfs of `size` on `dir`; why not, when this process may not.
    fn mount(dir: &Path, size: &str) -> Result<Volume, String> {
        // SAFETY: geteuid only reads the process's effective user id.
        if unsafe { libc::geteuid() } != 0 {
            return Err("mounting a tmpfs needs root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Volume(dir.to_path_buf()))
    }

    /// Bytes free to an unprivileged writer.
    fn free(&self) -> u64 {
        let path = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: `path` is a NUL-terminated string, `st` a plain struct the
        // call fills.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        assert_eq!(rc, 0, "statvfs");
        st.f_bavail as u64 * st.f_frsize as u64
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Imports `big` into `db` on a volume it cannot hold: refused as a full
/// disk, and the volume's free space afterwards is what it was before.
fn fails_full_and_gives_space_back(vol: &Volume, db: &Path, big: &Path) {
    // Free space, counting that of the database and its lock file: a new
    // database keeps its first commits (the schema) and that is all.
    let files = || {
        use std::os::unix::fs::MetadataExt;
        let lock = format!("{}.lock", db.display());
        [db, Path::new(&lock)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.blocks() * 512)
            .sum::<u64>()
    };
    let before = vol.free() + files();
    let (status, out, err) = import(db, big);
    assert_eq!(status, 2, "{out}{err}");
    assert!(
        err.contains("the disk holding the database is full")
            && err.contains("Nothing was imported")
            && err.contains("free again"),
        "{err}"
    );
    let after = vol.free() + files();
    assert!(
        after + 16 * 1024 >= before,
        "the failed import kept {} bytes ({before} free before, {after} after)",
        before - after
    );
    let wal = format!("{}-wal", db.display());
    assert_eq!(std::fs::metadata(wal).map_or(0, |m| m.len()), 0);
    assert_eq!(integrity(db), "ok");
}

/// (c) An import onto a full tmpfs volume fails saying the disk is full,
/// and gives the space back: over 2,000 committed defects (which `report`
/// still shows), and into a new database (whose first commits are in the
/// WAL when the import begins).
#[test]
fn an_import_onto_a_full_volume_says_so_and_gives_the_space_back() {
    let mut rng = Rng::seeded();
    let dir = tempfile::tempdir().unwrap();
    let mount = tempfile::tempdir().unwrap();
    let vol = match Volume::mount(mount.path(), "8m") {
        Ok(v) => v,
        Err(why) => {
            skip::skip(
                "the full-volume import test",
                &why,
                "run the tests as root, as CI does",
            );
            return;
        }
    };
    let big = dir.path().join("big.ndjson");
    write_defects(&big, 60_000, "2.0", &mut rng);
    let base = base_db(dir.path(), &mut rng);
    let db = vol.0.join("x.db");
    std::fs::copy(&base, &db).unwrap();
    fails_full_and_gives_space_back(&vol, &db, &big);
    assert_eq!(reported(&db), Ok(BASE));
    let fresh = vol.0.join("fresh.db");
    fails_full_and_gives_space_back(&vol, &fresh, &big);
    assert_eq!(reported(&fresh), Ok(0));
}

/// A reader that may not create or write the `-wal`/`-shm` files a WAL
/// reader needs is refused with the reason (never a guess, never
/// "malformed"): run as another user (nobody) on a database of root's, and
/// on its own database in a directory it cannot write. Root only (it
/// switches user).
#[test]
fn a_reader_that_cannot_use_the_wal_files_is_refused_with_the_reason() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid only reads the process's effective user id.
    if unsafe { libc::geteuid() } != 0 {
        skip::skip(
            "the reader permission test",
            "switching to another user needs root",
            "run the tests as root, as CI does",
        );
        return;
    }
    let nobody = 65534;
    let mut rng = Rng::seeded();
    let dir = tempfile::tempdir().unwrap();
    let db = base_db(dir.path(), &mut rng);
    // The directories on the way are searchable by nobody.
    let open = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap()
    };
    open(dir.path());
    // A copy of the binary nobody can run: the checkout may sit below a
    // directory only root may enter (a `mktemp -d`, a home directory).
    let bin = dir.path().join("bug-escape-exporter");
    std::fs::copy(BIN, &bin).expect("copy the binary");
    open(&bin);
    let as_nobody = |db: &Path| {
        let out = Command::new(&bin)
            .args(["report", "--format", "json", "--db"])
            .arg(db)
            .uid(nobody)
            .gid(nobody)
            .output()
            .expect("binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, err) = as_nobody(&db);
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("owned by uid 65534") && err.contains("run this as root"),
        "{err}"
    );
    assert!(!Path::new(&format!("{}-shm", db.display())).exists());
    // nobody's own database, in a directory nobody cannot write.
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    let theirs = own.join("n.db");
    std::fs::copy(&db, &theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(nobody), Some(nobody)).unwrap();
    open(&own);
    let (status, err) = as_nobody(&theirs);
    assert_eq!(status, Some(1), "{err}");
    assert!(
        err.contains("cannot create or write its") && err.contains("n.db-shm"),
        "{err}"
    );
    assert!(!err.contains("malformed"), "{err}");
    // Root reads it, and leaves the files it made to the database's owner.
    assert_eq!(reported(&theirs), Ok(BASE));
    use std::os::unix::fs::MetadataExt;
    let shm = std::fs::metadata(format!("{}-shm", theirs.display())).unwrap();
    assert_eq!(shm.uid(), nobody);
}
