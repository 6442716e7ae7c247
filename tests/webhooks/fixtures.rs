//! The fixture copies under `tests/fixtures/` are the shared fixtures, byte for
//! byte, and none is missing: so "every shared fixture is exercised" holds.

use crate::helpers::{fixture, fixture_names, shared_fixtures};

#[path = "../support/skip.rs"]
mod skip;

#[test]
fn the_copies_match_the_shared_fixtures() {
    let Some(shared) = shared_fixtures() else {
        assert!(
            std::env::var("CI").is_err(),
            "../shared/fixtures must be beside the repository in CI"
        );
        skip::note(
            "\nSKIPPED tests/webhooks fixtures::the_copies_match_the_shared_fixtures: \
             the shared fixtures (../shared/fixtures) are not beside the repository; \
             the copies under tests/fixtures/ are still exercised by every vendor test\n",
        );
        return;
    };
    for vendor in ["github", "gitlab", "jira", "sentry"] {
        let mut names: Vec<String> = std::fs::read_dir(shared.join(vendor))
            .expect("shared vendor dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            fixture_names(vendor),
            "{vendor}: the copies differ in files"
        );
        for name in names {
            let original = std::fs::read(shared.join(vendor).join(&name)).expect("shared fixture");
            assert!(
                original == fixture(&format!("{vendor}/{name}")),
                "{vendor}/{name} differs"
            );
        }
    }
}
