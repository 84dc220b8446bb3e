//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `ft-metrics`. Each message names the input, key or argument at
/// fault, so that it can be shown to a user as it is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Two inputs that must be parallel (predictions and references, a sentence's tags, sample
    /// weights) have different lengths.
    #[error("`{left}` has {left_len} items but `{right}` has {right_len}: they must have the same length")]
    LengthMismatch {
        /// The first input, e.g. `predictions`.
        left: String,
        /// Its length.
        left_len: usize,
        /// The second input, e.g. `references`.
        right: String,
        /// Its length.
        right_len: usize,
    },
    /// An input that needs at least one item is empty.
    #[error("`{field}` is empty: at least one item is required")]
    Empty {
        /// The empty input.
        field: String,
    },
    /// An argument has a value that the metric does not accept.
    #[error("invalid value for `{key}`: {message}")]
    InvalidArgument {
        /// The argument, e.g. `average`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A keyword argument that the metric does not know.
    #[error("unknown keyword argument `{key}` for metric `{metric}`; it accepts: {accepted}")]
    UnknownArgument {
        /// The metric.
        metric: String,
        /// The unknown key.
        key: String,
        /// The keys the metric accepts, comma-separated.
        accepted: String,
    },
    /// A metric name that is not known.
    #[error("unknown metric `{name}`; known metrics: {known}")]
    UnknownMetric {
        /// The name asked for.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// The input does not have the expected shape (wrong JSON type, mixed label types, ...).
    #[error("invalid input at `{path}`: {message}")]
    InvalidInput {
        /// Where in the input, e.g. `predictions[3]`.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A label that is not valid where it is used (e.g. a `pos_label` absent from the data).
    #[error("invalid label {label} for `{key}`: {message}")]
    UnknownLabel {
        /// The argument that named the label, e.g. `pos_label`.
        key: String,
        /// The label, as written.
        label: String,
        /// Why it is not valid.
        message: String,
    },
    /// A sequence-labelling tag that cannot be read or that the tag scheme does not allow.
    #[error("invalid tag {tag:?} at `{field}[{sentence}][{position}]`: {message}")]
    InvalidTag {
        /// `predictions` or `references`.
        field: String,
        /// The sentence's index.
        sentence: usize,
        /// The tag's index in the sentence.
        position: usize,
        /// The tag.
        tag: String,
        /// Why it is not valid.
        message: String,
    },
    /// The input text is not JSON.
    #[error("the input is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Drawing or encoding a picture failed.
    #[error("could not draw {what}: {message}")]
    Plot {
        /// The picture.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// Writing a file failed.
    #[error("could not write `{path}`: {error}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error (in the message, so not also a `source`).
        error: std::io::Error,
    },
}

/// `Result` with [`MetricsError`].
pub type Result<T> = std::result::Result<T, MetricsError>;

impl MetricsError {
    /// An [`MetricsError::InvalidArgument`] for `key`.
    pub(crate) fn arg(key: &str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { key: key.to_string(), message: message.into() }
    }

    /// An [`MetricsError::InvalidInput`] at `path`.
    pub(crate) fn input(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput { path: path.into(), message: message.into() }
    }

    /// An [`MetricsError::Empty`] for `field`.
    pub(crate) fn empty(field: &str) -> Self {
        Self::Empty { field: field.to_string() }
    }
}

/// Checks that two parallel inputs have the same length.
pub(crate) fn check_same_len(left: &str, left_len: usize, right: &str, right_len: usize) -> Result<()> {
    if left_len == right_len {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch { left: left.to_string(), left_len, right: right.to_string(), right_len })
    }
}
