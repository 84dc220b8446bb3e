use std::path::PathBuf;

/// Errors of `ft-models`. Messages name the file, config field or tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Finding or downloading a repository file failed.
    #[error(transparent)]
    Hub(#[from] ft_hub::HubError),
    /// An adapter file or operation failed.
    #[error(transparent)]
    Peft(#[from] ft_peft::PeftError),
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// `config.json` is not valid JSON or has a field of the wrong type.
    #[error("{path}: invalid config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with line and column when the JSON is malformed.
        message: String,
    },
    /// `config.json` names a `model_type` ft does not implement.
    #[error("{path}: unknown model_type '{model_type}' (supported: {supported})")]
    UnknownModelType {
        /// The config file.
        path: PathBuf,
        /// The model type found.
        model_type: String,
        /// The supported model types.
        supported: String,
    },
    /// A weights file is unreadable, truncated or not in the expected format.
    #[error("{path}: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Checkpoint tensors have shapes that do not fit the configuration.
    #[error("{path}: tensors of the wrong shape: {details}")]
    ShapeMismatch {
        /// The weights file (or the index of a sharded checkpoint).
        path: PathBuf,
        /// `name: checkpoint [..] vs model [..]` for each tensor.
        details: String,
    },
    /// The model lacks a task head or feature the caller asked for.
    #[error("{0}")]
    Unsupported(String),
    /// A device string could not be parsed or its backend is not compiled in.
    #[error("device '{spec}': {message}")]
    Device {
        /// The device string given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// Input tensors that do not fit the model.
    #[error("invalid input: {0}")]
    Input(String),
}

/// Result type of this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
