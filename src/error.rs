//! The library's error type. Never a panic on user input.

use std::path::PathBuf;

/// Everything that can go wrong in rigfit, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file lacks an array it must have.
    #[error("{path}: missing array `{key}` ({expected})")]
    MissingKey {
        path: String,
        key: String,
        expected: String,
    },
    /// An array has the wrong shape or type.
    #[error("{path}: array `{key}` has shape {found:?}, expected {expected}")]
    BadShape {
        path: String,
        key: String,
        found: Vec<usize>,
        expected: String,
    },
    /// An array holds NaN or infinite values, or values out of their valid range.
    #[error("{path}: array `{key}`: {what}")]
    BadValue {
        path: String,
        key: String,
        what: String,
    },
    /// Inputs given to a function do not fit together (batch sizes, buffer lengths).
    #[error("invalid input: {0}")]
    Input(String),
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("image error: {0}")]
    Image(String),
    /// A long operation was cancelled by its progress callback (the user pressed Esc).
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
