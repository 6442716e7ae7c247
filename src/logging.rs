//! Logging set-up: logfmt or JSON lines through `tracing` on stderr (stdout
//! stays for what a command prints), written to a sink that never fails. A
//! full disk or a closed pipe under stderr must not stop a thread or a
//! request: the line is dropped and counted
//! (`bug_escape_log_lines_dropped_total`).

use std::fmt;
use std::io::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

pub use crate::cli::LogFormat;
use crate::cli::LogLevel;
use crate::model::time::{format_rfc3339, now_ms};
use crate::telemetry::log_lines_dropped;

/// Installs the global subscriber: `level` (with `tower_http` at `warn`
/// unless `level` is `error`) in `format`; `BUG_ESCAPE_LOG`, an `EnvFilter`
/// directive, overrides the level when set.
pub fn init(level: LogLevel, format: LogFormat) {
    let default = match level {
        LogLevel::Error => "error".to_owned(),
        LogLevel::Debug => "debug".to_owned(),
        l => format!("{},tower_http=warn", l.as_str()),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUG_ESCAPE_LOG")
        .unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A failed write would otherwise be reported with `eprint!`, which
        // panics when stderr fails.
        .log_internal_errors(false)
        .with_writer(Sink);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder
            .with_ansi(false)
            .event_format(Logfmt)
            .fmt_fields(LogfmtFields)
            .init(),
    }
}

/// Makes [`LineWriter`]s over stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter<io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(io::stderr().lock())
    }
}

/// Formats an event as one logfmt line:
/// `ts=… level=info target=… span=… msg="…" key=value…`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = format_rfc3339(now_ms(), chrono::SecondsFormat::Millis).unwrap_or_default();
        write!(
            writer,
            "ts={now} level={} target={}",
            meta.level().as_str().to_ascii_lowercase(),
            quote(meta.target())
        )?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, " span={}", quote(span.name()))?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, " {fields}")?;
                    }
                }
            }
        }
        let mut visitor = LogfmtVisitor {
            out: String::new(),
            message: None,
        };
        event.record(&mut visitor);
        if let Some(msg) = visitor.message {
            write!(writer, " msg={}", quote(&msg))?;
        }
        writeln!(writer, "{}", visitor.out)
    }
}

/// Formats span fields as logfmt pairs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogfmtFields;

impl<'w> FormatFields<'w> for LogfmtFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = LogfmtVisitor {
            out: String::new(),
            message: None,
        };
        fields.record(&mut visitor);
        if let Some(msg) = visitor.message {
            visitor.out.push_str(&format!(" message={}", quote(&msg)));
        }
        write!(writer, "{}", visitor.out.trim_start())
    }
}

struct LogfmtVisitor {
    out: String,
    message: Option<String>,
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl LogfmtVisitor {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.out
                .push_str(&format!(" {}={}", field.name(), quote(&value)));
        }
    }
}

/// A logfmt value: bare when it has no space, quote, `=` or control
/// character, else double-quoted with `\"`, `\\` and `\n` escapes.
pub fn quote(v: &str) -> String {
    let bare = !v.is_empty()
        && !v
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if bare {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A writer that reports success whatever happens, counting lines it could
/// not write.
#[derive(Debug)]
pub struct LineWriter<W>(pub W);

impl<W: Write> Write for LineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // The formatter hands over one whole line per call.
        if self.0.write_all(buf).and_then(|()| self.0.flush()).is_err() {
            log_lines_dropped().inc();
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_sink_drops_and_counts_lines() {
        let before = log_lines_dropped().get();
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
        let Ok(full) = full else { return }; // not a Linux-like system
        let mut w = LineWriter(full);
        assert!(w.write_all(b"{\"msg\":\"x\"}\n").is_ok());
        assert!(writeln!(w, "second").is_ok());
        assert!(log_lines_dropped().get() >= before + 2);
        let mut ok = LineWriter(Vec::new());
        ok.write_all(b"line\n").unwrap();
        assert_eq!(ok.0, b"line\n");
    }

    #[test]
    fn logfmt_values_are_quoted_when_needed() {
        assert_eq!(quote("serving"), "serving");
        assert_eq!(quote("127.0.0.1:80"), "127.0.0.1:80");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("say \"x\"\n"), "\"say \\\"x\\\"\\n\"");
        assert_eq!(quote("k=v"), "\"k=v\"");
    }
}
