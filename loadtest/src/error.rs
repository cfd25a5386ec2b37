//! The load tester's typed error. `main` turns it into a message and an exit
//! code: usage errors exit 2, everything else 1.

use std::fmt;

/// What went wrong, with enough context to act on.
#[derive(Debug)]
pub enum Error {
    /// Bad command-line input or spec file (exit 2).
    Usage(String),
    /// The target refused, was unreachable or is not on 127.0.0.1.
    Target(String),
    /// A child process (leadx, buyer fleet) failed to start, exited or never
    /// became ready.
    Child(String),
    /// An I/O failure outside a measured request, with what was being done.
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an I/O error with what was being attempted.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Process exit code per the contract's convention.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "usage error: {m}"),
            Error::Target(m) => write!(f, "target error: {m}"),
            Error::Child(m) => write!(f, "child process error: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
