//! The fixture copies under `tests/fixtures/` are the published payloads byte
//! for byte, and none is missing or extra: `tests/fixtures/SHA256SUMS` holds
//! the SHA-256 of each original as taken (provenance in the README beside
//! it), so an edited, lost or unlisted copy fails here in any clone.

use sha2::{Digest, Sha256};

use crate::helpers::{fixture, fixture_names};

const VENDORS: [&str; 4] = ["github", "gitlab", "jira", "sentry"];

/// `SHA256SUMS` as (path, hex digest), in the order written.
fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/SHA256SUMS"
    ))
    .expect("tests/fixtures/SHA256SUMS");
    text.lines()
        .map(|l| {
            let (sum, path) = l.split_once("  ").expect("`<sha256>  <path>` per line");
            (path.to_owned(), sum.to_owned())
        })
        .collect()
}

#[test]
fn the_copies_match_the_published_payloads() {
    let listed = manifest();
    for vendor in VENDORS {
        let mut want: Vec<String> = listed
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&format!("{vendor}/")).map(str::to_owned))
            .collect();
        want.sort();
        assert_eq!(
            fixture_names(vendor),
            want,
            "{vendor}: the copies differ in files from SHA256SUMS"
        );
    }
    for (path, sum) in &listed {
        let got = hex::encode(Sha256::digest(fixture(path)));
        assert_eq!(&got, sum, "{path} differs from the payload as published");
    }
}
