//! Skipping a suite whose external tool is missing, so that a plain
//! `cargo test` says so. libtest captures what the print macros write
//! (`eprintln!` included) and shows it only for failing tests; writing to the
//! process's stderr handle bypasses that capture, so the note reaches the
//! terminal whatever `--nocapture` says.
//!
//! Included by the suites that need it (`#[path = "support/skip.rs"] mod skip;`);
//! each uses only some of it.

#![allow(dead_code)]

use std::io::Write;

/// Whether `BUG_ESCAPE_REQUIRE_E2E=1` turns every skip into a failure (CI).
pub fn required() -> bool {
    std::env::var("BUG_ESCAPE_REQUIRE_E2E").as_deref() == Ok("1")
}

/// Writes `line` to stderr, past libtest's output capture.
pub fn note(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

/// Skips `suite` because `why`, naming what to install; with
/// `BUG_ESCAPE_REQUIRE_E2E=1` panics instead (the test fails).
pub fn skip(suite: &str, why: &str, install: &str) {
    assert!(
        !required(),
        "BUG_ESCAPE_REQUIRE_E2E=1 but {suite} cannot run: {why} ({install})"
    );
    note(&format!(
        "\nSKIPPED {suite}: {why} ({install}); BUG_ESCAPE_REQUIRE_E2E=1 makes this a failure\n"
    ));
}

/// The program `var` names when set (a path, or a name looked up on PATH),
/// else the first of `names` found on PATH.
pub fn tool(var: &str, names: &[&str]) -> Option<std::path::PathBuf> {
    let candidates: Vec<String> = match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => vec![v],
        _ => names.iter().map(|n| (*n).to_owned()).collect(),
    };
    candidates.iter().find_map(|c| {
        let p = std::path::Path::new(c);
        if p.components().count() > 1 {
            return p.is_file().then(|| p.to_path_buf());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(c))
            .find(|p| p.is_file())
    })
}
