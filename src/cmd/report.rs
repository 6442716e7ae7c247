//! The `report` sub-command: loads the aggregates from the database read-only
//! (as `serve` loads them at start) and prints [`metrics::report`] as an
//! aligned table, JSON or CSV.
//!
//! [`metrics::report`]: crate::metrics::report

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub mod escapes;

use super::complain;

use crate::cli::ReportFormat;
use crate::config::Config;
use crate::metrics::collector::select;
use crate::metrics::report::{Band, ProductRow, ReleaseRow, Report, build, build_stored};

/// `report` with its arguments: the escapes of one release with
/// `--escapes`, else the report ([`run`]).
pub fn command(command: crate::cli::Command) -> ExitCode {
    let crate::cli::Command::Report {
        db,
        config,
        product,
        format,
        releases,
        escapes,
        release,
        limit,
        offset,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    match (escapes, release, product) {
        (true, Some(release), Some(product)) => escapes::run(
            config.as_deref(),
            db,
            escapes::Wanted {
                product,
                release,
                offset,
                limit,
            },
            format,
        ),
        (_, _, product) => run(
            config.as_deref(),
            db,
            product.as_deref(),
            format,
            releases.map(|r| r.0),
        ),
    }
}

/// `report`: the escape-rate report of a database, read-only; with
/// `releases` (`Some(None)`: all), the stored releases of each product.
pub fn run(
    file: Option<&Path>,
    db: Option<PathBuf>,
    product: Option<&str>,
    format: ReportFormat,
    releases: Option<Option<usize>>,
) -> ExitCode {
    let config = match super::load(file, &super::db_only(db)) {
        Ok(c) => c,
        Err(e) => {
            complain(&e);
            return ExitCode::FAILURE;
        }
    };
    let built = match load(&config, product, releases) {
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

/// Builds the report of `config.db` (only `product` when given); with
/// `releases`, each product's first that many stored releases (`Some(None)`:
/// all) in place of its exported ones.
pub fn load(
    config: &Config,
    product: Option<&str>,
    releases: Option<Option<usize>>,
) -> anyhow::Result<Report> {
    let wanted = |agg: &crate::aggregate::Aggregates| -> Vec<String> {
        if releases.is_none() {
            return Vec::new();
        }
        let sel = select(config, agg);
        sel.products()
            .iter()
            .map(|p| p.name().to_owned())
            .filter(|p| product.is_none_or(|want| want == p))
            .collect()
    };
    let (aggregates, keyed_alike, stored) =
        crate::store::read::aggregates_and_history(config, wanted, releases.flatten())?;
    if !keyed_alike {
        tracing::warn!(target: "bug_escape_exporter::report",
            "the store was keyed with other product mappings or release rules than this \
             configuration: `serve` would re-key it at start; these numbers follow the stored keys"
        );
    }
    let sel = select(config, &aggregates);
    let report = match releases {
        None => build(config, &sel, product),
        Some(_) => build_stored(config, &sel, product, &stored),
    };
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
band_settled,alert_band,small_sample,released_at,failing_stage,failing_stage_leak,\
failing_stage_expected,failing_stage_basis,failing_stage_owner";

/// The release rows as CSV (RFC 4180, CRLF line ends), with a header; empty
/// cells for nulls; names that a spreadsheet would take for a formula are
/// escaped. The `csv` crate quotes a cell only when it must (a comma, a
/// quote, a line end), as this report always did.
pub fn csv(report: &Report) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    // Writing to memory fails only when out of it.
    let write = |out: &mut csv::Writer<Vec<u8>>, cells: &[String]| {
        out.write_record(cells)
            .expect("a CSV record written to memory");
    };
    let header: Vec<String> = CSV_HEADER.split(',').map(str::to_owned).collect();
    write(&mut out, &header);
    for r in &report.releases {
        write(&mut out, &csv_cells(r));
    }
    let bytes = out.into_inner().expect("a CSV flushed to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells")
}

/// The cells of a release row, in [`CSV_HEADER`] order.
fn csv_cells(r: &ReleaseRow) -> Vec<String> {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let band = |b: Option<Band>| b.map(|b| b.as_str().to_owned()).unwrap_or_default();
    vec![
        text_cell(&r.product),
        text_cell(&r.release),
        r.defects.to_string(),
        r.escaped.to_string(),
        num(r.escape_rate),
        num(r.lower),
        num(r.upper),
        band(r.band),
        r.band_settled.to_string(),
        band(r.alert_band),
        r.small_sample.to_string(),
        r.released_at.clone().unwrap_or_default(),
        text_cell(r.failing_stage.as_deref().unwrap_or_default()),
        num(r.failing_stage_leak),
        num(r.failing_stage_expected),
        r.failing_stage_basis.unwrap_or_default().to_owned(),
        text_cell(r.failing_stage_owner.as_deref().unwrap_or_default()),
    ]
}

/// A name as a spreadsheet shows it, never as a formula: a name starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return (which a spreadsheet
/// would evaluate, `=HYPERLINK(…)` in a product name) gets a leading `'`.
pub(crate) fn text_cell(v: &str) -> String {
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
pub(crate) fn printable(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Rows aligned in columns (by characters); a row's band colours it whole.
pub(crate) fn columns(head: &[&str], rows: &[(Vec<String>, Option<Band>)], colour: bool) -> String {
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

/// The report as two aligned tables, releases then products, followed by
/// a legend and, per product, how many releases were left out.
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
            "ALERT",
            "RELEASED",
            "FAILING STAGE (OWNER)",
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
            "ALERT",
            "UNATTRIBUTED",
            "UNCLASSIFIED",
            "LEFT OUT",
        ],
        &products,
        colour,
    ));
    out.push('\n');
    out.push_str(LEGEND);
    for p in &report.products {
        if p.releases_left_out > 0 {
            let name = printable(&p.product);
            let n = p.releases_left_out;
            let s = if n == 1 { "" } else { "s" };
            out.push_str(&format!(
                "{n} older release{s} of {name} not shown: report --product {name} --releases all\n"
            ));
        }
    }
    out
}

/// What the BAND, ALERT and FAILING STAGE columns mean (docs/semantics.md).
const LEGEND: &str = "\
BAND: settled when the whole 95% interval lies in it; `?`: uncertain, the band of the rate alone; \
(small sample): fewer than min_defects defects.
ALERT: the band the band alerts act on (the interval's lower bound beyond healthy or attention, \
with at least min_defects defects); Prometheus alerts on it only for releases in the mixin's \
window (by default shipped in the last 90 days, or the newest 3 when the release time is unknown).
FAILING STAGE: the tracked stage furthest above its leak target, or its baseline (the median \
leak of earlier releases).
";

/// A band as the table shows it: as it is when settled, with `?` when
/// uncertain, and marked when the sample is small.
fn band_cell(band: Option<Band>, settled: bool, small: bool) -> String {
    let Some(b) = band else {
        return "-".to_owned();
    };
    let mut cell = b.as_str().to_owned();
    if !settled {
        cell.push('?');
    }
    if small {
        cell.push_str(" (small sample)");
    }
    cell
}

/// A release's failing stage: its leak, what was expected and why, and its
/// owner.
fn failing_cell(r: &ReleaseRow) -> String {
    match (&r.failing_stage, &r.failing_stage_owner) {
        (Some(s), Some(o)) => format!(
            "{} {} > {} {} ({})",
            printable(s),
            pct(r.failing_stage_leak),
            pct(r.failing_stage_expected),
            r.failing_stage_basis.unwrap_or_default(),
            printable(o)
        ),
        _ => "-".to_owned(),
    }
}

/// A release's row of the table, and the band that colours it.
fn release_cells(r: &ReleaseRow) -> (Vec<String>, Option<Band>) {
    (
        vec![
            printable(&r.product),
            printable(&r.release),
            r.defects.to_string(),
            r.escaped.to_string(),
            pct(r.escape_rate),
            interval(r.lower, r.upper),
            band_cell(r.band, r.band_settled, r.small_sample),
            r.alert_band.map_or("-", Band::as_str).to_owned(),
            r.released_at
                .as_deref()
                .map_or("-".to_owned(), |t| t.chars().take(10).collect()),
            failing_cell(r),
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
            band_cell(p.band, p.band_settled, p.small_sample),
            p.alert_band.map_or("-", Band::as_str).to_owned(),
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
    use crate::metrics::report::{ProductRow, ReleaseRow};

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
            products: vec![ProductRow::without_data("pay\u{1b}[2J")],
        }
    }

    #[test]
    fn csv_quotes_names_and_leaves_nulls_empty() {
        let text = csv(&report());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "\"pay,\"\"x\"\"\",2.0,10,3,0.3,0.1,0.6,leaking,false,,false,2026-01-02T03:04:05Z,qa,0.5,0.2,target,qa-team"
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
        r.releases[0].failing_stage_owner = Some("@team".into());
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
        assert!(
            plain.contains("qa 50.0% > 20.0% target (qa-team)"),
            "{plain}"
        );
        // Uncertain (interval across bands), and a small product sample.
        assert!(plain.contains("leaking?"), "{plain}");
        let coloured = table(&report(), true);
        assert!(coloured.contains("\x1b[31m"), "{coloured:?}");
        // The product's escape sequence is neutralised even when coloured.
        assert!(!coloured.contains("\u{1b}[2J"), "{coloured:?}");
        // Columns line up: the header's second column starts where the row's does.
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines[0].find("RELEASE"), lines[1].find("2.0"));
    }

    #[test]
    fn bands_are_settled_uncertain_or_small_and_left_out_releases_are_named() {
        assert_eq!(band_cell(Some(Band::Leaking), true, false), "leaking");
        assert_eq!(band_cell(Some(Band::Leaking), false, false), "leaking?");
        assert_eq!(
            band_cell(Some(Band::Attention), false, true),
            "attention? (small sample)"
        );
        assert_eq!(band_cell(None, false, true), "-");
        let mut r = report();
        r.products[0].product = "pay".into();
        r.products[0].releases_left_out = 10;
        let plain = table(&r, false);
        assert!(
            plain.contains(
                "\n10 older releases of pay not shown: report --product pay --releases all\n"
            ),
            "{plain}"
        );
        assert!(plain.contains("BAND: settled when"), "{plain}");
        r.products[0].releases_left_out = 0;
        assert!(!table(&r, false).contains("not shown"));
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
