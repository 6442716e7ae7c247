//! The `import` sub-command: defect events (and release times) from NDJSON or
//! CSV files into the database, each line checked by the generic API's own
//! parser (`ingest::generic`) and applied by the store writer's own rules, so
//! the result is what `POST /api/v1/events` would give for the same events in
//! the same order.
//!
//! A pipeline of threads: one reads the files into chunks of lines, parsers
//! (one per core) check them, and this thread puts the parsed chunks back in
//! order and applies them in transactions of `--chunk-size` events. A rejected line
//! is reported on stderr (file, line, field, reason) and skipped; the good
//! lines around it are imported.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::config::Config;
use crate::ingest::FieldError;
use crate::ingest::flat::{Flat, Object, Scalar, Without};
use crate::ingest::generic::{self, EVENT_FIELDS, ReleaseMemo, Rules, WEBHOOK_SOURCES};
use crate::ingest::json::{JsonError, from_slice_unique};
use crate::model::item::Item;
use crate::model::time::{Millis, now_ms};
use crate::store::import::Importer;
use crate::store::lock::{ExclusiveOpenError, LockError};

mod csv_rows;
pub mod format;
pub mod lines;
#[cfg(test)]
mod restore_tests;

use lines::{Line, MAX_LINE_BYTES, read_line};

/// Lines a parser takes at once.
const CHUNK: usize = 2_048;

/// Exit status: every line imported.
pub const EXIT_OK: u8 = 0;
/// Exit status: some lines were rejected (the others were imported).
pub const EXIT_REJECTED: u8 = 1;
/// Exit status: usage or I/O error, or the database is in use: nothing more
/// could be imported (batches committed before it stay).
pub const EXIT_ERROR: u8 = 2;

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

/// Every CSV column `import` knows, in the order `export` writes them.
pub fn csv_columns() -> Vec<&'static str> {
    let mut cols = vec!["kind"];
    for f in EVENT_FIELDS {
        cols.push(f);
        if *f == "product" {
            cols.push(PRODUCT_KIND);
        }
    }
    cols.push("released_at");
    cols
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rows read: every non-blank line (a CSV row whose quoted field spans
    /// lines is one), the export's version line and the CSV header row not
    /// counted.
    pub lines: u64,
    /// Lines that changed stored state.
    pub imported: u64,
    /// Lines equal to the stored state.
    pub unchanged: u64,
    /// Lines older than the stored state, not applied.
    pub stale: u64,
    /// Lines that failed validation, not applied.
    pub rejected: u64,
}

impl Summary {
    fn line(&self, elapsed: Duration) -> String {
        let rate = self.lines as f64 / elapsed.as_secs_f64().max(1e-9);
        let mut s = format!(
            "imported {}, unchanged {}, stale {}, rejected {} ({} lines in {:.1}s, {:.0} lines/s)",
            self.imported,
            self.unchanged,
            self.stale,
            self.rejected,
            self.lines,
            elapsed.as_secs_f64(),
            rate
        );
        if self.imported == 0 && self.lines > self.rejected {
            s.push_str("; nothing changed: the database already held every valid line");
        }
        s
    }
}

/// One input: a file, or `-` for standard input.
struct Input {
    name: String,
    format: Format,
    reader: Box<dyn Read + Send>,
    /// Its size, when known (for the progress bar).
    len: Option<u64>,
}

/// Runs `import`; returns the exit status. Prints the summary on stdout and
/// every rejected line on stderr.
pub fn run(mut config: Config, files: &[PathBuf], format: Option<Format>, chunk: usize) -> u8 {
    // A restore writes the vendors' namespaces back (`github`, …): the
    // operator holding the database file may, whatever the HTTP API allows.
    config.allow_vendor_sources = true;
    let inputs = match open_inputs(files, format) {
        Ok(i) => i,
        Err(e) => {
            complain(&e);
            return EXIT_ERROR;
        }
    };
    let mut importer = match Importer::open(&config) {
        Ok(i) => i,
        Err(ExclusiveOpenError::Locked(e @ LockError::Held { .. })) => {
            complain(&format!(
                "{e}: refusing to import while it runs. A running `serve` keeps its counts in \
                 memory and would not see the import. Either send the events to it \
                 (`POST /api/v1/events`, release times to `POST /api/v1/releases`), or stop \
                 it, import, and start it again"
            ));
            return EXIT_ERROR;
        }
        Err(e) => {
            complain(&e.to_string());
            return EXIT_ERROR;
        }
    };
    let started = Instant::now();
    let bar = progress_bar(&inputs);
    let result = pipeline(&config, inputs, &mut importer, chunk, bar.as_ref());
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (summary, failure) = match result {
        Ok(s) => (s, None),
        Err((s, e)) => (s, Some(e)),
    };
    let failure = match failure {
        None => match importer.commit() {
            Ok(done) => {
                if let Some(e) = done.housekeeping {
                    complain(&format!(
                        "the import is committed, but tidying the database afterwards failed \
                         ({e}); `serve` tidies it when it opens the file"
                    ));
                }
                None
            }
            Err(failed) => Some((
                write_failure("committing the import", &failed.error),
                failed.release,
            )),
        },
        Some(e) => Some((e, importer.abandon())),
    };
    if let Some((e, release)) = failure {
        complain(&format!(
            "import stopped after {} lines: {e}. Nothing was imported: the import is one \
             transaction, and the database is as it was before it. {}Run the import again once \
             the cause is fixed",
            summary.lines,
            match release {
                None => "The space it took on disk is free again. ".to_owned(),
                Some(r) => format!(
                    "Giving back the space it took on disk failed ({r}): `serve` or the next \
                     import does it when it opens the database. "
                ),
            }
        ));
        return EXIT_ERROR;
    }
    say(&summary.line(started.elapsed()));
    if summary.rejected > 0 {
        EXIT_REJECTED
    } else {
        EXIT_OK
    }
}

/// Why writing failed: a full disk said as such (the volume of the
/// database must be given room), anything else as SQLite says it.
fn write_failure(what: &str, e: &rusqlite::Error) -> String {
    if crate::store::import::disk_full(e) {
        format!("{what} failed: the disk holding the database is full ({e})")
    } else {
        format!("{what} failed: {e}")
    }
}

fn open_inputs(files: &[PathBuf], format: Option<Format>) -> Result<Vec<Input>, String> {
    let mut inputs = Vec::new();
    let mut stdin_seen = false;
    for path in files {
        if path.as_os_str() == "-" {
            if stdin_seen {
                return Err("`-` (standard input) may be given once".into());
            }
            stdin_seen = true;
            inputs.push(Input {
                name: "<stdin>".into(),
                format: format.unwrap_or(Format::Ndjson),
                reader: Box::new(std::io::stdin()),
                len: None,
            });
            continue;
        }
        let name = path.display().to_string();
        let format = match format.or_else(|| Format::of(path)) {
            Some(f) => f,
            None => {
                return Err(format!(
                    "cannot tell the format of {name} from its name (.ndjson, .jsonl or .csv); \
                     give --format ndjson or --format csv"
                ));
            }
        };
        let file = File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        let len = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        inputs.push(Input {
            name,
            format,
            reader: Box::new(file),
            len,
        });
    }
    Ok(inputs)
}

/// A bar on stderr when it is a terminal; none in pipes, files and CI.
fn progress_bar(inputs: &[Input]) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total: Option<u64> = inputs.iter().map(|i| i.len).sum();
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {msg} (eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(4));
    Some(bar)
}

/// One line (row) as read.
enum Raw {
    /// Where the line is in its chunk's `text`.
    Json(std::ops::Range<usize>),
    /// CSV cells (`None` when a cell is not UTF-8), with the file's header.
    Csv(Vec<Option<String>>, Arc<Vec<String>>),
    /// A row that could not be split (wrong number of cells).
    Broken(String),
}

struct Chunk {
    seq: u64,
    file: Arc<str>,
    /// Its file is an export: its rows are stored records.
    stored: bool,
    bytes: u64,
    /// Line numbers and lines.
    lines: Vec<(u64, Raw)>,
    /// The JSON lines' bytes, one after another (one allocation per chunk,
    /// not one per line).
    text: Vec<u8>,
}

/// A line that failed validation.
pub struct Rejection {
    pub line: u64,
    pub field: String,
    pub reason: String,
}

struct Parsed {
    seq: u64,
    file: Arc<str>,
    bytes: u64,
    /// The good lines, in input order.
    items: Vec<Item>,
    /// The rejected lines, in input order.
    rejected: Vec<Rejection>,
}

type Failure = (Summary, String);

fn pipeline(
    config: &Config,
    inputs: Vec<Input>,
    importer: &mut Importer,
    chunk: usize,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<Summary, Failure> {
    let parsers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (raw_tx, raw_rx) = sync_channel::<Chunk>(parsers * 2);
    let (parsed_tx, parsed_rx) = sync_channel::<Parsed>(parsers * 2);
    let raw_rx = Arc::new(Mutex::new(raw_rx));
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || read_all(inputs, raw_tx));
        for _ in 0..parsers {
            let (rx, tx) = (raw_rx.clone(), parsed_tx.clone());
            scope.spawn(move || parse_chunks(config, &rx, &tx));
        }
        drop(parsed_tx);
        let applied = apply_in_order(parsed_rx, importer, chunk, bar);
        // On a failure the receivers are gone: the reader and parsers stop.
        let read = reader
            .join()
            .unwrap_or_else(|_| Err("the reader thread failed".into()));
        match (applied, read) {
            (Ok(s), Ok(())) => Ok(s),
            (Ok(s), Err(e)) => Err((s, e)),
            (Err(f), _) => Err(f),
        }
    })
}

/// Reads every input into chunks of lines; `Err` on an I/O error, a CSV
/// header that cannot be used, or an export of a newer format.
fn read_all(inputs: Vec<Input>, tx: SyncSender<Chunk>) -> Result<(), String> {
    let mut seq = 0;
    for input in inputs {
        let file: Arc<str> = input.name.clone().into();
        let mut send = |lines: Vec<(u64, Raw)>, text: Vec<u8>, bytes: u64, stored: bool| -> bool {
            let chunk = Chunk {
                seq,
                file: file.clone(),
                stored,
                bytes,
                lines,
                text,
            };
            seq += 1;
            tx.send(chunk).is_ok()
        };
        let go_on = match input.format {
            Format::Ndjson => read_ndjson(&input.name, input.reader, &mut send)?,
            Format::Csv => read_csv(&input.name, input.reader, &mut send)?,
        };
        if !go_on {
            return Ok(()); // the writer stopped; it says why
        }
    }
    Ok(())
}

/// Hands a reader's chunks on: `(lines, text, bytes, stored)`; `false` once
/// the receiving side is gone.
type Sender<'a> = dyn FnMut(Vec<(u64, Raw)>, Vec<u8>, u64, bool) -> bool + 'a;

fn read_ndjson(
    name: &str,
    reader: Box<dyn Read + Send>,
    send: &mut Sender<'_>,
) -> Result<bool, String> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut lines = Vec::with_capacity(CHUNK);
    let mut text = Vec::new();
    let (mut number, mut bytes) = (0u64, 0u64);
    // Whether the file is an export (known at its first non-blank line).
    let mut stored = None;
    loop {
        let start = text.len();
        let read = read_line(&mut reader, &mut text, MAX_LINE_BYTES)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        let raw = match read {
            Line::End => break,
            Line::TooLong { bytes: n, len } => {
                bytes += n;
                Raw::Broken(lines::too_long(len))
            }
            Line::Read { bytes: n } => {
                bytes += n;
                if number == 0 && text[start..].starts_with(BOM) {
                    // A byte-order mark some editors write (RFC 8259 lets a
                    // reader ignore it): the version line or event after it
                    // is read as written.
                    text.drain(start..start + BOM.len());
                }
                if text[start..].iter().all(u8::is_ascii_whitespace) {
                    text.truncate(start);
                    number += 1;
                    continue; // blank lines (a trailing one) are not events
                }
                if stored.is_none() {
                    let export = format::ndjson_export(&text[start..])
                        .map_err(|e| format!("{name}:{}: {e}", number + 1))?;
                    stored = Some(export);
                    if export {
                        text.truncate(start);
                        number += 1;
                        continue; // the version line is not an event
                    }
                }
                Raw::Json(start..text.len())
            }
        };
        number += 1;
        stored.get_or_insert(false);
        lines.push((number, raw));
        if lines.len() == CHUNK {
            let full = std::mem::replace(&mut text, Vec::with_capacity(start * 5 / 4));
            let sent = std::mem::take(&mut lines);
            if !send(sent, full, std::mem::take(&mut bytes), stored == Some(true)) {
                return Ok(false);
            }
            lines.reserve(CHUNK);
        }
    }
    Ok(lines.is_empty() || send(lines, text, bytes, stored == Some(true)))
}

/// The header row's column names, checked.
fn csv_header(name: &str, line: u64, row: csv_rows::Row) -> Result<Arc<Vec<String>>, String> {
    let cells = match row {
        csv_rows::Row::Cells(c) => c,
        csv_rows::Row::Broken(why) => {
            return Err(format!("{name}:{line}: cannot read the header row: {why}"));
        }
    };
    let known = csv_columns();
    let mut names = Vec::new();
    for (i, h) in cells.iter().enumerate() {
        let mut h = String::from_utf8_lossy(h).trim().to_owned();
        if i == 0 && line == 1 {
            // A byte-order mark some spreadsheets write.
            h = h.trim_start_matches('\u{feff}').to_owned();
        }
        if !known.contains(&h.as_str()) {
            return Err(format!(
                "{name}: unknown column `{h}` in the header row; known columns: {}",
                known.join(", ")
            ));
        }
        if names.contains(&h) {
            return Err(format!(
                "{name}: column `{h}` appears twice in the header row"
            ));
        }
        names.push(h);
    }
    Ok(Arc::new(names))
}

/// The UTF-8 byte-order mark some editors and spreadsheets put first.
const BOM: &[u8] = b"\xef\xbb\xbf";

fn read_csv(
    name: &str,
    reader: Box<dyn Read + Send>,
    send: &mut Sender<'_>,
) -> Result<bool, String> {
    let mut rows = csv_rows::Rows::new(BufReader::with_capacity(1 << 20, reader));
    let read_err = |e: std::io::Error| format!("cannot read {name}: {e}");
    let Some((mut at, mut first)) = rows.next_row().map_err(read_err)? else {
        return Ok(true); // an empty file
    };
    // An export's version line comes before the header row.
    let mut stored = false;
    if let csv_rows::Row::Cells(c) = &mut first {
        // A byte-order mark a spreadsheet wrote before the version line (the
        // header row's own is dropped by `csv_header`).
        if let Some(cell) = c.first_mut().filter(|c| c.starts_with(BOM)) {
            if cell.get(BOM.len()) == Some(&b'#') {
                cell.drain(..BOM.len());
            }
        }
        let line = c.first().map(Vec::as_slice).unwrap_or_default();
        if line.first() == Some(&b'#') {
            // A comment line is one cell unless it holds commas: read whole.
            let whole = c.join(&b',');
            stored = format::csv_export(&whole).map_err(|e| format!("{name}:{at}: {e}"))?;
            match rows.next_row().map_err(read_err)? {
                Some((n, row)) => (at, first) = (n, row),
                None => return Ok(true),
            }
        }
    }
    let names = csv_header(name, at, first)?;
    let mut lines = Vec::with_capacity(CHUNK);
    let mut last = rows.bytes;
    while let Some((line, row)) = rows.next_row().map_err(read_err)? {
        let raw = match row {
            csv_rows::Row::Broken(why) => Raw::Broken(why),
            csv_rows::Row::Cells(cells) => {
                if cells.iter().all(Vec::is_empty) {
                    continue; // an empty row
                }
                if cells.len() != names.len() {
                    Raw::Broken(format!(
                        "has {} cells where the header row has {}",
                        cells.len(),
                        names.len()
                    ))
                } else {
                    let cells = cells
                        .into_iter()
                        .map(|c| String::from_utf8(c).ok())
                        .collect();
                    Raw::Csv(cells, names.clone())
                }
            }
        };
        lines.push((line, raw));
        if lines.len() == CHUNK {
            let sent = std::mem::take(&mut lines);
            if !send(sent, Vec::new(), rows.bytes - last, stored) {
                return Ok(false);
            }
            last = rows.bytes;
            lines.reserve(CHUNK);
        }
    }
    Ok(lines.is_empty() || send(lines, Vec::new(), rows.bytes - last, stored))
}

fn parse_chunks(config: &Config, rx: &Mutex<Receiver<Chunk>>, tx: &SyncSender<Parsed>) {
    let mut memo = ReleaseMemo::new();
    loop {
        let chunk = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(c) => c,
                Err(_) => break,
            }
        };
        let now = now_ms();
        let mut items = Vec::with_capacity(chunk.lines.len());
        let mut rejected = Vec::new();
        // The chunk's text checked as UTF-8 once (when it is), not string by
        // string as the JSON parser reads it.
        let utf8 = std::str::from_utf8(&chunk.text).ok();
        let rules = if chunk.stored {
            Rules::Stored
        } else {
            Rules::Api
        };
        for (line, raw) in chunk.lines {
            match parse_line(config, raw, &chunk.text, utf8, now, &mut memo, rules) {
                Ok(item) => items.push(item),
                Err(e) => rejected.push(Rejection {
                    line,
                    field: e.field,
                    reason: e.reason,
                }),
            }
        }
        let parsed = Parsed {
            seq: chunk.seq,
            file: chunk.file,
            bytes: chunk.bytes,
            items,
            rejected,
        };
        if tx.send(parsed).is_err() {
            return;
        }
    }
}

/// One line → one item, or the field at fault and why (the API's 422).
fn parse_line(
    config: &Config,
    raw: Raw,
    text: &[u8],
    utf8: Option<&str>,
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Item, FieldError> {
    match raw {
        // The common case read without a tree; anything else is read again
        // by the API's own parser, for its errors.
        Raw::Json(at) => {
            let bytes = text.get(at.clone()).unwrap_or_default();
            let line = match utf8 {
                Some(t) => t.get(at),
                None => std::str::from_utf8(bytes).ok(),
            };
            match line.and_then(Flat::parse) {
                Some(flat) => parse_object(config, &flat, now, memo, rules),
                None => parse_json(config, bytes, now, memo, rules),
            }
        }
        Raw::Csv(cells, names) => {
            parse_object(config, &csv_object(&cells, &names)?, now, memo, rules)
        }
        Raw::Broken(why) => Err(FieldError::new("", why)),
    }
}

/// A JSON line read by the API's own parser (a tree, duplicate keys refused).
fn parse_json(
    config: &Config,
    bytes: &[u8],
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Item, FieldError> {
    match from_slice_unique(bytes) {
        Ok(Value::Object(o)) => parse_object(config, &o, now, memo, rules),
        Ok(_) => Err(FieldError::new("", "a line must be a JSON object")),
        Err(JsonError::Syntax(e)) => Err(FieldError::new("", format!("not valid JSON: {e}"))),
        Err(JsonError::Duplicate(e)) => Err(e),
    }
}

/// A CSV row as the JSON object the same line would be: an empty cell is an
/// absent field; `deleted` is `true` or `false`.
fn csv_object(
    cells: &[Option<String>],
    names: &[String],
) -> Result<Map<String, Value>, FieldError> {
    let mut o = Map::new();
    for (cell, name) in cells.iter().zip(names) {
        let Some(cell) = cell else {
            return Err(FieldError::new(name.as_str(), "is not valid UTF-8"));
        };
        if cell.is_empty() {
            continue;
        }
        let value = match (name.as_str(), cell.as_str()) {
            ("deleted", "true") => Value::Bool(true),
            ("deleted", "false") => Value::Bool(false),
            _ => Value::String(cell.clone()),
        };
        o.insert(name.clone(), value);
    }
    Ok(o)
}

/// The import format's additions to the API's objects — `kind` (`release`
/// for a release time) and `product_kind` (a vendor's product namespace) —
/// then the API's own parser.
fn parse_object(
    config: &Config,
    o: &dyn Object,
    now: Millis,
    memo: &mut ReleaseMemo,
    rules: Rules,
) -> Result<Item, FieldError> {
    let kind = match o.field("kind") {
        None | Some(Scalar::Null) => KIND_DEFECT,
        Some(Scalar::Str(s)) => s,
        Some(other) => {
            return Err(FieldError::new(
                "kind",
                format!("must be a string, not {}", generic::kind(other)),
            ));
        }
    };
    let product_kind = match o.field(PRODUCT_KIND) {
        None | Some(Scalar::Null) => String::new(),
        Some(Scalar::Str(s)) if s.is_empty() || s == "generic" => String::new(),
        Some(Scalar::Str(s)) if WEBHOOK_SOURCES.contains(&s) => s.to_owned(),
        Some(other) => {
            let shown = match other {
                Scalar::Str(s) => format!("`{s}`"),
                v => generic::kind(v).to_owned(),
            };
            return Err(FieldError::new(
                PRODUCT_KIND,
                format!(
                    "must be one of: {} (or absent for the API's products), not {shown}",
                    WEBHOOK_SOURCES.join(", ")
                ),
            ));
        }
    };
    let o = &Without {
        inner: o,
        hidden: &["kind", PRODUCT_KIND],
    };
    match kind {
        KIND_DEFECT => {
            let mut ev = generic::parse_event_as(config, o, "", now, memo, rules)?;
            ev.product.kind = product_kind;
            Ok(Item::Defect(ev))
        }
        KIND_RELEASE => {
            let mut ev = generic::parse_release_as(config, o, "", now, memo, rules)?;
            if !product_kind.is_empty() {
                // The key depends on the source's release rules.
                if config
                    .release_rules
                    .key(&product_kind, &ev.release)
                    .is_none()
                {
                    return Err(FieldError::new(
                        "release",
                        format!("`{}` is empty once normalised", ev.release),
                    ));
                }
            }
            ev.product.kind = product_kind;
            Ok(Item::Release(ev))
        }
        format::KIND_EXPORT => Err(FieldError::new(
            "kind",
            "an export's version line is read only as the first line of its file",
        )),
        other => Err(FieldError::new(
            "kind",
            format!("unknown value `{other}`; expected one of: {KIND_DEFECT}, {KIND_RELEASE}"),
        )),
    }
}

/// Puts parsed chunks back in file order, reports rejections, and hands the
/// items in chunks of `chunk` to a thread applying them, so the next chunk
/// is parsed while one is written.
fn apply_in_order(
    rx: Receiver<Parsed>,
    importer: &mut Importer,
    chunk: usize,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<Summary, Failure> {
    std::thread::scope(|scope| {
        // A rendezvous: one chunk applied while the next is gathered. A chunk
        // goes as the parsers' own vectors, not moved item by item.
        let (chunks, chunk_rx) = sync_channel::<Vec<Item>>(0);
        let applier = scope.spawn(move || {
            let mut total = Summary::default();
            for items in chunk_rx {
                let o = importer
                    .apply(items, now_ms())
                    .map_err(|e| (total, write_failure("writing the database", &e)))?;
                // Generic events never retract: `ignored` stays 0.
                total.imported += o.accepted;
                total.unchanged += o.unchanged + o.ignored;
                total.stale += o.stale;
            }
            Ok::<_, Failure>(total)
        });
        let mut summary = Summary::default();
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut batch: Vec<Item> = Vec::new();
        'read: for parsed in rx {
            waiting.insert(parsed.seq, parsed);
            while let Some(p) = waiting.remove(&next) {
                next += 1;
                summary.lines += (p.items.len() + p.rejected.len()) as u64;
                summary.rejected += p.rejected.len() as u64;
                for r in p.rejected {
                    let line = if r.field.is_empty() {
                        format!("{}:{}: {}", p.file, r.line, r.reason)
                    } else {
                        format!("{}:{}: {}: {}", p.file, r.line, r.field, r.reason)
                    };
                    // Locked per line: the log (on stderr too) must not wait
                    // for the whole import.
                    let write = || complain(&line);
                    match bar {
                        Some(b) => b.suspend(write),
                        None => write(),
                    }
                }
                // Exactly `chunk` items per chunk.
                for item in p.items {
                    batch.push(item);
                    if batch.len() == chunk {
                        if chunks.send(std::mem::take(&mut batch)).is_err() {
                            break 'read; // the applier failed: it says why
                        }
                    }
                }
                if let Some(b) = bar {
                    b.inc(p.bytes);
                    b.set_message(format!("{} lines", summary.lines));
                }
            }
        }
        if !batch.is_empty() {
            let _ = chunks.send(batch);
        }
        drop(chunks);
        let applied = applier
            .join()
            .unwrap_or_else(|_| Err((Summary::default(), "the writing thread failed".into())));
        let merge = |t: Summary| Summary {
            imported: t.imported,
            unchanged: t.unchanged,
            stale: t.stale,
            ..summary
        };
        match applied {
            Ok(t) => Ok(merge(t)),
            Err((t, e)) => Err((merge(t), e)),
        }
    })
}

/// Prints to stdout; a failing stdout is ignored.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints to stderr; a failing stderr is ignored.
fn complain(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// A line read the fast way gives what the API's own parser gives: the
    /// same item, or the same field and reason.
    #[test]
    fn a_line_reads_as_the_api_reads_it() {
        let config = Config::from_settings(Settings::default()).expect("defaults");
        let now = 1_800_000_000_000;
        let lines = [
            r#"{"id":"a","stage":"production","release":"1.0","found_at":"2024-01-02T03:04:05Z"}"#,
            r#"{"id":"a\u0062","source":"tr\"acker","stage":"qa","deleted":false,"status":"invalid"}"#,
            r#"{"kind":"release","product":"p","release":"v2","released_at":"2024-01-02T00:00:00Z"}"#,
            r#"{"kind":"release","product_kind":"github","release":"v2","released_at":"2024-01-02T00:00:00Z"}"#,
            r#"{"id":"a","stage":3}"#,
            r#"{"id":"a","stage":null,"deleted":true}"#,
            r#"{"id":"a","deleted":"yes"}"#,
            r#"{"id":"a","stage":["qa"]}"#,
            r#"{"id":"a","stage":{"x":1,"x":2}}"#,
            r#"{"id":"a","stage":"qa","stage":"qa"}"#,
            r#"{"id":"a","colour":"red"}"#,
            r#"{"kind":7}"#,
            r#"{"kind":"other"}"#,
            r#"{"id":"a","product_kind":"gitlab","stage":"qa"}"#,
            r#"{"id":"a","product_kind":true,"stage":"qa"}"#,
            r#"{"id":"a","product_kind":"svn","stage":"qa"}"#,
            r#"[{"id":"a"}]"#,
            r#"{"id":"a""#,
            r#"{"id":"a","found_at":"yesterday","stage":"qa"}"#,
            r#"{"id":"a","stage":"qa+production","cause":"weird","found_at":"2999-01-01T00:00:00Z"}"#,
            r#"{"id":"a","stage":null,"deleted":true,"release":"v1","status":"duplicate"}"#,
            r#"{"id":"a","deleted":false,"detected_by":"robot","severity":"extreme"}"#,
        ];
        let not_utf8: &[u8] = b"{\"id\":\"a\xff\",\"stage\":\"qa\"}";
        let cases = lines.iter().map(|l| l.as_bytes()).chain([not_utf8]);
        for line in cases {
            // Its chunk checked as UTF-8 already, or not (a chunk that is not).
            // Under the API's rules and as a stored record alike.
            let variants = [std::str::from_utf8(line).ok(), None]
                .into_iter()
                .flat_map(|u| [(u, Rules::Api), (u, Rules::Stored)]);
            for (utf8, rules) in variants {
                let mut memo = ReleaseMemo::new();
                let raw = Raw::Json(0..line.len());
                let fast = parse_line(&config, raw, line, utf8, now, &mut memo, rules);
                let full = parse_json(&config, line, now, &mut memo, rules);
                let line = format!("{rules:?} {}", String::from_utf8_lossy(line));
                match (fast, full) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{line}"),
                    (Err(a), Err(b)) => {
                        assert_eq!((a.field, a.reason), (b.field, b.reason), "{line}")
                    }
                    (a, b) => panic!("{line}: {a:?} vs {b:?}"),
                }
            }
        }
    }
}
