//! `report --escapes`: the escapes of one release, read from the database
//! read-only in one snapshot, as a table, JSON (what
//! `GET /api/v1/releases/{product}/{release}/escapes` answers) or CSV (a row
//! per record, the escape's values repeated).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{columns, printable, text_cell};
use crate::cli::ReportFormat;
use crate::store::read::{Escape, Escapes};

/// The release whose escapes are listed, and which of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub product: String,
    pub release: String,
    pub offset: usize,
    pub limit: usize,
}

/// `report --product P --release R --escapes`.
pub fn run(
    file: Option<&Path>,
    db: Option<PathBuf>,
    wanted: Wanted,
    format: ReportFormat,
) -> ExitCode {
    let config = match super::super::load(file, &super::super::db_only(db)) {
        Ok(c) => c,
        Err(e) => {
            super::complain(&e);
            return ExitCode::FAILURE;
        }
    };
    let found = crate::store::read::escapes_of(
        &config.db,
        &config,
        &[(wanted.product.clone(), wanted.release.clone())],
        wanted.offset,
        wanted.limit,
    );
    let found = match found.map(|f| f.into_iter().next().flatten()) {
        Ok(Some(f)) => f,
        Ok(None) => {
            super::complain(&crate::store::read::no_release(
                &wanted.product,
                &wanted.release,
            ));
            return ExitCode::FAILURE;
        }
        Err(e) => {
            super::complain(&format!("{e:#}"));
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match write(&mut out, &found, format).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => super::super::end_at_closed_pipe(),
        Err(e) => {
            super::complain(&format!("cannot write the report: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes `found` in `format`.
pub fn write(out: &mut dyn Write, found: &Escapes, format: ReportFormat) -> std::io::Result<()> {
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, found)?;
            writeln!(out)
        }
        ReportFormat::Csv => write!(out, "{}", csv(found)),
        ReportFormat::Table => write!(out, "{}", table(found)),
    }
}

/// The CSV columns: one row per record, `escape` numbering the escapes
/// (from 1, across pages), so a group's records share it.
pub const CSV_HEADER: &str =
    "product,release,escape,source,id,stage,found_at,detected_by,cause,severity,team";

/// The escapes as CSV (RFC 4180, CRLF line ends), a row per record.
pub fn csv(found: &Escapes) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let mut write = |cells: &[String]| {
        out.write_record(cells)
            .expect("a CSV record written to memory");
    };
    write(&CSV_HEADER.split(',').map(str::to_owned).collect::<Vec<_>>());
    let opt = |v: &Option<String>| text_cell(v.as_deref().unwrap_or_default());
    for (i, e) in found.escapes.iter().enumerate() {
        for r in &e.records {
            write(&[
                text_cell(&found.product),
                text_cell(&found.release),
                (found.offset + i + 1).to_string(),
                text_cell(&r.source),
                text_cell(&r.id),
                opt(&e.stage),
                e.found_at.clone().unwrap_or_default(),
                opt(&e.detected_by),
                opt(&e.cause),
                opt(&e.severity),
                opt(&e.team),
            ]);
        }
    }
    let bytes = out.into_inner().expect("a CSV flushed to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells")
}

/// An escape's records, `source id` each, joined by ` = `.
pub fn records_text(e: &Escape) -> String {
    e.records
        .iter()
        .map(|r| format!("{} {}", printable(&r.source), printable(&r.id)))
        .collect::<Vec<_>>()
        .join(" = ")
}

/// The escapes as a headed, aligned table, and a line saying how many are
/// not shown and how to see them.
pub fn table(found: &Escapes) -> String {
    let (product, release) = (printable(&found.product), printable(&found.release));
    let mut out = format!(
        "Escapes of {product} {release}: {} (each counted once; the records of a link group \
         joined by =)\n",
        found.escaped
    );
    if found.escapes.is_empty() {
        out.push_str(if found.escaped == 0 {
            "none\n"
        } else {
            "none on this page\n"
        });
        return out;
    }
    let dash = |v: &Option<String>| v.as_deref().map_or("-".to_owned(), printable);
    let rows: Vec<(Vec<String>, _)> = found
        .escapes
        .iter()
        .map(|e| {
            let found_at = e
                .found_at
                .as_deref()
                .map_or("-".to_owned(), |t| t.chars().take(10).collect());
            (
                vec![
                    found_at,
                    dash(&e.stage),
                    dash(&e.detected_by),
                    dash(&e.cause),
                    dash(&e.severity),
                    dash(&e.team),
                    records_text(e),
                ],
                None,
            )
        })
        .collect();
    out.push_str(&columns(
        &[
            "FOUND",
            "STAGE",
            "DETECTED BY",
            "CAUSE",
            "SEVERITY",
            "TEAM",
            "RECORDS",
        ],
        &rows,
        false,
    ));
    let more = found.more();
    if let Some(next) = found.next_offset {
        out.push_str(&format!(
            "{more} more: report --product {product} --release {release} --escapes --offset {next}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::read::LinkedRecord;

    fn found() -> Escapes {
        let rec = |s: &str, i: &str| LinkedRecord {
            source: s.into(),
            id: i.into(),
        };
        Escapes {
            product: "shop".into(),
            release: "2.0".into(),
            escaped: 3,
            offset: 0,
            limit: 2,
            next_offset: Some(2),
            escapes: vec![
                Escape {
                    records: vec![rec("sentry", "4711"), rec("jira", "=10042")],
                    stage: Some("production".into()),
                    found_at: Some("2026-01-02T03:04:05Z".into()),
                    detected_by: Some("monitoring".into()),
                    cause: None,
                    severity: Some("high".into()),
                    team: None,
                },
                Escape {
                    records: vec![rec("tickets", "T\u{1b}[2J")],
                    stage: Some("production".into()),
                    found_at: None,
                    detected_by: None,
                    cause: Some("coverage".into()),
                    severity: None,
                    team: Some("pay".into()),
                },
            ],
        }
    }

    #[test]
    fn the_table_joins_a_groups_records_and_says_what_is_not_shown() {
        let text = table(&found());
        assert!(
            text.starts_with("Escapes of shop 2.0: 3 (each counted once"),
            "{text}"
        );
        assert!(text.contains("sentry 4711 = jira =10042"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.ends_with("1 more: report --product shop --release 2.0 --escapes --offset 2\n"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1].find("STAGE"), lines[2].find("production"));
    }

    #[test]
    fn csv_has_a_row_per_record_numbered_by_escape() {
        let text = csv(&found());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "shop,2.0,1,sentry,4711,production,2026-01-02T03:04:05Z,monitoring,,high,"
        );
        assert_eq!(
            lines[2],
            "shop,2.0,1,jira,'=10042,production,2026-01-02T03:04:05Z,monitoring,,high,"
        );
        assert!(lines[3].starts_with("shop,2.0,2,tickets,"), "{}", lines[3]);
        assert_eq!(lines.len(), 5, "{text:?}");
    }
}
