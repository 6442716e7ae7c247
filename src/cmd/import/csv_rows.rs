//! CSV rows with their line numbers, read strictly (RFC 4180): a field in
//! double quotes may hold commas, quotes (doubled) and new lines; a quote
//! inside an unquoted field is an ordinary character. What cannot be read is
//! a rejected row naming its line, never a silence:
//!
//! - a quote still open at the end of the file, or once the row is longer
//!   than [`MAX_LINE_BYTES`], rejects the row where it opened; the lines
//!   after that line are then read as rows of their own (the usual cause is a
//!   missing closing quote);
//! - anything but a comma or the line end after a closing quote (`"x"y`)
//!   rejects the row, which ends with its line;
//! - a line longer than [`MAX_LINE_BYTES`] is rejected unread.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use super::lines::{Line, MAX_LINE_BYTES, read_line, too_long};

/// One row.
#[derive(Debug, PartialEq, Eq)]
pub enum Row {
    /// Its cells' bytes (quotes removed).
    Cells(Vec<Vec<u8>>),
    /// A row that cannot be read, and why.
    Broken(String),
}

/// A physical line (without its line end), or a line over the limit.
enum Physical {
    Text(Vec<u8>),
    TooLong(u64),
}

/// The rows of a CSV input.
pub struct Rows<R> {
    reader: R,
    /// Lines read already and given back: those after a row whose quote
    /// never closed, read again as rows.
    again: VecDeque<(u64, Physical)>,
    /// The number of the last line read from `reader`.
    line: u64,
    /// Bytes read from `reader` so far.
    pub bytes: u64,
    /// The last one-line row's buffer, read into again (one allocation
    /// less per row).
    spare: Vec<u8>,
    /// Cells of the last row: the next one's vector is made that size.
    width: usize,
}

impl<R: BufRead> Rows<R> {
    /// Rows of `reader`, whose first line is line 1.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            again: VecDeque::new(),
            line: 0,
            bytes: 0,
            spare: Vec::new(),
            width: 0,
        }
    }

    /// The next physical line with its number, its line end removed (`\n`
    /// or `\r\n`).
    fn physical(&mut self) -> io::Result<Option<(u64, Physical)>> {
        if let Some(l) = self.again.pop_front() {
            return Ok(Some(l));
        }
        let mut buf = std::mem::take(&mut self.spare);
        buf.clear();
        let read = read_line(&mut self.reader, &mut buf, MAX_LINE_BYTES)?;
        let bytes = match read {
            Line::End => return Ok(None),
            Line::Read { bytes } | Line::TooLong { bytes, .. } => bytes,
        };
        self.bytes += bytes;
        self.line += 1;
        if let Line::TooLong { len, .. } = read {
            return Ok(Some((self.line, Physical::TooLong(len))));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        Ok(Some((self.line, Physical::Text(buf))))
    }

    /// The next row with the number of its first line; `None` at the end.
    /// Blank lines are rows of one empty cell.
    pub fn next_row(&mut self) -> io::Result<Option<(u64, Row)>> {
        let Some((first, line)) = self.physical()? else {
            return Ok(None);
        };
        let text = match line {
            Physical::TooLong(len) => return Ok(Some((first, Row::Broken(too_long(len))))),
            Physical::Text(t) => t,
        };
        let mut scan = Scan {
            cells: Vec::with_capacity(self.width),
            ..Scan::default()
        };
        let mut cr = scan.feed(&text, first);
        let mut size = text.len();
        // Lines after the first that the row took in, given back if its
        // quote never closes.
        let mut taken: Vec<(u64, Physical)> = Vec::new();
        while scan.state == State::Quoted {
            let next = self.physical()?;
            let why = match next {
                None => Some("the end of the file"),
                Some((_, Physical::TooLong(_))) => Some("the row's limit"),
                Some((_, Physical::Text(ref t))) if size + 1 + t.len() > MAX_LINE_BYTES => {
                    Some("the row's limit")
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                let at = scan.opened_at(first);
                taken.extend(next);
                self.again_from(taken);
                let limit = if why == "the row's limit" {
                    format!(" ({MAX_LINE_BYTES} bytes)")
                } else {
                    String::new()
                };
                return Ok(Some((
                    first,
                    Row::Broken(format!(
                        "a quoted field opened {at} is still open at {why}{limit}; the lines \
                         after this one are read as rows"
                    )),
                )));
            }
            let Some((n, Physical::Text(t))) = next else {
                unreachable!("the other cases returned above")
            };
            size += 1 + t.len();
            scan.new_line(cr);
            cr = scan.feed(&t, n);
            taken.push((n, Physical::Text(t)));
        }
        if taken.is_empty() {
            self.spare = text;
        }
        let at = scan.opened_at(first);
        match (scan.finish(), taken.last()) {
            (Row::Broken(what), Some(&(last, _))) => {
                // A broken row that took lines in: most likely a quote left
                // open above. Those lines are rows of their own.
                self.again_from(taken);
                let why = format!(
                    "malformed CSV: a quoted field opened {at} closes on line {last}, where {what}; \
                     the lines after this one are read as rows"
                );
                Ok(Some((first, Row::Broken(why))))
            }
            (Row::Broken(what), None) => {
                Ok(Some((first, Row::Broken(format!("malformed CSV: {what}")))))
            }
            (row, _) => {
                if let Row::Cells(c) = &row {
                    self.width = c.len();
                }
                Ok(Some((first, row)))
            }
        }
    }

    /// Gives `lines` back, to be read again before any other.
    fn again_from(&mut self, lines: Vec<(u64, Physical)>) {
        for l in lines.into_iter().rev() {
            self.again.push_front(l);
        }
    }
}

/// Where [`Scan`] is within a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    Start,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just after a quote inside a quoted field: the end of the field, or the
    /// first of a doubled quote.
    Quote,
    /// Something followed a closing quote: the row is broken.
    Broken,
}

/// A row's cells as its lines are fed in.
struct Scan {
    state: State,
    cells: Vec<Vec<u8>>,
    cell: Vec<u8>,
    /// The line the open quote opened on.
    opened: u64,
    /// What broke the row.
    broken: Option<String>,
}

impl Default for Scan {
    fn default() -> Self {
        Self {
            state: State::Start,
            cells: Vec::new(),
            cell: Vec::new(),
            opened: 0,
            broken: None,
        }
    }
}

impl Scan {
    /// Reads one line of the row (line number `n`), without its `\n`; a
    /// `\r` before it is part of the line end (returns whether there was
    /// one), kept in a quoted field that goes on to the next line.
    fn feed(&mut self, line: &[u8], n: u64) -> bool {
        let cr = line.last() == Some(&b'\r');
        let line = if cr { &line[..line.len() - 1] } else { line };
        let mut i = 0;
        while i < line.len() {
            match self.state {
                State::Start | State::Unquoted => {
                    if self.state == State::Start && line[i] == b'"' {
                        self.state = State::Quoted;
                        self.opened = n;
                        i += 1;
                        continue;
                    }
                    let end = memchr::memchr(b',', &line[i..]).map_or(line.len(), |e| i + e);
                    self.cell.extend_from_slice(&line[i..end]);
                    if end < line.len() {
                        self.end_cell();
                        i = end + 1;
                    } else {
                        self.state = State::Unquoted;
                        i = end;
                    }
                }
                State::Quoted => {
                    let end = memchr::memchr(b'"', &line[i..]).map_or(line.len(), |e| i + e);
                    self.cell.extend_from_slice(&line[i..end]);
                    if end < line.len() {
                        self.state = State::Quote;
                    }
                    i = end + 1;
                }
                State::Quote => {
                    match line[i] {
                        b'"' => {
                            self.cell.push(b'"');
                            self.state = State::Quoted;
                        }
                        b',' => self.end_cell(),
                        other => {
                            self.broken = Some(format!(
                                "`{}` follows a closing quote (a quote inside a quoted field is \
                                 written twice: `\"\"`)",
                                (other as char).escape_default()
                            ));
                            self.state = State::Broken;
                        }
                    }
                    i += 1;
                }
                State::Broken => return cr,
            }
        }
        cr
    }

    /// Where the last quote opened, said from the row's first line.
    fn opened_at(&self, first: u64) -> String {
        if self.opened == first {
            "on this line".to_owned()
        } else {
            format!("on line {}", self.opened)
        }
    }

    /// The line ended inside a quoted field: the field holds its line end.
    fn new_line(&mut self, cr: bool) {
        if cr {
            self.cell.push(b'\r');
        }
        self.cell.push(b'\n');
    }

    fn end_cell(&mut self) {
        self.cells.push(std::mem::take(&mut self.cell));
        self.state = State::Start;
    }

    /// The row, once its last line is fed.
    fn finish(mut self) -> Row {
        if let Some(why) = self.broken.take() {
            return Row::Broken(why);
        }
        self.cells.push(std::mem::take(&mut self.cell));
        Row::Cells(self.cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(input: &str) -> Vec<(u64, Result<Vec<String>, String>)> {
        let mut r = Rows::new(io::BufReader::with_capacity(3, input.as_bytes()));
        let mut out = Vec::new();
        for _ in 0..100 {
            let Some((n, row)) = r.next_row().expect("read") else {
                return out;
            };
            out.push((
                n,
                match row {
                    Row::Cells(c) => Ok(c
                        .into_iter()
                        .map(|c| String::from_utf8(c).expect("utf-8"))
                        .collect()),
                    Row::Broken(why) => Err(why),
                },
            ));
        }
        panic!("more rows than the input has lines");
    }

    fn ok(n: u64, cells: &[&str]) -> (u64, Result<Vec<String>, String>) {
        (n, Ok(cells.iter().map(|c| c.to_string()).collect()))
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_new_lines() {
        let got = rows("a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\"two\r\nlines\",\nq\"uote,\"\"\n\n");
        assert_eq!(
            got,
            [
                ok(1, &["a", "b"]),
                ok(2, &["x,1", "say \"hi\""]),
                ok(3, &["two\r\nlines", ""]),
                ok(5, &["q\"uote", ""]),
                ok(6, &[""]),
            ]
        );
    }

    /// An unterminated quote rejects its row and the lines after it are
    /// rows again; `"x"y` rejects its row, which ends with its line.
    #[test]
    fn what_cannot_be_read_names_its_line() {
        let got = rows("a,b\nr1,\"open\nr2,x\n");
        assert_eq!(got[1].0, 2);
        let why = got[1].1.as_ref().expect_err("open quote");
        assert!(why.contains("opened on this line") && why.contains("end of the file"));
        assert_eq!(got[2], ok(3, &["r2", "x"]));
        // Closed by a later quote that is followed by more: broken there,
        // and the lines it took are rows again.
        let got = rows("a,b\nr1,\"open\nr2,x\n\"x\"y,z\nr3,\"ok\"\n");
        assert_eq!(got[0], ok(1, &["a", "b"]));
        assert_eq!(got[1].0, 2);
        let why = got[1].1.as_ref().expect_err("open quote");
        assert!(
            why.contains("`x` follows") && why.contains("line 4"),
            "{why}"
        );
        assert!(
            why.contains("opened on this line closes on line 4"),
            "{why}"
        );
        assert_eq!(got[2], ok(3, &["r2", "x"]));
        assert_eq!(got[3].0, 4);
        assert!(got[3].1.as_ref().expect_err("x\"y").contains("`y` follows"));
        assert_eq!(got[4], ok(5, &["r3", "ok"]));
        assert_eq!(got.len(), 5);
        // A quote opened on a later line of a row is named.
        let got = rows("\"a\nb\",\"c\nd");
        let why = got[0].1.as_ref().expect_err("open");
        assert!(why.contains("opened on line 2"), "{why}");
        assert_eq!(got[1].0, 2);
    }

    /// A quote open past the limit rejects its row without reading further
    /// than the limit; the lines it took are rows again.
    #[test]
    fn a_quote_open_past_the_limit_is_cut_there() {
        let long = "y".repeat(MAX_LINE_BYTES / 2);
        let input = format!("\"open\n{long}\n{long}\n{long}\nlast,row\n");
        let got = rows(&input);
        assert_eq!(got[0].0, 1);
        assert!(got[0].1.as_ref().expect_err("open").contains("limit"));
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(got[4], ok(5, &["last", "row"]));
    }
}
