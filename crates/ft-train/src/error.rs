use std::path::PathBuf;

/// Errors of `ft-train`. Messages name the file, key, step or row involved.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] ft_models::ModelError),
    /// Resolving a model or data repository failed.
    #[error(transparent)]
    Hub(#[from] ft_hub::HubError),
    /// Loading or tokenizing the data failed.
    #[error(transparent)]
    Data(#[from] ft_data::DataError),
    /// Computing a metric failed.
    #[error(transparent)]
    Metrics(#[from] ft_metrics::MetricsError),
    /// The run file or an argument is invalid.
    #[error("{0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The loss became NaN or infinite.
    #[error(
        "the training loss is {value} at step {step} (epoch {epoch:.2}); stopped. \
         The last good checkpoint, if any, is kept: {last_checkpoint}"
    )]
    NonFiniteLoss {
        /// The global step.
        step: usize,
        /// The epoch (fractional).
        epoch: f64,
        /// The loss value.
        value: f32,
        /// The newest checkpoint directory, or "none".
        last_checkpoint: String,
    },
    /// A tensor could not be read back or a checkpoint could not be restored.
    #[error("{0}")]
    State(String),
}

/// Result type of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |error| TrainError::Io { path, error }
}
