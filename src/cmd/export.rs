//! The `export` sub-command: everything stored, in the format `import` reads
//! back as stored, so `import` of an export into an empty database restores
//! the same rows, hence the same gauges (docs/import-export.md).
//!
//! The first line names the format version (`store::format`): an NDJSON
//! `{"kind":"export","format":2,…}` line, a CSV
//! `# bug-escape-exporter export format 2` line before the header row. Then
//! release times (`"kind": "release"`), then every defect (`"kind":
//! "defect"`) in the order it was first stored, each with every value its
//! row holds: a deleted defect keeps its classification (`"deleted": true`),
//! which a later event may still use. A vendor's product namespace keeps its
//! kind in `product_kind` (`github`…), so the same release rules and product
//! mapping apply on import.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::SecondsFormat;
use serde_json::{Map, Value};

use crate::model::time::Millis;
use crate::store::export::{DefectRecord, ReleaseRecord, export};
use crate::store::format::{self, CSV_COLUMNS, Format, KIND_DEFECT, KIND_RELEASE, PRODUCT_KIND};

/// Exit status: the export is written.
pub const EXIT_OK: u8 = 0;
/// Exit status: usage or I/O error (the same as `import`'s).
pub const EXIT_ERROR: u8 = 2;

/// What an export wrote.
#[derive(Debug, Default)]
struct Counts {
    releases: u64,
    defects: u64,
    deleted: u64,
}

/// Runs `export` of `db` to `output` (stdout when `None`); returns the exit
/// status. The counts go to stderr (stdout may be the data).
pub fn run(db: &Path, format: Format, output: Option<&Path>) -> u8 {
    if !db.exists() {
        complain(&format!("database {} does not exist", db.display()));
        return EXIT_ERROR;
    }
    let result = match output {
        None => {
            let stdout = std::io::stdout();
            let out = Named::new(stdout.lock(), "standard output".into());
            let written = write_all(db, format, BufWriter::with_capacity(1 << 20, out));
            // Its reader has gone (`export | head`): a quiet end, as `cat`'s.
            if written.as_ref().is_err_and(super::is_closed_pipe) {
                super::end_at_closed_pipe();
            }
            written
        }
        Some(path) => to_file(db, format, path),
    };
    match result {
        Ok(c) => {
            complain(&format!(
                "exported {} release times and {} defects ({} deleted)",
                c.releases, c.defects, c.deleted
            ));
            EXIT_OK
        }
        Err(e) => {
            complain(&format!("export failed: {e:#}"));
            EXIT_ERROR
        }
    }
}

/// Writes to a temporary file beside `path`, renamed over it once complete
/// and on disk: `path` is never left half-written.
fn to_file(db: &Path, format: Format, path: &Path) -> anyhow::Result<Counts> {
    let mut tmp = PathBuf::from(path.as_os_str().to_owned());
    tmp.as_mut_os_string()
        .push(format!(".partial-{}", std::process::id()));
    let file =
        File::create(&tmp).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp.display()))?;
    let out = Named::new(&file, path.display().to_string());
    let done = write_all(db, format, BufWriter::with_capacity(1 << 20, out)).and_then(|c| {
        file.sync_all()?;
        std::fs::rename(&tmp, path)
            .map_err(|e| anyhow::anyhow!("cannot rename onto {}: {e}", path.display()))?;
        Ok(c)
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// A writer whose errors name where it writes (`standard output`, the
/// file): a full volume or a closed pipe is told apart from a database error.
struct Named<W> {
    inner: W,
    name: String,
}

impl<W: Write> Named<W> {
    fn new(inner: W, name: String) -> Self {
        Self { inner, name }
    }

    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("cannot write {}: {e}; the export is incomplete", self.name),
        )
    }
}

impl<W: Write> Write for Named<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.named(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.named(e))
    }
}

fn write_all<W: Write>(db: &Path, format: Format, out: W) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let out = std::cell::RefCell::new(Sink::new(format, out)?);
    export(
        db,
        |r| {
            counts.releases += 1;
            out.borrow_mut().release(&r)
        },
        |d| {
            counts.defects += 1;
            counts.deleted += u64::from(d.deleted);
            out.borrow_mut().defect(&d)
        },
    )?;
    out.into_inner().finish()?;
    Ok(counts)
}

fn time(ms: Millis) -> String {
    crate::model::time::format_rfc3339(ms, SecondsFormat::AutoSi).unwrap_or_else(|| ms.to_string())
}

enum Sink<W: Write> {
    Ndjson(W),
    Csv(Box<csv::Writer<W>>, &'static [&'static str]),
}

impl<W: Write> Sink<W> {
    fn new(format: Format, out: W) -> anyhow::Result<Self> {
        Ok(match format {
            Format::Ndjson => {
                let mut out = out;
                writeln!(out, "{}", format::ndjson_line())?;
                Sink::Ndjson(out)
            }
            Format::Csv => {
                let mut out = out;
                writeln!(out, "{}", format::csv_line())?;
                let columns = CSV_COLUMNS;
                let mut w = csv::Writer::from_writer(out);
                w.write_record(columns)?;
                Sink::Csv(Box::new(w), columns)
            }
        })
    }

    fn write(&mut self, o: Map<String, Value>) -> anyhow::Result<()> {
        match self {
            Sink::Ndjson(w) => {
                serde_json::to_writer(&mut *w, &o)?;
                w.write_all(b"\n")?;
            }
            Sink::Csv(w, columns) => {
                let row = columns.iter().map(|c| match o.get(*c) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                });
                w.write_record(row)?;
            }
        }
        Ok(())
    }

    fn release(&mut self, r: &ReleaseRecord) -> anyhow::Result<()> {
        let mut o = Map::new();
        o.insert("kind".into(), KIND_RELEASE.into());
        o.insert("product".into(), r.product_ns.clone().into());
        if !r.product_kind.is_empty() {
            o.insert(PRODUCT_KIND.into(), r.product_kind.clone().into());
        }
        o.insert("release".into(), r.release_raw.clone().into());
        o.insert("released_at".into(), time(r.released_at).into());
        self.write(o)
    }

    fn defect(&mut self, d: &DefectRecord) -> anyhow::Result<()> {
        let mut o = Map::new();
        o.insert("kind".into(), KIND_DEFECT.into());
        o.insert("id".into(), d.id.clone().into());
        o.insert("source".into(), d.source.clone().into());
        o.insert("product".into(), d.product_ns.clone().into());
        if !d.product_kind.is_empty() {
            o.insert(PRODUCT_KIND.into(), d.product_kind.clone().into());
        }
        // Every value, a deleted defect's too: a later event may keep what
        // its tombstone holds (a release attached before it was announced).
        let fields = [
            ("stage", &d.stage),
            ("release", &d.release_raw),
            ("detected_by", &d.detected_by),
            ("cause", &d.cause),
            ("severity", &d.severity),
            ("team", &d.team),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                o.insert(name.into(), v.clone().into());
            }
        }
        o.insert("status".into(), d.status.clone().into());
        o.insert("deleted".into(), d.deleted.into());
        o.insert("found_at".into(), time(d.found_at).into());
        o.insert("updated_at".into(), time(d.updated_at).into());
        if !d.links.is_empty() {
            let links = d
                .links
                .iter()
                .map(|(source, id)| serde_json::json!({"source": source, "id": id}));
            o.insert("links".into(), Value::Array(links.collect()));
        }
        self.write(o)
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Ndjson(mut w) => w.flush()?,
            Sink::Csv(mut w, _) => w.flush()?,
        }
        Ok(())
    }
}

fn complain(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
