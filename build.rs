//! Build metadata for `--version` and `bug_escape_build_info`: the git
//! revision (`BUG_ESCAPE_REVISION` when set) and branch (`unknown` when built without git, e.g. from a
//! tarball), the build date (`SOURCE_DATE_EPOCH` when set, for reproducible
//! builds) and the compiler's version.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BUG_ESCAPE_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (!s.is_empty()).then_some(s)
    };
    // Rebuild when HEAD moves: HEAD itself and the ref it points to (paths
    // from git, since a worktree's `.git` is a file). Absent without git.
    for path in ["HEAD", "refs/heads"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            let p = PathBuf::from(p);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--git-path", &name]) {
            if PathBuf::from(&p).exists() {
                println!("cargo:rerun-if-changed={p}");
            }
        }
    }
    if let Some(p) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        if PathBuf::from(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    // CI and image builds (no `.git` in the context) pass the revision in.
    let revision = std::env::var("BUG_ESCAPE_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let branch = git(&["rev-parse", "--abbrev-ref", "HEAD"])
        .filter(|b| b != "HEAD")
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    println!("cargo:rustc-env=BUG_ESCAPE_GIT_REVISION={revision}");
    println!("cargo:rustc-env=BUG_ESCAPE_GIT_BRANCH={branch}");
    println!("cargo:rustc-env=BUG_ESCAPE_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=BUG_ESCAPE_BUILD_DATE={}", rfc3339(epoch));
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (days-from-civil inverse, H. Hinnant).
fn rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
