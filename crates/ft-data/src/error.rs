use std::path::PathBuf;

/// Errors of `ft-data`. Every message names the file, repository, line or field involved.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model or dataset argument is neither an existing path nor a valid Hub id.
    #[error("'{0}' is neither an existing local path nor a Hub id of the form 'org/name[@revision]'")]
    BadRepoSpec(String),
    /// A file a repository must hold is not there.
    #[error("{repo}: no file '{file}'")]
    MissingFile {
        /// The repository (local directory or Hub id).
        repo: String,
        /// The file name inside it.
        file: String,
    },
    /// Offline mode is on and the file is not in the local cache.
    #[error(
        "{repo}: '{file}' is not in the Hub cache ({cache}) and HF_HUB_OFFLINE is set; \
         download it once with network access, or pass a local directory instead of a Hub id"
    )]
    Offline {
        /// The Hub repository id.
        repo: String,
        /// The file name.
        file: String,
        /// The cache directory that was searched.
        cache: PathBuf,
    },
    /// Downloading from the Hub failed.
    #[error("{repo}: could not download '{file}' from {endpoint}: {message}")]
    Download {
        /// The Hub repository id.
        repo: String,
        /// The file name.
        file: String,
        /// The Hub endpoint used.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
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
