//! Logging set-up: structured JSON lines through `tracing`, written to a sink
//! that never fails. A full disk or a closed pipe under stdout must not stop a
//! thread or a request: the line is dropped and counted
//! (`bug_escape_log_lines_dropped_total`).

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use crate::metrics::telemetry::log_lines_dropped;

/// Installs the global subscriber; `BUG_ESCAPE_LOG` sets the filter.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BUG_ESCAPE_LOG")
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .json()
        // A failed write would otherwise be reported with `eprint!`, which
        // panics when stderr fails too.
        .log_internal_errors(false)
        .with_writer(Sink)
        .init();
}

/// Makes [`LineWriter`]s over stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter<io::StdoutLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(io::stdout().lock())
    }
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
}
