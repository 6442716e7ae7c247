//! The `import` sub-command: defect events (and release times) from NDJSON or
//! CSV files into the database, each line checked by the generic API's own
//! parser (`ingest::generic`) and applied by the store writer's own rules, so
//! the result is what `POST /api/v1/events` would give for the same events in
//! the same order.
//!
//! A pipeline of threads: one reads the files into chunks of lines, parsers
//! (one per core) check them, and this thread puts the parsed chunks back in
//! order and applies them in chunks of `--chunk-size` events. A rejected line
//! is reported on stderr (file, line, field, reason) and skipped; the good
//! lines around it are imported.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::item::Item;
use crate::model::time::now_ms;
pub use crate::store::format::Format;
use crate::store::import::Importer;
use crate::store::lock::{ExclusiveOpenError, LockError};

mod csv_rows;
pub mod lines;
mod parse;
mod read;
#[cfg(test)]
mod restore_tests;

use parse::{Parsed, parse_chunks};
use read::{Chunk, read_all};

/// Lines a parser takes at once.
const CHUNK: usize = 2_048;

/// Exit status: every line imported.
pub const EXIT_OK: u8 = 0;
/// Exit status: some lines were rejected (the others were imported).
pub const EXIT_REJECTED: u8 = 1;
/// Exit status: usage or I/O error, or the database is in use: nothing more
/// could be imported (batches committed before it stay).
pub const EXIT_ERROR: u8 = 2;

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
    /// Links not stored: their group was at its cap (docs/semantics.md).
    pub links_refused: u64,
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
        s.push_str(&crate::store::refused_links_note(self.links_refused));
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
                total.links_refused += o.links_refused;
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
                    if batch.len() == chunk && chunks.send(std::mem::take(&mut batch)).is_err() {
                        break 'read; // the applier failed: it says why
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
            links_refused: t.links_refused,
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
    use crate::ingest::generic::EVENT_FIELDS;
    use crate::store::format::{CSV_COLUMNS, PRODUCT_KIND};

    /// The file format's CSV columns are the generic API's fields, with the
    /// import format's additions.
    #[test]
    fn the_csv_columns_are_the_apis_fields() {
        let mut cols = vec!["kind"];
        for f in EVENT_FIELDS {
            cols.push(f);
            if *f == "product" {
                cols.push(PRODUCT_KIND);
            }
        }
        cols.push("released_at");
        assert_eq!(CSV_COLUMNS, cols);
    }
}
