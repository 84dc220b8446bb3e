/// Errors of `ft-serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Loading the model failed.
    #[error(transparent)]
    Model(#[from] ft_models::ModelError),
    /// Loading or running the tokenizer failed.
    #[error(transparent)]
    Data(#[from] ft_data::DataError),
    /// A tensor could not be read back from the device.
    #[error("reading results back from the device: {0}")]
    Readback(String),
    /// One input cannot be processed.
    #[error("input {index}: {message}")]
    Input {
        /// Index of the input in the slice given to `predict`.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Bad pipeline options.
    #[error("{0}")]
    Options(String),
}
