//! Reading a trail file line by line, with the byte offset of each line and a length cap.

use std::io::{self, BufRead, BufReader, Read};

/// Longest line a trail file may hold (1 MiB). The sink refuses to write a longer event and
/// the verifier reports a longer line as malformed instead of buffering it without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One line of a file.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    /// 1-based line number.
    pub number: usize,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// The bytes without the newline.
    pub bytes: &'a [u8],
    /// False when the file ends without a newline after this line.
    pub complete: bool,
    /// True when the line was cut at [`MAX_LINE_BYTES`]; `bytes` is only its beginning.
    pub too_long: bool,
}

/// Streams lines with `BufRead::read_until` into one reused buffer.
pub(crate) struct LineReader<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    offset: u64,
    number: usize,
}

impl<R: Read> LineReader<R> {
    pub(crate) fn new(inner: R) -> LineReader<R> {
        LineReader {
            reader: BufReader::with_capacity(256 * 1024, inner),
            buf: Vec::with_capacity(1024),
            offset: 0,
            number: 0,
        }
    }

    /// The next line, or `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let offset = self.offset;
        self.offset += n as u64;
        let complete = self.buf.last() == Some(&b'\n');
        let too_long = !complete && self.buf.len() > MAX_LINE_BYTES;
        let bytes = if complete {
            &self.buf[..self.buf.len() - 1]
        } else {
            &self.buf[..]
        };
        Ok(Some(Line {
            number: self.number,
            offset,
            bytes,
            complete,
            too_long,
        }))
    }

    /// Bytes consumed so far.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }
}
