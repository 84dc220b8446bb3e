use std::path::PathBuf;

/// Errors of `ft-hub`. Every message names the repository, file or value involved.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
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
    /// A value handed to a function does not fit (an image buffer of the wrong size, ...).
    #[error("{0}")]
    Input(String),
}
