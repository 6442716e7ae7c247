//! The reading thread of an import: each input's lines (NDJSON) or rows
//! (CSV, its header row checked) in chunks for the parsers, and whether the
//! file is an export (its version line).

use std::io::{BufReader, Read};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use super::lines::{self, Line, MAX_LINE_BYTES, read_line};
use super::{CHUNK, Input, csv_rows};
use crate::store::format::{self, CSV_COLUMNS, Format};

/// One line (row) as read.
pub(super) enum Raw {
    /// Where the line is in its chunk's `text`.
    Json(std::ops::Range<usize>),
    /// CSV cells (`None` when a cell is not UTF-8), with the file's header.
    Csv(Vec<Option<String>>, Arc<Vec<String>>),
    /// A row that could not be split (wrong number of cells).
    Broken(String),
}

pub(super) struct Chunk {
    pub(super) seq: u64,
    pub(super) file: Arc<str>,
    /// Its file is an export: its rows are stored records.
    pub(super) stored: bool,
    pub(super) bytes: u64,
    /// Line numbers and lines.
    pub(super) lines: Vec<(u64, Raw)>,
    /// The JSON lines' bytes, one after another (one allocation per chunk,
    /// not one per line).
    pub(super) text: Vec<u8>,
}

/// Reads every input into chunks of lines; `Err` on an I/O error, a CSV
/// header that cannot be used, or an export of a newer format.
pub(super) fn read_all(inputs: Vec<Input>, tx: SyncSender<Chunk>) -> Result<(), String> {
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
    let known = CSV_COLUMNS;
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
