//! Scrubbed logs (feature `tracing`): a [`MakeWriter`] wrapper that runs the identifier
//! scanner over every formatted log line before it reaches the real writer, so a careless
//! `info!("{note}")` does not put an SSN into the logs.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use guardrail_core::mask::logs::ScrubbingWriter;
//!
//! let out = Arc::new(Mutex::new(Vec::<u8>::new()));
//! let sink = out.clone();
//! let subscriber = tracing_subscriber::fmt()
//!     .with_writer(ScrubbingWriter::new(move || SharedBuf(sink.clone())))
//!     .with_ansi(false)
//!     .finish();
//! tracing::subscriber::with_default(subscriber, || {
//!     let note = "pt called from 617-555-0142";
//!     tracing::info!("{note}");
//! });
//! let logged = String::from_utf8(out.lock().unwrap().clone()).unwrap();
//! assert!(logged.contains("pt called from [PHONE]"));
//! assert!(!logged.contains("555-0142"));
//!
//! struct SharedBuf(Arc<Mutex<Vec<u8>>>);
//! impl std::io::Write for SharedBuf {
//!     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
//!         self.0.lock().unwrap().extend_from_slice(b);
//!         Ok(b.len())
//!     }
//!     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
//! }
//! ```

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

use super::scanner::Scanner;

/// Wraps a [`MakeWriter`]: each writer it makes buffers what the formatter writes and
/// passes every complete line through the scanner before writing it on.
#[derive(Debug, Clone)]
pub struct ScrubbingWriter<M> {
    inner: M,
    scanner: Scanner,
}

impl<M> ScrubbingWriter<M> {
    /// Scrubs with the default scanner.
    pub fn new(inner: M) -> ScrubbingWriter<M> {
        ScrubbingWriter {
            inner,
            scanner: super::default_scanner().clone(),
        }
    }

    /// Scrubs with `scanner` (custom MRN patterns, say).
    pub fn with_scanner(inner: M, scanner: Scanner) -> ScrubbingWriter<M> {
        ScrubbingWriter { inner, scanner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for ScrubbingWriter<M> {
    type Writer = ScrubbingLine<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingLine::new(self.inner.make_writer(), &self.scanner)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        ScrubbingLine::new(self.inner.make_writer_for(meta), &self.scanner)
    }
}

/// The writer of one event: holds bytes until a line is complete, then writes it scrubbed.
/// What is left without a newline is written, scrubbed, on flush or drop.
#[derive(Debug)]
pub struct ScrubbingLine<'a, W: Write> {
    inner: W,
    scanner: &'a Scanner,
    pending: Vec<u8>,
}

impl<'a, W: Write> ScrubbingLine<'a, W> {
    fn new(inner: W, scanner: &'a Scanner) -> Self {
        ScrubbingLine {
            inner,
            scanner,
            pending: Vec::new(),
        }
    }

    /// Writes `self.pending[..end]` scrubbed and drops it from the buffer.
    fn emit(&mut self, end: usize) -> io::Result<()> {
        let chunk: Vec<u8> = self.pending.drain(..end).collect();
        // Log lines are text; bytes that are not UTF-8 are replaced rather than passed on
        // unscanned.
        let text = String::from_utf8_lossy(&chunk);
        self.inner.write_all(self.scanner.mask(&text).as_bytes())
    }
}

impl<W: Write> Write for ScrubbingLine<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') {
            self.emit(last_newline + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(self.pending.len())?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubbingLine<'_, W> {
    fn drop(&mut self) {
        // A drop cannot report an error; the line is lost rather than written unscrubbed.
        let _ = self.flush();
    }
}
