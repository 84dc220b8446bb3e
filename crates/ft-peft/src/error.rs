use std::path::PathBuf;

/// Errors of `ft-peft`. Messages name the file, key or adapter involved.
#[derive(Debug, thiserror::Error)]
pub enum PeftError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// An adapter configuration is invalid or not supported.
    #[error("{path}: {message}")]
    Config {
        /// The `adapter_config.json` (or run file) it comes from.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// An adapter's weights do not fit (missing, unexpected or mis-shaped tensors).
    #[error("{path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong, naming the tensors.
        message: String,
    },
    /// An operation on named adapters that cannot be done (unknown name, name taken, ...).
    #[error("{0}")]
    Adapter(String),
    /// Reading or writing tensor files failed.
    #[error(transparent)]
    Hub(#[from] ft_hub::HubError),
}
