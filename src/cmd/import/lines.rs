//! Lines of an input, each at most [`MAX_LINE_BYTES`] long: a longer line is
//! counted and skipped without being held in memory, so one huge line (a
//! corrupt or hostile file) costs a buffer, not its size.

use std::io::{self, BufRead};

/// Longest line `import` reads (bytes, without its line end): far above any
/// event (a few hundred bytes; labels are at most 128 characters, ids 513),
/// far below what would strain memory. A CSV row spanning lines (a quoted
/// new line) is held to the same limit.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What [`read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The end of the input: nothing was read.
    End,
    /// A line, appended to the buffer with its `\n` (none on a last line
    /// without one); `bytes` read.
    Read { bytes: u64 },
    /// A line longer than the limit: nothing appended, the line skipped up
    /// to and including its `\n`; `bytes` read, of which `len` before the
    /// `\n`.
    TooLong { bytes: u64, len: u64 },
}

/// Reads one line into `buf` (appended), unless it is longer than `limit`
/// bytes (its `\n` not counted); then it is read through and dropped a
/// buffer at a time.
pub fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<Line> {
    let start = buf.len();
    let mut total = 0u64;
    let mut too_long = false;
    let mut ended = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (take, ends) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if !too_long {
            let content = take - usize::from(ends);
            if buf.len() - start + content > limit {
                too_long = true;
                buf.truncate(start);
            } else {
                buf.extend_from_slice(&available[..take]);
            }
        }
        total += take as u64;
        reader.consume(take);
        if ends {
            ended = true;
            break;
        }
    }
    Ok(match (total, too_long) {
        (0, _) => Line::End,
        (bytes, false) => Line::Read { bytes },
        (bytes, true) => Line::TooLong {
            bytes,
            len: bytes - u64::from(ended),
        },
    })
}

/// The reason given for a line of `len` bytes, over the limit.
pub fn too_long(len: u64) -> String {
    format!(
        "the line is {len} bytes long; the limit is {MAX_LINE_BYTES} bytes (the line was \
         skipped unread)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines come back whole up to the limit, longer ones are skipped
    /// through their line end whatever the buffer size, and the line after
    /// reads as usual.
    #[test]
    fn long_lines_are_skipped_and_the_next_ones_read() {
        let input = b"abc\nabcdefgh\nxy\n\nlast";
        for capacity in [1, 2, 3, 5, 64] {
            let mut r = io::BufReader::with_capacity(capacity, &input[..]);
            let mut buf = Vec::new();
            let mut got = Vec::new();
            loop {
                let before = buf.len();
                match read_line(&mut r, &mut buf, 4).expect("read") {
                    Line::End => break,
                    Line::Read { bytes } => {
                        assert_eq!(bytes as usize, buf.len() - before);
                        got.push(String::from_utf8_lossy(&buf[before..]).into_owned());
                    }
                    Line::TooLong { bytes, len } => {
                        assert_eq!(buf.len(), before);
                        got.push(format!("<{bytes},{len}>"));
                    }
                }
            }
            assert_eq!(got, ["abc\n", "<9,8>", "xy\n", "\n", "last"], "{capacity}");
        }
    }
}
