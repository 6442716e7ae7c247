//! What `build.rs` recorded about this build, for `--version` and
//! `bug_escape_build_info`.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision: `BUG_ESCAPE_REVISION` at build time when set (CI and
/// image builds without a `.git`), else what `git` said, else `unknown`.
pub const REVISION: &str = env!("BUG_ESCAPE_GIT_REVISION");

/// The git branch, `unknown` without git or on a detached HEAD.
pub const BRANCH: &str = env!("BUG_ESCAPE_GIT_BRANCH");

/// UTC build time (`SOURCE_DATE_EPOCH` when set).
pub const BUILD_DATE: &str = env!("BUG_ESCAPE_BUILD_DATE");

/// `rustc --version` of the compiler that built the binary.
pub const RUSTC_VERSION: &str = env!("BUG_ESCAPE_RUSTC_VERSION");

/// What `--version` prints after the program name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\n  revision:   ",
    env!("BUG_ESCAPE_GIT_REVISION"),
    "\n  branch:     ",
    env!("BUG_ESCAPE_GIT_BRANCH"),
    "\n  build date: ",
    env!("BUG_ESCAPE_BUILD_DATE"),
    "\n  rustc:      ",
    env!("BUG_ESCAPE_RUSTC_VERSION"),
);
