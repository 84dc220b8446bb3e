//! Model and dataset repositories: a local directory, or a repository on the Hugging Face Hub.
//!
//! A repository argument is resolved the way `from_pretrained` resolves it: an existing local
//! path wins; otherwise it must be a Hub id, `name`, `org/name` or `org/name@revision`, whose
//! files are downloaded on demand with `hf-hub` into the standard cache.
//!
//! Environment, as `huggingface_hub` reads it:
//!
//! | variable | effect |
//! |---|---|
//! | `HF_HOME` | cache root; files go to `$HF_HOME/hub` (default `~/.cache/huggingface/hub`) |
//! | `HF_ENDPOINT` | Hub address (default `https://huggingface.co`), e.g. a mirror |
//! | `HF_HUB_OFFLINE` | `1`/`true`/`yes`/`on`: never touch the network, read the cache only |
//! | `HF_TOKEN` | access token for gated or private repositories (or `$HF_HOME/token`) |
//!
//! `hf-hub` itself does not read `HF_HUB_OFFLINE`; this module implements it by looking files up
//! in the cache (by the revision's ref, or directly by commit hash) without any request.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::{HubError, Result};

/// The kind of Hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// A model repository (`https://huggingface.co/<id>`).
    Model,
    /// A dataset repository (`https://huggingface.co/datasets/<id>`).
    Dataset,
}

/// A repository on the Hub: id and revision (branch, tag or commit hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRepo {
    /// `name` or `org/name`.
    pub id: String,
    /// Branch, tag or commit; `main` when not given.
    pub revision: String,
    /// Model or dataset repository.
    pub kind: RepoKind,
}

impl HubRepo {
    /// Parses `name`, `org/name` or `org/name@revision`.
    ///
    /// Returns `None` when `spec` is not a valid Hub id (the Hub's own rule: one or two segments
    /// of letters, digits, `-`, `_` and `.`, at most 96 characters each, not starting or ending
    /// with `-` or `.`, without `--` or `..`).
    pub fn parse(spec: &str, kind: RepoKind) -> Option<Self> {
        let (id, revision) = match spec.split_once('@') {
            Some((id, rev)) if !rev.is_empty() => (id, rev),
            Some(_) => return None,
            None => (spec, "main"),
        };
        let segments: Vec<&str> = id.split('/').collect();
        if segments.is_empty() || segments.len() > 2 {
            return None;
        }
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.len() <= 96
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !s.starts_with(['-', '.'])
                && !s.ends_with(['-', '.'])
                && !s.contains("--")
                && !s.contains("..")
        };
        if !segments.iter().all(|s| valid_segment(s)) {
            return None;
        }
        Some(Self { id: id.to_string(), revision: revision.to_string(), kind })
    }

    fn hf_repo(&self) -> Repo {
        let kind = match self.kind {
            RepoKind::Model => RepoType::Model,
            RepoKind::Dataset => RepoType::Dataset,
        };
        Repo::with_revision(self.id.clone(), kind, self.revision.clone())
    }
}

impl std::fmt::Display for HubRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = match self.kind {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        };
        if self.revision == "main" {
            write!(f, "{prefix}{}", self.id)
        } else {
            write!(f, "{prefix}{}@{}", self.id, self.revision)
        }
    }
}

/// Whether `HF_HUB_OFFLINE` asks for offline mode (`1`, `true`, `yes`, `on`, any case).
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// The Hub endpoint in use (`HF_ENDPOINT`, default `https://huggingface.co`).
pub fn endpoint_from_env() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "https://huggingface.co".to_string())
}

/// Downloads Hub files into the standard cache, or finds them there when offline.
#[derive(Debug)]
pub struct HubClient {
    cache: Cache,
    endpoint: String,
    /// `None` in offline mode.
    api: Option<Api>,
}

impl HubClient {
    /// A client configured from the environment (`HF_HOME`, `HF_ENDPOINT`, `HF_HUB_OFFLINE`,
    /// `HF_TOKEN`). Shows download progress when stderr is a terminal.
    pub fn from_env() -> Result<Self> {
        let cache = Cache::from_env();
        let endpoint = endpoint_from_env();
        let api = if offline_from_env() {
            None
        } else {
            let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let mut builder = ApiBuilder::from_env().with_endpoint(endpoint.clone()).with_progress(progress);
            if let Ok(token) = std::env::var("HF_TOKEN") {
                if !token.is_empty() {
                    builder = builder.with_token(Some(token));
                }
            }
            Some(builder.build().map_err(|e| HubError::Download {
                repo: "-".into(),
                file: "-".into(),
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?)
        };
        Ok(Self { cache, endpoint, api })
    }

    /// Whether this client works from the cache only.
    pub fn is_offline(&self) -> bool {
        self.api.is_none()
    }

    /// The cache directory (`$HF_HOME/hub`).
    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// Looks `file` up in the cache without any network access.
    pub fn cached(&self, repo: &HubRepo, file: &str) -> Option<PathBuf> {
        let cached = self.cache.repo(repo.hf_repo());
        if let Some(path) = cached.get(file) {
            return Some(path);
        }
        // A commit hash as revision has no ref file: look in its snapshot directly.
        if repo.revision.len() == 40 && repo.revision.chars().all(|c| c.is_ascii_hexdigit()) {
            let path = cached.pointer_path(&repo.revision).join(file);
            if path.exists() {
                return Some(path);
            }
        }
        None
    }

    /// The local path of `file` in `repo`, downloading it if needed.
    ///
    /// Returns `Ok(None)` when the Hub answers that the file does not exist (404), or, offline,
    /// when the cache does not hold it and `optional` is true.
    fn fetch(&self, repo: &HubRepo, file: &str, optional: bool) -> Result<Option<PathBuf>> {
        if let Some(path) = self.cached(repo, file) {
            return Ok(Some(path));
        }
        let Some(api) = &self.api else {
            if optional {
                return Ok(None);
            }
            return Err(HubError::Offline {
                repo: repo.to_string(),
                file: file.to_string(),
                cache: self.cache.path().clone(),
            });
        };
        tracing::info!(repo = %repo, file, endpoint = %self.endpoint, "downloading");
        match api.repo(repo.hf_repo()).download(file) {
            Ok(path) => Ok(Some(path)),
            Err(ApiError::RequestError(e)) if matches!(*e, ureq::Error::StatusCode(404)) => Ok(None),
            Err(e) => Err(HubError::Download {
                repo: repo.to_string(),
                file: file.to_string(),
                endpoint: self.endpoint.clone(),
                message: e.to_string(),
            }),
        }
    }
}

impl HubClient {
    /// The local path of `file` in `repo`: from the cache, else downloaded. A file the Hub does
    /// not have, or (offline) one missing from the cache, is an error naming the repository and
    /// the file.
    pub fn download(&self, repo: &HubRepo, file: &str) -> Result<PathBuf> {
        self.fetch(repo, file, false)?
            .ok_or_else(|| HubError::MissingFile { repo: repo.to_string(), file: file.to_string() })
    }

    /// The files of `repo` at its revision, as paths inside the repository, sorted.
    ///
    /// Online this asks the Hub's info route (`/api/{models,datasets}/{id}/revision/{rev}`);
    /// offline it lists the cached snapshot of the revision (only the files downloaded before).
    /// Returns `Ok(None)` when the repository or revision does not exist (or, offline, has no
    /// cached snapshot).
    pub fn list_files(&self, repo: &HubRepo) -> Result<Option<Vec<String>>> {
        let Some(api) = &self.api else {
            return Ok(self.cached_snapshot_files(repo));
        };
        tracing::info!(repo = %repo, endpoint = %self.endpoint, "listing files");
        match api.repo(repo.hf_repo()).info() {
            Ok(info) => {
                let mut files: Vec<String> = info.siblings.into_iter().map(|s| s.rfilename).collect();
                files.sort();
                Ok(Some(files))
            }
            Err(ApiError::RequestError(e)) if matches!(*e, ureq::Error::StatusCode(404)) => Ok(None),
            Err(e) => Err(HubError::Download {
                repo: repo.to_string(),
                file: "(file list)".to_string(),
                endpoint: self.endpoint.clone(),
                message: e.to_string(),
            }),
        }
    }

    fn cached_snapshot_files(&self, repo: &HubRepo) -> Option<Vec<String>> {
        let folder = self.cache.path().join(repo.hf_repo().folder_name());
        let commit = if repo.revision.len() == 40 && repo.revision.chars().all(|c| c.is_ascii_hexdigit()) {
            repo.revision.clone()
        } else {
            std::fs::read_to_string(folder.join("refs").join(&repo.revision)).ok()?.trim().to_string()
        };
        let root = folder.join("snapshots").join(commit);
        if !root.is_dir() {
            return None;
        }
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).ok()?.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&root) {
                    files.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        files.sort();
        Some(files)
    }
}

/// Where a repository's files come from.
#[derive(Debug)]
pub enum RepoFiles {
    /// A local directory.
    Local(PathBuf),
    /// A Hub repository, downloaded on demand.
    Hub {
        /// The repository.
        repo: HubRepo,
        /// The client that downloads or finds its files.
        client: HubClient,
    },
}

impl RepoFiles {
    /// Resolves a model or dataset argument: an existing local directory, else a Hub id.
    pub fn open(spec: &str, kind: RepoKind) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(Self::Local(path.to_path_buf()));
        }
        if path.exists() {
            // An existing file is not a repository; name it clearly.
            return Err(HubError::BadRepoSpec(format!("{spec} (a file, expected a directory)")));
        }
        let repo = HubRepo::parse(spec, kind).ok_or_else(|| HubError::BadRepoSpec(spec.into()))?;
        Ok(Self::Hub { repo, client: HubClient::from_env()? })
    }

    /// A human-readable name: the directory or the Hub id.
    pub fn name(&self) -> String {
        match self {
            Self::Local(dir) => dir.display().to_string(),
            Self::Hub { repo, .. } => repo.to_string(),
        }
    }

    /// The local path of a file the repository must hold.
    pub fn get(&self, file: &str) -> Result<PathBuf> {
        self.get_optional(file)?.ok_or_else(|| HubError::MissingFile { repo: self.name(), file: file.to_string() })
    }

    /// The local path of a file the repository may hold; `None` when it does not.
    ///
    /// Offline, a file missing from the cache counts as absent.
    pub fn get_optional(&self, file: &str) -> Result<Option<PathBuf>> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(file);
                Ok(path.is_file().then_some(path))
            }
            Self::Hub { repo, client } => client.fetch(repo, file, true),
        }
    }

    /// Like [`get`](Self::get), but offline a file missing from the cache is reported as such
    /// (with how to work offline) rather than as absent from the repository.
    pub fn get_required(&self, file: &str) -> Result<PathBuf> {
        match self {
            Self::Local(_) => self.get(file),
            Self::Hub { repo, client } => client
                .fetch(repo, file, false)?
                .ok_or_else(|| HubError::MissingFile { repo: self.name(), file: file.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_ids() {
        let r = HubRepo::parse("distilbert/distilbert-base-uncased", RepoKind::Model).unwrap();
        assert_eq!(r.id, "distilbert/distilbert-base-uncased");
        assert_eq!(r.revision, "main");
        let r = HubRepo::parse("gpt2@v1.0", RepoKind::Model).unwrap();
        assert_eq!((r.id.as_str(), r.revision.as_str()), ("gpt2", "v1.0"));
        assert_eq!(r.to_string(), "gpt2@v1.0");
        let d = HubRepo::parse("fancyzhx/ag_news", RepoKind::Dataset).unwrap();
        assert_eq!(d.to_string(), "datasets/fancyzhx/ag_news");
    }

    #[test]
    fn rejects_non_ids() {
        for bad in ["./model", "/abs/path", "a/b/c", "org/", "x@", "a--b", "a..b", "-x", "sp ace", ""] {
            assert!(HubRepo::parse(bad, RepoKind::Model).is_none(), "{bad}");
        }
    }

    #[test]
    fn local_dir_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let files = RepoFiles::open(dir.path().to_str().unwrap(), RepoKind::Model).unwrap();
        assert!(files.get("config.json").unwrap().ends_with("config.json"));
        assert!(files.get_optional("tokenizer.json").unwrap().is_none());
        let err = files.get("tokenizer.json").unwrap_err().to_string();
        assert!(err.contains("no file 'tokenizer.json'"), "{err}");
    }

    #[test]
    fn bad_spec_is_named() {
        let err = RepoFiles::open("./does/not/exist", RepoKind::Model).unwrap_err().to_string();
        assert!(err.contains("./does/not/exist"), "{err}");
    }
}
