//! Reading lines with a cap: every line source (stdin, files, processes, TCP) reads through
//! here, so each holds at most `max_line` bytes of a line, and treats a line that is too long
//! or not UTF-8 the same way: as that line's error, which `--on-error` handles.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Why a line was not an element.
pub(crate) enum BadLine {
    /// Longer than the limit: read to its end and dropped, never held whole.
    TooLong,
    /// Not valid UTF-8. No source replaces bytes: a line is delivered as it was sent, or
    /// reported.
    BadUtf8,
}

impl BadLine {
    /// What to report, for the line `number` of `origin`.
    pub(crate) fn describe(&self, origin: &str, number: u64, max_line: usize) -> String {
        match self {
            BadLine::TooLong => {
                format!("{origin}:{number}: a line over {max_line} bytes (max_line) was dropped")
            }
            BadLine::BadUtf8 => format!("{origin}:{number}: the line is not valid UTF-8"),
        }
    }
}

/// A line being read: the bytes so far (at most the cap), and whether it already went over.
#[derive(Default)]
pub(crate) struct Partial {
    bytes: Vec<u8>,
    too_long: bool,
    /// The bytes of input it took, newline included.
    used: u64,
}

impl Partial {
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.too_long
    }

    /// The line read so far, as an element or its error, with the bytes of input it took
    /// (newline included); the state starts afresh.
    pub(crate) fn take_counted(&mut self) -> (Result<String, BadLine>, u64) {
        let used = self.used;
        (self.take_line(), used)
    }

    fn take_line(&mut self) -> Result<String, BadLine> {
        let Partial {
            mut bytes,
            too_long,
            ..
        } = std::mem::take(self);
        if too_long {
            return Err(BadLine::TooLong);
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8(bytes).map_err(|_| BadLine::BadUtf8)
    }
}

/// Reads into `partial` up to the end of the next line, never holding more than `max` bytes
/// of it. True when a whole line is in `partial`; false at end of input (what is left in
/// `partial` is a last line without a newline, or a line still being written).
pub(crate) async fn read_into<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
    partial: &mut Partial,
) -> std::io::Result<bool> {
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(false);
        }
        let (chunk, used, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !partial.too_long {
            if partial.bytes.len() + chunk.len() > max {
                partial.too_long = true;
                partial.bytes = Vec::new();
            } else {
                partial.bytes.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        partial.used += used as u64;
        if end {
            return Ok(true);
        }
    }
}
