use std::path::PathBuf;

/// Errors of `ft-data`. Every message names the file, repository, line or field involved.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// Resolving or downloading a repository file failed (bad id, missing file, offline, network).
    #[error(transparent)]
    Hub(#[from] ft_hub::HubError),
    /// A tokenizer file could not be loaded or used.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Encoding a text failed.
    #[error("tokenizing input {index}: {message}")]
    Encode {
        /// Index of the text in its batch.
        index: usize,
        /// What went wrong.
        message: String,
    },
    /// A data file could not be parsed (not Parquet, broken CSV, bad JSON, ...).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A line of a text data file (CSV, JSONL, CoNLL) is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What went wrong.
        message: String,
    },
    /// A row of a dataset holds a value that cannot be used (empty text, label out of range, ...).
    #[error("{origin}: {message}")]
    Row {
        /// Where the row comes from: file and row (and line for text files).
        origin: String,
        /// What went wrong.
        message: String,
    },
    /// A column a step needs is not in the dataset.
    #[error("{source_name}: no column '{column}' (columns: {available})")]
    MissingColumn {
        /// The dataset's files or name.
        source_name: String,
        /// The missing column.
        column: String,
        /// The columns there are, comma-separated.
        available: String,
    },
    /// A column holds values of a type the step cannot use.
    #[error("{source_name}: column '{column}' is {found}, expected {expected}")]
    ColumnType {
        /// The dataset's files or name.
        source_name: String,
        /// The column.
        column: String,
        /// The type found.
        found: String,
        /// The type needed.
        expected: String,
    },
    /// A dataset source (path, recipe, Hub id) or split cannot be used as asked.
    #[error("{source_name}: {message}")]
    Source {
        /// The dataset argument.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// A recipe file is invalid.
    #[error("recipe {path}: {message}")]
    Recipe {
        /// The recipe file (or built-in name).
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A dataset operation got arguments it cannot work with (index out of range, bad split size).
    #[error("{op}: {message}")]
    Op {
        /// The operation (`select`, `train_test_split`, ...).
        op: &'static str,
        /// What went wrong.
        message: String,
    },
}
