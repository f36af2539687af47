//! The library's error at its boundary (the front door, `Gpu::new`): what went wrong, by kind, so a
//! caller can tell a missing adapter from a bad file from an invalid setting. It sits below every
//! module, which keep anyhow inside.

use std::path::{Path, PathBuf};

/// What went wrong, by kind; `Display` gives the one-line message the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter, or the chosen one cannot run tern (driver, backend, limits).
    #[error("{0}")]
    Adapter(String),
    /// A model, image or dataset file that cannot be read or is not what it should be.
    #[error("{message}")]
    File { path: PathBuf, message: String },
    /// A setting or input out of range or of the wrong shape (flags, batch sizes, image counts).
    #[error("{0}")]
    Invalid(String),
    /// A training run that failed: a non-finite loss, a failing loader, a full disk.
    #[error("{0}")]
    Training(String),
    /// A training run stopped by SIGINT or SIGTERM, its last checkpoint kept.
    #[error("{message}")]
    Interrupted { signal: i32, message: String },
}

impl Error {
    /// An anyhow error from a file's loader, named by that file.
    pub(crate) fn file(path: &Path, e: anyhow::Error) -> Error {
        Error::File { path: path.to_path_buf(), message: format!("{e:#}") }
    }

    /// A training run's error: an interruption, or a failure.
    pub(crate) fn from_run(e: anyhow::Error) -> Error {
        match e.downcast::<crate::interrupt::Interrupted>() {
            Ok(i) => Error::Interrupted { signal: i.signal, message: i.message },
            Err(e) => Error::Training(format!("{e:#}")),
        }
    }
}
