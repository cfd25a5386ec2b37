//! Reading a suppression file: one phone number a line, in any spelling
//! `lead::phone_number` accepts; blank lines and lines starting with `#`
//! are skipped. A line that is not a number is counted (with the first
//! one's line number, for the operator) and skipped, never fatal: a list
//! with a header or a stray typo must still suppress every number it holds.
//!
//! Blocking (reads a file): call it from a plain thread (start-up, the
//! reload thread), never from a may worker.

use std::fmt;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::{Collector, SuppressionSet};
use crate::lead::phone_number;
use crate::limits;

/// A loaded list and what its file held.
#[derive(Debug)]
pub struct Loaded {
    pub set: SuppressionSet,
    /// Lines read, skipped ones included.
    pub lines: u64,
    /// Lines that were neither a number, blank nor a `#` comment.
    pub invalid_lines: u64,
    /// The first such line (1-based), to point the operator at.
    pub first_invalid_line: Option<u64>,
}

/// Why a list could not be loaded at all.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// More than [`limits::SUPPRESSION_NUMBERS_MAX`] numbers.
    TooManyNumbers,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "cannot read: {e}"),
            LoadError::TooManyNumbers => {
                write!(f, "more than {} numbers", limits::SUPPRESSION_NUMBERS_MAX)
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Loads the list at `path`. Blocking.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let file = std::fs::File::open(path).map_err(LoadError::Io)?;
    let size = file.metadata().map_err(LoadError::Io)?.len();
    load_reader(file, size)
}

/// Loads a list from `r`; `size_bytes` (a hint: the file's size) sizes the
/// buffers so they never grow by copying.
pub fn load_reader(mut r: impl Read, size_bytes: u64) -> Result<Loaded, LoadError> {
    // The shortest number line is 10 digits and a newline.
    let estimate = (size_bytes / 11 + 1).min(limits::SUPPRESSION_NUMBERS_MAX as u64) as usize;
    let mut lines = Lines {
        numbers: Collector::with_capacity(estimate),
        lines: 0,
        invalid_lines: 0,
        first_invalid_line: None,
    };
    let mut buf = vec![0u8; 1 << 20];
    // A line split across two reads; `None` once it ran past the limit.
    let mut partial: Option<Vec<u8>> = Some(Vec::with_capacity(LINE_MAX));
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(LoadError::Io(e)),
        };
        let mut rest = &buf[..n];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            match partial.as_mut() {
                Some(p) if p.is_empty() => lines.line(Some(&rest[..end]))?,
                Some(p) => {
                    if p.len() + end <= LINE_MAX {
                        p.extend_from_slice(&rest[..end]);
                        lines.line(Some(p))?;
                    } else {
                        lines.line(None)?;
                    }
                    p.clear();
                }
                None => {
                    lines.line(None)?;
                    partial = Some(Vec::with_capacity(LINE_MAX));
                }
            }
            rest = &rest[end + 1..];
        }
        if let Some(p) = partial.as_mut() {
            if p.len() + rest.len() > LINE_MAX {
                partial = None;
            } else {
                p.extend_from_slice(rest);
            }
        }
    }
    match partial {
        Some(p) if p.is_empty() => {}
        Some(p) => lines.line(Some(&p))?,
        None => lines.line(None)?,
    }
    Ok(Loaded {
        set: lines.numbers.finish(),
        lines: lines.lines,
        invalid_lines: lines.invalid_lines,
        first_invalid_line: lines.first_invalid_line,
    })
}

const LINE_MAX: usize = limits::SUPPRESSION_LINE_BYTES_MAX;

struct Lines {
    numbers: Collector,
    lines: u64,
    invalid_lines: u64,
    first_invalid_line: Option<u64>,
}

impl Lines {
    /// One line without its `\n`; `None` for a line past the length limit.
    fn line(&mut self, line: Option<&[u8]>) -> Result<(), LoadError> {
        self.lines += 1;
        let number = match line.map(<[u8]>::trim_ascii) {
            Some(l) if l.is_empty() || l.starts_with(b"#") => return Ok(()),
            Some(l) if l.len() <= LINE_MAX => phone_number(l),
            _ => None,
        };
        match number {
            Some(_) if self.numbers.len() >= limits::SUPPRESSION_NUMBERS_MAX => {
                Err(LoadError::TooManyNumbers)
            }
            Some(n) => {
                self.numbers.push(n);
                Ok(())
            }
            None => {
                self.invalid_lines += 1;
                self.first_invalid_line.get_or_insert(self.lines);
                Ok(())
            }
        }
    }
}
