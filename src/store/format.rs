//! The file format `export` writes and `import` reads, which both commands
//! read from here (neither borrows from the other): the two formats, the
//! `kind` of a line, the CSV columns, and the version line that makes a file
//! an export, whose rows `import` takes back as stored records
//! (`ingest::generic::Rules::Stored`), rather than a history of events
//! checked by the API's rules.
//!
//! - NDJSON: the first line is `{"kind":"export","format":2,"exporter":"…"}`.
//! - CSV: the first line, before the header row, is
//!   `# bug-escape-exporter export format 2`.
//!
//! Format 1 is the format before versions were written (no first line): such
//! a file is read as a history. A format newer than [`FORMAT`] is refused by
//! name: its rows may mean something this version cannot store.

use std::path::Path;

use serde_json::Value;

/// The two formats `import` reads and `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Ndjson,
    /// A header row naming the fields, then one row per event.
    Csv,
}

impl Format {
    /// The format a file's name says: `.ndjson`/`.jsonl` or `.csv`.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The value of the `kind` field of a release-time line (defect lines have
/// none, or `defect`).
pub const KIND_RELEASE: &str = "release";
/// The value of `kind` for a defect line.
pub const KIND_DEFECT: &str = "defect";
/// The field naming the kind of product namespace a vendor wrote (`github`…);
/// absent for the generic API's products.
pub const PRODUCT_KIND: &str = "product_kind";

/// Every CSV column `import` knows, in the order `export` writes them: the
/// line's `kind`, the generic API's event fields (`ingest::generic`'s
/// `EVENT_FIELDS`, with [`PRODUCT_KIND`] after `product`), and a release
/// time's `released_at`.
pub const CSV_COLUMNS: &[&str] = &[
    "kind",
    "id",
    "source",
    "product",
    PRODUCT_KIND,
    "stage",
    "release",
    "detected_by",
    "cause",
    "severity",
    "team",
    "status",
    "deleted",
    "found_at",
    "updated_at",
    "links",
    "released_at",
];

/// The export format this version writes and reads.
pub const FORMAT: u64 = 2;

/// The `kind` of an NDJSON export's first line.
pub const KIND_EXPORT: &str = "export";

/// What starts a CSV export's first line; the version follows.
pub const CSV_PREFIX: &str = "# bug-escape-exporter export format ";

/// The NDJSON first line (without its `\n`).
pub fn ndjson_line() -> String {
    serde_json::json!({
        "kind": KIND_EXPORT,
        "format": FORMAT,
        "exporter": format!("bug-escape-exporter {}", env!("CARGO_PKG_VERSION")),
    })
    .to_string()
}

/// The CSV first line (without its line end).
pub fn csv_line() -> String {
    format!("{CSV_PREFIX}{FORMAT}")
}

/// Whether an NDJSON file's first line says it is an export: `Ok(true)` for
/// this format, `Ok(false)` for any other line (an event), `Err` for a
/// version line this version cannot read.
pub fn ndjson_export(line: &[u8]) -> Result<bool, String> {
    // Cheap first: an event line never names the export kind.
    if memchr::memmem::find(line, KIND_EXPORT.as_bytes()).is_none() {
        return Ok(false);
    }
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(line) else {
        return Ok(false);
    };
    if o.get("kind").and_then(Value::as_str) != Some(KIND_EXPORT) {
        return Ok(false);
    }
    if let Some(k) = o
        .keys()
        .find(|k| !["kind", "format", "exporter"].contains(&k.as_str()))
    {
        return Err(format!(
            "the export's first line has an unknown field `{k}`; known fields: kind, format, \
             exporter"
        ));
    }
    match o.get("format") {
        Some(Value::Number(n)) => version(n.as_u64(), &n.to_string()),
        other => Err(format!(
            "the export's first line needs `format` (a whole number), not {}",
            other.map_or("nothing".to_owned(), Value::to_string)
        )),
    }
}

/// Whether a CSV file's first line says it is an export: `Ok(true)` for this
/// format, `Ok(false)` for a line that is not a comment (the header row),
/// `Err` for any other comment line.
pub fn csv_export(line: &[u8]) -> Result<bool, String> {
    if line.first() != Some(&b'#') {
        return Ok(false);
    }
    let text = String::from_utf8_lossy(line);
    // A spreadsheet that saved the file pads the line with empty cells.
    let text = text.trim_end_matches([',', ' ', '\r', '\t']);
    match text.strip_prefix(CSV_PREFIX) {
        Some(v) => version(v.parse().ok(), v),
        None => Err(format!(
            "a first line starting with `#` must be an export's `{CSV_PREFIX}<version>`, not \
             `{text}`"
        )),
    }
}

fn version(v: Option<u64>, shown: &str) -> Result<bool, String> {
    match v {
        Some(FORMAT) => Ok(true),
        Some(v) if v > FORMAT => Err(format!(
            "export format {v} is newer than this exporter's {FORMAT}; import it with the \
             version of bug-escape-exporter that wrote it, or a newer one"
        )),
        _ => Err(format!(
            "`{shown}` is not an export format this exporter reads (it reads format {FORMAT}; \
             an export without a first line is read as a history of events)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_is_read_back_and_newer_ones_refused() {
        assert_eq!(ndjson_export(ndjson_line().as_bytes()), Ok(true));
        assert_eq!(csv_export(csv_line().as_bytes()), Ok(true));
        assert_eq!(
            csv_export(b"# bug-escape-exporter export format 2\r"),
            Ok(true)
        );
        // A spreadsheet's padding.
        let padded = b"# bug-escape-exporter export format 2,,,";
        assert_eq!(csv_export(padded), Ok(true));
        assert_eq!(ndjson_export(br#"{"id":"export","stage":"qa"}"#), Ok(false));
        assert_eq!(csv_export(b"kind,id"), Ok(false));
        let newer = ndjson_export(br#"{"kind":"export","format":3}"#).expect_err("newer");
        assert!(newer.starts_with("export format 3 is newer than this exporter's 2"));
        let newer = csv_export(b"# bug-escape-exporter export format 3").expect_err("newer");
        assert!(newer.starts_with("export format 3 is newer than this exporter's 2"));
        assert!(ndjson_export(br#"{"kind":"export","format":"2"}"#).is_err());
        assert!(ndjson_export(br#"{"kind":"export","format":1}"#).is_err());
        assert!(ndjson_export(br#"{"kind":"export","format":2,"x":1}"#).is_err());
        assert!(csv_export(b"# a comment").is_err());
    }
}
