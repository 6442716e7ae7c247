//! The `report` sub-command: loads the aggregates from the database read-only
//! (as `serve` loads them at start) and prints [`metrics::report`] as an
//! aligned table, JSON or CSV.
//!
//! [`metrics::report`]: crate::metrics::report

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::complain;

use crate::cli::ReportFormat;
use crate::config::Config;
use crate::metrics::collector::select;
use crate::metrics::report::{Band, ProductRow, ReleaseRow, Report, build};

/// `report`: the escape-rate report of a database, read-only.
pub fn run(
    file: Option<&Path>,
    db: Option<PathBuf>,
    product: Option<&str>,
    format: ReportFormat,
) -> ExitCode {
    let config = match super::load(file, &super::db_only(db)) {
        Ok(c) => c,
        Err(e) => {
            complain(&e);
            return ExitCode::FAILURE;
        }
    };
    let built = match load(&config, product) {
        Ok(r) => r,
        Err(e) => {
            complain(&format!("{e:#}"));
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let colour = colour_wanted(
        stdout.is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let mut out = stdout.lock();
    match write(&mut out, &built, format, colour).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`): a quiet end, as `cat`'s.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => super::end_at_closed_pipe(),
        Err(e) => {
            complain(&format!("cannot write the report: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Builds the report of `config.db` (only `product` when given).
pub fn load(config: &Config, product: Option<&str>) -> anyhow::Result<Report> {
    let (aggregates, keyed_alike) = crate::store::read::aggregates(config)?;
    if !keyed_alike {
        tracing::warn!(target: "bug_escape_exporter::report",
            "the store was keyed with other product mappings or release rules than this \
             configuration: `serve` would re-key it at start; these numbers follow the stored keys"
        );
    }
    let report = build(config, &select(config, &aggregates), product);
    if let Some(p) = product
        && report.products.is_empty()
    {
        let all = build(config, &select(config, &aggregates), None);
        let names: Vec<&str> = all.products.iter().map(|p| p.product.as_str()).collect();
        anyhow::bail!(
            "product `{p}` is not exported; exported products: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    }
    Ok(report)
}

/// Whether to colour a table: stdout is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>).
pub fn colour_wanted(stdout_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Writes `report` in `format`.
pub fn write(
    out: &mut dyn Write,
    report: &Report,
    format: ReportFormat,
    colour: bool,
) -> std::io::Result<()> {
    match format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        ReportFormat::Csv => write!(out, "{}", csv(report)),
        ReportFormat::Table => write!(out, "{}", table(report, colour)),
    }
}

/// The CSV columns of a release row.
pub const CSV_HEADER: &str = "product,release,defects,escaped,escape_rate,lower,upper,band,\
small_sample,released_at,leakiest_stage,leakiest_stage_leak,leakiest_stage_owner";

/// The release rows as CSV (RFC 4180, CRLF line ends), with a header; empty
/// cells for nulls; names that a spreadsheet would take for a formula are
/// escaped. The `csv` crate quotes a cell only when it must (a comma, a
/// quote, a line end), as this report always did.
pub fn csv(report: &Report) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    // Writing to memory fails only when out of it.
    let write = |out: &mut csv::Writer<Vec<u8>>, cells: &[String]| {
        out.write_record(cells)
            .expect("a CSV record written to memory");
    };
    let header: Vec<String> = CSV_HEADER.split(',').map(str::to_owned).collect();
    write(&mut out, &header);
    for r in &report.releases {
        let cells = [
            text_cell(&r.product),
            text_cell(&r.release),
            r.defects.to_string(),
            r.escaped.to_string(),
            num(r.escape_rate),
            num(r.lower),
            num(r.upper),
            r.band.map(|b| b.as_str().to_owned()).unwrap_or_default(),
            r.small_sample.to_string(),
            r.released_at.clone().unwrap_or_default(),
            text_cell(r.leakiest_stage.as_deref().unwrap_or_default()),
            num(r.leakiest_stage_leak),
            text_cell(r.leakiest_stage_owner.as_deref().unwrap_or_default()),
        ];
        write(&mut out, &cells);
    }
    let bytes = out.into_inner().expect("a CSV flushed to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells")
}

/// A name as a spreadsheet shows it, never as a formula: a name starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return (which a spreadsheet
/// would evaluate, `=HYPERLINK(…)` in a product name) gets a leading `'`.
fn text_cell(v: &str) -> String {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    }
}

/// `0.1234` as `12.3%`; `-` when undefined.
fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn interval(lo: Option<f64>, hi: Option<f64>) -> String {
    match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{:.1}–{:.1}%", lo * 100.0, hi * 100.0),
        _ => "-".to_owned(),
    }
}

/// The ANSI colour of a band.
fn colour_of(band: Band) -> &'static str {
    match band {
        Band::Strong => "\x1b[32m",
        Band::Healthy => "\x1b[36m",
        Band::Attention => "\x1b[33m",
        Band::Leaking => "\x1b[31m",
    }
}

/// Control characters of user-supplied names shown as `?`, so a name cannot
/// move the cursor or colour the terminal.
fn printable(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Rows aligned in columns (by characters); a row's band colours it whole.
fn columns(head: &[&str], rows: &[(Vec<String>, Option<Band>)], colour: bool) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = head.iter().map(|h| width(h)).collect();
    for (cells, _) in rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(width(c));
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - width(c))))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&head);
    out.push('\n');
    for (cells, band) in rows {
        let text = line(cells);
        match band {
            Some(b) if colour => out.push_str(&format!("{}{text}\x1b[0m", colour_of(*b))),
            _ => out.push_str(&text),
        }
        out.push('\n');
    }
    out
}

/// The report as two aligned tables: releases, then products.
pub fn table(report: &Report, colour: bool) -> String {
    let releases: Vec<_> = report.releases.iter().map(release_cells).collect();
    let products: Vec<_> = report.products.iter().map(product_cells).collect();
    let mut out = columns(
        &[
            "PRODUCT",
            "RELEASE",
            "T",
            "P",
            "RATE",
            "95% INTERVAL",
            "BAND",
            "RELEASED",
            "LEAKIEST STAGE (OWNER)",
        ],
        &releases,
        colour,
    );
    out.push('\n');
    out.push_str(&columns(
        &[
            "PRODUCT",
            "RECENT T",
            "RECENT P",
            "RECENT RATE",
            "95% INTERVAL",
            "BAND",
            "UNATTRIBUTED",
            "UNCLASSIFIED",
            "LEFT OUT",
        ],
        &products,
        colour,
    ));
    out
}

/// A release's row of the table, and the band that colours it.
fn release_cells(r: &ReleaseRow) -> (Vec<String>, Option<Band>) {
    let leakiest = match (&r.leakiest_stage, &r.leakiest_stage_owner) {
        (Some(s), Some(o)) => format!(
            "{} {} ({})",
            printable(s),
            pct(r.leakiest_stage_leak),
            printable(o)
        ),
        _ => "-".to_owned(),
    };
    let band = r.band.map_or("-", Band::as_str);
    (
        vec![
            printable(&r.product),
            printable(&r.release),
            r.defects.to_string(),
            r.escaped.to_string(),
            pct(r.escape_rate),
            interval(r.lower, r.upper),
            if r.small_sample && r.band.is_some() {
                format!("{band} (small sample)")
            } else {
                band.to_owned()
            },
            r.released_at
                .as_deref()
                .map_or("-".to_owned(), |t| t.chars().take(10).collect()),
            leakiest,
        ],
        r.band,
    )
}

/// A product's row of the table, and the band that colours it.
fn product_cells(p: &ProductRow) -> (Vec<String>, Option<Band>) {
    (
        vec![
            printable(&p.product),
            p.recent_defects.map_or("-".into(), |t| t.to_string()),
            p.recent_escaped.map_or("-".into(), |e| e.to_string()),
            pct(p.recent_rate),
            interval(p.lower, p.upper),
            p.band.map_or("-", Band::as_str).to_owned(),
            p.unattributed.to_string(),
            (p.unknown_stage + p.no_stage).to_string(),
            p.releases_left_out.to_string(),
        ],
        p.band,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::report::{ProductRow, ReleaseRow, Thresholds};

    fn report() -> Report {
        Report {
            releases: vec![ReleaseRow {
                product: "pay,\"x\"".into(),
                release: "2.0".into(),
                defects: 10,
                escaped: 3,
                escape_rate: Some(0.3),
                lower: Some(0.1),
                upper: Some(0.6),
                band: Some(Band::Leaking),
                small_sample: false,
                band_settled: false,
                alert_band: None,
                released_at: Some("2026-01-02T03:04:05Z".into()),
                leakiest_stage: Some("qa".into()),
                leakiest_stage_leak: Some(0.5),
                leakiest_stage_owner: Some("qa-team".into()),
                failing_stage: Some("qa".into()),
                failing_stage_leak: Some(0.5),
                failing_stage_expected: Some(0.2),
                failing_stage_basis: Some("target"),
                failing_stage_owner: Some("qa-team".into()),
                stages: vec![],
            }],
            products: vec![ProductRow {
                product: "pay\u{1b}[2J".into(),
                recent_defects: None,
                recent_escaped: None,
                recent_rate: None,
                lower: None,
                upper: None,
                band: None,
                small_sample: true,
                band_settled: false,
                alert_band: None,
                thresholds: Thresholds {
                    strong: 0.05,
                    healthy: 0.1,
                    attention: 0.2,
                },
                min_defects: 10,
                unattributed: 0,
                unknown_stage: 0,
                no_stage: 0,
                releases_left_out: 0,
            }],
        }
    }

    #[test]
    fn csv_quotes_names_and_leaves_nulls_empty() {
        let text = csv(&report());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "\"pay,\"\"x\"\"\",2.0,10,3,0.3,0.1,0.6,leaking,false,2026-01-02T03:04:05Z,qa,0.5,qa-team"
        );
    }

    /// The `csv` crate quotes what the hand-written quoting did, and no more:
    /// spaces, tabs, `#` and non-ASCII stay bare, a line end is quoted.
    #[test]
    fn csv_quotes_only_commas_quotes_and_line_ends() {
        let mut r = report();
        r.releases[0].product = "p".into();
        for (release, cell) in [
            (" a b\t#é", " a b\t#é"),
            ("x\ny", "\"x\ny\""),
            ("x\ry", "\"x\ry\""),
            ("", ""),
        ] {
            r.releases[0].release = release.into();
            let text = csv(&r);
            let row = text.strip_prefix(CSV_HEADER).unwrap();
            assert!(row.starts_with(&format!("\r\np,{cell},10,")), "{row:?}");
        }
    }

    #[test]
    fn csv_names_never_read_as_formulas() {
        let mut r = report();
        r.releases[0].product = "=HYPERLINK(\"http://x\",\"y\")".into();
        r.releases[0].release = "+1".into();
        r.releases[0].leakiest_stage_owner = Some("@team".into());
        let text = csv(&r);
        let line = text.split("\r\n").nth(1).unwrap();
        assert!(
            line.starts_with("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",'+1,"),
            "{line}"
        );
        assert!(line.ends_with(",'@team"), "{line}");
        // Numbers and ordinary names are left as they are.
        assert_eq!(text_cell("payments"), "payments");
        assert_eq!(text_cell("2.4.0"), "2.4.0");
        assert_eq!(text_cell("-rc1"), "'-rc1");
    }

    #[test]
    fn the_table_is_plain_unless_coloured_and_never_passes_control_characters() {
        let plain = table(&report(), false);
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(
            plain.contains("30.0%") && plain.contains("10.0–60.0%"),
            "{plain}"
        );
        assert!(plain.contains("qa 50.0% (qa-team)"), "{plain}");
        let coloured = table(&report(), true);
        assert!(coloured.contains("\x1b[31m"), "{coloured:?}");
        // The product's escape sequence is neutralised even when coloured.
        assert!(!coloured.contains("\u{1b}[2J"), "{coloured:?}");
        // Columns line up: the header's second column starts where the row's does.
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines[0].find("RELEASE"), lines[1].find("2.0"));
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour_wanted(true, None));
        assert!(colour_wanted(true, Some(OsStr::new(""))));
        assert!(!colour_wanted(true, Some(OsStr::new("1"))));
        assert!(!colour_wanted(false, None));
    }
}
